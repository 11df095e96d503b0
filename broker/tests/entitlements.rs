//! Entitlements over real sockets: users with overlapping `syms` each
//! subscribe to `*` and to named symbols while the feed publishes symbols
//! inside and outside them, new ones included; every subscriber gets
//! exactly its entitled ticks (snapshots included) and not one other.
//! Then a renewal narrows one user and widens another.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::tokens::{self, secret_auth, token};
use common::{limits, Publisher, Received, Subscriber};
use tickcast_broker::{BrokerConfig, FeedConfig};
use tickcast_protocol::{ErrorCode, ServerMessage};

/// Reads ticks until each symbol of `want` reached its seq (gapless, none
/// outside `want`), then checks nothing else arrives for a moment.
async fn exactly(sub: &mut Subscriber, want: &[(&str, u64)], who: &str) {
    let want: HashMap<String, u64> = want.iter().map(|(s, q)| (s.to_string(), *q)).collect();
    if !want.is_empty() {
        sub.read_until(&want, true).await;
    }
    if let Some(extra) = sub.next_within(Duration::from_millis(300)).await {
        panic!("{who}: got {extra:?} past {want:?}");
    }
}

async fn expect_error(sub: &mut Subscriber, want: ErrorCode) -> String {
    match sub.next().await {
        Received::Control(ServerMessage::Error { code, message }) if code == want => message,
        other => panic!("expected {want:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn every_subscriber_gets_exactly_its_entitled_ticks_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let broker = tickcast_broker::start(BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        feed: FeedConfig::Ingest("127.0.0.1:0".parse().unwrap()),
        limits: limits(),
        auth: Some(secret_auth(dir.path())),
        ..Default::default()
    })
    .await
    .unwrap();
    let addr = broker.local_addr();
    let mut publisher =
        Publisher::connect_with_token(&broker, &tokens::publisher("feed", &["*"])).await;
    // Round 1, before anyone subscribes: what the snapshots will carry.
    let first = ["AAPL", "MSFT", "BRK.A", "BRK.B", "GOOG"];
    publisher.publish(&first).await;
    common::wait_ticks_in(&broker, 5).await;

    let alice = token("alice", &["AAPL", "BRK.*"]);
    let bob = token("bob", &["MSFT", "BRK.A"]);
    let carol = token("carol", &["*"]);
    let dave = token("dave", &[]);
    let connect = |t: &str, topics: &str| {
        let query = format!("token={t}&topics={topics}");
        async move { Subscriber::connect(addr, &query).await }
    };
    let mut alice_all = connect(&alice, "*").await;
    let mut alice_named = connect(&alice, "AAPL").await;
    let mut bob_all = connect(&bob, "*").await;
    let mut bob_named = connect(&bob, "BRK.A").await;
    let mut carol_all = connect(&carol, "*").await;
    let mut dave_all = connect(&dave, "*").await;
    for s in [&mut alice_all, &mut bob_all, &mut carol_all, &mut dave_all] {
        assert_eq!(s.expect_ack().await, ["*"]);
    }
    assert_eq!(alice_named.expect_ack().await, ["AAPL"]);
    assert_eq!(bob_named.expect_ack().await, ["BRK.A"]);
    // Their snapshots.
    assert_eq!(alice_named.expect_tick().await.sym, "AAPL");
    assert_eq!(bob_named.expect_tick().await.sym, "BRK.A");

    // Refused whole: one symbol outside the entitlements, nothing applied,
    // the connection stays and the next subscribe works.
    alice_named
        .send_text(r#"{"op":"subscribe","topics":["BRK.B","GOOG"]}"#)
        .await;
    let message = expect_error(&mut alice_named, ErrorCode::NotEntitled).await;
    assert!(
        message.contains("GOOG") && !message.contains("BRK.B"),
        "{message}"
    );
    bob_named
        .send_text(r#"{"op":"subscribe","topics":["AAPL"]}"#)
        .await;
    expect_error(&mut bob_named, ErrorCode::NotEntitled).await;
    // A `?topics=` outside them is refused the same way, after connecting.
    let mut dave_named = connect(&dave, "AAPL").await;
    expect_error(&mut dave_named, ErrorCode::NotEntitled).await;

    // Rounds 2..=20 of every symbol, and two symbols that appear only now:
    // BRK.C (inside alice's pattern) and ZZZ (nobody's but carol's).
    let later = ["AAPL", "MSFT", "BRK.A", "BRK.B", "GOOG", "BRK.C", "ZZZ"];
    for _ in 2..=20 {
        publisher.publish(&later).await;
    }
    common::wait_ticks_in(&broker, 5 + 19 * 7).await;

    // Snapshots (seq 1) and every live tick inside; nothing outside.
    exactly(
        &mut alice_all,
        &[("AAPL", 20), ("BRK.A", 20), ("BRK.B", 20), ("BRK.C", 19)],
        "alice *",
    )
    .await;
    exactly(&mut alice_named, &[("AAPL", 20)], "alice AAPL").await;
    exactly(&mut bob_all, &[("MSFT", 20), ("BRK.A", 20)], "bob *").await;
    exactly(&mut bob_named, &[("BRK.A", 20)], "bob BRK.A").await;
    exactly(
        &mut carol_all,
        &[
            ("AAPL", 20),
            ("MSFT", 20),
            ("BRK.A", 20),
            ("BRK.B", 20),
            ("GOOG", 20),
            ("BRK.C", 19),
            ("ZZZ", 19),
        ],
        "carol *",
    )
    .await;
    exactly(&mut dave_all, &[], "dave *").await;

    // Renewals. alice narrows to AAPL: her `*` keeps only AAPL, and her
    // named BRK.B goes from her list.
    assert_eq!(alice_named.subscribe(&["BRK.B"]).await, ["AAPL", "BRK.B"]);
    exactly(&mut alice_named, &[("BRK.B", 20)], "alice BRK.B snapshot").await;
    let narrow = token("alice", &["AAPL"]);
    for s in [&mut alice_all, &mut alice_named] {
        s.send_text(&format!(r#"{{"op":"auth","token":"{narrow}"}}"#))
            .await;
    }
    assert_eq!(alice_all.expect_ack().await, ["*"]);
    assert_eq!(alice_named.expect_ack().await, ["AAPL"]);
    // bob widens to GOOG: a snapshot of it arrives with the ack.
    let wide = token("bob", &["MSFT", "BRK.A", "GOOG"]);
    bob_all
        .send_text(&format!(r#"{{"op":"auth","token":"{wide}"}}"#))
        .await;
    assert_eq!(bob_all.expect_ack().await, ["*"]);
    let snap = bob_all.expect_tick().await;
    assert_eq!((snap.sym.as_str(), snap.seq), ("GOOG", 20));
    for s in [&mut alice_all, &mut alice_named, &mut bob_all] {
        assert!(matches!(
            s.next().await,
            Received::Control(ServerMessage::Authenticated { .. })
        ));
    }

    publisher.publish(&later).await;
    exactly(&mut alice_all, &[("AAPL", 21)], "alice * narrowed").await;
    exactly(&mut alice_named, &[("AAPL", 21)], "alice named narrowed").await;
    exactly(
        &mut bob_all,
        &[("MSFT", 21), ("BRK.A", 21), ("GOOG", 21)],
        "bob * widened",
    )
    .await;
    assert!(broker.metrics().not_entitled.get() >= 3);
    broker.shutdown().await;
}
