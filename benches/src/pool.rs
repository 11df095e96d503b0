//! The subscriber side of a traffic step: threads full of connections, and
//! the per-connection bookkeeping that turns received ticks into counts,
//! gaps and latencies.
//!
//! Each thread runs a single-threaded tokio runtime holding its share of the
//! connections as local tasks, so the hot path has no locks and no atomics
//! per frame: statistics live in a thread-local `RefCell` borrowed once per
//! read (a read returns up to 64 KiB, hundreds of frames). Only a running
//! total for the progress bar is shared, updated once per read.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use tickcast_protocol::TickHeader;
use tokio::sync::{watch, Semaphore};

use crate::conn::{ConnOptions, Event, Protocol, SubConn};
use crate::latency::{now_ns, LatencyRecorder};
use crate::tls::ClientTls;
use crate::universe::{pack, Class, SubscriberPlan, Topics, Universe};

/// The read buffer all connections of a thread share: thousands of ticks
/// per syscall when busy.
const READ_BUF: usize = 256 * 1024;
/// A connection's own buffer, for its upgrade response, subscription
/// acknowledgement and any partial frame a read ends with (it grows if one
/// frame needs more).
const CONN_BUF: usize = 4 * 1024;
/// A TLS connection's buffer, which all its reads go through
/// (`conn.rs`): a whole TLS record's plaintext (16 KiB) and a partial frame.
const TLS_CONN_BUF: usize = 20 * 1024;
/// A stalled subscriber's `SO_RCVBUF`: small, so it backs up into the
/// server's outbox within a moment instead of after megabytes.
const STALLED_RCVBUF: u32 = 16 * 1024;
/// Connects + upgrades + subscribes in flight per thread (a burst of
/// thousands would overflow the server's listen backlog).
const CONNECT_CONCURRENCY: usize = 128;
/// Time allowed for one subscriber to connect and be acknowledged.
const SETUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Time a stalled subscriber gets, at the end, to drain what was buffered
/// for it and see whether the server closed it.
const STALLED_DRAIN: Duration = Duration::from_secs(3);

/// What the subscribers of one class saw.
#[derive(Debug, Clone)]
pub struct ClassStats {
    /// Connections that were acknowledged.
    pub acked: u64,
    /// Connections that could not connect, upgrade or subscribe.
    pub conn_errors: u64,
    /// Subscription requests the server refused.
    pub refused: u64,
    /// Live ticks received (after the subscription, in order, not repeats).
    pub delivered: u64,
    /// Sequence jumps seen (per connection and symbol).
    pub gaps: u64,
    /// Ticks skipped by those jumps: what the server conflated or dropped.
    pub missing: u64,
    /// Ticks received again or out of order.
    pub duplicates: u64,
    /// Ticks of symbols the connection did not subscribe to.
    pub unexpected: u64,
    /// Snapshot ticks (the state at subscription time, not counted).
    pub snapshots: u64,
    /// Frames that were neither ticks nor expected control messages.
    pub other: u64,
    /// Connections the server closed (or reset) during the step.
    pub disconnected: u64,
    /// Close codes the server sent, and how often.
    pub close_codes: BTreeMap<u16, u64>,
    /// Latency of live ticks sent after the warm-up.
    pub latency: LatencyRecorder,
}

impl ClassStats {
    fn new(max_seconds: usize) -> Self {
        Self {
            acked: 0,
            conn_errors: 0,
            refused: 0,
            delivered: 0,
            gaps: 0,
            missing: 0,
            duplicates: 0,
            unexpected: 0,
            snapshots: 0,
            other: 0,
            disconnected: 0,
            close_codes: BTreeMap::new(),
            latency: LatencyRecorder::new(max_seconds),
        }
    }

    fn merge(&mut self, o: &ClassStats) {
        self.acked += o.acked;
        self.conn_errors += o.conn_errors;
        self.refused += o.refused;
        self.delivered += o.delivered;
        self.gaps += o.gaps;
        self.missing += o.missing;
        self.duplicates += o.duplicates;
        self.unexpected += o.unexpected;
        self.snapshots += o.snapshots;
        self.other += o.other;
        self.disconnected += o.disconnected;
        for (code, n) in &o.close_codes {
            *self.close_codes.entry(*code).or_default() += n;
        }
        self.latency.merge(&o.latency);
    }

    fn closed(&mut self, code: Option<u16>) {
        self.disconnected += 1;
        if let Some(code) = code {
            *self.close_codes.entry(code).or_default() += 1;
        }
    }
}

/// One [`ClassStats`] per [`Class`], indexed by `class as usize`.
pub type StatsByClass = [ClassStats; 3];

/// What all subscribers of a step saw.
#[derive(Debug, Clone)]
pub struct PoolResult {
    /// Statistics per class.
    pub stats: StatsByClass,
    /// Indices (into the plans) of the connections that were acknowledged.
    pub acked: Vec<usize>,
}

/// What the subscriber threads need to know.
#[derive(Debug)]
pub struct PoolSpec {
    /// The server's WebSocket address.
    pub ws: SocketAddr,
    /// How to talk to it.
    pub protocol: Protocol,
    /// One entry per connection.
    pub plans: Arc<Vec<SubscriberPlan>>,
    /// Symbol names and indices.
    pub universe: Arc<Universe>,
    /// Each symbol's last published seq before this step: anything at or
    /// below it is a snapshot, the first live tick is the next one.
    pub baseline: Arc<Vec<u64>>,
    /// Subscriber threads.
    pub threads: usize,
    /// The pause of a slow subscriber after each read.
    pub slow_delay: Duration,
    /// Per-second latency slots to keep.
    pub max_seconds: usize,
    /// Subscribe over wss with this (None: ws).
    pub tls: Option<ClientTls>,
}

/// Counters shared between the subscriber threads and the step's driver.
#[derive(Debug)]
pub struct Shared {
    acked: AtomicUsize,
    failed: AtomicUsize,
    delivered: AtomicU64,
    measure_start_ns: AtomicU64,
}

/// Running subscriber threads.
#[derive(Debug)]
pub struct Pool {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    threads: Vec<JoinHandle<Result<PoolResult>>>,
    total: usize,
    max_seconds: usize,
}

impl Pool {
    /// Starts the threads; they connect and subscribe at once.
    pub fn start(spec: PoolSpec) -> Result<Pool> {
        let shared = Arc::new(Shared {
            acked: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            delivered: AtomicU64::new(0),
            measure_start_ns: AtomicU64::new(u64::MAX),
        });
        let (stop, stop_rx) = watch::channel(false);
        let total = spec.plans.len();
        let max_seconds = spec.max_seconds;
        let threads_n = spec.threads.clamp(1, total.max(1));
        let spec = Arc::new(spec);
        let mut threads = Vec::new();
        for t in 0..threads_n {
            let mine: Vec<usize> = (t..total).step_by(threads_n).collect();
            let (spec, shared, stop_rx) = (spec.clone(), shared.clone(), stop_rx.clone());
            let handle = std::thread::Builder::new()
                .name(format!("subscribers-{t}"))
                .spawn(move || run_thread(spec, mine, shared, stop_rx))
                .context("spawn subscriber thread")?;
            threads.push(handle);
        }
        Ok(Pool {
            shared,
            stop,
            threads,
            total,
            max_seconds,
        })
    }

    /// Waits until every connection is acknowledged or has failed, at most
    /// `timeout`; returns (acknowledged, failed).
    pub fn wait_ready(&self, timeout: Duration) -> (usize, usize) {
        let deadline = Instant::now() + timeout;
        loop {
            let acked = self.shared.acked.load(Ordering::Acquire);
            let failed = self.shared.failed.load(Ordering::Acquire);
            if acked + failed >= self.total || Instant::now() >= deadline {
                return (acked, failed);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// From now on, ticks stamped at or after `ns` count towards latency.
    pub fn set_measure_start(&self, ns: u64) {
        self.shared.measure_start_ns.store(ns, Ordering::Release);
    }

    /// Ticks delivered so far to healthy and slow subscribers.
    pub fn delivered(&self) -> u64 {
        self.shared.delivered.load(Ordering::Relaxed)
    }

    /// Stops every connection (stalled ones drain first) and merges the
    /// threads' statistics.
    pub fn finish(self) -> Result<PoolResult> {
        // Receivers may be gone already if a thread failed; that is reported below.
        let _ = self.stop.send(true);
        let mut total = PoolResult {
            stats: empty_stats(self.max_seconds),
            acked: Vec::new(),
        };
        for handle in self.threads {
            let part = handle
                .join()
                .map_err(|_| anyhow!("a subscriber thread panicked"))??;
            for (mine, theirs) in total.stats.iter_mut().zip(&part.stats) {
                mine.merge(theirs);
            }
            total.acked.extend(part.acked);
        }
        total.acked.sort_unstable();
        Ok(total)
    }
}

fn empty_stats(max_seconds: usize) -> StatsByClass {
    Class::ALL.map(|_| ClassStats::new(max_seconds))
}

/// Everything the tasks of one thread share.
struct ThreadCtx {
    spec: Arc<PoolSpec>,
    shared: Arc<Shared>,
    stats: RefCell<StatsByClass>,
    acked: RefCell<Vec<usize>>,
    connect_slots: Semaphore,
    /// The shared read buffer (see `conn.rs`).
    scratch: RefCell<Vec<u8>>,
}

fn run_thread(
    spec: Arc<PoolSpec>,
    mine: Vec<usize>,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) -> Result<PoolResult> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("subscriber runtime")?;
    let local = tokio::task::LocalSet::new();
    let max_seconds = spec.max_seconds;
    let ctx = Rc::new(ThreadCtx {
        spec,
        shared,
        stats: RefCell::new(empty_stats(max_seconds)),
        acked: RefCell::new(Vec::new()),
        connect_slots: Semaphore::new(CONNECT_CONCURRENCY),
        scratch: RefCell::new(vec![0; READ_BUF]),
    });
    local.block_on(&runtime, async {
        let tasks: Vec<_> = mine
            .into_iter()
            .map(|idx| tokio::task::spawn_local(subscriber(ctx.clone(), idx, stop.clone())))
            .collect();
        let mut stop = stop.clone();
        // An error means the pool was dropped: stop too.
        let _ = stop.wait_for(|s| *s).await;
        // Healthy tasks end at once; stalled ones get their drain time.
        let _ = tokio::time::timeout(STALLED_DRAIN + Duration::from_secs(1), async {
            for task in tasks {
                let _ = task.await;
            }
        })
        .await;
    });
    drop(local);
    let result = PoolResult {
        stats: ctx.stats.borrow().clone(),
        acked: ctx.acked.borrow().clone(),
    };
    Ok(result)
}

/// Per-connection sequence tracking: the last seq seen of each subscribed
/// symbol.
///
/// A connection on a few symbols keeps them side by side and finds a
/// tick's symbol by comparing its packed name against those few, so every
/// tick of a read touches the same one or two cache lines. An array over
/// the whole universe per connection (1.6 KB each, 1.6 MB at 1,000
/// connections) cost a cache miss per tick: 6 % of the loadgen's core, on
/// one load.
enum Tracker {
    /// On `*`: every symbol, by universe index.
    All { last: Vec<u64> },
    /// On a few symbols: their packed names (`u64::MAX` for names longer
    /// than 8 bytes, which go through the universe), lengths, universe
    /// indices and last seqs, in step.
    Some {
        packed: Vec<u64>,
        lens: Vec<usize>,
        syms: Vec<usize>,
        last: Vec<u64>,
    },
}

impl Tracker {
    fn new(plan: &SubscriberPlan, universe: &Universe, baseline: &[u64]) -> Self {
        match &plan.topics {
            Topics::All => Tracker::All {
                last: baseline.to_vec(),
            },
            Topics::Some(syms) => {
                let syms: Vec<usize> = syms.iter().map(|&s| s as usize).collect();
                let name = |s: usize| universe.name(s).as_bytes();
                Tracker::Some {
                    packed: syms
                        .iter()
                        .map(|&s| pack(name(s)).unwrap_or(u64::MAX))
                        .collect(),
                    lens: syms.iter().map(|&s| name(s).len()).collect(),
                    last: syms.iter().map(|&s| baseline[s]).collect(),
                    syms,
                }
            }
        }
    }

    /// The universe index of `sym` and its last seq, if subscribed.
    #[inline]
    fn slot(&mut self, sym: &[u8], universe: &Universe) -> Option<(usize, &mut u64)> {
        match self {
            Tracker::All { last } => {
                let i = universe.lookup(sym)?;
                Some((i, &mut last[i]))
            }
            Tracker::Some {
                packed,
                lens,
                syms,
                last,
            } => {
                let slot = match pack(sym) {
                    // Our names hold no NUL bytes, so a name that packs
                    // like one of them but is longer is none of them.
                    Some(key) => packed
                        .iter()
                        .position(|&k| k == key)
                        .filter(|&slot| lens[slot] == sym.len())?,
                    None => {
                        let i = universe.lookup(sym)?;
                        syms.iter().position(|&s| s == i)?
                    }
                };
                Some((syms[slot], &mut last[slot]))
            }
        }
    }

    /// Counts one tick read at `recv` (ns since the epoch).
    #[inline]
    fn on_tick(
        &mut self,
        h: TickHeader<'_>,
        recv: u64,
        measure_start: u64,
        ctx: &ThreadCtx,
        st: &mut ClassStats,
    ) {
        let Some((sym, last)) = self.slot(h.sym, &ctx.spec.universe) else {
            st.unexpected += 1;
            return;
        };
        if h.seq <= *last {
            if h.seq <= ctx.spec.baseline[sym] {
                st.snapshots += 1;
            } else {
                st.duplicates += 1;
            }
            return;
        }
        if h.seq > *last + 1 {
            st.gaps += 1;
            st.missing += h.seq - *last - 1;
        }
        *last = h.seq;
        st.delivered += 1;
        if h.ts >= measure_start {
            let second = (recv.saturating_sub(measure_start) / 1_000_000_000) as usize;
            st.latency.record(h.ts, recv, second);
        }
    }
}

/// What one read found.
enum Flow {
    /// Keep reading.
    Open,
    /// The server closed the connection (close code if it sent one).
    Closed(Option<u16>),
}

/// Reads once and accounts for everything in it; sets `ack` to whether the
/// server acknowledged (true) or refused (false) the subscription.
async fn read_once(
    conn: &mut SubConn,
    tracker: &mut Tracker,
    ctx: &ThreadCtx,
    class: Class,
    ack: &mut Option<bool>,
) -> Result<Flow> {
    let mut closed = None;
    loop {
        // Plain TCP: into the thread's shared buffer (`conn.rs`); TLS: into
        // the connection's own, through rustls.
        let tls = conn.is_tls();
        if tls {
            if conn.read_some().await? == 0 {
                return Ok(Flow::Closed(None));
            }
        } else {
            conn.readable().await?;
        }
        // Borrowed only between awaits: the thread's tasks take turns.
        let mut scratch = ctx.scratch.borrow_mut();
        let n = if tls {
            0
        } else {
            let Some(n) = conn.try_read(&mut scratch)? else {
                continue;
            };
            if n == 0 {
                return Ok(Flow::Closed(None));
            }
            n
        };
        // One clock read per syscall: every frame in it had arrived by now.
        let recv = now_ns();
        let measure_start = ctx.shared.measure_start_ns.load(Ordering::Acquire);
        let mut stats = ctx.stats.borrow_mut();
        let st = &mut stats[class as usize];
        let before = st.delivered;
        let mut on = |event: Event<'_>| match event {
            Event::Tick(h) => tracker.on_tick(h, recv, measure_start, ctx, st),
            Event::Ack(_) => *ack = Some(true),
            Event::Refused(_) => {
                st.refused += 1;
                *ack = Some(false);
            }
            Event::Closed(code) => closed = Some(code),
            // Gap notices (a slow subscriber conflated) count with the rest.
            Event::Continuity(_) | Event::Other => st.other += 1,
        };
        if tls {
            conn.process(&mut on)?;
        } else {
            conn.feed(&scratch[..n], &mut on)?;
        }
        if class != Class::Stalled {
            ctx.shared
                .delivered
                .fetch_add(st.delivered - before, Ordering::Relaxed);
        }
        break;
    }
    conn.flush_replies().await?;
    Ok(match closed {
        Some(code) => Flow::Closed(code),
        None => Flow::Open,
    })
}

/// One subscriber connection's whole life.
async fn subscriber(ctx: Rc<ThreadCtx>, idx: usize, mut stop: watch::Receiver<bool>) {
    let spec = &ctx.spec;
    let plan = &spec.plans[idx];
    let class = plan.class;
    let fail = |what: fn(&mut ClassStats)| {
        what(&mut ctx.stats.borrow_mut()[class as usize]);
        ctx.shared.failed.fetch_add(1, Ordering::AcqRel);
    };
    let mut tracker = Tracker::new(plan, &spec.universe, &spec.baseline);
    let setup = async {
        let _slot = ctx.connect_slots.acquire().await?;
        let opts = ConnOptions {
            source: None,
            rcvbuf: (class == Class::Stalled).then_some(STALLED_RCVBUF),
            read_buf: if spec.tls.is_some() {
                TLS_CONN_BUF
            } else {
                CONN_BUF
            },
            tls: spec.tls.clone(),
        };
        let mut conn = SubConn::connect(spec.ws, spec.protocol, &opts, idx as u32).await?;
        conn.subscribe(&plan.topic_names(&spec.universe)).await?;
        let mut ack = None;
        while ack.is_none() {
            if let Flow::Closed(_) =
                read_once(&mut conn, &mut tracker, &ctx, class, &mut ack).await?
            {
                anyhow::bail!("closed before the subscription was acknowledged");
            }
        }
        anyhow::ensure!(ack == Some(true), "subscription refused");
        anyhow::Ok(conn)
    };
    let mut conn = match tokio::time::timeout(SETUP_TIMEOUT, setup).await {
        Ok(Ok(conn)) => conn,
        _ => return fail(|st| st.conn_errors += 1),
    };
    ctx.stats.borrow_mut()[class as usize].acked += 1;
    ctx.acked.borrow_mut().push(idx);
    ctx.shared.acked.fetch_add(1, Ordering::AcqRel);

    let mut ack = Some(true);
    if class == Class::Stalled {
        // Never read until the step is over, then see what the server did.
        let _ = stop.wait_for(|s| *s).await;
        let drained = tokio::time::timeout(STALLED_DRAIN, async {
            loop {
                match read_once(&mut conn, &mut tracker, &ctx, class, &mut ack).await {
                    Ok(Flow::Open) => {}
                    Ok(Flow::Closed(code)) => return code,
                    Err(_) => return None,
                }
            }
        })
        .await;
        if let Ok(code) = drained {
            ctx.stats.borrow_mut()[class as usize].closed(code);
        }
        return;
    }
    loop {
        let flow = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            flow = read_once(&mut conn, &mut tracker, &ctx, class, &mut ack) => flow,
        };
        match flow {
            Ok(Flow::Open) => {}
            Ok(Flow::Closed(code)) => return ctx.stats.borrow_mut()[class as usize].closed(code),
            Err(_) => return ctx.stats.borrow_mut()[class as usize].closed(None),
        }
        if class == Class::Slow {
            tokio::time::sleep(spec.slow_delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(topics: Topics) -> SubscriberPlan {
        SubscriberPlan {
            class: Class::Healthy,
            topics,
        }
    }

    #[test]
    fn a_tracker_finds_only_its_own_symbols_by_their_exact_names() {
        let universe = Universe::new(50, 1.0);
        let baseline: Vec<u64> = (0..50).map(|i| i * 10).collect();
        let mut some = Tracker::new(&plan(Topics::Some(vec![3, 7])), &universe, &baseline);
        let name = |i: usize| universe.name(i).as_bytes().to_vec();
        let (sym, last) = some.slot(&name(7), &universe).expect("subscribed");
        assert_eq!((sym, *last), (7, 70));
        *last = 71;
        assert_eq!(some.slot(&name(7), &universe).map(|(_, l)| *l), Some(71));
        assert_eq!(some.slot(&name(3), &universe).map(|(s, _)| s), Some(3));
        assert!(some.slot(&name(4), &universe).is_none(), "not subscribed");
        // Packs like symbol 3 (zero padding) but is another name.
        let mut padded = name(3);
        padded.push(0);
        assert!(some.slot(&padded, &universe).is_none());
        assert!(some.slot(b"NOT-A-SYMBOL", &universe).is_none());

        let mut all = Tracker::new(&plan(Topics::All), &universe, &baseline);
        assert_eq!(
            all.slot(&name(4), &universe).map(|(s, l)| (s, *l)),
            Some((4, 40))
        );
        assert!(all.slot(&padded, &universe).is_none());
    }
}
