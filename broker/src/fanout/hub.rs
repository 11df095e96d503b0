//! The hub: who is subscribed to what, the latest tick of every symbol, and
//! the hand-over of each tick to the writer shards.
//!
//! Data flows one way: a feed hands the hub a batch of validated ticks; the
//! hub frames each tick **once** (`frame::binary`), appends it to the list
//! of fresh ticks of every writer shard that has a subscriber of it, and
//! marks those subscribers in the shard's dirty bitmap. Marking is one bit
//! in a small dense array, so a tick's fan-out to hundreds of subscribers
//! costs the hub a few hundred OR instructions, not a lock and a queue push
//! per subscriber. The writer shard (`writer.rs`) then visits each marked
//! connection and lets its outbox pick what it wants (`Outbox::collect`).
//! The hub never waits for a client.
//!
//! One mutex guards the subscription table and the shards' inboxes. Fan-out
//! and (un)subscribe take it, and every published tick gets a position, which
//! is what makes "ack, then snapshot, then live ticks, in `seq` order, never
//! duplicated" hold: a subscribe happens entirely between two batches, and
//! the connection's interest in a new symbol starts at the position after
//! its snapshot.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tickcast_protocol::control::{ErrorCode, RequestError};
use tickcast_protocol::{ServerMessage, WILDCARD};
use tokio::sync::Notify;

use crate::fanout::frame;
use crate::fanout::outbox::{Outbox, Pushed};
use crate::observe::latency::Stage;
use crate::observe::metrics::Metrics;
use tickcast_protocol::clock::now_ns;

/// Index of a symbol in the hub's table.
pub type SymbolId = u32;

/// The most distinct symbols the hub tracks; past it, ticks of new symbols
/// are rejected and subscriptions to unknown ones refused. Keeps a client (or
/// a publisher) from growing the table without bound.
pub const MAX_SYMBOLS: usize = 100_000;

/// The most writer shards (the shard set of one tick is a 64-bit mask).
pub const MAX_SHARDS: usize = 64;

/// Fresh ticks a shard may have waiting before the hub conflates them to the
/// latest per symbol: only reached when the writers fall far behind the feed
/// (a starved process), and it keeps memory bounded then.
const MAX_WAITING: usize = 1 << 18;

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

/// A tick as the hub hands it to a writer shard.
#[derive(Debug, Clone)]
pub struct Published {
    /// Its position in the order of publication (counts every accepted tick).
    pub pos: u64,
    /// Its symbol.
    pub sym: SymbolId,
    /// The complete WebSocket frame, shared by every subscriber.
    pub frame: Bytes,
    /// When the hub published it, ns since the epoch.
    pub enqueued_ns: u64,
}

/// Where a connection sits among the writer shards: its shard and its bit
/// in that shard's dirty bitmap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The writer shard.
    pub shard: u32,
    /// The connection's index within the shard.
    pub index: u32,
}

/// A connection as the hub sees it.
pub struct Subscriber {
    /// Connection id (unique for the broker's lifetime).
    pub id: u64,
    /// Its place among the writer shards.
    pub route: Route,
    /// What it wants, and what waits for it.
    pub outbox: Arc<Outbox>,
}

impl Subscriber {
    /// A subscriber with no topics.
    pub fn new(id: u64, route: Route, outbox: Arc<Outbox>) -> Self {
        Self { id, route, outbox }
    }
}

struct Symbol {
    name: Arc<str>,
    last_seq: u64,
    /// The latest tick's frame, sent as the snapshot on subscribe.
    latest: Option<Bytes>,
    /// Subscribers of this symbol that are not on `*` (those are in
    /// [`State::wildcard`] only).
    routes: Vec<Route>,
}

/// What waits for one writer shard.
#[derive(Default)]
struct Inbox {
    /// Ticks published since the shard last took them, in order.
    published: Vec<Published>,
    /// Their bytes.
    bytes: usize,
    /// One bit per connection index: has something new.
    dirty: Vec<u64>,
    /// The shard found nothing and is waiting to be woken.
    parked: bool,
}

impl Inbox {
    fn mark(&mut self, index: u32) {
        let word = index as usize / 64;
        if self.dirty.len() <= word {
            self.dirty.resize(word + 1, 0);
        }
        self.dirty[word] |= 1 << (index % 64);
    }
}

#[derive(Default)]
struct State {
    ids: HashMap<Arc<str>, SymbolId>,
    symbols: Vec<Symbol>,
    /// Subscribers on `*`.
    wildcard: Vec<Route>,
    /// Each connection's topics, sorted (the ack lists them).
    topics: HashMap<u64, BTreeSet<Arc<str>>>,
    /// One per writer shard.
    inboxes: Vec<Inbox>,
    /// The position the next published tick gets.
    next_pos: u64,
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

    /// Takes a connection's route out of the list of `topic`.
    fn remove_route(&mut self, route: Route, topic: &str) {
        if topic == WILDCARD {
            self.wildcard.retain(|r| *r != route);
        } else if let Some(&id) = self.ids.get(topic) {
            self.symbols[id as usize].routes.retain(|r| *r != route);
        }
    }
}

/// The subscription table and fan-out.
pub struct Hub {
    state: Mutex<State>,
    /// Wakes each writer shard.
    signals: Vec<Notify>,
    /// Fresh bytes waiting for a shard past which it is woken from a
    /// coalescing pause: half an outbox, so a healthy client is written
    /// before it could be pushed into conflation.
    urgent_bytes: usize,
    metrics: Arc<Metrics>,
}

impl Hub {
    /// An empty hub for `shards` writer shards (1 to [`MAX_SHARDS`]), waking
    /// a pausing shard once `urgent_bytes` of fresh ticks wait for it.
    pub fn new(metrics: Arc<Metrics>, shards: usize, urgent_bytes: usize) -> Self {
        let shards = shards.clamp(1, MAX_SHARDS);
        Self {
            state: Mutex::new(State {
                inboxes: (0..shards).map(|_| Inbox::default()).collect(),
                ..State::default()
            }),
            signals: (0..shards).map(|_| Notify::new()).collect(),
            urgent_bytes,
            metrics,
        }
    }

    /// How many writer shards it feeds.
    pub fn shards(&self) -> usize {
        self.signals.len()
    }

    /// Fans a batch of ticks out to their subscribers' writer shards.
    ///
    /// Per symbol, a tick whose `seq` is not above the last one seen is a
    /// duplicate (or arrived out of order) and is skipped, so clients get each
    /// `seq` at most once and in order; `seq == 1` is taken as a restarted feed
    /// and accepted.
    pub fn publish(&self, batch: &[TickIn<'_>]) {
        let mut stage_samples: Vec<(u64, u64)> = Vec::with_capacity(batch.len());
        let (mut accepted, mut stale, mut rejected, mut compacted) = (0u64, 0u64, 0u64, 0u64);
        let mut wake: u64 = 0;
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
                let mut shards: u64 = 0;
                for route in sym.routes.iter().chain(&st.wildcard) {
                    st.inboxes[route.shard as usize].mark(route.index);
                    shards |= 1 << route.shard;
                }
                let pos = st.next_pos;
                st.next_pos += 1;
                while shards != 0 {
                    let shard = shards.trailing_zeros() as usize;
                    shards &= shards - 1;
                    let inbox = &mut st.inboxes[shard];
                    let before = inbox.bytes;
                    inbox.bytes += frame.len();
                    inbox.published.push(Published {
                        pos,
                        sym: id,
                        frame: frame.clone(),
                        enqueued_ns,
                    });
                    if inbox.published.len() > MAX_WAITING {
                        compacted += keep_latest_per_symbol(&mut inbox.published);
                        inbox.bytes = inbox.published.iter().map(|p| p.frame.len()).sum();
                    }
                    if inbox.parked
                        || (before < self.urgent_bytes && inbox.bytes >= self.urgent_bytes)
                    {
                        inbox.parked = false;
                        wake |= 1 << shard;
                    }
                }
                sym.latest = Some(frame);
                accepted += 1;
                stage_samples.push((
                    t.recv_ns.saturating_sub(t.ts),
                    enqueued_ns.saturating_sub(t.recv_ns),
                ));
            }
        }
        while wake != 0 {
            self.signals[wake.trailing_zeros() as usize].notify_one();
            wake &= wake - 1;
        }
        self.metrics.ticks_in.add(accepted);
        self.metrics.ticks_stale.add(stale);
        self.metrics.ticks_rejected.add(rejected);
        self.metrics.overload_conflated.add(compacted);
        let mut stages = self.metrics.stages.lock();
        for (feed, enqueue) in stage_samples {
            stages.record(Stage::FeedToReceive, feed);
            stages.record(Stage::ReceiveToEnqueue, enqueue);
        }
    }

    /// Hands writer shard `shard` what was published for it since it last
    /// asked, appended to `published`, and ORs the connections marked since
    /// into `dirty`. Returns whether there was anything new; if not and
    /// `park`, the shard is woken by the next publication or kick.
    pub fn take(
        &self,
        shard: usize,
        published: &mut Vec<Published>,
        dirty: &mut Vec<u64>,
        park: bool,
    ) -> bool {
        let mut st = self.state.lock();
        let inbox = &mut st.inboxes[shard];
        let mut any = !inbox.published.is_empty();
        published.append(&mut inbox.published);
        inbox.bytes = 0;
        if dirty.len() < inbox.dirty.len() {
            dirty.resize(inbox.dirty.len(), 0);
        }
        for (mine, theirs) in dirty.iter_mut().zip(inbox.dirty.iter_mut()) {
            any |= *theirs != 0;
            *mine |= std::mem::take(theirs);
        }
        if !any && park {
            inbox.parked = true;
        }
        any
    }

    /// Waits until writer shard `shard` has something, or a pause of it is
    /// cut short.
    pub async fn signalled(&self, shard: usize) {
        self.signals[shard].notified().await
    }

    /// Marks a connection for its writer's next visit (it has a reply, a
    /// close or a socket that became writable) and wakes the shard.
    pub fn kick(&self, route: Route) {
        let mut st = self.state.lock();
        let inbox = &mut st.inboxes[route.shard as usize];
        inbox.mark(route.index);
        let wake = std::mem::take(&mut inbox.parked);
        drop(st);
        if wake {
            self.signals[route.shard as usize].notify_one();
        }
    }

    /// Adds `topics` to a connection's subscription, then queues the ack (the
    /// full list) and a snapshot: the latest tick of each newly covered symbol.
    /// All or nothing: on an error nothing changes.
    pub fn subscribe(
        &self,
        sub: &Subscriber,
        topics: &[String],
        max_topics: usize,
    ) -> Result<(), RequestError> {
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
        // Everything already published is covered by the snapshot.
        let since = st.next_pos;
        let was_wildcard = st.is_wildcard(sub.id);
        let now_wildcard = was_wildcard || fresh.contains(WILDCARD);
        if now_wildcard && !was_wildcard {
            // Onto `*`: its per-symbol routes would mark it twice.
            for topic in &st.held_topics(sub.id) {
                st.remove_route(sub.route, topic);
            }
            st.wildcard.push(sub.route);
            sub.outbox.update_interest(|i| i.set_all(Some(since)));
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
                sym.routes.push(sub.route);
            }
            sub.outbox.update_interest(|i| i.add(id, since));
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
        sub.outbox.push_control(ack_frame(list));
        let now = now_ns();
        let (mut conflated, mut dropped) = (0, 0);
        for id in snapshot {
            if let Some(frame) = &st.symbols[id as usize].latest {
                match sub.outbox.push_tick(id, frame, now) {
                    Pushed::Conflated => conflated += 1,
                    Pushed::Dropped => dropped += 1,
                    Pushed::Disconnected => self.metrics.slow_disconnects.add(1),
                    Pushed::Queued | Pushed::Held | Pushed::Closed => {}
                }
            }
        }
        drop(guard);
        self.metrics.conflated.add(conflated);
        self.metrics.dropped.add(dropped);
        self.kick(sub.route);
        Ok(())
    }

    /// Removes `topics` from a connection's subscription and queues the ack.
    /// Topics it does not hold are ignored.
    pub fn unsubscribe(&self, sub: &Subscriber, topics: &[String]) {
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
            st.remove_route(sub.route, topic);
            if topic == WILDCARD {
                sub.outbox.update_interest(|i| i.set_all(None));
            } else if let Some(&id) = st.ids.get(topic.as_str()) {
                sub.outbox.update_interest(|i| i.remove(id));
            }
        }
        if was_wildcard && !st.is_wildcard(sub.id) {
            // Off `*`: the symbols it still holds get their routes back.
            for topic in &st.held_topics(sub.id) {
                if let Some(&id) = st.ids.get(topic) {
                    st.symbols[id as usize].routes.push(sub.route);
                }
            }
        }
        let empty = BTreeSet::new();
        let ack = ack_frame(st.topics.get(&sub.id).unwrap_or(&empty));
        drop(st);
        sub.outbox.push_control(ack);
        self.kick(sub.route);
    }

    /// Forgets a connection entirely (it disconnected).
    pub fn remove(&self, sub: &Subscriber) {
        let mut st = self.state.lock();
        let Some(list) = st.topics.remove(&sub.id) else {
            return;
        };
        for topic in &list {
            st.remove_route(sub.route, topic);
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

/// Keeps only the latest tick of each symbol, in publication order; returns
/// how many it removed.
fn keep_latest_per_symbol(published: &mut Vec<Published>) -> u64 {
    let before = published.len();
    let mut seen: HashSet<SymbolId> = HashSet::new();
    published.reverse();
    published.retain(|p| seen.insert(p.sym));
    published.reverse();
    (before - published.len()) as u64
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
    use crate::fanout::outbox::{Batch, Take};

    fn hub_with(conns: usize) -> (Hub, Vec<Subscriber>) {
        let hub = Hub::new(Arc::new(Metrics::default()), 1, usize::MAX);
        let subs = (0..conns as u32)
            .map(|index| {
                let outbox = Arc::new(Outbox::new(1 << 20, SlowConsumerPolicy::Conflate));
                Subscriber::new(u64::from(index), Route { shard: 0, index }, outbox)
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

    /// What a writer pass would send each subscriber: the symbols of its
    /// tick frames (payload = symbol name in these tests; acks are skipped).
    /// Only marked connections are visited.
    fn pass(hub: &Hub, subs: &[Subscriber]) -> Vec<Vec<String>> {
        let (mut published, mut dirty) = (Vec::new(), Vec::new());
        hub.take(0, &mut published, &mut dirty, false);
        subs.iter()
            .map(|sub| {
                let i = sub.route.index as usize;
                if dirty.get(i / 64).is_none_or(|w| w & (1 << (i % 64)) == 0) {
                    return Vec::new();
                }
                let mut batch = Batch::default();
                let got = sub
                    .outbox
                    .collect(&published, false, &mut batch, usize::MAX);
                assert_ne!(got.take, Take::Last);
                let queued = batch.queued.iter().filter(|q| q.enqueued_ns != 0);
                let fresh = batch.fresh.iter().map(|&i| &published[i as usize].frame);
                queued
                    .map(|q| &q.frame)
                    .chain(fresh)
                    .map(|f| String::from_utf8_lossy(&f[2..]).into_owned())
                    .collect()
            })
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
        assert_eq!(pass(&hub, &subs), [vec!["S1", "S2"], vec!["S1"]]);

        // Onto `*`: a snapshot of the one symbol it did not hold, then every
        // tick once.
        hub.subscribe(both, &topics(&["*"]), 10)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(pass(&hub, &subs), [vec!["S3"], vec![]]);
        publish(&hub, &[("S1", 2), ("S2", 2), ("S3", 2)]);
        assert_eq!(pass(&hub, &subs), [vec!["S1", "S2", "S3"], vec!["S1"]]);

        // A symbol subscribed while on `*` adds nothing twice.
        hub.subscribe(both, &topics(&["S3"]), 10)
            .unwrap_or_else(|e| panic!("{e:?}"));
        publish(&hub, &[("S3", 3)]);
        assert_eq!(pass(&hub, &subs), [vec!["S3"], vec![]]);

        // Off `*`: back to the symbols it still holds.
        hub.unsubscribe(both, &topics(&["*", "S2"]));
        publish(&hub, &[("S1", 4), ("S2", 4), ("S3", 4)]);
        assert_eq!(pass(&hub, &subs), [vec!["S1", "S3"], vec!["S1"]]);

        // Gone: nothing more, and the other subscriber is untouched.
        hub.remove(both);
        publish(&hub, &[("S1", 5)]);
        assert_eq!(pass(&hub, &subs), [vec![], vec!["S1"]]);
    }

    #[test]
    fn a_subscribe_between_publication_and_the_writer_gets_the_snapshot_once() {
        let (hub, subs) = hub_with(2);
        hub.subscribe(&subs[1], &topics(&["S1"]), 10)
            .unwrap_or_else(|e| panic!("{e:?}"));
        publish(&hub, &[("S1", 1), ("S1", 2)]);
        // Published but not yet taken by the writer when the subscribe
        // lands: the snapshot (seq 2) stands for both.
        hub.subscribe(&subs[0], &topics(&["S1"]), 10)
            .unwrap_or_else(|e| panic!("{e:?}"));
        publish(&hub, &[("S1", 3)]);
        assert_eq!(
            pass(&hub, &subs),
            [vec!["S1", "S1"], vec!["S1", "S1", "S1"]]
        );
    }

    #[test]
    fn a_parked_shard_is_woken_by_a_tick_for_it_and_not_by_others() {
        let (hub, subs) = hub_with(1);
        hub.subscribe(&subs[0], &topics(&["S1"]), 10)
            .unwrap_or_else(|e| panic!("{e:?}"));
        let (mut published, mut dirty) = (Vec::new(), Vec::new());
        assert!(hub.take(0, &mut published, &mut dirty, true), "the ack");
        let (mut published, mut dirty) = (Vec::new(), Vec::new());
        assert!(!hub.take(0, &mut published, &mut dirty, true));
        publish(&hub, &[("S2", 1)]);
        assert!(
            !hub.take(0, &mut published, &mut dirty, true),
            "nobody wants S2"
        );
        publish(&hub, &[("S1", 1)]);
        assert!(hub.take(0, &mut published, &mut dirty, true));
        assert_eq!(published.len(), 1);
    }
}
