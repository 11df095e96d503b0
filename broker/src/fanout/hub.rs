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
//! Each accepted tick also goes into its symbol's history ring
//! (`history.rs`); a tick with `seq` 1 after a higher one is a feed restart:
//! the ring starts over under the symbol's new epoch and its subscribers
//! are told (`reset`, reason `feed_restart`) just before the tick.
//!
//! Subscribe and unsubscribe go through the same lock and append their
//! replies to the same inboxes: a change of rate caps, the ack, then per
//! newly covered symbol either a snapshot, or for a resume the `recovered`
//! notice and every tick after the client's position from the ring, or a
//! `reset` and the snapshot. So for every connection and symbol the writer
//! sees the ack, then the snapshot (or the replay), then every tick
//! published after it, in `seq` order and never twice; and after an
//! unsubscribe's ack, no tick of what it dropped.
//!
//! Locking: one `parking_lot` mutex over the symbol table, the subscriptions
//! and the publication counter. It is held for a feed batch (at most 1,024
//! ticks) or one (un)subscribe, never across an await; inboxes are locked
//! inside it (hub, then inbox; never the other way round). A subscribe to
//! `*` sends a snapshot of every symbol, up to 100,000: it does that
//! [`SNAPSHOT_CHUNK`] symbols at a time and hands the lock to any waiting
//! publisher between chunks (`MutexGuard::bump`), so publication waits for
//! one chunk, not for the whole table.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};
use tickcast_protocol::control::{GapReason, RequestError, ResetReason, SubscribeOptions};
use tickcast_protocol::{ServerMessage, WILDCARD};

use crate::auth::entitlements::Entitlements;
use crate::fanout::frame;
use crate::fanout::history::{History, Run};
use crate::fanout::inbox::{Delivery, Inbox, Item, Recipients};
use crate::fanout::pace::PaceChange;
use crate::fanout::subscriptions::{Route, Snapshot, Subscriptions};
use crate::fanout::symbols::{SymbolId, SymbolTable};
use crate::fanout::window::Kind;
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
    /// The epoch of its stream, when the feed names one (an edge's ticks
    /// from the origin, `--nats-in`); `None` for a feed of this broker's own.
    pub epoch: Option<&'a str>,
}

/// A tick the hub accepted, as the tap sees it: its symbol, its stream's
/// epoch and its payload (a slice of the frame built for fan-out: no copy).
#[derive(Debug, Clone)]
pub struct Accepted {
    /// Symbol.
    pub sym: Arc<str>,
    /// The epoch of the symbol's stream.
    pub epoch: Arc<str>,
    /// The encoded tick, as published.
    pub payload: Bytes,
}

/// What sees every accepted tick, in publication order, one call per batch
/// (`--nats-out`). Called after the hub's lock is let go; it must not wait.
pub trait Tap: Send + Sync {
    /// A published batch's accepted ticks.
    fn accepted(&self, batch: Vec<Accepted>);
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
    /// Recent ticks per symbol, and the epochs.
    history: History,
    /// Connections that have asked for a rate cap (their later subscribes
    /// and unsubscribes change their caps too).
    capped: HashSet<Route>,
}

/// Subscriptions, snapshots and publication (see the module docs).
pub struct Hub {
    state: Mutex<State>,
    inboxes: Vec<Arc<Inbox>>,
    metrics: Arc<Metrics>,
    /// Set once at start, before any feed runs ([`Hub::set_tap`]).
    tap: OnceLock<Arc<dyn Tap>>,
}

impl Hub {
    /// A hub for `shards` writer shards, and their inboxes (in shard order),
    /// which wake a pausing writer once `urgent_bytes` of frames wait.
    pub fn with_inboxes(
        shards: usize,
        urgent_bytes: usize,
        history: History,
        metrics: Arc<Metrics>,
    ) -> (Self, Vec<Arc<Inbox>>) {
        let inboxes: Vec<Arc<Inbox>> = (0..shards)
            .map(|_| Arc::new(Inbox::new(urgent_bytes)))
            .collect();
        (Self::new(inboxes.clone(), history, metrics), inboxes)
    }

    /// A hub publishing into the inboxes of its writer shards, in order.
    pub fn new(inboxes: Vec<Arc<Inbox>>, history: History, metrics: Arc<Metrics>) -> Self {
        let shards = inboxes.len();
        Self {
            state: Mutex::new(State {
                symbols: SymbolTable::default(),
                subscriptions: Subscriptions::new(shards),
                next_pos: 0,
                outgoing: vec![Vec::new(); shards],
                history,
                capped: HashSet::new(),
            }),
            inboxes,
            metrics,
            tap: OnceLock::new(),
        }
    }

    /// Gives every accepted tick from now on to `tap` too (once; a second
    /// tap is refused and handed back).
    pub fn set_tap(&self, tap: Arc<dyn Tap>) -> Result<(), Arc<dyn Tap>> {
        self.tap.set(tap)
    }

    /// Fans a batch of ticks out to their subscribers' writer shards.
    ///
    /// Per symbol, a tick whose `seq` is not above the last one seen is a
    /// duplicate (or arrived out of order) and is skipped, so clients get each
    /// `seq` at most once and in order; `seq == 1` is taken as a restarted feed
    /// and accepted (see the module docs). A tick that names its epoch (an
    /// edge's) is judged by it instead: a new epoch starts the symbol over,
    /// and `seq 1` again under the same epoch is a duplicate (a second
    /// origin's copy).
    pub fn publish(&self, batch: &[TickIn<'_>]) {
        let mut stage_samples: Vec<(u64, u64)> = Vec::with_capacity(batch.len());
        let tap = self.tap.get();
        let mut tapped = Vec::with_capacity(if tap.is_some() { batch.len() } else { 0 });
        let (mut accepted, mut stale, mut rejected, mut compacted) = (0u64, 0u64, 0u64, 0u64);
        let mut restarts = 0u64;
        let mut upstream = 0u64;
        let (history_ticks, history_bytes);
        {
            let mut guard = self.state.lock();
            let st = &mut *guard;
            for t in batch {
                let Some(id) = st.subscriptions.intern(&mut st.symbols, t.sym) else {
                    rejected += 1;
                    continue;
                };
                let sym = st.symbols.get_mut(id);
                let restart = match t.epoch {
                    Some(epoch) => st.history.adopt(id, epoch),
                    None if t.seq == 1 && sym.last_seq >= 1 => {
                        st.history.restart(id);
                        Some(ResetReason::FeedRestart)
                    }
                    None => None,
                };
                if restart.is_none() && t.seq <= sym.last_seq && (t.seq != 1 || t.epoch.is_some()) {
                    stale += 1;
                    continue;
                }
                // An edge knows the origin's numbering is whole: a jump is
                // ticks that never reached it, and its subscribers are told.
                let hole = (t.epoch.is_some() && restart.is_none() && sym.last_seq > 0)
                    .then(|| sym.last_seq + 1..t.seq)
                    .filter(|missed| !missed.is_empty());
                sym.last_seq = t.seq;
                let mut notice = None;
                if let Some(reason) = restart {
                    restarts += 1;
                    notice = Some(frame::message(&ServerMessage::Reset {
                        sym: t.sym.to_owned(),
                        reason,
                        epoch: Some(st.history.epoch_of(id)),
                    }));
                } else if let Some(missed) = hole {
                    upstream += missed.end - missed.start;
                    notice = Some(frame::gap(
                        t.sym.to_owned(),
                        missed.start,
                        missed.end - 1,
                        GapReason::Upstream,
                    ));
                }
                let frame = frame::binary(t.payload);
                let enqueued_ns = now_ns();
                for (shard, out) in st.outgoing.iter_mut().enumerate() {
                    let symbol = st.subscriptions.of_symbol(id, shard);
                    let wildcard = st.subscriptions.of_wildcard(shard);
                    if symbol.is_none() && wildcard.is_none() {
                        continue;
                    }
                    let to = Recipients::Subscribers {
                        symbol: symbol.cloned(),
                        wildcard: wildcard.cloned(),
                    };
                    if let Some(notice) = &notice {
                        out.push(Delivery {
                            frame: notice.clone(),
                            kind: Kind::Notice,
                            enqueued_ns: 0,
                            to: to.clone(),
                        });
                    }
                    out.push(Delivery {
                        frame: frame.clone(),
                        kind: Kind::Tick(id),
                        enqueued_ns,
                        to,
                    });
                }
                st.history.record(id, t.seq, t.ts, st.next_pos, &frame);
                let sym = st.symbols.get_mut(id);
                if tap.is_some() {
                    tapped.push(Accepted {
                        sym: sym.name.clone(),
                        epoch: st.history.epoch_shared(id),
                        payload: frame::payload_bytes(&frame),
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
            history_ticks = st.history.len();
            history_bytes = st.history.bytes();
        }
        if let Some(tap) = tap {
            if !tapped.is_empty() {
                tap.accepted(tapped);
            }
        }
        self.metrics.resets.add(restarts);
        self.metrics.upstream_missed.add(upstream);
        self.metrics.history_ticks.set(history_ticks as u64);
        self.metrics.history_bytes.set(history_bytes as u64);
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
    /// (the full list, the epoch) and, per newly covered symbol, a snapshot
    /// or what `options` asks for (a resume from `since`, a start time:
    /// see the module docs). A rate cap in `options` applies from the
    /// first tick after the ack. All or nothing: on an error nothing
    /// changes. Returns the size of the replies (the ack and the resume's
    /// notices), for the connection's reply budget (`replies.rs`).
    pub fn subscribe(
        &self,
        route: Route,
        topics: &[String],
        options: &SubscribeOptions,
        max_topics: usize,
        access: &Arc<Entitlements>,
    ) -> Result<usize, RequestError> {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let done =
            st.subscriptions
                .subscribe(&mut st.symbols, route, topics, max_topics, access)?;
        let inbox = &self.inboxes[route.shard as usize];
        if options.max_rate.is_some() || st.capped.contains(&route) {
            let every = options
                .max_rate
                .map(|rate| Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
            if every.is_some() {
                st.capped.insert(route);
            }
            inbox.push(pace(&st.symbols, route, topics, every, false));
        }
        let resume = Resume::new(&st.symbols, options);
        let restarted: Vec<SymbolId> = match &done.snapshot {
            Snapshot::Symbols(ids) => ids
                .iter()
                .copied()
                .filter(|&id| st.history.has_restarted(id))
                .collect(),
            Snapshot::AllExcept(held) => st
                .history
                .restarted()
                .iter()
                .copied()
                .filter(|id| held.binary_search(id).is_err() && st.history.has_restarted(*id))
                .collect(),
        };
        let epochs = restarted
            .into_iter()
            .map(|id| (st.symbols.get(id).name.to_string(), st.history.epoch_of(id)))
            .collect();
        let ack = ack_frame(&st.history, done.topics, epochs);
        let mut opened = Opened {
            replies: ack.len(),
            ..Opened::default()
        };
        let mut out = vec![control(route, ack)];
        let now = now_ns();
        match done.snapshot {
            Snapshot::Symbols(ids) => {
                for id in ids {
                    open(st, id, &resume, route, now, &mut out, &mut opened);
                }
                inbox.push_deliveries(&mut out);
            }
            Snapshot::AllExcept(held) => {
                // Everything published before this point is covered by the
                // snapshot; a symbol ticking later (while the lock is handed
                // over between chunks) is already live for the connection.
                // Resumed symbols go first, before any hand-over, so their
                // replay and their live ticks meet exactly.
                let mut resumed: Vec<SymbolId> = resume.since.keys().copied().collect();
                resumed.sort_unstable();
                for &id in resumed.iter().filter(|id| held.binary_search(id).is_err()) {
                    open(st, id, &resume, route, now, &mut out, &mut opened);
                }
                let since = st.next_pos;
                let mut next: SymbolId = 0;
                loop {
                    let st = &mut *guard;
                    let end = (next as usize + SNAPSHOT_CHUNK).min(st.symbols.len()) as SymbolId;
                    for id in (next..end)
                        .filter(|id| held.binary_search(id).is_err())
                        .filter(|id| resumed.binary_search(id).is_err())
                        .filter(|&id| st.symbols.get(id).latest_pos < since)
                    {
                        open(st, id, &resume, route, now, &mut out, &mut opened);
                    }
                    inbox.push_deliveries(&mut out);
                    next = end;
                    if next as usize >= st.symbols.len() {
                        break;
                    }
                    MutexGuard::bump(&mut guard);
                }
            }
        }
        drop(guard);
        self.metrics.resumes.add(opened.recovered);
        self.metrics.resumed_ticks.add(opened.replayed);
        self.metrics.resets.add(opened.reset);
        Ok(opened.replies)
    }

    /// Removes `topics` from a connection's subscription (and their rate
    /// caps) and sends the ack; returns the ack's size. Topics it does not
    /// hold are ignored.
    pub fn unsubscribe(&self, route: Route, topics: &[String]) -> usize {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let inbox = &self.inboxes[route.shard as usize];
        if st.capped.contains(&route) {
            inbox.push(pace(&st.symbols, route, topics, None, true));
        }
        let left = st.subscriptions.unsubscribe(&st.symbols, route, topics);
        let ack = ack_frame(&st.history, left, BTreeMap::new());
        let ack_len = ack.len();
        inbox.push_deliveries(&mut vec![control(route, ack)]);
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
        let ack = ack_frame(&st.history, topics, BTreeMap::new());
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
        st.capped.remove(&route);
    }

    /// The broker's epoch (the stream its `seq`s belong to).
    pub fn epoch(&self) -> String {
        self.state.lock().history.epoch().to_owned()
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

/// A control message for one connection (a reply: charged to it).
fn control(route: Route, frame: Bytes) -> Delivery {
    Delivery {
        frame,
        kind: Kind::Reply,
        enqueued_ns: 0,
        to: Recipients::One(route.slot),
    }
}

/// The latest tick of `id`, for one connection, if it has one.
fn snapshot(symbols: &SymbolTable, id: SymbolId, route: Route, now: u64) -> Option<Delivery> {
    let frame = symbols.get(id).latest.clone()?;
    Some(Delivery {
        frame,
        kind: Kind::Tick(id),
        enqueued_ns: now,
        to: Recipients::One(route.slot),
    })
}

/// An ack that lists `topics`, under the broker's epoch, with the own
/// `epochs` of newly covered symbols whose feed restarted.
fn ack_frame(history: &History, topics: Vec<String>, epochs: BTreeMap<String, String>) -> Bytes {
    frame::message(&ServerMessage::Subscribed {
        topics,
        epoch: Some(history.epoch().to_owned()),
        epochs,
    })
}

/// The rate-cap change a request on `topics` makes: the symbols it names
/// (where known) and whether it names `*`.
fn pace(
    symbols: &SymbolTable,
    route: Route,
    topics: &[String],
    every: Option<Duration>,
    forget: bool,
) -> Item {
    Item::Pace {
        slot: route.slot,
        change: PaceChange {
            syms: topics
                .iter()
                .filter(|t| *t != WILDCARD)
                .filter_map(|t| symbols.id(t))
                .collect(),
            wildcard: topics.iter().any(|t| t == WILDCARD),
            every,
            forget,
        },
    }
}

/// A subscribe's positions, by symbol id.
struct Resume<'a> {
    since: HashMap<SymbolId, (u64, Option<&'a str>)>,
    from_ts: Option<u64>,
}

impl<'a> Resume<'a> {
    fn new(symbols: &SymbolTable, options: &'a SubscribeOptions) -> Self {
        let since = options
            .since
            .iter()
            .filter_map(|(name, &seq)| {
                let epoch = options.epochs.get(name).or(options.epoch.as_ref());
                symbols
                    .id(name)
                    .map(|id| (id, (seq, epoch.map(String::as_str))))
            })
            .collect();
        Self {
            since,
            from_ts: options.from_ts,
        }
    }
}

/// What a subscribe sent, for the reply budget and the counters.
#[derive(Default)]
struct Opened {
    replies: usize,
    /// Frame bytes replayed so far (bounded by `History::max_replay`).
    replay_bytes: usize,
    recovered: u64,
    replayed: u64,
    reset: u64,
}

/// Starts a newly covered symbol for one connection: its snapshot, or what
/// the resume asks for (the ticks after the client's position, from the
/// ring, after a `recovered`; or a `reset` and the snapshot).
fn open(
    st: &State,
    id: SymbolId,
    resume: &Resume<'_>,
    route: Route,
    now: u64,
    out: &mut Vec<Delivery>,
    opened: &mut Opened,
) {
    let replay = |run: Run<'_>, out: &mut Vec<Delivery>| {
        out.extend(run.frames().into_iter().map(|frame| Delivery {
            frame,
            kind: Kind::Tick(id),
            enqueued_ns: now,
            to: Recipients::One(route.slot),
        }))
    };
    let name = || st.symbols.get(id).name.to_string();
    let reply = |msg: ServerMessage, out: &mut Vec<Delivery>, opened: &mut Opened| {
        let f = frame::message(&msg);
        opened.replies += f.len();
        out.push(control(route, f));
    };
    if let Some(&(seq, epoch)) = resume.since.get(&id) {
        let last_seq = st.symbols.get(id).last_seq;
        let budget = st.history.max_replay().saturating_sub(opened.replay_bytes);
        let answer = st
            .history
            .check_epoch(id, epoch)
            .and_then(|()| st.history.since(id, seq, last_seq))
            .and_then(|run| {
                if run.bytes() > budget {
                    Err(ResetReason::TooOld)
                } else {
                    Ok(run)
                }
            });
        match answer {
            Ok(run) => {
                let to = run.last_seq().unwrap_or(seq);
                let ticks = run.ticks() as u64;
                opened.replay_bytes += run.bytes();
                reply(
                    ServerMessage::Recovered {
                        sym: name(),
                        ticks,
                        to,
                    },
                    out,
                    opened,
                );
                replay(run, out);
                opened.recovered += 1;
                opened.replayed += ticks;
                return;
            }
            Err(reason) => {
                reply(
                    ServerMessage::Reset {
                        sym: name(),
                        reason,
                        epoch: None,
                    },
                    out,
                    opened,
                );
                opened.reset += 1;
            }
        }
    } else if let (Some(ts), true) = (resume.from_ts, st.history.enabled()) {
        let run = st.history.from_ts(id, ts);
        opened.replayed += run.ticks() as u64;
        replay(run, out);
        return;
    }
    out.extend(snapshot(&st.symbols, id, route, now));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::inbox::Item;
    use crate::fanout::symbols::MAX_SYMBOLS;

    /// A hub with one shard, and that shard's inbox.
    fn hub() -> (Hub, Arc<Inbox>, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::default());
        let (hub, mut inboxes) = Hub::with_inboxes(
            1,
            usize::MAX,
            History::with_epoch(100, usize::MAX, "test".into()),
            metrics.clone(),
        );
        (hub, inboxes.remove(0), metrics)
    }

    fn all() -> Arc<Entitlements> {
        Arc::new(Entitlements::All)
    }

    fn none() -> SubscribeOptions {
        SubscribeOptions::default()
    }

    fn route(slot: u32) -> Route {
        Route { shard: 0, slot }
    }

    fn topics(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| t.to_string()).collect()
    }

    fn subscribe(hub: &Hub, slot: u32, list: &[&str]) {
        if let Err(e) = hub.subscribe(route(slot), &topics(list), &none(), 10, &all()) {
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
                epoch: None,
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
            let what = match d.kind {
                Kind::Tick(_) => String::from_utf8_lossy(frame::payload(&d.frame)).into_owned(),
                Kind::Reply => "ack".to_owned(),
                Kind::Notice => "notice".to_owned(),
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
            hub.subscribe(route(slot), &topics(list), &none(), 10, &some)
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
            [vec!["ack", "S1:1", "S1:2", "notice", "S1:1", "S1:2"]]
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
        let refused = hub.subscribe(route(0), &topics(&["NEW2"]), &none(), 10, &all());
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
