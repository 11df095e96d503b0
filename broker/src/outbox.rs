//! The per-connection outbox: a queue bounded in bytes, with the
//! slow-consumer policies applied at the bound.
//!
//! The hub pushes into it and never waits; the connection's writer task drains
//! it. Past [`Limits::outbox_bytes`](crate::config::Limits) one of three
//! policies applies:
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

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::config::SlowConsumerPolicy;
use crate::frame::{self, close_code};
use crate::hub::SymbolId;

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
    /// Queued behind others: the writer is already due to run.
    Queued,
    /// Queued into an empty outbox: the writer must be woken.
    Woke,
    /// Kept as the latest of its symbol, replacing an older one (conflation).
    Conflated,
    /// Kept as the first conflated frame of its symbol.
    Held,
    /// Discarded (drop policy).
    Dropped,
    /// Over the limit under the disconnect policy: the outbox is now closing
    /// and the writer must be woken to send the close frame.
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

#[derive(Default)]
struct State {
    queue: VecDeque<Queued>,
    /// Conflated frames in first-seen order, and where each symbol's is.
    held: Vec<Queued>,
    held_slot: HashMap<SymbolId, usize>,
    /// Bytes in `queue` and `held`.
    bytes: usize,
    /// Since when the outbox has been over its limit without the writer
    /// catching up.
    over_since: Option<Instant>,
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

/// A connection's bounded outbox. Shared (`Arc`) between the hub, the
/// connection's reader (replies) and its writer.
pub struct Outbox {
    state: Mutex<State>,
    wake: Notify,
    urgent: Notify,
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

impl Outbox {
    /// An empty outbox with a byte limit and a slow-consumer policy.
    pub fn new(limit: usize, policy: SlowConsumerPolicy) -> Self {
        Self {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            urgent: Notify::new(),
            limit,
            policy,
            counters: OutboxCounters::default(),
        }
    }

    /// Queues a tick frame of `sym`, applying the slow-consumer policy.
    /// Never blocks beyond the outbox's own short lock.
    pub fn push_tick(&self, sym: SymbolId, frame: &Bytes, enqueued_ns: u64) -> Pushed {
        let mut st = self.state.lock();
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
                SlowConsumerPolicy::Conflate => return self.hold(&mut st, sym, entry),
                SlowConsumerPolicy::Drop => {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    return Pushed::Dropped;
                }
                SlowConsumerPolicy::Disconnect => {
                    Self::close_locked(&mut st, close_code::POLICY, "slow consumer", true);
                    return Pushed::Disconnected;
                }
            }
        }
        // A writer pausing to coalesce (writer.rs) must write before a
        // healthy client is pushed into conflation: passing half the limit
        // ends its pause at once.
        let half = self.limit / 2;
        if st.bytes <= half && st.bytes + frame.len() > half {
            self.urgent.notify_one();
        }
        let woke = st.is_empty();
        st.bytes += frame.len();
        st.queue.push_back(entry);
        if woke {
            Pushed::Woke
        } else {
            Pushed::Queued
        }
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
                // The writer is woken whenever the outbox turns non-empty;
                // held frames only exist behind a non-empty queue or after
                // one, so no wake-up is needed here unless it was empty.
                let woke = st.is_empty();
                st.held_slot.insert(sym, st.held.len());
                st.held.push(entry);
                st.bytes += len;
                if woke {
                    Pushed::Woke
                } else {
                    Pushed::Held
                }
            }
        }
    }

    /// Queues a control frame (reply, pong, ping). Control frames are small
    /// and rare, so they bypass the limit. Returns whether to wake the writer.
    pub fn push_control(&self, frame: Bytes) -> bool {
        let mut st = self.state.lock();
        if st.closing {
            return false;
        }
        let woke = st.is_empty();
        st.bytes += frame.len();
        st.queue.push_back(Queued {
            frame,
            enqueued_ns: 0,
        });
        woke
    }

    /// Queues a close frame as the last frame. With `discard`, everything
    /// still queued is dropped first (slow consumer, protocol error); without
    /// it, queued data is flushed before the close (shutdown). Returns whether
    /// this call started the close (false if one was already under way).
    pub fn close(&self, code: u16, reason: &str, discard: bool) -> bool {
        let mut st = self.state.lock();
        if st.closing {
            return false;
        }
        Self::close_locked(&mut st, code, reason, discard);
        true
    }

    fn close_locked(st: &mut State, code: u16, reason: &str, discard: bool) {
        if discard {
            st.clear();
        }
        let close = frame::close(code, reason);
        st.bytes += close.len();
        st.queue.push_back(Queued {
            frame: close,
            enqueued_ns: 0,
        });
        st.closing = true;
    }

    /// Wakes the writer (after a push that asked for it).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Waits until something was pushed. A wake-up sent while the writer was
    /// busy is kept, so none is lost.
    pub async fn wait(&self) {
        self.wake.notified().await
    }

    /// Waits until the outbox passes half its limit (ends a coalescing pause).
    pub async fn wait_urgent(&self) {
        self.urgent.notified().await
    }

    /// Moves queued frames into `into` (up to about `max_bytes`), queue first,
    /// then the conflated ones once the queue is empty.
    pub fn take(&self, into: &mut Vec<Queued>, max_bytes: usize) -> Take {
        let mut st = self.state.lock();
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

    /// Tells the outbox a batch reached the socket: if the backlog is back
    /// under the limit, the connection is no longer considered slow.
    pub fn wrote(&self) {
        let mut st = self.state.lock();
        if st.bytes <= self.limit && st.held.is_empty() {
            st.over_since = None;
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

    /// Whether a close frame has been queued.
    pub fn is_closing(&self) -> bool {
        self.state.lock().closing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(byte: u8, len: usize) -> Bytes {
        Bytes::from(vec![byte; len])
    }

    fn drain(outbox: &Outbox) -> (Vec<u8>, Take) {
        let mut out = Vec::new();
        let take = outbox.take(&mut out, usize::MAX);
        (out.iter().map(|q| q.frame[0]).collect(), take)
    }

    #[test]
    fn under_the_limit_everything_is_queued_in_order_and_wakes_once() {
        let ob = Outbox::new(1_000, SlowConsumerPolicy::Conflate);
        assert_eq!(ob.push_tick(0, &tick(1, 100), 1), Pushed::Woke);
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
        ob.wrote();
        assert_eq!(ob.over_limit_for(Instant::now()), None);
        // Back to normal queueing.
        assert_eq!(ob.push_tick(0, &tick(6, 100), 1), Pushed::Woke);
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
    fn graceful_close_flushes_queued_data_first() {
        let ob = Outbox::new(1_000, SlowConsumerPolicy::Conflate);
        ob.push_tick(0, &tick(1, 10), 1);
        assert!(ob.close(close_code::GOING_AWAY, "shutdown", false));
        assert!(!ob.close(close_code::GOING_AWAY, "again", false));
        assert!(!ob.push_control(tick(9, 1)));
        assert_eq!(drain(&ob), (vec![1, 0x88], Take::Last));
    }

    #[tokio::test]
    async fn passing_half_the_limit_is_urgent() {
        let ob = Outbox::new(1_000, SlowConsumerPolicy::Conflate);
        assert_eq!(ob.push_tick(0, &tick(1, 300), 1), Pushed::Woke);
        assert_eq!(ob.push_tick(0, &tick(2, 150), 1), Pushed::Queued);
        let pending = tokio::time::timeout(Duration::from_millis(20), ob.wait_urgent()).await;
        assert!(pending.is_err(), "urgent before half the limit");
        assert_eq!(ob.push_tick(0, &tick(3, 100), 1), Pushed::Queued); // 450 -> 550
        let fired = tokio::time::timeout(Duration::from_millis(20), ob.wait_urgent()).await;
        assert!(fired.is_ok(), "no urgent wake past half the limit");
    }

    #[test]
    fn take_respects_the_batch_size() {
        let ob = Outbox::new(10_000, SlowConsumerPolicy::Conflate);
        for i in 0..10 {
            ob.push_tick(0, &tick(i, 100), 1);
        }
        let mut out = Vec::new();
        assert_eq!(ob.take(&mut out, 250), Take::Frames);
        assert_eq!(out.len(), 3);
        assert_eq!(ob.queued_bytes(), 700);
    }
}
