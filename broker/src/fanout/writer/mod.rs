//! The writer shards: each is one task that owns its share of the
//! connections and writes every one that has something to send, many frames
//! per system call.
//!
//! A shard runs in passes. A pass takes everything from the shard's inbox
//! (`inbox.rs`) and applies it in order: new connections, frames and their
//! recipients, close requests, departures. Each frame is stored once in the
//! shard's window (`window.rs`) and its position appended to the pending
//! list of each recipient slot, which is marked. The pass then visits each
//! marked connection once: its outbox decides what goes now, the frames are
//! copied into one buffer and written with one non-blocking call.
//!
//! A send costs 5–10 µs on this machine's loopback whatever its size (see
//! `loadgen floor` in benches/README.md), so batching is what makes fan-out
//! fast. Copying ~130-byte frames into one buffer costs far less than the
//! syscalls it saves, and beats handing the kernel one iovec per frame:
//! `loadgen floor`, 200 sockets every 2 ms, 131-byte frames, the copy timed
//! with the send, medians of 3 (2026-12-01): 5.7 / 5.9 / 7.5 µs of CPU per
//! send with 1 / 8 / 64 frames copied, 6.4 / 6.4 / 9.5 µs with `writev`
//! (which at 64 frames could not keep up in 2 of 3 runs). The buffer belongs to the runtime thread, not to the
//! connection, so it stays in cache; only what a full socket does not take
//! at once is kept per connection (`socket.rs`).
//!
//! Why a pass over marked connections and not a task per connection: a task
//! per connection paid a wake-up, a timer and a `select!` per write, and the
//! hub paid a lock and a queue push per subscriber per tick; at 1,000
//! subscribers those were a fifth of the broker's CPU. Why the recipients
//! travel with the frame: the shard delivers a tick to exactly the slots
//! subscribed when it was published, a push of 4 bytes per delivery, where
//! testing every fresh tick against every visited connection's interest
//! cost (connections × ticks) per pass.
//!
//! Between passes the shard pauses (`pacing.rs`); fresh frames past half an
//! outbox end the pause early (`Inbox`), so the pause never pushes a
//! healthy client into conflation. Every [`YIELD_EVERY`] visits a pass
//! yields to the runtime and takes what arrived meanwhile: connections
//! further on get it in this pass, those already visited keep their mark
//! for the next. The shard also sweeps its connections four times a second
//! (`sweep.rs`) and watches full sockets for writability itself, so no task
//! is ever spawned on a connection's behalf.

mod pacing;
mod slot;
mod socket;
mod sweep;

use std::cell::RefCell;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::bitmap::Bitmap;
use crate::config::Limits;
use crate::fanout::connection::ConnectionInfo;
use crate::fanout::inbox::{Delivery, Inbox, Item, Recipients};
use crate::fanout::outbox::{Batch, Collected, Outbox, Take};
use crate::fanout::replies::ReplyBudget;
use crate::fanout::window::{Frame, Window};
use crate::observe::latency::Stage;
use crate::observe::metrics::Metrics;
use pacing::Pacing;
use slot::Slot;
use socket::WriteSide;
use tickcast_protocol::clock::now_ns;

/// The most bytes written to one connection in one visit. Large enough to
/// amortise the syscall, small enough that the copy stays in cache.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// The most bytes written in one visit to a connection whose last write did
/// not all go (a reader slower than its feed): what the kernel does not
/// take waits in user space, out of reach of the freshness bound, so a
/// slow reader's write is kept to a few dozen ticks.
pub const SLOW_BATCH_BYTES: usize = 8 * 1024;

/// Visits between two yields to the runtime, so a long pass does not keep
/// the feed (or the readers) waiting for the thread. A visit costs ~5–10 µs
/// (mostly the send), so 16 visits keep the feed waiting at most ~150 µs;
/// at 64 its feed → receive p99 was 2.1 ms at 200 subscribers and 20k
/// ticks/s, at 16 it is 0.7 ms.
const YIELD_EVERY: usize = 16;

/// A pending list larger than this is released after the visit, so one
/// burst does not pin a connection's peak memory.
const KEEP_PENDING: usize = 4096;

thread_local! {
    /// The frames of one write, assembled (see the module docs).
    static ASSEMBLY: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// One writer shard (see the module docs).
pub struct ShardWriter {
    inbox: Arc<Inbox>,
    limits: Limits,
    /// Replies leave it as they leave an outbox (`replies.rs`).
    replies: Arc<ReplyBudget>,
    metrics: Arc<Metrics>,
    slots: Vec<Option<Slot>>,
    /// Per slot, window positions of the frames delivered to it since its
    /// last visit. Kept out of [`Slot`] on purpose: a tick to 300
    /// subscribers is 300 pushes, and a dense list of 24-byte headers stays
    /// in cache where 1,000 slots of ~300 bytes do not (at 1,000
    /// subscribers, delivering into the slots themselves put about a
    /// millisecond of cache misses before the first write of each pass).
    pending: Vec<Vec<u32>>,
    window: Window,
    /// Window positions from here on may still be pending after this pass.
    keep_from: u32,
    /// Slots to visit.
    dirty: Bitmap,
    /// Slots whose socket is full.
    blocked: Bitmap,
    /// Slots detached since the last take, to hand back to the inbox.
    freed: Vec<u32>,
    items: Vec<Item>,
    batch: Batch,
    pacing: Pacing,
    next_sweep: Instant,
    /// Slots holding ticks back for a rate cap (`pace.rs`), and when the
    /// first of those is due.
    paced: Bitmap,
    pace_due: Option<Instant>,
}

impl ShardWriter {
    /// A writer for the shard fed by `inbox`.
    pub fn new(
        inbox: Arc<Inbox>,
        limits: Limits,
        replies: Arc<ReplyBudget>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            inbox,
            pacing: Pacing::new(limits.write_coalesce),
            limits,
            replies,
            metrics,
            slots: Vec::new(),
            pending: Vec::new(),
            window: Window::default(),
            keep_from: 0,
            dirty: Bitmap::default(),
            blocked: Bitmap::default(),
            freed: Vec::new(),
            items: Vec::new(),
            batch: Batch::default(),
            next_sweep: Instant::now() + sweep::SWEEP_EVERY,
            paced: Bitmap::default(),
            pace_due: None,
        }
    }

    /// Runs the shard until `stop` is cancelled.
    pub async fn run(mut self, stop: CancellationToken) {
        loop {
            // Everything before `keep_from` was delivered by the last pass.
            self.window.drop_before(self.keep_from);
            let now = Instant::now();
            if now >= self.next_sweep {
                self.sweep();
            }
            if self.pace_due.is_some_and(|due| due <= now) {
                self.pace_due = None;
                for i in self.paced.iter().collect::<Vec<_>>() {
                    self.dirty.insert(i);
                }
                self.paced = Bitmap::default();
            }
            self.mark_drained(&mut Context::from_waker(std::task::Waker::noop()));
            let carried = !self.dirty.is_empty();
            let took = self.take(!carried);
            // What arrives from here on, during the pass, may stay pending
            // for connections already visited until the next pass.
            self.keep_from = self.window.end();
            if !took && !carried {
                self.pacing.idle();
                if !self.wait(None, &stop).await {
                    return;
                }
                continue;
            }
            let started = Instant::now();
            let sending = self.pass().await;
            if let Some(next) = self.pacing.after_pass(started, sending) {
                if !self.wait(Some(next), &stop).await {
                    return;
                }
            }
        }
    }

    /// Waits for the inbox, a full socket draining, the next sweep, or
    /// `until`; false once the broker stops.
    async fn wait(&mut self, until: Option<Instant>, stop: &CancellationToken) -> bool {
        let inbox = self.inbox.clone();
        let mut deadline = until.map_or(self.next_sweep, |t| t.min(self.next_sweep));
        if let Some(due) = self.pace_due {
            deadline = deadline.min(due);
        }
        tokio::select! {
            _ = stop.cancelled() => return false,
            _ = inbox.woken() => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = std::future::poll_fn(|cx| {
                if self.mark_drained(cx) { Poll::Ready(()) } else { Poll::Pending }
            }) => {}
        }
        true
    }

    /// Marks the full sockets that drained; returns whether any did (if
    /// none, `cx` is woken when one does).
    fn mark_drained(&mut self, cx: &mut Context<'_>) -> bool {
        let mut any = false;
        for i in self.blocked.iter().collect::<Vec<_>>() {
            let writable = match &mut self.slots[i] {
                Some(slot) => slot.side.poll_writable(cx).is_ready(),
                None => true,
            };
            if writable {
                self.blocked.remove(i);
                self.dirty.insert(i);
                any = true;
            }
        }
        any
    }

    /// Takes the inbox and applies it; returns whether there was anything.
    fn take(&mut self, park: bool) -> bool {
        let mut items = std::mem::take(&mut self.items);
        let took = self.inbox.take(&mut items, &mut self.freed, park);
        for item in items.drain(..) {
            self.apply(item);
        }
        self.items = items;
        took
    }

    fn apply(&mut self, item: Item) {
        match item {
            Item::Attach { slot, conn, socket } => {
                let at = slot as usize;
                if self.slots.len() <= at {
                    self.slots.resize_with(at + 1, || None);
                    self.pending.resize_with(at + 1, Vec::new);
                }
                self.slots[at] = Some(Slot {
                    conn,
                    side: WriteSide::new(socket),
                    outbox: Outbox::new(self.limits.outbox_bytes, self.limits.slow_policy)
                        .with_max_age(self.limits.max_queue_age),
                    closing_since: None,
                });
            }
            Item::Deliver(d) => self.deliver(d),
            Item::Pace { slot, change } => {
                if let Some(s) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) {
                    s.outbox.pace(&change, Instant::now());
                    self.dirty.insert(slot as usize);
                }
            }
            Item::Close {
                slot,
                frame,
                discard,
            } => {
                if let Some(s) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) {
                    if s.outbox.close(frame, discard) {
                        self.dirty.insert(slot as usize);
                    }
                }
            }
            Item::CloseAll { frame } => {
                for (i, s) in self.slots.iter_mut().enumerate() {
                    if let Some(s) = s {
                        s.outbox.close(frame.clone(), false);
                        self.dirty.insert(i);
                    }
                }
            }
            Item::Detach { slot } => {
                if let Some(s) = self.slots.get_mut(slot as usize) {
                    if let Some(gone) = s {
                        self.replies.release_all(&gone.conn);
                    }
                    // Dropping the write half sends the FIN.
                    *s = None;
                    self.pending[slot as usize] = Vec::new();
                }
                self.dirty.remove(slot as usize);
                self.blocked.remove(slot as usize);
                self.paced.remove(slot as usize);
                self.freed.push(slot);
            }
            Item::Report(reply) => {
                let rows = self
                    .slots
                    .iter()
                    .flatten()
                    .map(|s| ConnectionInfo {
                        id: s.conn.id,
                        peer: s.conn.peer.to_string(),
                        queued_bytes: s.outbox.queued_bytes(),
                        delivered: s.outbox.counters.delivered,
                        conflated: s.outbox.counters.conflated,
                        dropped: s.outbox.counters.dropped,
                    })
                    .collect();
                // The asker may have given up; nothing to do then.
                let _ = reply.send(rows);
            }
        }
    }

    /// Stores a frame once and adds it to each recipient's pending list.
    fn deliver(&mut self, d: Delivery) {
        let at = self.window.push(Frame {
            bytes: d.frame,
            kind: d.kind,
            enqueued_ns: d.enqueued_ns,
        });
        let Self { pending, dirty, .. } = self;
        // Only attached slots are named (see `inbox.rs`); a closed one's
        // list is dropped at its next visit.
        let mut add = |slot: u32| {
            if let Some(list) = pending.get_mut(slot as usize) {
                list.push(at);
                dirty.insert(slot as usize);
            }
        };
        match d.to {
            Recipients::One(slot) => add(slot),
            Recipients::Subscribers { symbol, wildcard } => {
                for &slot in symbol.iter().chain(&wildcard).flat_map(|list| list.iter()) {
                    add(slot);
                }
            }
        }
    }

    /// One pass over the marked connections, in slot order; returns the
    /// time spent in sends.
    async fn pass(&mut self) -> Duration {
        let mut sending = Duration::ZERO;
        let mut again = Vec::new();
        let now = Instant::now();
        let (mut next, mut visits) = (0, 0);
        while let Some(i) = self.dirty.take_next(next) {
            next = i + 1;
            if self.visit(i, now, &mut sending) {
                again.push(i);
            }
            visits += 1;
            if visits % YIELD_EVERY == 0 {
                tokio::task::yield_now().await;
                self.take(false);
            }
        }
        for i in again {
            self.dirty.insert(i);
        }
        sending
    }

    /// One connection's turn: finish what the kernel refused last time,
    /// collect, write. Returns whether frames are still queued for it (with
    /// the socket taking them).
    fn visit(&mut self, i: usize, now: Instant, sending: &mut Duration) -> bool {
        let Self {
            slots,
            pending,
            window,
            batch,
            blocked,
            metrics,
            replies,
            paced,
            pace_due,
            ..
        } = self;
        let (Some(Some(slot)), Some(pending)) = (slots.get_mut(i), pending.get_mut(i)) else {
            return false;
        };
        if !slot.side.is_open() {
            pending.clear();
            return false;
        }
        match slot.side.flush_unsent(sending) {
            Err(_) => return fail(slot),
            Ok(true) => return finish(slot),
            Ok(false) => {}
        }
        let is_blocked = slot.side.is_blocked();
        let batch_bytes = if slot.side.is_slow() {
            SLOW_BATCH_BYTES
        } else {
            MAX_BATCH_BYTES
        };
        batch.clear();
        let got = slot
            .outbox
            .collect(pending, window, is_blocked, batch, batch_bytes, now);
        if let Some(due) = slot.outbox.next_paced() {
            paced.insert(i);
            *pace_due = Some(pace_due.map_or(due, |d| d.min(due)));
        }
        pending.clear();
        if pending.capacity() > KEEP_PENDING {
            *pending = Vec::new();
        }
        count_policies(&got, metrics);
        replies.release(&slot.conn, got.replies);
        if !batch.is_empty() {
            let last = got.take == Take::Last;
            let written = ASSEMBLY.with_borrow_mut(|buf| {
                assemble(batch, window, buf);
                slot.side
                    .write(buf, last, sending)
                    .map(|done| (done, buf.len()))
            });
            match written {
                Err(_) => return fail(slot),
                Ok((done, bytes)) => {
                    if let Some(user) = &slot.conn.user {
                        user.add_delivered(batch.len() as u64);
                    }
                    account(batch, window, bytes, metrics, &mut slot.outbox);
                    if done {
                        return finish(slot);
                    }
                }
            }
        }
        if slot.side.is_blocked() {
            blocked.insert(i);
        }
        got.more && !slot.side.is_blocked()
    }

    /// The sweep (`sweep.rs`) over every connection of the shard.
    fn sweep(&mut self) {
        let now = Instant::now();
        self.next_sweep = now + sweep::SWEEP_EVERY;
        for (i, s) in self.slots.iter_mut().enumerate() {
            if let Some(slot) = s {
                if sweep::sweep(slot, &self.limits, &self.metrics, now) {
                    self.dirty.insert(i);
                }
            }
        }
    }
}

/// The close frame is out: drop the socket (FIN) and tell the session.
fn finish(slot: &mut Slot) -> bool {
    slot.side.shut();
    slot.conn.close_sent();
    false
}

/// The socket failed: the connection ends without ceremony.
fn fail(slot: &mut Slot) -> bool {
    slot.side.shut();
    slot.conn.cancel();
    false
}

/// Copies a batch of frames into one contiguous buffer for a single write:
/// the queued ones, then the fresh ones (positions in `window`).
pub fn assemble(batch: &Batch, window: &Window, buf: &mut Vec<u8>) {
    buf.clear();
    for q in &batch.queued {
        buf.extend_from_slice(&q.frame);
    }
    for &at in &batch.fresh {
        buf.extend_from_slice(&window.get(at).bytes);
    }
}

fn count_policies(got: &Collected, metrics: &Metrics) {
    metrics.conflated.add(got.conflated);
    metrics.dropped.add(got.dropped);
    metrics.rate_capped.add(got.rate_capped);
    metrics.age_conflations.add(got.aged);
    if got.disconnected {
        metrics.slow_disconnects.add(1);
    }
}

/// Records the enqueue → write latency of every tick in the batch (control
/// frames carry no enqueue time) and the counters, under one lock.
fn account(batch: &Batch, window: &Window, bytes: usize, metrics: &Metrics, outbox: &mut Outbox) {
    let now = now_ns();
    {
        let mut stages = metrics.stages.lock();
        let mut run: Option<(u64, u64)> = None;
        // Frames of one publication share their enqueue time: record runs
        // at once.
        let queued = batch.queued.iter().map(|q| q.enqueued_ns);
        let fresh = batch.fresh.iter().map(|&at| window.get(at).enqueued_ns);
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
    outbox.counters.delivered += frames;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WriteCoalesce;
    use crate::fanout::hub::TickIn;
    use crate::fanout::Fanout;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    /// Lets every other task on this (current-thread) runtime run, without
    /// letting the paused clock move.
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    fn publish(fanout: &Fanout, seq: u64) {
        fanout.hub().publish(&[TickIn {
            sym: "AAPL",
            seq,
            ts: 1,
            payload: &[0xAB; 100],
            recv_ns: 1,
            epoch: None,
        }]);
    }

    #[tokio::test(start_paused = true)]
    async fn ticks_arriving_during_a_pause_share_one_write() {
        let limits = Limits {
            write_coalesce: WriteCoalesce::Fixed(Duration::from_millis(300)),
            ..Limits::default()
        };
        let metrics = Arc::new(Metrics::default());
        let (fanout, mut writers) = Fanout::new(1, &limits, None, metrics.clone());
        let stop = CancellationToken::new();
        let writer = tokio::spawn(writers.remove(0).run(stop.clone()));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let mut client = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (server, peer) = listener.accept().await.unwrap_or_else(|e| panic!("{e}"));
        let (_read_half, write_half) = server.into_split();
        let member = fanout.join(peer, write_half.into());
        assert!(member
            .subscribe(
                &["AAPL".to_owned()],
                &Default::default(),
                10,
                &Arc::new(crate::auth::entitlements::Entitlements::All)
            )
            .is_ok());
        settle().await;
        tokio::time::advance(Duration::from_millis(300)).await;
        settle().await;
        let before = metrics.writes.get();
        assert_eq!(before, 1, "the ack");

        // The first tick after a quiet spell goes out at once...
        publish(&fanout, 1);
        settle().await;
        assert_eq!(metrics.writes.get(), before + 1);
        // ...the next ones, arriving within the pause, wait and share one write.
        for seq in 2..=21 {
            publish(&fanout, seq);
            tokio::time::advance(Duration::from_millis(2)).await;
            settle().await;
        }
        assert_eq!(metrics.writes.get(), before + 1, "written during the pause");
        tokio::time::advance(Duration::from_millis(300)).await;
        settle().await;
        assert_eq!(metrics.writes.get(), before + 2);
        assert_eq!(metrics.frames_out.get(), 1 + 21);

        // And the client has the ack and every tick, in order.
        let ack = tickcast_protocol::ServerMessage::Subscribed {
            topics: vec!["AAPL".to_owned()],
            epoch: Some(fanout.hub().epoch()),
            epochs: Default::default(),
        };
        let ack_len = 2 + ack.to_msgpack().len();
        let mut got = vec![0; ack_len + 21 * 102];
        client
            .read_exact(&mut got)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(got[ack_len..]
            .chunks(102)
            .all(|f| f[..2] == [0x82, 100] && f[2..] == [0xAB; 100]));
        stop.cancel();
        assert!(writer.await.is_ok());
    }
}
