//! What a hostile peer can make the broker hold, over real sockets: every
//! queue it can fill stays under its bound and the offender is closed;
//! sockets that never finish their handshake are cut at the deadline or
//! refused past the limits; browsers from other sites are refused. In each
//! test a witness subscribed to `*` all along receives every tick in order
//! without a stall (`common/witness.rs`). The process-level attacks (memory
//! given back, descriptors run out) are in `hostile_process.rs`.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::witness::Witness;
use common::{client_frame, ingest_broker, metric, RawClient, WAIT};
use tickcast_broker::config::AllowedOrigins;
use tickcast_broker::{BrokerConfig, FeedConfig, Limits, RunningBroker};
use tickcast_wsframe::{close, Opcode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{timeout, Instant};

/// The default per-connection reply bound (`Limits::max_reply_bytes`).
const REPLY_BOUND: f64 = 64.0 * 1024.0;

/// `n` masked client frames `first` with `payload`, back to back.
fn frames(first: u8, payload: &[u8], n: usize) -> Vec<u8> {
    let one = client_frame(first, payload, true);
    one.repeat(n)
}

/// A raw client whose socket holds little, so not reading fills the
/// broker's side of it at once.
async fn stalled_client(addr: SocketAddr) -> RawClient {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    RawClient::connect_with(socket, addr, "").await
}

/// Sends `chunk` over and over from a client that never reads, until the
/// broker stops taking it (at most 300 chunks), sampling the broker's
/// queued reply bytes; returns the largest sample.
async fn flood(broker: &RunningBroker, chunk: &[u8]) -> f64 {
    let addr = broker.local_addr();
    let mut attacker = stalled_client(addr).await;
    let mut largest: f64 = 0.0;
    for i in 0..300 {
        match timeout(Duration::from_millis(500), attacker.try_send(chunk)).await {
            Ok(Ok(())) => {}
            // The broker stopped reading it (a full socket) or closed it.
            Ok(Err(_)) | Err(_) => break,
        }
        if i % 10 == 0 {
            largest = largest.max(metric(addr, "tickcast_reply_bytes").await);
        }
    }
    largest = largest.max(metric(addr, "tickcast_reply_bytes").await);
    // What reaches it now is the replies its socket held, maybe the 1008,
    // then the end.
    let deadline = Instant::now() + WAIT;
    while let Some(frame) = attacker.next_frame().await {
        assert!(Instant::now() < deadline, "the attacker was never cut off");
        match frame.opcode() {
            op if op == Opcode::Close as u8 => {
                let close = close::parse(&frame.payload).unwrap().unwrap();
                assert_eq!(close.code, 1008);
                assert!(close.reason.contains("unread replies"), "{}", close.reason);
            }
            op => assert!(op == Opcode::Pong as u8 || op == Opcode::Binary as u8),
        }
    }
    largest
}

/// Waits until `/metrics` shows `name` at `want` or more.
async fn wait_metric(addr: SocketAddr, name: &str, want: f64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = metric(addr, name).await;
        if got >= want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} stayed at {got}, wanted {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn floods_of_pings_or_bad_requests_that_never_read_are_closed_at_their_bound() {
    let broker = ingest_broker(common::limits()).await;
    let addr = broker.local_addr();
    let witness = Witness::start(&broker).await;

    // Pings with the largest payload: 127-byte pongs.
    let largest = flood(&broker, &frames(0x89, &[b'p'; 125], 1_000)).await;
    wait_metric(addr, "tickcast_reply_overflows_total", 1.0).await;
    assert!(
        largest <= REPLY_BOUND + 1024.0,
        "{largest} bytes of replies queued"
    );

    // Malformed requests: every one gets an error reply (rate limited or not).
    let largest = flood(&broker, &frames(0x81, b"{\"op\":\"nope\"}", 1_000)).await;
    wait_metric(addr, "tickcast_reply_overflows_total", 2.0).await;
    assert!(
        largest <= REPLY_BOUND + 1024.0,
        "{largest} bytes of replies queued"
    );

    // Once they are gone, nothing stays charged.
    let deadline = Instant::now() + WAIT;
    while metric(addr, "tickcast_reply_bytes").await > 0.0 {
        assert!(Instant::now() < deadline, "replies still charged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    witness.finish().await;
    broker.shutdown().await;
}

/// Reads from `stream` until it ends; returns what came and how long it took.
async fn read_to_end_within(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut got = Vec::new();
    let read = timeout(limit, async {
        let mut chunk = [0u8; 1024];
        while let Ok(n) = stream.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    assert!(read.is_ok(), "still open after {limit:?}");
    (got, started.elapsed())
}

#[tokio::test]
async fn sockets_that_never_finish_their_handshake_are_cut_or_refused() {
    let broker = ingest_broker(Limits {
        handshake_timeout: Duration::from_secs(1),
        max_handshakes: 40,
        ..common::limits()
    })
    .await;
    let addr = broker.local_addr();
    let witness = Witness::start(&broker).await;
    // The witness's HTTP connection has upgraded: it no longer counts.
    let silent_n = 25;
    let mut silent = Vec::new();
    for _ in 0..silent_n {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut dribbling = Vec::new();
    for _ in 0..10 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /ws HTTP/1.1\r\n").await.unwrap();
        dribbling.push(s);
    }
    // Past the limit of 40 unfinished handshakes: refused at once.
    let mut extra = Vec::new();
    for _ in 0..10 {
        extra.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut refused = 0;
    for s in &mut extra {
        let (got, took) = read_to_end_within(s, Duration::from_secs(3)).await;
        if got.starts_with(b"HTTP/1.1 503") {
            refused += 1;
            assert!(took < Duration::from_millis(900), "refusal took {took:?}");
            assert!(String::from_utf8_lossy(&got).contains("handshake"));
        }
    }
    assert!(refused >= 5, "only {refused} of 10 refused past the limit");

    // The dribblers keep sending header lines, never the blank one.
    let dribble = async {
        for _ in 0..15 {
            for s in &mut dribbling {
                let _ = s.write_all(b"X-Slow: 1\r\n").await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let started = Instant::now();
    let (_, cut) = tokio::join!(dribble, async {
        let mut latest = Duration::ZERO;
        for s in &mut silent {
            let (_, took) = read_to_end_within(s, Duration::from_secs(5)).await;
            latest = latest.max(took);
        }
        latest
    });
    assert!(
        cut < Duration::from_secs(4),
        "silent sockets cut after {cut:?}"
    );
    for s in &mut dribbling {
        let (_, took) = read_to_end_within(s, Duration::from_secs(5)).await;
        assert!(started.elapsed() + took < Duration::from_secs(6));
    }
    let timeouts = metric(addr, "tickcast_handshake_timeouts_total").await;
    assert!(
        timeouts >= (silent_n + 10) as f64,
        "{timeouts} handshake timeouts"
    );
    assert!(metric(addr, "tickcast_refused_handshakes_total").await >= 5.0);

    // An idle keep-alive connection is cut at the same deadline.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (got, took) = read_to_end_within(&mut idle, Duration::from_secs(4)).await;
    assert!(got.starts_with(b"HTTP/1.1 200"));
    assert!(took >= Duration::from_millis(900), "cut after {took:?}");

    // And a real client still gets in.
    RawClient::connect(addr, "topics=AAPL").await;
    witness.finish().await;
    broker.shutdown().await;
}

/// A socket bound to `source` (a loopback address), not yet connected.
fn socket_from(source: [u8; 4]) -> TcpSocket {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    socket
}

#[tokio::test]
async fn one_address_may_hold_only_its_share_of_connections() {
    let broker = ingest_broker(Limits {
        max_connections_per_ip: 3,
        ..common::limits()
    })
    .await;
    let addr = broker.local_addr();
    // The witness and the metrics reads come from 127.0.0.1; the greedy
    // host is 127.0.0.2.
    let witness = Witness::start(&broker).await;
    let greedy = [127, 0, 0, 2];
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(RawClient::connect_with(socket_from(greedy), addr, "topics=AAPL").await);
    }
    let mut fourth = socket_from(greedy).connect(addr).await.unwrap();
    let (got, _) = read_to_end_within(&mut fourth, Duration::from_secs(3)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(
        text.contains("too many connections from this address"),
        "{text}"
    );
    assert_eq!(metric(addr, "tickcast_refused_per_ip_total").await, 1.0);

    // One leaves: its place is free again (once its session has ended).
    drop(held.pop());
    let deadline = Instant::now() + WAIT;
    loop {
        let mut s = socket_from(greedy).connect(addr).await.unwrap();
        s.write_all(common::upgrade_request(addr, "/ws").as_bytes())
            .await
            .unwrap();
        let mut head = [0u8; 12];
        let n = timeout(WAIT, s.read(&mut head)).await.unwrap().unwrap_or(0);
        if head[..n].starts_with(b"HTTP/1.1 101") {
            break;
        }
        assert!(Instant::now() < deadline, "the freed place never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    witness.finish().await;
    broker.shutdown().await;
}

/// The status of an upgrade request with `Host: host` and `origin`.
async fn upgrade_status(addr: SocketAddr, host: &str, origin: Option<&str>) -> (u16, String) {
    let mut request = format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    if let Some(origin) = origin {
        request.push_str(&format!("Origin: {origin}\r\n"));
    }
    request.push_str("\r\n");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let _ = timeout(Duration::from_secs(3), async {
        let mut chunk = [0u8; 1024];
        while let Ok(n) = stream.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..n]);
            if got.windows(4).any(|w| w == b"\r\n\r\n") && got.starts_with(b"HTTP/1.1 101") {
                break;
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status: {text:?}"));
    (status, text)
}

async fn broker_with_origins(allowed: AllowedOrigins) -> RunningBroker {
    tickcast_broker::start(BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        feed: FeedConfig::Ingest("127.0.0.1:0".parse().unwrap()),
        limits: common::limits(),
        hdr_log: None,
        allowed_origins: allowed,
        ..Default::default()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn browsers_from_other_sites_are_refused_the_upgrade() {
    let broker = broker_with_origins(AllowedOrigins::SameHost).await;
    let addr = broker.local_addr();
    let witness = Witness::start(&broker).await;
    let port = addr.port();
    let own = format!("127.0.0.1:{port}");
    let cases: [(&str, &str, Option<String>, u16); 8] = [
        ("absent", &own, None, 101),
        (
            "same host",
            &own,
            Some(format!("http://127.0.0.1:{port}")),
            101,
        ),
        (
            "mixed case",
            &format!("LocalHost:{port}"),
            Some(format!("HTTP://localHOST:{port}")),
            101,
        ),
        ("evil", &own, Some("https://evil.example".into()), 403),
        (
            "wrong port",
            &own,
            Some(format!("http://127.0.0.1:{}", port.wrapping_add(1))),
            403,
        ),
        (
            "wrong scheme",
            &own,
            Some(format!("https://127.0.0.1:{port}")),
            403,
        ),
        ("null", &own, Some("null".into()), 403),
        (
            "no port means 80",
            &own,
            Some("http://127.0.0.1".into()),
            403,
        ),
    ];
    for (label, host, origin, want) in &cases {
        let (status, text) = upgrade_status(addr, host, origin.as_deref()).await;
        assert_eq!(status, *want, "{label}: {text}");
        if *want == 403 {
            assert!(text.contains("is not allowed"), "{label}: {text}");
        }
    }
    assert_eq!(metric(addr, "tickcast_refused_origin_total").await, 5.0);
    witness.finish().await;
    broker.shutdown().await;

    let listed = AllowedOrigins::List(vec!["https://dash.example.com".parse().unwrap()]);
    let broker = broker_with_origins(listed).await;
    let addr = broker.local_addr();
    let own = addr.to_string();
    for (label, origin, want) in [
        ("listed", "https://DASH.example.com:443", 101),
        ("own, still", &format!("http://{own}"), 101),
        (
            "listed host, other port",
            "https://dash.example.com:8443",
            403,
        ),
        ("listed host, other scheme", "http://dash.example.com", 403),
        ("evil", "https://evil.example", 403),
    ] {
        let (status, text) = upgrade_status(addr, &own, Some(origin)).await;
        assert_eq!(status, want, "{label}: {text}");
    }
    broker.shutdown().await;

    let broker = broker_with_origins(AllowedOrigins::Any).await;
    let addr = broker.local_addr();
    let (status, text) =
        upgrade_status(addr, &addr.to_string(), Some("https://evil.example")).await;
    assert_eq!(status, 101, "*: {text}");
    broker.shutdown().await;
}

#[tokio::test]
async fn publishers_past_their_limit_are_closed_at_once() {
    let broker = ingest_broker(Limits {
        max_publishers: 2,
        ..common::limits()
    })
    .await;
    let ingest = broker.ingest_addr().unwrap();
    // The witness's publisher is the first.
    let witness = Witness::start(&broker).await;
    let mut second = TcpStream::connect(ingest).await.unwrap();
    let mut third = TcpStream::connect(ingest).await.unwrap();
    let (got, took) = read_to_end_within(&mut third, Duration::from_secs(3)).await;
    assert!(got.is_empty() && took < Duration::from_secs(1), "{took:?}");
    let addr = broker.local_addr();
    assert_eq!(metric(addr, "tickcast_publishers_refused_total").await, 1.0);
    // The second is still connected: nothing to read, no end.
    let mut byte = [0u8; 1];
    assert!(timeout(Duration::from_millis(200), second.read(&mut byte))
        .await
        .is_err());
    witness.wait_for_more(50).await;
    witness.finish().await;
    broker.shutdown().await;
}

#[tokio::test]
async fn past_the_connection_limit_or_with_a_huge_request_head_an_upgrade_is_refused() {
    let broker = ingest_broker(Limits {
        max_connections: 2,
        ..common::limits()
    })
    .await;
    let addr = broker.local_addr();
    // The witness holds the first connection.
    let witness = Witness::start(&broker).await;
    let _second = RawClient::connect(addr, "topics=AAPL").await;
    let (status, text) = upgrade_status(addr, &addr.to_string(), None).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("too many connections"), "{text}");
    assert_eq!(
        metric(addr, "tickcast_connections_refused_total").await,
        1.0
    );

    // A request head past 64 KiB is refused before it is all read.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let padding = "x".repeat(100 * 1024);
    let head = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nX-Pad: {padding}\r\n\r\n");
    let _ = stream.write_all(head.as_bytes()).await;
    let mut got = vec![0u8; 1024];
    let n = timeout(WAIT, stream.read(&mut got))
        .await
        .unwrap()
        .unwrap_or(0);
    got.truncate(n);
    assert!(
        got.starts_with(b"HTTP/1.1 431"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    witness.finish().await;
    broker.shutdown().await;
}
