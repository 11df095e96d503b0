//! Opening one WebSocket connection: TCP, HTTP upgrade, split into halves.
//!
//! This is the seam for `wss://`: only [`open_stream`] knows the connection
//! is plain TCP. A TLS transport wraps the `TcpStream` there (for example in
//! `tokio-rustls`) and returns that instead; the handshake and everything
//! after it work on any `AsyncRead + AsyncWrite` stream unchanged.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::{handshake, WebSocketRead, WebSocketWrite};
use http_body_util::Empty;
use hyper::header::{CONNECTION, HOST, UPGRADE};
use hyper::upgrade::Upgraded;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;

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

/// Connects and completes the WebSocket handshake within `timeout`.
pub(crate) async fn connect(
    endpoint: &Endpoint,
    timeout: Duration,
) -> Result<(WsReader, WsWriter), ClientError> {
    tokio::time::timeout(timeout, connect_unbounded(endpoint))
        .await
        .map_err(|_| ClientError::ConnectTimeout {
            addr: endpoint.addr(),
            timeout,
        })?
}

async fn connect_unbounded(endpoint: &Endpoint) -> Result<(WsReader, WsWriter), ClientError> {
    let stream = open_stream(endpoint).await?;
    let handshake_failed = |source| ClientError::Handshake {
        addr: endpoint.addr(),
        source,
    };
    let request = Request::builder()
        .method("GET")
        .uri(endpoint.path.as_str())
        .header(HOST, endpoint.authority.as_str())
        .header(UPGRADE, "websocket")
        .header(CONNECTION, "upgrade")
        .header("Sec-WebSocket-Key", handshake::generate_key())
        .header("Sec-WebSocket-Version", "13")
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

/// The transport seam: plain TCP today.
async fn open_stream(endpoint: &Endpoint) -> Result<TcpStream, ClientError> {
    match endpoint.scheme {
        Scheme::Ws => {
            let stream = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
                .await
                .map_err(|source| ClientError::Connect {
                    addr: endpoint.addr(),
                    source,
                })?;
            // Requests are tiny and rare; do not let Nagle hold one back
            // waiting for an ACK.
            stream
                .set_nodelay(true)
                .map_err(|source| ClientError::Connect {
                    addr: endpoint.addr(),
                    source,
                })?;
            Ok(stream)
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
