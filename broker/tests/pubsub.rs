//! Subscribe, acknowledge, snapshot, deliver, unsubscribe: the broker's core
//! contract, checked over real sockets with an independent WebSocket client,
//! with one writer shard and with several (connections then land in
//! different shards, and every tick is published to each).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{ingest_broker, limits_with_shards, wait_ticks_in, Publisher, Received, Subscriber};
use tickcast_protocol::control::ResetReason;
use tickcast_protocol::ServerMessage;

fn want(pairs: &[(&str, u64)]) -> HashMap<String, u64> {
    pairs.iter().map(|(s, n)| ((*s).to_owned(), *n)).collect()
}

async fn subscribe_is_acked_with_the_full_list_then_snapshot_then_live(shards: usize) {
    let broker = ingest_broker(limits_with_shards(shards)).await;
    let mut publisher = Publisher::connect(&broker).await;
    publisher.publish(&["AAPL", "AAPL", "AAPL", "MSFT"]).await;
    wait_ticks_in(&broker, 4).await;

    let mut client = Subscriber::connect(broker.local_addr(), "").await;
    assert_eq!(client.subscribe(&["MSFT", "AAPL"]).await, ["AAPL", "MSFT"]);
    // The snapshot: the latest tick of each symbol, right after the ack.
    let mut snapshot: Vec<(String, u64)> = Vec::new();
    for _ in 0..2 {
        let t = client.expect_tick().await;
        snapshot.push((t.sym, t.seq));
    }
    snapshot.sort();
    assert_eq!(snapshot, [("AAPL".to_owned(), 3), ("MSFT".to_owned(), 1)]);

    publisher.publish(&["AAPL"]).await;
    let live = client.expect_tick().await;
    assert_eq!((live.sym.as_str(), live.seq), ("AAPL", 4));

    // A symbol with no ticks yet: acked, no snapshot, delivered once it trades.
    assert_eq!(client.subscribe(&["GOOG"]).await, ["AAPL", "GOOG", "MSFT"]);
    publisher.publish(&["GOOG"]).await;
    let first = client.expect_tick().await;
    assert_eq!((first.sym.as_str(), first.seq), ("GOOG", 1));
    // Subscribing again to what it holds changes nothing and sends no snapshot.
    assert_eq!(client.subscribe(&["AAPL"]).await, ["AAPL", "GOOG", "MSFT"]);
    assert_eq!(client.next_within(Duration::from_millis(200)).await, None);
    broker.shutdown().await;
}

async fn topics_in_the_query_are_subscribed_at_connect(shards: usize) {
    let broker = ingest_broker(limits_with_shards(shards)).await;
    let mut publisher = Publisher::connect(&broker).await;
    publisher.publish(&["IBM"]).await;
    wait_ticks_in(&broker, 1).await;
    let mut client = Subscriber::connect(broker.local_addr(), "topics=IBM,ORCL").await;
    assert_eq!(client.expect_ack().await, ["IBM", "ORCL"]);
    assert_eq!(client.expect_tick().await.seq, 1);
    broker.shutdown().await;
}

async fn every_tick_arrives_once_in_order_for_symbols_and_wildcard(shards: usize) {
    let broker = ingest_broker(limits_with_shards(shards)).await;
    let syms = ["S0", "S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8", "S9"];
    let mut a = Subscriber::connect(broker.local_addr(), "").await;
    a.subscribe(&["S0", "S1"]).await;
    let mut b = Subscriber::connect(broker.local_addr(), "").await;
    b.subscribe(&["S9"]).await;
    let mut all = Subscriber::connect(broker.local_addr(), "").await;
    all.subscribe(&["*"]).await;
    // Both `*` and a symbol: still one copy of each tick.
    let mut both = Subscriber::connect(broker.local_addr(), "").await;
    both.subscribe(&["*", "S3"]).await;

    // 5,000 ticks at a moderate pace (100 per millisecond-ish write).
    let mut publisher = Publisher::connect(&broker).await;
    let rounds = 500;
    let readers = tokio::spawn(async move {
        let per_sym = rounds as u64;
        let every: Vec<(&str, u64)> = syms.iter().map(|s| (*s, per_sym)).collect();
        let na = a
            .read_until(&want(&[("S0", per_sym), ("S1", per_sym)]), true)
            .await;
        let nb = b.read_until(&want(&[("S9", per_sym)]), true).await;
        let nall = all.read_until(&want(&every), true).await;
        let nboth = both.read_until(&want(&every), true).await;
        (na, nb, nall, nboth)
    });
    for _ in 0..rounds {
        publisher.publish(&syms).await;
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let counts = tokio::time::timeout(Duration::from_secs(30), readers)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(counts, (1_000, 500, 5_000, 5_000));
    assert_eq!(broker.metrics().conflated.get(), 0);
    broker.shutdown().await;
}

async fn unsubscribe_stops_delivery(shards: usize) {
    let broker = ingest_broker(limits_with_shards(shards)).await;
    let mut publisher = Publisher::connect(&broker).await;
    let mut client = Subscriber::connect(broker.local_addr(), "").await;
    client.subscribe(&["AAPL", "MSFT"]).await;
    publisher.publish(&["AAPL", "MSFT"]).await;
    client
        .read_until(&want(&[("AAPL", 1), ("MSFT", 1)]), true)
        .await;

    assert_eq!(client.unsubscribe(&["MSFT", "NOT-HELD"]).await, ["AAPL"]);
    for _ in 0..20 {
        publisher.publish(&["MSFT", "AAPL"]).await;
    }
    // Everything after the ack is AAPL only, up to its last seq.
    client.read_until(&want(&[("AAPL", 21)]), true).await;

    client.subscribe(&["*"]).await;
    client.read_until(&want(&[("MSFT", 21)]), false).await; // snapshot of MSFT
    assert_eq!(
        client.unsubscribe(&["*", "AAPL"]).await,
        Vec::<String>::new()
    );
    publisher.publish(&["AAPL", "MSFT"]).await;
    wait_ticks_in(&broker, 44).await;
    assert_eq!(client.next_within(Duration::from_millis(300)).await, None);
    broker.shutdown().await;
}

async fn duplicates_are_dropped_and_a_restarted_feed_is_accepted(shards: usize) {
    let broker = ingest_broker(limits_with_shards(shards)).await;
    let mut client = Subscriber::connect(broker.local_addr(), "topics=AAPL").await;
    client.expect_ack().await;
    let mut publisher = Publisher::connect(&broker).await;
    publisher.publish_seqs("AAPL", &[1, 2, 3]).await;
    client.read_until(&want(&[("AAPL", 3)]), true).await;
    // 2 and 3 again are duplicates; 4 is new.
    publisher.publish_seqs("AAPL", &[2, 3, 4]).await;
    assert_eq!(client.expect_tick().await.seq, 4);
    assert_eq!(broker.metrics().ticks_stale.get(), 2);
    // seq 1 means the feed restarted: accepted, told just before, and
    // numbering goes on from it.
    publisher.publish_seqs("AAPL", &[1, 2]).await;
    match client.next().await {
        Received::Control(ServerMessage::Reset {
            sym,
            reason: ResetReason::FeedRestart,
            epoch: Some(epoch),
        }) => {
            assert_eq!(sym, "AAPL");
            assert!(epoch.ends_with(".1"), "the symbol's own epoch: {epoch}");
        }
        other => panic!("expected the feed restart's reset, got {other:?}"),
    }
    assert_eq!(client.expect_tick().await.seq, 1);
    assert_eq!(client.expect_tick().await.seq, 2);
    assert_eq!(client.next_within(Duration::from_millis(200)).await, None);
    broker.shutdown().await;
}

/// Runs every case above with one writer shard and with four.
macro_rules! at_shard_counts {
    ($($case:ident),* $(,)?) => {
        mod one_shard {
            $(#[tokio::test]
            async fn $case() {
                super::$case(1).await
            })*
        }
        mod four_shards {
            $(#[tokio::test]
            async fn $case() {
                super::$case(4).await
            })*
        }
    };
}

at_shard_counts!(
    subscribe_is_acked_with_the_full_list_then_snapshot_then_live,
    topics_in_the_query_are_subscribed_at_connect,
    every_tick_arrives_once_in_order_for_symbols_and_wildcard,
    unsubscribe_stops_delivery,
    duplicates_are_dropped_and_a_restarted_feed_is_accepted,
);
