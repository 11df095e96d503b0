//! tickcast broker: real-time market-data fan-out over WebSocket.
//!
//! A tick flows one way through these modules:
//!
//! ```text
//! feed ──▶ hub ──────────▶ writer shard ──▶ outbox (one per client) ──▶ socket
//!  sim      frame once,     one pass over     picks its ticks; bounded;  many frames
//!  ingest   mark the        marked clients    conflate/drop/disconnect   per syscall
//!  replay   subscribers                       past the limit
//! ```
//!
//! - [`feed`]: sources (embedded simulator, TCP ingest, file replay);
//! - [`hub`]: symbols, subscriptions, snapshots and the hand-over to writers;
//! - [`outbox`]: per-connection interest, bounded queue, slow-consumer policies;
//! - [`writer`]: writer shards, batched socket writes;
//! - [`session`]: a client's reader loop and control messages;
//! - [`ws_reader`]: strict parsing of client WebSocket frames;
//! - [`connections`]: the registry and the sweeper (slow clients, pings);
//! - [`http`]: the one port's routes (`/ws`, `/metrics`, `/stats`, …);
//! - [`metrics`], [`latency`]: counters and per-stage HdrHistograms.
//!
//! [`start`] runs a broker inside the caller's tokio runtime; the binary
//! (`main.rs`) is a thin CLI over it, and the tests use it directly.

pub mod client;
pub mod config;
pub mod fanout;
pub mod feed;
pub mod http;
pub mod observe;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::error;

pub use config::{BrokerConfig, FeedConfig, Limits, SlowConsumerPolicy};
/// The tick clock (re-exported for tests and tools built on the broker).
pub use tickcast_protocol::clock;

use client::connections::Connections;
use fanout::frame::close_code;
use fanout::hub::{self, Hub};
use fanout::writer;
use observe::latency;
use observe::metrics::Metrics;

/// What every connection and feed task shares.
pub struct Shared {
    /// Subscriptions and fan-out.
    pub hub: Arc<Hub>,
    /// Counters and histograms.
    pub metrics: Arc<Metrics>,
    /// Live connections.
    pub connections: Connections,
    /// Which writer shard each connection belongs to.
    pub writers: writer::Writers,
    /// Limits from the configuration.
    pub limits: Limits,
}

/// A broker running in the background. Dropping it without calling
/// [`RunningBroker::shutdown`] stops its listeners and feed too, but without
/// the close handshake.
pub struct RunningBroker {
    addr: SocketAddr,
    ingest_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

/// Binds the listeners, starts the feed and serves until shut down.
///
/// Errors (address in use, unreadable replay file, invalid simulator
/// settings) are returned here, before anything runs.
pub async fn start(config: BrokerConfig) -> anyhow::Result<RunningBroker> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let metrics = Arc::new(Metrics::default());
    let shards = config.limits.writer_shards.clamp(1, hub::MAX_SHARDS);
    let hub = Arc::new(Hub::new(
        metrics.clone(),
        shards,
        config.limits.outbox_bytes / 2,
    ));
    let shared = Arc::new(Shared {
        hub: hub.clone(),
        metrics: metrics.clone(),
        connections: Connections::default(),
        writers: writer::Writers::new(shards),
        limits: config.limits.clone(),
    });
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();

    let mut ingest_addr = None;
    match config.feed {
        FeedConfig::Sim(cfg) => {
            // Fail now, not in the background, on bad settings.
            feed_simulator::market::Market::new(&cfg).context("invalid simulator settings")?;
            let hub = hub.clone();
            tasks.spawn(async move {
                if let Err(e) = feed::run_sim(cfg, hub).await {
                    error!("simulated feed stopped: {e:#}");
                }
            });
        }
        FeedConfig::Ingest(at) => {
            let ingest = TcpListener::bind(at)
                .await
                .with_context(|| format!("cannot listen for publishers on {at}"))?;
            ingest_addr = Some(ingest.local_addr()?);
            tasks.spawn(feed::run_ingest(ingest, hub.clone(), metrics.clone()));
        }
        FeedConfig::Replay {
            path,
            speed,
            looping,
        } => {
            let source = feed::ReplaySource::open(&path, looping)?;
            tasks.spawn(feed::run_replay(source, speed, hub.clone()));
        }
        FeedConfig::None => {}
    }

    let log = config.hdr_log.clone();
    let m = metrics.clone();
    tasks.spawn(async move {
        if let Err(e) = latency::run_ticker(m, log).await {
            error!("latency log stopped: {e}");
        }
    });
    for shard in 0..shards {
        tasks.spawn(writer::run_shard(shard, shared.clone()));
    }
    let s = shared.clone();
    tasks.spawn(async move { s.connections.sweep_forever(&s.limits, &s.metrics).await });
    tasks.spawn(http::serve(listener, shared.clone(), stop.clone()));

    Ok(RunningBroker {
        addr,
        ingest_addr,
        shared,
        stop,
        tasks,
    })
}

/// How long shutdown waits for clients to take their close frames.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

impl RunningBroker {
    /// The HTTP/WebSocket address (with the real port if 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The TCP ingest address, when the feed is `Ingest`.
    pub fn ingest_addr(&self) -> Option<SocketAddr> {
        self.ingest_addr
    }

    /// The broker's counters and histograms.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Stops accepting, sends every client a close frame (1001) after what is
    /// already queued, waits briefly for them to go, then stops everything.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        let connections = &self.shared.connections;
        connections.close_all(close_code::GOING_AWAY, "broker shutting down");
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while !connections.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        connections.cancel_all();
        self.tasks.shutdown().await;
    }
}

impl Drop for RunningBroker {
    fn drop(&mut self) {
        self.stop.cancel();
        self.shared.connections.cancel_all();
    }
}
