//! The load generator against a real broker on real loopback sockets: it must
//! count exactly (over ws and over wss), notice a stalled subscriber,
//! measure new connections, run a whole scenario from the command line
//! into JSON, `.hgrm` and SVG files, and run a (small) reconnect storm
//! whose clients resume gapless, or are told `reset`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tickcast_benches::handshakes::{run_handshakes, HandshakeSpec};
use tickcast_benches::idle::run_idle;
use tickcast_benches::report::RunReport;
use tickcast_benches::runner::{run_traffic, RunOptions};
use tickcast_benches::scenario::Scenario;
use tickcast_benches::storm::{run_storm, StormSpec};
use tickcast_benches::target::{Endpoints, SpawnOptions, SpawnedServer, TargetKind};
use tickcast_benches::tls::{self_signed, ClientTls};
use tickcast_broker::config::TlsFiles;
use tickcast_broker::{BrokerConfig, FeedConfig, Limits, RunningBroker};

/// A broker with a TCP ingest, on its own runtime (the loadgen is
/// synchronous and runs its own threads).
struct Broker {
    runtime: tokio::runtime::Runtime,
    broker: Option<RunningBroker>,
    endpoints: Endpoints,
}

impl Broker {
    fn start(limits: Limits) -> Self {
        Self::start_with(limits, None)
    }

    /// With `tls`, serving https and wss.
    fn start_with(limits: Limits, tls: Option<TlsFiles>) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let config = BrokerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            feed: FeedConfig::Ingest("127.0.0.1:0".parse().unwrap()),
            // Pinned, so the tests run the same on any number of cores.
            limits: Limits {
                writer_shards: 2,
                ..limits
            },
            hdr_log: None,
            allowed_origins: Default::default(),
            tls,
            ..Default::default()
        };
        let broker = runtime.block_on(tickcast_broker::start(config)).unwrap();
        let endpoints = Endpoints {
            kind: TargetKind::Tickcast,
            ws: broker.local_addr(),
            publish: broker.ingest_addr().unwrap(),
        };
        Self {
            runtime,
            broker: Some(broker),
            endpoints,
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(broker) = self.broker.take() {
            self.runtime.block_on(broker.shutdown());
        }
    }
}

fn quiet() -> RunOptions {
    RunOptions {
        server_pid: None,
        progress: false,
        tls: None,
    }
}

const LOW_RATE: &str = r#"
name = "low-rate"
symbols = 20
seed = 11
[subscribers]
count = 5
topics_per_sub = 4
[load]
rates = [500]
warmup_s = 0.5
duration_s = 1.5
drain_s = 3
"#;

/// `--tls`: the same exact count over wss (the subscribers' reads go
/// through rustls, `conn.rs`), /stats and /symbols over https, and new wss
/// connections measured.
#[test]
fn over_wss_every_tick_is_delivered_exactly_once_and_handshakes_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path()).unwrap();
    let tls = ClientTls::trusting(&cert).unwrap();
    let broker = Broker::start_with(Limits::default(), Some(TlsFiles { cert, key }));
    let scenario = Scenario::parse(LOW_RATE).unwrap();
    let opts = RunOptions {
        tls: Some(tls.clone()),
        ..quiet()
    };
    for run in 0..2 {
        let out = run_traffic(&scenario, broker.endpoints, &opts).unwrap();
        let step = &out.report.steps[0];
        let h = &step.healthy;
        assert_eq!((h.acked, h.conn_errors), (5, 0), "run {run}");
        assert!(h.expected > 500, "run {run}: expected {}", h.expected);
        assert_eq!(h.delivered, h.expected, "run {run}");
        assert_eq!((h.gaps, h.duplicates), (0, 0), "run {run}");
        assert!(step.server_stats.is_some(), "run {run}: /stats over https");
    }
    let report = run_handshakes(&HandshakeSpec {
        ws: broker.endpoints.ws,
        protocol: TargetKind::Tickcast.protocol(),
        tls: Some(tls),
        connections: 40,
        concurrency: 4,
        max_duration: Duration::from_secs(20),
        server_pid: None,
    })
    .unwrap();
    assert_eq!((report.connections, report.failed), (40, 0));
    assert_eq!(report.scheme, "wss");
    assert!(report.per_second > 0.0 && report.p50_ms > 0.0, "{report:?}");
}

#[test]
fn every_tick_is_delivered_exactly_once_across_runs() {
    let broker = Broker::start(Limits::default());
    let scenario = Scenario::parse(LOW_RATE).unwrap();
    // Twice against the same broker: the second run must continue each
    // symbol's numbering (from /symbols) and still count exactly, with the
    // first run's last ticks arriving as snapshots, not deliveries.
    for run in 0..2 {
        let out = run_traffic(&scenario, broker.endpoints, &quiet()).unwrap();
        let step = &out.report.steps[0];
        let h = &step.healthy;
        assert_eq!(step.published, 1000, "run {run}");
        assert_eq!(
            (h.subscribers, h.acked, h.conn_errors),
            (5, 5, 0),
            "run {run}"
        );
        assert!(h.expected > 500, "run {run}: expected {}", h.expected);
        assert_eq!(h.delivered, h.expected, "run {run}");
        assert_eq!(
            (
                h.gaps,
                h.conflated,
                h.duplicates,
                h.unexpected,
                h.disconnected
            ),
            (0, 0, 0, 0, 0),
            "run {run}"
        );
        assert!(
            h.latency.count > 0 && h.latency.count < h.delivered,
            "warm-up excluded"
        );
        assert!(h.latency.p50_ms > 0.0 && h.latency.p50_ms < 1000.0);
        if run == 1 {
            assert!(
                h.snapshots > 0,
                "a resubscribing client gets the last ticks as snapshots"
            );
        }
        let stats = step.server_stats.as_ref().expect("/stats read");
        assert!(stats["ticks_in"].as_u64().unwrap() >= 1000);
    }
}

#[test]
fn a_stalled_subscriber_is_reported_and_does_not_cost_the_others() {
    // A small outbox and a short timeout so the broker acts within seconds.
    // The stalled readers look at their sockets only when the step ends;
    // the close grace keeps their sockets open until then however late that
    // is (with the default 2 s, a loaded run cut them before they looked
    // and saw no 1008).
    let limits = Limits {
        outbox_bytes: 32 * 1024,
        slow_timeout: Duration::from_millis(500),
        close_grace: Duration::from_secs(60),
        ..Limits::default()
    };
    let broker = Broker::start(limits);
    let scenario = Scenario::parse(
        r#"
name = "stall"
symbols = 20
seed = 5
[subscribers]
count = 3
topics_per_sub = 5
wildcard = 1
stalled = 2
stalled_wildcard = true
[load]
rates = [20000]
warmup_s = 0.5
duration_s = 1.5
drain_s = 3
"#,
    )
    .unwrap();
    let out = run_traffic(&scenario, broker.endpoints, &quiet()).unwrap();
    let step = &out.report.steps[0];
    let h = &step.healthy;
    assert_eq!(
        h.delivered, h.expected,
        "healthy subscribers get everything"
    );
    assert_eq!((h.gaps, h.disconnected), (0, 0));
    let stalled = step.stalled.as_ref().expect("stalled report");
    assert_eq!(stalled.acked, 2);
    assert!(
        stalled.delivered < stalled.expected,
        "a stalled reader cannot have everything"
    );
    // The broker's policy: conflate past the outbox bound, then close with
    // 1008 once the client stays over it past the slow timeout.
    assert_eq!(stalled.disconnected, 2, "{stalled:?}");
    assert_eq!(stalled.close_codes.get("1008"), Some(&2), "{stalled:?}");
    let stats = step.server_stats.as_ref().unwrap();
    assert!(stats["slow_disconnects"].as_u64().unwrap() >= 2, "{stats}");
}

#[test]
fn saturation_rises_until_a_bound_fails_with_slow_readers_and_two_threads() {
    let broker = Broker::start(Limits::default());
    let scenario = |max_p99_ms: f64| {
        Scenario::parse(&format!(
            r#"
name = "sat"
symbols = 20
seed = 3
[subscribers]
count = 4
topics_per_sub = 3
wildcard = 1
slow = 1
slow_delay_ms = 2
threads = 2
[load]
warmup_s = 0.2
duration_s = 0.6
drain_s = 2
[saturation]
start_rate = 300
factor = 2
max_steps = 2
max_p99_ms = {max_p99_ms}
"#
        ))
        .unwrap()
    };
    // Generous bound: both steps pass and the run stops at max_steps.
    let out = run_traffic(&scenario(60_000.0), broker.endpoints, &quiet()).unwrap();
    let sat = out.report.saturation.as_ref().unwrap();
    assert_eq!(out.report.steps.len(), 2);
    assert_eq!(sat.max_sustained_rate, Some(600.0), "{sat:?}");
    assert!(sat.stopped_because.contains("max_steps"), "{sat:?}");
    for step in &out.report.steps {
        assert_eq!(step.passed, Some(true));
        assert_eq!(step.healthy.delivered, step.healthy.expected);
        let slow = step.slow.as_ref().unwrap();
        assert_eq!((slow.acked, slow.gaps), (1, 0));
        assert!(slow.delivered > 0 && slow.delivered <= slow.expected);
    }
    assert_eq!(out.latencies.len(), 2);
    // Impossible bound: the first step fails and nothing is sustained.
    let out = run_traffic(&scenario(1e-6), broker.endpoints, &quiet()).unwrap();
    let sat = out.report.saturation.as_ref().unwrap();
    assert_eq!(out.report.steps.len(), 1);
    assert_eq!(out.report.steps[0].passed, Some(false));
    assert_eq!(sat.max_sustained_rate, None);
    assert!(sat.stopped_because.contains("p99"), "{sat:?}");
}

#[test]
fn the_smoke_scenario_runs_from_the_command_line_into_files() {
    let broker = Broker::start(Limits::default());
    let out = tempfile::tempdir().unwrap();
    let smoke = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/smoke.toml");
    let status = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("run")
        .arg(&smoke)
        .args(["--broker", &broker.endpoints.ws.to_string()])
        .args(["--ingest", &broker.endpoints.publish.to_string()])
        .args(["--server-pid", &std::process::id().to_string()])
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(stdout.contains("p99ms"), "{stdout}");
    let report: RunReport =
        serde_json::from_slice(&std::fs::read(out.path().join("result.json")).unwrap()).unwrap();
    let h = &report.steps[0].healthy;
    assert_eq!(h.delivered, h.expected);
    assert!(report.steps[0].server_rss_kib.is_some());
    for file in ["latency.svg", "step1-500.hgrm", "step1-500-timeline.svg"] {
        let len = std::fs::metadata(out.path().join(file))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(len > 500, "{file} missing or empty");
    }
    // Comparing a run with itself gives ratios of 1.
    let json = out.path().join("result.json");
    let compare = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("compare")
        .args([&json, &json])
        .output()
        .unwrap();
    assert!(compare.status.success());
    assert!(String::from_utf8_lossy(&compare.stdout).contains("1.00"));
}

#[test]
fn idle_connections_from_several_source_addresses_all_open_and_stay() {
    let broker = Broker::start(Limits::default());
    let scenario = Scenario::parse(
        "name = 'idle'\n[idle]\nconnections = 300\nsource_addrs = 3\nhold_s = 0.5\nconcurrency = 64\n",
    )
    .unwrap();
    let report = run_idle(&scenario, broker.endpoints, Some(std::process::id())).unwrap();
    let idle = report.idle.unwrap();
    assert_eq!(
        (idle.connected, idle.failed, idle.dropped_during_hold),
        (300, 0, 0)
    );
    assert!(idle.server_bytes_per_connection.is_some());
}

/// The NATS comparison path end to end; needs `nats-server` installed
/// (`scripts/test.sh` and `benches/compare.sh` install it). Skipped with a
/// note when it is missing on a developer's machine, but under CI a missing
/// nats-server is a failure, so the comparison path cannot silently rot.
#[test]
fn the_same_scenario_runs_against_nats_when_installed() {
    let found = Command::new("nats-server").arg("--version").output();
    if !found.is_ok_and(|o| o.status.success()) {
        assert!(
            std::env::var_os("CI").is_none(),
            "nats-server is not installed (scripts/test.sh installs it)"
        );
        eprintln!("nats-server not installed: NATS comparison path not exercised");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = SpawnedServer::start(&SpawnOptions {
        kind: TargetKind::Nats,
        program: None,
        cpu: None,
        dir: dir.path().to_path_buf(),
        extra_args: Vec::new(),
        tls: None,
    })
    .unwrap();
    let scenario = Scenario::parse(LOW_RATE).unwrap();
    let out = run_traffic(&scenario, server.endpoints, &quiet()).unwrap();
    let h = &out.report.steps[0].healthy;
    assert_eq!(h.delivered, h.expected);
    assert_eq!((h.gaps, h.duplicates, h.unexpected), (0, 0, 0));
}

/// A storm small enough for a test: 20 storm clients and 5 others on 20
/// symbols at 2,000 ticks/s (100 a symbol), away for half a second.
fn small_storm() -> StormSpec {
    StormSpec {
        symbols: 20,
        rate: 2000.0,
        zipf: 0.0,
        storm: 20,
        storm_topics: 3,
        others: 5,
        others_topics: 4,
        warmup_s: 1.5,
        away_s: 0.5,
        after_s: 0.5,
        live_timeout_s: 10.0,
        batch_us: 200,
        seed: 5,
    }
}

#[test]
fn a_small_storm_resumes_every_client_gapless_from_the_history() {
    let broker = Broker::start(Limits::default());
    let spec = small_storm();
    let report = run_storm(&spec, broker.endpoints, None, &[]).unwrap();
    let s = &report.storm;
    assert!(report.passed, "{}", report.summary());
    assert_eq!((s.ready, s.live, s.not_live), (20, 20, 0));
    assert_eq!((s.clients_recovered, s.clients_reset), (20, 0));
    assert_eq!(s.symbols_recovered, 60);
    assert!(s.gapless && s.gaps_across_cut == 0 && s.duplicates == 0);
    // Half a second away at 100 ticks a symbol: about 50 each (the cut and
    // the reconnect take a little more).
    assert!(
        (60 * 40..=60 * 120).contains(&s.ticks_recovered),
        "{}",
        s.ticks_recovered
    );
    assert_eq!(s.ticks_replayed_received, s.ticks_recovered);
    assert!(s.all_live_ms.is_some());
    let windows: Vec<&str> = report
        .others
        .windows
        .iter()
        .map(|w| w.name.as_str())
        .collect();
    assert_eq!(windows, ["before", "away", "storm", "after"]);
    assert!(report.others.windows[0].latency.count > 0);
    assert_eq!(report.others.ready, 5);
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(report.save(dir.path()).unwrap().len(), 6);
}

#[test]
fn a_storm_longer_than_the_history_is_told_reset_and_still_goes_live() {
    let broker = Broker::start(Limits {
        history: 10,
        ..Limits::default()
    });
    let report = run_storm(&small_storm(), broker.endpoints, None, &[]).unwrap();
    let s = &report.storm;
    assert_eq!((s.live, s.clients_reset, s.symbols_recovered), (20, 20, 0));
    assert_eq!(s.symbols_reset.get("too_old"), Some(&60));
    assert!(s.jumps_after_reset > 0 && s.gapless, "{}", report.summary());
}
