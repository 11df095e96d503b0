//! Publishers on a broker that requires tokens: the first record must be a
//! token with a `pub` claim, ticks outside it are skipped and counted, TLS
//! on the ingest port, and an open ingest address refused without a key.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::pki::TestCa;
use common::tokens::{self, secret_auth, token};
use common::{limits, Publisher, Subscriber, WAIT};
use rustls::pki_types::ServerName;
use tickcast_broker::config::TlsFiles;
use tickcast_broker::{BrokerConfig, FeedConfig, RunningBroker, StartError};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

async fn broker(dir: &std::path::Path, tls: Option<TlsFiles>) -> RunningBroker {
    tickcast_broker::start(BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        feed: FeedConfig::Ingest("127.0.0.1:0".parse().unwrap()),
        limits: limits(),
        auth: Some(secret_auth(dir)),
        ingest_tls: tls.is_some(),
        tls,
        ..Default::default()
    })
    .await
    .unwrap()
}

/// Waits until the broker closed `stream` (a dropped publisher; over TLS
/// an alert may come first).
async fn closed_by_broker(stream: &mut TcpStream) {
    let mut sink = Vec::new();
    let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut sink)).await;
    assert!(read.is_ok(), "still open");
    assert!(
        sink.len() < 64,
        "the broker answers a publisher nothing but an alert"
    );
}

/// A raw publisher: one connection, `first` sent as it is, then ticks.
async fn raw_publisher(broker: &RunningBroker, first: &[u8]) -> TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = TcpStream::connect(broker.ingest_addr().unwrap())
        .await
        .unwrap();
    stream.write_all(first).await.unwrap();
    let mut ticks = bytes::BytesMut::new();
    tickcast_protocol::framing::put_tick_record(&mut ticks, &common::tick("AAPL", 1).as_ref());
    let _ = stream.write_all(&ticks).await;
    stream
}

fn auth_record(token: &str) -> Vec<u8> {
    let mut buf = bytes::BytesMut::new();
    let record = tickcast_protocol::control::PublisherRecord::Auth {
        token: token.to_owned(),
    };
    tickcast_protocol::framing::put_record(&mut buf, &record.to_msgpack());
    buf.to_vec()
}

#[tokio::test]
async fn a_publisher_without_a_valid_publishing_token_is_dropped_and_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path(), None).await;
    let mut sub = Subscriber::connect(
        broker.local_addr(),
        &format!("token={}&topics=*", token("carol", &["*"])),
    )
    .await;
    sub.expect_ack().await;
    let wrong_key = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({"sub": "feed", "pub": ["*"], "exp": tokens::now() + 60}),
        &jsonwebtoken::EncodingKey::from_secret(b"not the broker's secret"),
    )
    .unwrap();
    let cases: [(&str, Vec<u8>); 4] = [
        ("no token: ticks first", Vec::new()),
        ("bad signature", auth_record(&wrong_key)),
        (
            "a client token, no `pub`",
            auth_record(&token("alice", &["*"])),
        ),
        (
            "expired",
            auth_record(&tokens::hs256(&serde_json::json!(
            {"sub": "feed", "pub": ["*"], "exp": tokens::now() - 5}))),
        ),
    ];
    for (_what, first) in &cases {
        let mut stream = raw_publisher(&broker, first).await;
        closed_by_broker(&mut stream).await;
    }
    let m = broker.metrics();
    assert_eq!(m.publishers_dropped.get(), cases.len() as u64);
    assert_eq!(m.ticks_in.get(), 0, "nothing of theirs was published");
    assert!(sub.next_within(Duration::from_millis(200)).await.is_none());
    broker.shutdown().await;
}

#[tokio::test]
async fn ticks_outside_the_pub_claim_are_skipped_and_counted_and_the_rest_published() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path(), None).await;
    let mut sub = Subscriber::connect(
        broker.local_addr(),
        &format!("token={}&topics=*", token("carol", &["*"])),
    )
    .await;
    sub.expect_ack().await;
    let mut publisher =
        Publisher::connect_with_token(&broker, &tokens::publisher("feed", &["AAPL", "BRK.*"]))
            .await;
    for _ in 0..3 {
        publisher.publish(&["AAPL", "MSFT", "BRK.A", "GOOG"]).await;
    }
    let want = [("AAPL".to_owned(), 3), ("BRK.A".to_owned(), 3)].into();
    assert_eq!(sub.read_until(&want, true).await, 6);
    assert!(sub.next_within(Duration::from_millis(200)).await.is_none());
    let m = broker.metrics();
    assert_eq!(m.ticks_unauthorized.get(), 6);
    assert_eq!(m.ticks_in.get(), 6);
    assert_eq!(
        m.publishers_dropped.get(),
        0,
        "kept: only its ticks are refused"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn publishers_authenticate_over_tls_on_the_ingest_port() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (cert, key) = ca.server_cert().write(dir.path());
    let broker = broker(dir.path(), Some(TlsFiles { cert, key })).await;
    let ingest: SocketAddr = broker.ingest_addr().unwrap();

    // Plain TCP to the TLS ingest port: dropped, nothing published.
    let mut plain = raw_publisher(&broker, &auth_record(&tokens::publisher("feed", &["*"]))).await;
    closed_by_broker(&mut plain).await;
    assert_eq!(broker.metrics().tls_handshake_failures.get(), 1);

    let socket = TcpStream::connect(ingest).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(ca.client_config())
        .connect(ServerName::try_from("localhost").unwrap(), socket)
        .await
        .unwrap();
    let mut publisher = Publisher::over(Box::new(tls));
    publisher
        .authenticate(&tokens::publisher("feed", &["*"]))
        .await;
    publisher.publish(&["AAPL"]).await;
    common::wait_ticks_in(&broker, 1).await;
    broker.shutdown().await;
}

#[tokio::test]
async fn an_ingest_address_others_can_reach_needs_a_jwt_key() {
    // Refused before anything is bound on it.
    let refused = tickcast_broker::start(BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        feed: FeedConfig::Ingest("0.0.0.0:0".parse().unwrap()),
        limits: limits(),
        ..Default::default()
    })
    .await;
    let Err(err @ StartError::InsecureIngest(_)) = refused else {
        panic!("an open ingest port without a key must be refused");
    };
    assert!(err.to_string().contains("--ingest-insecure"), "{err}");
}
