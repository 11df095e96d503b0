//! Opening one WebSocket connection: TCP, TLS for `wss://`, the HTTP
//! upgrade (with the token, when there is one), split into halves.
//!
//! Only [`open_stream`] knows what carries the connection: plain TCP, or
//! rustls over it (trusting the system's roots or the CA file given to the
//! builder); the handshake and everything after it work on any
//! `AsyncRead + AsyncWrite` stream unchanged.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::{handshake, WebSocketRead, WebSocketWrite};
use http_body_util::Empty;
use hyper::header::{AUTHORIZATION, CONNECTION, HOST, UPGRADE};
use hyper::upgrade::Upgraded;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::TlsConnector;

use crate::auth::Token;
use crate::endpoint::{Endpoint, Scheme};
use crate::ClientError;

/// The upgraded connection, whatever carries it.
type Io = TokioIo<Upgraded>;

/// The receiving half of a connection.
pub(crate) type WsReader = WebSocketRead<ReadHalf<Io>>;

/// The sending half of a connection.
pub(crate) type WsWriter = WebSocketWrite<WriteHalf<Io>>;

/// Largest frame accepted from the broker. Ticks are about 150 bytes and a
/// `subscribed` list of a few thousand topics well under this; anything
/// bigger is a broken or hostile server, and the connection is dropped
/// rather than buffered.
const MAX_FRAME_LEN: usize = 1 << 20;

/// How to reach the broker: where, with which TLS settings, which token.
#[derive(Clone)]
pub(crate) struct Target {
    pub endpoint: Endpoint,
    /// For `wss://`.
    pub tls: Option<Arc<ClientConfig>>,
    /// Sent as `Authorization: Bearer` on every (re)connection.
    pub token: Option<Arc<Token>>,
}

/// Connects and completes the WebSocket handshake within `timeout`.
pub(crate) async fn connect(
    target: &Target,
    timeout: Duration,
) -> Result<(WsReader, WsWriter), ClientError> {
    tokio::time::timeout(timeout, connect_unbounded(target))
        .await
        .map_err(|_| ClientError::ConnectTimeout {
            addr: target.endpoint.addr(),
            timeout,
        })?
}

async fn connect_unbounded(target: &Target) -> Result<(WsReader, WsWriter), ClientError> {
    let endpoint = &target.endpoint;
    let stream = open_stream(target).await?;
    let handshake_failed = |source| ClientError::Handshake {
        addr: endpoint.addr(),
        source,
    };
    let mut request = Request::builder()
        .method("GET")
        .uri(endpoint.path.as_str())
        .header(HOST, endpoint.authority.as_str())
        .header(UPGRADE, "websocket")
        .header(CONNECTION, "upgrade")
        .header("Sec-WebSocket-Key", handshake::generate_key())
        .header("Sec-WebSocket-Version", "13");
    if let Some(token) = &target.token {
        request = request.header(AUTHORIZATION, format!("Bearer {}", token.current()));
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| handshake_failed(e.into()))?;
    let (ws, _response) = handshake::client(&SpawnExecutor, request, stream)
        .await
        .map_err(|e| handshake_failed(e.into()))?;
    // One task reads while control requests are written from others, so the
    // stream is split. `tokio::io::split` works for any stream (TLS too); its
    // lock is uncontended on the hot path because writes are rare.
    let (mut reader, writer) = ws.split(tokio::io::split);
    reader.set_max_message_size(MAX_FRAME_LEN);
    Ok((reader, writer))
}

/// A connection's byte stream: TCP, or TLS over TCP.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// The transport seam: plain TCP for `ws://`, rustls over it for `wss://`.
async fn open_stream(target: &Target) -> Result<Box<dyn Stream>, ClientError> {
    let endpoint = &target.endpoint;
    let failed = |source| ClientError::Connect {
        addr: endpoint.addr(),
        source,
    };
    let stream = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
        .await
        .map_err(failed)?;
    // Requests are tiny and rare; do not let Nagle hold one back waiting
    // for an ACK.
    stream.set_nodelay(true).map_err(failed)?;
    match (endpoint.scheme, &target.tls) {
        (Scheme::Ws, _) => Ok(Box::new(stream)),
        (Scheme::Wss, tls) => {
            let config = tls.clone().ok_or(ClientError::Tls(
                "no TLS settings for a wss:// URL".to_owned(),
            ))?;
            let name = ServerName::try_from(endpoint.host.clone())
                .map_err(|e| ClientError::Tls(format!("{}: {e}", endpoint.host)))?;
            let tls = TlsConnector::from(config)
                .connect(name, stream)
                .await
                .map_err(|e| {
                    ClientError::Tls(format!("handshake with {}: {e}", endpoint.addr()))
                })?;
            Ok(Box::new(tls))
        }
    }
}

/// Runs hyper's connection task (which drives the upgrade) on tokio.
struct SpawnExecutor;

impl<F> hyper::rt::Executor<F> for SpawnExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        tokio::spawn(fut);
    }
}
