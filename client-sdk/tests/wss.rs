//! The SDK and `tickcast-sub` against a broker serving TLS and requiring
//! tokens: `wss://` with a CA file, the token on (re)connection, renewal
//! before expiry, and the errors when the token or the certificate is wrong.

mod common;

#[path = "../../broker/tests/common/pki.rs"]
mod pki;
#[path = "../../broker/tests/common/tokens.rs"]
mod tokens;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use feed_simulator::market::MarketConfig;
use tickcast_broker::config::TlsFiles;
use tickcast_broker::{BrokerConfig, FeedConfig, RunningBroker};
use tickcast_client::{Client, ClientError, Event, ReconnectPolicy};

/// A broker with TLS (a certificate for `localhost`) and HS256 tokens, fed
/// by its simulator; the CA file its clients trust.
async fn secure_broker(dir: &Path) -> (RunningBroker, PathBuf) {
    let ca = pki::TestCa::new();
    let (cert, key) = ca.server_cert().write(dir);
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.root_pem()).unwrap();
    let broker = tickcast_broker::start(BrokerConfig {
        feed: FeedConfig::Sim(MarketConfig {
            symbols: 20,
            rate: 1000.0,
            seed: 7,
            open_burst: false,
            session: false,
        }),
        tls: Some(TlsFiles { cert, key }),
        auth: Some(tokens::secret_auth(dir)),
        ..common::broker_config(FeedConfig::None)
    })
    .await
    .unwrap();
    (broker, ca_file)
}

fn url(broker: &RunningBroker) -> String {
    format!("wss://localhost:{}/ws", broker.local_addr().port())
}

#[tokio::test]
async fn wss_with_a_ca_file_and_a_token_renewed_before_it_expires_keeps_receiving() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, ca) = secure_broker(dir.path()).await;
    let short = tokens::hs256(&tokens::claims("alice", &["*"], 3));
    let expires = tokens::now() + 3;
    let renewals = Arc::new(AtomicU32::new(0));
    let counted = renewals.clone();
    let mut client = Client::builder(url(&broker))
        .ca_file(&ca)
        .token(short)
        .token_renewal(move || {
            counted.fetch_add(1, Ordering::Relaxed);
            async { Some(tokens::token("alice", &["*"])) }
        })
        .connect()
        .await
        .unwrap();
    client.subscribe(["*"]).await.unwrap();
    let (mut authenticated, mut after_expiry) = (false, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    while tokio::time::Instant::now() < deadline {
        let Ok(Some(event)) = tokio::time::timeout(common::STEP, client.next()).await else {
            panic!("the stream stalled");
        };
        match event {
            Event::Tick(_) if tokens::now() > expires + 1 => after_expiry += 1,
            Event::Tick(_) | Event::Subscribed(_) => {}
            Event::Authenticated { exp } => {
                assert!(exp > expires + 500);
                authenticated = true;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(authenticated, "the broker took the renewed token");
    assert!(
        after_expiry > 100,
        "{after_expiry} ticks after the first token's expiry"
    );
    assert_eq!(renewals.load(Ordering::Relaxed), 1);
    assert_eq!(client.stats().reconnects, 0);
    broker.shutdown().await;
}

#[tokio::test]
async fn an_expired_token_ends_the_connection_with_4001_without_renewal() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, ca) = secure_broker(dir.path()).await;
    let mut client = Client::builder(url(&broker))
        .ca_file(&ca)
        .token(tokens::hs256(&tokens::claims("alice", &["*"], 2)))
        .reconnect(ReconnectPolicy::never())
        .connect()
        .await
        .unwrap();
    client.subscribe(["AAPL"]).await.unwrap();
    let mut expired = false;
    loop {
        let Ok(Some(event)) = tokio::time::timeout(common::STEP, client.next()).await else {
            panic!("no end in sight");
        };
        match event {
            Event::Error(ClientError::Refused { code, .. }) => {
                assert_eq!(code, tickcast_client::ErrorCode::TokenExpired);
                expired = true;
            }
            Event::Error(ClientError::GaveUp { cause, .. }) => {
                assert!(
                    matches!(*cause, ClientError::ServerClosed { code: 4001, .. }),
                    "{cause}"
                );
                break;
            }
            _ => {}
        }
    }
    assert!(expired);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_missing_token_or_an_untrusted_certificate_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, ca) = secure_broker(dir.path()).await;
    let refused = Client::builder(url(&broker)).ca_file(&ca).connect().await;
    let Err(ClientError::Handshake { source, .. }) = refused else {
        panic!("no token must be refused at the upgrade");
    };
    assert!(source.to_string().contains("401"), "{source}");

    let stranger = dir.path().join("stranger.pem");
    std::fs::write(&stranger, pki::TestCa::new().root_pem()).unwrap();
    let untrusted = Client::builder(url(&broker))
        .ca_file(&stranger)
        .token(tokens::token("alice", &["*"]))
        .connect()
        .await;
    assert!(
        matches!(&untrusted, Err(ClientError::Tls(m)) if m.contains("handshake")),
        "{:?}",
        untrusted.err()
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn tickcast_sub_takes_a_token_file_and_a_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, ca) = secure_broker(dir.path()).await;
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{}\n", tokens::token("alice", &["*"]))).unwrap();
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_tickcast-sub"))
        .arg("--token-file")
        .arg(&token_file)
        .arg("--ca")
        .arg(&ca)
        .args([&url(&broker), "*", "--count", "5", "--json"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(common::STEP, run)
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 5);
    broker.shutdown().await;
}
