//! The per-connection outbox: what a connection wants from the published
//! stream, and the queue, bounded in bytes, of what it could not be sent yet,
//! with the slow-consumer policies applied at the bound.
//!
//! The hub does not push ticks into outboxes: it publishes each tick once to
//! its writer shards and marks the subscribers (see `hub.rs`). A writer shard
//! visits each marked connection and calls [`Outbox::collect`], which picks
//! the ticks this connection wants (its [`Interest`]) out of the shard's
//! freshly published ones. When the queue is empty and the socket is
//! keeping up, they go straight into the write batch, never into the queue;
//! otherwise they are queued behind what is waiting, and past
//! [`Limits::outbox_bytes`](crate::config::Limits) one of three policies
//! applies:
//!
//! - **conflate** (default): further ticks go into a side table holding only
//!   the latest frame per symbol. Ticks carry the full state of their symbol,
//!   so a client that skips some still holds a consistent view; it sees the
//!   skipped ones as `seq` gaps. Everything already queued is sent first, so
//!   per-symbol order is kept.
//! - **drop**: further ticks are discarded until the writer catches up.
//! - **disconnect**: the connection is closed at once with 1008.
//!
//! Memory is bounded in every case: at most the byte limit in the queue plus
//! one frame per symbol in the conflation table. A connection that stays over
//! the limit for longer than the slow timeout is closed by the sweeper
//! (`connections.rs`).
//!
//! Why this shape: with a queue per connection filled by the hub, every
//! delivery took the outbox's lock from the hub's loop, one cache miss per
//! subscriber per tick (a profile at 1,000 subscribers put 11 % of the
//! broker's CPU on that one instruction). Collecting on the writer's side
//! touches each connection once per write instead, with its state hot.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::config::SlowConsumerPolicy;
use crate::fanout::frame::{self, close_code};
use crate::fanout::hub::{Published, SymbolId};

/// One frame waiting to be written, with the time it was queued (for the
/// enqueue → write latency stage).
#[derive(Debug, Clone)]
pub struct Queued {
    /// The complete WebSocket frame.
    pub frame: Bytes,
    /// When the hub queued it, ns since the epoch (0 for control frames,
    /// which are not measured).
    pub enqueued_ns: u64,
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

/// Per-connection counters, read by `/connections` and `/metrics`.
#[derive(Debug, Default)]
pub struct OutboxCounters {
    /// Frames written to the socket.
    pub delivered: AtomicU64,
    /// Ticks replaced by a newer tick of the same symbol.
    pub conflated: AtomicU64,
    /// Ticks discarded under the drop policy.
    pub dropped: AtomicU64,
}

/// Which published ticks a connection wants: the hub keeps it in step with
/// the subscription, the writer tests every fresh tick against it.
///
/// A symbol subscribed to while older ticks of it were still on their way
/// to the writer is held only from the position of its snapshot on (its
/// `since` entry), so the client gets the snapshot and then newer ticks,
/// never an older one after the snapshot.
#[derive(Debug, Default)]
pub struct Interest {
    /// One bit per held symbol id.
    held: Vec<u64>,
    /// Symbols held only from a publication position on.
    since: Vec<(SymbolId, u64)>,
    /// On `*` from this position on.
    all_since: Option<u64>,
}

impl Interest {
    /// Holds `sym` from publication position `since` on.
    pub fn add(&mut self, sym: SymbolId, since: u64) {
        let (word, bit) = (sym as usize / 64, sym % 64);
        if self.held.len() <= word {
            self.held.resize(word + 1, 0);
        }
        self.held[word] |= 1 << bit;
        self.since.retain(|(s, _)| *s != sym);
        self.since.push((sym, since));
    }

    /// Stops holding `sym`.
    pub fn remove(&mut self, sym: SymbolId) {
        if let Some(word) = self.held.get_mut(sym as usize / 64) {
            *word &= !(1 << (sym % 64));
        }
        self.since.retain(|(s, _)| *s != sym);
    }

    /// Everything from position `since` on (`*`), or `None` to stop.
    pub fn set_all(&mut self, since: Option<u64>) {
        self.all_since = since;
    }

    /// Whether the tick of `sym` published at `pos` is wanted.
    #[inline]
    pub fn wants(&self, sym: SymbolId, pos: u64) -> bool {
        if self.all_since.is_some_and(|since| pos >= since) {
            return true;
        }
        let held = self
            .held
            .get(sym as usize / 64)
            .is_some_and(|word| word & (1 << (sym % 64)) != 0);
        held && self
            .since
            .iter()
            .all(|&(s, since)| s != sym || pos >= since)
    }

    /// Forgets `since` entries that no tick still on its way can fail:
    /// everything from `pos` on was published after them.
    fn settle(&mut self, pos: u64) {
        if !self.since.is_empty() {
            self.since.retain(|&(_, since)| since > pos);
        }
    }
}

#[derive(Default)]
struct State {
    interest: Interest,
    /// The publication position up to which ticks have been collected: a
    /// writer may offer the same tick twice (its window overlaps passes).
    collected_to: u64,
    queue: VecDeque<Queued>,
    /// Conflated frames in first-seen order, and where each symbol's is.
    held: Vec<Queued>,
    held_slot: HashMap<SymbolId, usize>,
    /// Bytes in `queue` and `held`.
    bytes: usize,
    /// Since when the outbox has been over its limit without the writer
    /// catching up.
    over_since: Option<Instant>,
    /// A close frame to queue once the ticks already published are in:
    /// a graceful close (shutdown) flushes first.
    graceful_close: Option<Bytes>,
    /// A close frame is queued as the last frame; nothing is accepted after.
    closing: bool,
}

impl State {
    fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.held.is_empty()
    }

    fn clear(&mut self) {
        self.queue.clear();
        self.held.clear();
        self.held_slot.clear();
        self.bytes = 0;
    }
}

/// A connection's outbox. Shared (`Arc`) between the hub (interest,
/// replies, snapshots), the connection's reader (replies) and its writer
/// shard.
pub struct Outbox {
    state: Mutex<State>,
    limit: usize,
    policy: SlowConsumerPolicy,
    /// Counters for this connection.
    pub counters: OutboxCounters,
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
/// are older), then fresh ticks taken straight from the shard's published
/// list, by index, without being queued.
#[derive(Debug, Default)]
pub struct Batch {
    /// Frames taken from the queue.
    pub queued: Vec<Queued>,
    /// Indices into the published slice given to [`Outbox::collect`].
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
    /// Ticks conflated, dropped, and whether the disconnect policy fired.
    pub conflated: u64,
    /// Ticks dropped.
    pub dropped: u64,
    /// The disconnect policy closed the connection.
    pub disconnected: bool,
}

impl Outbox {
    /// An empty outbox with a byte limit and a slow-consumer policy.
    pub fn new(limit: usize, policy: SlowConsumerPolicy) -> Self {
        Self {
            state: Mutex::new(State::default()),
            limit,
            policy,
            counters: OutboxCounters::default(),
        }
    }

    /// Changes what the connection wants (the hub calls this under its own
    /// lock, so the change falls between two publications).
    pub fn update_interest(&self, change: impl FnOnce(&mut Interest)) {
        change(&mut self.state.lock().interest);
    }

    /// Queues a tick frame of `sym` (a snapshot), applying the slow-consumer
    /// policy. Never blocks beyond the outbox's own short lock.
    pub fn push_tick(&self, sym: SymbolId, frame: &Bytes, enqueued_ns: u64) -> Pushed {
        self.push_locked(&mut self.state.lock(), sym, frame, enqueued_ns)
    }

    fn push_locked(
        &self,
        st: &mut State,
        sym: SymbolId,
        frame: &Bytes,
        enqueued_ns: u64,
    ) -> Pushed {
        if st.closing {
            return Pushed::Closed;
        }
        let entry = Queued {
            frame: frame.clone(),
            enqueued_ns,
        };
        let conflating = !st.held.is_empty();
        if conflating || st.bytes + frame.len() > self.limit {
            if st.over_since.is_none() {
                st.over_since = Some(Instant::now());
            }
            match self.policy {
                SlowConsumerPolicy::Conflate => return self.hold(st, sym, entry),
                SlowConsumerPolicy::Drop => {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    return Pushed::Dropped;
                }
                SlowConsumerPolicy::Disconnect => {
                    let close = frame::close(close_code::POLICY, "slow consumer");
                    Self::close_locked(st, close, true);
                    return Pushed::Disconnected;
                }
            }
        }
        st.bytes += frame.len();
        st.queue.push_back(entry);
        Pushed::Queued
    }

    fn hold(&self, st: &mut State, sym: SymbolId, entry: Queued) -> Pushed {
        let len = entry.frame.len();
        match st.held_slot.get(&sym) {
            Some(&slot) => {
                let old = std::mem::replace(&mut st.held[slot], entry);
                st.bytes = st.bytes - old.frame.len() + len;
                self.counters.conflated.fetch_add(1, Ordering::Relaxed);
                Pushed::Conflated
            }
            None => {
                st.held_slot.insert(sym, st.held.len());
                st.held.push(entry);
                st.bytes += len;
                Pushed::Held
            }
        }
    }

    /// Queues a control frame (reply, pong, ping). Control frames are small
    /// and rare, so they bypass the limit. Returns whether it was accepted
    /// (not after a close).
    pub fn push_control(&self, frame: Bytes) -> bool {
        let mut st = self.state.lock();
        if st.closing || st.graceful_close.is_some() {
            return false;
        }
        st.bytes += frame.len();
        st.queue.push_back(Queued {
            frame,
            enqueued_ns: 0,
        });
        true
    }

    /// Queues a close frame as the last frame. With `discard`, everything
    /// still queued is dropped first (slow consumer, protocol error); without
    /// it, queued data and the ticks already published are flushed before
    /// the close (shutdown). Returns whether this call started the close
    /// (false if one was already under way).
    pub fn close(&self, code: u16, reason: &str, discard: bool) -> bool {
        let mut st = self.state.lock();
        if st.closing || st.graceful_close.is_some() {
            return false;
        }
        let close = frame::close(code, reason);
        if discard {
            Self::close_locked(&mut st, close, true);
        } else {
            st.graceful_close = Some(close);
        }
        true
    }

    fn close_locked(st: &mut State, close: Bytes, discard: bool) {
        if discard {
            st.clear();
        }
        st.bytes += close.len();
        st.queue.push_back(Queued {
            frame: close,
            enqueued_ns: 0,
        });
        st.closing = true;
    }

    /// The writer's one call per visit: picks the ticks this connection
    /// wants out of `published` (a shard's recent ticks, in publication
    /// order; those offered before are skipped) and fills `batch` with up
    /// to about `max_bytes` to write now.
    ///
    /// With nothing queued and the socket keeping up, wanted ticks go
    /// straight into the batch (by index); otherwise they are queued behind
    /// what waits, under the slow-consumer policy, and the batch is taken
    /// from the queue. A `blocked` socket (the last batch is not all out)
    /// gets nothing new: its ticks only queue, and the policy decides.
    pub fn collect(
        &self,
        published: &[Published],
        blocked: bool,
        batch: &mut Batch,
        max_bytes: usize,
    ) -> Collected {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let mut out = Collected {
            take: Take::Empty,
            more: false,
            conflated: 0,
            dropped: 0,
            disconnected: false,
        };
        let start = published.partition_point(|p| p.pos < st.collected_to);
        if let Some(last) = published.last() {
            st.collected_to = st.collected_to.max(last.pos + 1);
        }
        if let Some(first) = published.get(start) {
            st.interest.settle(first.pos);
        }
        let mut direct = !blocked && st.is_empty() && !st.closing && st.graceful_close.is_none();
        let mut direct_bytes = 0;
        for (i, p) in published.iter().enumerate().skip(start) {
            if !st.interest.wants(p.sym, p.pos) {
                continue;
            }
            let len = p.frame.len();
            if direct && (direct_bytes == 0 || direct_bytes + len <= max_bytes) {
                direct_bytes += len;
                batch.fresh.push(i as u32);
                continue;
            }
            direct = false;
            match self.push_locked(st, p.sym, &p.frame, p.enqueued_ns) {
                Pushed::Conflated => out.conflated += 1,
                Pushed::Dropped => out.dropped += 1,
                Pushed::Disconnected => out.disconnected = true,
                Pushed::Queued | Pushed::Held | Pushed::Closed => {}
            }
        }
        if let Some(close) = st.graceful_close.take() {
            Self::close_locked(st, close, false);
        }
        if !batch.fresh.is_empty() {
            out.take = Take::Frames;
        } else if !blocked {
            out.take = Self::take_locked(st, &mut batch.queued, max_bytes);
        }
        if !blocked && st.bytes <= self.limit && st.held.is_empty() {
            st.over_since = None;
        }
        out.more = !st.is_empty();
        out
    }

    /// Moves queued frames into `into` (up to about `max_bytes`), queue first,
    /// then the conflated ones once the queue is empty.
    fn take_locked(st: &mut State, into: &mut Vec<Queued>, max_bytes: usize) -> Take {
        if st.is_empty() {
            return Take::Empty;
        }
        let mut taken = 0;
        while taken < max_bytes {
            let Some(q) = st.queue.pop_front() else { break };
            taken += q.frame.len();
            into.push(q);
        }
        if st.queue.is_empty() && taken < max_bytes {
            st.held_slot.clear();
            for q in st.held.drain(..) {
                taken += q.frame.len();
                into.push(q);
            }
        }
        st.bytes -= taken;
        if st.closing && st.is_empty() {
            Take::Last
        } else {
            Take::Frames
        }
    }

    /// How long the outbox has been over its limit, if it is.
    pub fn over_limit_for(&self, now: Instant) -> Option<Duration> {
        self.state
            .lock()
            .over_since
            .map(|since| now.saturating_duration_since(since))
    }

    /// Bytes waiting (queue and conflation table).
    pub fn queued_bytes(&self) -> usize {
        self.state.lock().bytes
    }

    /// Whether a close has been asked for.
    pub fn is_closing(&self) -> bool {
        let st = self.state.lock();
        st.closing || st.graceful_close.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(byte: u8, len: usize) -> Bytes {
        Bytes::from(vec![byte; len])
    }

    /// Published ticks `(symbol, first byte)` of 100 bytes, at positions
    /// `from`, `from + 1`, …
    fn published(from: u64, ticks: &[(SymbolId, u8)]) -> Vec<Published> {
        ticks
            .iter()
            .enumerate()
            .map(|(i, &(sym, byte))| Published {
                pos: from + i as u64,
                sym,
                frame: tick(byte, 100),
                enqueued_ns: 1,
            })
            .collect()
    }

    /// The first bytes of the frames in a batch, queued ones first.
    fn firsts(batch: &Batch, published: &[Published]) -> Vec<u8> {
        let queued = batch.queued.iter().map(|q| q.frame[0]);
        let fresh = batch.fresh.iter().map(|&i| published[i as usize].frame[0]);
        queued.chain(fresh).collect()
    }

    fn drain(outbox: &Outbox) -> (Vec<u8>, Take) {
        let mut batch = Batch::default();
        let got = outbox.collect(&[], false, &mut batch, usize::MAX);
        (firsts(&batch, &[]), got.take)
    }

    #[test]
    fn under_the_limit_everything_is_queued_in_order() {
        let ob = Outbox::new(1_000, SlowConsumerPolicy::Conflate);
        assert_eq!(ob.push_tick(0, &tick(1, 100), 1), Pushed::Queued);
        assert_eq!(ob.push_tick(1, &tick(2, 100), 1), Pushed::Queued);
        assert_eq!(ob.queued_bytes(), 200);
        assert_eq!(drain(&ob), (vec![1, 2], Take::Frames));
        assert_eq!(ob.queued_bytes(), 0);
        assert_eq!(drain(&ob).1, Take::Empty);
    }

    #[test]
    fn conflation_keeps_queued_frames_then_the_latest_per_symbol() {
        let ob = Outbox::new(250, SlowConsumerPolicy::Conflate);
        ob.push_tick(0, &tick(1, 100), 1); // A seq1
        ob.push_tick(1, &tick(2, 100), 1); // B seq1
        assert_eq!(ob.push_tick(0, &tick(3, 100), 1), Pushed::Held); // A seq2, over the limit
        assert_eq!(ob.push_tick(1, &tick(4, 100), 1), Pushed::Held); // B seq2
        assert_eq!(ob.push_tick(0, &tick(5, 100), 1), Pushed::Conflated); // A seq3 replaces seq2
        assert!(ob.over_limit_for(Instant::now()).is_some());
        assert_eq!(ob.counters.conflated.load(Ordering::Relaxed), 1);
        assert_eq!(drain(&ob), (vec![1, 2, 5, 4], Take::Frames));
        assert_eq!(ob.over_limit_for(Instant::now()), None);
        // Back to normal queueing.
        assert_eq!(ob.push_tick(0, &tick(6, 100), 1), Pushed::Queued);
    }

    #[test]
    fn conflation_memory_is_bounded_by_symbols() {
        let ob = Outbox::new(1_000, SlowConsumerPolicy::Conflate);
        for i in 0..100_000u32 {
            ob.push_tick(i % 10, &tick(0, 100), 1);
        }
        assert!(ob.queued_bytes() <= 1_000 + 10 * 100);
    }

    #[test]
    fn drop_policy_discards_past_the_limit() {
        let ob = Outbox::new(150, SlowConsumerPolicy::Drop);
        ob.push_tick(0, &tick(1, 100), 1);
        assert_eq!(ob.push_tick(0, &tick(2, 100), 1), Pushed::Dropped);
        assert_eq!(ob.counters.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(drain(&ob).0, vec![1]);
    }

    #[test]
    fn disconnect_policy_replaces_the_backlog_with_a_close_frame() {
        let ob = Outbox::new(150, SlowConsumerPolicy::Disconnect);
        ob.push_tick(0, &tick(1, 100), 1);
        assert_eq!(ob.push_tick(0, &tick(2, 100), 1), Pushed::Disconnected);
        assert_eq!(ob.push_tick(0, &tick(3, 100), 1), Pushed::Closed);
        let (frames, take) = drain(&ob);
        assert_eq!(frames, vec![0x88]);
        assert_eq!(take, Take::Last);
    }

    #[test]
    fn graceful_close_flushes_queued_data_and_published_ticks_first() {
        let ob = Outbox::new(1_000, SlowConsumerPolicy::Conflate);
        ob.update_interest(|i| i.add(0, 0));
        ob.push_tick(0, &tick(1, 10), 1);
        assert!(ob.close(close_code::GOING_AWAY, "shutdown", false));
        assert!(!ob.close(close_code::GOING_AWAY, "again", false));
        assert!(!ob.push_control(tick(9, 1)));
        let fresh = published(0, &[(0, 2)]);
        let mut batch = Batch::default();
        let got = ob.collect(&fresh, false, &mut batch, usize::MAX);
        assert_eq!(firsts(&batch, &fresh), vec![1, 2, 0x88]);
        assert_eq!(got.take, Take::Last);
    }

    #[test]
    fn take_respects_the_batch_size() {
        let ob = Outbox::new(10_000, SlowConsumerPolicy::Conflate);
        for i in 0..10 {
            ob.push_tick(0, &tick(i, 100), 1);
        }
        let mut batch = Batch::default();
        let got = ob.collect(&[], false, &mut batch, 250);
        assert_eq!((got.take, got.more), (Take::Frames, true));
        assert_eq!(batch.len(), 3);
        assert_eq!(ob.queued_bytes(), 700);
    }

    #[test]
    fn wanted_ticks_go_straight_into_the_batch_and_the_rest_queues() {
        let ob = Outbox::new(10_000, SlowConsumerPolicy::Conflate);
        ob.update_interest(|i| {
            i.add(0, 0);
            i.add(2, 0);
        });
        let fresh = published(0, &[(0, 1), (1, 2), (2, 3), (0, 4), (2, 5)]);
        let mut batch = Batch::default();
        let got = ob.collect(&fresh, false, &mut batch, 250);
        // Symbol 1 is not wanted; 250 bytes take the first two wanted ones;
        // the rest is queued.
        assert_eq!(firsts(&batch, &fresh), vec![1, 3]);
        assert!(batch.queued.is_empty(), "nothing was queued ahead");
        assert_eq!((got.take, got.more), (Take::Frames, true));
        assert_eq!(drain(&ob).0, vec![4, 5]);
    }

    #[test]
    fn a_symbol_subscribed_late_skips_ticks_published_before_its_snapshot() {
        let ob = Outbox::new(10_000, SlowConsumerPolicy::Conflate);
        ob.update_interest(|i| i.add(0, 0));
        // Subscribed to symbol 1 when positions 0..2 were already published.
        ob.update_interest(|i| i.add(1, 2));
        let fresh = published(0, &[(1, 1), (0, 2), (1, 3), (1, 4)]);
        let mut batch = Batch::default();
        ob.collect(&fresh, false, &mut batch, usize::MAX);
        assert_eq!(firsts(&batch, &fresh), vec![2, 3, 4]);
        // `*` from position 7 on: symbol 5 from there, nothing earlier.
        ob.update_interest(|i| i.set_all(Some(7)));
        let fresh = published(4, &[(5, 1), (5, 2), (5, 3), (5, 4)]);
        batch.clear();
        ob.collect(&fresh, false, &mut batch, usize::MAX);
        assert_eq!(firsts(&batch, &fresh), vec![4]);
        ob.update_interest(|i| {
            i.set_all(None);
            i.remove(0);
        });
        batch.clear();
        ob.collect(
            &published(8, &[(0, 1), (5, 2), (1, 3)]),
            false,
            &mut batch,
            usize::MAX,
        );
        assert_eq!(batch.fresh, vec![2]);
    }

    #[test]
    fn ticks_offered_again_are_collected_once() {
        let ob = Outbox::new(10_000, SlowConsumerPolicy::Conflate);
        ob.update_interest(|i| i.add(0, 0));
        let mut window = published(0, &[(0, 1), (0, 2)]);
        let mut batch = Batch::default();
        ob.collect(&window, false, &mut batch, usize::MAX);
        assert_eq!(firsts(&batch, &window), vec![1, 2]);
        // The writer's next window still holds both, and one more.
        window.extend(published(2, &[(0, 3)]));
        batch.clear();
        ob.collect(&window, false, &mut batch, usize::MAX);
        assert_eq!(firsts(&batch, &window), vec![3]);
    }

    #[test]
    fn a_blocked_socket_gets_nothing_new_and_its_ticks_conflate_past_the_limit() {
        let ob = Outbox::new(250, SlowConsumerPolicy::Conflate);
        ob.update_interest(|i| i.set_all(Some(0)));
        let fresh = published(0, &[(0, 1), (1, 2), (0, 3), (0, 4)]);
        let mut batch = Batch::default();
        let got = ob.collect(&fresh, true, &mut batch, usize::MAX);
        assert!(batch.is_empty());
        assert_eq!((got.take, got.more, got.conflated), (Take::Empty, true, 1));
        assert!(ob.over_limit_for(Instant::now()).is_some());
        assert_eq!(drain(&ob).0, vec![1, 2, 4]);
    }
}
