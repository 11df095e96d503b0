//! The writer shards: each is one task that writes every connection of its
//! shard that has something to send, many frames per system call.
//!
//! A send costs 4–5 µs on loopback whatever its size (see
//! `../shared/design.md`), so batching is what makes fan-out fast. A shard
//! runs in passes: it takes from the hub the ticks published since its last
//! pass and the bitmap of connections that got one (or a reply, or a
//! close), and visits each of those once. A visit lets the connection's
//! outbox pick its frames (`Outbox::collect`), copies them into one buffer
//! and writes it with one non-blocking call. Copying ~130-byte frames costs
//! far less than the syscalls it saves, and we measured it faster than
//! `writev` over the same frames.
//!
//! Why a pass and not a task per connection: a task per connection paid a
//! wake-up, a timer and a `select!` per write, and the hub paid a lock and
//! a queue push per subscriber per tick; at 1,000 subscribers those were a
//! fifth of the broker's CPU. A pass touches each connection once per write,
//! and the state it needs is hot while it does.
//!
//! The buffer frames are assembled in belongs to the shard, not to the
//! connection, so it stays in cache. Only what the kernel does not take at
//! once, when a client's socket is full, is kept per connection (`unsent`);
//! a small task then waits for the socket to drain and marks the connection
//! for the next pass, and meanwhile its outbox fills and its slow-consumer
//! policy takes over.
//!
//! Between passes the shard pauses (`--write-coalesce`): a write costs the
//! same few microseconds of kernel time whether it carries one frame or
//! fifty, and with hundreds of busy connections those fixed costs, not the
//! bytes, fill the CPU. With `auto` the shard times its own sends and
//! pauses so that they take at most `--send-share` of its core: a pass
//! whose sends took `S` is followed by a pause until `S ÷ share` after it
//! began; pauses shorter than the timer's millisecond add up until they
//! are not, and a shard that runs out of work owes nothing (`Pacing`). A few busy clients are written at once; a thousand are written as
//! often as the machine's send cost allows (measured here with `loadgen
//! floor`: 5–7 µs a send at 200 connections, ~9 µs at 1,000), which is what a
//! fixed budget of writes per second had to guess. Fresh ticks past half
//! an outbox's limit end the pause early (`Hub::publish`), so the pause
//! never pushes a healthy client into conflation.

use std::cell::RefCell;
use std::io::ErrorKind;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::time::Instant;

use crate::client::session::Session;
use crate::config::{WriteCoalesce, MAX_AUTO_PAUSE};
use crate::fanout::hub::{Published, Route};
use crate::fanout::outbox::{Batch, Collected, Take};
use crate::observe::latency::Stage;
use crate::observe::metrics::Metrics;
use crate::Shared;
use tickcast_protocol::clock::now_ns;

/// The most bytes written to one connection in one visit. Large enough to
/// amortise the syscall, small enough that the copy stays in cache.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// The granularity of tokio's timer; pauses shorter than this are skipped.
const TIMER_RESOLUTION: Duration = Duration::from_millis(1);

/// A connection's leftover buffer larger than this is released once it is
/// written, so a connection that once had a burst does not keep its peak
/// memory.
const KEEP_WHEN_IDLE: usize = 16 * 1024;

/// Visits between two yields to the runtime, so a long pass does not keep
/// the feed (or the readers) waiting for the thread. A visit costs ~5–10 µs
/// (mostly the send), so 16 visits keep the feed waiting at most ~150 µs;
/// at 64 its feed → receive p99 was 2.1 ms at 200 subscribers and 20k
/// ticks/s, at 16 it is 0.7 ms.
const YIELD_EVERY: usize = 16;

thread_local! {
    /// The frames of one write, assembled (see the module docs).
    static ASSEMBLY: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A connection's side of the writer: its socket and what the kernel did not
/// take yet.
#[derive(Debug)]
pub struct WriteSide {
    /// `None` once the connection is finished (the close frame is out or the
    /// socket failed); dropping the write half sends the FIN.
    socket: Option<Arc<OwnedWriteHalf>>,
    /// Bytes the kernel refused, written before anything else.
    unsent: Vec<u8>,
    /// The close frame is in `unsent`: finish once it is out.
    last: bool,
    /// A task is waiting for the socket to become writable.
    waiting: bool,
}

impl WriteSide {
    /// The write side of a new connection.
    pub fn new(socket: OwnedWriteHalf) -> Self {
        Self {
            socket: Some(Arc::new(socket)),
            unsent: Vec::new(),
            last: false,
            waiting: false,
        }
    }
}

/// Which connections belong to each writer shard.
pub struct Writers {
    shards: Vec<Mutex<Table>>,
}

#[derive(Default)]
struct Table {
    sessions: Vec<Option<Arc<Session>>>,
    free: Vec<u32>,
    live: usize,
}

impl Writers {
    /// `shards` empty shards (as many as the hub feeds).
    pub fn new(shards: usize) -> Self {
        Self {
            shards: (0..shards).map(|_| Mutex::new(Table::default())).collect(),
        }
    }

    /// Places a new connection in the least loaded shard: `make` builds its
    /// session for the route it gets.
    pub fn attach(&self, make: impl FnOnce(Route) -> Arc<Session>) -> Arc<Session> {
        let (shard, mut table) = self
            .shards
            .iter()
            .enumerate()
            .map(|(i, t)| (i, t.lock()))
            .min_by_key(|(_, t)| t.live)
            .unwrap_or_else(|| unreachable!("a broker has at least one writer shard"));
        let index = match table.free.pop() {
            Some(index) => index,
            None => {
                table.sessions.push(None);
                (table.sessions.len() - 1) as u32
            }
        };
        let session = make(Route {
            shard: shard as u32,
            index,
        });
        table.sessions[index as usize] = Some(session.clone());
        table.live += 1;
        session
    }

    /// Takes a connection out of its shard and drops its socket.
    pub fn detach(&self, session: &Session) {
        let route = session.route();
        let mut table = self.shards[route.shard as usize].lock();
        if let Some(slot) = table.sessions.get_mut(route.index as usize) {
            if slot.take().is_some() {
                table.free.push(route.index);
                table.live -= 1;
            }
        }
        drop(table);
        session.write.lock().socket = None;
    }
}

/// Runs writer shard `shard` until the broker stops.
///
/// A pass visits the marked connections in index order. Every
/// [`YIELD_EVERY`] visits it yields to the runtime and takes what the hub
/// published meanwhile: connections further on in this pass get those
/// ticks now rather than a pass later (a tick waits at most about one pass
/// period, not two), and connections already visited keep their mark for
/// the next pass. The shard keeps the ticks taken since the start of the
/// previous pass: every subscriber of an older one has been visited since.
pub async fn run_shard(shard: usize, shared: Arc<Shared>) {
    let hub = &shared.hub;
    // Recent ticks, in publication order, and the position after the last.
    let mut published: Vec<Published> = Vec::new();
    let mut taken_to: u64 = 0;
    // Where the previous pass started taking.
    let mut previous_start: u64 = 0;
    let mut dirty: Vec<u64> = Vec::new();
    // Connections with frames still queued after their visit.
    let mut again: Vec<u32> = Vec::new();
    let mut batch = Batch::default();
    let mut pacing = Pacing::new(shared.limits.write_coalesce);
    loop {
        let started = Instant::now();
        let old = published.partition_point(|p| p.pos < previous_start);
        published.drain(..old);
        previous_start = taken_to;
        let carried = dirty.iter().any(|w| *w != 0);
        if !hub.take(shard, &mut published, &mut dirty, !carried) && !carried {
            pacing.idle();
            hub.signalled(shard).await;
            continue;
        }
        taken_to = published.last().map_or(taken_to, |p| p.pos + 1);
        let (mut next, mut visits) = (0, 0);
        let mut sending = Duration::ZERO;
        while let Some(index) = next_marked(&mut dirty, next) {
            next = index + 1;
            let session = shared.writers.shards[shard]
                .lock()
                .sessions
                .get(index)
                .cloned()
                .flatten();
            if let Some(session) = session {
                if visit(&session, &published, &mut batch, &shared, &mut sending) {
                    again.push(index as u32);
                }
            }
            visits += 1;
            if visits % YIELD_EVERY == 0 {
                tokio::task::yield_now().await;
                hub.take(shard, &mut published, &mut dirty, false);
                taken_to = published.last().map_or(taken_to, |p| p.pos + 1);
            }
        }
        for index in again.drain(..) {
            mark(&mut dirty, index as usize);
        }
        if let Some(next) = pacing.after_pass(started, sending) {
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = hub.signalled(shard) => {}
            }
        }
    }
}

/// When a shard's next pass may start (`--write-coalesce`).
struct Pacing {
    coalesce: WriteCoalesce,
    /// `auto`: pause owed to the send share, carried while it is shorter
    /// than the timer's resolution.
    owed: Duration,
}

impl Pacing {
    fn new(coalesce: WriteCoalesce) -> Self {
        Self {
            coalesce,
            owed: Duration::ZERO,
        }
    }

    /// After a pass that began at `started` and spent `sending` in sends:
    /// the moment the next pass may begin, if it must wait. tokio's timer
    /// counts whole milliseconds, so shorter pauses are not taken (`auto`
    /// carries them until they add up).
    fn after_pass(&mut self, started: Instant, sending: Duration) -> Option<Instant> {
        let pause = match self.coalesce {
            WriteCoalesce::Fixed(pause) => pause,
            WriteCoalesce::Auto { send_share } => {
                self.owed = (self.owed + auto_pause(sending, send_share)).min(MAX_AUTO_PAUSE);
                if self.owed < TIMER_RESOLUTION {
                    return None;
                }
                std::mem::take(&mut self.owed)
            }
        };
        (pause >= TIMER_RESOLUTION).then(|| started + pause)
    }

    /// The shard ran out of work and waits: what it owed is paid.
    fn idle(&mut self) {
        self.owed = Duration::ZERO;
    }
}

/// The first marked index at or after `from`, unmarked.
fn next_marked(dirty: &mut [u64], from: usize) -> Option<usize> {
    let mut word = from / 64;
    let mut bits = dirty.get(word)? & (!0u64 << (from % 64));
    while bits == 0 {
        word += 1;
        bits = *dirty.get(word)?;
    }
    let index = word * 64 + bits.trailing_zeros() as usize;
    dirty[word] &= !(1 << (index % 64));
    Some(index)
}

fn mark(dirty: &mut Vec<u64>, index: usize) {
    let word = index / 64;
    if dirty.len() <= word {
        dirty.resize(word + 1, 0);
    }
    dirty[word] |= 1 << (index % 64);
}

/// The pass-to-pass period that keeps sends taking `sending` to `share` of
/// the core: `sending ÷ share`, capped.
fn auto_pause(sending: Duration, share: f64) -> Duration {
    if share.is_nan() || share <= 0.0 {
        return MAX_AUTO_PAUSE;
    }
    sending.div_f64(share.min(1.0)).min(MAX_AUTO_PAUSE)
}

/// One connection's turn in a pass: finish what the kernel refused last
/// time, collect, write, adding the time spent in sends to `sending`.
/// Returns whether frames are still queued for it (with the socket taking
/// them).
fn visit(
    session: &Arc<Session>,
    published: &[Published],
    batch: &mut Batch,
    shared: &Shared,
    sending: &mut Duration,
) -> bool {
    let mut side = session.write.lock();
    let Some(socket) = side.socket.clone() else {
        return false;
    };
    if !side.unsent.is_empty() {
        let Some(sent) = timed(sending, || try_write_all(&socket, &side.unsent)) else {
            return fail(session, &mut side);
        };
        side.unsent.drain(..sent);
        if side.unsent.is_empty() && side.last {
            return finish(session, &mut side);
        }
    }
    let blocked = !side.unsent.is_empty();
    let outbox = &session.subscriber.outbox;
    batch.clear();
    let got = outbox.collect(published, blocked, batch, MAX_BATCH_BYTES);
    count_policies(&got, &shared.metrics);
    let wrote = !batch.is_empty();
    if wrote {
        let sent = ASSEMBLY.with_borrow_mut(|buf| {
            assemble(batch, published, buf);
            let sent = timed(sending, || try_write_all(&socket, buf))?;
            side.unsent.extend_from_slice(&buf[sent..]);
            Some(buf.len())
        });
        let Some(bytes) = sent else {
            return fail(session, &mut side);
        };
        account(batch, published, bytes, &shared.metrics, session);
        if got.take == Take::Last {
            if side.unsent.is_empty() {
                return finish(session, &mut side);
            }
            side.last = true;
        }
    }
    if side.unsent.is_empty() {
        if side.unsent.capacity() > KEEP_WHEN_IDLE {
            side.unsent = Vec::new();
        }
    } else if !side.waiting {
        side.waiting = true;
        tokio::spawn(wait_writable(socket, session.clone(), shared.hub.clone()));
    }
    got.more && side.unsent.is_empty()
}

/// Runs `send`, adding the time it took to `sending`.
fn timed<T>(sending: &mut Duration, send: impl FnOnce() -> T) -> T {
    let start = std::time::Instant::now();
    let out = send();
    *sending += start.elapsed();
    out
}

/// Waits until a full socket drains, then marks its connection for the next
/// pass.
async fn wait_writable(
    socket: Arc<OwnedWriteHalf>,
    session: Arc<Session>,
    hub: Arc<crate::fanout::hub::Hub>,
) {
    tokio::select! {
        // An error shows up on the next write.
        _ = socket.writable() => {}
        _ = session.cancelled() => return,
    }
    session.write.lock().waiting = false;
    hub.kick(session.route());
}

/// The close frame is out: drop the socket (FIN) and tell the session.
fn finish(session: &Session, side: &mut WriteSide) -> bool {
    side.socket = None;
    side.unsent = Vec::new();
    session.writer_finished();
    false
}

/// The socket failed: the connection ends without ceremony.
fn fail(session: &Session, side: &mut WriteSide) -> bool {
    side.socket = None;
    side.unsent = Vec::new();
    session.cancel();
    false
}

/// Copies a batch of frames into one contiguous buffer for a single write:
/// the queued ones, then the fresh ones (indices into `published`).
pub fn assemble(batch: &Batch, published: &[Published], buf: &mut Vec<u8>) {
    buf.clear();
    for q in &batch.queued {
        buf.extend_from_slice(&q.frame);
    }
    for &i in &batch.fresh {
        buf.extend_from_slice(&published[i as usize].frame);
    }
}

/// Writes as much of `data` as the socket takes without waiting; `None` if
/// the connection failed.
fn try_write_all(socket: &OwnedWriteHalf, data: &[u8]) -> Option<usize> {
    let mut sent = 0;
    while sent < data.len() {
        match socket.try_write(&data[sent..]) {
            Ok(0) => return None,
            Ok(n) => sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(sent)
}

fn count_policies(got: &Collected, metrics: &Metrics) {
    metrics.conflated.add(got.conflated);
    metrics.dropped.add(got.dropped);
    if got.disconnected {
        metrics.slow_disconnects.add(1);
    }
}

/// Records the enqueue → write latency of every tick in the batch (control
/// frames carry no enqueue time) and the counters, under one lock.
fn account(
    batch: &Batch,
    published: &[Published],
    bytes: usize,
    metrics: &Metrics,
    session: &Session,
) {
    let now = now_ns();
    {
        let mut stages = metrics.stages.lock();
        let mut run: Option<(u64, u64)> = None;
        // Frames of one publication share their enqueue time: record runs
        // at once.
        let queued = batch.queued.iter().map(|q| q.enqueued_ns);
        let fresh = batch
            .fresh
            .iter()
            .map(|&i| published[i as usize].enqueued_ns);
        for enqueued_ns in queued.chain(fresh).filter(|&ns| ns != 0) {
            let latency = now.saturating_sub(enqueued_ns);
            match &mut run {
                Some((value, count)) if *value == latency => *count += 1,
                _ => {
                    if let Some((value, count)) = run.take() {
                        stages.record_n(Stage::EnqueueToWrite, value, count);
                    }
                    run = Some((latency, 1));
                }
            }
        }
        if let Some((value, count)) = run {
            stages.record_n(Stage::EnqueueToWrite, value, count);
        }
    }
    let frames = batch.len() as u64;
    metrics.frames_out.add(frames);
    metrics.bytes_out.add(bytes as u64);
    metrics.writes.add(1);
    session
        .subscriber
        .outbox
        .counters
        .delivered
        .fetch_add(frames, std::sync::atomic::Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marked_indices_come_in_order_once() {
        let mut dirty = Vec::new();
        for i in [3, 64, 200, 0] {
            mark(&mut dirty, i);
        }
        assert_eq!(next_marked(&mut dirty, 1), Some(3));
        assert_eq!(next_marked(&mut dirty, 4), Some(64));
        assert_eq!(next_marked(&mut dirty, 65), Some(200));
        assert_eq!(next_marked(&mut dirty, 201), None);
        assert_eq!(next_marked(&mut dirty, 0), Some(0));
        assert_eq!(next_marked(&mut dirty, 0), None);
    }

    #[test]
    fn auto_pauses_shorter_than_the_timer_add_up_until_the_shard_idles() {
        let t0 = Instant::now();
        let us = Duration::from_micros;
        let mut p = Pacing::new(WriteCoalesce::Auto { send_share: 0.5 });
        // 300 µs of sends owe 600 µs: too short for the timer, carried.
        assert_eq!(p.after_pass(t0, us(300)), None);
        // 600 more: 1.2 ms from the start of this pass.
        assert_eq!(p.after_pass(t0, us(300)), Some(t0 + us(1_200)));
        assert_eq!(p.owed, Duration::ZERO);
        // Owed, then the shard has nothing to do: waiting paid it.
        assert_eq!(p.after_pass(t0, us(300)), None);
        p.idle();
        assert_eq!(p.after_pass(t0, us(300)), None);
        assert_eq!(p.owed, us(600));
        assert_eq!(p.after_pass(t0, us(50_000)), Some(t0 + MAX_AUTO_PAUSE));

        let mut fixed = Pacing::new(WriteCoalesce::Fixed(Duration::from_millis(2)));
        assert_eq!(fixed.after_pass(t0, us(0)), Some(t0 + us(2_000)));
        let mut short = Pacing::new(WriteCoalesce::Fixed(us(500)));
        assert_eq!(short.after_pass(t0, us(0)), None);
    }

    #[test]
    fn sends_are_kept_to_their_share_of_the_core() {
        let ms = Duration::from_millis;
        assert_eq!(auto_pause(Duration::ZERO, 0.6), Duration::ZERO);
        // 200 sends of 7 µs at 60 %: a pass every 2.33 ms.
        assert_eq!(
            auto_pause(Duration::from_micros(1_400), 0.6),
            Duration::from_nanos(2_333_333)
        );
        assert_eq!(auto_pause(ms(9), 0.5), ms(18));
        assert_eq!(auto_pause(ms(9), 1.0), ms(9));
        assert_eq!(auto_pause(ms(9), 0.1), MAX_AUTO_PAUSE);
        assert_eq!(auto_pause(ms(1), 0.0), MAX_AUTO_PAUSE);
        assert_eq!(auto_pause(ms(1), f64::NAN), MAX_AUTO_PAUSE);
    }
}
