//! The soak: about a thousand subscribers churning against a running broker
//! for an hour (or any bounded duration), while the broker's resident
//! memory, open file descriptors and live tasks are sampled; at the end each
//! series is judged flat or not by [`judge`]'s rule.
//!
//! Every subscriber *slot* lives a sequence of connections, each seeded
//! from the run's seed and the slot's number:
//!
//! 1. connect and upgrade, subscribe to 1 to `max_topics` symbols drawn
//!    with the simulator's Zipf weights, or (sometimes) to `*`;
//! 2. read for a random lifetime (exponential, mean `mean_life`, clamped
//!    to a quarter of it and four times it; a slow reader's is 2 to 8
//!    times the mean), answering pings, and every few seconds change the
//!    subscription: subscribe to more symbols, unsubscribe from some, or
//!    subscribe to `*` and later unsubscribe it;
//!    a share of connections are *slow readers* instead, on `*` with a
//!    small receive buffer, reading [`SLOW_CHUNK`] bytes every
//!    [`SLOW_PERIOD`], far less than the feed carries, so the broker's
//!    outbox bound, conflation and slow-consumer close all run;
//! 3. end it one of three ways: the closing handshake (close frame, then
//!    wait for the echo and the end of stream), an abrupt reset
//!    (`SO_LINGER` 0, no close frame), or a plain drop without a close
//!    frame (a FIN, or a reset if unread bytes remain, as the kernel does);
//!    or the broker ends it (slow consumer, ping timeout);
//! 4. pause a little and start again.
//!
//! All loops are bounded: lifetimes and pauses by the run's end, each wait
//! by [`STEP`], the handshakes by [`OPEN_TIMEOUT`] and [`CLOSE_TIMEOUT`],
//! and the drain after the run by [`DRAIN_TIMEOUT`]. Only loopback
//! addresses are used (the caller gives the broker's).
//!
//! The sampler reads `/proc/PID/status` (RSS), `/proc/PID/fd` (open files)
//! and the broker's `/stats` (`tasks`, the tokio runtime's alive tasks, and
//! `connections`) every `sample_every`, plus once before the first client
//! (idle) and once after the last is gone (drained).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use plotters::style::{Color, RGBAColor, BLACK, BLUE, GREEN, RED};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};
use tokio::time::timeout_at;

use crate::conn::{ConnOptions, Event, Protocol, SubConn};
use crate::plots::{stacked, Panel};
use crate::procstat::{is_running, open_fds, rss_kib, CpuMeter};
use crate::universe::Universe;

/// Longest single wait of a slot, so it notices the run's end (or a dead
/// broker) within this long.
const STEP: Duration = Duration::from_millis(500);
/// Time for a connection to open and its first subscription to be acknowledged.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for the closing handshake (the echo and the end of stream).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);
/// Time for the broker to drop every connection after the last client ended.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);
/// A slow reader (always on `*`) reads at most this many bytes at a time…
const SLOW_CHUNK: usize = 1024;
/// …once per this period: 4 KB/s, a tenth or less of what `*` carries at
/// 500 ticks/s and more.
const SLOW_PERIOD: Duration = Duration::from_millis(250);
/// A slow reader's `SO_RCVBUF` (the kernel doubles it), so the backlog
/// reaches the broker's outbox soon instead of filling our socket.
const SLOW_RCVBUF: u32 = 8 * 1024;
/// Half the slow readers send a ping this often (a client library's
/// keepalive): the broker then never finds them silent, so instead of its
/// ping timeout their backlog meets its outbox bound (conflation, then the
/// 1008 slow-consumer close). The other half stay silent, for the ping
/// timeout (their pong is stuck behind the backlog).
const HEARTBEAT: Duration = Duration::from_secs(5);
/// A healthy connection's read buffer.
const READ_BUF: usize = 16 * 1024;
/// At most this many subscription changes in one connection's life.
const MAX_CHANGES: usize = 64;
/// Timeout of a `/stats` request.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle and drained samples may differ by this many fds or tasks (the
/// `/stats` request's own connection, a listener's pending accept).
pub const DRAIN_MARGIN: u64 = 4;

/// What a soak does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SoakSpec {
    /// How long the churn runs.
    pub duration_s: f64,
    /// Time between two samples.
    pub sample_every_s: f64,
    /// Subscriber slots (connections open at once, nearly).
    pub subscribers: usize,
    /// The broker simulator's symbol count (`--symbols`): the topics are
    /// drawn from the same names and Zipf weights.
    pub symbols: usize,
    /// Topics per subscription: 1 to this many.
    pub max_topics: usize,
    /// Mean lifetime of one connection.
    pub mean_life_s: f64,
    /// Share of connections that subscribe to `*`.
    pub wildcard_share: f64,
    /// Share of connections that are slow readers.
    pub slow_share: f64,
    /// Share of connection ends that are abrupt resets (`SO_LINGER` 0).
    pub reset_share: f64,
    /// Share of connection ends that drop the socket without a close frame.
    pub drop_share: f64,
    /// Seed of every random choice.
    pub seed: u64,
    /// The share of the run ignored by the flatness rule (warm-up).
    pub warmup: f64,
    /// Threads running the subscribers.
    pub threads: usize,
}

impl Default for SoakSpec {
    fn default() -> Self {
        Self {
            duration_s: 3600.0,
            sample_every_s: 10.0,
            subscribers: 1000,
            symbols: 100,
            max_topics: 5,
            mean_life_s: 30.0,
            wildcard_share: 0.02,
            slow_share: 0.03,
            reset_share: 0.2,
            drop_share: 0.2,
            seed: 1,
            warmup: 0.2,
            threads: 1,
        }
    }
}

impl SoakSpec {
    fn check(&self) -> Result<()> {
        let share = |x: f64| (0.0..=1.0).contains(&x);
        anyhow::ensure!(
            (1.0..=7.0 * 86400.0).contains(&self.duration_s),
            "duration must be 1 s to 7 days"
        );
        anyhow::ensure!(
            self.sample_every_s >= 0.1 && self.sample_every_s * 8.0 <= self.duration_s,
            "sample at least every 0.1 s and at least 8 times a run"
        );
        anyhow::ensure!(
            (1..=20_000).contains(&self.subscribers),
            "1 to 20,000 subscribers"
        );
        anyhow::ensure!(
            self.symbols >= 1 && (1..=self.symbols).contains(&self.max_topics),
            "at least one symbol, 1 to that many topics"
        );
        anyhow::ensure!(self.mean_life_s >= 0.5, "mean life at least 0.5 s");
        anyhow::ensure!(
            share(self.wildcard_share)
                && share(self.slow_share)
                && share(self.reset_share)
                && share(self.drop_share)
                && self.reset_share + self.drop_share <= 1.0,
            "shares are fractions (resets + drops at most 1)"
        );
        anyhow::ensure!(
            (0.0..=0.5).contains(&self.warmup),
            "warm-up is 0 to half of the run"
        );
        anyhow::ensure!((1..=16).contains(&self.threads), "1 to 16 threads");
        Ok(())
    }
}

/// One sample of the broker.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the first client started.
    pub t_s: f64,
    /// Resident memory (KiB).
    pub rss_kib: u64,
    /// Open file descriptors.
    pub fds: u64,
    /// Alive tasks of the broker's runtime (`/stats` `tasks`).
    pub tasks: u64,
    /// Open WebSocket connections (`/stats` `connections`).
    pub connections: u64,
    /// Our connections open at that moment.
    pub clients_open: u64,
}

/// Which series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Series {
    /// Resident memory.
    Rss,
    /// Open file descriptors.
    Fds,
    /// Alive tasks.
    Tasks,
}

impl Series {
    /// Every series, in report order.
    pub const ALL: [Series; 3] = [Series::Rss, Series::Fds, Series::Tasks];

    /// The name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Series::Rss => "rss_kib",
            Series::Fds => "fds",
            Series::Tasks => "tasks",
        }
    }

    /// The value in a sample.
    pub fn of(self, s: &Sample) -> u64 {
        match self {
            Series::Rss => s.rss_kib,
            Series::Fds => s.fds,
            Series::Tasks => s.tasks,
        }
    }

    /// The flatness rule's thresholds for this series: 5 % of the level,
    /// or this absolute margin if larger (4 MiB of RSS, 32 fds or tasks,
    /// about 3 % of a thousand connections, each of which holds one fd
    /// and one task).
    pub fn rule(self) -> Rule {
        Rule {
            relative: 0.05,
            absolute: match self {
                Series::Rss => 4096.0,
                Series::Fds | Series::Tasks => 32.0,
            },
        }
    }
}

/// The flatness thresholds: growth up to `max(relative × level, absolute)`
/// is allowed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Rule {
    /// Share of the level (median after the warm-up).
    pub relative: f64,
    /// Absolute margin, in the series' unit.
    pub absolute: f64,
}

/// What the rule found for one series.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    /// Which series.
    pub series: Series,
    /// First and last sample, smallest and largest (the whole run).
    pub start: f64,
    /// The last sample.
    pub end: f64,
    /// The smallest sample.
    pub min: f64,
    /// The largest sample.
    pub max: f64,
    /// Samples after the warm-up.
    pub samples: usize,
    /// Median after the warm-up.
    pub level: f64,
    /// Least-squares slope after the warm-up, per hour.
    pub slope_per_h: f64,
    /// The slope times the run's duration.
    pub projected_growth: f64,
    /// Median of the second quarter of the run.
    pub q2_median: f64,
    /// Median of the last quarter of the run.
    pub q4_median: f64,
    /// The growth allowed: max(relative × level, absolute).
    pub allowed: f64,
    /// Both checks passed.
    pub flat: bool,
    /// Why not, if not.
    pub reason: String,
}

/// The flatness rule, for samples `(t, y)` of a run lasting `duration_s`
/// (t from 0, when the clients started):
///
/// - ignore the warm-up, samples with t < `warmup` × duration;
/// - the level L is the median of the rest, and the growth allowed is
///   A = max(`rule.relative` × L, `rule.absolute`);
/// - **slope**: the least-squares slope of the rest, projected over the
///   whole run (slope × duration), must be at most A;
/// - **quarters**: the median of the last quarter of the run (t ≥ ¾ of
///   the duration) must exceed the median of the second quarter
///   (¼ ≤ t < ½) by at most A.
///
/// Both are one-sided: memory given back is not a leak. Fewer than 8
/// samples after the warm-up, or an empty quarter, is not flat (nothing
/// can be concluded, so it cannot pass).
pub fn judge(
    series: Series,
    points: &[(f64, f64)],
    duration_s: f64,
    warmup: f64,
    rule: Rule,
) -> Verdict {
    let ys: Vec<f64> = points.iter().map(|p| p.1).collect();
    let after: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|p| p.0 >= warmup * duration_s)
        .collect();
    let in_range = |from: f64, to: f64| -> Vec<f64> {
        points
            .iter()
            .filter(|p| p.0 >= from * duration_s && p.0 < to * duration_s)
            .map(|p| p.1)
            .collect()
    };
    let level = median(&after.iter().map(|p| p.1).collect::<Vec<_>>());
    let (q2, q4) = (in_range(0.25, 0.5), in_range(0.75, f64::INFINITY));
    let slope = slope(&after);
    let allowed = (rule.relative * level).max(rule.absolute);
    let mut v = Verdict {
        series,
        start: ys.first().copied().unwrap_or(0.0),
        end: ys.last().copied().unwrap_or(0.0),
        min: ys.iter().copied().fold(f64::INFINITY, f64::min),
        max: ys.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        samples: after.len(),
        level,
        slope_per_h: slope * 3600.0,
        projected_growth: slope * duration_s,
        q2_median: median(&q2),
        q4_median: median(&q4),
        allowed,
        flat: false,
        reason: String::new(),
    };
    let mut why = Vec::new();
    if after.len() < 8 || q2.is_empty() || q4.is_empty() {
        why.push(format!(
            "too few samples ({} after the warm-up, {} and {} in the 2nd and 4th quarters)",
            after.len(),
            q2.len(),
            q4.len()
        ));
    } else {
        if v.projected_growth > allowed {
            why.push(format!(
                "slope {:.1}/h projects +{:.1} over the run (allowed {allowed:.1})",
                v.slope_per_h, v.projected_growth
            ));
        }
        if v.q4_median - v.q2_median > allowed {
            why.push(format!(
                "last-quarter median {:.1} exceeds the second quarter's {:.1} by more than {allowed:.1}",
                v.q4_median, v.q2_median
            ));
        }
    }
    v.flat = why.is_empty();
    v.reason = why.join("; ");
    v
}

/// The least-squares slope of `points` (0 for fewer than two distinct t).
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mean_t = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (t, y) in points {
        num += (t - mean_t) * (y - mean_y);
        den += (t - mean_t) * (t - mean_t);
    }
    if den > 0.0 {
        num / den
    } else {
        0.0
    }
}

/// The median (0 for none).
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// What the subscribers did, counted across all slots.
#[derive(Debug, Default)]
struct Counts {
    attempts: AtomicU64,
    connects: AtomicU64,
    connect_failures: AtomicU64,
    slow_lives: AtomicU64,
    wildcard_lives: AtomicU64,
    subscribes: AtomicU64,
    unsubscribes: AtomicU64,
    acks: AtomicU64,
    refusals: AtomicU64,
    ticks: AtomicU64,
    clean_closes: AtomicU64,
    close_resets: AtomicU64,
    resets: AtomicU64,
    drops: AtomicU64,
    server_ended: AtomicU64,
    server_resets: AtomicU64,
    errors: AtomicU64,
    open: AtomicI64,
    /// Close codes the broker sent, by code.
    close_codes: Mutex<BTreeMap<u16, u64>>,
    /// The first few errors, for the report.
    first_errors: Mutex<Vec<String>>,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Counts {
    fn error(&self, e: &anyhow::Error) {
        bump(&self.errors);
        if let Ok(mut first) = self.first_errors.lock() {
            if first.len() < 10 {
                first.push(format!("{e:#}"));
            }
        }
    }

    fn report(&self) -> ChurnReport {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ChurnReport {
            attempts: get(&self.attempts),
            connects: get(&self.connects),
            connect_failures: get(&self.connect_failures),
            slow_lives: get(&self.slow_lives),
            wildcard_lives: get(&self.wildcard_lives),
            subscribes: get(&self.subscribes),
            unsubscribes: get(&self.unsubscribes),
            acks: get(&self.acks),
            refusals: get(&self.refusals),
            ticks: get(&self.ticks),
            clean_closes: get(&self.clean_closes),
            close_resets: get(&self.close_resets),
            resets: get(&self.resets),
            drops: get(&self.drops),
            server_ended: get(&self.server_ended),
            server_resets: get(&self.server_resets),
            errors: get(&self.errors),
            close_codes: self
                .close_codes
                .lock()
                .map(|m| m.iter().map(|(k, v)| (k.to_string(), *v)).collect())
                .unwrap_or_default(),
            first_errors: self
                .first_errors
                .lock()
                .map(|v| v.clone())
                .unwrap_or_default(),
        }
    }
}

/// What the subscribers did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChurnReport {
    /// Connections tried (a TCP connect started).
    pub attempts: u64,
    /// Connections opened (upgraded and acknowledged).
    pub connects: u64,
    /// Connections that failed to open or be acknowledged in time.
    pub connect_failures: u64,
    /// Connections that were slow readers.
    pub slow_lives: u64,
    /// Connections that started on `*`.
    pub wildcard_lives: u64,
    /// Subscribe requests sent (the first of each connection included).
    pub subscribes: u64,
    /// Unsubscribe requests sent.
    pub unsubscribes: u64,
    /// Acknowledgements received.
    pub acks: u64,
    /// Requests refused.
    pub refusals: u64,
    /// Ticks received.
    pub ticks: u64,
    /// Connections we ended with the closing handshake.
    pub clean_closes: u64,
    /// Closing handshakes the broker answered with a TCP reset, not the end
    /// of stream (counted apart from the errors: the close was ours).
    pub close_resets: u64,
    /// Connections we reset (`SO_LINGER` 0).
    pub resets: u64,
    /// Connections we dropped without a close frame.
    pub drops: u64,
    /// Connections the broker ended (close frame or end of stream).
    pub server_ended: u64,
    /// Connections the broker reset while we read (it cut a slow reader
    /// with bytes unread; counted apart from the errors).
    pub server_resets: u64,
    /// Connections that ended on an error of ours or the socket's.
    pub errors: u64,
    /// The broker's close codes, by code.
    pub close_codes: BTreeMap<String, u64>,
    /// The first errors seen.
    pub first_errors: Vec<String>,
}

/// A soak's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SoakReport {
    /// What ran.
    pub spec: SoakSpec,
    /// The broker's address and pid.
    pub broker: String,
    /// Its process id.
    pub server_pid: u32,
    /// When the run started (Unix seconds).
    pub started_unix_s: u64,
    /// Seconds the churn actually ran (shorter if the broker died).
    pub ran_s: f64,
    /// Before the first client.
    pub idle: Sample,
    /// Every `sample_every` during the run.
    pub samples: Vec<Sample>,
    /// After the last client ended and the broker dropped every connection
    /// (or [`DRAIN_TIMEOUT`] passed); `None` if the broker was gone.
    pub drained: Option<Sample>,
    /// Per series.
    pub verdicts: Vec<Verdict>,
    /// What the subscribers did.
    pub churn: ChurnReport,
    /// The broker's counters at the end, from `/metrics` (every unlabelled
    /// `_total`: its slow-consumer and ping-timeout counts say whether
    /// those paths ran); empty if it was gone.
    pub broker_counters: BTreeMap<String, u64>,
    /// CPU use over the run, in cores: the loadgen's…
    pub loadgen_cpu_cores: f64,
    /// …and the broker's.
    pub server_cpu_cores: Option<f64>,
    /// The broker was running and answering at every sample.
    pub broker_alive: bool,
    /// Checks besides flatness that failed (empty when all passed).
    pub failures: Vec<String>,
    /// Everything passed.
    pub passed: bool,
}

impl SoakReport {
    /// The verdict table and the other checks, for the terminal.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let c = &self.churn;
        let _ = writeln!(
            out,
            "soak: {:.0} s, {} subscriber slots, {} connects ({} failed, {} slow, {} on *), \
             {} subscribes, {} unsubscribes, {} ticks; ends: {} clean ({} answered by a reset), \
             {} reset, {} dropped, {} by the broker {:?}, {} reset by the broker, {} errors",
            self.ran_s,
            self.spec.subscribers,
            c.connects,
            c.connect_failures,
            c.slow_lives,
            c.wildcard_lives,
            c.subscribes,
            c.unsubscribes,
            c.ticks,
            c.clean_closes,
            c.close_resets,
            c.resets,
            c.drops,
            c.server_ended,
            c.close_codes,
            c.server_resets,
            c.errors
        );
        let stat = |k: &str| {
            let name = format!("tickcast_{k}_total");
            self.broker_counters.get(&name).copied().unwrap_or(0)
        };
        let _ = writeln!(
            out,
            "broker: {} connections accepted, {} conflated, {} dropped, {} slow disconnects, \
             {} ping timeouts; CPU: broker {} cores, loadgen {:.2}",
            stat("connections"),
            stat("conflated"),
            stat("dropped"),
            stat("slow_disconnects"),
            stat("ping_timeouts"),
            self.server_cpu_cores
                .map_or("?".to_owned(), |c| format!("{c:.2}")),
            self.loadgen_cpu_cores
        );
        let _ = writeln!(
            out,
            "{:<8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>12} {:>12} {:>10} {:>10} {:>9}  verdict",
            "series",
            "idle",
            "start",
            "end",
            "min",
            "max",
            "slope/h",
            "projected",
            "Q2→Q4",
            "allowed",
            "drained"
        );
        for v in &self.verdicts {
            let idle = v.series.of(&self.idle);
            let drained = self
                .drained
                .as_ref()
                .map_or("-".to_owned(), |d| v.series.of(d).to_string());
            let _ = writeln!(
                out,
                "{:<8} {:>10} {:>10.0} {:>10.0} {:>10.0} {:>10.0} {:>12.1} {:>12.1} {:>+10.1} {:>10.1} {:>9}  {}",
                v.series.name(),
                idle,
                v.start,
                v.end,
                v.min,
                v.max,
                v.slope_per_h,
                v.projected_growth,
                v.q4_median - v.q2_median,
                v.allowed,
                drained,
                if v.flat { "flat".to_owned() } else { format!("NOT FLAT: {}", v.reason) }
            );
        }
        for f in &self.failures {
            let _ = writeln!(out, "FAILED: {f}");
        }
        let _ = writeln!(
            out,
            "{}",
            if self.passed {
                "soak passed: every series flat, the broker alive, idle again after the drain"
            } else {
                "soak FAILED"
            }
        );
        out
    }

    /// Writes `soak.json` and `soak.svg` into `dir`; returns their paths.
    pub fn save(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let json = dir.join("soak.json");
        std::fs::write(&json, serde_json::to_vec_pretty(self)?)?;
        let svg = dir.join("soak.svg");
        self.plot(&svg)?;
        Ok(vec![json, svg])
    }

    /// The three series over time (minutes), one chart each, with the
    /// broker's open connections beside the fds and tasks.
    pub fn plot(&self, path: &Path) -> Result<()> {
        let minutes = |pick: fn(&Sample) -> f64| -> Vec<(f64, f64)> {
            self.samples
                .iter()
                .map(|s| (s.t_s / 60.0, pick(s)))
                .collect()
        };
        let line = |label: &str, color: RGBAColor, points| (label.to_owned(), color, points);
        let conns = || {
            line(
                "broker connections",
                BLACK.mix(0.4),
                minutes(|s| s.connections as f64),
            )
        };
        let label = |series: Series, what: &str| {
            let verdict = self.verdicts.iter().find(|v| v.series == series);
            let word = verdict.map_or("?", |v| if v.flat { "flat" } else { "NOT FLAT" });
            format!("{what} ({word})")
        };
        let panels = [
            Panel {
                y_desc: "RSS (MiB)".to_owned(),
                lines: vec![line(
                    &label(Series::Rss, "RSS"),
                    BLUE.to_rgba(),
                    minutes(|s| s.rss_kib as f64 / 1024.0),
                )],
            },
            Panel {
                y_desc: "open fds".to_owned(),
                lines: vec![
                    line(
                        &label(Series::Fds, "open fds"),
                        GREEN.to_rgba(),
                        minutes(|s| s.fds as f64),
                    ),
                    conns(),
                ],
            },
            Panel {
                y_desc: "alive tasks".to_owned(),
                lines: vec![
                    line(
                        &label(Series::Tasks, "tasks"),
                        RED.to_rgba(),
                        minutes(|s| s.tasks as f64),
                    ),
                    conns(),
                ],
            },
        ];
        let title = format!(
            "tickcast soak: {} churning subscribers, {:.0} min (first {:.0} % warm-up, not judged)",
            self.spec.subscribers,
            self.ran_s / 60.0,
            self.spec.warmup * 100.0
        );
        stacked(path, &title, "minutes", &panels)
    }
}

/// The broker under test.
#[derive(Debug, Clone, Copy)]
pub struct SoakTarget {
    /// Its WebSocket and HTTP address (loopback).
    pub ws: SocketAddr,
    /// Its process id, for `/proc`.
    pub pid: u32,
}

/// Runs a soak against a listening tickcast broker; the report says whether
/// it passed (an `Err` is a soak that could not run at all).
pub fn run_soak(spec: &SoakSpec, target: SoakTarget) -> Result<SoakReport> {
    spec.check()?;
    anyhow::ensure!(
        target.ws.ip().is_loopback(),
        "the soak only targets loopback addresses, not {}",
        target.ws
    );
    let started_unix_s = crate::latency::now_ns() / 1_000_000_000;
    let idle = sample(target, 0.0, 0).context("the broker cannot be sampled before the run")?;
    let universe = Arc::new(Universe::new(spec.symbols, 1.0));
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let duration = Duration::from_secs_f64(spec.duration_s);
    let cpu = CpuMeter::start(Some(target.pid));
    let t0 = Instant::now();
    let end = t0 + duration;
    let mut threads = Vec::new();
    for thread in 0..spec.threads {
        let slots: Vec<usize> = (thread..spec.subscribers).step_by(spec.threads).collect();
        let (spec, universe, counts, stop) =
            (spec.clone(), universe.clone(), counts.clone(), stop.clone());
        let handle = std::thread::Builder::new()
            .name(format!("soak-{thread}"))
            .spawn(move || run_slots(&spec, target.ws, &slots, &universe, &counts, &stop, t0, end))
            .context("spawn a subscriber thread")?;
        threads.push(handle);
    }

    let every = Duration::from_secs_f64(spec.sample_every_s);
    let mut samples = Vec::new();
    let mut broker_alive = true;
    let mut failures = Vec::new();
    for k in 1u64.. {
        let due = t0 + every.mul_f64(k as f64);
        if due > end {
            break;
        }
        // In steps of at most a second, to see an interruption soon.
        while !interrupted() && Instant::now() < due {
            let left = due.saturating_duration_since(Instant::now());
            std::thread::sleep(left.min(Duration::from_secs(1)));
        }
        if interrupted() {
            failures.push(format!(
                "interrupted (SIGINT or SIGTERM) at {:.0} s of {:.0}",
                t0.elapsed().as_secs_f64(),
                spec.duration_s
            ));
            break;
        }
        if Instant::now() > due + every {
            // Over an interval late (the machine stalled, or the processes
            // were stopped): skip, rather than take a burst of samples.
            continue;
        }
        let open = counts.open.load(Ordering::Relaxed).max(0) as u64;
        match sample(target, t0.elapsed().as_secs_f64(), open) {
            Ok(s) => samples.push(s),
            Err(e) => {
                broker_alive = false;
                failures.push(format!(
                    "the broker stopped answering at {:.0} s: {e:#}",
                    t0.elapsed().as_secs_f64()
                ));
                break;
            }
        }
    }
    let ran_s = t0.elapsed().as_secs_f64().min(spec.duration_s);
    let (loadgen_cpu_cores, server_cpu_cores) = cpu.read();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        if t.join().is_err() {
            failures.push("a subscriber thread panicked".to_owned());
        }
    }

    // Idle again: every connection gone, the fds and tasks back to where
    // they were before the first client.
    let mut drained = None;
    if broker_alive {
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        loop {
            let s = sample(target, t0.elapsed().as_secs_f64(), 0);
            let done = match &s {
                Ok(s) => {
                    s.connections == 0
                        && s.fds <= idle.fds + DRAIN_MARGIN
                        && s.tasks <= idle.tasks + DRAIN_MARGIN
                }
                Err(_) => true,
            };
            if done || Instant::now() >= deadline {
                match s {
                    Ok(s) => drained = Some(s),
                    Err(e) => {
                        broker_alive = false;
                        failures.push(format!("the broker died after the run: {e:#}"));
                    }
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    if let Some(d) = &drained {
        if d.connections != 0 {
            failures.push(format!(
                "{} connections still open {DRAIN_TIMEOUT:?} after the last client ended",
                d.connections
            ));
        }
        for (what, now, before) in [("fds", d.fds, idle.fds), ("tasks", d.tasks, idle.tasks)] {
            if now > before + DRAIN_MARGIN {
                failures.push(format!(
                    "{what}: {now} after the drain, {before} before the run (margin {DRAIN_MARGIN})"
                ));
            }
        }
    }

    let broker_counters = crate::http::get(target.ws, "/metrics", HTTP_TIMEOUT, None)
        .map(|body| counters(&String::from_utf8_lossy(&body)))
        .unwrap_or_default();
    let churn = counts.report();
    // The load must have been applied, or flat series mean nothing.
    if churn.connects < 2 * spec.subscribers as u64 {
        failures.push(format!(
            "only {} connects for {} slots: the churn did not happen",
            churn.connects, spec.subscribers
        ));
    }
    let mean_open =
        samples.iter().map(|s| s.clients_open as f64).sum::<f64>() / samples.len().max(1) as f64;
    if mean_open < 0.5 * spec.subscribers as f64 {
        failures.push(format!(
            "on average only {mean_open:.0} of {} subscribers were connected",
            spec.subscribers
        ));
    }
    let verdicts: Vec<Verdict> = Series::ALL
        .iter()
        .map(|&series| {
            let points: Vec<(f64, f64)> = samples
                .iter()
                .map(|s| (s.t_s, series.of(s) as f64))
                .collect();
            judge(series, &points, spec.duration_s, spec.warmup, series.rule())
        })
        .collect();
    let passed = broker_alive && failures.is_empty() && verdicts.iter().all(|v| v.flat);
    Ok(SoakReport {
        spec: spec.clone(),
        broker: target.ws.to_string(),
        server_pid: target.pid,
        started_unix_s,
        ran_s,
        idle,
        samples,
        drained,
        verdicts,
        churn,
        broker_counters,
        loadgen_cpu_cores,
        server_cpu_cores,
        broker_alive,
        failures,
        passed,
    })
}

/// Reads the broker's RSS, fds and `/stats`.
fn sample(target: SoakTarget, t_s: f64, clients_open: u64) -> Result<Sample> {
    if !is_running(target.pid) {
        bail!("process {} is not running", target.pid);
    }
    let rss_kib = rss_kib(target.pid).context("no RSS in /proc")?;
    let fds = open_fds(target.pid).context("cannot list /proc/PID/fd")?;
    let body = crate::http::get(target.ws, "/stats", HTTP_TIMEOUT, None)?;
    let stats: serde_json::Value = serde_json::from_slice(&body).context("parse /stats")?;
    let field = |name: &str| {
        stats[name]
            .as_u64()
            .with_context(|| format!("/stats has no {name} (a broker without the tasks gauge?)"))
    };
    Ok(Sample {
        t_s,
        rss_kib,
        fds,
        tasks: field("tasks")?,
        connections: field("connections")?,
        clients_open,
    })
}

/// Set by [`stop_on_signals`]' handler.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Makes SIGINT and SIGTERM end a running soak early instead of killing
/// the process: the clients stop, the broker is drained and sampled, and the
/// report (failed, "interrupted") is still written. For the command line;
/// a second signal still finds the handler, so `kill -9` is the way out of
/// a stuck one.
pub fn stop_on_signals() {
    let handler = on_signal as extern "C" fn(libc::c_int);
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: installs a handler that only stores to an atomic.
        unsafe {
            libc::signal(sig, handler as libc::sighandler_t);
        }
    }
}

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// The unlabelled counters (`…_total value`) of a Prometheus text page.
fn counters(page: &str) -> BTreeMap<String, u64> {
    page.lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(name, _)| name.ends_with("_total") && !name.contains('{'))
        .filter_map(|(name, v)| Some((name.to_owned(), v.trim().parse::<f64>().ok()? as u64)))
        .collect()
}

/// One subscriber thread: its slots as tasks on a current-thread runtime.
#[allow(clippy::too_many_arguments)]
fn run_slots(
    spec: &SoakSpec,
    ws: SocketAddr,
    slots: &[usize],
    universe: &Arc<Universe>,
    counts: &Arc<Counts>,
    stop: &Arc<AtomicBool>,
    t0: Instant,
    end: Instant,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return counts.error(&anyhow::Error::new(e).context("runtime")),
    };
    let local = tokio::task::LocalSet::new();
    // Start the slots evenly over the first 5 % of the run (at most 10 s),
    // not all in the same instant.
    let ramp = (end - t0).mul_f64(0.05).min(Duration::from_secs(10));
    let n = spec.subscribers.max(1) as f64;
    local.block_on(&runtime, async {
        let mut tasks = Vec::new();
        for &slot in slots {
            let slot_spec = SlotEnv {
                spec: spec.clone(),
                ws,
                universe: universe.clone(),
                counts: counts.clone(),
                stop: stop.clone(),
                end: end.into(),
                start: (t0 + ramp.mul_f64(slot as f64 / n)).into(),
            };
            tasks.push(tokio::task::spawn_local(run_slot(slot_spec, slot)));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

/// What one slot needs.
struct SlotEnv {
    spec: SoakSpec,
    ws: SocketAddr,
    universe: Arc<Universe>,
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
    start: tokio::time::Instant,
    end: tokio::time::Instant,
}

impl SlotEnv {
    /// The run is over (its end reached, or the sampler stopped it).
    fn over(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || tokio::time::Instant::now() >= self.end
    }

    /// Sleeps until `until` (or the run's end), in steps of at most [`STEP`]
    /// so a stop is seen.
    async fn sleep_until(&self, until: tokio::time::Instant) {
        let until = until.min(self.end);
        while !self.over() && tokio::time::Instant::now() < until {
            let step = (tokio::time::Instant::now() + STEP).min(until);
            tokio::time::sleep_until(step).await;
        }
    }
}

/// How a connection ends, when we end it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Clean,
    Reset,
    Drop,
}

/// A slot: connection after connection until the run ends.
async fn run_slot(env: SlotEnv, slot: usize) {
    let mut rng =
        Pcg64Mcg::seed_from_u64(env.spec.seed ^ (slot as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    env.sleep_until(env.start).await;
    let mut life = 0u32;
    while !env.over() {
        life = life.wrapping_add(1);
        let id = (slot as u32).wrapping_mul(65_537).wrapping_add(life);
        if let Err(e) = one_life(&env, &mut rng, id).await {
            env.counts.error(&e);
        }
        let pause = Duration::from_millis(rng.random_range(50..=1000));
        env.sleep_until(tokio::time::Instant::now() + pause).await;
    }
}

/// Topics for a subscription: `*`, or 1 to `max_topics` symbols drawn
/// with the activity weights.
fn draw(env: &SlotEnv, rng: &mut Pcg64Mcg, wildcard: bool) -> Result<Vec<String>> {
    if wildcard {
        return Ok(vec![tickcast_protocol::WILDCARD.to_owned()]);
    }
    let k = rng.random_range(1..=env.spec.max_topics);
    let syms = env.universe.draw_topics(rng, k)?;
    Ok(syms
        .iter()
        .map(|&i| env.universe.name(i as usize).to_owned())
        .collect())
}

/// One connection, from connect to its end.
async fn one_life(env: &SlotEnv, rng: &mut Pcg64Mcg, id: u32) -> Result<()> {
    let spec = &env.spec;
    let counts = &env.counts;
    let slow = rng.random_bool(spec.slow_share);
    // Slow readers take the whole feed, so their backlog grows fast.
    let wildcard = slow || rng.random_bool(spec.wildcard_share);
    let topics = draw(env, rng, wildcard)?;
    let opts = ConnOptions {
        source: None,
        rcvbuf: slow.then_some(SLOW_RCVBUF),
        read_buf: if slow { SLOW_CHUNK } else { READ_BUF },
        tls: None,
    };
    let open = async {
        let mut conn = SubConn::connect(env.ws, Protocol::Tickcast, &opts, id).await?;
        conn.subscribe(&topics).await?;
        bump(&counts.subscribes);
        // The acknowledgement (snapshots may come with or after it).
        loop {
            anyhow::ensure!(conn.read_some().await? > 0, "closed before the ack");
            let mut acked = false;
            conn.process(&mut |e| acked |= matches!(e, Event::Ack(_)))?;
            conn.flush_replies().await?;
            if acked {
                return anyhow::Ok(conn);
            }
        }
    };
    bump(&counts.attempts);
    let deadline = (tokio::time::Instant::now() + OPEN_TIMEOUT).min(env.end);
    let mut conn = match timeout_at(deadline, open).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) if env.over() => return Err(e.context("connect at the run's end")),
        Ok(Err(e)) => {
            bump(&counts.connect_failures);
            return Err(e.context("connect"));
        }
        Err(_) if env.over() => return Ok(()),
        Err(_) => {
            bump(&counts.connect_failures);
            bail!("connect + ack took over {OPEN_TIMEOUT:?}");
        }
    };
    bump(&counts.connects);
    bump(&counts.acks);
    if slow {
        bump(&counts.slow_lives);
    }
    if wildcard {
        bump(&counts.wildcard_lives);
    }
    counts.open.fetch_add(1, Ordering::Relaxed);
    let result = live(env, rng, &mut conn, slow, topics).await;
    counts.open.fetch_sub(1, Ordering::Relaxed);
    match result {
        Ok(Some(code)) => {
            bump(&counts.server_ended);
            if let (Some(code), Ok(mut codes)) = (code, counts.close_codes.lock()) {
                *codes.entry(code).or_default() += 1;
            }
            Ok(())
        }
        Ok(None) => {
            let roll: f64 = rng.random();
            let ending = if roll < spec.reset_share {
                Ending::Reset
            } else if roll < spec.reset_share + spec.drop_share {
                Ending::Drop
            } else {
                Ending::Clean
            };
            end_life(env, conn, ending).await
        }
        Err(e) if is_reset(&e) => {
            bump(&counts.server_resets);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Reads until the connection's lifetime is over: `Ok(None)` then, or
/// `Ok(Some(close code))` if the broker ended it first.
async fn live(
    env: &SlotEnv,
    rng: &mut Pcg64Mcg,
    conn: &mut SubConn,
    slow: bool,
    mut topics: Vec<String>,
) -> Result<Option<Option<u16>>> {
    let spec = &env.spec;
    let counts = &env.counts;
    let mean = spec.mean_life_s;
    // Exponential, clamped to [mean/4, 4 × mean]; a slow reader's 2 to 8
    // times the mean, long enough to fill the kernel's buffers (megabytes
    // on loopback) and the broker's outbox and stay over it.
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    let life_s = if slow {
        rng.random_range(2.0..8.0) * mean
    } else {
        (-u.ln() * mean).clamp(mean / 4.0, 4.0 * mean)
    };
    let life_end = (tokio::time::Instant::now() + Duration::from_secs_f64(life_s)).min(env.end);
    // Slow readers keep their subscription: they barely read the acks.
    let mut changes = if slow { MAX_CHANGES } else { 0 };
    let mut next_change =
        tokio::time::Instant::now() + Duration::from_secs_f64(rng.random_range(0.1..0.4) * mean);
    let mut on_wildcard_extra = false;
    let mut slow_buf = vec![0u8; SLOW_CHUNK];
    let heartbeat = slow && rng.random_bool(0.5);
    let mut next_heartbeat = tokio::time::Instant::now() + HEARTBEAT;
    let mut closed_by_server: Option<Option<u16>> = None;
    while !env.over() && tokio::time::Instant::now() < life_end {
        let now = tokio::time::Instant::now();
        let changing = changes < MAX_CHANGES;
        if changing && now >= next_change {
            changes += 1;
            change_subscription(env, rng, conn, &mut topics, &mut on_wildcard_extra).await?;
            next_change = now + Duration::from_secs_f64(rng.random_range(0.1..0.4) * mean);
        }
        if heartbeat && now >= next_heartbeat {
            conn.send_ping(b"soak").await?;
            next_heartbeat = now + HEARTBEAT;
        }
        let mut wake = (now + STEP).min(life_end);
        if changing {
            wake = wake.min(next_change);
        }
        let mut ticks = 0u64;
        let mut acks = 0u64;
        let mut refused = 0u64;
        let mut on = |e: Event<'_>| match e {
            Event::Tick(_) => ticks += 1,
            Event::Ack(_) => acks += 1,
            Event::Refused(_) => refused += 1,
            Event::Closed(code) => closed_by_server = Some(code),
            Event::Continuity(_) | Event::Other => {}
        };
        let read = if slow {
            // At most SLOW_CHUNK bytes now, then nothing for SLOW_PERIOD.
            match timeout_at(wake, conn.readable()).await {
                Err(_) => None,
                Ok(r) => {
                    r?;
                    match conn.try_read(&mut slow_buf)? {
                        None => Some(1),
                        Some(0) => Some(0),
                        Some(n) => {
                            conn.feed(&slow_buf[..n], &mut on)?;
                            Some(n)
                        }
                    }
                }
            }
        } else {
            match timeout_at(wake, conn.read_some()).await {
                Err(_) => None,
                Ok(n) => {
                    let n = n?;
                    conn.process(&mut on)?;
                    Some(n)
                }
            }
        };
        counts.ticks.fetch_add(ticks, Ordering::Relaxed);
        counts.acks.fetch_add(acks, Ordering::Relaxed);
        counts.refusals.fetch_add(refused, Ordering::Relaxed);
        if read == Some(0) {
            // The end of stream without a close frame.
            return Ok(Some(closed_by_server.unwrap_or(None)));
        }
        // Pongs, and the echo of a close.
        conn.flush_replies().await?;
        if let Some(code) = closed_by_server {
            return Ok(Some(code));
        }
        if slow && read.is_some() {
            env.sleep_until(tokio::time::Instant::now() + SLOW_PERIOD)
                .await;
        }
    }
    Ok(None)
}

/// Subscribes to more symbols, unsubscribes from some, or goes on and off
/// `*`.
async fn change_subscription(
    env: &SlotEnv,
    rng: &mut Pcg64Mcg,
    conn: &mut SubConn,
    topics: &mut Vec<String>,
    on_wildcard_extra: &mut bool,
) -> Result<()> {
    let counts = &env.counts;
    let star = || vec![tickcast_protocol::WILDCARD.to_owned()];
    if *on_wildcard_extra {
        conn.unsubscribe(&star()).await?;
        bump(&counts.unsubscribes);
        *on_wildcard_extra = false;
        return Ok(());
    }
    match rng.random_range(0..10) {
        // Briefly onto `*` (off again at the next change).
        0 if topics.iter().all(|t| t != tickcast_protocol::WILDCARD) => {
            conn.subscribe(&star()).await?;
            bump(&counts.subscribes);
            *on_wildcard_extra = true;
        }
        // Unsubscribe from some of what we have.
        1..=4 if !topics.is_empty() => {
            let k = rng.random_range(1..=topics.len());
            let gone: Vec<String> = topics.drain(..k).collect();
            conn.unsubscribe(&gone).await?;
            bump(&counts.unsubscribes);
        }
        // Subscribe to more.
        _ => {
            let more = draw(env, rng, false)?;
            conn.subscribe(&more).await?;
            bump(&counts.subscribes);
            for t in more {
                if !topics.contains(&t) {
                    topics.push(t);
                }
            }
        }
    }
    Ok(())
}

/// Ends a connection our way.
async fn end_life(env: &SlotEnv, mut conn: SubConn, ending: Ending) -> Result<()> {
    let counts = &env.counts;
    match ending {
        Ending::Reset => {
            conn.reset()?;
            bump(&counts.resets);
        }
        Ending::Drop => {
            drop(conn);
            bump(&counts.drops);
        }
        Ending::Clean => {
            conn.send_close(tickcast_wsframe::close::code::NORMAL)
                .await?;
            // Read (and discard) until the echo and the end of stream.
            let handshake = async {
                loop {
                    if conn.read_some().await? == 0 {
                        return anyhow::Ok(());
                    }
                    conn.process(&mut |_| {})?;
                }
            };
            match tokio::time::timeout(CLOSE_TIMEOUT, handshake).await {
                Ok(Ok(())) => bump(&counts.clean_closes),
                Ok(Err(e)) if is_reset(&e) => bump(&counts.close_resets),
                Ok(Err(e)) => return Err(e.context("closing handshake")),
                Err(_) => {
                    bail!("the broker did not end the connection {CLOSE_TIMEOUT:?} after our close")
                }
            }
        }
    }
    Ok(())
}

/// Whether `e` is a TCP reset.
fn is_reset(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::ConnectionReset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(n: usize, f: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
        (1..=n)
            .map(|i| {
                let t = i as f64 * 10.0;
                (t, f(t))
            })
            .collect()
    }

    /// Deterministic noise in [-1, 1].
    fn noise(t: f64) -> f64 {
        ((t * 12.9898).sin() * 43_758.547).fract() * 2.0 - 1.0
    }

    const HOUR: f64 = 3600.0;

    #[test]
    fn a_flat_noisy_series_is_flat() {
        // 1,000 fds ± 3 %, an hour of 10 s samples.
        let s = series(360, |t| 1000.0 + 30.0 * noise(t));
        let v = judge(Series::Fds, &s, HOUR, 0.2, Series::Fds.rule());
        assert!(v.flat, "{v:?}");
        assert!(v.projected_growth.abs() < 32.0, "{v:?}");
    }

    #[test]
    fn a_steady_leak_is_not_flat() {
        // +8 % over the hour, under ±3 % noise: 80 fds, allowed 50.
        let s = series(360, |t| 1000.0 + 80.0 * t / HOUR + 30.0 * noise(t));
        let v = judge(Series::Fds, &s, HOUR, 0.2, Series::Fds.rule());
        assert!(!v.flat, "{v:?}");
        assert!(v.reason.contains("slope"), "{v:?}");
        // RSS growing 10 MiB an hour from 40 MiB (allowed: 4 MiB).
        let s = series(360, |t| 40_960.0 + 10_240.0 * t / HOUR);
        let v = judge(Series::Rss, &s, HOUR, 0.2, Series::Rss.rule());
        assert!(!v.flat && v.reason.contains("quarter"), "{v:?}");
    }

    #[test]
    fn growth_in_the_warm_up_is_ignored_and_a_late_step_is_caught() {
        // Rises through the first 15 %, flat after: a warm-up.
        let s = series(360, |t| 40_000.0 * (t / 540.0).min(1.0) + 20_000.0);
        let v = judge(Series::Rss, &s, HOUR, 0.2, Series::Rss.rule());
        assert!(v.flat, "{v:?}");
        // Flat, then a jump of 100 tasks in the last quarter.
        let s = series(360, |t| if t > 2900.0 { 1100.0 } else { 1000.0 });
        let v = judge(Series::Tasks, &s, HOUR, 0.2, Series::Tasks.rule());
        assert!(!v.flat && v.reason.contains("last-quarter"), "{v:?}");
        // Memory given back is not a leak.
        let s = series(360, |t| 60_000.0 - 5.0 * t);
        assert!(judge(Series::Rss, &s, HOUR, 0.2, Series::Rss.rule()).flat);
    }

    #[test]
    fn too_few_samples_cannot_pass() {
        let s = series(5, |_| 1000.0);
        let v = judge(Series::Fds, &s, 50.0, 0.2, Series::Fds.rule());
        assert!(!v.flat && v.reason.contains("too few"), "{v:?}");
    }

    #[test]
    fn slope_and_median() {
        assert!((slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]) - 2.0).abs() < 1e-12);
        assert_eq!(slope(&[(1.0, 1.0)]), 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn the_report_plots_and_prints() {
        let samples: Vec<Sample> = (1..=20)
            .map(|i| Sample {
                t_s: i as f64 * 6.0,
                rss_kib: 30_000,
                fds: 1010,
                tasks: 1020,
                connections: 1000,
                clients_open: 1000,
            })
            .collect();
        let verdicts = Series::ALL
            .iter()
            .map(|&s| {
                let points: Vec<_> = samples.iter().map(|x| (x.t_s, s.of(x) as f64)).collect();
                judge(s, &points, 120.0, 0.2, s.rule())
            })
            .collect();
        let report = SoakReport {
            spec: SoakSpec::default(),
            broker: "127.0.0.1:1".into(),
            server_pid: 1,
            started_unix_s: 0,
            ran_s: 120.0,
            idle: Sample::default(),
            samples,
            drained: Some(Sample::default()),
            verdicts,
            churn: ChurnReport::default(),
            broker_counters: BTreeMap::new(),
            loadgen_cpu_cores: 0.5,
            server_cpu_cores: None,
            broker_alive: true,
            failures: Vec::new(),
            passed: true,
        };
        let dir = tempfile::tempdir().unwrap();
        let files = report.save(dir.path()).unwrap();
        let svg = std::fs::read_to_string(&files[1]).unwrap();
        assert!(svg.contains("RSS (flat)") && svg.contains("broker connections"));
        let back: SoakReport = serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
        assert_eq!(back.samples.len(), 20);
        assert!(report.summary().contains("flat"));
    }
}
