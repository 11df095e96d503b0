//! Test harness shared by the broker's integration tests: a real broker on
//! an ephemeral loopback port, a publisher speaking the ingest framing over
//! TCP, and subscribers using tokio-tungstenite, a WebSocket client written
//! independently of ours.
#![allow(dead_code)] // each test file uses its own subset

pub mod nats;
pub mod pki;
pub mod tokens;
pub mod witness;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use tickcast_broker::{BrokerConfig, FeedConfig, Limits, RunningBroker};
use tickcast_protocol::control::{decode_server_frame, Incoming};
use tickcast_protocol::framing::put_tick_record;
use tickcast_protocol::{ServerMessage, Tick};
use tickcast_wsframe::{close, handshake, put_frame, Frame, Header, Opcode, Rules};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Generous bound for anything a test waits on.
pub const WAIT: Duration = Duration::from_secs(10);

/// Writer shards of a test broker: pinned, so a test runs the same on any
/// number of cores (the default is one per CPU). Two, so that connections
/// of one test land in different shards.
pub const SHARDS: usize = 2;

/// The default limits with [`SHARDS`] writer shards.
pub fn limits() -> Limits {
    limits_with_shards(SHARDS)
}

/// The default limits with `shards` writer shards.
pub fn limits_with_shards(shards: usize) -> Limits {
    Limits {
        writer_shards: shards,
        ..Limits::default()
    }
}

/// Starts a broker fed by a TCP ingest listener, with `limits`.
pub async fn ingest_broker(limits: Limits) -> RunningBroker {
    let config = BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        feed: FeedConfig::Ingest("127.0.0.1:0".parse().unwrap()),
        limits,
        hdr_log: None,
        allowed_origins: Default::default(),
        ..Default::default()
    };
    tickcast_broker::start(config).await.unwrap()
}

/// A tick of `sym` with `seq`, stamped now.
pub fn tick(sym: &str, seq: u64) -> Tick {
    let cents = 10_000 + (seq % 500);
    Tick {
        sym: sym.to_owned(),
        seq,
        ts: tickcast_broker::clock::now_ns(),
        bid: cents as f64 / 100.0,
        ask: (cents + 1) as f64 / 100.0,
        last: cents as f64 / 100.0,
        bid_size: 100,
        ask_size: 200,
        last_size: 100,
        volume: seq * 100,
        orig_ts: None,
    }
}

/// A byte stream a test publishes over: TCP, or TLS over it.
pub trait Conn: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Conn for T {}

/// A publisher connected to the broker's ingest port; numbers each symbol's
/// ticks from 1.
pub struct Publisher {
    stream: Box<dyn Conn>,
    seqs: HashMap<String, u64>,
}

impl Publisher {
    /// Connects to `broker`'s ingest listener.
    pub async fn connect(broker: &RunningBroker) -> Self {
        let stream = TcpStream::connect(broker.ingest_addr().unwrap())
            .await
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Self::over(Box::new(stream))
    }

    /// A publisher writing to `stream` (a TLS connection, say).
    pub fn over(stream: Box<dyn Conn>) -> Self {
        Self {
            stream,
            seqs: HashMap::new(),
        }
    }

    /// Connects and sends `token` as the first record (`{"type":"auth"}`).
    pub async fn connect_with_token(broker: &RunningBroker, token: &str) -> Self {
        let mut publisher = Self::connect(broker).await;
        publisher.authenticate(token).await;
        publisher
    }

    /// Sends the auth record.
    pub async fn authenticate(&mut self, token: &str) {
        let record = tickcast_protocol::control::PublisherRecord::Auth {
            token: token.to_owned(),
        };
        let mut buf = BytesMut::new();
        tickcast_protocol::framing::put_record(&mut buf, &record.to_msgpack());
        self.stream.write_all(&buf).await.unwrap();
    }

    /// Publishes the next tick of each symbol in `syms`, in one write.
    pub async fn publish(&mut self, syms: &[&str]) {
        let mut buf = BytesMut::new();
        for sym in syms {
            let seq = self.seqs.entry((*sym).to_owned()).or_insert(0);
            *seq += 1;
            put_tick_record(&mut buf, &tick(sym, *seq).as_ref());
        }
        self.stream.write_all(&buf).await.unwrap();
    }

    /// Publishes ticks of `sym` with exactly these seqs, in one write.
    pub async fn publish_seqs(&mut self, sym: &str, seqs: &[u64]) {
        let mut buf = BytesMut::new();
        for seq in seqs {
            put_tick_record(&mut buf, &tick(sym, *seq).as_ref());
        }
        self.stream.write_all(&buf).await.unwrap();
    }

    /// Writes raw bytes (for malformed-input tests).
    pub async fn write_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// The last seq published for `sym`.
    pub fn last_seq(&self, sym: &str) -> u64 {
        self.seqs.get(sym).copied().unwrap_or(0)
    }
}

/// Waits until the broker has accepted `n` ticks in total.
pub async fn wait_ticks_in(broker: &RunningBroker, n: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while broker.metrics().ticks_in.get() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "broker accepted only {} of {n} ticks",
            broker.metrics().ticks_in.get()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Sends `client` a raw subscribe request (JSON); returns the ack's epoch.
pub async fn subscribe_raw(client: &mut Subscriber, request: &str) -> String {
    client.send_text(request).await;
    match client.next().await {
        Received::Control(ServerMessage::Subscribed { epoch, .. }) => {
            epoch.expect("the ack carries the epoch")
        }
        other => panic!("expected an ack, got {other:?}"),
    }
}

/// What a subscriber received.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    Tick(Tick),
    Control(ServerMessage),
    Close(Option<u16>, String),
    /// The connection ended without a close frame.
    Gone,
}

/// A WebSocket subscriber (tokio-tungstenite).
pub struct Subscriber {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Subscriber {
    /// Connects to `/ws` with an optional query string (e.g. `topics=AAPL`).
    pub async fn connect(addr: SocketAddr, query: &str) -> Self {
        let url = if query.is_empty() {
            format!("ws://{addr}/ws")
        } else {
            format!("ws://{addr}/ws?{query}")
        };
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Self { ws }
    }

    /// Connects with a tiny socket receive buffer, so that not reading fills
    /// the broker's side quickly (a slow or stalled consumer).
    pub async fn connect_small_buffer(addr: SocketAddr, query: &str) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let stream = socket.connect(addr).await.unwrap();
        let url = format!("ws://{addr}/ws?{query}");
        let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
        Self { ws }
    }

    /// Sends a text frame.
    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    /// Subscribes and returns the ack's topic list.
    pub async fn subscribe(&mut self, topics: &[&str]) -> Vec<String> {
        let list = topics
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(",");
        self.send_text(&format!(r#"{{"op":"subscribe","topics":[{list}]}}"#))
            .await;
        self.expect_ack().await
    }

    /// Unsubscribes and returns the ack's topic list.
    pub async fn unsubscribe(&mut self, topics: &[&str]) -> Vec<String> {
        let list = topics
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(",");
        self.send_text(&format!(r#"{{"op":"unsubscribe","topics":[{list}]}}"#))
            .await;
        self.expect_ack().await
    }

    /// The next message, skipping pings/pongs; panics after [`WAIT`].
    pub async fn next(&mut self) -> Received {
        self.next_within(WAIT)
            .await
            .expect("nothing received in time")
    }

    /// The next message, or `None` if nothing arrives within `limit`.
    pub async fn next_within(&mut self, limit: Duration) -> Option<Received> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return None,
                Ok(None) | Ok(Some(Err(_))) => return Some(Received::Gone),
                Ok(Some(Ok(msg))) => msg,
            };
            return Some(match msg {
                Message::Binary(bytes) => match decode_server_frame(&bytes).unwrap() {
                    Incoming::Tick(t) => Received::Tick(t.to_tick()),
                    Incoming::Control(c) => Received::Control(c),
                },
                Message::Close(frame) => Received::Close(
                    frame.as_ref().map(|f| u16::from(f.code)),
                    frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                ),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected message {other:?}"),
            });
        }
    }

    /// The next message must be a `subscribed` ack; returns its topics.
    pub async fn expect_ack(&mut self) -> Vec<String> {
        match self.next().await {
            Received::Control(ServerMessage::Subscribed { topics, .. }) => topics,
            other => panic!("expected an ack, got {other:?}"),
        }
    }

    /// The next message must be a tick.
    pub async fn expect_tick(&mut self) -> Tick {
        match self.next().await {
            Received::Tick(t) => t,
            other => panic!("expected a tick, got {other:?}"),
        }
    }

    /// Reads ticks until `want` holds, per symbol, the given last seq; checks
    /// that each symbol's seqs arrive strictly increasing and, with
    /// `gapless`, without gaps. Returns how many ticks were read.
    pub async fn read_until(&mut self, want: &HashMap<String, u64>, gapless: bool) -> usize {
        let mut last: HashMap<String, u64> = HashMap::new();
        let mut count = 0;
        while want
            .iter()
            .any(|(s, seq)| last.get(s).copied().unwrap_or(0) < *seq)
        {
            let t = self.expect_tick().await;
            let prev = last.get(&t.sym).copied().unwrap_or(0);
            assert!(t.seq > prev, "{}: seq {} after {prev}", t.sym, t.seq);
            if gapless && prev != 0 {
                assert_eq!(t.seq, prev + 1, "{}: gap after {prev}", t.sym);
            }
            assert!(want.contains_key(&t.sym), "tick of unsubscribed {}", t.sym);
            last.insert(t.sym.clone(), t.seq);
            count += 1;
        }
        count
    }

    /// Whether a close with `code` arrives within [`WAIT`] (ticks before it
    /// are skipped).
    pub async fn expect_close(&mut self, code: u16) -> String {
        loop {
            match self.next().await {
                Received::Close(Some(c), reason) if c == code => return reason,
                Received::Tick(_) | Received::Control(_) => continue,
                other => panic!("expected close {code}, got {other:?}"),
            }
        }
    }
}

/// The close code as a number.
pub fn code(c: CloseCode) -> u16 {
    u16::from(c)
}

/// A hand-written WebSocket upgrade request for `target` (path and query),
/// with RFC 6455's sample key.
pub fn upgrade_request(addr: SocketAddr, target: &str) -> String {
    handshake::upgrade_request(&addr.to_string(), target)
}

/// Builds one client frame: `first` is the FIN/RSV/opcode byte, sent as is;
/// with `masked == false` the mask bit is left clear, which a server must
/// refuse.
pub fn client_frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = Vec::new();
    put_frame(
        &mut out,
        first,
        masked.then_some([0x37, 0xfa, 0x21, 0x3d]),
        payload,
    );
    out
}

/// A WebSocket client written by hand on a raw socket, for sending what a
/// real client library refuses to send (unmasked frames, reserved bits, bad
/// opcodes) and for never answering pings.
pub struct RawClient {
    stream: TcpStream,
    /// Bytes read but not yet parsed into frames.
    buf: Vec<u8>,
}

/// One frame from the server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerFrame {
    /// Its header.
    pub header: Header,
    /// The (unmasked) payload.
    pub payload: Vec<u8>,
}

impl ServerFrame {
    /// The opcode.
    pub fn opcode(&self) -> u8 {
        self.header.opcode_bits()
    }
}

impl RawClient {
    /// Connects to `/ws?query` (or `/ws`) and completes the handshake,
    /// checking the `101` and the accept key.
    pub async fn connect(addr: SocketAddr, query: &str) -> Self {
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        };
        Self::connect_with(socket.unwrap(), addr, query).await
    }

    /// Like [`RawClient::connect`], over `socket` (bound to a chosen source
    /// address, or with a small receive buffer).
    pub async fn connect_with(
        socket: tokio::net::TcpSocket,
        addr: SocketAddr,
        query: &str,
    ) -> Self {
        let target = if query.is_empty() {
            "/ws".to_owned()
        } else {
            format!("/ws?{query}")
        };
        let mut stream = socket.connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .write_all(upgrade_request(addr, &target).as_bytes())
            .await
            .unwrap();
        let (head, rest) = read_head(&mut stream).await;
        let upgrade = handshake::parse_upgrade_response(head.as_bytes());
        assert_eq!(upgrade, Ok(Some(head.len())), "no upgrade: {head}");
        Self { stream, buf: rest }
    }

    /// Writes raw bytes (one or more frames, or anything else).
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Writes raw bytes; the error if the connection is gone.
    pub async fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// The next frame, or `None` when the connection ends (EOF or reset).
    /// Panics if nothing arrives within [`WAIT`] or a server frame breaks
    /// RFC 6455.
    pub async fn next_frame(&mut self) -> Option<ServerFrame> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(frame) = self.parse_frame() {
                return Some(frame);
            }
            let mut chunk = [0u8; 4096];
            let read = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk))
                .await
                .expect("no frame from the server in time");
            match read {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn parse_frame(&mut self) -> Option<ServerFrame> {
        let (frame, used) = Frame::parse(&self.buf, &Rules::client(u64::MAX))
            .unwrap_or_else(|v| panic!("the server broke RFC 6455: {v}"))?;
        let frame = ServerFrame {
            header: frame.header,
            payload: frame.payload.to_vec(),
        };
        self.buf.drain(..used);
        Some(frame)
    }

    /// Reads until a close frame, skipping data and ping frames; returns its
    /// code and reason. Panics if the connection ends first.
    pub async fn expect_close(&mut self) -> (u16, String) {
        loop {
            let frame = self
                .next_frame()
                .await
                .expect("connection ended without a close frame");
            if frame.opcode() == Opcode::Close as u8 {
                let close = close::parse(&frame.payload)
                    .unwrap_or_else(|v| panic!("bad close payload: {v}"))
                    .expect("close frame without a code");
                return (close.code, close.reason.to_owned());
            }
        }
    }

    /// The connection must end (EOF or reset) within [`WAIT`], with no
    /// further frame.
    pub async fn expect_end(&mut self) {
        if let Some(frame) = self.next_frame().await {
            panic!("expected the connection to end, got {frame:?}");
        }
    }
}

/// Reads an HTTP response head (up to the blank line) within [`WAIT`];
/// returns it and whatever was read past it.
async fn read_head(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut buf = Vec::new();
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return (String::from_utf8(buf).unwrap(), rest);
        }
        assert!(buf.len() < 64 * 1024, "response head too long");
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .expect("no HTTP response in time")
            .unwrap();
        assert!(n > 0, "connection closed before the response head ended");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// An HTTP response read off a raw socket.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header names (lower-cased) and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

/// Sends `request` as is on a fresh connection and reads the response to
/// the end of the connection (the request should say `Connection: close`).
pub async fn http_request(addr: SocketAddr, request: &str) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let (head, mut body) = read_head(&mut stream).await;
    tokio::time::timeout(WAIT, stream.read_to_end(&mut body))
        .await
        .expect("response body not finished in time")
        .unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (name, value) = l.split_once(':').unwrap();
            (name.trim().to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    let response = HttpResponse {
        status,
        headers,
        body,
    };
    if let Some(len) = response.header("content-length") {
        assert_eq!(
            len.parse::<usize>().unwrap(),
            response.body.len(),
            "body length"
        );
    }
    response
}

/// The value of an unlabelled sample on the broker's `/metrics` page.
pub async fn metric(addr: SocketAddr, name: &str) -> f64 {
    let page = http_get(addr, "/metrics").await;
    page.text()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} on /metrics"))
}

/// `GET path` with `Connection: close`.
pub async fn http_get(addr: SocketAddr, path: &str) -> HttpResponse {
    http_request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await
}

/// The `/stats` document as JSON.
pub async fn stats(addr: SocketAddr) -> serde_json::Value {
    let resp = http_get(addr, "/stats").await;
    assert_eq!(resp.status, 200);
    serde_json::from_slice(&resp.body).unwrap()
}

impl Publisher {
    /// The broker must end this publisher's connection (EOF) within
    /// [`WAIT`], sending nothing.
    pub async fn expect_disconnect(&mut self) {
        let mut rest = [0u8; 64];
        let read = tokio::time::timeout(WAIT, self.stream.read(&mut rest))
            .await
            .expect("publisher still connected");
        assert!(matches!(read, Ok(0)), "expected EOF, got {read:?}");
    }
}
