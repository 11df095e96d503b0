//! From an HTTP request on `/ws` to a running session.
//!
//! Before anything else the request's `Origin` is checked (`origin.rs`) and
//! the connection limit applied; with tokens required, the token is
//! verified (401 without a valid one) and its user's `max_conns` applied
//! (429 past it), all before the `101`. hyper parses the request and
//! fastwebsockets checks the handshake headers
//! and builds the `101` response. Once upgraded, the connection is taken back
//! as a plain `TcpStream` or a TLS stream over one (hyper hands it over with
//! any bytes it had read ahead), because the session splits it into a read
//! half and a write half (`fanout/stream.rs`). A refused upgrade is a [`Refusal`], which
//! the HTTP layer turns into a status and a one-line reason. [`take_over`]
//! is the handshake and hand-over alone; the Autobahn echo server
//! (`examples/echo.rs`) serves on it too.

use std::sync::Arc;

use bytes::Bytes;
use fastwebsockets::upgrade::UpgradeFut;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tickcast_protocol::control::validate_topic;
use tokio::net::TcpStream;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::auth::users::TooMany;
use crate::auth::{self, Refused};
use crate::client::origin::{self, OriginRefusal};
use crate::client::session::{self, Authorized, SessionEnv};
use crate::config::AllowedOrigins;
use crate::fanout::stream::{Stream, Tls};

/// Why an upgrade was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a WebSocket upgrade request.
    #[error("this endpoint speaks WebSocket")]
    NotWebSocket,
    /// The connection limit is reached.
    #[error("too many connections")]
    TooManyConnections,
    /// A topic in `?topics=` is not valid.
    #[error("{0}")]
    BadTopics(String),
    /// The handshake headers are wrong.
    #[error("bad WebSocket handshake: {0}")]
    BadHandshake(String),
    /// The page asking is not allowed to (`origin.rs`).
    #[error(transparent)]
    Origin(#[from] OriginRefusal),
    /// No valid token.
    #[error("{0}")]
    Unauthorized(#[from] Refused),
    /// The token's user holds its `max_conns` already.
    #[error("{0}")]
    UserLimit(#[from] TooMany),
}

impl Refusal {
    /// The HTTP status to answer with.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::NotWebSocket => StatusCode::UPGRADE_REQUIRED,
            Refusal::TooManyConnections => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::BadTopics(_) | Refusal::BadHandshake(_) => StatusCode::BAD_REQUEST,
            Refusal::Origin(_) => StatusCode::FORBIDDEN,
            Refusal::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Refusal::UserLimit(_) => StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

/// Accepts a WebSocket upgrade: returns the `101` response and starts the
/// session, tracked by `sessions`, once hyper hands the connection over.
/// `hold` is kept as long as the session runs (the HTTP layer's count of
/// the connection's address). `scheme` is the one the port serves (`http`
/// or `https`): the broker's own page has that scheme in its `Origin`.
pub fn accept(
    mut req: Request<Incoming>,
    env: &Arc<SessionEnv>,
    origins: &AllowedOrigins,
    scheme: &str,
    sessions: &TaskTracker,
    hold: impl Send + 'static,
) -> Result<Response<Empty<Bytes>>, Refusal> {
    if !fastwebsockets::upgrade::is_upgrade_request(&req) {
        return Err(Refusal::NotWebSocket);
    }
    if let Err(refusal) = origin::check(req.headers(), scheme, origins) {
        env.metrics.refused_origin.add(1);
        return Err(refusal.into());
    }
    if env.fanout.connection_count() >= env.limits.max_connections {
        env.metrics.connections_refused.add(1);
        return Err(Refusal::TooManyConnections);
    }
    let authorized = authorize(&req, env)?;
    let topics = query_topics(req.uri().query()).map_err(Refusal::BadTopics)?;
    let (response, handover) = take_over(&mut req)?;
    let env = env.clone();
    sessions.spawn(async move {
        let _hold = hold;
        if let Some((stream, leftover)) = handover.stream().await {
            session::run(stream, leftover, env, topics, authorized).await;
        }
    });
    Ok(response)
}

/// With tokens required: the request's token, verified, and a place in its
/// user's connection count. `None` when the broker takes anyone.
fn authorize(req: &Request<Incoming>, env: &SessionEnv) -> Result<Option<Authorized>, Refusal> {
    let Some(verifier) = &env.auth else {
        return Ok(None);
    };
    let grant = auth::token_from(req.headers(), req.uri().query())
        .ok_or(Refused::Missing)
        .and_then(|token| verifier.verify(token))
        .inspect_err(|_| env.metrics.auth_refused.add(1))?;
    let hold = env
        .users
        .admit(&grant.user, grant.max_conns)
        .inspect_err(|_| env.metrics.user_limit_refused.add(1))?;
    Ok(Some(Authorized { grant, hold }))
}

/// Answers a WebSocket upgrade request: checks the handshake headers and
/// builds the `101`, returned beside the [`Handover`] that yields the raw
/// connection once the response is sent.
pub fn take_over(
    req: &mut Request<Incoming>,
) -> Result<(Response<Empty<Bytes>>, Handover), Refusal> {
    let (response, upgrade) =
        fastwebsockets::upgrade::upgrade(req).map_err(|e| Refusal::BadHandshake(e.to_string()))?;
    Ok((response, Handover(upgrade)))
}

/// An upgrade answered, its connection not yet handed back by hyper.
pub struct Handover(UpgradeFut);

impl Handover {
    /// Waits for hyper to hand the connection over (after the `101` is
    /// sent): the `TcpStream` and the bytes hyper had read past the request,
    /// to pass to [`FrameReader::new`](crate::client::reader::FrameReader::new).
    /// `None` (logged) if the upgrade fails or the connection is neither
    /// TCP nor TLS over TCP.
    pub async fn stream(self) -> Option<(Stream, Bytes)> {
        let ws = match self.0.await {
            Ok(ws) => ws,
            Err(e) => {
                debug!(error = %e, "upgrade failed");
                return None;
            }
        };
        let upgraded = ws.into_inner().into_inner();
        let upgraded = match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => return Some((Stream::Plain(parts.io.into_inner()), parts.read_buf)),
            Err(upgraded) => upgraded,
        };
        match upgraded.downcast::<TokioIo<Tls>>() {
            Ok(parts) => Some((Stream::Tls(Box::new(parts.io.into_inner())), parts.read_buf)),
            Err(_) => {
                warn!("upgraded connection is neither TCP nor TLS");
                None
            }
        }
    }
}

/// Topics from `?topics=AAPL,MSFT` (`*` may be written `%2A`).
fn query_topics(query: Option<&str>) -> Result<Vec<String>, String> {
    let Some(query) = query else {
        return Ok(Vec::new());
    };
    let mut topics = Vec::new();
    for pair in query.split('&') {
        let Some(value) = pair.strip_prefix("topics=") else {
            continue;
        };
        let value = value
            .replace("%2A", "*")
            .replace("%2a", "*")
            .replace("%2C", ",")
            .replace("%2c", ",");
        for topic in value.split(',').filter(|t| !t.is_empty()) {
            validate_topic(topic).map_err(|e| e.message)?;
            topics.push(topic.to_owned());
        }
    }
    Ok(topics)
}

#[cfg(test)]
mod tests {
    use super::query_topics;

    #[test]
    fn topics_from_the_query() {
        assert_eq!(query_topics(None), Ok(vec![]));
        assert_eq!(
            query_topics(Some("topics=AAPL,MSFT")),
            Ok(vec!["AAPL".to_owned(), "MSFT".to_owned()])
        );
        assert_eq!(
            query_topics(Some("x=1&topics=%2A")),
            Ok(vec!["*".to_owned()])
        );
        assert!(query_topics(Some("topics=A%20B")).is_err());
    }
}
