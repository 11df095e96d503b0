//! Everything a running broker can be told: where to listen, which feed to
//! read, and the limits that keep one client from hurting the others.
//!
//! The CLI (`bin/tickcast-broker/`) only parses flags into a [`BrokerConfig`]; tests build
//! one directly, so both run exactly the same broker. (With the `cli`
//! feature, [`SlowConsumerPolicy`] also derives `clap::ValueEnum` for it.)

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use feed_simulator::market::MarketConfig;
use feed_simulator::pacing::Speed;

/// Token authentication (`auth/`): the key JWTs are verified with, and the
/// issuer and audience they must name when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// The verification key.
    pub key: JwtKey,
    /// Required `iss`, when given (`--jwt-issuer`).
    pub issuer: Option<String>,
    /// Required `aud`, when given (`--jwt-audience`).
    pub audience: Option<String>,
}

/// Where the JWT key is; its type fixes the algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtKey {
    /// A shared secret, the file's bytes with trailing newlines trimmed:
    /// HS256 (`--jwt-secret-file`).
    Secret(PathBuf),
    /// A PEM public key: RS256, ES256 or EdDSA by its type
    /// (`--jwt-public-key`).
    PublicKey(PathBuf),
}

/// A certificate chain and private key, PEM files (`--tls-cert`,
/// `--tls-key`; loaded by `tls.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate, then any intermediates.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Where the ticks come from.
#[derive(Debug, Clone)]
pub enum FeedConfig {
    /// The embedded simulator, paced in real time.
    Sim(MarketConfig),
    /// A TCP listener for publishers speaking the ingest framing.
    Ingest(SocketAddr),
    /// A recorded feed file, replayed at `speed`.
    Replay {
        /// The feed file.
        path: PathBuf,
        /// Replay speed relative to the recorded gaps.
        speed: Speed,
        /// Start again from the top when the file ends.
        looping: bool,
        /// When the first tick goes out.
        start: ReplayStart,
    },
    /// NATS: the ticks an origin broker publishes (`--nats-in`; an edge).
    Nats(NatsConfig),
    /// No feed (tests that only exercise the control plane).
    None,
}

/// The subject prefix of tick messages on NATS (`--nats-subject-prefix`):
/// a tick of SYM travels on `tickcast.ticks.SYM`.
pub const DEFAULT_NATS_PREFIX: &str = "tickcast.ticks";

/// Ticks per symbol an origin keeps in JetStream for edges that start late
/// (`--nats-stream-history`): as many as `--history` keeps by default, so a
/// late edge's rings are as deep as the origin's.
pub const DEFAULT_NATS_STREAM_HISTORY: usize = 1_000;

/// A NATS server and how to reach it (`--nats-out`, `--nats-in`;
/// `feed/nats/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// Server URLs (`nats://host:port`, `tls://host:port`); several for a
    /// cluster, tried in turn.
    pub servers: Vec<String>,
    /// Ticks of SYM go to `<prefix>.<SYM>`.
    pub subject_prefix: String,
    /// How the broker proves who it is to NATS.
    pub auth: NatsAuth,
    /// TLS: trust this CA (PEM) for the server's certificate.
    pub tls_ca: Option<PathBuf>,
    /// TLS: present this client certificate and key.
    pub tls_client: Option<TlsFiles>,
    /// Refuse a connection without TLS.
    pub require_tls: bool,
    /// An origin's JetStream stream of recent ticks, per symbol, for edges
    /// that start late (`--nats-stream-history`; 0: none).
    pub stream_history: usize,
    /// What an edge takes from NATS (`--nats-interest`).
    pub interest: NatsInterest,
}

/// What an edge takes from NATS (`--nats-interest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum NatsInterest {
    /// Every symbol (`<prefix>.>`), read from JetStream at start: every
    /// client may resume here at once.
    #[default]
    All,
    /// Only the symbols its clients subscribe to, each read from JetStream
    /// at its first subscribe (everything from the first `*`): less NATS
    /// traffic where clients watch part of the market.
    Subscribed,
}

impl NatsConfig {
    /// `servers` (comma-separated), default prefix, no credentials, no TLS
    /// unless a URL asks for it.
    pub fn new(servers: &str) -> Self {
        Self {
            servers: servers
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            subject_prefix: DEFAULT_NATS_PREFIX.to_owned(),
            auth: NatsAuth::None,
            tls_ca: None,
            tls_client: None,
            require_tls: false,
            stream_history: DEFAULT_NATS_STREAM_HISTORY,
            interest: NatsInterest::All,
        }
    }
}

/// NATS credentials, one kind at a time (as the server's accounts take them).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NatsAuth {
    /// None.
    #[default]
    None,
    /// `--nats-user` and `--nats-password`.
    UserPassword {
        /// User.
        user: String,
        /// Password.
        password: String,
    },
    /// `--nats-token`.
    Token(String),
    /// `--nats-nkey FILE`: a file holding an nkey seed (`SU…`).
    NkeySeed(PathBuf),
    /// `--nats-creds FILE`: a `.creds` file (a user JWT and its seed).
    Creds(PathBuf),
}

/// When a replay sends its first tick (`--replay-start`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplayStart {
    /// As the broker starts (`now`).
    #[default]
    Now,
    /// Once the first subscribe succeeds (`on-subscribe`), so a tester who
    /// connects a moment after the start still gets the file's first tick.
    OnSubscribe,
    /// At a wall-clock time, ns since the Unix epoch (`at=TIME`); at once
    /// if that time has passed.
    At(u64),
}

/// A `--replay-start` that is none of the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "expected `now`, `on-subscribe` or `at=TIME` (TIME: RFC 3339 in UTC such as \
     2026-12-02T14:30:00Z, or Unix seconds such as 1796221800.5), not {0:?}"
)]
pub struct BadReplayStart(pub String);

impl std::str::FromStr for ReplayStart {
    type Err = BadReplayStart;

    /// `now`, `on-subscribe`, `at=2026-12-02T14:30:00Z` or `at=1796221800`
    /// (Unix seconds, a fraction allowed).
    fn from_str(text: &str) -> Result<Self, BadReplayStart> {
        let bad = || BadReplayStart(text.to_owned());
        match text.trim() {
            "now" => Ok(ReplayStart::Now),
            "on-subscribe" => Ok(ReplayStart::OnSubscribe),
            other => {
                let time = other.strip_prefix("at=").ok_or_else(bad)?;
                let since_epoch = if time.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                    let secs: f64 = time.parse().map_err(|_| bad())?;
                    std::time::Duration::try_from_secs_f64(secs).map_err(|_| bad())?
                } else {
                    feed_simulator::rfc3339::parse(time).map_err(|_| bad())?
                };
                let ns = u64::try_from(since_epoch.as_nanos()).map_err(|_| bad())?;
                Ok(ReplayStart::At(ns))
            }
        }
    }
}

/// `--record DIR`: where and how the broker records every tick it accepts
/// (`feed/record.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordConfig {
    /// The directory the feed files go to (created if missing).
    pub dir: PathBuf,
    /// Start a new file after this long (`--record-rotate`).
    pub rotate: Duration,
    /// Start a new file before one would grow past this (`--record-max-bytes`).
    pub max_bytes: u64,
}

/// The default `--record-rotate`: an hour per file.
pub const DEFAULT_RECORD_ROTATE: Duration = Duration::from_secs(3600);

/// The default `--record-max-bytes`: 1 GiB, about ten million ticks.
pub const DEFAULT_RECORD_MAX_BYTES: u64 = 1 << 30;

/// What to do with a client whose outbox is over [`Limits::outbox_bytes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum SlowConsumerPolicy {
    /// Keep only the latest tick per symbol until the client catches up.
    Conflate,
    /// Drop new ticks until the client catches up.
    Drop,
    /// Close the connection at once (1008 "slow consumer").
    Disconnect,
}

/// Per-connection and broker-wide limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most simultaneous WebSocket connections; more get HTTP 503.
    pub max_connections: usize,
    /// Most connections (upgraded or not) from one IP address; more get
    /// HTTP 503. 0: no limit.
    pub max_connections_per_ip: usize,
    /// Most connections that have not finished their upgrade yet; more are
    /// answered HTTP 503 at once.
    pub max_handshakes: usize,
    /// How long a connection may take to send its HTTP request head (and,
    /// between requests, stay idle) before it is closed.
    pub handshake_timeout: Duration,
    /// Bytes of replies (pongs, error replies, acks) one connection may
    /// have queued before it is closed with 1008 (`fanout/replies.rs`).
    pub max_reply_bytes: usize,
    /// Bytes of replies all connections together may have queued.
    pub max_reply_bytes_total: usize,
    /// Most publishers connected to the ingest port at once; more are
    /// closed at once.
    pub max_publishers: usize,
    /// Most topics one connection may hold.
    pub max_topics: usize,
    /// Largest control message, in bytes (also across fragments).
    pub max_control_bytes: usize,
    /// Control messages a connection may send per second (sustained).
    pub control_rate: u32,
    /// Control messages a connection may send in a burst.
    pub control_burst: u32,
    /// Bytes queued for one connection before the slow-consumer policy applies.
    pub outbox_bytes: usize,
    /// What to do past `outbox_bytes`.
    pub slow_policy: SlowConsumerPolicy,
    /// How long a connection may stay over `outbox_bytes` before it is closed.
    pub slow_timeout: Duration,
    /// How long a closing connection may take to finish the close handshake
    /// (a peer that stopped reading cannot take its close frame) before its
    /// socket is cut.
    pub close_grace: Duration,
    /// The freshness bound: a connection whose oldest queued tick is older
    /// than this has its queue conflated to the latest tick per symbol
    /// (`None`: only the byte limit applies).
    pub max_queue_age: Option<Duration>,
    /// Recent ticks kept per symbol for resumes (0: no history).
    pub history: usize,
    /// Bytes the history may hold in all (frames plus bookkeeping).
    pub history_bytes: usize,
    /// Ping a client that has sent nothing for this long.
    pub ping_interval: Duration,
    /// Close a client that has not answered a ping within this long.
    pub pong_timeout: Duration,
    /// How long a writer shard pauses between passes to let frames gather
    /// (see `fanout/writer/pacing.rs`).
    pub write_coalesce: WriteCoalesce,
    /// Writer shards: tasks that write to clients, each for its share of the
    /// connections (at most 64).
    pub writer_shards: usize,
}

/// The writer shards' pause between passes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WriteCoalesce {
    /// Keep the time a writer spends in socket sends to a share of its
    /// core: a pass whose sends took `S` is followed by a pause until `S ÷
    /// share` after it began, at most [`MAX_AUTO_PAUSE`]. A send costs 5–10
    /// µs of kernel time here whatever it carries, so this sets how often
    /// each busy client is written: 200 of them every ~2.3 ms, 1,000 every
    /// ~14 ms, a handful at once. Pauses under tokio's 1 ms timer resolution
    /// add up until they reach it; a writer that runs out of work owes none.
    Auto {
        /// The share of a writer's core its sends may take (0 < share ≤ 1).
        send_share: f64,
    },
    /// The same pause after every pass (zero: none).
    Fixed(Duration),
}

/// The default per-address limit. A firm's dashboards may reach the broker
/// through one NAT or proxy address, a few hundred of them; 2,000 leaves
/// them room while one host cannot take more than a tenth of a typical
/// 20,000-descriptor process. (The load generator's largest scenario opens
/// 1,002 connections from one address.)
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 2_000;

/// The default close grace: a reader that reads at all takes a close frame
/// in milliseconds; 2 s bounds how long one that stopped keeps its socket.
pub const DEFAULT_CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The longest pause [`WriteCoalesce::Auto`] chooses.
pub const MAX_AUTO_PAUSE: Duration = Duration::from_millis(20);

/// The default send share: sends may take 60 % of a writer's core, leaving
/// the rest for fan-out, the feed and the client readers.
pub const DEFAULT_SEND_SHARE: f64 = 0.6;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 50_000,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            max_handshakes: 1_024,
            handshake_timeout: Duration::from_secs(10),
            // Pongs are at most 127 bytes, error replies ~100, an ack lists
            // the connection's topics (about 10 KiB at 1,024). A client
            // that reads its socket never comes near 64 KiB: replies wait
            // only while its socket is full.
            max_reply_bytes: 64 * 1024,
            max_reply_bytes_total: 64 * 1024 * 1024,
            max_publishers: 64,
            max_topics: 1_024,
            max_control_bytes: 4 * 1024,
            control_rate: 20,
            control_burst: 40,
            outbox_bytes: 512 * 1024,
            slow_policy: SlowConsumerPolicy::Conflate,
            slow_timeout: Duration::from_secs(5),
            close_grace: DEFAULT_CLOSE_GRACE,
            // A screen shows prices at most about this old to a reader
            // slower than its feed; faster readers never queue that long.
            max_queue_age: Some(Duration::from_millis(100)),
            history: 1_000,
            history_bytes: 256 * 1024 * 1024,
            ping_interval: Duration::from_secs(20),
            pong_timeout: Duration::from_secs(20),
            write_coalesce: WriteCoalesce::Auto {
                send_share: DEFAULT_SEND_SHARE,
            },
            writer_shards: default_writer_shards(),
        }
    }
}

/// One writer shard per CPU the process may run on.
pub fn default_writer_shards() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// The whole configuration of one broker.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// HTTP and WebSocket address.
    pub listen: SocketAddr,
    /// The feed.
    pub feed: FeedConfig,
    /// Limits and slow-consumer handling.
    pub limits: Limits,
    /// Write an HdrHistogram interval log (one interval a second) here.
    pub hdr_log: Option<PathBuf>,
    /// Which web pages may open a WebSocket (by their `Origin`).
    pub allowed_origins: AllowedOrigins,
    /// Serve TLS (`https://`, `wss://`) on `listen` with this certificate
    /// and key; plain when `None`.
    pub tls: Option<TlsFiles>,
    /// TLS on the ingest port too, with the same certificate.
    pub ingest_tls: bool,
    /// Take publishers on a non-loopback ingest address without a JWT key.
    pub ingest_insecure: bool,
    /// Require a token of every client (and publisher); none when `None`.
    pub auth: Option<AuthConfig>,
    /// Serve `/metrics` and `/healthz` here too, without a token (for a
    /// Prometheus inside the firm).
    pub metrics_listen: Option<SocketAddr>,
    /// Record every accepted tick to feed files (`--record`).
    pub record: Option<RecordConfig>,
    /// Publish every accepted tick to NATS (`--nats-out`; an origin).
    pub nats_out: Option<NatsConfig>,
    /// The broker's epoch (`--epoch`), instead of a random one: two
    /// origins of one feed must name the same one.
    pub epoch: Option<String>,
}

/// Which browser origins may upgrade. A request without `Origin` (not a
/// browser) is always accepted; one whose `Origin` is the broker's own
/// address (its dashboard) always is too. Others are refused with HTTP 403
/// unless listed, so a page on another site cannot open a socket from a
/// trader's browser (cross-site WebSocket hijacking).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// Only the broker's own (the default).
    #[default]
    SameHost,
    /// The broker's own and these.
    List(Vec<Origin>),
    /// Any origin (`--allowed-origins '*'`).
    Any,
}

/// A web origin, `scheme://host[:port]`: scheme and host kept in lower case
/// (they compare case-insensitively), the port explicit (80 or 443 when
/// the scheme implies it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `http` or `https`.
    pub scheme: String,
    /// The host name or address, lower case (IPv6 in brackets).
    pub host: String,
    /// The port.
    pub port: u16,
}

/// Why a text is not an origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an origin (scheme://host[:port], scheme http or https): {0:?}")]
pub struct BadOrigin(pub String);

impl std::str::FromStr for Origin {
    type Err = BadOrigin;

    fn from_str(text: &str) -> Result<Self, BadOrigin> {
        let bad = || BadOrigin(text.to_owned());
        let (scheme, rest) = text.split_once("://").ok_or_else(bad)?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return Err(bad()),
        };
        let (host, port) = split_host_port(rest).ok_or_else(bad)?;
        Ok(Origin {
            scheme,
            host: host.to_ascii_lowercase(),
            port: port.unwrap_or(default_port),
        })
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// `host[:port]` (as in a `Host` header or an origin), IPv6 in brackets;
/// None when malformed (empty host, a path, a bad port).
pub fn split_host_port(text: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &text[..end + 2];
        match &rest[end + 1..] {
            "" => (host, None),
            tail => (host, Some(tail.strip_prefix(':')?)),
        }
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let valid_host = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b));
    if !valid_host {
        return None;
    }
    match port {
        None => Some((host, None)),
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some((host, Some(p.parse().ok()?)))
        }
        Some(_) => None,
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            feed: FeedConfig::Sim(MarketConfig::default()),
            limits: Limits::default(),
            hdr_log: None,
            allowed_origins: AllowedOrigins::SameHost,
            tls: None,
            ingest_tls: false,
            ingest_insecure: false,
            auth: None,
            metrics_listen: None,
            record: None,
            nats_out: None,
            epoch: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(text: &str) -> Result<Origin, BadOrigin> {
        text.parse()
    }

    #[test]
    fn replay_starts_parse_in_each_form() {
        let parse = |t: &str| t.parse::<ReplayStart>();
        assert_eq!(parse("now"), Ok(ReplayStart::Now));
        assert_eq!(parse("on-subscribe"), Ok(ReplayStart::OnSubscribe));
        let at = 1_796_221_800_000_000_000;
        assert_eq!(parse("at=2026-12-02T14:30:00Z"), Ok(ReplayStart::At(at)));
        assert_eq!(parse("at=1796221800"), Ok(ReplayStart::At(at)));
        assert_eq!(
            parse("at=1796221800.25"),
            Ok(ReplayStart::At(at + 250_000_000))
        );
        for bad in [
            "later",
            "at=",
            "at=tomorrow",
            "at=1.2.3",
            "2026-12-02T14:30:00Z",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn origins_parse_with_their_default_ports_in_lower_case() {
        let o = origin("HTTPS://Dash.Example.COM").unwrap();
        assert_eq!(o.to_string(), "https://dash.example.com:443");
        assert_eq!(origin("http://a.example:8080").unwrap().port, 8080);
        assert_eq!(origin("http://[::1]:9000").unwrap().host, "[::1]");
        assert_eq!(origin("http://[::1]").unwrap().port, 80);
        for bad in [
            "dash.example.com",
            "ftp://a.example",
            "http://",
            "http://a.example:",
            "http://a.example:99999",
            "http://a.example/path",
            "http://a b",
            "http://[::1",
        ] {
            assert!(origin(bad).is_err(), "{bad}");
        }
    }
}
