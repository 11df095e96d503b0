//! A writer shard's inbox: everything that happens to the shard's
//! connections, in one order.
//!
//! The hub appends each published tick (with the subscriber lists it was
//! published to), each subscription's ack and snapshot; a connection's
//! session appends its arrival, its replies, its close requests and its
//! departure. The shard's writer takes the whole list at the start of a
//! pass and applies it in order. One ordered list is what keeps the
//! writer's view of a connection consistent with no other bookkeeping: a
//! slot is attached before any tick can name it, its subscriptions are
//! dropped by the hub before its session appends the detach, so every
//! tick that names a slot reaches the writer while that slot still holds
//! the same connection, and a freed slot is reused only after the writer
//! has seen the detach.
//!
//! The inbox also hands out the shard's slots (a free list), since a slot
//! must be known before the session subscribes.
//!
//! Locking: one `parking_lot` mutex, held only to append or to take (never
//! across an await, never while taking another lock). The hub appends while
//! holding its own lock, which is what puts ticks and subscription changes
//! in publication order; the order is always hub, then inbox.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{oneshot, Notify};

use tickcast_protocol::control::GapReason;

use crate::fanout::connection::{Connection, ConnectionInfo};
use crate::fanout::frame;
use crate::fanout::gaps::Skips;
use crate::fanout::pace::PaceChange;
use crate::fanout::stream::WriteHalf;
use crate::fanout::subscriptions::Slots;
use crate::fanout::symbols::SymbolId;
use crate::fanout::window::Kind;

/// Deliveries a shard may have waiting before the inbox conflates its ticks
/// to the latest per symbol: only reached when the writer falls far behind
/// the feed (a starved process), and it keeps memory bounded then.
pub const MAX_WAITING: usize = 1 << 18;

/// One thing for a writer shard to do, in order.
#[derive(Debug)]
pub enum Item {
    /// A new connection in `slot`, with its socket's write half.
    Attach {
        /// Its slot (from [`Inbox::attach`]).
        slot: u32,
        /// What its session shares with the writer.
        conn: Arc<Connection>,
        /// The socket's write half, owned by the writer from here on.
        socket: WriteHalf,
    },
    /// A frame to deliver.
    Deliver(Delivery),
    /// Change one connection's rate caps (before the ack of the request
    /// that asked).
    Pace {
        /// The connection's slot.
        slot: u32,
        /// The change.
        change: PaceChange,
    },
    /// Close one connection: queue `frame` (a close frame) as its last.
    /// With `discard`, whatever is still queued is dropped first.
    Close {
        /// The connection's slot.
        slot: u32,
        /// The close frame.
        frame: Bytes,
        /// Drop queued frames first (errors) or flush them (shutdown).
        discard: bool,
    },
    /// Close every connection of the shard after what is queued.
    CloseAll {
        /// The close frame.
        frame: Bytes,
    },
    /// The connection in `slot` has left: drop its socket, free the slot.
    Detach {
        /// Its slot.
        slot: u32,
    },
    /// Send back one row per connection (`/connections`).
    Report(oneshot::Sender<Vec<ConnectionInfo>>),
}

/// A frame and whom it is for.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The complete WebSocket frame, shared by every recipient.
    pub frame: Bytes,
    /// What it is (a tick of a symbol, a reply, a notice).
    pub kind: Kind,
    /// When it was published, ns since the epoch (0: not measured).
    pub enqueued_ns: u64,
    /// Its recipients.
    pub to: Recipients,
}

/// The slots a delivery goes to.
#[derive(Debug, Clone)]
pub enum Recipients {
    /// A tick: its symbol's subscribers and those on `*`, as they were
    /// when it was published.
    Subscribers {
        /// The symbol's subscribers in this shard.
        symbol: Option<Slots>,
        /// This shard's subscribers on `*`.
        wildcard: Option<Slots>,
    },
    /// One connection (an ack, a snapshot, a reply).
    One(u32),
}

#[derive(Debug, Default)]
struct State {
    items: Vec<Item>,
    /// Bytes of the frames waiting.
    bytes: usize,
    /// The writer found nothing and waits to be woken.
    parked: bool,
    /// Slots free for reuse, and the next never used.
    free: Vec<u32>,
    next_slot: u32,
    /// Connections attached and not yet detached.
    live: usize,
}

/// A writer shard's inbox (see the module docs).
#[derive(Debug)]
pub struct Inbox {
    state: Mutex<State>,
    wake: Notify,
    /// Frame bytes waiting past which a pausing writer is woken: half an
    /// outbox, so a healthy client is written before the pause could push
    /// it into conflation.
    urgent_bytes: usize,
}

impl Inbox {
    /// An empty inbox that wakes a pausing writer once `urgent_bytes` of
    /// frames wait.
    pub fn new(urgent_bytes: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            urgent_bytes,
        }
    }

    /// Gives a new connection a slot and hands its socket to the writer.
    pub fn attach(&self, conn: Arc<Connection>, socket: WriteHalf) -> u32 {
        let mut st = self.state.lock();
        let slot = st.free.pop().unwrap_or_else(|| {
            st.next_slot += 1;
            st.next_slot - 1
        });
        st.live += 1;
        self.append(&mut st, Item::Attach { slot, conn, socket });
        slot
    }

    /// Appends one item.
    pub fn push(&self, item: Item) {
        let mut st = self.state.lock();
        if matches!(item, Item::Detach { .. }) {
            st.live = st.live.saturating_sub(1);
        }
        self.append(&mut st, item);
    }

    /// Appends a hub batch of deliveries (emptying `items`), conflating
    /// them if the writer has fallen [`MAX_WAITING`] behind; returns how
    /// many ticks that conflated away.
    pub fn push_deliveries(&self, items: &mut Vec<Delivery>) -> u64 {
        if items.is_empty() {
            return 0;
        }
        let mut st = self.state.lock();
        let before = st.bytes;
        st.bytes += items.iter().map(|d| d.frame.len()).sum::<usize>();
        st.items.extend(items.drain(..).map(Item::Deliver));
        let compacted = if st.items.len() > MAX_WAITING {
            keep_latest_ticks(&mut st)
        } else {
            0
        };
        let urgent = before < self.urgent_bytes && st.bytes >= self.urgent_bytes;
        self.wake_if(&mut st, urgent);
        compacted
    }

    fn append(&self, st: &mut State, item: Item) {
        let mut urgent = false;
        if let Item::Deliver(d) = &item {
            let before = st.bytes;
            st.bytes += d.frame.len();
            urgent = before < self.urgent_bytes && st.bytes >= self.urgent_bytes;
        }
        st.items.push(item);
        self.wake_if(st, urgent);
    }

    fn wake_if(&self, st: &mut State, urgent: bool) {
        if std::mem::take(&mut st.parked) || urgent {
            self.wake.notify_one();
        }
    }

    /// The writer's side: moves every waiting item into `into` (in order)
    /// and returns the slots in `freed` to the free list. Returns whether
    /// there was anything; if not and `park`, the next append wakes the
    /// writer.
    pub fn take(&self, into: &mut Vec<Item>, freed: &mut Vec<u32>, park: bool) -> bool {
        let mut st = self.state.lock();
        st.free.append(freed);
        let any = !st.items.is_empty();
        into.append(&mut st.items);
        st.bytes = 0;
        if !any && park {
            st.parked = true;
        }
        any
    }

    /// Resolves when the writer is woken (see [`Inbox::take`]).
    pub async fn woken(&self) {
        self.wake.notified().await
    }

    /// Connections attached and not yet detached.
    pub fn live(&self) -> usize {
        self.state.lock().live
    }
}

/// Keeps only the latest tick of each symbol among the waiting items (and
/// every other item), in order; returns how many ticks it removed.
///
/// What it removes, its recipients are told: each run of removed ticks of
/// one symbol with the same recipient lists (the lists are shared `Arc`s,
/// so the same subscriptions mean the same pointers) becomes one `gap`
/// notice to those recipients, where the run began, and so before the
/// symbol's kept tick (`gaps.rs`).
fn keep_latest_ticks(st: &mut State) -> u64 {
    let before = st.items.len();
    let mut seen: HashSet<SymbolId> = HashSet::new();
    let keep: Vec<bool> = st
        .items
        .iter()
        .rev()
        .map(|item| match item {
            Item::Deliver(Delivery {
                kind: Kind::Tick(sym),
                to: Recipients::Subscribers { .. },
                ..
            }) => seen.insert(*sym),
            _ => true,
        })
        .collect();
    /// A run being gathered: where its notice sits, for whom, what.
    struct Run {
        at: usize,
        to: Recipients,
        name: String,
        skips: Skips,
        last: u64,
    }
    let mut open: HashMap<SymbolId, Run> = HashMap::new();
    let mut done: Vec<Run> = Vec::new();
    let mut out = Vec::with_capacity(st.items.len() / 2);
    let mut removed = 0u64;
    for (item, keep) in st.items.drain(..).zip(keep.into_iter().rev()) {
        if keep {
            out.push(item);
            continue;
        }
        removed += 1;
        let Item::Deliver(d) = item else { continue };
        let (Kind::Tick(sym), Some((name, seq))) = (d.kind, frame::tick_id(&d.frame)) else {
            continue;
        };
        let same = open.get(&sym).is_some_and(|run| {
            same_recipients(&run.to, &d.to) && run.last.checked_add(1) == Some(seq)
        });
        if same {
            if let Some(run) = open.get_mut(&sym) {
                run.skips.add(seq);
                run.last = seq;
            }
            continue;
        }
        // A new run: its notice takes this tick's place.
        let mut skips = Skips::default();
        skips.add(seq);
        let run = Run {
            at: out.len(),
            to: d.to.clone(),
            name,
            skips,
            last: seq,
        };
        out.push(Item::Deliver(Delivery {
            frame: Bytes::new(),
            kind: Kind::Notice,
            enqueued_ns: 0,
            to: d.to,
        }));
        if let Some(old) = open.insert(sym, run) {
            done.push(old);
        }
    }
    for run in done.into_iter().chain(open.into_values()) {
        let notice = run.skips.notices(&run.name, GapReason::Conflated);
        if let (Some(Item::Deliver(d)), Some(frame)) = (out.get_mut(run.at), notice.first()) {
            d.frame = frame.clone();
        }
    }
    st.items = out;
    st.bytes = st
        .items
        .iter()
        .map(|item| match item {
            Item::Deliver(d) => d.frame.len(),
            _ => 0,
        })
        .sum();
    debug_assert!(before >= st.items.len());
    removed
}

/// Whether two deliveries went to the same subscriber lists.
fn same_recipients(a: &Recipients, b: &Recipients) -> bool {
    let same = |x: &Option<Slots>, y: &Option<Slots>| match (x, y) {
        (Some(x), Some(y)) => Arc::ptr_eq(x, y),
        (None, None) => true,
        _ => false,
    };
    match (a, b) {
        (
            Recipients::Subscribers { symbol, wildcard },
            Recipients::Subscribers {
                symbol: s2,
                wildcard: w2,
            },
        ) => same(symbol, s2) && same(wildcard, w2),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    fn tick(sym: SymbolId) -> Delivery {
        Delivery {
            frame: Bytes::from_static(b"frame"),
            kind: Kind::Tick(sym),
            enqueued_ns: 1,
            to: Recipients::Subscribers {
                symbol: Some(Slots::from(vec![0])),
                wildcard: None,
            },
        }
    }

    fn syms(items: &[Item]) -> Vec<Option<SymbolId>> {
        items
            .iter()
            .map(|i| match i {
                Item::Deliver(d) => d.kind.sym(),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_parked_writer_is_woken_once_and_slots_are_reused_after_their_detach() {
        let inbox = Inbox::new(usize::MAX);
        let (mut got, mut freed) = (Vec::new(), Vec::new());
        assert!(!inbox.take(&mut got, &mut freed, true));
        inbox.push_deliveries(&mut vec![tick(1)]);
        // The park turned into a stored wake-up.
        let woken = inbox.woken();
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut woken = std::pin::pin!(woken);
        assert!(woken.as_mut().poll(&mut cx).is_ready());
        assert!(inbox.take(&mut got, &mut freed, true));
        assert_eq!(syms(&got), [Some(1)]);

        // Slot 0 comes back only once the writer returns it.
        inbox.push(Item::Detach { slot: 0 });
        assert_eq!(inbox.state.lock().next_slot, 0);
        freed.push(0);
        inbox.take(&mut got, &mut freed, false);
        assert_eq!(inbox.state.lock().free, [0]);
    }

    #[test]
    fn a_writer_far_behind_gets_the_latest_tick_of_each_symbol_and_every_other_item() {
        let inbox = Inbox::new(usize::MAX);
        let mut batch: Vec<Delivery> = (0..MAX_WAITING as u32).map(|i| tick(i % 3)).collect();
        inbox.push_deliveries(&mut batch);
        let reply = Delivery {
            to: Recipients::One(7),
            kind: Kind::Reply,
            ..tick(0)
        };
        inbox.push(Item::Deliver(reply));
        let compacted = inbox.push_deliveries(&mut vec![tick(2)]);
        assert_eq!(compacted, MAX_WAITING as u64 + 1 - 3);
        let (mut got, mut freed) = (Vec::new(), Vec::new());
        inbox.take(&mut got, &mut freed, false);
        // The latest of 1 and 0 (in their order), the reply, the new 2.
        assert_eq!(syms(&got), [Some(1), Some(0), None, Some(2)]);
    }
}
