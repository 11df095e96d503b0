//! What the broker counts, and its presentation: Prometheus text for
//! `/metrics`, JSON for `/stats` (the dashboard reads it), and the table
//! printed at shutdown.
//!
//! Every counter and gauge the broker bumps is declared once, in the
//! `metrics!` table below: its field, its exported name and its help text.
//! The table expands to the [`Metrics`] struct and to a `Default` that
//! registers each with a [`prometheus_client`] registry, so adding a metric
//! is adding one entry. Beside them `Default` registers what is read at
//! scrape time: the symbol count, uptime and alive-task gauges, and the stage
//! quantiles.
//! `/metrics` is that registry through prometheus-client's Prometheus text
//! encoder (format 0.0.4, [`CONTENT_TYPE`]), which also writes the `_total`
//! suffix of every counter: `tickcast_ticks_in` is scraped as
//! `tickcast_ticks_in_total`.
//!
//! Why the Prometheus text format and not the OpenMetrics one the same
//! crate writes: OpenMetrics names a counter's family without its `_total`,
//! so our counter `tickcast_connections_total` and gauge
//! `tickcast_connections` would be two families of one name, which
//! OpenMetrics forbids; Prometheus scrapes both formats, and this one keeps
//! every name the dashboards and tests already use.
//!
//! prometheus-client has no summary type, so the per-stage latency
//! quantiles come from a collector ([`StageQuantiles`]) that reads our
//! HdrHistograms at scrape time: `tickcast_stage_latency_seconds{stage,
//! quantile}` (a gauge family, the series a summary would have) and
//! `tickcast_stage_latency_seconds_count{stage}`. Checked on 2026-12-01
//! with Prometheus 2.42 scraping a running broker: target up, every sample
//! stored. `promtool check metrics` parses the page and lints only those
//! two families (a `quantile` label and a `_count` suffix outside a
//! summary), the price of the missing type.
//!
//! Counters are relaxed atomics (prometheus-client's, behind an `Arc`)
//! bumped once per batch, not per frame, on the hot paths; the stage
//! histograms live in [`crate::observe::latency`].

use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter as PromCounter;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge as PromGauge};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::observe::latency::{Percentiles, Stage, StageHistograms};

/// The `Content-Type` of [`Metrics::prometheus`]'s text.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(PromCounter<u64, AtomicU64>);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        if n != 0 {
            self.0.inc_by(n);
        }
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(PromGauge<u64, AtomicU64>);

impl Gauge {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.inc_by(n);
    }

    /// Subtracts `n`.
    pub fn sub(&self, n: u64) {
        self.0.dec_by(n);
    }

    /// Sets it to `n`.
    pub fn set(&self, n: u64) {
        self.0.set(n);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// Declares every metric once: the struct field (with its doc), its kind,
/// and the name and help text it is exported with.
macro_rules! metrics {
    ($($(#[doc = $doc:literal])+ $field:ident: $kind:ident = $name:literal, $help:literal;)+) => {
        /// Everything the broker counts.
        pub struct Metrics {
            started: Instant,
            registry: Registry,
            /// Known symbols, set from the hub at each scrape.
            symbols: PromGauge<u64, AtomicU64>,
            /// Seconds since start, set at each scrape.
            uptime: PromGauge<f64, AtomicU64>,
            /// Queued reply bytes, set at each scrape.
            reply_bytes: PromGauge<u64, AtomicU64>,
            /// Tasks alive in the runtime, set at each scrape.
            tasks: PromGauge<u64, AtomicU64>,
            $($(#[doc = $doc])+ pub $field: $kind,)+
            /// Stage latency histograms (the registry reads them through
            /// [`StageQuantiles`] at each scrape).
            pub stages: Arc<Mutex<StageHistograms>>,
        }

        impl Default for Metrics {
            fn default() -> Self {
                let mut registry = Registry::default();
                $(
                    let $field = <$kind>::default();
                    registry.register($name, $help, $field.0.clone());
                )+
                let symbols = PromGauge::default();
                registry.register("tickcast_symbols", "Symbols known to the hub", symbols.clone());
                let uptime = PromGauge::default();
                registry.register(
                    "tickcast_uptime_seconds",
                    "Seconds since the broker started",
                    uptime.clone(),
                );
                let reply_bytes = PromGauge::default();
                registry.register(
                    "tickcast_reply_bytes",
                    "Bytes of replies (pongs, error replies, acks) queued for clients",
                    reply_bytes.clone(),
                );
                let tasks = PromGauge::default();
                registry.register(
                    "tickcast_tasks",
                    "Tasks alive in the broker's runtime (sessions, HTTP connections, writers, feed)",
                    tasks.clone(),
                );
                let stages = Arc::new(Mutex::new(StageHistograms::default()));
                registry.register_collector(Box::new(StageQuantiles(stages.clone())));
                Self {
                    started: Instant::now(),
                    registry,
                    symbols,
                    uptime,
                    reply_bytes,
                    tasks,
                    $($field,)+
                    stages,
                }
            }
        }
    };
}

// Counters are exported with `_total` appended to the name given here.
metrics! {
    /// Ticks accepted from the feed and fanned out.
    ticks_in: Counter = "tickcast_ticks_in", "Ticks accepted from the feed";
    /// Ticks skipped because their `seq` was not above the symbol's last.
    ticks_stale: Counter = "tickcast_ticks_stale", "Ticks skipped as duplicate or out of order";
    /// Ingest records that were not valid ticks (or the symbol table was full).
    ticks_rejected: Counter = "tickcast_ticks_rejected", "Ingest records rejected as invalid";
    /// Publishers closed at connect because the ingest port held its limit.
    publishers_refused: Counter =
        "tickcast_publishers_refused", "Publishers refused at the publisher limit";
    /// Publishers disconnected for sending a malformed stream.
    publishers_dropped: Counter =
        "tickcast_publishers_dropped", "Publishers disconnected for a malformed stream";
    /// Frames written to client sockets (deliveries, replies and snapshots).
    frames_out: Counter = "tickcast_frames_out", "Frames written to clients";
    /// Bytes written to client sockets.
    bytes_out: Counter = "tickcast_bytes_out", "Bytes written to clients";
    /// Write calls on client sockets (frames_out / writes = frames per syscall).
    writes: Counter = "tickcast_writes", "Write calls on client sockets";
    /// Ticks replaced by a newer one of the same symbol in a slow outbox.
    conflated: Counter = "tickcast_conflated", "Ticks conflated for slow clients";
    /// Ticks discarded for a slow client (drop policy).
    dropped: Counter = "tickcast_dropped", "Ticks dropped for slow clients";
    /// Ticks replaced by a newer one within a subscription's `max_rate`.
    rate_capped: Counter = "tickcast_rate_capped", "Ticks replaced within a subscription's max_rate";
    /// Times a queue was conflated because its oldest tick passed
    /// `--max-queue-age`.
    age_conflations: Counter = "tickcast_age_conflations",
        "Queues conflated because their oldest tick passed --max-queue-age";
    /// Resumes answered from the history (`recovered`).
    resumes: Counter = "tickcast_resumes", "Per-symbol resumes answered from the history";
    /// Ticks replayed from the history.
    resumed_ticks: Counter = "tickcast_resumed_ticks", "Ticks replayed from the history";
    /// Resumes refused (`reset`), and feed restarts told to subscribers.
    resets: Counter = "tickcast_resets", "Per-symbol resets sent (refused resumes, feed restarts)";
    /// Ticks the history holds now.
    history_ticks: Gauge = "tickcast_history_ticks", "Ticks held in the history";
    /// Bytes the history holds now (frames and bookkeeping).
    history_bytes: Gauge = "tickcast_history_bytes", "Bytes held in the history";
    /// Clients closed with 1008 "slow consumer".
    slow_disconnects: Counter = "tickcast_slow_disconnects", "Clients closed as slow consumers";
    /// Ticks conflated before reaching any outbox because the writers fell
    /// far behind the feed (see `fanout/inbox.rs`, `MAX_WAITING`).
    overload_conflated: Counter = "tickcast_overload_conflated",
        "Ticks conflated because the writers fell far behind the feed";
    /// Clients closed for not answering pings.
    ping_timeouts: Counter = "tickcast_ping_timeouts", "Clients closed for not answering pings";
    /// Clients closed for breaking the WebSocket protocol.
    protocol_errors: Counter =
        "tickcast_protocol_errors", "Clients closed for WebSocket protocol violations";
    /// Control messages answered with an error.
    request_errors: Counter =
        "tickcast_request_errors", "Control messages answered with an error";
    /// WebSocket connections open now.
    connections: Gauge = "tickcast_connections", "WebSocket connections open";
    /// WebSocket connections accepted since start.
    connections_total: Counter = "tickcast_connections", "WebSocket connections accepted";
    /// Upgrades refused because the connection limit was reached.
    connections_refused: Counter = "tickcast_connections_refused",
        "WebSocket upgrades refused at the connection limit";
    /// Connections refused (HTTP 503) because their address held its limit.
    refused_per_ip: Counter = "tickcast_refused_per_ip",
        "Connections refused at the per-address limit";
    /// Connections refused (HTTP 503) because too many had not upgraded yet.
    refused_handshakes: Counter = "tickcast_refused_handshakes",
        "Connections refused at the limit on unfinished upgrades";
    /// Connections closed for not sending a request head in time.
    handshake_timeouts: Counter = "tickcast_handshake_timeouts",
        "Connections closed for not sending their request in time";
    /// Upgrades refused (HTTP 403) for their `Origin`.
    refused_origin: Counter = "tickcast_refused_origin",
        "WebSocket upgrades refused for their Origin";
    /// Clients closed (1008) for not reading the replies they asked for.
    reply_overflows: Counter = "tickcast_reply_overflows",
        "Clients closed for leaving too many replies unread";
    /// TLS handshakes that failed or did not finish within the handshake
    /// timeout.
    tls_handshake_failures: Counter = "tickcast_tls_handshake_failures",
        "TLS handshakes that failed or timed out";
    /// Connections to a TLS port that spoke something else (plain HTTP).
    tls_not_tls: Counter = "tickcast_tls_not_tls",
        "Connections to a TLS port that did not start a TLS handshake";
    /// Ticks skipped because their symbol is outside the publisher's `pub`.
    ticks_unauthorized: Counter = "tickcast_ticks_unauthorized",
        "Ticks skipped as outside their publisher's pub claim";
    /// Tokens refused (at upgrade, HTTP, an `auth` renewal, or a publisher's).
    auth_refused: Counter = "tickcast_auth_refused",
        "Tokens refused (missing, bad signature, expired, wrong claims)";
    /// Upgrades refused (HTTP 429) because the user held its `max_conns`.
    user_limit_refused: Counter = "tickcast_user_limit_refused",
        "WebSocket upgrades refused at the user's max_conns";
    /// Connections closed (4001) because their token expired.
    tokens_expired: Counter = "tickcast_tokens_expired",
        "Connections closed because their token expired";
    /// Subscribes refused for topics outside the connection's entitlements.
    not_entitled: Counter = "tickcast_not_entitled",
        "Subscribes refused as not entitled";
    /// Ticks written to `--record` files.
    recorded: Counter = "tickcast_recorded", "Ticks written to --record files";
    /// Ticks not recorded: the recorder's queue was full or its disk failed.
    record_dropped: Counter = "tickcast_record_dropped",
        "Ticks not recorded because the recording queue was full or a write failed";
    /// Failed accepts (out of file descriptors and the like).
    accept_errors: Counter = "tickcast_accept_errors",
        "Failed accepts on the client port (e.g. out of file descriptors)";
    /// Ticks an origin handed to NATS (`--nats-out`).
    nats_published: Counter = "tickcast_nats_published",
        "Ticks published to NATS (--nats-out)";
    /// Ticks an origin could not hand to NATS: its queue was full (NATS
    /// slow or away) or the publish failed.
    nats_out_dropped: Counter = "tickcast_nats_out_dropped",
        "Ticks not published to NATS because its queue was full or the publish failed";
    /// NATS messages an edge received (`--nats-in`).
    nats_received: Counter = "tickcast_nats_received",
        "Messages received from NATS (--nats-in)";
    /// NATS messages an edge refused: not a tick, or a bad epoch header.
    nats_rejected: Counter = "tickcast_nats_rejected",
        "Messages from NATS that were not a valid tick";
    /// Times the NATS connection was lost (either end).
    nats_disconnects: Counter = "tickcast_nats_disconnects",
        "Times the connection to NATS was lost";
    /// NATS subjects an edge subscribes to: one per symbol with
    /// `--nats-interest subscribed`, 1 for the whole prefix.
    nats_subjects: Gauge = "tickcast_nats_subjects",
        "NATS subjects this edge subscribes to (1 = the whole prefix)";
    /// `seq`s of the origin's streams an edge never received (announced to
    /// subscribers as `upstream` gaps).
    upstream_missed: Counter = "tickcast_upstream_missed",
        "Ticks of the origin's streams that never reached this edge";
}

/// What `/metrics` reads from outside the counters at each scrape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Live {
    /// Symbols known to the hub.
    pub symbols: usize,
    /// Bytes of replies queued for clients, broker-wide.
    pub reply_bytes: u64,
}

impl AsRef<Mutex<StageHistograms>> for Metrics {
    fn as_ref(&self) -> &Mutex<StageHistograms> {
        &self.stages
    }
}

/// Exports the stage percentiles since start as the series of a summary,
/// read from the histograms at each scrape.
struct StageQuantiles(Arc<Mutex<StageHistograms>>);

impl std::fmt::Debug for StageQuantiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StageQuantiles")
    }
}

impl Collector for StageQuantiles {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        const NAME: &str = "tickcast_stage_latency_seconds";
        let pct = self.0.lock().percentiles();
        let mut family = encoder.encode_descriptor(
            NAME,
            "Latency of each pipeline stage (feed_to_receive, receive_to_enqueue, \
             enqueue_to_write) since start, by quantile.",
            None,
            MetricType::Gauge,
        )?;
        for stage in Stage::ALL {
            let p = pct[stage as usize];
            for (q, us) in [
                ("0.5", p.p50_us),
                ("0.9", p.p90_us),
                ("0.99", p.p99_us),
                ("0.999", p.p999_us),
                ("1", p.max_us),
            ] {
                let labels = [("stage", stage.name()), ("quantile", q)];
                // Back to whole nanoseconds first, so the seconds print as
                // 0.000342783, not 0.00034278300000000004.
                let seconds = (us * 1e3).round() / 1e9;
                ConstGauge::new(seconds).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "tickcast_stage_latency_seconds_count",
            "Samples of each pipeline stage since start.",
            None,
            MetricType::Gauge,
        )?;
        for stage in Stage::ALL {
            let labels = [("stage", stage.name())];
            ConstGauge::new(pct[stage as usize].count).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Tasks alive in the tokio runtime this is called from (0 outside one):
/// every session, HTTP connection, writer shard, listener and feed task.
/// In the binary the runtime is the broker's alone, so a count that keeps
/// growing under steady churn is a task leak (the soak in `benches/` watches
/// it).
pub fn alive_tasks() -> u64 {
    tokio::runtime::Handle::try_current().map_or(0, |h| h.metrics().num_alive_tasks() as u64)
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
    /// Tasks alive in the broker's runtime ([`alive_tasks`]).
    pub tasks: u64,
    /// Stage percentiles, by stage name.
    pub stages: std::collections::BTreeMap<&'static str, Percentiles>,
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
            tasks: alive_tasks(),
            stages: Stage::ALL
                .iter()
                .map(|s| (s.name(), pct[*s as usize]))
                .collect(),
        }
    }

    /// The `/metrics` page in the Prometheus text exposition format
    /// ([`CONTENT_TYPE`]), given what is read elsewhere.
    pub fn prometheus(&self, live: Live) -> String {
        self.symbols.set(live.symbols as u64);
        self.reply_bytes.set(live.reply_bytes);
        self.uptime.set(self.uptime_s());
        self.tasks.set(alive_tasks());
        let mut out = String::with_capacity(8192);
        // Writing to a String cannot fail, and neither can our collector.
        let _ = prometheus_text::encode(&mut out, &self.registry);
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
    use std::collections::{BTreeMap, HashMap, HashSet};

    use super::*;

    /// One sample line: name, labels, value.
    type Sample = (String, BTreeMap<String, String>, f64);

    fn is_name(s: &str, colons: bool) -> bool {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colons && c == ':'))
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colons && c == ':'))
    }

    fn parse_value(s: &str) -> Option<f64> {
        match s {
            "+Inf" => Some(f64::INFINITY),
            "-Inf" => Some(f64::NEG_INFINITY),
            "NaN" => Some(f64::NAN),
            _ => s.parse().ok().filter(|_| !s.contains(['i', 'I', 'n', 'N'])),
        }
    }

    /// `{a="x",b="y"} rest` → the labels and `rest`; escapes `\\`, `\"`, `\n`.
    fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
        let mut labels = BTreeMap::new();
        let mut rest = s.strip_prefix('{').ok_or("no {")?;
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                return Ok((labels, after));
            }
            let (name, after) = rest.split_once("=\"").ok_or("label without =\"")?;
            if !is_name(name, false) || name.starts_with("__") {
                return Err(format!("bad label name {name:?}"));
            }
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next().ok_or("unterminated label value")? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        c => return Err(format!("bad escape \\{c}")),
                    },
                    (_, '\n') => return Err("newline in label value".into()),
                    (_, c) => value.push(c),
                }
            };
            if labels.insert(name.to_owned(), value).is_some() {
                return Err(format!("label {name} twice"));
            }
            rest = &after[end + 1..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }

    /// Checks `text` line by line against the Prometheus text exposition
    /// format 0.0.4, as strictly as Prometheus's own parser and a little
    /// more: every family has one HELP and one TYPE before its samples, its
    /// samples are contiguous and named as its type allows, no series
    /// appears twice. Returns the samples and each family's type.
    fn parse_exposition(text: &str) -> Result<(Vec<Sample>, HashMap<String, String>), String> {
        if !text.ends_with('\n') {
            return Err("does not end with a newline".into());
        }
        let (mut samples, mut types) = (Vec::new(), HashMap::new());
        let (mut helps, mut done, mut series) = (HashSet::new(), HashSet::new(), HashSet::new());
        let mut current: Option<String> = None;
        let mut enter = |family: &str, current: &mut Option<String>| {
            if current.as_deref() != Some(family) {
                if let Some(previous) = current.take() {
                    done.insert(previous);
                }
                if done.contains(family) {
                    return Err(format!("family {family} is split"));
                }
                *current = Some(family.to_owned());
            }
            Ok(())
        };
        for line in text.lines() {
            let fail = |why: &str| Err(format!("{why}: {line:?}"));
            if let Some(comment) = line.strip_prefix('#') {
                let mut words = comment.trim_start().splitn(3, ' ');
                let (kind, name, rest) = (words.next(), words.next(), words.next());
                let Some(name) = name.filter(|n| is_name(n, true)) else {
                    return fail("comment is not HELP or TYPE of a metric");
                };
                enter(name, &mut current)?;
                match (kind, rest) {
                    (Some("HELP"), Some(help)) => {
                        let escapes = help.split("\\\\").all(|part| {
                            part.match_indices('\\')
                                .all(|(i, _)| part[i..].starts_with("\\n"))
                        });
                        if !escapes || !helps.insert(name.to_owned()) {
                            return fail("bad or second HELP");
                        }
                    }
                    (Some("TYPE"), Some(t))
                        if ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t) =>
                    {
                        if types.insert(name.to_owned(), t.to_owned()).is_some()
                            || samples.iter().any(|(n, _, _): &Sample| n == name)
                        {
                            return fail("second TYPE, or TYPE after samples");
                        }
                    }
                    _ => return fail("comment is not HELP or TYPE"),
                }
                continue;
            }
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let name = &line[..name_end];
            if !is_name(name, true) {
                return fail("bad metric name");
            }
            let (labels, rest) = if line[name_end..].starts_with('{') {
                parse_labels(&line[name_end..]).map_err(|e| format!("{e}: {line:?}"))?
            } else {
                (BTreeMap::new(), &line[name_end..])
            };
            let mut fields = rest.strip_prefix(' ').unwrap_or("").split(' ');
            let value = fields.next().and_then(parse_value);
            let timestamp_ok = fields.next().is_none_or(|t| t.parse::<i64>().is_ok());
            let (Some(value), true, None) = (value, timestamp_ok, fields.next()) else {
                return fail("bad value or timestamp");
            };
            let family = current.clone().unwrap_or_else(|| name.to_owned());
            let allowed: &[&str] = match types.get(&family).map(String::as_str) {
                Some("summary") => &["", "_sum", "_count"],
                Some("histogram") => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            let suffix_ok = name
                .strip_prefix(family.as_str())
                .is_some_and(|suffix| allowed.contains(&suffix));
            if !suffix_ok {
                return fail("sample outside its family");
            }
            if !series.insert((name.to_owned(), labels.clone())) {
                return fail("series twice");
            }
            samples.push((name.to_owned(), labels, value));
        }
        Ok((samples, types))
    }

    fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let found: Vec<f64> = samples
            .iter()
            .filter(|(n, l, _)| n == name && *l == want)
            .map(|(_, _, v)| *v)
            .collect();
        assert_eq!(found.len(), 1, "{name} {labels:?}");
        found[0]
    }

    #[test]
    fn prometheus_text_has_counters_and_quantiles() {
        let m = Metrics::default();
        m.ticks_in.add(3);
        m.connections.add(2);
        m.connections.sub(1);
        m.connections_total.add(2);
        m.stages.lock().record(Stage::EnqueueToWrite, 2_000);
        let text = m.prometheus(Live {
            symbols: 5,
            reply_bytes: 0,
        });
        let (samples, types) = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(value(&samples, "tickcast_ticks_in_total", &[]), 3.0);
        assert_eq!(value(&samples, "tickcast_connections", &[]), 1.0);
        assert_eq!(value(&samples, "tickcast_connections_total", &[]), 2.0);
        assert_eq!(value(&samples, "tickcast_symbols", &[]), 5.0);
        assert!(value(&samples, "tickcast_uptime_seconds", &[]) >= 0.0);
        let stage = ("stage", "enqueue_to_write");
        for q in ["0.5", "0.9", "0.99", "0.999", "1"] {
            let v = value(
                &samples,
                "tickcast_stage_latency_seconds",
                &[stage, ("quantile", q)],
            );
            assert!((v - 2e-6).abs() < 1e-8, "q{q} = {v}");
        }
        let count = "tickcast_stage_latency_seconds_count";
        assert_eq!(value(&samples, count, &[stage]), 1.0);
        assert_eq!(value(&samples, count, &[("stage", "feed_to_receive")]), 0.0);
        assert_eq!(types["tickcast_ticks_in_total"], "counter");
        assert_eq!(types["tickcast_connections_total"], "counter");
        assert_eq!(types["tickcast_connections"], "gauge");
        assert_eq!(types["tickcast_stage_latency_seconds"], "gauge");
    }

    #[test]
    fn exposition_is_valid_prometheus_text_with_every_metric() {
        let m = Metrics::default();
        for (i, stage) in Stage::ALL.into_iter().enumerate() {
            m.stages.lock().record_n(stage, 1_000 * (i as u64 + 1), 10);
        }
        let text = m.prometheus(Live::default());
        let (samples, types) = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let mut families: Vec<&str> = types.keys().map(String::as_str).collect();
        families.sort_unstable();
        assert_eq!(
            families,
            [
                "tickcast_accept_errors_total",
                "tickcast_age_conflations_total",
                "tickcast_auth_refused_total",
                "tickcast_bytes_out_total",
                "tickcast_conflated_total",
                "tickcast_connections",
                "tickcast_connections_refused_total",
                "tickcast_connections_total",
                "tickcast_dropped_total",
                "tickcast_frames_out_total",
                "tickcast_handshake_timeouts_total",
                "tickcast_history_bytes",
                "tickcast_history_ticks",
                "tickcast_nats_disconnects_total",
                "tickcast_nats_out_dropped_total",
                "tickcast_nats_published_total",
                "tickcast_nats_received_total",
                "tickcast_nats_rejected_total",
                "tickcast_nats_subjects",
                "tickcast_not_entitled_total",
                "tickcast_overload_conflated_total",
                "tickcast_ping_timeouts_total",
                "tickcast_protocol_errors_total",
                "tickcast_publishers_dropped_total",
                "tickcast_publishers_refused_total",
                "tickcast_rate_capped_total",
                "tickcast_record_dropped_total",
                "tickcast_recorded_total",
                "tickcast_refused_handshakes_total",
                "tickcast_refused_origin_total",
                "tickcast_refused_per_ip_total",
                "tickcast_reply_bytes",
                "tickcast_reply_overflows_total",
                "tickcast_request_errors_total",
                "tickcast_resets_total",
                "tickcast_resumed_ticks_total",
                "tickcast_resumes_total",
                "tickcast_slow_disconnects_total",
                "tickcast_stage_latency_seconds",
                "tickcast_stage_latency_seconds_count",
                "tickcast_symbols",
                "tickcast_tasks",
                "tickcast_ticks_in_total",
                "tickcast_ticks_rejected_total",
                "tickcast_ticks_stale_total",
                "tickcast_ticks_unauthorized_total",
                "tickcast_tls_handshake_failures_total",
                "tickcast_tls_not_tls_total",
                "tickcast_tokens_expired_total",
                "tickcast_upstream_missed_total",
                "tickcast_uptime_seconds",
                "tickcast_user_limit_refused_total",
                "tickcast_writes_total",
            ]
        );
        // 47 counters and gauges, the symbols, uptime, reply-bytes and
        // tasks gauges, and per stage 5 quantiles and a count.
        assert_eq!(samples.len(), 47 + 4 + 3 * 6);
        for (name, _, v) in &samples {
            assert!(v.is_finite() && *v >= 0.0, "{name} = {v}");
        }
        // The checker itself refuses what it should.
        for bad in [
            "x 1",
            "# TYPE x gauge\nx 1\n# TYPE y gauge\ny 1\nx 2\n",
            "# TYPE x gauge\nx{a=\"1\"} 1\nx{a=\"1\"} 2\n",
            "# TYPE x counter\nx_total 1\n",
            "# TYPE x gauge\nx{a=\"\\q\"} 1\n",
            "# TYPE x gauge\nx one\n",
            "# EOF\n",
            "# TYPE x gauge\n# TYPE x gauge\nx 1\n",
        ] {
            assert!(parse_exposition(bad).is_err(), "accepted {bad:?}");
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
