//! What a run found: the JSON result file's shape, and the tables printed on
//! the terminal (one run's summary, or two runs side by side with ratios).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::latency::Summary;
use crate::pool::ClassStats;

/// One `loadgen run`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// Scenario name.
    pub scenario: String,
    /// Scenario description.
    pub description: String,
    /// `tickcast` or `nats`.
    pub target: String,
    /// When the run started, seconds since the Unix epoch.
    pub started_unix_s: u64,
    /// Symbols published.
    pub symbols: usize,
    /// One entry per traffic step.
    pub steps: Vec<StepReport>,
    /// The verdict of a saturation run.
    pub saturation: Option<SaturationReport>,
    /// The result of an idle-connections run.
    pub idle: Option<IdleReport>,
}

/// One rate step of a traffic run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepReport {
    /// Ticks per second asked for.
    pub rate_target: f64,
    /// Ticks per second actually sent.
    pub rate_achieved: f64,
    /// Ticks sent.
    pub published: u64,
    /// Seconds of warm-up (excluded from latency).
    pub warmup_s: f64,
    /// Seconds measured.
    pub duration_s: f64,
    /// How far behind its schedule the publisher fell at worst (ms).
    pub publisher_max_lag_ms: f64,
    /// Why the publisher stopped early, if it did.
    pub publisher_error: Option<String>,
    /// Whether the publisher ran at real-time priority (absent in results
    /// from before it asked for it).
    #[serde(default)]
    pub publisher_realtime: bool,
    /// Healthy subscribers (including `*` ones).
    pub healthy: ClassReport,
    /// Slow subscribers, if any.
    pub slow: Option<ClassReport>,
    /// Stalled subscribers, if any.
    pub stalled: Option<ClassReport>,
    /// The loadgen's CPU use during the step, in cores (must stay < 1).
    pub loadgen_cpu_cores: f64,
    /// The server's CPU use, in cores (when its pid is known).
    pub server_cpu_cores: Option<f64>,
    /// The server's resident memory at the end of the step (KiB).
    pub server_rss_kib: Option<u64>,
    /// tickcast's `/stats` at the end of the step.
    pub server_stats: Option<serde_json::Value>,
    /// Healthy deliveries per second of the measured window.
    pub timeline: Vec<IntervalPoint>,
    /// Whether the step met the saturation criteria (saturation runs only).
    pub passed: Option<bool>,
}

/// What one class of subscribers saw in a step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassReport {
    /// Connections planned.
    pub subscribers: u64,
    /// Connections acknowledged.
    pub acked: u64,
    /// Connections that failed to connect or subscribe.
    pub conn_errors: u64,
    /// Ticks the server owed these subscribers (published × subscribed).
    pub expected: u64,
    /// Live ticks received.
    pub delivered: u64,
    /// delivered ÷ expected.
    pub delivered_ratio: f64,
    /// Deliveries per second over the measured window.
    pub delivered_per_s: f64,
    /// Sequence jumps.
    pub gaps: u64,
    /// Ticks skipped by those jumps (conflated or dropped by the server).
    pub conflated: u64,
    /// Repeated or out-of-order ticks (a server bug if non-zero).
    pub duplicates: u64,
    /// Ticks of symbols not subscribed to (a server bug if non-zero).
    pub unexpected: u64,
    /// Snapshot ticks received on subscribing (not counted as delivered).
    pub snapshots: u64,
    /// Frames that were neither ticks nor expected control messages.
    pub other_frames: u64,
    /// Connections the server closed during the step.
    pub disconnected: u64,
    /// Close codes received, and how often.
    pub close_codes: BTreeMap<String, u64>,
    /// Latency of ticks sent after the warm-up.
    pub latency: Summary,
}

impl ClassReport {
    /// Builds the report of `stats` given `subscribers` planned, `expected`
    /// deliveries and the measured window's length.
    pub fn new(stats: &ClassStats, subscribers: u64, expected: u64, duration_s: f64) -> Self {
        let hist = stats.latency.histogram();
        Self {
            subscribers,
            acked: stats.acked,
            // A refused subscription is already counted as a connection error.
            conn_errors: stats.conn_errors,
            expected,
            delivered: stats.delivered,
            delivered_ratio: if expected == 0 {
                1.0
            } else {
                stats.delivered as f64 / expected as f64
            },
            delivered_per_s: hist.len() as f64 / duration_s.max(1e-9),
            gaps: stats.gaps,
            conflated: stats.missing,
            duplicates: stats.duplicates,
            unexpected: stats.unexpected,
            snapshots: stats.snapshots,
            other_frames: stats.other,
            disconnected: stats.disconnected,
            close_codes: stats
                .close_codes
                .iter()
                .map(|(c, n)| (c.to_string(), *n))
                .collect(),
            latency: Summary::of(&hist),
        }
    }
}

/// One second of the measured window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IntervalPoint {
    /// Seconds since the measured window began (end of this interval).
    pub t_s: f64,
    /// Deliveries received in this second.
    pub delivered_per_s: f64,
    /// Median latency in this second (ms).
    pub p50_ms: f64,
    /// 99th percentile latency in this second (ms).
    pub p99_ms: f64,
    /// Largest latency in this second (ms).
    pub max_ms: f64,
}

/// The verdict of a saturation run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SaturationReport {
    /// The highest rate (ticks/s) that met the criteria.
    pub max_sustained_rate: Option<f64>,
    /// Healthy deliveries per second at that rate.
    pub max_sustained_deliveries_per_s: Option<f64>,
    /// Why the run stopped rising.
    pub stopped_because: String,
}

/// The result of an idle-connections run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdleReport {
    /// Connections asked for.
    pub connections: usize,
    /// Connections upgraded (and, for NATS, acknowledged).
    pub connected: usize,
    /// Connections that failed to open.
    pub failed: usize,
    /// Connections the server closed while they were held.
    pub dropped_during_hold: usize,
    /// Seconds it took to open them all.
    pub open_s: f64,
    /// Seconds they were held.
    pub hold_s: f64,
    /// Server memory before connecting (KiB).
    pub server_rss_before_kib: Option<u64>,
    /// Server memory with every connection open (KiB).
    pub server_rss_after_kib: Option<u64>,
    /// (after − before) ÷ connected, in bytes.
    pub server_bytes_per_connection: Option<f64>,
    /// The loadgen's CPU use while opening and holding, in cores.
    pub loadgen_cpu_cores: f64,
}

pub(crate) fn fmt_ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub(crate) fn fmt_count(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// The terminal summary of one run.
pub fn summary_table(report: &RunReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} on {} — {}",
        report.scenario, report.target, report.description
    );
    if let Some(idle) = &report.idle {
        let _ = writeln!(
            out,
            "idle: {}/{} connected ({} failed, {} dropped while held {:.0}s), opened in {:.1}s, loadgen cpu {:.2}",
            idle.connected, idle.connections, idle.failed, idle.dropped_during_hold, idle.hold_s, idle.open_s, idle.loadgen_cpu_cores
        );
        match (
            idle.server_rss_before_kib,
            idle.server_rss_after_kib,
            idle.server_bytes_per_connection,
        ) {
            (Some(before), Some(after), Some(per)) => {
                let _ = writeln!(
                    out,
                    "server RSS {before} KiB → {after} KiB: {per:.0} bytes per connection"
                );
            }
            _ => {
                let _ = writeln!(out, "server RSS unknown (use --spawn or --server-pid)");
            }
        }
        return out;
    }
    let _ = writeln!(
        out,
        "{:>9} {:>9} {:>9} {:>11} {:>8} {:>6} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6} {:>6}",
        "rate",
        "sent/s",
        "deliv/s",
        "delivered",
        "ratio",
        "gaps",
        "conflated",
        "p50ms",
        "p90ms",
        "p99ms",
        "p999ms",
        "maxms",
        "lgcpu",
        "srvcpu"
    );
    for s in &report.steps {
        let h = &s.healthy;
        let _ = writeln!(
            out,
            "{:>9} {:>9} {:>9} {:>11} {:>8.5} {:>6} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6.2} {:>6}{}",
            fmt_count(s.rate_target),
            fmt_count(s.rate_achieved),
            fmt_count(h.delivered_per_s),
            h.delivered,
            h.delivered_ratio,
            h.gaps,
            h.conflated,
            fmt_ms(h.latency.p50_ms),
            fmt_ms(h.latency.p90_ms),
            fmt_ms(h.latency.p99_ms),
            fmt_ms(h.latency.p999_ms),
            fmt_ms(h.latency.max_ms),
            s.loadgen_cpu_cores,
            s.server_cpu_cores.map_or("-".to_owned(), |c| format!("{c:.2}")),
            match s.passed {
                Some(true) => "  ok",
                Some(false) => "  FAIL",
                None => "",
            }
        );
        let problems =
            h.conn_errors + h.disconnected + h.duplicates + h.unexpected + h.other_frames;
        if problems > 0 || s.publisher_error.is_some() {
            let _ = writeln!(
                out,
                "          ! conn errors {}, disconnected {} {:?}, duplicates {}, unexpected {}, other frames {}{}",
                h.conn_errors,
                h.disconnected,
                h.close_codes,
                h.duplicates,
                h.unexpected,
                h.other_frames,
                s.publisher_error
                    .as_deref()
                    .map(|e| format!(", publisher: {e}"))
                    .unwrap_or_default()
            );
        }
        for (name, class) in [("slow", &s.slow), ("stalled", &s.stalled)] {
            if let Some(c) = class {
                // A stalled reader's latency only measures how long it stalled.
                let p99 = match name {
                    "slow" => format!(", p99 {} ms", fmt_ms(c.latency.p99_ms)),
                    _ => String::new(),
                };
                let _ = writeln!(
                    out,
                    "          {name}: {} subs, delivered {}/{} ({:.3}), conflated {}, disconnected {} {:?}{p99}",
                    c.subscribers, c.delivered, c.expected, c.delivered_ratio, c.conflated, c.disconnected, c.close_codes
                );
            }
        }
    }
    if report.steps.iter().any(|s| !s.publisher_realtime) {
        let _ = writeln!(
            out,
            "note: the publisher ran at normal priority (no CAP_SYS_NICE): its own lateness counts as latency"
        );
    }
    if let Some(sat) = &report.saturation {
        let _ = writeln!(
            out,
            "saturation: max sustained {} ticks/s = {} deliveries/s ({})",
            sat.max_sustained_rate.map_or("none".to_owned(), fmt_count),
            sat.max_sustained_deliveries_per_s
                .map_or("-".to_owned(), fmt_count),
            sat.stopped_because
        );
    }
    out
}

/// Two runs of the same scenario side by side, step by step, with b ÷ a.
pub fn comparison_table(a: &RunReport, b: &RunReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}: {} (a) vs {} (b)", a.scenario, a.target, b.target);
    let _ = writeln!(
        out,
        "{:>9} {:>10} {:>10} {:>7} | {:>8} {:>8} {:>7} | {:>8} {:>8} {:>7} | {:>8} {:>8} {:>7} | {:>6} {:>6}",
        "rate", "deliv/s a", "deliv/s b", "b/a", "p50 a", "p50 b", "b/a", "p99 a", "p99 b", "b/a", "p999 a", "p999 b", "b/a", "ok a", "ok b"
    );
    let ratio = |x: f64, y: f64| {
        if x > 0.0 {
            format!("{:.2}", y / x)
        } else {
            "-".to_owned()
        }
    };
    for (sa, sb) in a.steps.iter().zip(&b.steps) {
        let (ha, hb) = (&sa.healthy, &sb.healthy);
        let _ = writeln!(
            out,
            "{:>9} {:>10} {:>10} {:>7} | {:>8} {:>8} {:>7} | {:>8} {:>8} {:>7} | {:>8} {:>8} {:>7} | {:>6.3} {:>6.3}",
            fmt_count(sa.rate_target),
            fmt_count(ha.delivered_per_s),
            fmt_count(hb.delivered_per_s),
            ratio(ha.delivered_per_s, hb.delivered_per_s),
            fmt_ms(ha.latency.p50_ms),
            fmt_ms(hb.latency.p50_ms),
            ratio(ha.latency.p50_ms, hb.latency.p50_ms),
            fmt_ms(ha.latency.p99_ms),
            fmt_ms(hb.latency.p99_ms),
            ratio(ha.latency.p99_ms, hb.latency.p99_ms),
            fmt_ms(ha.latency.p999_ms),
            fmt_ms(hb.latency.p999_ms),
            ratio(ha.latency.p999_ms, hb.latency.p999_ms),
            ha.delivered_ratio,
            hb.delivered_ratio,
        );
    }
    if a.steps.len() != b.steps.len() {
        let _ = writeln!(
            out,
            "(a has {} steps, b has {}: only common steps shown)",
            a.steps.len(),
            b.steps.len()
        );
    }
    for r in [a, b] {
        if let Some(sat) = &r.saturation {
            let _ = writeln!(
                out,
                "{}: max sustained {} ticks/s = {} deliveries/s ({})",
                r.target,
                sat.max_sustained_rate.map_or("none".to_owned(), fmt_count),
                sat.max_sustained_deliveries_per_s
                    .map_or("-".to_owned(), fmt_count),
                sat.stopped_because
            );
        }
        if let Some(idle) = &r.idle {
            let _ = writeln!(
                out,
                "{}: {} idle connections, {} bytes each",
                r.target,
                idle.connected,
                idle.server_bytes_per_connection
                    .map_or("?".to_owned(), |b| format!("{b:.0}"))
            );
        }
    }
    out
}
