//! HTTP on the broker's one port: the WebSocket upgrade and the small
//! read-only endpoints around it.
//!
//! | path | what |
//! |---|---|
//! | `GET /ws[?topics=A,B]` | WebSocket upgrade; optional topics subscribed at connect |
//! | `GET /metrics` | Prometheus text |
//! | `GET /stats` | JSON counters and stage percentiles (the dashboard polls it) |
//! | `GET /symbols` | JSON array: the latest tick of every known symbol |
//! | `GET /connections` | JSON: per-connection queue and counters |
//! | `GET /healthz` | `ok` |
//! | `GET /` | the dashboard |
//!
//! hyper parses the request and fastwebsockets checks the handshake headers
//! and builds the `101` response. Once upgraded, the connection is taken back
//! as a plain `TcpStream` (hyper hands it over with any bytes it had read
//! ahead), because the session splits it into an owned read half and write
//! half with no lock between them.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tickcast_protocol::control::validate_topic;
use tickcast_protocol::Tick;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::client::session;
use crate::Shared;

mod dashboard;

type Body = Full<Bytes>;

/// Accepts connections until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: back off briefly
                // rather than spinning on the error.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        // Frames are already batched by the writer; Nagle would only add delay.
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(route(req, shared)) }
            });
            let conn = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::select! {
                res = conn => if let Err(e) = res { debug!(%peer, error = %e, "http connection ended") },
                _ = shutdown.cancelled() => {}
            }
        });
    }
}

fn route(req: Request<Incoming>, shared: Arc<Shared>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET is served\n");
    }
    let symbols = shared.hub.symbol_count();
    match req.uri().path() {
        "/ws" => upgrade(req, shared),
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/metrics" => with_type(
            Response::new(Full::new(Bytes::from(shared.metrics.prometheus(symbols)))),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        "/stats" => json(&shared.metrics.stats(symbols)),
        "/connections" => json(&shared.connections.infos()),
        "/symbols" => json(&latest_ticks(&shared)),
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

/// The latest tick of every symbol, decoded from the frames kept for
/// snapshots (skipping the WebSocket header).
fn latest_ticks(shared: &Shared) -> Vec<Tick> {
    shared
        .hub
        .latest_frames()
        .iter()
        .filter_map(|(_, frame)| Tick::decode(crate::fanout::frame::payload(frame)).ok())
        .collect()
}

fn upgrade(mut req: Request<Incoming>, shared: Arc<Shared>) -> Response<Body> {
    if !fastwebsockets::upgrade::is_upgrade_request(&req) {
        return text(
            StatusCode::UPGRADE_REQUIRED,
            "this endpoint speaks WebSocket\n",
        );
    }
    if shared.connections.len() >= shared.limits.max_connections {
        shared.metrics.connections_refused.add(1);
        return text(StatusCode::SERVICE_UNAVAILABLE, "too many connections\n");
    }
    let topics = match query_topics(req.uri().query()) {
        Ok(topics) => topics,
        Err(message) => return text(StatusCode::BAD_REQUEST, &format!("{message}\n")),
    };
    let (response, upgrade) = match fastwebsockets::upgrade::upgrade(&mut req) {
        Ok(pair) => pair,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                &format!("bad WebSocket handshake: {e}\n"),
            )
        }
    };
    tokio::spawn(async move {
        let ws = match upgrade.await {
            Ok(ws) => ws,
            Err(e) => return debug!(error = %e, "upgrade failed"),
        };
        let upgraded = ws.into_inner().into_inner();
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => session::run(parts.io.into_inner(), parts.read_buf, shared, topics).await,
            Err(_) => warn!("upgraded connection is not a TCP stream"),
        }
    });
    let (parts, _) = response.into_parts();
    Response::from_parts(parts, Full::new(Bytes::new()))
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
