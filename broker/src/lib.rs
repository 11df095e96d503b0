//! tickcast broker: real-time market-data fan-out over WebSocket.
//!
//! A tick flows one way through these modules, in folders by stage:
//!
//! ```text
//! feed/ ──▶ fanout/hub ──▶ fanout/inbox ──▶ fanout/writer ──▶ socket
//!  sim       frame once,    one per writer    owns its connections:
//!  ingest    subscriber     shard, in one     outbox, socket, sweep;
//!  replay    lists          order             many frames per syscall
//!                 ▲               ▲
//!                 └─ fanout::Member ─┘ ◀── client/session ◀── client/upgrade ◀── http/
//! ```
//!
//! - [`feed`]: sources (embedded simulator, TCP ingest, file replay) and
//!   the `--record` tap after them;
//! - [`fanout`]: the hub (symbols, subscriptions, snapshots), the writer
//!   shards' inboxes, outboxes and writers, the server frames;
//! - [`client`]: a WebSocket client's upgrade, frame reader and session;
//! - [`http`]: the one port's routes (`/ws`, `/metrics`, `/stats`, …) and
//!   the dashboard;
//! - [`observe`]: counters and per-stage latency histograms;
//! - [`config`]: everything a broker can be told; [`bitmap`]: a small
//!   integer set the writers use.
//!
//! `docs/DESIGN.md` says who owns which state and the locking rules.
//! [`start`] runs a broker inside the caller's tokio runtime; the binary
//! (`bin/tickcast-broker/`) is a thin CLI over it, and the tests use it directly.

pub mod auth;
pub mod bitmap;
pub mod client;
pub mod config;
pub mod fanout;
pub mod feed;
pub mod http;
pub mod observe;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::error;

use config::NatsInterest;
pub use config::{BrokerConfig, FeedConfig, Limits, RecordConfig, ReplayStart, SlowConsumerPolicy};
/// The tick clock (re-exported for tests and tools built on the broker).
pub use tickcast_protocol::clock;

use client::first_subscribe::FirstSubscribe;
use client::session::SessionEnv;
use fanout::frame::close_code;
use fanout::Fanout;
use feed::sink::HubSink;
use observe::latency;
use observe::metrics::Metrics;

/// A broker running in the background. Dropping it without calling
/// [`RunningBroker::shutdown`] stops its listeners, feed and connections
/// too, but without the close handshake.
pub struct RunningBroker {
    addr: SocketAddr,
    /// `--metrics-listen`'s address, when given.
    metrics_addr: Option<SocketAddr>,
    /// The client port's TLS, when it has it (reloaded by [`Self::reload_tls`]).
    tls: Option<Arc<tls::TlsServer>>,
    ingest_addr: Option<SocketAddr>,
    fanout: Fanout,
    metrics: Arc<Metrics>,
    /// Stops the listeners (HTTP and ingest accept loops).
    accepting: CancellationToken,
    /// Stops the feed, the writer shards and the latency ticker.
    running: CancellationToken,
    /// Every session task.
    sessions: TaskTracker,
    /// Every other task: listeners, HTTP connections, feed, writers, ticker.
    tasks: TaskTracker,
    /// `--record`'s writer, joined once the feed (which holds its queue)
    /// has stopped, so the last file is finished before shutdown returns.
    record_thread: Option<feed::record::RecordThread>,
}

/// Why a broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The HTTP/WebSocket address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The ingest address cannot be bound.
    #[error("cannot listen for publishers on {addr}: {source}")]
    Ingest {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The simulator's settings are invalid.
    #[error("invalid simulator settings: {0}")]
    Simulator(#[from] feed_simulator::market::ConfigError),
    /// The replay file cannot be read.
    #[error(transparent)]
    Replay(#[from] feed::ReplayError),
    /// `--record` cannot start.
    #[error(transparent)]
    Record(#[from] feed::RecordError),
    /// `--ingest` on an address other machines reach, with nothing to
    /// tell publishers apart.
    #[error(
        "refusing to take publishers on {0} without a JWT key: anyone who reaches it could \
         publish prices; configure --jwt-secret-file or --jwt-public-key, or pass \
         --ingest-insecure"
    )]
    InsecureIngest(SocketAddr),
    /// `--ingest-tls` without a certificate.
    #[error("--ingest-tls needs --tls-cert and --tls-key")]
    IngestTlsWithoutCert,
    /// The JWT key cannot be used.
    #[error("JWT key: {0}")]
    JwtKey(#[from] auth::KeyError),
    /// The TLS certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// NATS cannot be reached or used (`--nats-out`, `--nats-in`).
    #[error(transparent)]
    Nats(#[from] feed::nats::NatsError),
    /// `--epoch` is not a usable name.
    #[error("--epoch {0:?}: use 1 to 48 letters, digits, - or _")]
    Epoch(String),
    /// `--nats-out` on an edge: it would publish back what it receives.
    #[error("--nats-out is for an origin; this broker's feed is NATS (--nats-in)")]
    NatsLoop,
}

/// Binds the listeners, starts the feed and serves until shut down.
///
/// Errors (address in use, unreadable replay file, invalid simulator
/// settings) are returned here, before anything runs.
pub async fn start(config: BrokerConfig) -> Result<RunningBroker, StartError> {
    let auth = match &config.auth {
        Some(cfg) => Some(Arc::new(auth::Verifier::load(cfg)?)),
        None => None,
    };
    let tls = match &config.tls {
        Some(files) => Some(Arc::new(tls::TlsServer::load(files)?)),
        None => None,
    };
    let listen = |addr: SocketAddr| async move {
        let listener = TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        Ok::<_, std::io::Error>((listener, bound))
    };
    let (listener, addr) = listen(config.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
    let mut metrics_addr = None;
    let observe_listener = match config.metrics_listen {
        Some(at) => {
            let (listener, bound) = listen(at)
                .await
                .map_err(|source| StartError::Listen { addr: at, source })?;
            metrics_addr = Some(bound);
            Some(listener)
        }
        None => None,
    };
    if let Some(epoch) = &config.epoch {
        if !fanout::history::valid_epoch_name(epoch) {
            return Err(StartError::Epoch(epoch.clone()));
        }
    }
    if config.nats_out.is_some() && matches!(config.feed, FeedConfig::Nats(_)) {
        return Err(StartError::NatsLoop);
    }
    let metrics = Arc::new(Metrics::default());
    let (fanout, writers) = Fanout::new(
        config.limits.writer_shards,
        &config.limits,
        config.epoch.clone(),
        metrics.clone(),
    );
    let hub = fanout.hub().clone();
    let accepting = CancellationToken::new();
    let running = CancellationToken::new();
    let sessions = TaskTracker::new();
    let tasks = TaskTracker::new();
    if let Some(cfg) = &config.nats_out {
        let connected = Arc::new(tokio::sync::Notify::new());
        let client =
            feed::nats::connect(cfg, "tickcast origin", metrics.clone(), connected.clone()).await?;
        if cfg.stream_history > 0 {
            feed::nats::stream::keep_recent(&client, &cfg.subject_prefix, cfg.stream_history)
                .await?;
            // A memory stream goes with its server: made again at every
            // reconnection (to a restarted server, or another of the cluster).
            tasks.spawn(feed::nats::stream::keep_recent_on_reconnect(
                client.clone(),
                cfg.subject_prefix.clone(),
                cfg.stream_history,
                connected,
                running.clone(),
            ));
        }
        let (tap, publisher) =
            feed::nats::NatsOut::new(client, cfg.subject_prefix.clone(), metrics.clone());
        // A fresh hub: nothing else has set a tap.
        let _ = hub.set_tap(Arc::new(tap));
        tasks.spawn(publisher.run(running.clone()));
    }

    let (recorder, record_thread) = match config.record {
        Some(cfg) => {
            let (recorder, thread) = feed::Recorder::start(cfg, metrics.clone())?;
            (Some(recorder), Some(thread))
        }
        None => (None, None),
    };
    let first_subscribe = Arc::new(FirstSubscribe::default());
    let mut replay = None;
    let mut interest: Option<Arc<dyn fanout::interest::Interest>> = None;
    let mut ingest_addr = None;
    match config.feed {
        FeedConfig::Sim(cfg) => {
            // Fail now, not in the background, on bad settings.
            feed_simulator::market::Market::new(&cfg)?;
            let stop = running.clone();
            let sink = HubSink::new(hub, recorder);
            tasks.spawn(async move {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    res = feed::run_sim(cfg, sink) => if let Err(e) = res {
                        error!("simulated feed stopped: {e}");
                    },
                }
            });
        }
        FeedConfig::Ingest(at) => {
            if !at.ip().is_loopback() && auth.is_none() && !config.ingest_insecure {
                return Err(StartError::InsecureIngest(at));
            }
            if config.ingest_tls && tls.is_none() {
                return Err(StartError::IngestTlsWithoutCert);
            }
            let (ingest, bound) = listen(at)
                .await
                .map_err(|source| StartError::Ingest { addr: at, source })?;
            ingest_addr = Some(bound);
            let stop = running.clone();
            let m = metrics.clone();
            let most = config.limits.max_publishers;
            let security = feed::ingest::IngestSecurity {
                auth: auth.clone(),
                tls: if config.ingest_tls { tls.clone() } else { None },
            };
            tasks.spawn(async move {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = feed::run_ingest(ingest, hub, m, most, security, recorder) => {}
                }
            });
        }
        FeedConfig::Replay {
            path,
            speed,
            looping,
            start,
        } => {
            let source = feed::ReplaySource::open(&path, looping, speed, start)?;
            replay = Some(source.progress().clone());
            let stop = running.clone();
            let sink = HubSink::new(hub, recorder);
            let first = first_subscribe.clone();
            tasks.spawn(async move {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = feed::run_replay(source, speed, start, first, sink) => {}
                }
            });
        }
        FeedConfig::Nats(cfg) => {
            let connected = Arc::new(tokio::sync::Notify::new());
            let client =
                feed::nats::connect(&cfg, "tickcast edge", metrics.clone(), connected).await?;
            match cfg.interest {
                NatsInterest::All => {
                    // Before any client: snapshots and warm rings from JetStream.
                    let (ticks, warm) = feed::nats::stream::take_whole_prefix(
                        &client,
                        &cfg.subject_prefix,
                        &hub,
                        &metrics,
                    )
                    .await?;
                    tracing::info!(messages = warm.messages, took = ?warm.took, "warmed up from JetStream");
                    metrics.nats_subjects.set(1);
                    let (m, stop) = (metrics.clone(), running.clone());
                    tasks.spawn(async move {
                        tokio::select! {
                            _ = stop.cancelled() => {}
                            _ = feed::nats::run_nats_in(ticks, hub, m, recorder) => {}
                        }
                        drop(client);
                    });
                }
                NatsInterest::Subscribed => {
                    interest = Some(feed::nats::interest::EdgeInterest::new(
                        client,
                        cfg.subject_prefix.clone(),
                        hub,
                        metrics.clone(),
                        recorder,
                        tasks.clone(),
                        running.clone(),
                    ));
                }
            }
        }
        FeedConfig::None => {}
    }

    let log = config.hdr_log.clone();
    let (m, stop) = (metrics.clone(), running.clone());
    tasks.spawn(async move {
        tokio::select! {
            _ = stop.cancelled() => {}
            res = latency::run_ticker(m, log) => if let Err(e) = res {
                error!("latency log stopped: {e}");
            },
        }
    });
    for writer in writers {
        tasks.spawn(writer.run(running.clone()));
    }
    let env = Arc::new(http::HttpEnv {
        sessions: Arc::new(SessionEnv {
            fanout: fanout.clone(),
            metrics: metrics.clone(),
            limits: config.limits.clone(),
            auth: auth.clone(),
            users: Arc::new(auth::users::Users::default()),
            first_subscribe,
            interest,
        }),
        replay,
        session_tasks: sessions.clone(),
        admission: http::admission::Admission::new(
            config.limits.max_connections_per_ip,
            config.limits.max_handshakes,
        ),
        origins: config.allowed_origins.clone(),
        tls: tls.clone(),
    });
    if let Some(listener) = observe_listener {
        tasks.spawn(http::serve_observe(
            listener,
            env.sessions.clone(),
            tasks.clone(),
            accepting.clone(),
        ));
    }
    tasks.spawn(http::serve(listener, env, tasks.clone(), accepting.clone()));

    Ok(RunningBroker {
        addr,
        metrics_addr,
        tls,
        ingest_addr,
        fanout,
        metrics,
        accepting,
        running,
        sessions,
        tasks,
        record_thread,
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

    /// The `/metrics`-only address (`--metrics-listen`), when there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Whether the client port serves TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Reads the TLS certificate and key files again and uses them for new
    /// handshakes (connections already up are not touched); on an error the
    /// old pair stays. Without TLS, nothing to do.
    pub fn reload_tls(&self) -> Result<(), tls::TlsError> {
        match &self.tls {
            Some(tls) => tls.reload(),
            None => Ok(()),
        }
    }

    /// The broker's counters and histograms.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Stops accepting, sends every client a close frame (1001) after what is
    /// already queued, waits for every session to end (at most
    /// [`SHUTDOWN_GRACE`], then cuts the rest), then stops every task and
    /// waits for them.
    pub async fn shutdown(mut self) {
        self.accepting.cancel();
        self.fanout
            .close_all(close_code::GOING_AWAY, "broker shutting down");
        self.sessions.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.sessions.wait())
            .await
            .is_err()
        {
            self.fanout.cut_all();
            self.sessions.wait().await;
        }
        self.running.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        if let Some(thread) = self.record_thread.take() {
            // Every queue handle went with the feed tasks: the thread is
            // closing its file.
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for RunningBroker {
    fn drop(&mut self) {
        self.accepting.cancel();
        self.running.cancel();
        self.fanout.cut_all();
    }
}
