//! Scenario files: what one `loadgen run` does, as a small TOML file.
//!
//! A scenario is either a *traffic* run (a publisher plus subscribers, at one
//! or more tick rates, or rising until saturation) or an *idle* run (many
//! connections that only hold on, to measure the server's memory per
//! connection). Keeping the workload in files rather than flags means the
//! figures in the README can be reproduced exactly, against tickcast and NATS.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// One scenario file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, used in result directory names.
    pub name: String,
    /// One line saying what the scenario shows.
    #[serde(default)]
    pub description: String,
    /// Seed of every random choice (symbols, subscriptions, prices).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// How many symbols the publisher uses.
    #[serde(default = "default_symbols")]
    pub symbols: usize,
    /// Zipf exponent of symbol activity and popularity (1.0 ≈ real markets).
    #[serde(default = "default_zipf")]
    pub zipf_s: f64,
    /// Who subscribes to what.
    #[serde(default)]
    pub subscribers: Subscribers,
    /// Fixed tick rates, one measured step each.
    pub load: Option<Load>,
    /// A rising rate until the server stops keeping up.
    pub saturation: Option<Saturation>,
    /// Idle connections instead of traffic.
    pub idle: Option<Idle>,
}

/// The subscriber population of a traffic run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscribers {
    /// Healthy subscribers, each on `topics_per_sub` skew-chosen symbols.
    pub count: usize,
    /// Symbols per healthy (and slow, and stalled) subscriber.
    pub topics_per_sub: usize,
    /// Extra healthy subscribers on `*`.
    #[serde(default)]
    pub wildcard: usize,
    /// Subscribers that pause `slow_delay_ms` after every read.
    #[serde(default)]
    pub slow: usize,
    /// The pause of a slow subscriber.
    #[serde(default)]
    pub slow_delay_ms: u64,
    /// Subscribers that never read after their subscription is acknowledged.
    #[serde(default)]
    pub stalled: usize,
    /// Whether stalled subscribers subscribe to `*` (fills their buffers fastest).
    #[serde(default)]
    pub stalled_wildcard: bool,
    /// Subscriber threads in the loadgen (1 is enough for millions of frames/s).
    #[serde(default = "default_threads")]
    pub threads: usize,
}

impl Default for Subscribers {
    fn default() -> Self {
        Self {
            count: 5,
            topics_per_sub: 10,
            wildcard: 0,
            slow: 0,
            slow_delay_ms: 0,
            stalled: 0,
            stalled_wildcard: false,
            threads: default_threads(),
        }
    }
}

/// Timing shared by fixed-rate and saturation steps.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    /// Ticks per second, one step each (empty with `[saturation]`).
    #[serde(default)]
    pub rates: Vec<f64>,
    /// Seconds published before measuring starts; excluded from latency stats.
    #[serde(default = "default_warmup")]
    pub warmup_s: f64,
    /// Seconds measured after the warm-up.
    pub duration_s: f64,
    /// The most seconds to wait after publishing for deliveries to arrive.
    #[serde(default = "default_drain")]
    pub drain_s: f64,
    /// The publisher writes at most once per this many microseconds, sending
    /// everything due in one write (as a feed handler batches). Each tick
    /// still carries its own intended time, so the batching delay (at most
    /// this long) is part of the measured latency, never hidden.
    #[serde(default = "default_batch_us")]
    pub batch_us: u64,
}

/// A stepwise rising rate; the run stops at the first step that fails.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Saturation {
    /// Ticks per second of the first step.
    pub start_rate: f64,
    /// Each step's rate is the previous one's times this.
    pub factor: f64,
    /// At most this many steps (bounds the run's time).
    pub max_steps: usize,
    /// A step fails when delivered/expected falls below this.
    #[serde(default = "default_min_ratio")]
    pub min_delivered_ratio: f64,
    /// A step fails when the healthy subscribers' p99 exceeds this.
    pub max_p99_ms: f64,
}

/// An idle-connections run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Idle {
    /// Connections to open and hold.
    pub connections: usize,
    /// Spread connections over 127.0.0.1 … 127.0.0.N source addresses, since
    /// one source address has only ~28k ephemeral ports towards one server.
    #[serde(default = "default_sources")]
    pub source_addrs: u8,
    /// Seconds to hold them once all are open (pings must keep them alive).
    #[serde(default = "default_hold")]
    pub hold_s: f64,
    /// Connections being opened at once (a burst overflows listen backlogs).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

fn default_seed() -> u64 {
    42
}
fn default_symbols() -> usize {
    200
}
fn default_zipf() -> f64 {
    1.0
}
fn default_threads() -> usize {
    1
}
fn default_warmup() -> f64 {
    1.0
}
fn default_drain() -> f64 {
    3.0
}
fn default_batch_us() -> u64 {
    200
}
fn default_min_ratio() -> f64 {
    0.999
}
fn default_sources() -> u8 {
    4
}
fn default_hold() -> f64 {
    5.0
}
fn default_concurrency() -> usize {
    128
}

/// The upper bound on any duration in a scenario, so a typo cannot make a
/// run that never ends.
const MAX_SECONDS: f64 = 600.0;

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read scenario {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("invalid scenario {}", path.display()))
    }

    /// Parses and checks scenario text.
    pub fn parse(text: &str) -> Result<Self> {
        let scenario: Scenario = toml::from_str(text)?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Whether this is an idle-connections run.
    pub fn is_idle(&self) -> bool {
        self.idle.is_some()
    }

    fn validate(&self) -> Result<()> {
        let kinds = [self.idle.is_some(), self.load.is_some()];
        if kinds.iter().filter(|k| **k).count() != 1 {
            bail!("a scenario has exactly one of [load] (traffic) and [idle]");
        }
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            bail!("name must be non-empty letters, digits, - or _");
        }
        if let Some(idle) = &self.idle {
            if idle.connections == 0 || idle.source_addrs == 0 || idle.concurrency == 0 {
                bail!("[idle] connections, source_addrs and concurrency must be positive");
            }
            check_seconds("idle.hold_s", idle.hold_s)?;
            return Ok(());
        }
        let Some(load) = &self.load else {
            return Ok(());
        };
        if self.symbols == 0 || self.symbols > 100_000 {
            bail!("symbols must be 1 to 100000");
        }
        if !(0.0..=5.0).contains(&self.zipf_s) {
            bail!("zipf_s must be 0 to 5");
        }
        let subs = &self.subscribers;
        if subs.topics_per_sub == 0 || subs.topics_per_sub > self.symbols {
            bail!("topics_per_sub must be 1 to the number of symbols");
        }
        if subs.count + subs.wildcard == 0 {
            bail!("a traffic run needs at least one healthy subscriber");
        }
        if subs.threads == 0 || subs.threads > 64 {
            bail!("subscribers.threads must be 1 to 64");
        }
        check_seconds("load.warmup_s", load.warmup_s)?;
        check_seconds("load.duration_s", load.duration_s)?;
        check_seconds("load.drain_s", load.drain_s)?;
        if load.duration_s <= 0.0 {
            bail!("load.duration_s must be positive");
        }
        if load.batch_us > 100_000 {
            bail!("load.batch_us must be at most 100000 (0.1 s)");
        }
        match (&self.saturation, load.rates.is_empty()) {
            (None, true) => bail!("[load] rates is empty and there is no [saturation]"),
            (Some(_), false) => bail!("give either [load] rates or [saturation], not both"),
            _ => {}
        }
        for rate in &load.rates {
            check_rate(*rate)?;
        }
        if let Some(sat) = &self.saturation {
            check_rate(sat.start_rate)?;
            if !(1.0..=10.0).contains(&sat.factor)
                || sat.factor == 1.0
                || !(1..=30).contains(&sat.max_steps)
            {
                bail!("[saturation] factor must be in (1, 10] and max_steps 1 to 30");
            }
            if sat.max_p99_ms.is_nan()
                || sat.max_p99_ms <= 0.0
                || !(0.0..=1.0).contains(&sat.min_delivered_ratio)
            {
                bail!("[saturation] max_p99_ms must be positive and min_delivered_ratio in [0, 1]");
            }
        }
        Ok(())
    }
}

fn check_seconds(what: &str, value: f64) -> Result<()> {
    if !(0.0..=MAX_SECONDS).contains(&value) {
        bail!("{what} must be 0 to {MAX_SECONDS} seconds");
    }
    Ok(())
}

fn check_rate(rate: f64) -> Result<()> {
    if !(1.0..=10_000_000.0).contains(&rate) {
        bail!("rates must be 1 to 10,000,000 ticks/s, got {rate}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_scenario_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Scenario::load(&path).unwrap();
                seen += 1;
            }
        }
        assert!(
            seen >= 6,
            "expected the six documented scenarios, found {seen}"
        );
    }

    #[test]
    fn bad_scenarios_are_refused_with_a_reason() {
        let both = "name='x'\n[load]\nrates=[1.0]\nduration_s=1\n[idle]\nconnections=1\n";
        assert!(Scenario::parse(both).is_err());
        let endless = "name='x'\n[load]\nrates=[1.0]\nduration_s=1e9\n";
        assert!(Scenario::parse(endless).is_err());
        let typo = "name='x'\nsymbol=3\n[load]\nrates=[1.0]\nduration_s=1\n";
        assert!(Scenario::parse(typo).is_err());
        let ok = "name='x'\n[load]\nrates=[1.0]\nduration_s=1\n";
        assert!(Scenario::parse(ok).is_ok());
    }
}
