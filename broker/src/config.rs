//! Everything a running broker can be told: where to listen, which feed to
//! read, and the limits that keep one client from hurting the others.
//!
//! The CLI (`main.rs`) only parses flags into a [`BrokerConfig`]; tests build
//! one directly, so both run exactly the same broker. (With the `cli`
//! feature, [`SlowConsumerPolicy`] also derives `clap::ValueEnum` for it.)

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use feed_simulator::market::MarketConfig;
use feed_simulator::pacing::Speed;

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
    },
    /// No feed (tests that only exercise the control plane).
    None,
}

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

/// The longest pause [`WriteCoalesce::Auto`] chooses.
pub const MAX_AUTO_PAUSE: Duration = Duration::from_millis(20);

/// The default send share: sends may take 60 % of a writer's core, leaving
/// the rest for fan-out, the feed and the client readers.
pub const DEFAULT_SEND_SHARE: f64 = 0.6;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 50_000,
            max_topics: 1_024,
            max_control_bytes: 4 * 1024,
            control_rate: 20,
            control_burst: 40,
            outbox_bytes: 512 * 1024,
            slow_policy: SlowConsumerPolicy::Conflate,
            slow_timeout: Duration::from_secs(5),
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
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            feed: FeedConfig::Sim(MarketConfig::default()),
            limits: Limits::default(),
            hdr_log: None,
        }
    }
}
