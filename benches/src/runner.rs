//! A traffic run: for each rate step, subscribe everyone, publish on schedule,
//! let deliveries drain, and account for every tick.
//!
//! Each step opens fresh subscriber connections and waits until every one is
//! acknowledged before the first tick is sent, so "expected" is exact: each
//! published tick is owed to every subscriber of its symbol. Snapshot ticks
//! sent on subscribing carry sequence numbers at or below the step's
//! baseline and are not counted. A saturation run repeats steps at rising
//! rates until one misses its delivery ratio or p99 bound.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use feed_simulator::market::{Market, MarketConfig};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};

use crate::latency::{now_ns, Summary};
use crate::pool::{Pool, PoolSpec};
use crate::procstat::{rss_kib, CpuMeter};
use crate::publisher::{publish, PubConn, Schedule};
use crate::report::{ClassReport, IntervalPoint, RunReport, SaturationReport, StepReport};
use crate::scenario::{Load, Scenario};
use crate::target::{Endpoints, TargetKind};
use crate::tls::ClientTls;
use crate::universe::{plan_subscribers, Class, Fanout, SubscriberPlan, Universe};

/// How the run is observed and where its files go.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The server's pid, for its CPU and memory (None: not reported).
    pub server_pid: Option<u32>,
    /// Show a progress bar (only sensible on a terminal).
    pub progress: bool,
    /// Subscribers over wss and the broker's routes over https (None: ws
    /// and http).
    pub tls: Option<ClientTls>,
}

impl RunOptions {
    /// Progress bar on when stderr is a terminal.
    pub fn for_terminal(server_pid: Option<u32>) -> Self {
        Self {
            server_pid,
            progress: std::io::stderr().is_terminal(),
            tls: None,
        }
    }
}

/// A run's report plus the full latency histograms behind it.
#[derive(Debug)]
pub struct RunOutput {
    /// The JSON-able report.
    pub report: RunReport,
    /// Healthy subscribers' latency per step (ns), labelled by rate.
    pub latencies: Vec<(String, Histogram<u64>)>,
}

impl RunOutput {
    /// Writes `result.json`, one `.hgrm` per step and the SVG charts into
    /// `dir`; returns the files written.
    pub fn save(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let mut files = Vec::new();
        let json = dir.join("result.json");
        std::fs::write(&json, serde_json::to_vec_pretty(&self.report)?)?;
        files.push(json);
        for (i, ((label, hist), step)) in self.latencies.iter().zip(&self.report.steps).enumerate()
        {
            let stem = format!("step{}-{}", i + 1, label.trim_end_matches("/s"));
            let hgrm = dir.join(format!("{stem}.hgrm"));
            std::fs::write(&hgrm, crate::hgrm::percentile_distribution(hist, 1e6))?;
            files.push(hgrm);
            let tl = dir.join(format!("{stem}-timeline.svg"));
            let title = format!(
                "{} on {}: {label}",
                self.report.scenario, self.report.target
            );
            crate::plots::timeline(&tl, &title, &step.timeline)?;
            files.push(tl);
        }
        if !self.latencies.is_empty() {
            let lat = dir.join("latency.svg");
            let series: Vec<(String, &Histogram<u64>)> =
                self.latencies.iter().map(|(l, h)| (l.clone(), h)).collect();
            let title = format!(
                "{} on {}: latency by percentile",
                self.report.scenario, self.report.target
            );
            crate::plots::latency_by_percentile(&lat, &title, &series)?;
            files.push(lat);
        }
        Ok(files)
    }
}

/// Everything that lives across the steps of a run.
struct Run<'a> {
    scenario: &'a Scenario,
    load: &'a Load,
    endpoints: Endpoints,
    opts: &'a RunOptions,
    universe: Arc<Universe>,
    plans: Arc<Vec<SubscriberPlan>>,
    /// The publisher's ticks; it lives across steps so each symbol's `seq`
    /// keeps counting up while the server remembers it.
    market: Market,
    publisher: PubConn,
}

/// Runs a traffic scenario against a server that is already listening.
pub fn run_traffic(
    scenario: &Scenario,
    endpoints: Endpoints,
    opts: &RunOptions,
) -> Result<RunOutput> {
    let load = scenario.load.as_ref().context("not a traffic scenario")?;
    let universe = Arc::new(Universe::new(scenario.symbols, scenario.zipf_s));
    let plans = Arc::new(plan_subscribers(
        &scenario.subscribers,
        &universe,
        scenario.seed,
    )?);
    // The simulator's market over the same symbols and law as the universe;
    // its `rate` is unused, as the publisher times every tick itself.
    let market_cfg = MarketConfig {
        symbols: scenario.symbols,
        seed: scenario.seed,
        ..MarketConfig::default()
    };
    let mut market = Market::with_zipf(&market_cfg, scenario.zipf_s)?;
    if endpoints.kind == TargetKind::Tickcast {
        market.resume_after(&broker_seqs(&endpoints, &universe, opts.tls.as_ref()));
    }
    let publisher = PubConn::connect(&endpoints)?;
    let mut run = Run {
        scenario,
        load,
        endpoints,
        opts,
        universe,
        plans,
        market,
        publisher,
    };
    let mut report = RunReport {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        target: endpoints.kind.name().to_owned(),
        started_unix_s: now_ns() / 1_000_000_000,
        symbols: scenario.symbols,
        steps: Vec::new(),
        saturation: None,
        idle: None,
    };
    let mut latencies = Vec::new();
    match &scenario.saturation {
        None => {
            for &rate in &load.rates {
                let (step, hist) = run.step(rate)?;
                report.steps.push(step);
                latencies.push((rate_label(rate), hist));
            }
        }
        Some(sat) => {
            let mut rate = sat.start_rate;
            let mut best: Option<(f64, f64)> = None;
            let mut stopped_because = format!("reached max_steps ({})", sat.max_steps);
            for _ in 0..sat.max_steps {
                let (mut step, hist) = run.step(rate)?;
                let h = &step.healthy;
                let passed = h.delivered_ratio >= sat.min_delivered_ratio
                    && h.latency.p99_ms <= sat.max_p99_ms;
                step.passed = Some(passed);
                if !passed {
                    stopped_because = format!(
                        "at {} ticks/s: delivered {:.4} of expected (min {}), p99 {:.2} ms (max {})",
                        rate, h.delivered_ratio, sat.min_delivered_ratio, h.latency.p99_ms, sat.max_p99_ms
                    );
                } else {
                    best = Some((rate, h.delivered_per_s));
                }
                report.steps.push(step);
                latencies.push((rate_label(rate), hist));
                if !passed {
                    break;
                }
                rate *= sat.factor;
            }
            report.saturation = Some(SaturationReport {
                max_sustained_rate: best.map(|b| b.0),
                max_sustained_deliveries_per_s: best.map(|b| b.1),
                stopped_because,
            });
        }
    }
    Ok(RunOutput { report, latencies })
}

fn rate_label(rate: f64) -> String {
    if rate >= 1000.0 && rate % 1000.0 == 0.0 {
        format!("{}k/s", rate / 1000.0)
    } else {
        format!("{rate}/s")
    }
}

/// The last seq a running tickcast broker holds for each of our symbols, so a
/// second run against the same broker continues numbering instead of
/// restarting at 1 (which the broker would take for stale repeats).
fn broker_seqs(endpoints: &Endpoints, universe: &Universe, tls: Option<&ClientTls>) -> Vec<u64> {
    #[derive(serde::Deserialize)]
    struct Latest {
        sym: String,
        seq: u64,
    }
    let mut last = vec![0; universe.len()];
    let body = crate::http::get(endpoints.ws, "/symbols", Duration::from_secs(5), tls);
    if let Ok(ticks) = body.and_then(|b| Ok(serde_json::from_slice::<Vec<Latest>>(&b)?)) {
        for t in ticks {
            if let Some(i) = universe.lookup(t.sym.as_bytes()) {
                last[i] = t.seq;
            }
        }
    }
    last
}

impl Run<'_> {
    fn step(&mut self, rate: f64) -> Result<(StepReport, Histogram<u64>)> {
        let load = self.load;
        let subs = &self.scenario.subscribers;
        let baseline = Arc::new(self.market.last_seqs());
        let max_seconds = (load.duration_s + load.drain_s).ceil() as usize + 2;
        let pool = Pool::start(PoolSpec {
            ws: self.endpoints.ws,
            protocol: self.endpoints.kind.protocol(),
            plans: self.plans.clone(),
            universe: self.universe.clone(),
            baseline,
            threads: subs.threads,
            slow_delay: Duration::from_millis(subs.slow_delay_ms),
            max_seconds,
            tls: self.opts.tls.clone(),
        })?;
        let setup_timeout = Duration::from_secs(30 + self.plans.len() as u64 / 100);
        let (acked, failed) = pool.wait_ready(setup_timeout);
        if acked == 0 {
            let _ = pool.finish();
            anyhow::bail!(
                "no subscriber could subscribe ({failed} failed) to {}",
                self.endpoints.ws
            );
        }

        let cpu = CpuMeter::start(self.opts.server_pid);
        let total = (rate * (load.warmup_s + load.duration_s)).round().max(1.0) as u64;
        // Start a moment ahead so tick 0 is not already late.
        let lead = Duration::from_millis(20);
        let schedule = Schedule {
            rate,
            total,
            start: Instant::now() + lead,
            start_wall_ns: now_ns() + lead.as_nanos() as u64,
            batch: Duration::from_micros(load.batch_us),
        };
        let measure_start = schedule.start_wall_ns + (load.warmup_s * 1e9) as u64;
        pool.set_measure_start(measure_start);
        let bar = self.progress_bar(total, rate);
        let sent = AtomicU64::new(0);
        let stop = AtomicBool::new(false);
        // A server that stops reading cannot hang the run past this.
        let publish_deadline = Instant::now()
            + Duration::from_secs_f64((load.warmup_s + load.duration_s) * 1.5 + 10.0);
        let (market, publisher) = (&mut self.market, &mut self.publisher);
        let published = std::thread::scope(|scope| {
            let handle = scope.spawn(|| publish(publisher, market, schedule, &sent, &stop));
            while !handle.is_finished() {
                std::thread::sleep(Duration::from_millis(100));
                bar.set_position(sent.load(Ordering::Relaxed));
                bar.set_message(format!("{} delivered", pool.delivered()));
                if Instant::now() > publish_deadline {
                    stop.store(true, Ordering::Relaxed);
                }
            }
            handle.join()
        })
        .map_err(|_| anyhow::anyhow!("publisher thread panicked"))?;

        // Drain: wait for what is owed to arrive, bounded by drain_s.
        let planned = Fanout::new(&self.plans, self.universe.len());
        let owed = planned.expected(Class::Healthy, &published.per_symbol)
            + planned.expected(Class::Slow, &published.per_symbol);
        let drain_deadline = Instant::now() + Duration::from_secs_f64(load.drain_s);
        while pool.delivered() < owed && Instant::now() < drain_deadline {
            std::thread::sleep(Duration::from_millis(20));
            bar.set_message(format!("{} delivered, draining", pool.delivered()));
        }
        bar.finish_and_clear();
        let (loadgen_cpu, server_cpu) = cpu.read();
        let server_stats = match self.endpoints.kind {
            TargetKind::Tickcast => crate::http::get(
                self.endpoints.ws,
                "/stats",
                Duration::from_secs(5),
                self.opts.tls.as_ref(),
            )
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok()),
            TargetKind::Nats => None,
        };
        let server_rss_kib = self.opts.server_pid.and_then(rss_kib);
        let result = pool.finish()?;

        // Expected deliveries count only subscribers that were acknowledged.
        let acked_plans: Vec<SubscriberPlan> = result
            .acked
            .iter()
            .map(|&i| self.plans[i].clone())
            .collect();
        let fanout = Fanout::new(&acked_plans, self.universe.len());
        let planned_in = |class| self.plans.iter().filter(|p| p.class == class).count() as u64;
        let class_report = |class: Class| {
            ClassReport::new(
                &result.stats[class as usize],
                planned_in(class),
                fanout.expected(class, &published.per_symbol),
                load.duration_s,
            )
        };
        let healthy_latency = result.stats[Class::Healthy as usize].latency.clone();
        let timeline = healthy_latency
            .per_second()
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let s = Summary::of(h);
                IntervalPoint {
                    t_s: (i + 1) as f64,
                    delivered_per_s: h.len() as f64,
                    p50_ms: s.p50_ms,
                    p99_ms: s.p99_ms,
                    max_ms: s.max_ms,
                }
            })
            .collect();
        let step = StepReport {
            rate_target: rate,
            rate_achieved: published.sent as f64 / published.elapsed.as_secs_f64().max(1e-9),
            published: published.sent,
            warmup_s: load.warmup_s,
            duration_s: load.duration_s,
            publisher_max_lag_ms: published.max_lag.as_secs_f64() * 1e3,
            publisher_realtime: published.realtime,
            publisher_error: published.error,
            healthy: class_report(Class::Healthy),
            slow: (subs.slow > 0).then(|| class_report(Class::Slow)),
            stalled: (subs.stalled > 0).then(|| class_report(Class::Stalled)),
            loadgen_cpu_cores: loadgen_cpu,
            server_cpu_cores: server_cpu,
            server_rss_kib,
            server_stats,
            timeline,
            passed: None,
        };
        Ok((step, healthy_latency.histogram()))
    }

    fn progress_bar(&self, total: u64, rate: f64) -> ProgressBar {
        if !self.opts.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(total);
        if let Ok(style) =
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} ticks, {msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(format!(
            "{} {}",
            self.endpoints.kind.name(),
            rate_label(rate)
        ));
        bar
    }
}
