//! The NATS connection an origin or an edge keeps: its credentials and
//! TLS from the flags, its first connect bounded in time, then reconnects
//! with async-nats's backoff forever, each loss counted and logged.

use std::sync::Arc;
use std::time::Duration;

use async_nats::{ConnectOptions, Event, ServerAddr};
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::config::{NatsAuth, NatsConfig};
use crate::feed::nats::wire::valid_prefix;
use crate::observe::metrics::Metrics;

/// How long the first connection may take before start fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why NATS cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// A server URL does not parse.
    #[error("NATS server URL {url:?}: {reason}")]
    Url {
        /// As given.
        url: String,
        /// Why.
        reason: String,
    },
    /// No server URL.
    #[error("no NATS server URL given")]
    NoServer,
    /// The subject prefix is not a NATS subject.
    #[error("--nats-subject-prefix {0:?} is not a NATS subject (tokens of letters, digits, - or _, separated by dots)")]
    Prefix(String),
    /// A credentials file cannot be read.
    #[error("NATS credentials {path}: {source}")]
    Credentials {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The connection failed.
    #[error("cannot connect to NATS at {servers}: {source}")]
    Connect {
        /// The URLs tried.
        servers: String,
        /// Why.
        source: async_nats::ConnectError,
    },
    /// The origin's JetStream stream cannot be made.
    #[error(
        "cannot keep the JetStream stream {name} of recent ticks: {reason} (is JetStream on? \
         nats-server -js; or pass --nats-stream-history 0)"
    )]
    Stream {
        /// Its name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The subscription failed.
    #[error("cannot subscribe to {subject} on NATS: {source}")]
    Subscribe {
        /// The subject.
        subject: String,
        /// Why.
        source: async_nats::SubscribeError,
    },
}

/// Connects to `cfg`'s servers (failing within [`CONNECT_TIMEOUT`] if
/// none answers), then reconnects by itself forever, with backoff; each
/// loss is counted (`tickcast_nats_disconnects_total`) and logged, as is
/// each reconnect and any message NATS dropped for a slow reader. `name`
/// tells the server who this is (`tickcast origin`, `tickcast edge`).
/// `connected` is notified at each (re)connection (one permit is kept, so
/// the first is not lost before anyone waits).
pub async fn connect(
    cfg: &NatsConfig,
    name: &str,
    metrics: Arc<Metrics>,
    connected: Arc<Notify>,
) -> Result<async_nats::Client, NatsError> {
    if !valid_prefix(&cfg.subject_prefix) {
        return Err(NatsError::Prefix(cfg.subject_prefix.clone()));
    }
    if cfg.servers.is_empty() {
        return Err(NatsError::NoServer);
    }
    let servers = cfg
        .servers
        .iter()
        .map(|url| {
            url.parse::<ServerAddr>().map_err(|e| NatsError::Url {
                url: url.clone(),
                reason: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut options = match &cfg.auth {
        NatsAuth::None => ConnectOptions::new(),
        NatsAuth::UserPassword { user, password } => {
            ConnectOptions::with_user_and_password(user.clone(), password.clone())
        }
        NatsAuth::Token(token) => ConnectOptions::with_token(token.clone()),
        NatsAuth::NkeySeed(path) => {
            let seed = std::fs::read_to_string(path).map_err(|source| NatsError::Credentials {
                path: path.display().to_string(),
                source,
            })?;
            ConnectOptions::with_nkey(seed.trim().to_owned())
        }
        NatsAuth::Creds(path) => {
            ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|source| NatsError::Credentials {
                    path: path.display().to_string(),
                    source,
                })?
        }
    };
    if let Some(ca) = &cfg.tls_ca {
        options = options.add_root_certificates(ca.clone());
    }
    if let Some(client) = &cfg.tls_client {
        options = options.add_client_certificate(client.cert.clone(), client.key.clone());
    }
    let described = cfg.servers.join(",");
    let logged = described.clone();
    options = options
        .require_tls(cfg.require_tls || cfg.tls_ca.is_some() || cfg.tls_client.is_some())
        .name(name)
        .connection_timeout(CONNECT_TIMEOUT)
        .event_callback(move |event| {
            let metrics = metrics.clone();
            let servers = logged.clone();
            let connected = connected.clone();
            async move {
                match event {
                    Event::Disconnected => {
                        metrics.nats_disconnects.add(1);
                        warn!(%servers, "NATS connection lost; reconnecting");
                    }
                    Event::Connected => {
                        info!(%servers, "NATS connected");
                        connected.notify_one();
                    }
                    Event::SlowConsumer(sid) => {
                        warn!(sid, "NATS dropped messages for a slow subscription")
                    }
                    other => warn!(%servers, "NATS: {other}"),
                }
            }
        });
    options
        .connect(servers)
        .await
        .map_err(|source| NatsError::Connect {
            servers: described,
            source,
        })
}
