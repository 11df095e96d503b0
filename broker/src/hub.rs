//! The hub: who is subscribed to what, the latest tick of every symbol, and
//! the fan-out of each tick to its subscribers' outboxes.
//!
//! Data flows one way: a feed hands the hub a batch of validated ticks; the
//! hub frames each tick **once** (`frame::binary`) and gives every subscriber
//! a clone of the same `Bytes`, then wakes each writer that went from idle to
//! busy, once per batch. It never waits for a client: pushing into an outbox
//! takes that outbox's lock for a few instructions and applies the
//! slow-consumer policy when it is full.
//!
//! One mutex guards the subscription table. Fan-out and (un)subscribe take it,
//! which is what makes "ack, then snapshot, then live ticks, in `seq` order,
//! never duplicated" hold without any further bookkeeping: a subscribe happens
//! entirely between two batches.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tickcast_protocol::control::{ErrorCode, RequestError};
use tickcast_protocol::{ServerMessage, WILDCARD};

use crate::frame;
use crate::latency::Stage;
use crate::metrics::Metrics;
use crate::outbox::{Outbox, Pushed};
use tickcast_protocol::clock::now_ns;

/// Index of a symbol in the hub's table.
pub type SymbolId = u32;

/// The most distinct symbols the hub tracks; past it, ticks of new symbols
/// are rejected and subscriptions to unknown ones refused. Keeps a client (or
/// a publisher) from growing the table without bound.
pub const MAX_SYMBOLS: usize = 100_000;

/// One validated tick on its way into the hub.
#[derive(Debug, Clone, Copy)]
pub struct TickIn<'a> {
    /// Symbol.
    pub sym: &'a str,
    /// Per-symbol sequence number.
    pub seq: u64,
    /// Feed event time, ns since the epoch.
    pub ts: u64,
    /// The encoded tick (MessagePack), forwarded as is.
    pub payload: &'a [u8],
    /// When the broker received it, ns since the epoch.
    pub recv_ns: u64,
}

/// A connection as the hub sees it.
pub struct Subscriber {
    /// Connection id (unique for the broker's lifetime).
    pub id: u64,
    /// Where its frames go.
    pub outbox: Arc<Outbox>,
    /// Subscribed to `*`; per-symbol lists skip it so it never gets a tick
    /// twice. Only changed under the hub lock.
    wildcard: AtomicBool,
}

impl Subscriber {
    /// A subscriber with no topics.
    pub fn new(id: u64, outbox: Arc<Outbox>) -> Self {
        Self {
            id,
            outbox,
            wildcard: AtomicBool::new(false),
        }
    }
}

struct Symbol {
    name: Arc<str>,
    last_seq: u64,
    /// The latest tick's frame, sent as the snapshot on subscribe.
    latest: Option<Bytes>,
    subscribers: Vec<Arc<Subscriber>>,
}

#[derive(Default)]
struct State {
    ids: HashMap<Arc<str>, SymbolId>,
    symbols: Vec<Symbol>,
    wildcard: Vec<Arc<Subscriber>>,
    /// Each connection's topics, sorted (the ack lists them).
    topics: HashMap<u64, BTreeSet<Arc<str>>>,
}

impl State {
    fn intern(&mut self, sym: &str) -> Option<SymbolId> {
        if let Some(&id) = self.ids.get(sym) {
            return Some(id);
        }
        if self.symbols.len() >= MAX_SYMBOLS {
            return None;
        }
        let id = self.symbols.len() as SymbolId;
        let name: Arc<str> = Arc::from(sym);
        self.ids.insert(name.clone(), id);
        self.symbols.push(Symbol {
            name,
            last_seq: 0,
            latest: None,
            subscribers: Vec::new(),
        });
        Some(id)
    }
}

/// Outboxes to wake once the lock is released.
type Wakes = Vec<Arc<Subscriber>>;

/// The subscription table and fan-out.
pub struct Hub {
    state: Mutex<State>,
    metrics: Arc<Metrics>,
}

impl Hub {
    /// An empty hub reporting into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            state: Mutex::new(State::default()),
            metrics,
        }
    }

    /// Fans a batch of ticks out to their subscribers.
    ///
    /// Per symbol, a tick whose `seq` is not above the last one seen is a
    /// duplicate (or arrived out of order) and is skipped, so clients get each
    /// `seq` at most once and in order; `seq == 1` is taken as a restarted feed
    /// and accepted.
    pub fn publish(&self, batch: &[TickIn<'_>]) {
        let mut wakes: Wakes = Vec::new();
        let mut stage_samples: Vec<(u64, u64)> = Vec::with_capacity(batch.len());
        let (mut accepted, mut stale, mut rejected) = (0u64, 0u64, 0u64);
        {
            let mut guard = self.state.lock();
            let st = &mut *guard;
            for t in batch {
                let Some(id) = st.intern(t.sym) else {
                    rejected += 1;
                    continue;
                };
                let sym = &mut st.symbols[id as usize];
                if t.seq <= sym.last_seq && t.seq != 1 {
                    stale += 1;
                    continue;
                }
                sym.last_seq = t.seq;
                let frame = frame::binary(t.payload);
                let enqueued_ns = now_ns();
                for sub in &sym.subscribers {
                    if !sub.wildcard.load(Ordering::Relaxed) {
                        deliver(sub, id, &frame, enqueued_ns, &mut wakes, &self.metrics);
                    }
                }
                for sub in &st.wildcard {
                    deliver(sub, id, &frame, enqueued_ns, &mut wakes, &self.metrics);
                }
                sym.latest = Some(frame);
                accepted += 1;
                stage_samples.push((
                    t.recv_ns.saturating_sub(t.ts),
                    enqueued_ns.saturating_sub(t.recv_ns),
                ));
            }
        }
        for sub in &wakes {
            sub.outbox.wake();
        }
        self.metrics.ticks_in.add(accepted);
        self.metrics.ticks_stale.add(stale);
        self.metrics.ticks_rejected.add(rejected);
        let mut stages = self.metrics.stages.lock();
        for (feed, enqueue) in stage_samples {
            stages.record(Stage::FeedToReceive, feed);
            stages.record(Stage::ReceiveToEnqueue, enqueue);
        }
    }

    /// Adds `topics` to a connection's subscription, then queues the ack (the
    /// full list) and a snapshot: the latest tick of each newly covered symbol.
    /// All or nothing: on an error nothing changes.
    pub fn subscribe(
        &self,
        sub: &Arc<Subscriber>,
        topics: &[String],
        max_topics: usize,
    ) -> Result<(), RequestError> {
        let mut wakes: Wakes = Vec::new();
        {
            let mut guard = self.state.lock();
            let st = &mut *guard;
            let current = st.topics.get(&sub.id);
            let fresh: BTreeSet<&str> = topics
                .iter()
                .map(String::as_str)
                .filter(|t| current.is_none_or(|c| !c.contains(*t)))
                .collect();
            let held = current.map_or(0, BTreeSet::len);
            if held + fresh.len() > max_topics {
                return Err(RequestError::new(
                    ErrorCode::TooManyTopics,
                    format!(
                        "subscribing to {} more topics would exceed the limit of {max_topics} per connection (holding {held})",
                        fresh.len()
                    ),
                ));
            }
            let unknown = fresh
                .iter()
                .filter(|t| **t != WILDCARD && !st.ids.contains_key(**t))
                .count();
            if st.symbols.len() + unknown > MAX_SYMBOLS {
                return Err(RequestError::new(
                    ErrorCode::UnknownSymbol,
                    "the broker's symbol table is full; subscribe to symbols the feed publishes",
                ));
            }
            let was_wildcard = sub.wildcard.load(Ordering::Relaxed);
            let mut names: Vec<Arc<str>> = Vec::with_capacity(fresh.len());
            let mut snapshot: Vec<SymbolId> = Vec::new();
            for topic in &fresh {
                if *topic == WILDCARD {
                    sub.wildcard.store(true, Ordering::Relaxed);
                    st.wildcard.push(sub.clone());
                    names.push(Arc::from(WILDCARD));
                    continue;
                }
                let Some(id) = st.intern(topic) else { continue };
                let sym = &mut st.symbols[id as usize];
                sym.subscribers.push(sub.clone());
                names.push(sym.name.clone());
                if !was_wildcard {
                    snapshot.push(id);
                }
            }
            let list = st.topics.entry(sub.id).or_default();
            list.extend(names);
            if !was_wildcard && sub.wildcard.load(Ordering::Relaxed) {
                // Newly on `*`: every symbol it did not already hold.
                snapshot = (0..st.symbols.len() as SymbolId)
                    .filter(|id| !list.contains(&st.symbols[*id as usize].name))
                    .chain(snapshot)
                    .collect();
            }
            let ack = ack_frame(list);
            if sub.outbox.push_control(ack) {
                wakes.push(sub.clone());
            }
            let now = now_ns();
            for id in snapshot {
                if let Some(frame) = &st.symbols[id as usize].latest {
                    deliver(sub, id, frame, now, &mut wakes, &self.metrics);
                }
            }
        }
        wake_all(&wakes);
        Ok(())
    }

    /// Removes `topics` from a connection's subscription and queues the ack.
    /// Topics it does not hold are ignored.
    pub fn unsubscribe(&self, sub: &Arc<Subscriber>, topics: &[String]) {
        let mut st = self.state.lock();
        let removed: Vec<String> = match st.topics.get_mut(&sub.id) {
            Some(list) => topics
                .iter()
                .filter(|t| list.remove(t.as_str()))
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        for topic in &removed {
            st.remove_from(sub.id, topic, &sub.wildcard);
        }
        let empty = BTreeSet::new();
        let ack = ack_frame(st.topics.get(&sub.id).unwrap_or(&empty));
        drop(st);
        if sub.outbox.push_control(ack) {
            sub.outbox.wake();
        }
    }

    /// Forgets a connection entirely (it disconnected).
    pub fn remove(&self, sub: &Subscriber) {
        let mut st = self.state.lock();
        let Some(list) = st.topics.remove(&sub.id) else {
            return;
        };
        for topic in &list {
            st.remove_from(sub.id, topic, &sub.wildcard);
        }
    }

    /// The latest frame of every symbol that has had a tick, by symbol name.
    pub fn latest_frames(&self) -> Vec<(Arc<str>, Bytes)> {
        let st = self.state.lock();
        let mut out: Vec<(Arc<str>, Bytes)> = st
            .symbols
            .iter()
            .filter_map(|s| s.latest.clone().map(|f| (s.name.clone(), f)))
            .collect();
        drop(st);
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// How many symbols the hub knows.
    pub fn symbol_count(&self) -> usize {
        self.state.lock().symbols.len()
    }
}

impl State {
    fn remove_from(&mut self, conn: u64, topic: &str, wildcard: &AtomicBool) {
        if topic == WILDCARD {
            wildcard.store(false, Ordering::Relaxed);
            self.wildcard.retain(|s| s.id != conn);
        } else if let Some(&id) = self.ids.get(topic) {
            self.symbols[id as usize]
                .subscribers
                .retain(|s| s.id != conn);
        }
    }
}

fn deliver(
    sub: &Arc<Subscriber>,
    id: SymbolId,
    frame: &Bytes,
    enqueued_ns: u64,
    wakes: &mut Wakes,
    metrics: &Metrics,
) {
    match sub.outbox.push_tick(id, frame, enqueued_ns) {
        Pushed::Queued | Pushed::Held | Pushed::Closed => {}
        Pushed::Woke => wakes.push(sub.clone()),
        Pushed::Conflated => metrics.conflated.add(1),
        Pushed::Dropped => metrics.dropped.add(1),
        Pushed::Disconnected => {
            metrics.slow_disconnects.add(1);
            wakes.push(sub.clone());
        }
    }
}

fn wake_all(wakes: &Wakes) {
    for sub in wakes {
        sub.outbox.wake();
    }
}

fn ack_frame(topics: &BTreeSet<Arc<str>>) -> Bytes {
    let msg = ServerMessage::Subscribed {
        topics: topics.iter().map(|t| t.to_string()).collect(),
    };
    frame::binary(&msg.to_msgpack())
}
