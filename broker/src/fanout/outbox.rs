//! A connection's outbox: the queue, bounded in bytes, of what could not be
//! written to it yet, with the slow-consumer policies applied at the bound,
//! the freshness bound, the rate caps, and the account of every tick it
//! skipped.
//!
//! The outbox belongs to the connection's writer shard and is touched by
//! nothing else, so it has no lock. On each visit the writer hands it the
//! connection's pending frames (positions in the shard's [`Window`], in
//! order) and [`Outbox::collect`] decides what goes into this write. When
//! nothing is queued and the socket is keeping up, they go straight into
//! the write batch, never into the queue; otherwise they are queued behind
//! what is waiting, and past [`Limits::outbox_bytes`](crate::config::Limits)
//! one of three policies applies:
//!
//! - **conflate** (default): further ticks go into a side table holding only
//!   the latest frame per symbol. Ticks carry the full state of their symbol,
//!   so a client that skips some still holds a consistent view. Everything
//!   already queued is sent first, so per-symbol order is kept.
//! - **drop**: further ticks are discarded until the writer catches up.
//! - **disconnect**: the connection is closed at once with 1008.
//!
//! **Freshness** (`--max-queue-age`): when the oldest tick queued is older
//! than that, the queue is conflated in place to the latest tick per
//! symbol at once, so a slow reader gets prices about that old, not as old
//! as a full outbox. **Rate caps** (`pace.rs`) hold a capped symbol's ticks
//! back to its `max_rate`.
//!
//! **Gap notices**: every tick skipped (conflated, dropped, capped) has its
//! `seq` added to its symbol's account (`gaps.rs`), and the `gap` notices
//! go just before the next tick of that symbol that goes out (for drops:
//! queued before the first tick queued once the writer caught up; for
//! conflation by the freshness bound and for rate caps: owed per symbol
//! and told when that tick is taken, so a slow reader's queue never holds
//! more notices than ticks). The
//! `seq`s come from the skipped frames themselves (`frame::tick_id`), on
//! these slow paths only: a connection that keeps up pays nothing.
//!
//! Memory is bounded in every case: at most the byte limit in the queue plus
//! one frame per symbol in the conflation table (and one per capped symbol),
//! plus one small account per symbol. A connection that stays over the limit
//! for longer than the slow timeout is closed by the writer's sweep
//! (`writer/sweep.rs`). Control frames (acks, replies, pings, notices) are
//! small and bypass the limit.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use tickcast_protocol::control::GapReason;
use tokio::time::Instant;

use crate::config::SlowConsumerPolicy;
use crate::fanout::frame::{self, close_code};
use crate::fanout::gaps::Skips;
use crate::fanout::pace::{Admit, HeldTick, Pace, PaceChange};
use crate::fanout::symbols::SymbolId;
use crate::fanout::window::{Kind, Window};

/// One frame waiting to be written, with the time it was published (for the
/// enqueue → write latency stage).
#[derive(Debug, Clone)]
pub struct Queued {
    /// The complete WebSocket frame.
    pub frame: Bytes,
    /// When it was published, ns since the epoch (0 for control frames,
    /// which are not measured).
    pub enqueued_ns: u64,
    /// What it is (a reply is charged to its reply budget until it leaves
    /// the outbox: `replies.rs`).
    pub kind: Kind,
}

impl Queued {
    fn control(frame: Bytes, kind: Kind) -> Self {
        Self {
            frame,
            enqueued_ns: 0,
            kind,
        }
    }
}

/// What happened to a pushed tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued.
    Queued,
    /// Kept as the latest of its symbol, replacing an older one (conflation).
    Conflated,
    /// Kept as the first conflated frame of its symbol.
    Held,
    /// Discarded (drop policy).
    Dropped,
    /// Over the limit under the disconnect policy: the outbox is now closing.
    Disconnected,
    /// The outbox is closing; nothing more is accepted.
    Closed,
}

/// Per-connection counters, reported on `/connections`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    /// Frames written to the socket.
    pub delivered: u64,
    /// Ticks replaced by a newer tick of the same symbol.
    pub conflated: u64,
    /// Ticks discarded under the drop policy.
    pub dropped: u64,
    /// Ticks replaced by a newer one within a rate cap.
    pub rate_capped: u64,
}

/// What the writer took in one go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Nothing was queued.
    Empty,
    /// Some frames; more may follow.
    Frames,
    /// The last frames, ending with the close frame: write them and stop.
    Last,
}

/// One write's worth of frames for a connection: queued frames first (they
/// are older), then fresh ones taken straight from the window, by position,
/// without being queued.
#[derive(Debug, Default)]
pub struct Batch {
    /// Frames taken from the queue.
    pub queued: Vec<Queued>,
    /// Positions in the window given to [`Outbox::collect`].
    pub fresh: Vec<u32>,
}

impl Batch {
    /// Empties the batch, keeping its allocations.
    pub fn clear(&mut self) {
        self.queued.clear();
        self.fresh.clear();
    }

    /// How many frames it holds.
    pub fn len(&self) -> usize {
        self.queued.len() + self.fresh.len()
    }

    /// Whether it holds no frame.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What one [`Outbox::collect`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Collected {
    /// Whether the batch ends the connection (its close frame is in it).
    pub take: Take,
    /// Whether frames are still queued after this batch.
    pub more: bool,
    /// Ticks conflated (by the byte limit or the freshness bound).
    pub conflated: u64,
    /// Ticks dropped.
    pub dropped: u64,
    /// Ticks replaced within a rate cap.
    pub rate_capped: u64,
    /// Times the freshness bound conflated the queue.
    pub aged: u64,
    /// The disconnect policy closed the connection.
    pub disconnected: bool,
    /// Bytes of replies (control messages from the window) in the batch:
    /// they leave the connection's reply budget.
    pub replies: usize,
}

/// A conflated frame, and the ticks of its symbol it replaced.
#[derive(Debug)]
struct Held {
    q: Queued,
    skips: Skips,
}

/// Ticks of one symbol skipped and not told yet: told just before the
/// first tick of that symbol taken from the queue that is later than all
/// of them (an earlier one may still be queued ahead of them).
#[derive(Debug)]
struct Owed {
    name: String,
    /// Replaced within a rate cap (each released tick's account).
    capped: Skips,
    /// Conflated away by the freshness bound.
    conflated: Skips,
}

impl Owed {
    fn new(name: String) -> Self {
        Self {
            name,
            capped: Skips::default(),
            conflated: Skips::default(),
        }
    }

    /// Whether `seq` comes after every tick owed.
    fn precedes(&self, seq: u64) -> bool {
        self.capped.last().max(self.conflated.last()) < Some(seq)
    }

    fn tell(self, into: &mut Vec<Queued>) {
        let notices = (self
            .capped
            .notices(&self.name, GapReason::RateCapped)
            .into_iter())
        .chain(self.conflated.notices(&self.name, GapReason::Conflated));
        into.extend(notices.map(|n| Queued::control(n, Kind::Notice)));
    }
}

/// A connection's outbox (see the module docs).
#[derive(Debug)]
pub struct Outbox {
    queue: VecDeque<Queued>,
    /// Conflated frames in first-seen order, and where each symbol's is.
    held: Vec<Held>,
    held_slot: HashMap<SymbolId, usize>,
    /// Bytes in `queue` and `held`.
    bytes: usize,
    /// Ticks dropped and not yet told, per symbol (name, seqs).
    dropped: HashMap<SymbolId, (String, Skips)>,
    /// Ticks the freshness bound conflated away and ticks a rate cap
    /// replaced, per symbol, told just before that symbol's next tick is
    /// taken from the queue. Owed rather than queued as notices: those
    /// would outlive the ticks they precede (the freshness bound keeps
    /// control frames), and a slow reader's queue would grow with them.
    owed: HashMap<SymbolId, Owed>,
    /// The rate caps.
    pace: Pace,
    /// Since when the outbox has been over its limit without the writer
    /// catching up.
    over_since: Option<Instant>,
    /// A close frame to queue once the frames already pending are in: a
    /// graceful close (shutdown) flushes first.
    graceful_close: Option<Bytes>,
    /// A close frame is queued as the last frame; nothing is accepted after.
    closing: bool,
    limit: usize,
    policy: SlowConsumerPolicy,
    /// The freshness bound, ns (`None`: off).
    max_age_ns: Option<u64>,
    /// No freshness check before this (wall clock, ns): a queue just
    /// conflated may still hold old ticks of quiet symbols, which are their
    /// latest; looking again at once would only cost a scan.
    next_age_check_ns: u64,
    /// This connection's counters.
    pub counters: Counters,
}

impl Outbox {
    /// An empty outbox with a byte limit and a slow-consumer policy.
    pub fn new(limit: usize, policy: SlowConsumerPolicy) -> Self {
        Self {
            queue: VecDeque::new(),
            held: Vec::new(),
            held_slot: HashMap::new(),
            bytes: 0,
            dropped: HashMap::new(),
            owed: HashMap::new(),
            pace: Pace::default(),
            over_since: None,
            graceful_close: None,
            closing: false,
            limit,
            policy,
            max_age_ns: None,
            next_age_check_ns: 0,
            counters: Counters::default(),
        }
    }

    /// This outbox with a freshness bound (`--max-queue-age`), which is
    /// part of the conflate policy (under drop and disconnect it does
    /// nothing).
    pub fn with_max_age(mut self, max_age: Option<Duration>) -> Self {
        if self.policy == SlowConsumerPolicy::Conflate {
            self.max_age_ns = max_age.map(|d| d.as_nanos().min(u64::MAX as u128) as u64);
        }
        self
    }

    fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.held.is_empty()
    }

    /// Changes the connection's rate caps (in inbox order).
    pub fn pace(&mut self, change: &PaceChange, now: Instant) {
        self.pace.apply(change, now);
    }

    /// When a tick held back by a rate cap is due, if one is.
    pub fn next_paced(&self) -> Option<Instant> {
        if self.pace.is_active() {
            self.pace.next_due()
        } else {
            None
        }
    }

    /// Queues a tick frame of `sym`, applying the slow-consumer policy.
    pub fn push_tick(&mut self, sym: SymbolId, frame: &Bytes, enqueued_ns: u64) -> Pushed {
        if self.closing {
            return Pushed::Closed;
        }
        let entry = Queued {
            frame: frame.clone(),
            enqueued_ns,
            kind: Kind::Tick(sym),
        };
        let conflating = !self.held.is_empty();
        if conflating || self.bytes + frame.len() > self.limit {
            if self.over_since.is_none() {
                self.over_since = Some(Instant::now());
            }
            match self.policy {
                SlowConsumerPolicy::Conflate => return self.hold(sym, entry),
                SlowConsumerPolicy::Drop => {
                    if let Some((name, seq)) = frame::tick_id(frame) {
                        let account = self.dropped.entry(sym).or_insert((name, Skips::default()));
                        account.1.add(seq);
                    }
                    self.counters.dropped += 1;
                    return Pushed::Dropped;
                }
                SlowConsumerPolicy::Disconnect => {
                    self.close_now(frame::close(close_code::POLICY, "slow consumer"));
                    return Pushed::Disconnected;
                }
            }
        }
        if !self.dropped.is_empty() {
            // Caught up: tell what was dropped before anything newer.
            let mut told: Vec<(String, Skips)> = self.dropped.drain().map(|(_, a)| a).collect();
            told.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, skips) in told {
                for notice in skips.notices(&name, GapReason::Dropped) {
                    self.push_unmeasured(notice, Kind::Notice);
                }
            }
        }
        self.bytes += frame.len();
        self.queue.push_back(entry);
        Pushed::Queued
    }

    fn hold(&mut self, sym: SymbolId, entry: Queued) -> Pushed {
        let len = entry.frame.len();
        match self.held_slot.get(&sym) {
            Some(&slot) => {
                let held = &mut self.held[slot];
                let old = std::mem::replace(&mut held.q, entry);
                if let Some((_, seq)) = frame::tick_id(&old.frame) {
                    held.skips.add(seq);
                }
                self.bytes = self.bytes - old.frame.len() + len;
                self.counters.conflated += 1;
                Pushed::Conflated
            }
            None => {
                self.held_slot.insert(sym, self.held.len());
                self.held.push(Held {
                    q: entry,
                    skips: Skips::default(),
                });
                self.bytes += len;
                Pushed::Held
            }
        }
    }

    /// Queues a control frame of the broker's own (a ping); returns whether
    /// it was accepted (not after a close).
    pub fn push_control(&mut self, frame: Bytes) -> bool {
        self.push_unmeasured(frame, Kind::Notice)
    }

    fn push_unmeasured(&mut self, frame: Bytes, kind: Kind) -> bool {
        if self.is_closing() {
            return false;
        }
        self.bytes += frame.len();
        self.queue.push_back(Queued::control(frame, kind));
        true
    }

    /// Queues `close` (a close frame) as the last frame. With `discard`,
    /// everything still queued is dropped first (slow consumer, protocol
    /// error); without it, queued and pending frames are flushed before the
    /// close (shutdown). Returns whether this call started the close (false
    /// if one was already under way).
    pub fn close(&mut self, close: Bytes, discard: bool) -> bool {
        if self.is_closing() {
            return false;
        }
        if discard {
            self.close_now(close);
        } else {
            self.graceful_close = Some(close);
        }
        true
    }

    fn close_now(&mut self, close: Bytes) {
        self.queue.clear();
        self.held.clear();
        self.held_slot.clear();
        self.dropped.clear();
        self.owed.clear();
        self.pace.clear();
        self.bytes = close.len();
        self.queue.push_back(Queued::control(close, Kind::Notice));
        self.closing = true;
    }

    /// The writer's one call per visit: takes the connection's `pending`
    /// frames (positions in `window`, in order) and fills `batch` with up
    /// to about `max_bytes` to write now.
    ///
    /// With nothing queued and the socket keeping up, pending frames go
    /// straight into the batch (by position); otherwise they are queued
    /// behind what waits, ticks under the slow-consumer policy, and the
    /// batch is taken from the queue. A `blocked` socket (the last batch is
    /// not all out) gets nothing new: its frames only queue, and the policy
    /// decides. Ticks of capped symbols and the freshness bound are applied
    /// here too (`now`: the writer's clock).
    pub fn collect(
        &mut self,
        pending: &[u32],
        window: &Window,
        blocked: bool,
        batch: &mut Batch,
        max_bytes: usize,
        now: Instant,
    ) -> Collected {
        let mut out = Collected {
            take: Take::Empty,
            more: false,
            conflated: 0,
            dropped: 0,
            rate_capped: 0,
            aged: 0,
            disconnected: false,
            replies: 0,
        };
        // A graceful close goes after this visit's pending frames: held
        // aside while they are taken, or they would be refused as coming
        // after the close (they were dropped so until 2026-12-02).
        let graceful = self.graceful_close.take();
        let paced = self.pace.is_active();
        if paced && !self.closing {
            self.release_paced(now, &mut out);
        }
        let mut direct =
            !blocked && self.is_empty() && !self.is_closing() && !paced && self.dropped.is_empty();
        let mut direct_bytes = 0;
        for &at in pending {
            let f = window.get(at);
            let len = f.bytes.len();
            if direct && (direct_bytes == 0 || direct_bytes + len <= max_bytes) {
                direct_bytes += len;
                batch.fresh.push(at);
                if f.kind == Kind::Reply {
                    out.replies += len;
                }
                continue;
            }
            direct = false;
            let Kind::Tick(sym) = f.kind else {
                self.push_unmeasured(f.bytes.clone(), f.kind);
                continue;
            };
            if paced && !self.closing {
                match self.pace.admit(sym, &f.bytes, f.enqueued_ns, now) {
                    Admit::Send => {}
                    Admit::Held => continue,
                    Admit::Replaced => {
                        self.counters.rate_capped += 1;
                        out.rate_capped += 1;
                        continue;
                    }
                }
            }
            self.push_counted(sym, &f.bytes, f.enqueued_ns, &mut out);
        }
        if let Some(close) = graceful {
            self.bytes += close.len();
            self.queue.push_back(Queued::control(close, Kind::Notice));
            self.closing = true;
        }
        if self.max_age_ns.is_some() && !self.queue.is_empty() {
            let removed = self.conflate_stale(tickcast_protocol::clock::now_ns());
            if removed > 0 {
                self.counters.conflated += removed;
                out.conflated += removed;
                out.aged += 1;
            }
        }
        if !batch.fresh.is_empty() {
            out.take = Take::Frames;
        } else if !blocked {
            out.take = self.take_queued(&mut batch.queued, max_bytes);
            out.replies += batch
                .queued
                .iter()
                .filter(|q| q.kind == Kind::Reply)
                .map(|q| q.frame.len())
                .sum::<usize>();
        }
        if !blocked && self.bytes <= self.limit && self.held.is_empty() {
            self.over_since = None;
        }
        out.more = !self.is_empty();
        out
    }

    /// [`Outbox::push_tick`], with what it did counted into `out`.
    fn push_counted(
        &mut self,
        sym: SymbolId,
        frame: &Bytes,
        enqueued_ns: u64,
        out: &mut Collected,
    ) {
        match self.push_tick(sym, frame, enqueued_ns) {
            Pushed::Conflated => out.conflated += 1,
            Pushed::Dropped => out.dropped += 1,
            Pushed::Disconnected => out.disconnected = true,
            Pushed::Queued | Pushed::Held | Pushed::Closed => {}
        }
    }

    /// Queues the capped ticks whose time has come; what each replaced is
    /// owed, told when it is taken.
    fn release_paced(&mut self, now: Instant, out: &mut Collected) {
        let mut due: Vec<HeldTick> = Vec::new();
        self.pace.release_due(now, &mut due);
        for held in due {
            if !held.skips.is_empty() {
                let owed = self
                    .owed
                    .entry(held.sym)
                    .or_insert_with(|| Owed::new(held.name));
                owed.capped.append(held.skips);
            }
            self.push_counted(held.sym, &held.frame, held.enqueued_ns, out);
        }
    }

    /// Moves what is owed for `sym` into `into` if the tick `frame` comes
    /// after all of it.
    fn tell_owed(&mut self, sym: SymbolId, frame: &[u8], into: &mut Vec<Queued>) {
        let due = self
            .owed
            .get(&sym)
            .is_some_and(|owed| frame::tick_id(frame).is_some_and(|(_, seq)| owed.precedes(seq)));
        if due {
            if let Some(owed) = self.owed.remove(&sym) {
                owed.tell(into);
            }
        }
    }

    /// The freshness bound: when the oldest tick queued was published more
    /// than the bound ago (`now_ns`, wall clock), keeps only the latest
    /// tick of each symbol, in place (control frames keep theirs, so no
    /// tick moves past an unsubscribe's ack), with a `gap` notice before
    /// each kept tick for the ones it replaced. Returns how many it removed.
    fn conflate_stale(&mut self, now_ns: u64) -> u64 {
        let Some(max_age) = self.max_age_ns else {
            return 0;
        };
        if now_ns < self.next_age_check_ns {
            return 0;
        }
        let oldest = self
            .queue
            .iter()
            .find(|q| matches!(q.kind, Kind::Tick(_)) && q.enqueued_ns != 0);
        if oldest.is_none_or(|q| now_ns.saturating_sub(q.enqueued_ns) <= max_age) {
            return 0;
        }
        self.next_age_check_ns = now_ns + max_age / 4;
        // The latest of each symbol is its last in the queue, or its held
        // frame when it has one.
        let mut seen: HashSet<SymbolId> = self.held_slot.keys().copied().collect();
        let keep: Vec<bool> = self
            .queue
            .iter()
            .rev()
            .map(|q| match q.kind {
                Kind::Tick(sym) => seen.insert(sym),
                _ => true,
            })
            .collect();
        let mut skipped: HashMap<SymbolId, (String, Skips)> = HashMap::new();
        let mut kept = VecDeque::with_capacity(self.queue.len().min(1024));
        let mut removed = 0;
        for (q, keep) in self.queue.drain(..).zip(keep.into_iter().rev()) {
            match q.kind {
                Kind::Tick(sym) if !keep => {
                    removed += 1;
                    self.bytes -= q.frame.len();
                    if let Some((name, seq)) = frame::tick_id(&q.frame) {
                        skipped
                            .entry(sym)
                            .or_insert((name, Skips::default()))
                            .1
                            .add(seq);
                    }
                }
                Kind::Tick(sym) => {
                    // Owed, not queued: the notice goes out when this tick
                    // is taken, and a later compaction only extends it (a
                    // queued notice per compaction grew a slow `*`
                    // reader's queue without bound: the two-minute soak's
                    // RSS went from 10 to 88 MB).
                    if let Some((name, skips)) = skipped.remove(&sym) {
                        let owed = self.owed.entry(sym).or_insert_with(|| Owed::new(name));
                        owed.conflated.append(skips);
                    }
                    kept.push_back(q);
                }
                _ => kept.push_back(q),
            }
        }
        self.queue = kept;
        // The rest replaced by a held frame: its account starts with them.
        for (sym, (_, mut skips)) in skipped {
            if let Some(&slot) = self.held_slot.get(&sym) {
                let held = &mut self.held[slot];
                skips.append(std::mem::take(&mut held.skips));
                held.skips = skips;
            }
        }
        removed
    }

    /// Moves queued frames into `into` (up to about `max_bytes`), queue first,
    /// then the conflated ones once the queue is empty, each after the
    /// notice of the ticks it replaced.
    fn take_queued(&mut self, into: &mut Vec<Queued>, max_bytes: usize) -> Take {
        if self.is_empty() {
            return Take::Empty;
        }
        let mut taken = 0;
        while taken < max_bytes {
            let Some(q) = self.queue.pop_front() else {
                break;
            };
            taken += q.frame.len();
            if let (Kind::Tick(sym), false) = (q.kind, self.owed.is_empty()) {
                self.tell_owed(sym, &q.frame, into);
            }
            into.push(q);
        }
        self.bytes -= taken;
        if self.queue.is_empty() && taken < max_bytes {
            self.held_slot.clear();
            for held in std::mem::take(&mut self.held) {
                self.bytes -= held.q.frame.len();
                if let (Kind::Tick(sym), false) = (held.q.kind, self.owed.is_empty()) {
                    self.tell_owed(sym, &held.q.frame, into);
                }
                if let (false, Some((name, _))) =
                    (held.skips.is_empty(), frame::tick_id(&held.q.frame))
                {
                    for notice in held.skips.notices(&name, GapReason::Conflated) {
                        into.push(Queued::control(notice, Kind::Notice));
                    }
                }
                into.push(held.q);
            }
        }
        if self.closing && self.is_empty() {
            Take::Last
        } else {
            Take::Frames
        }
    }

    /// How long the outbox has been over its limit, if it is.
    pub fn over_limit_for(&self, now: Instant) -> Option<Duration> {
        self.over_since
            .map(|since| now.saturating_duration_since(since))
    }

    /// Bytes waiting (queue and conflation table).
    pub fn queued_bytes(&self) -> usize {
        self.bytes
    }

    /// Whether a close has been asked for.
    pub fn is_closing(&self) -> bool {
        self.closing || self.graceful_close.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::window::Frame;

    fn tick(byte: u8, len: usize) -> Bytes {
        Bytes::from(vec![byte; len])
    }

    /// A window of ticks `(symbol, first byte)` of 100 bytes; returns it and
    /// their positions.
    fn window(ticks: &[(SymbolId, u8)]) -> (Window, Vec<u32>) {
        let mut w = Window::default();
        let at = ticks
            .iter()
            .map(|&(sym, byte)| {
                w.push(Frame {
                    bytes: tick(byte, 100),
                    kind: Kind::Tick(sym),
                    enqueued_ns: 1,
                })
            })
            .collect();
        (w, at)
    }

    /// The first bytes of the frames in a batch, queued ones first.
    fn firsts(batch: &Batch, window: &Window) -> Vec<u8> {
        let queued = batch.queued.iter().map(|q| q.frame[0]);
        let fresh = batch.fresh.iter().map(|&at| window.get(at).bytes[0]);
        queued.chain(fresh).collect()
    }

    fn drain(outbox: &mut Outbox) -> (Vec<u8>, Take) {
        let mut batch = Batch::default();
        let empty = Window::default();
        let got = outbox.collect(&[], &empty, false, &mut batch, usize::MAX, Instant::now());
        (firsts(&batch, &empty), got.take)
    }

    #[test]
    fn under_the_limit_everything_is_queued_in_order() {
        let mut ob = Outbox::new(1_000, SlowConsumerPolicy::Conflate);
        assert_eq!(ob.push_tick(0, &tick(1, 100), 1), Pushed::Queued);
        assert_eq!(ob.push_tick(1, &tick(2, 100), 1), Pushed::Queued);
        assert_eq!(ob.queued_bytes(), 200);
        assert_eq!(drain(&mut ob), (vec![1, 2], Take::Frames));
        assert_eq!(ob.queued_bytes(), 0);
        assert_eq!(drain(&mut ob).1, Take::Empty);
    }

    #[test]
    fn conflation_keeps_queued_frames_then_the_latest_per_symbol() {
        let mut ob = Outbox::new(250, SlowConsumerPolicy::Conflate);
        ob.push_tick(0, &tick(1, 100), 1); // A seq1
        ob.push_tick(1, &tick(2, 100), 1); // B seq1
        assert_eq!(ob.push_tick(0, &tick(3, 100), 1), Pushed::Held); // A seq2, over the limit
        assert_eq!(ob.push_tick(1, &tick(4, 100), 1), Pushed::Held); // B seq2
        assert_eq!(ob.push_tick(0, &tick(5, 100), 1), Pushed::Conflated); // A seq3 replaces seq2
        assert!(ob.over_limit_for(Instant::now()).is_some());
        assert_eq!(ob.counters.conflated, 1);
        assert_eq!(drain(&mut ob), (vec![1, 2, 5, 4], Take::Frames));
        assert_eq!(ob.over_limit_for(Instant::now()), None);
        // Back to normal queueing.
        assert_eq!(ob.push_tick(0, &tick(6, 100), 1), Pushed::Queued);
    }

    #[test]
    fn conflation_memory_is_bounded_by_symbols() {
        let mut ob = Outbox::new(1_000, SlowConsumerPolicy::Conflate);
        for i in 0..100_000u32 {
            ob.push_tick(i % 10, &tick(0, 100), 1);
        }
        assert!(ob.queued_bytes() <= 1_000 + 10 * 100);
    }

    #[test]
    fn drop_policy_discards_past_the_limit() {
        let mut ob = Outbox::new(150, SlowConsumerPolicy::Drop);
        ob.push_tick(0, &tick(1, 100), 1);
        assert_eq!(ob.push_tick(0, &tick(2, 100), 1), Pushed::Dropped);
        assert_eq!(ob.counters.dropped, 1);
        assert_eq!(drain(&mut ob).0, vec![1]);
    }

    #[test]
    fn disconnect_policy_replaces_the_backlog_with_a_close_frame() {
        let mut ob = Outbox::new(150, SlowConsumerPolicy::Disconnect);
        ob.push_tick(0, &tick(1, 100), 1);
        assert_eq!(ob.push_tick(0, &tick(2, 100), 1), Pushed::Disconnected);
        assert_eq!(ob.push_tick(0, &tick(3, 100), 1), Pushed::Closed);
        let (frames, take) = drain(&mut ob);
        assert_eq!(frames, vec![0x88]);
        assert_eq!(take, Take::Last);
    }

    #[test]
    fn graceful_close_flushes_queued_and_pending_frames_first() {
        let mut ob = Outbox::new(1_000, SlowConsumerPolicy::Conflate);
        ob.push_tick(0, &tick(1, 10), 1);
        let close = frame::close(close_code::GOING_AWAY, "shutdown");
        assert!(ob.close(close.clone(), false));
        assert!(!ob.close(close, false));
        assert!(!ob.push_control(tick(9, 1)));
        let (w, at) = window(&[(0, 2)]);
        let mut batch = Batch::default();
        let got = ob.collect(&at, &w, false, &mut batch, usize::MAX, Instant::now());
        assert_eq!(firsts(&batch, &w), vec![1, 2, 0x88]);
        assert_eq!(got.take, Take::Last);
    }

    #[test]
    fn a_reply_pending_when_a_graceful_close_arrives_goes_out_before_it() {
        // An error reply and then a close (an expired token): the reply is
        // pending when the writer takes both in one pass.
        let mut ob = Outbox::new(1_000, SlowConsumerPolicy::Conflate);
        let mut w = Window::default();
        let at = w.push(Frame {
            bytes: tick(7, 20),
            kind: Kind::Reply,
            enqueued_ns: 0,
        });
        assert!(ob.close(frame::close(4001, "token expired"), false));
        let mut batch = Batch::default();
        let got = ob.collect(&[at], &w, false, &mut batch, usize::MAX, Instant::now());
        assert_eq!(firsts(&batch, &w), vec![7]);
        assert!(got.more, "the close is next");
        let (frames, take) = drain(&mut ob);
        assert_eq!((frames, take), (vec![0x88], Take::Last));
    }

    #[test]
    fn take_respects_the_batch_size() {
        let mut ob = Outbox::new(10_000, SlowConsumerPolicy::Conflate);
        for i in 0..10 {
            ob.push_tick(0, &tick(i, 100), 1);
        }
        let mut batch = Batch::default();
        let got = ob.collect(
            &[],
            &Window::default(),
            false,
            &mut batch,
            250,
            Instant::now(),
        );
        assert_eq!((got.take, got.more), (Take::Frames, true));
        assert_eq!(batch.len(), 3);
        assert_eq!(ob.queued_bytes(), 700);
    }

    #[test]
    fn pending_frames_go_straight_into_the_batch_and_the_rest_queues() {
        let mut ob = Outbox::new(10_000, SlowConsumerPolicy::Conflate);
        let (w, at) = window(&[(0, 1), (2, 3), (0, 4), (2, 5)]);
        let mut batch = Batch::default();
        let got = ob.collect(&at, &w, false, &mut batch, 250, Instant::now());
        // 250 bytes take the first two; the rest is queued.
        assert_eq!(firsts(&batch, &w), vec![1, 3]);
        assert!(batch.queued.is_empty(), "nothing was queued ahead");
        assert_eq!((got.take, got.more), (Take::Frames, true));
        assert_eq!(drain(&mut ob).0, vec![4, 5]);
    }

    #[test]
    fn control_frames_keep_their_place_and_bypass_the_limit() {
        let mut ob = Outbox::new(150, SlowConsumerPolicy::Conflate);
        let mut w = Window::default();
        let first = w.push(Frame {
            bytes: tick(1, 100),
            kind: Kind::Tick(0),
            enqueued_ns: 1,
        });
        let ack = w.push(Frame {
            bytes: tick(7, 100),
            kind: Kind::Reply,
            enqueued_ns: 0,
        });
        let mut batch = Batch::default();
        let got = ob.collect(
            &[first, ack],
            &w,
            true,
            &mut batch,
            usize::MAX,
            Instant::now(),
        );
        assert!(batch.is_empty());
        assert!(got.more);
        assert_eq!(ob.queued_bytes(), 200, "the ack was queued past the limit");
        assert_eq!(drain(&mut ob).0, vec![1, 7]);
    }

    #[test]
    fn a_blocked_socket_gets_nothing_new_and_its_ticks_conflate_past_the_limit() {
        let mut ob = Outbox::new(250, SlowConsumerPolicy::Conflate);
        let (w, at) = window(&[(0, 1), (1, 2), (0, 3), (0, 4)]);
        let mut batch = Batch::default();
        let got = ob.collect(&at, &w, true, &mut batch, usize::MAX, Instant::now());
        assert!(batch.is_empty());
        assert_eq!((got.take, got.more, got.conflated), (Take::Empty, true, 1));
        assert!(ob.over_limit_for(Instant::now()).is_some());
        assert_eq!(drain(&mut ob).0, vec![1, 2, 4]);
    }

    /// A real tick frame of symbol "A".
    fn real_tick(seq: u64) -> Bytes {
        let mut t = tickcast_protocol::Tick::example();
        t.sym = "A".into();
        t.seq = seq;
        frame::binary(&t.to_vec())
    }

    #[test]
    fn a_capped_slow_reader_under_the_age_bound_is_told_each_skip_once_and_in_order() {
        use tickcast_protocol::control::{decode_server_frame, Incoming};
        use tickcast_protocol::ServerMessage;
        let t0 = Instant::now();
        // Every check conflates (a 1 ns bound, ticks published at 1 ns).
        let mut ob = Outbox::new(1 << 20, SlowConsumerPolicy::Conflate)
            .with_max_age(Some(Duration::from_nanos(1)));
        let cap = PaceChange {
            syms: vec![0],
            wildcard: false,
            every: Some(Duration::from_millis(10)),
            forget: false,
        };
        ob.pace(&cap, t0);
        let mut seq = 0;
        let mut batch = Batch::default();
        // A blocked socket for 50 slots of the cap, 3 ticks in each: the
        // releases and the compactions pile up behind it.
        for step in 0..50u32 {
            let mut w = Window::default();
            let at: Vec<u32> = (0..3)
                .map(|_| {
                    seq += 1;
                    w.push(Frame {
                        bytes: real_tick(seq),
                        kind: Kind::Tick(0),
                        enqueued_ns: 1,
                    })
                })
                .collect();
            let now = t0 + Duration::from_millis(10) * step;
            ob.collect(&at, &w, true, &mut batch, usize::MAX, now);
            let notices = ob.queue.iter().filter(|q| q.kind == Kind::Notice).count();
            let ticks = ob
                .queue
                .iter()
                .filter(|q| matches!(q.kind, Kind::Tick(_)))
                .count();
            assert!(
                notices <= ticks,
                "step {step}: {notices} notices queued for {ticks} ticks"
            );
        }
        // The reader catches up, after the cap's last slot.
        let empty = Window::default();
        let later = t0 + Duration::from_secs(1);
        ob.collect(&[], &empty, false, &mut batch, usize::MAX, later);
        let mut told = Vec::new();
        let mut last_tick = 0;
        for q in &batch.queued {
            match decode_server_frame(frame::payload(&q.frame)) {
                Ok(Incoming::Tick(t)) => {
                    assert!(
                        told.iter().all(|&s| s < t.seq),
                        "a notice named a later seq"
                    );
                    told.push(t.seq);
                    last_tick = t.seq;
                }
                Ok(Incoming::Control(ServerMessage::Gap { from, to, .. })) => {
                    assert!(
                        from > last_tick,
                        "a notice for seqs before a tick already sent"
                    );
                    told.extend(from..=to);
                }
                other => panic!("unexpected frame {other:?}"),
            }
        }
        told.sort_unstable();
        assert_eq!(told, (1..=seq).collect::<Vec<_>>(), "every seq once");
    }
}
