//! TLS on the client port, over real sockets with certificates made at test
//! time (`common/pki.rs`): wss delivery in batches, a reader that stalls
//! and drains, https routes, plain HTTP sent to the TLS port, handshake
//! deadlines, an untrusted client, and reloading the certificate while
//! clients stay connected (library call and SIGHUP to the real binary).

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::pki::{tls_connect, ServerCert, TestCa};
use common::{limits, Publisher, Subscriber, WAIT};
use rustls::pki_types::CertificateDer;
use tickcast_broker::config::TlsFiles;
use tickcast_broker::{BrokerConfig, FeedConfig, Limits, RunningBroker};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::MaybeTlsStream;

/// A TLS broker fed by a TCP ingest listener, its files in `dir`.
async fn tls_broker(dir: &Path, cert: &ServerCert, limits: Limits) -> RunningBroker {
    let (cert, key) = cert.write(dir);
    tickcast_broker::start(BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        feed: FeedConfig::Ingest("127.0.0.1:0".parse().unwrap()),
        limits,
        tls: Some(TlsFiles { cert, key }),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// A wss subscriber (tokio-tungstenite over our TLS connection).
async fn wss(addr: SocketAddr, ca: &TestCa, query: &str) -> (Subscriber, CertificateDer<'static>) {
    let socket = TcpStream::connect(addr).await.unwrap();
    wss_on(socket, addr, ca, query).await
}

async fn wss_on(
    socket: TcpStream,
    addr: SocketAddr,
    ca: &TestCa,
    query: &str,
) -> (Subscriber, CertificateDer<'static>) {
    let tls = tls_connect(ca.client_config(), socket).await.unwrap();
    let presented = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let url = format!("wss://localhost:{}/ws?{query}", addr.port());
    let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Rustls(tls))
        .await
        .unwrap();
    (Subscriber { ws }, presented)
}

/// A GET over TLS; the status line and body.
async fn https_get(addr: SocketAddr, ca: &TestCa, path: &str) -> (String, String) {
    let socket = TcpStream::connect(addr).await.unwrap();
    let mut tls = tls_connect(ca.client_config(), socket).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, tls.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    )
}

#[tokio::test]
async fn wss_delivers_every_tick_in_batches_and_https_serves_the_routes() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let broker = tls_broker(dir.path(), &ca.server_cert(), limits()).await;
    let addr = broker.local_addr();
    let (mut sub, _) = wss(addr, &ca, "topics=AAPL,MSFT").await;
    assert_eq!(sub.expect_ack().await, ["AAPL", "MSFT"]);

    let mut publisher = Publisher::connect(&broker).await;
    for _ in 0..1_000 {
        publisher.publish(&["AAPL", "MSFT"]).await;
    }
    let want = HashMap::from([("AAPL".to_owned(), 1_000), ("MSFT".to_owned(), 1_000)]);
    assert_eq!(sub.read_until(&want, true).await, 2_000);
    let m = broker.metrics();
    assert!(
        m.writes.get() < m.frames_out.get() / 4,
        "frames are batched into the TLS stream: {} writes for {} frames",
        m.writes.get(),
        m.frames_out.get()
    );

    let (status, body) = https_get(addr, &ca, "/healthz").await;
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 200 OK", "ok\n")
    );
    let (status, body) = https_get(addr, &ca, "/symbols").await;
    assert!(status.ends_with("200 OK"), "{status}");
    assert!(body.contains("\"AAPL\""), "{body}");
    broker.shutdown().await;
}

/// The broker's own page, served over https, has an `https://` origin: a
/// browser on it may upgrade (it was refused as not the broker's own while
/// the check assumed `http`), one claiming the `http://` origin of the
/// same host and port may not.
#[tokio::test]
async fn the_broker_s_own_https_page_may_upgrade_and_its_http_twin_may_not() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let broker = tls_broker(dir.path(), &ca.server_cert(), limits()).await;
    let addr = broker.local_addr();
    for (scheme, ok) in [("https", true), ("http", false)] {
        let socket = TcpStream::connect(addr).await.unwrap();
        let tls = tls_connect(ca.client_config(), socket).await.unwrap();
        let mut req = format!("wss://localhost:{}/ws", addr.port())
            .into_client_request()
            .unwrap();
        let origin = format!("{scheme}://localhost:{}", addr.port());
        req.headers_mut().insert("origin", origin.parse().unwrap());
        let res = tokio_tungstenite::client_async(req, MaybeTlsStream::Rustls(tls)).await;
        match res {
            Ok(_) => assert!(ok, "{origin} was let in"),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert!(!ok, "{origin}: {}", resp.status());
                assert_eq!(resp.status(), 403);
            }
            Err(e) => panic!("{origin}: {e}"),
        }
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn a_reader_that_stalls_over_tls_gets_everything_once_it_reads_again() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    // An outbox far above what is published: nothing is conflated, so the
    // test sees every tick after the socket, and rustls' buffer, filled.
    let broker = tls_broker(
        dir.path(),
        &ca.server_cert(),
        Limits {
            outbox_bytes: 64 << 20,
            max_queue_age: None,
            ..limits()
        },
    )
    .await;
    let addr = broker.local_addr();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let socket = socket.connect(addr).await.unwrap();
    let (mut sub, _) = wss_on(socket, addr, &ca, "topics=AAPL").await;
    sub.expect_ack().await;

    let mut publisher = Publisher::connect(&broker).await;
    const TICKS: u64 = 100_000;
    for _ in 0..TICKS {
        publisher.publish(&["AAPL"]).await;
    }
    common::wait_ticks_in(&broker, TICKS).await;
    // Not reading for a while: the socket fills, the rest waits.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        broker.metrics().frames_out.get() < TICKS,
        "the stalled socket cannot have taken everything"
    );
    let want = HashMap::from([("AAPL".to_owned(), TICKS)]);
    assert_eq!(sub.read_until(&want, true).await, TICKS as usize);
    assert_eq!(broker.metrics().conflated.get(), 0);
    broker.shutdown().await;
}

#[tokio::test]
async fn plain_http_sent_to_the_tls_port_gets_a_400_and_a_clean_close() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let broker = tls_broker(dir.path(), &ca.server_cert(), limits()).await;
    let mut plain = TcpStream::connect(broker.local_addr()).await.unwrap();
    plain
        .write_all(b"GET /ws HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    // read_to_end returns Ok only on a FIN: a reset would be an error.
    tokio::time::timeout(WAIT, plain.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    assert!(text.contains("use https:// or wss://"), "{text}");
    assert_eq!(broker.metrics().tls_not_tls.get(), 1);
    // And a plain WebSocket client gets a failed handshake, not a hang.
    let url = format!("ws://{}/ws", broker.local_addr());
    assert!(tokio_tungstenite::connect_async(url).await.is_err());
    broker.shutdown().await;
}

#[tokio::test]
async fn silent_and_unfinished_tls_handshakes_are_closed_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let broker = tls_broker(
        dir.path(),
        &ca.server_cert(),
        Limits {
            handshake_timeout: Duration::from_millis(400),
            ..limits()
        },
    )
    .await;
    let addr = broker.local_addr();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut partial = TcpStream::connect(addr).await.unwrap();
    // The start of a ClientHello record, then nothing.
    partial.write_all(&[0x16, 0x03, 0x01, 0x02]).await.unwrap();
    let started = Instant::now();
    for stream in [&mut silent, &mut partial] {
        let mut sink = Vec::new();
        let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut sink)).await;
        assert!(read.is_ok(), "closed, not left open");
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let m = broker.metrics();
    assert_eq!(m.tls_handshake_failures.get(), 2);
    assert_eq!(m.handshake_timeouts.get(), 2);
    // The port still serves a real client.
    let (mut sub, _) = wss(addr, &ca, "topics=AAPL").await;
    sub.expect_ack().await;
    broker.shutdown().await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_fails_its_handshake_only() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let broker = tls_broker(dir.path(), &ca.server_cert(), limits()).await;
    let addr = broker.local_addr();
    let stranger = TestCa::new();
    let socket = TcpStream::connect(addr).await.unwrap();
    let refused = tls_connect(stranger.client_config(), socket).await;
    assert!(refused.is_err(), "an unknown CA must not verify");
    let (mut sub, _) = wss(addr, &ca, "topics=AAPL").await;
    sub.expect_ack().await;
    broker.shutdown().await;
}

#[tokio::test]
async fn a_reload_serves_the_new_certificate_to_new_handshakes_and_keeps_connections() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let first = ca.server_cert();
    let broker = tls_broker(dir.path(), &first, limits()).await;
    let addr = broker.local_addr();
    let (mut old, presented) = wss(addr, &ca, "topics=AAPL").await;
    assert_eq!(presented, first.leaf_der);
    old.expect_ack().await;

    let second = ca.server_cert();
    second.write(dir.path());
    broker.reload_tls().unwrap();
    let (mut new, presented) = wss(addr, &ca, "topics=AAPL").await;
    assert_eq!(
        presented, second.leaf_der,
        "new handshakes use the new pair"
    );
    new.expect_ack().await;

    // A bad pair (the first key with the second certificate) is refused
    // and the second pair stays.
    std::fs::write(dir.path().join("key.pem"), &first.key_pem).unwrap();
    let err = broker.reload_tls().unwrap_err().to_string();
    assert!(err.contains("cannot be used together"), "{err}");
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    assert!(broker.reload_tls().is_err());
    let (_, presented) = wss(addr, &ca, "topics=AAPL").await;
    assert_eq!(presented, second.leaf_der);

    // The connection made before the reload still gets its ticks.
    let mut publisher = Publisher::connect(&broker).await;
    publisher.publish(&["AAPL"]).await;
    assert_eq!(old.expect_tick().await.seq, 1);
    assert_eq!(new.expect_tick().await.seq, 1);
    broker.shutdown().await;
}

/// The real binary: `--tls-cert`/`--tls-key`, and SIGHUP reloading them
/// while a client stays connected and keeps receiving the simulator's ticks.
#[tokio::test]
async fn sighup_reloads_the_binary_s_certificate_without_dropping_clients() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let first = ca.server_cert();
    let (cert, key) = first.write(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut child = Killed(
        std::process::Command::new(env!("CARGO_BIN_EXE_tickcast-broker"))
            .args([
                "--listen",
                &addr.to_string(),
                "--symbols",
                "5",
                "--rate",
                "500",
            ])
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "the broker did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (mut old, presented) = wss(addr, &ca, "topics=*").await;
    assert_eq!(presented, first.leaf_der);
    old.expect_ack().await;

    let second = ca.server_cert();
    second.write(dir.path());
    let pid = child.0.id().to_string();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(hup.success());
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, presented) = wss(addr, &ca, "").await;
        if presented == second.leaf_der {
            break;
        }
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The first client is still connected and still fed.
    for _ in 0..20 {
        old.expect_tick().await;
    }
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(term.success());
    let status = tokio::task::spawn_blocking(move || child.0.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
}

/// A child process, killed on drop if a test fails before it exits.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
