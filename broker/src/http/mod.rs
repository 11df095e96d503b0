//! HTTP on the broker's one port: the WebSocket upgrade and the small
//! read-only endpoints around it.
//!
//! | path | what |
//! |---|---|
//! | `GET /ws[?topics=A,B]` | WebSocket upgrade; optional topics subscribed at connect |
//! | `GET /metrics` | Prometheus text |
//! | `GET /stats` | JSON counters and stage percentiles, and a replay's progress (the dashboard polls it) |
//! | `GET /symbols` | JSON array: the latest tick of every known symbol |
//! | `GET /connections` | JSON: per-connection queue and counters |
//! | `GET /healthz` | `ok` |
//! | `GET /` | the dashboard |
//!
//! Before a connection is served, `admission.rs` checks its address's
//! count and the number of unfinished handshakes; hyper then gives it
//! `--handshake-timeout` to send each request head. With TLS, the same
//! deadline bounds the TLS handshake first, and a connection whose first
//! byte is not a TLS handshake record (plain HTTP sent to the TLS port)
//! gets a plain-text `400` saying so, then is closed. The upgrade itself is
//! `client::upgrade`; this module only routes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tickcast_protocol::Tick;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::auth::{self, entitlements::Entitlements};
use crate::client::session::SessionEnv;
use crate::client::upgrade;
use crate::config::AllowedOrigins;
use crate::fanout::hub::Hub;
use crate::feed::replay::{ReplayProgress, ReplayStatus};
use crate::observe::metrics::{Live, Stats};
use crate::tls::{self, Handshake, TlsServer};
use admission::{Admission, Refused, Ticket};

pub mod admission;
mod dashboard;

type Body = Full<Bytes>;

/// Unsent bytes the kernel may hold for a client socket (see `serve`).
pub const NOTSENT_LOWAT: u32 = 16 * 1024;

/// What the routes need.
pub struct HttpEnv {
    /// What sessions need (the fan-out, counters, limits).
    pub sessions: Arc<SessionEnv>,
    /// Tracks every session task, so shutdown can wait for them.
    pub session_tasks: TaskTracker,
    /// Per-address and handshake counts.
    pub admission: Arc<Admission>,
    /// Which web pages may upgrade.
    pub origins: AllowedOrigins,
    /// TLS on the port (`--tls-cert`/`--tls-key`), or plain.
    pub tls: Option<Arc<TlsServer>>,
    /// The replay's progress, when the feed is a replay.
    pub replay: Option<Arc<ReplayProgress>>,
}

/// `/stats`: the counters, and the replay's progress when there is one.
#[derive(serde::Serialize)]
struct StatsPage {
    #[serde(flatten)]
    stats: Stats,
    #[serde(skip_serializing_if = "Option::is_none")]
    replay: Option<ReplayStatus>,
}

/// The most a client's HTTP request head may take, in bytes (hyper's read
/// buffer, whose default is ~400 KB, and its head limit, none by default):
/// 1,024 unfinished handshakes then hold at most 64 MiB. Longer heads get
/// HTTP 431.
const MAX_REQUEST_HEAD: usize = 64 * 1024;

/// Accepts connections until `shutdown` is cancelled; each connection's
/// HTTP task is tracked by `tasks`.
pub async fn serve(
    listener: TcpListener,
    env: Arc<HttpEnv>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: the connection
                // waits in the backlog; back off briefly rather than
                // spinning on the error, and take it once a socket closes.
                env.sessions.metrics.accept_errors.add(1);
                warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let metrics = &env.sessions.metrics;
        let (ticket, handshake) = match env.admission.admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(why) => {
                match why {
                    Refused::PerIp => metrics.refused_per_ip.add(1),
                    Refused::Handshakes => metrics.refused_handshakes.add(1),
                }
                debug!(%peer, ?why, "refused at accept");
                tasks.spawn(admission::refuse(env.admission.clone(), stream, why));
                continue;
            }
        };
        // Frames are already batched by the writer; Nagle would only add delay.
        let _ = stream.set_nodelay(true);
        // Keep at most this much unsent in the kernel: past it the socket
        // is full for the writer, so what a slow reader has not taken
        // waits in its outbox, where `--max-queue-age` can still conflate
        // it. Without it the kernel's send buffer (autotuned to MiBs) held
        // seconds of stale ticks for a reader at a twentieth of its feed
        // (`tests/continuity.rs`). A reader that keeps up never has unsent
        // bytes pile up, so it does not notice.
        let _ = socket2::SockRef::from(&stream).set_tcp_notsent_lowat(NOTSENT_LOWAT);
        let env = env.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let _handshake = handshake;
            let ticket = Arc::new(ticket);
            tokio::select! {
                _ = serve_connection(stream, peer, &env, ticket) => {}
                _ = shutdown.cancelled() => {}
            }
        });
    }
}

/// One accepted connection: its TLS handshake when the port has TLS, then
/// HTTP until it upgrades or ends.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    env: &Arc<HttpEnv>,
    ticket: Arc<Ticket>,
) {
    let Some(tls) = &env.tls else {
        return serve_http(TokioIo::new(stream), peer, env, ticket).await;
    };
    let metrics = &env.sessions.metrics;
    let timeout = env.sessions.limits.handshake_timeout;
    match tokio::time::timeout(timeout, tls::handshake(tls, stream)).await {
        Err(_) => {
            metrics.tls_handshake_failures.add(1);
            metrics.handshake_timeouts.add(1);
            debug!(%peer, "TLS handshake timed out");
        }
        Ok(Handshake::Done(stream)) => serve_http(TokioIo::new(*stream), peer, env, ticket).await,
        Ok(Handshake::NotTls(stream)) => {
            metrics.tls_not_tls.add(1);
            debug!(%peer, "not TLS on the TLS port");
            admission::answer_and_close(stream, "400 Bad Request", NOT_TLS).await;
        }
        Ok(Handshake::Failed(e)) => {
            metrics.tls_handshake_failures.add(1);
            debug!(%peer, error = %e, "TLS handshake failed");
        }
        Ok(Handshake::Gone) => {}
    }
}

/// The answer to plain HTTP on a TLS port.
const NOT_TLS: &str = "this port speaks TLS: use https:// or wss://";

/// HTTP/1.1 on one connection (plain or TLS), with upgrades.
async fn serve_http<I>(io: TokioIo<I>, peer: SocketAddr, env: &Arc<HttpEnv>, ticket: Arc<Ticket>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let conn_env = env.clone();
    let service = service_fn(move |req| {
        let env = conn_env.clone();
        let ticket = ticket.clone();
        async move { Ok::<_, Infallible>(route(req, &env, ticket).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(env.sessions.limits.handshake_timeout)
        .max_buf_size(MAX_REQUEST_HEAD)
        .max_header_size(MAX_REQUEST_HEAD)
        .serve_connection(io, service)
        .with_upgrades();
    if let Err(e) = conn.await {
        if e.is_timeout() {
            env.sessions.metrics.handshake_timeouts.add(1);
        }
        debug!(%peer, error = %e, "http connection ended");
    }
}

/// How long the accept loop waits after a failed accept.
const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);

async fn route(req: Request<Incoming>, env: &HttpEnv, ticket: Arc<Ticket>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET is served\n");
    }
    let fanout = &env.sessions.fanout;
    let metrics = &env.sessions.metrics;
    let symbols = fanout.hub().symbol_count();
    let path = req.uri().path();
    // With tokens required, everything but the upgrade (which checks its
    // own), the health check and the dashboard's files needs one.
    let access = match (&env.sessions.auth, path) {
        (Some(verifier), "/metrics" | "/stats" | "/connections" | "/symbols") => {
            match auth::token_from(req.headers(), req.uri().query())
                .ok_or(auth::Refused::Missing)
                .and_then(|token| verifier.verify(token))
            {
                Ok(grant) => Some(grant.syms),
                Err(refused) => {
                    metrics.auth_refused.add(1);
                    return unauthorized(&refused);
                }
            }
        }
        _ => None,
    };
    match path {
        "/ws" => {
            let scheme = if env.tls.is_some() { "https" } else { "http" };
            match upgrade::accept(
                req,
                &env.sessions,
                &env.origins,
                scheme,
                &env.session_tasks,
                ticket,
            ) {
                Ok(response) => {
                    let (parts, _) = response.into_parts();
                    Response::from_parts(parts, Full::new(Bytes::new()))
                }
                Err(upgrade::Refusal::Unauthorized(refused)) => unauthorized(&refused),
                Err(refusal) => text(refusal.status(), &format!("{refusal}\n")),
            }
        }
        "/healthz" | "/metrics" => observe(path, &env.sessions),
        "/stats" => json(&StatsPage {
            stats: metrics.stats(symbols),
            replay: env.replay.as_ref().map(|p| p.status()),
        }),
        "/connections" => json(&fanout.report().await),
        "/symbols" => json(&latest_ticks(fanout.hub(), access.as_deref())),
        path => match dashboard::asset(path) {
            Some(asset) => with_type(
                Response::new(Full::new(Bytes::from_static(asset.body))),
                asset.content_type,
            ),
            None => text(
                StatusCode::NOT_FOUND,
                "not found; try /ws, /metrics, /stats, /symbols or /\n",
            ),
        },
    }
}

/// `/healthz` and `/metrics`, on the client port or `--metrics-listen`.
fn observe(path: &str, env: &SessionEnv) -> Response<Body> {
    match path {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/metrics" => {
            let mut page = env.metrics.prometheus(Live {
                symbols: env.fanout.hub().symbol_count(),
                reply_bytes: env.fanout.reply_bytes(),
            });
            if env.auth.is_some() {
                page.push_str(&env.users.prometheus());
            }
            with_type(
                Response::new(Full::new(Bytes::from(page))),
                "text/plain; version=0.0.4; charset=utf-8",
            )
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /metrics or /healthz\n",
        ),
    }
}

/// A 401 with the reason, and the scheme to use.
fn unauthorized(refused: &auth::Refused) -> Response<Body> {
    let mut resp = text(StatusCode::UNAUTHORIZED, &format!("{refused}\n"));
    resp.headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

/// Serves `/metrics` and `/healthz` alone, without a token
/// (`--metrics-listen`), until `shutdown` is cancelled. Connections are few
/// (a Prometheus scraping), so there is no admission here, only the
/// request-head deadline.
pub async fn serve_observe(
    listener: TcpListener,
    env: Arc<SessionEnv>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    warn!(error = %e, "accept failed on the metrics port");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let env = env.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let timeout = env.limits.handshake_timeout;
            let service = service_fn(move |req: Request<Incoming>| {
                let resp = observe(req.uri().path(), &env);
                async move { Ok::<_, Infallible>(resp) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(timeout)
                .max_buf_size(MAX_REQUEST_HEAD)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                _ = shutdown.cancelled() => {}
            }
        });
    }
}

/// The latest tick of every symbol (within `access`, when given), decoded
/// from the frames kept for snapshots (skipping the WebSocket header).
fn latest_ticks(hub: &Hub, access: Option<&Entitlements>) -> Vec<Tick> {
    hub.latest_frames()
        .iter()
        .filter(|(name, _)| access.is_none_or(|a| a.allows(name)))
        .filter_map(|(_, frame)| Tick::decode(crate::fanout::frame::payload(frame)).ok())
        .collect()
}

fn with_type(mut resp: Response<Body>, content_type: &'static str) -> Response<Body> {
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut resp = with_type(
        Response::new(Full::new(Bytes::copy_from_slice(body.as_bytes()))),
        "text/plain; charset=utf-8",
    );
    *resp.status_mut() = status;
    resp
}

fn json<T: serde::Serialize>(value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(body) => with_type(
            Response::new(Full::new(Bytes::from(body))),
            "application/json",
        ),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
    }
}
