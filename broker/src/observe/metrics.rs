//! Counters and their presentation: Prometheus text for `/metrics`, JSON for
//! `/stats` (the dashboard reads it), and the table printed at shutdown.
//!
//! Counters are plain relaxed atomics bumped once per batch, not per frame,
//! on the hot paths; the stage histograms live in [`crate::observe::latency`].

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use serde::Serialize;

use crate::observe::latency::{Percentiles, Stage, StageHistograms};

/// A monotonically increasing counter (or a gauge, with [`Counter::sub`]).
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        if n != 0 {
            self.0.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Subtracts `n` (gauges only).
    pub fn sub(&self, n: u64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Everything the broker counts.
pub struct Metrics {
    started: Instant,
    /// Ticks accepted from the feed and fanned out.
    pub ticks_in: Counter,
    /// Ticks skipped because their `seq` was not above the symbol's last.
    pub ticks_stale: Counter,
    /// Ingest records that were not valid ticks (or the symbol table was full).
    pub ticks_rejected: Counter,
    /// Publishers disconnected for sending a malformed stream.
    pub publishers_dropped: Counter,
    /// Frames written to client sockets (deliveries, replies and snapshots).
    pub frames_out: Counter,
    /// Bytes written to client sockets.
    pub bytes_out: Counter,
    /// Write calls on client sockets (frames_out / writes = frames per syscall).
    pub writes: Counter,
    /// Ticks replaced by a newer one of the same symbol in a slow outbox.
    pub conflated: Counter,
    /// Ticks discarded for a slow client (drop policy).
    pub dropped: Counter,
    /// Clients closed with 1008 "slow consumer".
    pub slow_disconnects: Counter,
    /// Ticks conflated before reaching any outbox because the writers fell
    /// far behind the feed (see `hub.rs`, `MAX_WAITING`).
    pub overload_conflated: Counter,
    /// Clients closed for not answering pings.
    pub ping_timeouts: Counter,
    /// Clients closed for breaking the WebSocket protocol.
    pub protocol_errors: Counter,
    /// Control messages answered with an error.
    pub request_errors: Counter,
    /// WebSocket connections open now.
    pub connections: Counter,
    /// WebSocket connections accepted since start.
    pub connections_total: Counter,
    /// Upgrades refused because the connection limit was reached.
    pub connections_refused: Counter,
    /// Stage latency histograms.
    pub stages: Mutex<StageHistograms>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            ticks_in: Counter::default(),
            ticks_stale: Counter::default(),
            ticks_rejected: Counter::default(),
            publishers_dropped: Counter::default(),
            frames_out: Counter::default(),
            bytes_out: Counter::default(),
            writes: Counter::default(),
            conflated: Counter::default(),
            dropped: Counter::default(),
            slow_disconnects: Counter::default(),
            overload_conflated: Counter::default(),
            ping_timeouts: Counter::default(),
            protocol_errors: Counter::default(),
            request_errors: Counter::default(),
            connections: Counter::default(),
            connections_total: Counter::default(),
            connections_refused: Counter::default(),
            stages: Mutex::new(StageHistograms::default()),
        }
    }
}

/// The `/stats` document.
#[derive(Debug, Serialize)]
pub struct Stats {
    /// Seconds since the broker started.
    pub uptime_s: f64,
    /// Open WebSocket connections.
    pub connections: u64,
    /// Known symbols.
    pub symbols: usize,
    /// Ticks accepted from the feed.
    pub ticks_in: u64,
    /// Frames written to clients.
    pub deliveries: u64,
    /// Ticks conflated away for slow clients.
    pub conflated: u64,
    /// Ticks dropped for slow clients.
    pub dropped: u64,
    /// Slow clients disconnected.
    pub slow_disconnects: u64,
    /// Stage percentiles, by stage name.
    pub stages: std::collections::BTreeMap<&'static str, Percentiles>,
}

/// (name, help, value) of every counter, for the Prometheus text.
fn counters(m: &Metrics) -> [(&'static str, &'static str, u64); 16] {
    [
        (
            "tickcast_ticks_in_total",
            "Ticks accepted from the feed",
            m.ticks_in.get(),
        ),
        (
            "tickcast_ticks_stale_total",
            "Ticks skipped as duplicate or out of order",
            m.ticks_stale.get(),
        ),
        (
            "tickcast_ticks_rejected_total",
            "Ingest records rejected as invalid",
            m.ticks_rejected.get(),
        ),
        (
            "tickcast_publishers_dropped_total",
            "Publishers disconnected for a malformed stream",
            m.publishers_dropped.get(),
        ),
        (
            "tickcast_frames_out_total",
            "Frames written to clients",
            m.frames_out.get(),
        ),
        (
            "tickcast_bytes_out_total",
            "Bytes written to clients",
            m.bytes_out.get(),
        ),
        (
            "tickcast_writes_total",
            "Write calls on client sockets",
            m.writes.get(),
        ),
        (
            "tickcast_conflated_total",
            "Ticks conflated for slow clients",
            m.conflated.get(),
        ),
        (
            "tickcast_dropped_total",
            "Ticks dropped for slow clients",
            m.dropped.get(),
        ),
        (
            "tickcast_slow_disconnects_total",
            "Clients closed as slow consumers",
            m.slow_disconnects.get(),
        ),
        (
            "tickcast_overload_conflated_total",
            "Ticks conflated because the writers fell far behind the feed",
            m.overload_conflated.get(),
        ),
        (
            "tickcast_ping_timeouts_total",
            "Clients closed for not answering pings",
            m.ping_timeouts.get(),
        ),
        (
            "tickcast_protocol_errors_total",
            "Clients closed for WebSocket protocol violations",
            m.protocol_errors.get(),
        ),
        (
            "tickcast_request_errors_total",
            "Control messages answered with an error",
            m.request_errors.get(),
        ),
        (
            "tickcast_connections_total",
            "WebSocket connections accepted",
            m.connections_total.get(),
        ),
        (
            "tickcast_connections_refused_total",
            "WebSocket upgrades refused at the connection limit",
            m.connections_refused.get(),
        ),
    ]
}

impl Metrics {
    /// Seconds since start.
    pub fn uptime_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// The `/stats` document.
    pub fn stats(&self, symbols: usize) -> Stats {
        let pct = self.stages.lock().percentiles();
        Stats {
            uptime_s: self.uptime_s(),
            connections: self.connections.get(),
            symbols,
            ticks_in: self.ticks_in.get(),
            deliveries: self.frames_out.get(),
            conflated: self.conflated.get(),
            dropped: self.dropped.get(),
            slow_disconnects: self.slow_disconnects.get(),
            stages: Stage::ALL
                .iter()
                .map(|s| (s.name(), pct[*s as usize]))
                .collect(),
        }
    }

    /// The `/metrics` page in the Prometheus text exposition format.
    pub fn prometheus(&self, symbols: usize) -> String {
        let mut out = String::with_capacity(4096);
        for (name, help, value) in counters(self) {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        let gauges = [
            (
                "tickcast_connections",
                "WebSocket connections open",
                self.connections.get() as f64,
            ),
            (
                "tickcast_symbols",
                "Symbols known to the hub",
                symbols as f64,
            ),
            (
                "tickcast_uptime_seconds",
                "Seconds since the broker started",
                self.uptime_s(),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        let pct = self.stages.lock().percentiles();
        let name = "tickcast_stage_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Latency of each pipeline stage (feed_to_receive, receive_to_enqueue, enqueue_to_write)\n# TYPE {name} summary"
        );
        for stage in Stage::ALL {
            let p = pct[stage as usize];
            let stage = stage.name();
            for (q, us) in [
                ("0.5", p.p50_us),
                ("0.9", p.p90_us),
                ("0.99", p.p99_us),
                ("0.999", p.p999_us),
                ("1", p.max_us),
            ] {
                let _ = writeln!(
                    out,
                    "{name}{{stage=\"{stage}\",quantile=\"{q}\"}} {}",
                    us / 1e6
                );
            }
            let _ = writeln!(out, "{name}_count{{stage=\"{stage}\"}} {}", p.count);
        }
        out
    }

    /// A short table of counters and stage latencies, printed at shutdown.
    pub fn summary(&self) -> String {
        let pct = self.stages.lock().percentiles();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "tickcast: {:.1} s up, {} ticks in, {} frames out, {} conflated, {} dropped, {} slow disconnects",
            self.uptime_s(),
            self.ticks_in.get(),
            self.frames_out.get(),
            self.conflated.get(),
            self.dropped.get(),
            self.slow_disconnects.get()
        );
        let _ = writeln!(
            out,
            "{:<20} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "stage (µs)", "count", "p50", "p90", "p99", "p99.9", "max"
        );
        for stage in Stage::ALL {
            let p = pct[stage as usize];
            let _ = writeln!(
                out,
                "{:<20} {:>12} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
                stage.name(),
                p.count,
                p.p50_us,
                p.p90_us,
                p.p99_us,
                p.p999_us,
                p.max_us
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_counters_and_quantiles() {
        let m = Metrics::default();
        m.ticks_in.add(3);
        m.stages.lock().record(Stage::EnqueueToWrite, 2_000);
        let text = m.prometheus(5);
        assert!(text.contains("tickcast_ticks_in_total 3"));
        assert!(text.contains("tickcast_symbols 5"));
        assert!(text.contains(
            r#"tickcast_stage_latency_seconds{stage="enqueue_to_write",quantile="0.99"} 0.000002"#
        ));
        assert!(
            text.contains(r#"tickcast_stage_latency_seconds_count{stage="enqueue_to_write"} 1"#)
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap_or_default();
            assert!(value.parse::<f64>().is_ok(), "bad sample line: {line}");
        }
    }

    #[test]
    fn summary_lists_every_stage() {
        let m = Metrics::default();
        let s = m.summary();
        for stage in Stage::ALL {
            assert!(s.contains(stage.name()));
        }
    }
}
