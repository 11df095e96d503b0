//! `tickcast-broker`: the command-line front of the broker library.
//!
//! Reads its settings from flags, `TICKCAST_*` variables and a `--config`
//! TOML file (`layers.rs`) into a [`BrokerConfig`], starts the broker, and
//! on SIGINT or SIGTERM closes every client with 1001, prints the latency
//! summary and exits 0. Everything else lives in the library.

mod layers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};
use feed_simulator::market::MarketConfig;
use feed_simulator::pacing::Speed;
use tickcast_broker::config::{
    default_writer_shards, AllowedOrigins, AuthConfig, JwtKey, NatsAuth, NatsConfig, NatsInterest,
    Origin, RecordConfig, ReplayStart, TlsFiles, WriteCoalesce, DEFAULT_NATS_PREFIX,
    DEFAULT_NATS_STREAM_HISTORY, DEFAULT_RECORD_MAX_BYTES, DEFAULT_SEND_SHARE,
};
use tickcast_broker::{BrokerConfig, FeedConfig, Limits, SlowConsumerPolicy};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Real-time market-data fan-out over WebSocket.
///
/// With no arguments it serves http://127.0.0.1:8080/ (dashboard), ws://127.0.0.1:8080/ws
/// and /metrics, fed by the embedded simulator (100 symbols, 5,000 ticks/s).
///
/// Every flag can also be set by its environment variable (`--max-connections`:
/// TICKCAST_MAX_CONNECTIONS) or by its name as a key of the --config file
/// (`max-connections = 10000`); a flag wins over the environment, which wins
/// over the file (docs/tickcast.example.toml).
#[derive(Parser, Debug)]
#[command(name = "tickcast-broker", version, about)]
#[command(args_conflicts_with_subcommands = true)]
// Relations between flags (a certificate needs its key, one feed) are
// checked in `into_config`, after the three layers are merged: clap's own
// `requires` and `conflicts_with` see only the command line.
struct Args {
    #[command(subcommand)]
    command: Option<Command>,

    /// Read settings from this TOML file: each key a flag's long name
    /// (`listen = "0.0.0.0:8443"`), overridden by the environment and the
    /// command line.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// How log lines (stderr) are written: `text` for people, `json` (one
    /// object a line) for log shippers. RUST_LOG filters them.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,

    /// HTTP and WebSocket address.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "HOST:PORT")]
    listen: SocketAddr,

    /// Use the embedded simulator (the default feed).
    #[arg(long, value_enum, value_name = "sim")]
    feed: Option<FeedKind>,
    /// Simulator: number of symbols.
    #[arg(long, default_value_t = 100, value_name = "N")]
    symbols: usize,
    /// Simulator: average ticks per second.
    #[arg(long, default_value_t = 5_000.0, value_name = "R")]
    rate: f64,
    /// Simulator: random seed (same seed, same market).
    #[arg(long, default_value_t = 1, value_name = "S")]
    seed: u64,
    /// Simulator: add a market-open burst of activity.
    #[arg(long)]
    open_burst: bool,
    /// Simulator: market hours: 09:30-16:00 New York from the start, the
    /// U-shaped intraday volume profile with an opening burst (--rate is its
    /// average), quiet after the close.
    #[arg(long)]
    session: bool,

    /// Listen for publishers (ingest framing over TCP) instead of simulating.
    #[arg(long, value_name = "HOST:PORT")]
    ingest: Option<SocketAddr>,

    /// Replay a recorded feed file instead of simulating.
    #[arg(long, value_name = "FILE")]
    replay: Option<PathBuf>,
    /// Replay speed: 1 (recorded pace, the default), 10, 0.5, … or max.
    #[arg(long, value_name = "X")]
    speed: Option<Speed>,
    /// Replay: start over at the end of the file.
    #[arg(long = "loop")]
    looping: bool,
    /// Replay: when the first tick goes out: `now`, `on-subscribe` (once
    /// the first client subscription succeeds) or `at=TIME` (RFC 3339 in
    /// UTC, 2026-12-02T14:30:00Z, or Unix seconds, 1796221800).
    #[arg(long, default_value = "now", requires = "replay", value_name = "WHEN")]
    replay_start: ReplayStart,

    /// Record every tick the broker accepts to feed files in DIR (created if
    /// missing), named by the UTC time each was started.
    #[arg(long, value_name = "DIR")]
    record: Option<PathBuf>,
    /// With --record: start a new file after this long.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration, requires = "record", value_name = "DURATION")]
    record_rotate: Duration,
    /// With --record: start a new file before one grows past this many bytes.
    #[arg(long, default_value_t = DEFAULT_RECORD_MAX_BYTES, requires = "record", value_name = "BYTES")]
    record_max_bytes: u64,

    /// Publish every accepted tick to NATS (an origin): nats://HOST:PORT,
    /// several separated by commas for a cluster.
    #[arg(long, value_name = "URL")]
    nats_out: Option<String>,
    /// Take the ticks an origin publishes to NATS as the feed (an edge),
    /// instead of simulating.
    #[arg(long, value_name = "URL")]
    nats_in: Option<String>,
    /// NATS: ticks of SYM travel on PREFIX.SYM.
    #[arg(long, default_value = DEFAULT_NATS_PREFIX, value_name = "PREFIX")]
    nats_subject_prefix: String,
    /// NATS: user name (with --nats-password).
    #[arg(long, value_name = "USER")]
    nats_user: Option<String>,
    /// NATS: password (better from TICKCAST_NATS_PASSWORD than on the
    /// command line, where `ps` shows it).
    #[arg(long, value_name = "PASSWORD")]
    nats_password: Option<String>,
    /// NATS: token (better from TICKCAST_NATS_TOKEN).
    #[arg(long, value_name = "TOKEN")]
    nats_token: Option<String>,
    /// NATS: a file holding an nkey seed.
    #[arg(long, value_name = "FILE")]
    nats_nkey: Option<PathBuf>,
    /// NATS: a .creds file (user JWT and seed).
    #[arg(long, value_name = "FILE")]
    nats_creds: Option<PathBuf>,
    /// NATS: trust this CA (PEM) for the server's certificate (TLS).
    #[arg(long, value_name = "FILE")]
    nats_tls_ca: Option<PathBuf>,
    /// NATS: client certificate (PEM), with --nats-tls-key.
    #[arg(long, value_name = "FILE")]
    nats_tls_cert: Option<PathBuf>,
    /// NATS: client certificate's key (PEM).
    #[arg(long, value_name = "FILE")]
    nats_tls_key: Option<PathBuf>,
    /// NATS: refuse to connect without TLS.
    #[arg(long)]
    nats_require_tls: bool,
    /// With --nats-out: keep the last N ticks of each symbol in a JetStream
    /// stream, so an edge that starts late has snapshots and history at
    /// once (0: no stream; the server then needs no JetStream).
    #[arg(long, default_value_t = DEFAULT_NATS_STREAM_HISTORY, value_name = "N")]
    nats_stream_history: usize,
    /// With --nats-in: take every symbol from NATS (`all`), or only those
    /// clients subscribe to (`subscribed`; everything from the first `*`).
    #[arg(long, value_enum, default_value = "all")]
    nats_interest: NatsInterest,
    /// Name this broker's stream of `seq` numbers (its epoch) instead of
    /// drawing a random one: two origins of one feed must name the same.
    #[arg(long, value_name = "NAME")]
    epoch: Option<String>,

    /// What to do with a client past its outbox limit.
    #[arg(long, value_enum, default_value = "conflate")]
    slow_consumer: SlowConsumerPolicy,
    /// Outbox limit per client, in bytes.
    #[arg(long, default_value_t = Limits::default().outbox_bytes, value_name = "BYTES")]
    outbox_bytes: usize,
    /// Close a client that stays over its outbox limit this long.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    slow_timeout: Duration,
    /// Cut a closing client that has not taken its close frame after this long.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    close_grace: Duration,
    /// Conflate a client's queue to the latest tick per symbol once its
    /// oldest queued tick is older than this (0: off).
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration, value_name = "DURATION")]
    max_queue_age: Duration,
    /// Recent ticks kept per symbol for clients that resume (0: none).
    #[arg(long, default_value_t = Limits::default().history, value_name = "N")]
    history: usize,
    /// Bytes the history may hold in all; past it the oldest ticks go first.
    #[arg(long, default_value_t = Limits::default().history_bytes, value_name = "BYTES")]
    history_bytes: usize,
    /// Most simultaneous WebSocket connections.
    #[arg(long, default_value_t = Limits::default().max_connections, value_name = "N")]
    max_connections: usize,
    /// Most connections from one IP address (0: no limit); more get HTTP 503.
    #[arg(long, default_value_t = Limits::default().max_connections_per_ip, value_name = "N")]
    max_connections_per_ip: usize,
    /// Most connections still in their HTTP handshake; more get HTTP 503.
    #[arg(long, default_value_t = Limits::default().max_handshakes, value_name = "N")]
    max_handshakes: usize,
    /// Close a connection that has not sent its HTTP request head within
    /// this long (and an idle HTTP connection after it).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    handshake_timeout: Duration,
    /// Bytes of unread replies (pongs, error replies, acks) one client may
    /// have queued before it is closed with 1008.
    #[arg(long, default_value_t = Limits::default().max_reply_bytes, value_name = "BYTES")]
    max_reply_bytes: usize,
    /// Bytes of unread replies all clients together may have queued.
    #[arg(long, default_value_t = Limits::default().max_reply_bytes_total, value_name = "BYTES")]
    max_reply_bytes_total: usize,
    /// Most publishers on the ingest port at once; more are closed at once.
    #[arg(long, default_value_t = Limits::default().max_publishers, value_name = "N")]
    max_publishers: usize,
    /// Web origins (scheme://host[:port], comma-separated) whose pages may
    /// open a WebSocket besides the broker's own; `*` allows any. Requests
    /// without an Origin (non-browser clients) are always accepted.
    #[arg(long, value_name = "ORIGINS", value_parser = parse_allowed_origins)]
    allowed_origins: Option<AllowedOrigins>,
    /// Most topics per connection.
    #[arg(long, default_value_t = Limits::default().max_topics, value_name = "N")]
    max_topics: usize,
    /// Largest control message in bytes (also across fragments).
    #[arg(long, default_value_t = Limits::default().max_control_bytes, value_name = "BYTES")]
    max_control_bytes: usize,
    /// Control messages per second per connection (sustained; bursts of twice that).
    #[arg(long, default_value_t = Limits::default().control_rate, value_name = "N")]
    control_rate: u32,
    /// Ping a client silent for this long.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    ping_interval: Duration,
    /// Close a client that does not answer a ping within this long.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pong_timeout: Duration,

    /// Pause between the writers' passes over their clients so frames gather
    /// into fuller writes: `auto` keeps each writer's socket sends to
    /// --send-share of its core; or a fixed duration (`2ms`; `0` writes as
    /// soon as anything is queued; pauses under 1 ms, tokio's timer
    /// resolution, are skipped).
    #[arg(long, default_value = "auto", value_name = "auto|DURATION", value_parser = parse_write_coalesce)]
    write_coalesce: WriteCoalesce,
    /// With --write-coalesce auto: the share of a writer's core (0.05 to 1)
    /// its socket sends may take.
    #[arg(long, default_value_t = DEFAULT_SEND_SHARE, value_name = "FRACTION")]
    send_share: f64,
    /// Writer shards (tasks writing to clients, each for its share of them),
    /// 1 to 64. Default: one per CPU the broker may run on.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    writer_shards: Option<u16>,

    /// Serve https:// and wss:// on --listen with this certificate (PEM; the
    /// chain may follow it in the file). SIGHUP reloads it and the key.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,

    /// TLS on the ingest port too, with --tls-cert and --tls-key.
    #[arg(long)]
    ingest_tls: bool,
    /// Take publishers on a non-loopback --ingest address even without a
    /// JWT key (anyone who reaches it can publish).
    #[arg(long)]
    ingest_insecure: bool,

    /// Require a JWT of every client, verified with this shared secret
    /// (HS256; the file's bytes, trailing newline trimmed).
    #[arg(long, value_name = "FILE")]
    jwt_secret_file: Option<PathBuf>,
    /// Require a JWT of every client, verified with this PEM public key
    /// (RS256, ES256 or EdDSA, by the key's type).
    #[arg(long, value_name = "FILE")]
    jwt_public_key: Option<PathBuf>,
    /// With a JWT key: the `iss` every token must carry.
    #[arg(long, value_name = "ISSUER")]
    jwt_issuer: Option<String>,
    /// With a JWT key: the `aud` every token must carry.
    #[arg(long, value_name = "AUDIENCE")]
    jwt_audience: Option<String>,
    /// Also serve /metrics and /healthz here, without a token (for a
    /// Prometheus inside the firm).
    #[arg(long, value_name = "HOST:PORT")]
    metrics_listen: Option<SocketAddr>,

    /// Write an HdrHistogram interval log of the stage latencies (one interval a second).
    #[arg(long, value_name = "FILE")]
    hdr_log: Option<PathBuf>,
}

/// `--write-coalesce`: `auto` (with the default send share) or a duration
/// such as `2ms` or `0`.
fn parse_write_coalesce(s: &str) -> Result<WriteCoalesce, String> {
    if s == "auto" {
        return Ok(WriteCoalesce::Auto {
            send_share: DEFAULT_SEND_SHARE,
        });
    }
    let fixed = if s == "0" {
        Ok(Duration::ZERO)
    } else {
        humantime::parse_duration(s)
    };
    fixed
        .map(WriteCoalesce::Fixed)
        .map_err(|e| format!("expected `auto` or a duration like `2ms`: {e}"))
}

/// `--allowed-origins`: `*`, or a comma-separated list of origins.
fn parse_allowed_origins(s: &str) -> Result<AllowedOrigins, String> {
    if s.trim() == "*" {
        return Ok(AllowedOrigins::Any);
    }
    s.split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|o| o.parse::<Origin>().map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()
        .map(AllowedOrigins::List)
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Print an HS256 token signed with a secret file, for tests and trials
    /// (production tokens come from the firm's identity provider).
    Token {
        /// The secret (the broker's --jwt-secret-file).
        #[arg(long, value_name = "FILE")]
        secret_file: PathBuf,
        /// The user (`sub`).
        #[arg(long, value_name = "USER")]
        sub: String,
        /// What it may receive (`syms`): symbols, PREFIX* patterns or `*`,
        /// comma-separated.
        #[arg(long, value_name = "LIST", value_delimiter = ',')]
        syms: Vec<String>,
        /// What it may publish (`pub`), for a publisher's token.
        #[arg(long = "pub", value_name = "LIST", value_delimiter = ',')]
        publish: Option<Vec<String>>,
        /// Connections the user may hold at once (`max_conns`).
        #[arg(long, value_name = "N")]
        max_conns: Option<u32>,
        /// How long the token is valid.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// `iss`, for a broker with --jwt-issuer.
        #[arg(long)]
        issuer: Option<String>,
        /// `aud`, for a broker with --jwt-audience.
        #[arg(long)]
        audience: Option<String>,
    },
}

/// `tickcast-broker token …`: the token on stdout.
fn mint(command: Command) -> anyhow::Result<()> {
    let Command::Token {
        secret_file,
        sub,
        syms,
        publish,
        max_conns,
        ttl,
        issuer,
        audience,
    } = command;
    let mut secret = std::fs::read(&secret_file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", secret_file.display()))?;
    while matches!(secret.last(), Some(b'\n' | b'\r')) {
        secret.pop();
    }
    if secret.is_empty() {
        anyhow::bail!("{}: the secret is empty", secret_file.display());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let mut claims = serde_json::json!({ "sub": sub, "syms": syms, "exp": now + ttl.as_secs() });
    let extra = [
        ("pub", publish.map(serde_json::Value::from)),
        ("max_conns", max_conns.map(serde_json::Value::from)),
        ("iss", issuer.map(serde_json::Value::from)),
        ("aud", audience.map(serde_json::Value::from)),
    ];
    for (claim, value) in extra {
        if let Some(value) = value {
            claims[claim] = value;
        }
    }
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&secret),
    )?;
    println!("{token}");
    Ok(())
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FeedKind {
    /// The embedded simulator.
    Sim,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line (tracing-subscriber's JSON format).
    Json,
}

/// `--x` needs `--y`, whichever layers set them.
fn need(has: bool, needs: bool, what: &str) -> anyhow::Result<()> {
    if has && !needs {
        anyhow::bail!("{what} (set by a flag, a TICKCAST_ variable or the --config file)");
    }
    Ok(())
}

impl Args {
    /// The command line, the environment and the --config file, merged
    /// (`layers.rs`); clap's usage errors, --help and --version exit here.
    fn parse_layers() -> anyhow::Result<Self> {
        let cmd = layers::with_env(Self::command());
        let from = |cmd: clap::Command| {
            Self::from_arg_matches(&cmd.get_matches()).unwrap_or_else(|e| e.exit())
        };
        let args = from(cmd.clone());
        match &args.config {
            Some(path) if args.command.is_none() => Ok(from(layers::apply_file(cmd, path)?)),
            _ => Ok(args),
        }
    }

    /// Checks the relations between settings that clap cannot see across
    /// layers.
    fn check_relations(&self) -> anyhow::Result<()> {
        let feeds = [
            self.feed.is_some(),
            self.ingest.is_some(),
            self.replay.is_some(),
            self.nats_in.is_some(),
        ];
        if feeds.iter().filter(|set| **set).count() > 1 {
            anyhow::bail!(
                "--feed, --ingest, --replay and --nats-in are different feeds; set one \
                 (by a flag, a TICKCAST_ variable or the --config file)"
            );
        }
        let nats = self.nats_in.is_some() || self.nats_out.is_some();
        let nats_flags = [
            (self.nats_user.is_some(), "--nats-user"),
            (self.nats_password.is_some(), "--nats-password"),
            (self.nats_token.is_some(), "--nats-token"),
            (self.nats_nkey.is_some(), "--nats-nkey"),
            (self.nats_creds.is_some(), "--nats-creds"),
            (self.nats_tls_ca.is_some(), "--nats-tls-ca"),
            (self.nats_tls_cert.is_some(), "--nats-tls-cert"),
            (self.nats_require_tls, "--nats-require-tls"),
        ];
        for (set, flag) in nats_flags {
            need(set, nats, &format!("{flag} is for --nats-in or --nats-out"))?;
        }
        need(
            self.nats_user.is_some(),
            self.nats_password.is_some(),
            "--nats-user needs --nats-password",
        )?;
        need(
            self.nats_password.is_some(),
            self.nats_user.is_some(),
            "--nats-password needs --nats-user",
        )?;
        let credentials = [
            self.nats_user.is_some(),
            self.nats_token.is_some(),
            self.nats_nkey.is_some(),
            self.nats_creds.is_some(),
        ];
        if credentials.iter().filter(|set| **set).count() > 1 {
            anyhow::bail!(
                "--nats-user, --nats-token, --nats-nkey and --nats-creds are different \
                 credentials; set one"
            );
        }
        need(
            self.nats_tls_cert.is_some(),
            self.nats_tls_key.is_some(),
            "--nats-tls-cert needs --nats-tls-key",
        )?;
        need(
            self.nats_tls_key.is_some(),
            self.nats_tls_cert.is_some(),
            "--nats-tls-key needs --nats-tls-cert",
        )?;
        let replay = self.replay.is_some();
        need(self.speed.is_some(), replay, "--speed is for --replay")?;
        need(self.looping, replay, "--loop is for --replay")?;
        need(
            self.tls_cert.is_some(),
            self.tls_key.is_some(),
            "--tls-cert needs --tls-key",
        )?;
        need(
            self.tls_key.is_some(),
            self.tls_cert.is_some(),
            "--tls-key needs --tls-cert",
        )?;
        let ingest = self.ingest.is_some();
        need(
            self.ingest_tls,
            ingest && self.tls_cert.is_some(),
            "--ingest-tls needs --ingest and --tls-cert",
        )?;
        need(
            self.ingest_insecure,
            ingest,
            "--ingest-insecure is for --ingest",
        )?;
        need(
            self.jwt_secret_file.is_some() && self.jwt_public_key.is_some(),
            false,
            "--jwt-secret-file and --jwt-public-key are two keys; set one",
        )
    }

    fn into_config(self) -> anyhow::Result<BrokerConfig> {
        self.check_relations()?;
        if !(0.05..=1.0).contains(&self.send_share) {
            anyhow::bail!(
                "--send-share must be a fraction from 0.05 to 1, got {}",
                self.send_share
            );
        }
        if !(self.rate.is_finite() && self.rate > 0.0) {
            anyhow::bail!(
                "--rate must be a positive number of ticks per second, got {}",
                self.rate
            );
        }
        if self.record_rotate.is_zero() {
            anyhow::bail!("--record-rotate must be longer than 0");
        }
        if self.record_max_bytes < 1024 {
            anyhow::bail!(
                "--record-max-bytes must be at least 1024, got {}",
                self.record_max_bytes
            );
        }
        if self.symbols == 0 {
            anyhow::bail!("--symbols must be at least 1");
        }
        let key = match (self.jwt_secret_file, self.jwt_public_key) {
            (Some(secret), _) => Some(JwtKey::Secret(secret)),
            (None, Some(public)) => Some(JwtKey::PublicKey(public)),
            (None, None) => None,
        };
        if key.is_none() && (self.jwt_issuer.is_some() || self.jwt_audience.is_some()) {
            anyhow::bail!(
                "--jwt-issuer and --jwt-audience need --jwt-secret-file or --jwt-public-key"
            );
        }
        let auth = key.map(|key| AuthConfig {
            key,
            issuer: self.jwt_issuer,
            audience: self.jwt_audience,
        });
        let nats = |servers: &str| {
            let mut cfg = NatsConfig::new(servers);
            cfg.subject_prefix = self.nats_subject_prefix.clone();
            cfg.auth = if let Some(user) = &self.nats_user {
                NatsAuth::UserPassword {
                    user: user.clone(),
                    password: self.nats_password.clone().unwrap_or_default(),
                }
            } else if let Some(token) = &self.nats_token {
                NatsAuth::Token(token.clone())
            } else if let Some(seed) = &self.nats_nkey {
                NatsAuth::NkeySeed(seed.clone())
            } else if let Some(creds) = &self.nats_creds {
                NatsAuth::Creds(creds.clone())
            } else {
                NatsAuth::None
            };
            cfg.tls_ca = self.nats_tls_ca.clone();
            cfg.tls_client = self
                .nats_tls_cert
                .clone()
                .zip(self.nats_tls_key.clone())
                .map(|(cert, key)| TlsFiles { cert, key });
            cfg.require_tls = self.nats_require_tls;
            cfg.stream_history = self.nats_stream_history;
            cfg.interest = self.nats_interest;
            cfg
        };
        let nats_out = self.nats_out.as_deref().map(nats);
        let feed = if let Some(at) = self.ingest {
            FeedConfig::Ingest(at)
        } else if let Some(servers) = &self.nats_in {
            FeedConfig::Nats(nats(servers))
        } else if let Some(path) = self.replay {
            FeedConfig::Replay {
                path,
                speed: self.speed.unwrap_or(Speed::Factor(1.0)),
                looping: self.looping,
                start: self.replay_start,
            }
        } else {
            FeedConfig::Sim(MarketConfig {
                symbols: self.symbols,
                rate: self.rate,
                seed: self.seed,
                open_burst: self.open_burst,
                session: self.session,
            })
        };
        let limits = Limits {
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            max_handshakes: self.max_handshakes,
            handshake_timeout: self.handshake_timeout,
            max_reply_bytes: self.max_reply_bytes,
            max_reply_bytes_total: self.max_reply_bytes_total,
            max_publishers: self.max_publishers,
            max_topics: self.max_topics,
            max_control_bytes: self.max_control_bytes,
            control_rate: self.control_rate,
            control_burst: self.control_rate.saturating_mul(2),
            outbox_bytes: self.outbox_bytes,
            slow_policy: self.slow_consumer,
            slow_timeout: self.slow_timeout,
            close_grace: self.close_grace,
            max_queue_age: (!self.max_queue_age.is_zero()).then_some(self.max_queue_age),
            history: self.history,
            history_bytes: self.history_bytes,
            ping_interval: self.ping_interval,
            pong_timeout: self.pong_timeout,
            write_coalesce: match self.write_coalesce {
                WriteCoalesce::Auto { .. } => WriteCoalesce::Auto {
                    send_share: self.send_share,
                },
                fixed => fixed,
            },
            writer_shards: self
                .writer_shards
                .map_or_else(default_writer_shards, usize::from),
        };
        Ok(BrokerConfig {
            listen: self.listen,
            feed,
            limits,
            hdr_log: self.hdr_log,
            allowed_origins: self.allowed_origins.unwrap_or_default(),
            tls: self
                .tls_cert
                .zip(self.tls_key)
                .map(|(cert, key)| TlsFiles { cert, key }),
            auth,
            ingest_tls: self.ingest_tls,
            ingest_insecure: self.ingest_insecure,
            metrics_listen: self.metrics_listen,
            record: self.record.map(|dir| RecordConfig {
                dir,
                rotate: self.record_rotate,
                max_bytes: self.record_max_bytes,
            }),
            nats_out,
            epoch: self.epoch,
        })
    }
}

fn main() -> ExitCode {
    let mut args = match Args::parse_layers() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(command) = args.command.take() {
        return match mint(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    init_logs(args.log_format);
    disable_transparent_huge_pages();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config = args.into_config()?;
    raise_open_file_limit(config.limits.max_connections);
    let broker = tickcast_broker::start(config).await?;
    let addr = broker.local_addr();
    let (http, ws) = if broker.is_tls() {
        ("https", "wss")
    } else {
        ("http", "ws")
    };
    tracing::info!(
        "serving {http}://{addr}/ (dashboard), {ws}://{addr}/ws, {http}://{addr}/metrics"
    );
    if let Some(ingest) = broker.ingest_addr() {
        tracing::info!("accepting publishers on {ingest}");
    }
    wait_for_signal(&broker).await?;
    tracing::info!("shutting down");
    let summary = broker.metrics().summary();
    broker.shutdown().await;
    print!("{summary}");
    Ok(())
}

/// Log lines to stderr, filtered by RUST_LOG (default `info`), as text or
/// JSON. No secret is ever logged: the settings hold the key and
/// certificate files' paths, not their contents, and tokens are neither
/// logged nor kept in what /stats and /connections show
/// (`tests/secrets.rs` runs the binary at `trace` to check).
fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // Colours only for a terminal, not in a file or a journal.
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs.json().init(),
    }
}

/// Raises the open-file soft limit to the hard limit and logs what that
/// allows: each client holds one descriptor, and the broker a few dozen of
/// its own. Past the limit the accept loop waits and retries (the
/// connections wait in the listen backlog), so running out is survivable,
/// but the capacity is worth knowing at start.
fn raise_open_file_limit(max_connections: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            let clients = limit.saturating_sub(64);
            tracing::info!("open-file limit {limit}: room for about {clients} client connections");
            if (clients as usize) < max_connections {
                tracing::warn!(
                    "--max-connections {max_connections} is above what the open-file limit \
                     allows; raise the hard limit (ulimit -Hn) to reach it"
                );
            }
        }
        Err(e) => tracing::warn!("cannot read or raise the open-file limit: {e}"),
    }
}

/// Opts this process out of transparent huge pages, before the runtime
/// and the broker allocate anything of size.
///
/// Where the kernel's THP setting is `always` (it is on these machines), any
/// 2 MiB-aligned stretch of the heap that is touched at all may be backed by
/// a whole huge page, and khugepaged folds sparsely used stretches back into
/// huge pages, so memory the allocator has freed and returned stays
/// resident. Measured with the one-hour soak's load for 6 minutes
/// (2026-12-02, a counting allocator beside mimalloc): with THP the broker
/// sat at 42–47 MB resident for 6–9 MB of live heap, peaked at 68 MB, and
/// kept 42 MB after every client had gone (live heap 2.4 MB); without it,
/// 19–22 MB for the same heap and a 29 MB peak, and over a one-hour soak
/// the resident memory stayed flat (benches/README, "Soak"). Broker CPU
/// on the ladder-200 benchmark was the same with and without (ratio
/// 1.00–1.01; benches/README, "A/B: no transparent huge pages, TLS and
/// tokens").
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::warn!("cannot opt out of transparent huge pages: {e}");
    }
}

/// Waits for SIGINT or SIGTERM; on SIGHUP meanwhile, reloads the TLS
/// certificate and key (a bad pair is logged and the old one kept).
async fn wait_for_signal(broker: &tickcast_broker::RunningBroker) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            res = tokio::signal::ctrl_c() => return Ok(res?),
            _ = term.recv() => return Ok(()),
            _ = hangup.recv() => match broker.reload_tls() {
                Ok(()) if broker.is_tls() => {
                    tracing::info!("SIGHUP: TLS certificate and key reloaded");
                }
                Ok(()) => tracing::info!("SIGHUP: nothing to reload (no TLS)"),
                Err(e) => tracing::error!("SIGHUP: kept the old TLS certificate: {e}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../../docs/tickcast.example.toml");

    /// The committed example, as it is and with every commented-out
    /// setting put back, names only real flags with values they take.
    #[test]
    fn the_example_file_holds_every_flag_s_right_type() {
        let cmd = layers::with_env(Args::command());
        let path = std::path::Path::new("docs/tickcast.example.toml");
        let set = layers::read_file(&cmd, path, EXAMPLE).unwrap();
        assert!(set.len() >= 10, "{set:?}");
        let uncommented: String = EXAMPLE
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest) if rest.contains(" = ") && !rest.starts_with(' ') => rest,
                _ => line,
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let all = layers::read_file(&cmd, path, &uncommented).unwrap();
        let named: Vec<&str> = all.iter().map(|(id, _)| id.as_str()).collect();
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if arg.get_long().is_some() && id != "config" {
                assert!(named.contains(&id), "the example does not show `{id}`");
            }
        }
    }
}
