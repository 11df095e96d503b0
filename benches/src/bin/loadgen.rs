//! `loadgen`: runs a scenario against tickcast or nats-server and writes the
//! results (JSON, `.hgrm` percentile files, SVG charts); `loadgen compare`
//! puts two result files side by side; `loadgen handshakes` measures new
//! connections per second. `--tls` runs either over wss.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tickcast_benches::ab::medians_table;
use tickcast_benches::floor::{run_floor, FloorSpec, SendMode, MAX_FRAMES};
use tickcast_benches::handshakes::{run_handshakes, HandshakeSpec};
use tickcast_benches::idle::run_idle;
use tickcast_benches::procstat;
use tickcast_benches::report::{comparison_table, summary_table, RunReport};
use tickcast_benches::runner::{run_traffic, RunOptions};
use tickcast_benches::scenario::Scenario;
use tickcast_benches::soak::{run_soak, SoakSpec, SoakTarget};
use tickcast_benches::storm::{run_storm, StormSpec};
use tickcast_benches::target::{Endpoints, SpawnOptions, SpawnedServer, TargetKind};
use tickcast_benches::tls::{self_signed, ClientTls};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "End-to-end load generator for tickcast (and nats-server, for comparison)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario file.
    Run(RunArgs),
    /// Print two result.json files side by side, with ratios (b ÷ a).
    Compare {
        /// The first run's result.json.
        a: PathBuf,
        /// The second run's result.json.
        b: PathBuf,
    },
    /// Medians over several rounds of two sets of result.json files (an
    /// A/B run: old and new builds alternated), per step, with ratios
    /// (b ÷ a).
    Medians {
        /// The first set's result.json files.
        #[arg(long, num_args = 1.., required = true)]
        a: Vec<PathBuf>,
        /// The second set's result.json files.
        #[arg(long, num_args = 1.., required = true)]
        b: Vec<PathBuf>,
        /// What to call the first set.
        #[arg(long, default_value = "a")]
        a_label: String,
        /// What to call the second set.
        #[arg(long, default_value = "b")]
        b_label: String,
    },
    /// Measure what loopback sends alone cost (no server): one thread
    /// writes to every connection once per period, another reads.
    Floor(FloorArgs),
    /// Churn ~1,000 subscribers against a running broker for a bounded time
    /// (default 1 h), sampling its RSS, open fds and tasks; judge whether
    /// each stayed flat (exit 1 if not, or if the broker died).
    Soak(SoakArgs),
    /// New connections per second: connect (with --tls a full TLS
    /// handshake), upgrade, close; bounded by --connections and
    /// --max-duration.
    Handshakes(HandshakesArgs),
    /// A reconnect storm: spawn the broker, publish a steady feed, cut
    /// --storm resuming clients at once, bring them back together with
    /// `since`, and report how fast they are live, whether each stayed
    /// gapless, and the --others' latency before, during and after (exit 1
    /// if a client was not live again or not gapless).
    Storm(StormArgs),
}

#[derive(clap::Args)]
struct HandshakesArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Connections to make (at most).
    #[arg(long, default_value_t = 20_000)]
    connections: u64,
    /// Connections in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Stop after this long even if fewer were made.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    max_duration: std::time::Duration,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct StormArgs {
    /// Symbols in the feed.
    #[arg(long, default_value_t = 200)]
    symbols: usize,
    /// Ticks per second, all symbols together.
    #[arg(long, default_value_t = 20_000.0)]
    rate: f64,
    /// Zipf exponent of the symbols' activity (0: equally active; 1 as in
    /// the scenarios makes the busiest symbols outrun a short --history).
    #[arg(long, default_value_t = 0.0)]
    zipf: f64,
    /// Storm clients (cut and resumed together). With --storm plus --others
    /// over the broker's --max-connections-per-ip (2000), raise it with
    /// --server-arg.
    #[arg(long, default_value_t = 1000)]
    storm: usize,
    /// Symbols per storm client.
    #[arg(long, default_value_t = 3)]
    storm_topics: usize,
    /// Steady subscribers, whose latency is measured.
    #[arg(long, default_value_t = 200)]
    others: usize,
    /// Symbols per steady subscriber.
    #[arg(long, default_value_t = 5)]
    others_topics: usize,
    /// From everyone ready to the cut (the last second is the "before" window).
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    warmup: std::time::Duration,
    /// How long the storm clients stay away (the feed keeps going).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    away: std::time::Duration,
    /// The "after" window, once every storm client is live again.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    after: std::time::Duration,
    /// The longest the storm clients get to be live again.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    live_timeout: std::time::Duration,
    /// The publisher's shortest time between two writes, in µs.
    #[arg(long, default_value_t = 200)]
    batch_us: u64,
    /// Seed of the feed and of every client's topics.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The broker's --history (ticks kept per symbol for resumes; its own
    /// default if not given).
    #[arg(long)]
    history: Option<usize>,
    /// The broker's executable (default: tickcast-broker beside loadgen).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// An extra argument for the broker (repeat it).
    #[arg(long = "server-arg", value_name = "ARG", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Pin the broker to this CPU (taskset -c).
    #[arg(long)]
    server_cpu: Option<usize>,
    /// Pin the loadgen itself to this CPU.
    #[arg(long)]
    cpu: Option<usize>,
    /// Where to write results (default: benches/results/storm-<time>/).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(clap::Args)]
struct SoakArgs {
    /// WebSocket/HTTP address of the running broker (loopback only).
    #[arg(long, default_value = "127.0.0.1:8080")]
    broker: SocketAddr,
    /// The broker's process id (its /proc entries are sampled).
    #[arg(long)]
    server_pid: u32,
    /// How long the churn runs, e.g. 1h, 2m, 90s.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    duration: std::time::Duration,
    /// Time between two samples.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    sample_every: std::time::Duration,
    /// Subscriber slots (connections open at once, nearly).
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// The broker simulator's --symbols (topics are drawn from those names).
    #[arg(long, default_value_t = 100)]
    symbols: usize,
    /// Topics per subscription: 1 to this many.
    #[arg(long, default_value_t = 5)]
    max_topics: usize,
    /// Mean lifetime of one connection.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    mean_life: std::time::Duration,
    /// Share of connections that are slow readers.
    #[arg(long, default_value_t = 0.03)]
    slow_share: f64,
    /// Share of connections that subscribe to `*`.
    #[arg(long, default_value_t = 0.02)]
    wildcard_share: f64,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of the run ignored by the flatness rule.
    #[arg(long, default_value_t = 0.2)]
    warmup: f64,
    /// Subscriber threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Pin the loadgen to this CPU.
    #[arg(long)]
    cpu: Option<usize>,
    /// Where to write soak.json and soak.svg (default: target/soak/).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(clap::Args)]
struct FloorArgs {
    /// Connections written each period.
    #[arg(long, default_value_t = 200)]
    connections: usize,
    /// Time between two rounds of writes, in µs.
    #[arg(long, default_value_t = 1000)]
    period_us: u64,
    /// Bytes per frame (a write carries --frames of them).
    #[arg(long, default_value_t = 1000)]
    bytes: usize,
    /// Frames per write: each connection gets all of them every round,
    /// copied into one buffer (the copy is timed), or as separate iovecs
    /// with --writev.
    #[arg(long, default_value_t = 1)]
    frames: usize,
    /// Seconds to write for.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// CPU for the writing thread.
    #[arg(long)]
    writer_cpu: Option<usize>,
    /// CPU for the reading thread.
    #[arg(long)]
    reader_cpu: Option<usize>,
    /// Send through io_uring, one submission per round, instead of one
    /// system call per connection.
    #[arg(long, conflicts_with = "writev")]
    uring: bool,
    /// Send each connection's frames as separate iovecs (one `writev`),
    /// instead of copying them into one buffer first.
    #[arg(long)]
    writev: bool,
    /// Print the result as JSON instead.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The scenario (TOML), e.g. benches/scenarios/ladder-200.toml.
    scenario: PathBuf,
    #[command(flatten)]
    server: ServerArgs,
    /// Where to write results (default: benches/results/<scenario>-<target>-<time>/).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The server under test: a running one, or one to spawn.
#[derive(clap::Args)]
struct ServerArgs {
    /// Which server to load.
    #[arg(long, value_enum, default_value_t = TargetKind::Tickcast)]
    target: TargetKind,
    /// Start the server on free loopback ports (tickcast-broker from this
    /// program's directory, or nats-server from the PATH) and stop it after.
    #[arg(long)]
    spawn: bool,
    /// The server's executable for --spawn.
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// An extra argument for a spawned tickcast broker (repeat it), e.g.
    /// `--server-arg=--write-coalesce=2ms`.
    #[arg(long = "server-arg", value_name = "ARG", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Pin the spawned server to this CPU (taskset -c).
    #[arg(long, alias = "broker-cpu")]
    server_cpu: Option<usize>,
    /// Pin the loadgen itself to this CPU.
    #[arg(long)]
    cpu: Option<usize>,
    /// WebSocket/HTTP address of a running server (tickcast: --listen; NATS:
    /// its websocket listener).
    #[arg(long, default_value = "127.0.0.1:8080")]
    broker: SocketAddr,
    /// Publish address of a running server (tickcast: --ingest; NATS: its
    /// client port).
    #[arg(long, default_value = "127.0.0.1:9000")]
    ingest: SocketAddr,
    /// A running server's pid, for its CPU and memory figures.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Subscribers over wss (and tickcast's /stats over https). With
    /// --spawn the server gets a self-signed certificate for localhost made
    /// now (tickcast: --tls-cert/--tls-key; NATS: its websocket `tls`
    /// block); a running server needs --ca. The publisher stays on plain
    /// TCP, so the difference is the subscribers' TLS alone.
    #[arg(long)]
    tls: bool,
    /// With --tls against a running server: the CA (PEM) its certificate
    /// chains to; the name checked is `localhost`.
    #[arg(long, value_name = "FILE", requires = "tls")]
    ca: Option<PathBuf>,
}

/// The server under test, as the commands use it.
struct Server {
    /// Started by us (--spawn): stopped when dropped.
    spawned: Option<SpawnedServer>,
    /// Where it listens.
    endpoints: Endpoints,
    /// Its pid, for its CPU and memory.
    pid: Option<u32>,
    /// How the clients speak TLS (--tls).
    tls: Option<ClientTls>,
}

/// The server (started now with --spawn), where it listens, its pid and
/// the clients' TLS; `dir` holds a spawned server's log and certificate.
fn open_server(args: &ServerArgs, dir: &Path) -> Result<Server> {
    let (tls, server_tls) = match (args.tls, args.spawn, &args.ca) {
        (false, _, _) => (None, None),
        (true, true, _) => {
            let (cert, key) = self_signed(dir)?;
            (Some(ClientTls::trusting(&cert)?), Some((cert, key)))
        }
        (true, false, Some(ca)) => (Some(ClientTls::trusting(ca)?), None),
        (true, false, None) => anyhow::bail!("--tls against a running server needs --ca FILE"),
    };
    let spawned = if args.spawn {
        Some(SpawnedServer::start(&SpawnOptions {
            kind: args.target,
            program: args.server_bin.clone(),
            cpu: args.server_cpu,
            dir: dir.to_path_buf(),
            extra_args: args.server_args.clone(),
            tls: server_tls,
        })?)
    } else {
        None
    };
    let endpoints = match &spawned {
        Some(server) => server.endpoints,
        None => Endpoints {
            kind: args.target,
            ws: args.broker,
            publish: args.ingest,
        },
    };
    let pid = spawned.as_ref().map(SpawnedServer::pid).or(args.server_pid);
    Ok(Server {
        spawned,
        endpoints,
        pid,
        tls,
    })
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Run(args) => run(args),
        Command::Compare { a, b } => {
            let (a, b) = (read_report(&a)?, read_report(&b)?);
            print!("{}", comparison_table(&a, &b));
            Ok(())
        }
        Command::Medians {
            a,
            b,
            a_label,
            b_label,
        } => {
            let read = |paths: &[PathBuf]| {
                paths
                    .iter()
                    .map(|p| read_report(p))
                    .collect::<Result<Vec<_>>>()
            };
            let (a, b) = (read(&a)?, read(&b)?);
            print!("{}", medians_table(&a_label, &a, &b_label, &b));
            Ok(())
        }
        Command::Floor(args) => floor(&args),
        Command::Soak(args) => soak(&args),
        Command::Handshakes(args) => handshakes(&args),
        Command::Storm(args) => storm(args),
    }
}

fn handshakes(args: &HandshakesArgs) -> Result<()> {
    if let Some(cpu) = args.server.cpu {
        procstat::pin_to_cpu(cpu)?;
    }
    procstat::raise_fd_limit();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/handshakes");
    std::fs::create_dir_all(&dir)?;
    let Server {
        spawned,
        endpoints,
        pid,
        tls,
    } = open_server(&args.server, &dir)?;
    let report = run_handshakes(&HandshakeSpec {
        ws: endpoints.ws,
        protocol: endpoints.kind.protocol(),
        tls,
        connections: args.connections,
        concurrency: args.concurrency,
        max_duration: args.max_duration,
        server_pid: pid,
    })?;
    drop(spawned);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.summary());
    }
    Ok(())
}

fn storm(args: StormArgs) -> Result<()> {
    let spec = StormSpec {
        symbols: args.symbols,
        rate: args.rate,
        zipf: args.zipf,
        storm: args.storm,
        storm_topics: args.storm_topics,
        others: args.others,
        others_topics: args.others_topics,
        warmup_s: args.warmup.as_secs_f64(),
        away_s: args.away.as_secs_f64(),
        after_s: args.after.as_secs_f64(),
        live_timeout_s: args.live_timeout.as_secs_f64(),
        batch_us: args.batch_us,
        seed: args.seed,
    };
    spec.check()?;
    if let Some(cpu) = args.cpu {
        procstat::pin_to_cpu(cpu)?;
    }
    procstat::raise_fd_limit();
    let out_dir = args.out.clone().unwrap_or_else(|| {
        let stamp = tickcast_benches::latency::now_ns() / 1_000_000_000;
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("results")
            .join(format!("storm-{stamp}"))
    });
    let mut server_args = args.server_args;
    if let Some(history) = args.history {
        server_args.extend(["--history".to_owned(), history.to_string()]);
    }
    let server = SpawnedServer::start(&SpawnOptions {
        kind: TargetKind::Tickcast,
        program: args.server_bin,
        cpu: args.server_cpu,
        dir: out_dir.clone(),
        extra_args: server_args.clone(),
        tls: None,
    })?;
    let report = run_storm(&spec, server.endpoints, Some(server.pid()), &server_args);
    drop(server);
    let report = report?;
    let files = report.save(&out_dir)?;
    print!("{}", report.summary());
    println!("results in {}", out_dir.display());
    for f in files {
        println!("  {}", f.display());
    }
    if !report.passed {
        std::process::exit(1);
    }
    Ok(())
}

fn soak(args: &SoakArgs) -> Result<()> {
    if let Some(cpu) = args.cpu {
        procstat::pin_to_cpu(cpu)?;
    }
    procstat::raise_fd_limit();
    tickcast_benches::soak::stop_on_signals();
    let spec = SoakSpec {
        duration_s: args.duration.as_secs_f64(),
        sample_every_s: args.sample_every.as_secs_f64(),
        subscribers: args.subscribers,
        symbols: args.symbols,
        max_topics: args.max_topics,
        mean_life_s: args.mean_life.as_secs_f64(),
        wildcard_share: args.wildcard_share,
        slow_share: args.slow_share,
        seed: args.seed,
        warmup: args.warmup,
        threads: args.threads,
        ..SoakSpec::default()
    };
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/soak"));
    let report = run_soak(
        &spec,
        SoakTarget {
            ws: args.broker,
            pid: args.server_pid,
        },
    )?;
    let files = report.save(&out_dir)?;
    print!("{}", report.summary());
    for f in files {
        println!("  {}", f.display());
    }
    if !report.passed {
        std::process::exit(1);
    }
    Ok(())
}

fn floor(args: &FloorArgs) -> Result<()> {
    anyhow::ensure!(
        (1..=20_000).contains(&args.connections),
        "--connections must be 1 to 20000"
    );
    anyhow::ensure!(
        args.period_us >= 1 && (0.1..=600.0).contains(&args.seconds),
        "--period-us must be at least 1 and --seconds 0.1 to 600"
    );
    anyhow::ensure!(
        (1..=MAX_FRAMES).contains(&args.frames),
        "--frames must be 1 to {MAX_FRAMES}"
    );
    anyhow::ensure!(
        (1..=1 << 20).contains(&args.bytes.saturating_mul(args.frames)),
        "--bytes × --frames must be 1 byte to 1 MiB"
    );
    procstat::raise_fd_limit();
    let report = run_floor(&FloorSpec {
        connections: args.connections,
        period: std::time::Duration::from_micros(args.period_us),
        bytes: args.bytes,
        frames: args.frames,
        duration: std::time::Duration::from_secs_f64(args.seconds),
        writer_cpu: args.writer_cpu,
        reader_cpu: args.reader_cpu,
        sends: match (args.uring, args.writev) {
            (true, _) => SendMode::Uring,
            (_, true) => SendMode::Writev,
            _ => SendMode::Syscalls,
        },
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", report.summary());
    }
    Ok(())
}

fn read_report(path: &Path) -> Result<RunReport> {
    let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parse {}", path.display()))
}

fn run(args: RunArgs) -> Result<()> {
    let scenario = Scenario::load(&args.scenario)?;
    if let Some(cpu) = args.server.cpu {
        procstat::pin_to_cpu(cpu)?;
    }
    procstat::raise_fd_limit();
    let out_dir = args.out.clone().unwrap_or_else(|| {
        let stamp = tickcast_benches::latency::now_ns() / 1_000_000_000;
        let scheme = if args.server.tls { "-wss" } else { "" };
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("results")
            .join(format!(
                "{}-{}{scheme}-{stamp}",
                scenario.name,
                args.server.target.name()
            ))
    });
    std::fs::create_dir_all(&out_dir)?;
    let Server {
        spawned,
        endpoints,
        pid,
        tls,
    } = open_server(&args.server, &out_dir)?;
    let output = if scenario.is_idle() {
        let report = run_idle(&scenario, endpoints, pid)?;
        tickcast_benches::runner::RunOutput {
            report,
            latencies: Vec::new(),
        }
    } else {
        let opts = RunOptions {
            tls,
            ..RunOptions::for_terminal(pid)
        };
        run_traffic(&scenario, endpoints, &opts)?
    };
    drop(spawned);
    let files = output.save(&out_dir)?;
    print!("{}", summary_table(&output.report));
    println!("results in {}", out_dir.display());
    for f in files {
        println!("  {}", f.display());
    }
    Ok(())
}
