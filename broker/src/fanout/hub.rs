//! The hub: where ticks are published and subscriptions change, in one
//! order.
//!
//! A feed hands the hub a batch of validated ticks. For each, the hub checks
//! its `seq` against the symbol's last, frames it **once** (`frame::binary`),
//! keeps it as the symbol's snapshot, and appends it to the inbox of each
//! writer shard that has a subscriber of it, together with that shard's
//! subscriber lists as they are now (`subscriptions.rs`). The hub never
//! touches a connection and never waits for a client.
//!
//! Subscribe and unsubscribe go through the same lock and append their
//! replies to the same inboxes: the ack, then a snapshot of each newly
//! covered symbol. So for every connection and symbol the writer sees the
//! ack, then the snapshot, then every tick published after it, in `seq`
//! order and never twice; and after an unsubscribe's ack, no tick of what
//! it dropped.
//!
//! Locking: one `parking_lot` mutex over the symbol table, the subscriptions
//! and the publication counter. It is held for a feed batch (at most 1,024
//! ticks) or one (un)subscribe, never across an await; inboxes are locked
//! inside it (hub, then inbox; never the other way round). A subscribe to
//! `*` sends a snapshot of every symbol, up to 100,000: it does that
//! [`SNAPSHOT_CHUNK`] symbols at a time and hands the lock to any waiting
//! publisher between chunks (`MutexGuard::bump`), so publication waits for
//! one chunk, not for the whole table.

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};
use tickcast_protocol::control::RequestError;
use tickcast_protocol::ServerMessage;

use crate::auth::entitlements::Entitlements;
use crate::fanout::frame;
use crate::fanout::inbox::{Delivery, Inbox, Recipients};
use crate::fanout::subscriptions::{Route, Snapshot, Subscriptions};
use crate::fanout::symbols::{SymbolId, SymbolTable};
use crate::observe::latency::Stage;
use crate::observe::metrics::Metrics;
use tickcast_protocol::clock::now_ns;

/// Symbols whose snapshot one lock hold of a `*` subscribe sends. Measured
/// in `benches/benches/broker.rs` (2026-12-01): a `*` subscribe over
/// 100,000 symbols takes 2.9 ms in all, so one chunk holds the lock for
/// about 30 µs; publications of one tick made meanwhile waited p50 0.16 µs,
/// p99 0.74 µs, p99.9 79 µs, at most 0.71 ms (20 such subscribes back to
/// back). Without chunks the publisher would wait the whole 2.9 ms.
pub const SNAPSHOT_CHUNK: usize = 1024;

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

struct State {
    symbols: SymbolTable,
    subscriptions: Subscriptions,
    /// The position the next published tick gets (counts every accepted
    /// tick); a symbol's snapshot is stale for a `*` subscriber once the
    /// symbol has a tick at or after the subscribe's position.
    next_pos: u64,
    /// Per shard: the deliveries of the batch being published.
    outgoing: Vec<Vec<Delivery>>,
}

/// Subscriptions, snapshots and publication (see the module docs).
pub struct Hub {
    state: Mutex<State>,
    inboxes: Vec<Arc<Inbox>>,
    metrics: Arc<Metrics>,
}

impl Hub {
    /// A hub for `shards` writer shards, and their inboxes (in shard order),
    /// which wake a pausing writer once `urgent_bytes` of frames wait.
    pub fn with_inboxes(
        shards: usize,
        urgent_bytes: usize,
        metrics: Arc<Metrics>,
    ) -> (Self, Vec<Arc<Inbox>>) {
        let inboxes: Vec<Arc<Inbox>> = (0..shards)
            .map(|_| Arc::new(Inbox::new(urgent_bytes)))
            .collect();
        (Self::new(inboxes.clone(), metrics), inboxes)
    }

    /// A hub publishing into the inboxes of its writer shards, in order.
    pub fn new(inboxes: Vec<Arc<Inbox>>, metrics: Arc<Metrics>) -> Self {
        let shards = inboxes.len();
        Self {
            state: Mutex::new(State {
                symbols: SymbolTable::default(),
                subscriptions: Subscriptions::new(shards),
                next_pos: 0,
                outgoing: vec![Vec::new(); shards],
            }),
            inboxes,
            metrics,
        }
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
        {
            let mut guard = self.state.lock();
            let st = &mut *guard;
            for t in batch {
                let Some(id) = st.subscriptions.intern(&mut st.symbols, t.sym) else {
                    rejected += 1;
                    continue;
                };
                let sym = st.symbols.get_mut(id);
                if t.seq <= sym.last_seq && t.seq != 1 {
                    stale += 1;
                    continue;
                }
                sym.last_seq = t.seq;
                let frame = frame::binary(t.payload);
                let enqueued_ns = now_ns();
                for (shard, out) in st.outgoing.iter_mut().enumerate() {
                    let symbol = st.subscriptions.of_symbol(id, shard);
                    let wildcard = st.subscriptions.of_wildcard(shard);
                    if symbol.is_none() && wildcard.is_none() {
                        continue;
                    }
                    out.push(Delivery {
                        frame: frame.clone(),
                        sym: Some(id),
                        enqueued_ns,
                        to: Recipients::Subscribers {
                            symbol: symbol.cloned(),
                            wildcard: wildcard.cloned(),
                        },
                    });
                }
                sym.latest = Some(frame);
                sym.latest_pos = st.next_pos;
                st.next_pos += 1;
                accepted += 1;
                stage_samples.push((
                    t.recv_ns.saturating_sub(t.ts),
                    enqueued_ns.saturating_sub(t.recv_ns),
                ));
            }
            for (inbox, out) in self.inboxes.iter().zip(&mut st.outgoing) {
                compacted += inbox.push_deliveries(out);
            }
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

    /// Adds `topics` to a connection's subscription, then sends it the ack
    /// (the full list) and a snapshot: the latest tick of each newly covered
    /// symbol. All or nothing: on an error nothing changes. Returns the
    /// ack's size, for the connection's reply budget (`replies.rs`).
    pub fn subscribe(
        &self,
        route: Route,
        topics: &[String],
        max_topics: usize,
        access: &Arc<Entitlements>,
    ) -> Result<usize, RequestError> {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let done =
            st.subscriptions
                .subscribe(&mut st.symbols, route, topics, max_topics, access)?;
        let inbox = &self.inboxes[route.shard as usize];
        let ack = ack_frame(done.topics);
        let ack_len = ack.len();
        let mut out = vec![control(route, ack)];
        let now = now_ns();
        match done.snapshot {
            Snapshot::Symbols(ids) => {
                out.extend(
                    ids.into_iter()
                        .filter_map(|id| snapshot(&st.symbols, id, route, now)),
                );
                inbox.push_deliveries(&mut out);
            }
            Snapshot::AllExcept(held) => {
                // Everything published before this point is covered by the
                // snapshot; a symbol ticking later (while the lock is handed
                // over between chunks) is already live for the connection.
                let since = st.next_pos;
                let mut next: SymbolId = 0;
                loop {
                    let st = &mut *guard;
                    let end = (next as usize + SNAPSHOT_CHUNK).min(st.symbols.len()) as SymbolId;
                    out.extend(
                        (next..end)
                            .filter(|id| held.binary_search(id).is_err())
                            .filter(|&id| st.symbols.get(id).latest_pos < since)
                            .filter_map(|id| snapshot(&st.symbols, id, route, now)),
                    );
                    inbox.push_deliveries(&mut out);
                    next = end;
                    if next as usize >= st.symbols.len() {
                        break;
                    }
                    MutexGuard::bump(&mut guard);
                }
            }
        }
        Ok(ack_len)
    }

    /// Removes `topics` from a connection's subscription and sends the ack;
    /// returns the ack's size. Topics it does not hold are ignored.
    pub fn unsubscribe(&self, route: Route, topics: &[String]) -> usize {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let left = st.subscriptions.unsubscribe(&st.symbols, route, topics);
        let ack = ack_frame(left);
        let ack_len = ack.len();
        self.inboxes[route.shard as usize].push_deliveries(&mut vec![control(route, ack)]);
        ack_len
    }

    /// Changes a connection's entitlements from `old` to `access` (a renewed
    /// token; see `Subscriptions::regrant`), then sends the ack and a
    /// snapshot of each symbol its `*` newly covers; returns the ack's size.
    pub fn regrant(&self, route: Route, old: &Entitlements, access: &Arc<Entitlements>) -> usize {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let (topics, newly) = st
            .subscriptions
            .regrant(&mut st.symbols, route, old, access);
        let ack = ack_frame(topics);
        let ack_len = ack.len();
        let now = now_ns();
        let mut out = vec![control(route, ack)];
        out.extend(
            newly
                .into_iter()
                .filter_map(|id| snapshot(&st.symbols, id, route, now)),
        );
        self.inboxes[route.shard as usize].push_deliveries(&mut out);
        ack_len
    }

    /// Forgets a connection's subscriptions (it is going away): no tick
    /// published from now on names it.
    pub fn remove(&self, route: Route) {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        st.subscriptions.remove(&st.symbols, route);
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

/// A control message for one connection.
fn control(route: Route, frame: Bytes) -> Delivery {
    Delivery {
        frame,
        sym: None,
        enqueued_ns: 0,
        to: Recipients::One(route.slot),
    }
}

/// The latest tick of `id`, for one connection, if it has one.
fn snapshot(symbols: &SymbolTable, id: SymbolId, route: Route, now: u64) -> Option<Delivery> {
    let frame = symbols.get(id).latest.clone()?;
    Some(Delivery {
        frame,
        sym: Some(id),
        enqueued_ns: now,
        to: Recipients::One(route.slot),
    })
}

fn ack_frame(topics: Vec<String>) -> Bytes {
    frame::binary(&ServerMessage::Subscribed { topics }.to_msgpack())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::inbox::Item;
    use crate::fanout::symbols::MAX_SYMBOLS;

    /// A hub with one shard, and that shard's inbox.
    fn hub() -> (Hub, Arc<Inbox>, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::default());
        let (hub, mut inboxes) = Hub::with_inboxes(1, usize::MAX, metrics.clone());
        (hub, inboxes.remove(0), metrics)
    }

    fn all() -> Arc<Entitlements> {
        Arc::new(Entitlements::All)
    }

    fn route(slot: u32) -> Route {
        Route { shard: 0, slot }
    }

    fn topics(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| t.to_string()).collect()
    }

    fn subscribe(hub: &Hub, slot: u32, list: &[&str]) {
        if let Err(e) = hub.subscribe(route(slot), &topics(list), 10, &all()) {
            panic!("{e:?}");
        }
    }

    /// Publishes ticks whose payload is `SYM:seq`.
    fn publish(hub: &Hub, ticks: &[(&str, u64)]) {
        let payloads: Vec<String> = ticks.iter().map(|(s, q)| format!("{s}:{q}")).collect();
        let batch: Vec<TickIn<'_>> = ticks
            .iter()
            .zip(&payloads)
            .map(|(&(sym, seq), payload)| TickIn {
                sym,
                seq,
                ts: 1,
                payload: payload.as_bytes(),
                recv_ns: 1,
            })
            .collect();
        hub.publish(&batch);
    }

    /// What the writer would deliver to each of `slots` slots, from what
    /// waits in the inbox: tick payloads, and `ack` for control messages.
    fn delivered(inbox: &Inbox, slots: usize) -> Vec<Vec<String>> {
        let (mut items, mut freed) = (Vec::new(), Vec::new());
        inbox.take(&mut items, &mut freed, false);
        let mut out = vec![Vec::new(); slots];
        for item in items {
            let Item::Deliver(d) = item else { continue };
            let what = match d.sym {
                Some(_) => String::from_utf8_lossy(frame::payload(&d.frame)).into_owned(),
                None => "ack".to_owned(),
            };
            let to: Vec<u32> = match &d.to {
                Recipients::One(slot) => vec![*slot],
                Recipients::Subscribers { symbol, wildcard } => symbol
                    .iter()
                    .chain(wildcard)
                    .flat_map(|l| l.iter().copied())
                    .collect(),
            };
            for slot in to {
                out[slot as usize].push(what.clone());
            }
        }
        out
    }

    #[test]
    fn a_symbol_and_the_wildcard_together_deliver_each_tick_once() {
        let (hub, inbox, _) = hub();
        subscribe(&hub, 0, &["S1", "S2"]);
        subscribe(&hub, 1, &["S1"]);
        publish(&hub, &[("S1", 1), ("S2", 1), ("S3", 1)]);
        assert_eq!(
            delivered(&inbox, 2),
            [vec!["ack", "S1:1", "S2:1"], vec!["ack", "S1:1"]]
        );

        // Onto `*`: the ack, a snapshot of the one symbol it did not hold,
        // then every tick once.
        subscribe(&hub, 0, &["*"]);
        publish(&hub, &[("S1", 2), ("S2", 2), ("S3", 2)]);
        assert_eq!(
            delivered(&inbox, 2),
            [vec!["ack", "S3:1", "S1:2", "S2:2", "S3:2"], vec!["S1:2"]]
        );

        // A symbol subscribed while on `*` adds nothing twice.
        subscribe(&hub, 0, &["S3"]);
        publish(&hub, &[("S3", 3)]);
        assert_eq!(delivered(&inbox, 2), [vec!["ack", "S3:3"], vec![]]);

        // Off `*`: back to the symbols it still holds.
        hub.unsubscribe(route(0), &topics(&["*", "S2"]));
        publish(&hub, &[("S1", 4), ("S2", 4), ("S3", 4)]);
        assert_eq!(
            delivered(&inbox, 2),
            [vec!["ack", "S1:4", "S3:4"], vec!["S1:4"]]
        );

        // Gone: nothing more, and the other subscriber is untouched.
        hub.remove(route(0));
        publish(&hub, &[("S1", 5)]);
        assert_eq!(delivered(&inbox, 2), [vec![], vec!["S1:5"]]);
    }

    #[test]
    fn a_restricted_wildcard_gets_its_symbols_only_and_leaves_exactly_them() {
        let (hub, inbox, _) = hub();
        let some = Arc::new(Entitlements::parse(&["S1", "B.*"]).unwrap_or_else(|e| panic!("{e}")));
        publish(&hub, &[("S1", 1), ("S2", 1), ("B.1", 1)]);
        let sub = |slot, list: &[&str]| {
            hub.subscribe(route(slot), &topics(list), 10, &some)
                .map(|_| ())
                .map_err(|e| e.code)
        };
        assert_eq!(
            sub(0, &["S2"]),
            Err(tickcast_protocol::ErrorCode::NotEntitled)
        );
        assert_eq!(sub(0, &["S1"]), Ok(()));
        assert_eq!(sub(0, &["*"]), Ok(()));
        // A new symbol inside the pattern joins on its first tick; one
        // outside never reaches it.
        publish(
            &hub,
            &[("S1", 2), ("S2", 2), ("B.1", 2), ("B.2", 1), ("S3", 1)],
        );
        assert_eq!(
            delivered(&inbox, 1),
            [vec![
                "ack", "S1:1", "ack", "B.1:1", "S1:2", "B.1:2", "B.2:1"
            ]]
        );
        // Off `*`: only the named S1 is left.
        hub.unsubscribe(route(0), &topics(&["*"]));
        publish(&hub, &[("S1", 3), ("B.1", 3), ("B.2", 2)]);
        assert_eq!(delivered(&inbox, 1), [vec!["ack", "S1:3"]]);
        // Back on `*`, then gone: nothing at all.
        assert_eq!(sub(0, &["*"]), Ok(()));
        hub.remove(route(0));
        publish(&hub, &[("S1", 4), ("B.1", 4), ("B.3", 1)]);
        assert_eq!(delivered(&inbox, 1), [vec!["ack", "B.1:3", "B.2:2"]]);
    }

    #[test]
    fn a_subscribe_after_publication_gets_the_snapshot_and_not_the_older_ticks() {
        let (hub, inbox, _) = hub();
        subscribe(&hub, 1, &["S1"]);
        publish(&hub, &[("S1", 1), ("S1", 2)]);
        // Published but not yet taken by the writer when the subscribe
        // lands: the snapshot (seq 2) stands for both.
        subscribe(&hub, 0, &["S1"]);
        publish(&hub, &[("S1", 3)]);
        assert_eq!(
            delivered(&inbox, 2),
            [
                vec!["ack", "S1:2", "S1:3"],
                vec!["ack", "S1:1", "S1:2", "S1:3"]
            ]
        );
    }

    #[test]
    fn ticks_published_before_an_unsubscribe_come_before_its_ack_and_none_after() {
        let (hub, inbox, _) = hub();
        subscribe(&hub, 0, &["S1", "S2"]);
        publish(&hub, &[("S1", 1), ("S2", 1)]);
        hub.unsubscribe(route(0), &topics(&["S2"]));
        publish(&hub, &[("S1", 2), ("S2", 2)]);
        assert_eq!(
            delivered(&inbox, 1),
            [vec!["ack", "S1:1", "S2:1", "ack", "S1:2"]]
        );
    }

    #[test]
    fn duplicates_are_skipped_and_a_restarted_feed_is_accepted() {
        let (hub, inbox, metrics) = hub();
        subscribe(&hub, 0, &["S1"]);
        publish(
            &hub,
            &[("S1", 1), ("S1", 2), ("S1", 2), ("S1", 1), ("S1", 2)],
        );
        assert_eq!(
            delivered(&inbox, 1),
            [vec!["ack", "S1:1", "S1:2", "S1:1", "S1:2"]]
        );
        assert_eq!(metrics.ticks_stale.get(), 1);
    }

    #[test]
    fn a_wildcard_snapshot_over_many_chunks_is_exact_while_ticks_keep_coming() {
        let (hub, inbox, _) = hub();
        let names: Vec<String> = (0..5 * SNAPSHOT_CHUNK + 17)
            .map(|i| format!("S{i}"))
            .collect();
        let first: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), 1)).collect();
        publish(&hub, &first);
        subscribe(&hub, 0, &[&names[3]]);
        delivered(&inbox, 1);
        let hub = Arc::new(hub);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // A publisher ticks every symbol again and again while the
        // subscribe hands the lock over between its chunks.
        let publisher = {
            let (hub, stop, names) = (hub.clone(), stop.clone(), names.clone());
            std::thread::spawn(move || {
                let mut seq = 1;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && seq < 50 {
                    seq += 1;
                    for chunk in names.chunks(97) {
                        let batch: Vec<(&str, u64)> =
                            chunk.iter().map(|n| (n.as_str(), seq)).collect();
                        publish(&hub, &batch);
                    }
                }
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(5));
        subscribe(&hub, 0, &["*"]);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(publisher.join().is_ok());
        let got = delivered(&inbox, 1).remove(0);
        let ack = got.iter().position(|d| d == "ack");
        assert!(ack.is_some(), "no ack");
        // Every symbol: its ticks after the ack strictly increase (a
        // snapshot never repeats or goes back on a live tick) and none is
        // missing; S3 (held before) never gets a second snapshot.
        let mut last: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
        for d in &got[ack.unwrap_or(0) + 1..] {
            let Some((sym, seq)) = d.split_once(':') else {
                continue;
            };
            let seq: u64 = seq.parse().unwrap_or(0);
            let prev = last.insert(sym, seq).unwrap_or(0);
            assert!(seq > prev, "{sym}: {seq} after {prev}");
        }
        for name in names.iter().filter(|n| **n != names[3]) {
            assert!(
                last.contains_key(name.as_str()),
                "{name} got no snapshot and no tick"
            );
        }
    }

    #[test]
    fn a_full_symbol_table_rejects_ticks_of_new_symbols() {
        let (hub, inbox, metrics) = hub();
        let names: Vec<String> = (0..MAX_SYMBOLS).map(|i| format!("S{i}")).collect();
        let first: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), 1)).collect();
        publish(&hub, &first);
        publish(&hub, &[("NEW", 1)]);
        assert_eq!(metrics.ticks_rejected.get(), 1);
        assert_eq!(hub.symbol_count(), MAX_SYMBOLS);
        let refused = hub.subscribe(route(0), &topics(&["NEW2"]), 10, &all());
        assert!(refused.is_err());
        delivered(&inbox, 1);
    }

    #[test]
    fn a_writer_far_behind_gets_the_latest_of_each_symbol() {
        let (hub, inbox, metrics) = hub();
        subscribe(&hub, 0, &["S1", "S2"]);
        delivered(&inbox, 1);
        let names = ["S1", "S2"];
        let ticks: Vec<(&str, u64)> = (0..crate::fanout::inbox::MAX_WAITING as u64 + 10)
            .map(|i| (names[(i % 2) as usize], i + 2))
            .collect();
        for chunk in ticks.chunks(1024) {
            publish(&hub, chunk);
        }
        assert!(metrics.overload_conflated.get() > 0);
        let got = delivered(&inbox, 1).remove(0);
        assert!(got.len() < ticks.len());
        let last = ticks.len() as u64 + 1;
        assert_eq!(got.last().map(String::as_str), Some(&*format!("S2:{last}")));
        assert!(
            got.contains(&format!("S1:{}", last - 1)),
            "the latest S1 is kept"
        );
    }
}
