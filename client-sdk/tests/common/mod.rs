//! Helpers shared by the integration tests: a scripted WebSocket server for
//! misbehaving-server cases, and tick builders.

#![allow(dead_code)] // each test binary uses its own subset

use std::net::SocketAddr;
use std::time::Duration;

use fastwebsockets::{Frame, OpCode, WebSocketError};
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tickcast_client::{Client, Event};
use tickcast_protocol::{ClientRequest, Tick};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Longest any single wait in a test may take.
pub const STEP: Duration = Duration::from_secs(5);

/// A tick of `sym` with sequence `seq`, stamped now.
pub fn tick(sym: &str, seq: u64) -> Tick {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    Tick {
        sym: sym.into(),
        seq,
        ts,
        bid: 100.0,
        ask: 100.5,
        last: 100.25,
        bid_size: 10,
        ask_size: 20,
        last_size: 5,
        volume: 1000 + seq,
        orig_ts: None,
    }
}

/// Starts a WebSocket server on 127.0.0.1 that accepts one connection, waits
/// for the client's first request, reports it on the returned channel, then
/// sends `script` (opcode, payload) frame by frame and keeps the connection
/// open until the client closes it.
pub async fn scripted_server(
    script: Vec<(OpCode, Vec<u8>)>,
) -> (SocketAddr, mpsc::UnboundedReceiver<ClientRequest>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (requests_tx, requests) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let script = script.clone();
            let requests_tx = requests_tx.clone();
            async move {
                let (response, upgrade) = fastwebsockets::upgrade::upgrade(&mut req)?;
                tokio::spawn(async move {
                    let mut ws = upgrade.await.unwrap();
                    let first = ws.read_frame().await.unwrap();
                    assert_eq!(first.opcode, OpCode::Binary, "requests go as binary");
                    requests_tx
                        .send(ClientRequest::from_msgpack(&first.payload).unwrap())
                        .unwrap();
                    for (opcode, payload) in script {
                        let frame = Frame::new(true, opcode, None, payload.into());
                        ws.write_frame(frame).await.unwrap();
                    }
                    // Keep the connection until the client goes away.
                    while let Ok(frame) = ws.read_frame().await {
                        if frame.opcode == OpCode::Close {
                            break;
                        }
                    }
                });
                Ok::<_, WebSocketError>(response)
            }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades()
            .await;
    });
    (addr, requests)
}

/// The next event, failing the test after [`STEP`].
pub async fn next_event(client: &mut Client) -> Event {
    tokio::time::timeout(STEP, client.next())
        .await
        .expect("timed out waiting for an event")
        .expect("the event stream ended")
}

/// A publisher connected to a broker's TCP ingest.
pub struct Publisher {
    stream: tokio::net::TcpStream,
    record: Vec<u8>,
}

impl Publisher {
    /// Connects to the ingest listener at `addr`.
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = tokio::time::timeout(STEP, tokio::net::TcpStream::connect(addr))
            .await
            .unwrap()
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            record: Vec::new(),
        }
    }

    /// Publishes one tick per `(sym, seq)`, in order, as one write.
    pub async fn send(&mut self, ticks: &[(&str, u64)]) {
        use tokio::io::AsyncWriteExt;
        self.record.clear();
        for &(sym, seq) in ticks {
            tickcast_protocol::framing::put_tick_record(&mut self.record, &tick(sym, seq).as_ref());
        }
        self.stream.write_all(&self.record).await.unwrap();
    }
}

/// Reads events until the broker acknowledges exactly `topics`; any tick or
/// error before that fails the test.
pub async fn expect_subscribed(client: &mut Client, topics: &[&str]) {
    match next_event(client).await {
        Event::Subscribed(list) => assert_eq!(list, topics),
        other => panic!("expected Subscribed({topics:?}), got {other:?}"),
    }
}

/// The next event, which must be a tick; returns its `(sym, seq)`.
pub async fn expect_tick(client: &mut Client) -> (String, u64) {
    match next_event(client).await {
        Event::Tick(t) => (t.tick.sym, t.tick.seq),
        other => panic!("expected a tick, got {other:?}"),
    }
}

/// A broker configuration for tests: loopback, an ephemeral port, the feed
/// given, and the default limits with two writer shards (pinned, so the
/// tests run the same on any number of cores).
pub fn broker_config(feed: tickcast_broker::FeedConfig) -> tickcast_broker::BrokerConfig {
    tickcast_broker::BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        feed,
        limits: limits(),
        hdr_log: None,
        allowed_origins: Default::default(),
        ..Default::default()
    }
}

/// The default limits with two writer shards.
pub fn limits() -> tickcast_broker::Limits {
    tickcast_broker::Limits {
        writer_shards: 2,
        ..tickcast_broker::Limits::default()
    }
}
