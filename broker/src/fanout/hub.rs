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

use crate::fanout::frame;
use crate::fanout::inbox::{Delivery, Inbox, Recipients};
use crate::fanout::subscriptions::{Route, Snapshot, Subscriptions};
use crate::fanout::symbols::{SymbolId, SymbolTable};
use crate::observe::latency::Stage;
use crate::observe::metrics::Metrics;
use tickcast_protocol::clock::now_ns;

/// Symbols whose snapshot one lock hold of a `*` subscribe sends: measured
/// in `benches/benches/broker.rs` (`hub/subscribe_wildcard_100k`).
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
                let Some(id) = st.symbols.intern(t.sym) else {
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
    /// symbol. All or nothing: on an error nothing changes.
    pub fn subscribe(
        &self,
        route: Route,
        topics: &[String],
        max_topics: usize,
    ) -> Result<(), RequestError> {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let done = st
            .subscriptions
            .subscribe(&mut st.symbols, route, topics, max_topics)?;
        let inbox = &self.inboxes[route.shard as usize];
        let mut out = vec![control(route, ack_frame(done.topics))];
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
        Ok(())
    }

    /// Removes `topics` from a connection's subscription and sends the ack.
    /// Topics it does not hold are ignored.
    pub fn unsubscribe(&self, route: Route, topics: &[String]) {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let left = st.subscriptions.unsubscribe(&st.symbols, route, topics);
        self.inboxes[route.shard as usize]
            .push_deliveries(&mut vec![control(route, ack_frame(left))]);
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
