//! `loadgen storm`: a reconnect storm. A thousand resuming clients lose
//! their connections at the same moment and come back together, asking the
//! broker for what they missed (`since`, issue 14), while steady subscribers
//! measure what the storm does to everyone else's latency.
//!
//! The run, against a broker `loadgen` spawns (see `bin/loadgen.rs`):
//!
//! 1. the publisher ([`crate::publisher`]) sends a steady feed (`rate` ticks
//!    a second over `symbols` symbols, skewed by `zipf`; 0 makes them equally
//!    active) for the whole run;
//! 2. `others` steady subscribers (on `others_topics` symbols each) and
//!    `storm` storm clients (on `storm_topics` each) connect and subscribe;
//!    a storm client notes the `epoch` of its ack and, per symbol, the last
//!    `seq` it holds; it is *ready* once it holds one for every symbol;
//! 3. after `warmup` (whose last second is the *before* window), every storm
//!    client drops its socket at once, abruptly (`SO_LINGER` 0: a reset, no
//!    close frame), and the feed keeps going for `away` (the *away* window);
//! 4. all storm clients reconnect together and subscribe with `epoch` and
//!    `since`; a symbol is *live* again once its `recovered` (or `reset`)
//!    came and then a tick after what it replayed (after a reset's snapshot);
//!    a client is live once all its symbols are. The *storm* window runs
//!    from the reconnect until every client is live (or `live_timeout`);
//! 5. the *after* window (`after`) closes the run.
//!
//! What it judges: every storm client's sequence must be gapless per symbol
//! across the cut (each tick the one after the last, no repeats) wherever
//! the broker answered `recovered`, and a `recovered`'s `to` must be its
//! position plus its `ticks`; a `reset` (the history no longer held the
//! position) is counted, its jump to the snapshot expected. The steady
//! subscribers' end-to-end latency (receive time − the tick's intended send
//! time, as in every run) goes into one HdrHistogram per window.
//!
//! Threads: the publisher, one for the steady subscribers and one for the
//! storm clients (each a single-threaded tokio runtime, connections as
//! local tasks, as in [`crate::pool`]), and the driver (the caller's), which
//! moves the run from stage to stage. Every wait is bounded: set-up by
//! [`SETUP_TIMEOUT`], each reconnect by `live_timeout` and
//! [`RECONNECT_ATTEMPTS`], the publisher by its tick count, the rest by the
//! windows' lengths. Loopback only (the spawned broker's addresses).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use feed_simulator::market::{Market, MarketConfig};
use hdrhistogram::Histogram;
use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;
use serde::Serialize;
use tickcast_protocol::control::{decode_server_frame, Incoming, SubscribeOptions};
use tickcast_protocol::{ServerMessage, TickHeader};
use tokio::sync::{watch, Semaphore};

use crate::conn::{ConnOptions, Event, Protocol, SubConn};
use crate::latency::{new_histogram, now_ns, Summary};
use crate::procstat::{rss_kib, CpuMeter};
use crate::publisher::{publish, PubConn, Schedule};
use crate::target::Endpoints;
use crate::universe::Universe;

/// Time for every client to connect, subscribe and hold a tick of each of
/// its symbols (plus a second per 100 clients).
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Connects + upgrades + subscribes in flight per thread at the start (as in
/// the pool: a burst of thousands overflows the listen backlog). The
/// reconnect has no such limit: all at once is the storm.
const CONNECT_CONCURRENCY: usize = 128;
/// Attempts a storm client makes to reconnect (a refused connection, a 503
/// past `--max-handshakes`, a close during the resume), each after
/// [`RETRY_PAUSE`] × its number, all within `live_timeout`.
const RECONNECT_ATTEMPTS: u32 = 5;
/// The pause before the n-th retry is n times this.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// The read buffer each thread's connections share (see `conn.rs`).
const READ_BUF: usize = 256 * 1024;
/// A connection's own buffer, for partial frames.
const CONN_BUF: usize = 4 * 1024;
/// The longest the storm clients may take to drop their sockets.
const CUT_TIMEOUT: Duration = Duration::from_secs(5);
/// The driver's polling period.
const POLL: Duration = Duration::from_millis(1);
/// Mixed into the seed so the storm's and the others' topics come from a
/// stream unrelated to the publisher's.
const PLAN_STREAM: u64 = 0x5157_0a11_c0de_d00d;

/// What a storm run does.
#[derive(Debug, Clone, Serialize)]
pub struct StormSpec {
    /// Symbols in the feed.
    pub symbols: usize,
    /// Ticks per second, all symbols together.
    pub rate: f64,
    /// Zipf exponent of the symbols' activity (0: equally active).
    pub zipf: f64,
    /// Storm clients.
    pub storm: usize,
    /// Symbols per storm client.
    pub storm_topics: usize,
    /// Steady subscribers, whose latency is measured.
    pub others: usize,
    /// Symbols per steady subscriber.
    pub others_topics: usize,
    /// From the moment everyone is ready to the cut, in seconds (its last
    /// second is the *before* window).
    pub warmup_s: f64,
    /// How long the storm clients stay away, in seconds.
    pub away_s: f64,
    /// The *after* window, in seconds.
    pub after_s: f64,
    /// The longest the storm clients get to be live again, in seconds.
    pub live_timeout_s: f64,
    /// The publisher's shortest time between two writes, in µs.
    pub batch_us: u64,
    /// Seed of the feed and of every client's topics.
    pub seed: u64,
}

impl StormSpec {
    /// Refuses what cannot run, or would run unbounded.
    pub fn check(&self) -> Result<()> {
        ensure!(
            (1..=10_000).contains(&self.symbols),
            "symbols must be 1 to 10000"
        );
        ensure!(
            self.rate.is_finite() && (1.0..=1e6).contains(&self.rate),
            "rate must be 1 to 1,000,000 ticks a second"
        );
        ensure!(
            self.zipf.is_finite() && self.zipf >= 0.0,
            "zipf must be 0 or more"
        );
        ensure!(
            (1..=20_000).contains(&self.storm) && self.others <= 20_000,
            "storm must be 1 to 20000 clients, others at most 20000"
        );
        let topics = 1..=self.symbols.min(64);
        ensure!(
            topics.contains(&self.storm_topics) && topics.contains(&self.others_topics),
            "topics per client must be 1 to min(symbols, 64)"
        );
        // The before window is the warm-up's last second.
        ensure!(
            (1.5..=600.0).contains(&self.warmup_s),
            "warmup must be 1.5 s to 10 min"
        );
        ensure!(
            (0.0..=600.0).contains(&self.away_s)
                && (0.5..=600.0).contains(&self.after_s)
                && (1.0..=600.0).contains(&self.live_timeout_s),
            "away must be 0 to 10 min, after 0.5 s to 10 min, live timeout 1 s to 10 min"
        );
        ensure!(self.batch_us <= 100_000, "batch must be at most 100 ms");
        Ok(())
    }

    fn setup_timeout(&self) -> Duration {
        SETUP_TIMEOUT + Duration::from_secs(((self.storm + self.others) / 100) as u64)
    }

    /// The longest the whole run can take, which bounds the publisher.
    fn bound(&self) -> Duration {
        let windows = self.warmup_s + self.away_s + self.live_timeout_s + self.after_s;
        self.setup_timeout() + CUT_TIMEOUT + Duration::from_secs_f64(windows + 5.0)
    }
}

/// The windows the steady subscribers' latency is split into.
const WINDOWS: [&str; 4] = ["before", "away", "storm", "after"];

/// [`Shared::window`] once the run is over. Before it, 0 is the warm-up
/// (not measured) and 1 to 4 the [`WINDOWS`].
const OVER: usize = WINDOWS.len() + 1;

/// What the storm clients are told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Connect, subscribe, read.
    Connect,
    /// Drop the socket now.
    Cut,
    /// Reconnect and resume.
    Reconnect,
    /// The run is over.
    Stop,
}

/// Counters the threads and the driver share.
#[derive(Debug, Default)]
struct Shared {
    /// The steady subscribers' current window.
    window: AtomicUsize,
    storm_ready: AtomicUsize,
    storm_failed: AtomicUsize,
    storm_cut: AtomicUsize,
    storm_live: AtomicUsize,
    storm_lost: AtomicUsize,
    others_ready: AtomicUsize,
    others_failed: AtomicUsize,
    /// When the driver said reconnect (ns since the epoch).
    reconnect_ns: AtomicU64,
    /// When the first storm client started reconnecting, and when the
    /// last became live (ns since the epoch).
    first_connect_ns: AtomicU64,
    last_live_ns: AtomicU64,
}

/// What the storm clients saw, all together.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StormClients {
    /// Storm clients planned.
    pub clients: u64,
    /// Clients that connected, subscribed and held every symbol before the cut.
    pub ready: u64,
    /// Clients that could not (not cut, not counted further).
    pub setup_failed: u64,
    /// Ready clients the broker closed before the cut.
    pub dropped_before_cut: u64,
    /// Clients live again after the reconnect.
    pub live: u64,
    /// Clients that were not live within the live timeout (or whose every
    /// reconnect attempt failed).
    pub not_live: u64,
    /// Reconnect attempts beyond each client's first.
    pub retries: u64,
    /// From the first reconnect until the last client was live, in ms.
    pub all_live_ms: Option<f64>,
    /// Per client, from the reconnect signal until it was live (ms).
    pub time_to_live: Summary,
    /// Clients whose every symbol was `recovered`.
    pub clients_recovered: u64,
    /// Clients with at least one `reset`.
    pub clients_reset: u64,
    /// Symbol resumes answered `recovered`.
    pub symbols_recovered: u64,
    /// Symbol resumes answered `reset`, by reason.
    pub symbols_reset: BTreeMap<String, u64>,
    /// Symbols a client held no tick of at the cut (subscribed afresh).
    pub symbols_fresh: u64,
    /// The `ticks` of every `recovered`: what the history replayed.
    pub ticks_recovered: u64,
    /// Replayed ticks received (up to each `recovered`'s `to`).
    pub ticks_replayed_received: u64,
    /// `recovered` notices whose `to` was not the position plus `ticks`.
    pub recovered_mismatch: u64,
    /// Sequence jumps before the cut (the broker skipped ticks), and the ticks skipped.
    pub gaps_before_cut: u64,
    /// Ticks skipped by those jumps.
    pub missing_before_cut: u64,
    /// Sequence jumps from the cut on, on symbols not reset.
    pub gaps_across_cut: u64,
    /// Ticks skipped by those jumps.
    pub missing_across_cut: u64,
    /// Ticks received again or out of order.
    pub duplicates: u64,
    /// Jumps to a snapshot after a `reset` (expected, not a gap).
    pub jumps_after_reset: u64,
    /// `gap` notices received.
    pub gap_notices: u64,
    /// Live ticks received in all.
    pub ticks: u64,
    /// No gap nor repeat across the cut wherever the broker recovered, and
    /// every `recovered` consistent.
    pub gapless: bool,
}

/// One latency window of the steady subscribers.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    /// `before`, `away`, `storm` or `after`.
    pub name: String,
    /// How long it lasted, in seconds.
    pub duration_s: f64,
    /// Receive time − intended send time of the ticks received in it.
    pub latency: Summary,
    /// The broker's CPU use over it, in cores (if its pid is known).
    pub server_cpu_cores: Option<f64>,
    /// The loadgen's CPU use over it, in cores.
    pub loadgen_cpu_cores: f64,
}

/// What the steady subscribers saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Others {
    /// Subscribers planned.
    pub subscribers: u64,
    /// Subscribers acknowledged.
    pub ready: u64,
    /// Subscribers that could not connect or subscribe.
    pub failed: u64,
    /// Connections the broker closed during the run.
    pub disconnected: u64,
    /// Live ticks received.
    pub ticks: u64,
    /// Sequence jumps (the broker conflated or dropped for them).
    pub gaps: u64,
    /// Ticks skipped by those jumps.
    pub missing: u64,
    /// `gap` notices received.
    pub gap_notices: u64,
    /// Latency per window.
    pub windows: Vec<Window>,
}

/// What the publisher did.
#[derive(Debug, Clone, Serialize)]
pub struct Feed {
    /// Ticks sent.
    pub sent: u64,
    /// Ticks per second achieved.
    pub rate_achieved: f64,
    /// How far behind schedule it fell at worst, in ms.
    pub max_lag_ms: f64,
    /// Whether it ran at real-time priority.
    pub realtime: bool,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
}

/// The JSON result of a storm run.
#[derive(Debug, Clone, Serialize)]
pub struct StormReport {
    /// Always `storm`.
    pub scenario: String,
    /// When the run started, seconds since the Unix epoch.
    pub started_unix_s: u64,
    /// What was run.
    pub spec: StormSpec,
    /// The broker's extra arguments (`--history`, …).
    pub server_args: Vec<String>,
    /// The feed.
    pub feed: Feed,
    /// The storm clients.
    pub storm: StormClients,
    /// The steady subscribers.
    pub others: Others,
    /// The broker's resident memory at the end, in KiB.
    pub server_rss_kib: Option<u64>,
    /// Every storm client live again and gapless, the feed on schedule.
    pub passed: bool,
    /// The steady subscribers' histograms, per window (for `.hgrm` files).
    #[serde(skip)]
    histograms: Vec<Histogram<u64>>,
    /// The storm clients' times to live (ns).
    #[serde(skip)]
    time_to_live: Histogram<u64>,
}

impl StormReport {
    /// A few lines for the terminal.
    pub fn summary(&self) -> String {
        let s = &self.storm;
        let o = &self.others;
        let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1} ms"));
        let mut out = format!(
            "storm: {} clients ({} ready), cut for {:.1} s, feed {:.0} ticks/s on {} symbols\n",
            s.clients, s.ready, self.spec.away_s, self.feed.rate_achieved, self.spec.symbols
        );
        out += &format!(
            "  all live again in {} (per client p50 {:.1} / p99 {:.1} / max {:.1} ms); {} live, {} not, {} retries\n",
            ms(s.all_live_ms),
            s.time_to_live.p50_ms,
            s.time_to_live.p99_ms,
            s.time_to_live.max_ms,
            s.live,
            s.not_live,
            s.retries
        );
        let resets: u64 = s.symbols_reset.values().sum();
        out += &format!(
            "  clients recovered {} / with a reset {}; symbols recovered {}, reset {} {:?}, fresh {}; ticks recovered {} (received {})\n",
            s.clients_recovered,
            s.clients_reset,
            s.symbols_recovered,
            resets,
            s.symbols_reset,
            s.symbols_fresh,
            s.ticks_recovered,
            s.ticks_replayed_received
        );
        out += &format!(
            "  gapless across the cut: {} (gaps {} / missing {}, duplicates {}, bad recovered {}, jumps after a reset {}; before the cut {} gaps; gap notices {})\n",
            if s.gapless { "yes" } else { "NO" },
            s.gaps_across_cut,
            s.missing_across_cut,
            s.duplicates,
            s.recovered_mismatch,
            s.jumps_after_reset,
            s.gaps_before_cut,
            s.gap_notices
        );
        out += &format!(
            "others: {} subscribers ({} ready), {} ticks, {} gaps, {} disconnected\n",
            o.subscribers, o.ready, o.ticks, o.gaps, o.disconnected
        );
        out += &format!(
            "  {:<7} {:>7} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8}\n",
            "window", "secs", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "count", "broker"
        );
        for w in &o.windows {
            let cpu = w
                .server_cpu_cores
                .map_or("-".to_owned(), |c| format!("{c:.2}"));
            out += &format!(
                "  {:<7} {:>7.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>8} {:>8}\n",
                w.name,
                w.duration_s,
                w.latency.p50_ms,
                w.latency.p99_ms,
                w.latency.p999_ms,
                w.latency.max_ms,
                w.latency.count,
                cpu
            );
        }
        out += &format!("passed: {}\n", if self.passed { "yes" } else { "NO" });
        out
    }

    /// Writes `storm.json`, one `.hgrm` per latency window and the storm
    /// clients' time-to-live `.hgrm` into `dir`; returns the files written.
    pub fn save(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let json = dir.join("storm.json");
        std::fs::write(&json, serde_json::to_vec_pretty(self)?)?;
        let mut files = vec![json];
        for (name, hist) in WINDOWS.iter().zip(&self.histograms) {
            let path = dir.join(format!("others-{name}.hgrm"));
            std::fs::write(&path, crate::hgrm::percentile_distribution(hist, 1e6))?;
            files.push(path);
        }
        let path = dir.join("storm-time-to-live.hgrm");
        std::fs::write(
            &path,
            crate::hgrm::percentile_distribution(&self.time_to_live, 1e6),
        )?;
        files.push(path);
        Ok(files)
    }
}

/// Each window's length in seconds and CPU use (loadgen, broker), and
/// whether every ready storm client was live again.
struct Timeline {
    windows: Vec<(f64, (f64, Option<f64>))>,
    all_live: bool,
}

/// Runs the storm against a broker that is already listening on
/// `endpoints` (spawned fresh: its symbols' `seq`s start at 1); `server_pid`
/// for its CPU and memory.
pub fn run_storm(
    spec: &StormSpec,
    endpoints: Endpoints,
    server_pid: Option<u32>,
    server_args: &[String],
) -> Result<StormReport> {
    spec.check()?;
    let universe = Arc::new(Universe::new(spec.symbols, spec.zipf));
    let mut rng = Pcg64Mcg::seed_from_u64(spec.seed ^ PLAN_STREAM);
    let mut draw = |n: usize, k: usize| -> Result<Vec<Vec<String>>> {
        (0..n)
            .map(|_| {
                let syms = universe.draw_topics(&mut rng, k)?;
                Ok(syms
                    .iter()
                    .map(|&s| universe.name(s as usize).to_owned())
                    .collect())
            })
            .collect()
    };
    let storm_plans = draw(spec.storm, spec.storm_topics)?;
    let others_plans = draw(spec.others, spec.others_topics)?;
    let market_cfg = MarketConfig {
        symbols: spec.symbols,
        seed: spec.seed,
        ..MarketConfig::default()
    };
    let mut market = Market::with_zipf(&market_cfg, spec.zipf)?;
    let mut publisher = PubConn::connect(&endpoints)?;
    let started_unix_s = now_ns() / 1_000_000_000;

    let shared = Arc::new(Shared {
        first_connect_ns: AtomicU64::new(u64::MAX),
        ..Shared::default()
    });
    let (stage_tx, stage_rx) = watch::channel(Stage::Connect);
    let lead = Duration::from_millis(20);
    let schedule = Schedule {
        rate: spec.rate,
        total: (spec.rate * spec.bound().as_secs_f64()).ceil() as u64,
        start: Instant::now() + lead,
        start_wall_ns: now_ns() + lead.as_nanos() as u64,
        batch: Duration::from_micros(spec.batch_us),
    };
    let (sent, stop) = (AtomicU64::new(0), AtomicBool::new(false));
    let live_timeout = Duration::from_secs_f64(spec.live_timeout_s);

    let (published, storm, others, timeline) = std::thread::scope(|scope| {
        let feed = scope.spawn(|| publish(&mut publisher, &mut market, schedule, &sent, &stop));
        let storm_thread = {
            let (shared, stage) = (shared.clone(), stage_rx.clone());
            let plans = storm_plans.clone();
            std::thread::Builder::new()
                .name("storm".into())
                .spawn_scoped(scope, move || {
                    run_storm_thread(endpoints, plans, shared, stage, live_timeout)
                })
                .context("spawn the storm thread")?
        };
        let others_thread = {
            let (shared, stage) = (shared.clone(), stage_rx.clone());
            let plans = others_plans.clone();
            std::thread::Builder::new()
                .name("others".into())
                .spawn_scoped(scope, move || {
                    run_others_thread(endpoints, plans, shared, stage)
                })
                .context("spawn the others thread")?
        };
        let timeline = drive(spec, &shared, &stage_tx, server_pid);
        // Whatever the driver found, everything stops now.
        shared.window.store(OVER, Ordering::Release);
        stage_tx.send_replace(Stage::Stop);
        stop.store(true, Ordering::Relaxed);
        let published = feed
            .join()
            .map_err(|_| anyhow::anyhow!("publisher thread panicked"))?;
        let storm = storm_thread
            .join()
            .map_err(|_| anyhow::anyhow!("storm thread panicked"))??;
        let others = others_thread
            .join()
            .map_err(|_| anyhow::anyhow!("others thread panicked"))??;
        anyhow::Ok((published, storm, others, timeline?))
    })?;

    let (mut storm_clients, time_to_live) = storm;
    storm_clients.clients = spec.storm as u64;
    storm_clients.time_to_live = Summary::of(&time_to_live);
    let (first, last) = (
        shared.first_connect_ns.load(Ordering::Acquire),
        shared.last_live_ns.load(Ordering::Acquire),
    );
    storm_clients.all_live_ms = (timeline.all_live && first != u64::MAX && last >= first)
        .then(|| (last - first) as f64 / 1e6);
    storm_clients.gapless = storm_clients.ready > 0
        && storm_clients.gaps_across_cut == 0
        && storm_clients.duplicates == 0
        && storm_clients.recovered_mismatch == 0
        && storm_clients.ticks_replayed_received == storm_clients.ticks_recovered;

    let (mut others_report, histograms) = others;
    others_report.subscribers = spec.others as u64;
    others_report.windows = WINDOWS
        .iter()
        .zip(&histograms)
        .zip(&timeline.windows)
        .map(|((name, h), &(duration_s, (loadgen, server)))| Window {
            name: (*name).to_owned(),
            duration_s,
            latency: Summary::of(h),
            server_cpu_cores: server,
            loadgen_cpu_cores: loadgen,
        })
        .collect();

    let feed = Feed {
        sent: published.sent,
        rate_achieved: published.sent as f64 / published.elapsed.as_secs_f64().max(1e-9),
        max_lag_ms: published.max_lag.as_secs_f64() * 1e3,
        realtime: published.realtime,
        error: published.error,
    };
    let passed = timeline.all_live
        && storm_clients.gapless
        && storm_clients.setup_failed == 0
        && storm_clients.dropped_before_cut == 0
        && storm_clients.not_live == 0
        && feed.error.is_none();
    Ok(StormReport {
        scenario: "storm".into(),
        started_unix_s,
        spec: spec.clone(),
        server_args: server_args.to_vec(),
        feed,
        storm: storm_clients,
        others: others_report,
        server_rss_kib: server_pid.and_then(rss_kib),
        passed,
        histograms,
        time_to_live,
    })
}

/// Moves the run through its stages; returns each window's length and CPU use.
fn drive(
    spec: &StormSpec,
    shared: &Shared,
    stage: &watch::Sender<Stage>,
    server_pid: Option<u32>,
) -> Result<Timeline> {
    let load = |a: &AtomicUsize| a.load(Ordering::Acquire);
    let wait = |timeout: Duration, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + timeout;
        while !done() && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        done()
    };
    let everyone = || {
        load(&shared.storm_ready) + load(&shared.storm_failed) >= spec.storm
            && load(&shared.others_ready) + load(&shared.others_failed) >= spec.others
    };
    wait(spec.setup_timeout(), &everyone);
    let ready = load(&shared.storm_ready);
    if ready == 0 {
        bail!("no storm client got ready (subscribed and holding a tick of each symbol)");
    }
    let mut windows = Vec::new();
    let mut window = |index: usize, run: &mut dyn FnMut() -> bool| {
        let (started, cpu) = (Instant::now(), CpuMeter::start(server_pid));
        shared.window.store(index, Ordering::Release);
        let finished = run();
        windows.push((started.elapsed().as_secs_f64(), cpu.read()));
        finished
    };
    std::thread::sleep(Duration::from_secs_f64(spec.warmup_s - 1.0));
    window(1, &mut || {
        std::thread::sleep(Duration::from_secs(1));
        true
    });
    window(2, &mut || {
        stage.send_replace(Stage::Cut);
        let cut = wait(CUT_TIMEOUT, &|| load(&shared.storm_cut) >= ready);
        std::thread::sleep(Duration::from_secs_f64(spec.away_s));
        cut
    });
    let all_live = window(3, &mut || {
        shared.reconnect_ns.store(now_ns(), Ordering::Release);
        stage.send_replace(Stage::Reconnect);
        let timeout = Duration::from_secs_f64(spec.live_timeout_s) + RETRY_PAUSE;
        wait(timeout, &|| {
            load(&shared.storm_live) + load(&shared.storm_lost) >= ready
        });
        load(&shared.storm_live) >= ready
    });
    window(4, &mut || {
        std::thread::sleep(Duration::from_secs_f64(spec.after_s));
        true
    });
    Ok(Timeline { windows, all_live })
}

/// A thread's current-thread runtime, running `body` to completion.
fn block_on<F: std::future::Future>(body: F) -> Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("subscriber runtime")?;
    Ok(tokio::task::LocalSet::new().block_on(&runtime, body))
}

/// Waits for data, reads it into the thread's shared buffer and hands each
/// event to `on` with the read's receive time (one clock read per syscall);
/// `Ok(false)` once the broker closed the connection.
async fn read_once(
    conn: &mut SubConn,
    scratch: &RefCell<Vec<u8>>,
    on: &mut impl FnMut(Event<'_>, u64),
) -> Result<bool> {
    let mut open = true;
    loop {
        conn.readable().await?;
        // Borrowed only between awaits: the thread's tasks take turns.
        let mut buf = scratch.borrow_mut();
        let Some(n) = conn.try_read(&mut buf)? else {
            continue;
        };
        if n == 0 {
            return Ok(false);
        }
        let recv = now_ns();
        conn.feed(&buf[..n], &mut |event| {
            if let Event::Closed(_) = event {
                open = false;
            }
            on(event, recv)
        })?;
        break;
    }
    conn.flush_replies().await?;
    Ok(open)
}

/// A continuity notice's message, if the payload is one.
fn notice(payload: &[u8]) -> Option<ServerMessage> {
    match decode_server_frame(payload) {
        Ok(Incoming::Control(msg)) => Some(msg),
        _ => None,
    }
}

/// Connects and upgrades one client to the broker.
async fn connect(endpoints: Endpoints, id: u32) -> Result<SubConn> {
    let opts = ConnOptions {
        read_buf: CONN_BUF,
        ..ConnOptions::default()
    };
    SubConn::connect(endpoints.ws, Protocol::Tickcast, &opts, id).await
}

// ---- the storm clients -------------------------------------------------

/// Everything the storm thread's clients share.
struct StormCtx {
    endpoints: Endpoints,
    shared: Arc<Shared>,
    counts: RefCell<StormClients>,
    time_to_live: RefCell<Histogram<u64>>,
    connect_slots: Semaphore,
    scratch: RefCell<Vec<u8>>,
    live_timeout: Duration,
}

/// What a reconnect brought for one symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resume {
    /// Before the cut, or waiting for the broker's answer.
    Pending,
    /// `recovered`: the history replays up to `to`; live after it.
    Recovered { to: u64 },
    /// `reset`, or no position to resume from: a snapshot comes first
    /// (once seen, `Some`), then live.
    Fresh { snapshot: Option<u64> },
    /// A tick past what the resume replayed arrived.
    Live,
}

/// One storm client's view of one symbol.
#[derive(Debug)]
struct Held {
    name: String,
    /// The last `seq` held.
    last: Option<u64>,
    /// The position sent in the resume.
    since: Option<u64>,
    resume: Resume,
    /// The next tick is the snapshot after a reset (its jump is expected).
    after_reset: bool,
}

/// One storm client's state.
struct StormClient {
    held: Vec<Held>,
    epoch: Option<String>,
    /// Past the cut (gaps count as across the cut).
    cut: bool,
    /// Saw a reset for some symbol.
    any_reset: bool,
    acked: bool,
}

impl StormClient {
    fn holds_all(&self) -> bool {
        self.acked && self.held.iter().all(|h| h.last.is_some())
    }

    fn live(&self) -> bool {
        self.held.iter().all(|h| h.resume == Resume::Live)
    }

    fn on_event(&mut self, event: Event<'_>, counts: &mut StormClients) {
        match event {
            Event::Tick(h) => self.on_tick(h, counts),
            Event::Ack(payload) => {
                self.acked = true;
                if let Some(ServerMessage::Subscribed { epoch, .. }) = notice(payload) {
                    self.epoch = epoch;
                }
            }
            Event::Continuity(payload) => match notice(payload) {
                Some(ServerMessage::Recovered { sym, ticks, to }) => {
                    if let Some(held) = self.held.iter_mut().find(|h| h.name == sym) {
                        counts.symbols_recovered += 1;
                        counts.ticks_recovered += ticks;
                        if held.since.map(|s| s + ticks) != Some(to) {
                            counts.recovered_mismatch += 1;
                        }
                        held.resume = Resume::Recovered { to };
                    }
                }
                Some(ServerMessage::Reset { sym, reason, .. }) => {
                    if let Some(held) = self.held.iter_mut().find(|h| h.name == sym) {
                        let reason = serde_json::to_value(reason)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default();
                        *counts.symbols_reset.entry(reason).or_default() += 1;
                        held.resume = Resume::Fresh { snapshot: None };
                        held.after_reset = true;
                        self.any_reset = true;
                    }
                }
                Some(ServerMessage::Gap { .. }) => counts.gap_notices += 1,
                _ => {}
            },
            Event::Refused(_) | Event::Closed(_) | Event::Other => {}
        }
    }

    fn on_tick(&mut self, h: TickHeader<'_>, counts: &mut StormClients) {
        let Some(held) = self.held.iter_mut().find(|s| s.name.as_bytes() == h.sym) else {
            return;
        };
        if let Some(last) = held.last {
            if h.seq <= last {
                counts.duplicates += 1;
                return;
            }
            if h.seq > last + 1 {
                let missing = h.seq - last - 1;
                if held.after_reset {
                    counts.jumps_after_reset += 1;
                } else if self.cut {
                    counts.gaps_across_cut += 1;
                    counts.missing_across_cut += missing;
                } else {
                    counts.gaps_before_cut += 1;
                    counts.missing_before_cut += missing;
                }
            }
        }
        held.after_reset = false;
        held.last = Some(h.seq);
        counts.ticks += 1;
        held.resume = match held.resume {
            Resume::Recovered { to } if h.seq <= to => {
                counts.ticks_replayed_received += 1;
                held.resume
            }
            Resume::Recovered { .. } => Resume::Live,
            Resume::Fresh { snapshot: None } => Resume::Fresh {
                snapshot: Some(h.seq),
            },
            Resume::Fresh { snapshot: Some(_) } => Resume::Live,
            other => other,
        };
    }

    /// The resume request: every symbol, with the positions held.
    fn resume_options(&mut self, counts: &mut StormClients) -> SubscribeOptions {
        let mut since = BTreeMap::new();
        for held in &mut self.held {
            held.since = held.last;
            held.after_reset = false;
            // A retry resumes every symbol again from what it holds (one
            // live on the failed attempt too: a plain subscribe would send
            // its snapshot, a repeat).
            held.resume = match held.last {
                Some(seq) => {
                    since.insert(held.name.clone(), seq);
                    Resume::Pending
                }
                None => {
                    counts.symbols_fresh += 1;
                    Resume::Fresh { snapshot: None }
                }
            };
        }
        SubscribeOptions {
            epoch: self.epoch.clone(),
            since,
            ..SubscribeOptions::default()
        }
    }

    fn topics(&self) -> Vec<String> {
        self.held.iter().map(|h| h.name.clone()).collect()
    }
}

fn run_storm_thread(
    endpoints: Endpoints,
    plans: Vec<Vec<String>>,
    shared: Arc<Shared>,
    stage: watch::Receiver<Stage>,
    live_timeout: Duration,
) -> Result<(StormClients, Histogram<u64>)> {
    let ctx = Rc::new(StormCtx {
        endpoints,
        shared,
        counts: RefCell::new(StormClients::default()),
        time_to_live: RefCell::new(new_histogram()),
        connect_slots: Semaphore::new(CONNECT_CONCURRENCY),
        scratch: RefCell::new(vec![0; READ_BUF]),
        live_timeout,
    });
    block_on(async {
        let tasks: Vec<_> = plans
            .into_iter()
            .enumerate()
            .map(|(i, topics)| {
                tokio::task::spawn_local(storm_client(ctx.clone(), i as u32, topics, stage.clone()))
            })
            .collect();
        for task in tasks {
            // A task that panicked has already counted nothing more.
            let _ = task.await;
        }
    })?;
    let counts = ctx.counts.borrow().clone();
    let hist = ctx.time_to_live.borrow().clone();
    Ok((counts, hist))
}

/// One storm client's whole life: connect, hold, cut, reconnect, resume.
async fn storm_client(
    ctx: Rc<StormCtx>,
    id: u32,
    topics: Vec<String>,
    mut stage: watch::Receiver<Stage>,
) {
    let shared = &ctx.shared;
    let mut client = StormClient {
        held: topics
            .into_iter()
            .map(|name| Held {
                name,
                last: None,
                since: None,
                resume: Resume::Pending,
                after_reset: false,
            })
            .collect(),
        epoch: None,
        cut: false,
        any_reset: false,
        acked: false,
    };
    let setup = async {
        let _slot = ctx.connect_slots.acquire().await?;
        let mut conn = connect(ctx.endpoints, id).await?;
        conn.subscribe(&client.topics()).await?;
        while !client.holds_all() {
            let open = read_once(&mut conn, &ctx.scratch, &mut |e, _| {
                client.on_event(e, &mut ctx.counts.borrow_mut())
            })
            .await?;
            ensure!(open, "closed before holding every symbol");
        }
        anyhow::Ok(conn)
    };
    let conn = match tokio::time::timeout(SETUP_TIMEOUT, setup).await {
        Ok(Ok(conn)) => conn,
        _ => {
            ctx.counts.borrow_mut().setup_failed += 1;
            shared.storm_failed.fetch_add(1, Ordering::AcqRel);
            return;
        }
    };
    ctx.counts.borrow_mut().ready += 1;
    shared.storm_ready.fetch_add(1, Ordering::AcqRel);

    // Hold: read until the cut.
    let Some(conn) = read_until(&ctx, conn, &mut client, &mut stage, Stage::Connect).await else {
        if *stage.borrow() != Stage::Stop {
            // Closed by the broker before the cut: out of the storm.
            ctx.counts.borrow_mut().dropped_before_cut += 1;
            shared.storm_cut.fetch_add(1, Ordering::AcqRel);
            shared.storm_lost.fetch_add(1, Ordering::AcqRel);
        }
        return;
    };
    // The cut: a reset, no close frame.
    let _ = conn.reset();
    client.cut = true;
    shared.storm_cut.fetch_add(1, Ordering::AcqRel);
    if stage.wait_for(|s| *s != Stage::Cut).await.is_err() || *stage.borrow() == Stage::Stop {
        return;
    }

    // The reconnect, all clients at once.
    shared
        .first_connect_ns
        .fetch_min(now_ns(), Ordering::AcqRel);
    let resumed = tokio::time::timeout(ctx.live_timeout, reconnect(&ctx, id, &mut client)).await;
    let conn = match resumed {
        Ok(Some(conn)) => conn,
        _ => {
            ctx.counts.borrow_mut().not_live += 1;
            shared.storm_lost.fetch_add(1, Ordering::AcqRel);
            return;
        }
    };
    let live_ns = now_ns();
    shared.last_live_ns.fetch_max(live_ns, Ordering::AcqRel);
    let since_signal = live_ns.saturating_sub(shared.reconnect_ns.load(Ordering::Acquire));
    ctx.time_to_live
        .borrow_mut()
        .saturating_record(since_signal.max(1));
    {
        let mut counts = ctx.counts.borrow_mut();
        counts.live += 1;
        if client.any_reset {
            counts.clients_reset += 1;
        } else if client.held.iter().all(|h| h.since.is_some()) {
            counts.clients_recovered += 1;
        }
    }
    shared.storm_live.fetch_add(1, Ordering::AcqRel);
    // Live: keep counting (gaps after the resume) until the run ends.
    let _ = read_until(&ctx, conn, &mut client, &mut stage, Stage::Reconnect).await;
}

/// Reads while the stage stays `during`; returns the connection when it
/// moves on to anything but `Stop` (`None` then, or if the broker closed).
async fn read_until(
    ctx: &StormCtx,
    mut conn: SubConn,
    client: &mut StormClient,
    stage: &mut watch::Receiver<Stage>,
    during: Stage,
) -> Option<SubConn> {
    loop {
        let mut on = |e: Event<'_>, _: u64| client.on_event(e, &mut ctx.counts.borrow_mut());
        let read = tokio::select! {
            biased;
            changed = stage.wait_for(|s| *s != during) => {
                return match changed.map(|s| *s) {
                    Ok(Stage::Stop) | Err(_) => None,
                    Ok(_) => Some(conn),
                };
            }
            read = read_once(&mut conn, &ctx.scratch, &mut on) => read,
        };
        if !matches!(read, Ok(true)) {
            return None;
        }
    }
}

/// Reconnects and resumes until every symbol is live, retrying a failed
/// attempt (at most [`RECONNECT_ATTEMPTS`], the caller bounds the time);
/// `None` if every attempt failed.
async fn reconnect(ctx: &StormCtx, id: u32, client: &mut StormClient) -> Option<SubConn> {
    for attempt in 0..RECONNECT_ATTEMPTS {
        if attempt > 0 {
            ctx.counts.borrow_mut().retries += 1;
            tokio::time::sleep(RETRY_PAUSE * attempt).await;
        }
        let resumed = async {
            let mut conn = connect(ctx.endpoints, id).await?;
            let options = client.resume_options(&mut ctx.counts.borrow_mut());
            conn.resume(&client.topics(), options).await?;
            while !client.live() {
                let open = read_once(&mut conn, &ctx.scratch, &mut |e, _| {
                    client.on_event(e, &mut ctx.counts.borrow_mut())
                })
                .await?;
                ensure!(open, "closed during the resume");
            }
            anyhow::Ok(conn)
        };
        if let Ok(conn) = resumed.await {
            return Some(conn);
        }
    }
    None
}

// ---- the steady subscribers ---------------------------------------------

/// Everything the others thread's subscribers share.
struct OthersCtx {
    endpoints: Endpoints,
    shared: Arc<Shared>,
    counts: RefCell<Others>,
    /// One histogram per window of [`WINDOWS`].
    latency: RefCell<Vec<Histogram<u64>>>,
    connect_slots: Semaphore,
    scratch: RefCell<Vec<u8>>,
}

fn run_others_thread(
    endpoints: Endpoints,
    plans: Vec<Vec<String>>,
    shared: Arc<Shared>,
    stage: watch::Receiver<Stage>,
) -> Result<(Others, Vec<Histogram<u64>>)> {
    let ctx = Rc::new(OthersCtx {
        endpoints,
        shared,
        counts: RefCell::new(Others::default()),
        latency: RefCell::new(WINDOWS.iter().map(|_| new_histogram()).collect()),
        connect_slots: Semaphore::new(CONNECT_CONCURRENCY),
        scratch: RefCell::new(vec![0; READ_BUF]),
    });
    block_on(async {
        let tasks: Vec<_> = plans
            .into_iter()
            .enumerate()
            .map(|(i, topics)| {
                // Masks apart from the storm clients' (any value is valid).
                let id = (1 << 24) + i as u32;
                tokio::task::spawn_local(other(ctx.clone(), id, topics, stage.clone()))
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    })?;
    let counts = ctx.counts.borrow().clone();
    let latency = ctx.latency.borrow().clone();
    Ok((counts, latency))
}

/// One steady subscriber: subscribe, then record every live tick's latency
/// into the current window until the run ends.
async fn other(
    ctx: Rc<OthersCtx>,
    id: u32,
    topics: Vec<String>,
    mut stage: watch::Receiver<Stage>,
) {
    let shared = &ctx.shared;
    // The last seq per topic; the first tick of each (its snapshot) is not
    // measured (it is as old as the symbol's last trade).
    let mut last: Vec<Option<u64>> = vec![None; topics.len()];
    let setup = async {
        let _slot = ctx.connect_slots.acquire().await?;
        let mut conn = connect(ctx.endpoints, id).await?;
        conn.subscribe(&topics).await?;
        let mut acked = false;
        while !acked {
            let open = read_once(&mut conn, &ctx.scratch, &mut |e, _| {
                acked |= matches!(e, Event::Ack(_))
            })
            .await?;
            ensure!(open, "closed before the ack");
        }
        anyhow::Ok(conn)
    };
    let mut conn = match tokio::time::timeout(SETUP_TIMEOUT, setup).await {
        Ok(Ok(conn)) => conn,
        _ => {
            ctx.counts.borrow_mut().failed += 1;
            shared.others_failed.fetch_add(1, Ordering::AcqRel);
            return;
        }
    };
    ctx.counts.borrow_mut().ready += 1;
    shared.others_ready.fetch_add(1, Ordering::AcqRel);
    loop {
        let mut on = |e: Event<'_>, recv: u64| {
            let mut counts = ctx.counts.borrow_mut();
            match e {
                Event::Tick(h) => {
                    let Some(slot) = topics.iter().position(|t| t.as_bytes() == h.sym) else {
                        return;
                    };
                    let Some(prev) = last[slot] else {
                        last[slot] = Some(h.seq);
                        return;
                    };
                    if h.seq <= prev {
                        return;
                    }
                    if h.seq > prev + 1 {
                        counts.gaps += 1;
                        counts.missing += h.seq - prev - 1;
                    }
                    last[slot] = Some(h.seq);
                    counts.ticks += 1;
                    let window = shared.window.load(Ordering::Acquire);
                    if (1..OVER).contains(&window) {
                        let delay = recv.saturating_sub(h.ts).max(1);
                        ctx.latency.borrow_mut()[window - 1].saturating_record(delay);
                    }
                }
                Event::Continuity(payload) => {
                    if let Some(ServerMessage::Gap { .. }) = notice(payload) {
                        counts.gap_notices += 1;
                    }
                }
                _ => {}
            }
        };
        let read = tokio::select! {
            biased;
            _ = stage.wait_for(|s| *s == Stage::Stop) => return,
            read = read_once(&mut conn, &ctx.scratch, &mut on) => read,
        };
        if !matches!(read, Ok(true)) {
            ctx.counts.borrow_mut().disconnected += 1;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(sym: &[u8], seq: u64) -> TickHeader<'_> {
        TickHeader { sym, seq, ts: 1 }
    }

    fn client(names: &[&str]) -> StormClient {
        StormClient {
            held: names
                .iter()
                .map(|n| Held {
                    name: (*n).to_owned(),
                    last: None,
                    since: None,
                    resume: Resume::Pending,
                    after_reset: false,
                })
                .collect(),
            epoch: Some("e".into()),
            cut: false,
            any_reset: false,
            acked: true,
        }
    }

    #[test]
    fn a_recovered_resume_is_gapless_and_a_reset_jump_is_not_a_gap() {
        let mut counts = StormClients::default();
        let mut c = client(&["AAPL", "MSFT"]);
        // Snapshots, then live ticks before the cut.
        for (sym, seq) in [("AAPL", 10), ("MSFT", 3), ("AAPL", 11), ("MSFT", 4)] {
            c.on_tick(tick(sym.as_bytes(), seq), &mut counts);
        }
        assert!(c.holds_all());
        c.cut = true;
        let options = c.resume_options(&mut counts);
        assert_eq!(options.since.get("AAPL"), Some(&11));
        assert_eq!(options.epoch.as_deref(), Some("e"));
        let recovered = ServerMessage::Recovered {
            sym: "AAPL".into(),
            ticks: 2,
            to: 13,
        }
        .to_msgpack();
        c.on_event(Event::Continuity(&recovered), &mut counts);
        let reset = ServerMessage::Reset {
            sym: "MSFT".into(),
            reason: tickcast_protocol::control::ResetReason::TooOld,
            epoch: None,
        }
        .to_msgpack();
        c.on_event(Event::Continuity(&reset), &mut counts);
        for (sym, seq) in [("AAPL", 12), ("AAPL", 13), ("MSFT", 90)] {
            c.on_tick(tick(sym.as_bytes(), seq), &mut counts);
        }
        assert!(!c.live(), "no tick past the replay and the snapshot yet");
        c.on_tick(tick(b"AAPL", 14), &mut counts);
        c.on_tick(tick(b"MSFT", 91), &mut counts);
        assert!(c.live());
        assert_eq!(counts.symbols_recovered, 1);
        assert_eq!(counts.symbols_reset.get("too_old"), Some(&1));
        assert_eq!(
            (counts.ticks_recovered, counts.ticks_replayed_received),
            (2, 2)
        );
        assert_eq!(counts.jumps_after_reset, 1);
        assert_eq!((counts.gaps_across_cut, counts.recovered_mismatch), (0, 0));

        // A replay that skips one, and a `to` that does not add up.
        let mut c = client(&["AAPL"]);
        c.on_tick(tick(b"AAPL", 5), &mut counts);
        c.cut = true;
        let _ = c.resume_options(&mut counts);
        let bad = ServerMessage::Recovered {
            sym: "AAPL".into(),
            ticks: 1,
            to: 8,
        }
        .to_msgpack();
        c.on_event(Event::Continuity(&bad), &mut counts);
        c.on_tick(tick(b"AAPL", 7), &mut counts);
        c.on_tick(tick(b"AAPL", 7), &mut counts);
        assert_eq!(counts.recovered_mismatch, 1);
        assert_eq!((counts.gaps_across_cut, counts.missing_across_cut), (1, 1));
        assert_eq!(counts.duplicates, 1);
    }

    /// `loadgen storm`'s defaults.
    fn spec() -> StormSpec {
        StormSpec {
            symbols: 200,
            rate: 20_000.0,
            zipf: 0.0,
            storm: 1000,
            storm_topics: 3,
            others: 200,
            others_topics: 5,
            warmup_s: 3.0,
            away_s: 1.0,
            after_s: 2.0,
            live_timeout_s: 30.0,
            batch_us: 200,
            seed: 1,
        }
    }

    #[test]
    fn unbounded_or_empty_specs_are_refused() {
        assert!(spec().check().is_ok());
        for bad in [
            StormSpec { storm: 0, ..spec() },
            StormSpec {
                warmup_s: 1.0,
                ..spec()
            },
            StormSpec {
                live_timeout_s: 3600.0,
                ..spec()
            },
            StormSpec {
                storm_topics: 300,
                ..spec()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }
}
