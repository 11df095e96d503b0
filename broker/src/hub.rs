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
}

impl Subscriber {
    /// A subscriber with no topics.
    pub fn new(id: u64, outbox: Arc<Outbox>) -> Self {
        Self { id, outbox }
    }

    fn route(&self) -> Route {
        Route {
            conn: self.id,
            outbox: self.outbox.clone(),
        }
    }
}

/// One entry of a fan-out list: the outbox itself, so the loop reaches it in
/// one pointer hop (it is the cache miss that fan-out time goes to), and
/// whose it is, for removal.
struct Route {
    conn: u64,
    outbox: Arc<Outbox>,
}

struct Symbol {
    name: Arc<str>,
    last_seq: u64,
    /// The latest tick's frame, sent as the snapshot on subscribe.
    latest: Option<Bytes>,
    /// Subscribers of this symbol that are not on `*` (those are in
    /// [`State::wildcard`] only, so nobody gets a tick twice).
    routes: Vec<Route>,
}

#[derive(Default)]
struct State {
    ids: HashMap<Arc<str>, SymbolId>,
    symbols: Vec<Symbol>,
    /// Subscribers on `*`.
    wildcard: Vec<Route>,
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
            routes: Vec::new(),
        });
        Some(id)
    }

    /// A connection's topics, copied out so the lists can change meanwhile.
    fn held_topics(&self, conn: u64) -> Vec<Arc<str>> {
        self.topics
            .get(&conn)
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    fn is_wildcard(&self, conn: u64) -> bool {
        self.topics.get(&conn).is_some_and(|t| t.contains(WILDCARD))
    }

    /// Takes a connection's routes out of the lists of `topic`.
    fn remove_route(&mut self, conn: u64, topic: &str) {
        if topic == WILDCARD {
            self.wildcard.retain(|r| r.conn != conn);
        } else if let Some(&id) = self.ids.get(topic) {
            self.symbols[id as usize].routes.retain(|r| r.conn != conn);
        }
    }
}

/// Outboxes to wake once the lock is released.
type Wakes = Vec<Arc<Outbox>>;

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
                for route in sym.routes.iter().chain(&st.wildcard) {
                    deliver(
                        &route.outbox,
                        id,
                        &frame,
                        enqueued_ns,
                        &mut wakes,
                        &self.metrics,
                    );
                }
                sym.latest = Some(frame);
                accepted += 1;
                stage_samples.push((
                    t.recv_ns.saturating_sub(t.ts),
                    enqueued_ns.saturating_sub(t.recv_ns),
                ));
            }
        }
        wake_all(&wakes);
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
            let was_wildcard = st.is_wildcard(sub.id);
            let now_wildcard = was_wildcard || fresh.contains(WILDCARD);
            if now_wildcard && !was_wildcard {
                // Onto `*`: its per-symbol routes would deliver twice.
                for topic in &st.held_topics(sub.id) {
                    st.remove_route(sub.id, topic);
                }
                st.wildcard.push(sub.route());
            }
            let mut names: Vec<Arc<str>> = Vec::with_capacity(fresh.len());
            let mut snapshot: Vec<SymbolId> = Vec::new();
            for topic in &fresh {
                if *topic == WILDCARD {
                    names.push(Arc::from(WILDCARD));
                    continue;
                }
                let Some(id) = st.intern(topic) else { continue };
                let sym = &mut st.symbols[id as usize];
                if !now_wildcard {
                    sym.routes.push(sub.route());
                }
                names.push(sym.name.clone());
                if !was_wildcard {
                    snapshot.push(id);
                }
            }
            let list = st.topics.entry(sub.id).or_default();
            list.extend(names);
            if now_wildcard && !was_wildcard {
                // Newly on `*`: every symbol it did not already hold.
                snapshot = (0..st.symbols.len() as SymbolId)
                    .filter(|id| !list.contains(&st.symbols[*id as usize].name))
                    .chain(snapshot)
                    .collect();
            }
            let ack = ack_frame(list);
            if sub.outbox.push_control(ack) {
                wakes.push(sub.outbox.clone());
            }
            let now = now_ns();
            for id in snapshot {
                if let Some(frame) = &st.symbols[id as usize].latest {
                    deliver(&sub.outbox, id, frame, now, &mut wakes, &self.metrics);
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
        let was_wildcard = st.is_wildcard(sub.id);
        let removed: Vec<String> = match st.topics.get_mut(&sub.id) {
            Some(list) => topics
                .iter()
                .filter(|t| list.remove(t.as_str()))
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        for topic in &removed {
            st.remove_route(sub.id, topic);
        }
        if was_wildcard && !st.is_wildcard(sub.id) {
            // Off `*`: the symbols it still holds get their routes back.
            for topic in &st.held_topics(sub.id) {
                if let Some(&id) = st.ids.get(topic) {
                    st.symbols[id as usize].routes.push(sub.route());
                }
            }
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
            st.remove_route(sub.id, topic);
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

fn deliver(
    outbox: &Arc<Outbox>,
    id: SymbolId,
    frame: &Bytes,
    enqueued_ns: u64,
    wakes: &mut Wakes,
    metrics: &Metrics,
) {
    match outbox.push_tick(id, frame, enqueued_ns) {
        Pushed::Queued | Pushed::Held | Pushed::Closed => {}
        Pushed::Woke => wakes.push(outbox.clone()),
        Pushed::Conflated => metrics.conflated.add(1),
        Pushed::Dropped => metrics.dropped.add(1),
        Pushed::Disconnected => {
            metrics.slow_disconnects.add(1);
            wakes.push(outbox.clone());
        }
    }
}

fn wake_all(wakes: &Wakes) {
    for outbox in wakes {
        outbox.wake();
    }
}

fn ack_frame(topics: &BTreeSet<Arc<str>>) -> Bytes {
    let msg = ServerMessage::Subscribed {
        topics: topics.iter().map(|t| t.to_string()).collect(),
    };
    frame::binary(&msg.to_msgpack())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SlowConsumerPolicy;
    use crate::outbox::{Queued, Take};

    fn hub_with(conns: usize) -> (Hub, Vec<Arc<Subscriber>>) {
        let hub = Hub::new(Arc::new(Metrics::default()));
        let subs = (0..conns as u64)
            .map(|id| {
                let outbox = Arc::new(Outbox::new(1 << 20, SlowConsumerPolicy::Conflate));
                Arc::new(Subscriber::new(id, outbox))
            })
            .collect();
        (hub, subs)
    }

    fn publish(hub: &Hub, ticks: &[(&'static str, u64)]) {
        let batch: Vec<TickIn<'_>> = ticks
            .iter()
            .map(|&(sym, seq)| TickIn {
                sym,
                seq,
                ts: 1,
                payload: sym.as_bytes(),
                recv_ns: 1,
            })
            .collect();
        hub.publish(&batch);
    }

    /// The symbols of the tick frames queued for `sub` (payload = symbol
    /// name in these tests; ack frames are skipped), draining it.
    fn received(sub: &Subscriber) -> Vec<String> {
        let mut out: Vec<Queued> = Vec::new();
        assert_ne!(sub.outbox.take(&mut out, usize::MAX), Take::Last);
        out.iter()
            .filter(|q| q.enqueued_ns != 0)
            .map(|q| String::from_utf8_lossy(&q.frame[2..]).into_owned())
            .collect()
    }

    fn topics(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn a_symbol_and_the_wildcard_together_deliver_each_tick_once() {
        let (hub, subs) = hub_with(2);
        let (both, one) = (&subs[0], &subs[1]);
        hub.subscribe(both, &topics(&["S1", "S2"]), 10)
            .unwrap_or_else(|e| panic!("{e:?}"));
        hub.subscribe(one, &topics(&["S1"]), 10)
            .unwrap_or_else(|e| panic!("{e:?}"));
        publish(&hub, &[("S1", 1), ("S2", 1), ("S3", 1)]);
        assert_eq!(received(both), ["S1", "S2"]);
        assert_eq!(received(one), ["S1"]);

        // Onto `*`: a snapshot of the one symbol it did not hold, then every
        // tick once.
        hub.subscribe(both, &topics(&["*"]), 10)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(received(both), ["S3"]);
        publish(&hub, &[("S1", 2), ("S2", 2), ("S3", 2)]);
        assert_eq!(received(both), ["S1", "S2", "S3"]);
        assert_eq!(received(one), ["S1"]);

        // A symbol subscribed while on `*` adds nothing twice.
        hub.subscribe(both, &topics(&["S3"]), 10)
            .unwrap_or_else(|e| panic!("{e:?}"));
        publish(&hub, &[("S3", 3)]);
        assert_eq!(received(both), ["S3"]);

        // Off `*`: back to the symbols it still holds.
        hub.unsubscribe(both, &topics(&["*", "S2"]));
        publish(&hub, &[("S1", 4), ("S2", 4), ("S3", 4)]);
        assert_eq!(received(both), ["S1", "S3"]);

        // Gone: nothing more, and the other subscriber is untouched.
        hub.remove(both);
        publish(&hub, &[("S1", 5)]);
        assert_eq!(received(both), Vec::<String>::new());
        assert_eq!(received(one), ["S1", "S1"]);
    }
}
