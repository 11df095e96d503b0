//! Slow and stalled clients: each policy does what it says, memory stays
//! bounded, and nobody else is slowed down.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{ingest_broker, wait_ticks_in, Publisher, Received, Subscriber};
use tickcast_broker::{Limits, SlowConsumerPolicy};
use tickcast_protocol::ServerMessage;

const SYMS: [&str; 10] = ["S0", "S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8", "S9"];

fn limits(policy: SlowConsumerPolicy, slow_timeout: Duration) -> Limits {
    Limits {
        outbox_bytes: 16 * 1024,
        slow_policy: policy,
        slow_timeout,
        ..common::limits()
    }
}

/// Publishes `rounds` ticks of every symbol as fast as the socket takes them.
async fn flood(publisher: &mut Publisher, rounds: usize) {
    for _ in 0..rounds / 100 {
        let batch: Vec<&str> = SYMS
            .iter()
            .copied()
            .cycle()
            .take(SYMS.len() * 100)
            .collect();
        publisher.publish(&batch).await;
    }
}

/// A broker with `policy`, a slow client on `*` that has not read yet, and
/// the publisher that has just sent it `rounds` ticks of every symbol.
async fn flooded_slow_client(
    policy: SlowConsumerPolicy,
    rounds: usize,
) -> (tickcast_broker::RunningBroker, Subscriber, Publisher) {
    let broker = ingest_broker(limits(policy, Duration::from_secs(60))).await;
    let mut slow = Subscriber::connect_small_buffer(broker.local_addr(), "topics=*").await;
    slow.expect_ack().await;
    let mut publisher = Publisher::connect(&broker).await;
    flood(&mut publisher, rounds).await;
    wait_ticks_in(&broker, (rounds * SYMS.len()) as u64).await;
    (broker, slow, publisher)
}

/// Reads ticks until each symbol reached `last`, or until nothing comes for a
/// while; checks per-symbol order. Returns the seqs seen per symbol.
async fn drain(client: &mut Subscriber, last: u64) -> HashMap<String, Vec<u64>> {
    let mut seen: HashMap<String, Vec<u64>> = HashMap::new();
    loop {
        let done = SYMS
            .iter()
            .all(|s| seen.get(*s).and_then(|v| v.last()).copied() == Some(last));
        if done {
            return seen;
        }
        match client.next_within(Duration::from_secs(3)).await {
            Some(Received::Tick(t)) => {
                let list = seen.entry(t.sym.clone()).or_default();
                if let Some(prev) = list.last() {
                    assert!(t.seq > *prev, "{}: seq {} after {prev}", t.sym, t.seq);
                }
                list.push(t.seq);
            }
            None => return seen,
            // What was skipped is told (`continuity.rs` checks the account).
            Some(Received::Control(ServerMessage::Gap { .. })) => {}
            Some(other) => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn conflation_skips_ticks_but_always_ends_on_the_latest() {
    let rounds = 20_000;
    let (broker, mut slow, mut publisher) =
        flooded_slow_client(SlowConsumerPolicy::Conflate, rounds).await;
    assert!(
        broker.metrics().conflated.get() > 0,
        "nothing was conflated"
    );

    // Now read: ordered, with gaps, and the last tick of every symbol is there.
    let seen = drain(&mut slow, rounds as u64).await;
    let received: usize = seen.values().map(Vec::len).sum();
    assert!(
        received < rounds * SYMS.len(),
        "expected gaps, got all {received}"
    );
    for sym in SYMS {
        assert_eq!(
            seen[sym].last(),
            Some(&(rounds as u64)),
            "{sym} did not end on its latest tick"
        );
    }
    // Caught up: back to normal delivery.
    publisher.publish(&SYMS).await;
    let after = drain(&mut slow, rounds as u64 + 1).await;
    assert!(SYMS.iter().all(|s| after[*s] == [rounds as u64 + 1]));
    broker.shutdown().await;
}

/// A client whose socket is full but whose outbox has room loses nothing:
/// what the kernel refused waits, the writer resumes when the socket
/// drains, and every tick arrives once, in order, without gaps.
#[tokio::test]
async fn a_full_socket_with_room_in_the_outbox_loses_nothing() {
    let rounds = 5_000;
    let broker = ingest_broker(Limits {
        outbox_bytes: 64 * 1024 * 1024,
        max_queue_age: None,
        ..common::limits()
    })
    .await;
    let mut slow = Subscriber::connect_small_buffer(broker.local_addr(), "topics=*").await;
    slow.expect_ack().await;
    let mut publisher = Publisher::connect(&broker).await;
    flood(&mut publisher, rounds).await;
    wait_ticks_in(&broker, (rounds * SYMS.len()) as u64).await;
    let want: HashMap<String, u64> = SYMS
        .iter()
        .map(|s| (s.to_string(), rounds as u64))
        .collect();
    let got = slow.read_until(&want, true).await;
    assert_eq!(got, rounds * SYMS.len());
    assert_eq!(broker.metrics().conflated.get(), 0);
    broker.shutdown().await;
}

#[tokio::test]
async fn drop_policy_discards_new_ticks_until_the_client_catches_up() {
    let rounds = 20_000;
    let (broker, mut slow, mut publisher) =
        flooded_slow_client(SlowConsumerPolicy::Drop, rounds).await;
    let dropped = broker.metrics().dropped.get();
    assert!(dropped > 0, "nothing was dropped");
    assert_eq!(broker.metrics().conflated.get(), 0);

    let seen = drain(&mut slow, rounds as u64).await;
    let received: u64 = seen.values().map(|v| v.len() as u64).sum();
    assert_eq!(received + dropped, (rounds * SYMS.len()) as u64);
    publisher.publish(&SYMS).await;
    let after = drain(&mut slow, rounds as u64 + 1).await;
    assert!(SYMS.iter().all(|s| after[*s] == [rounds as u64 + 1]));
    broker.shutdown().await;
}

#[tokio::test]
async fn disconnect_policy_closes_with_1008_slow_consumer() {
    let broker = ingest_broker(limits(
        SlowConsumerPolicy::Disconnect,
        Duration::from_secs(60),
    ))
    .await;
    let mut slow = Subscriber::connect_small_buffer(broker.local_addr(), "topics=*").await;
    slow.expect_ack().await;
    let mut publisher = Publisher::connect(&broker).await;
    flood(&mut publisher, 20_000).await;
    assert_eq!(slow.expect_close(1008).await, "slow consumer");
    assert_eq!(broker.metrics().slow_disconnects.get(), 1);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_client_stalled_past_the_slow_timeout_is_cut() {
    let broker = ingest_broker(limits(
        SlowConsumerPolicy::Conflate,
        Duration::from_millis(500),
    ))
    .await;
    let mut stalled = Subscriber::connect_small_buffer(broker.local_addr(), "topics=*").await;
    stalled.expect_ack().await;
    let mut publisher = Publisher::connect(&broker).await;
    // Keep publishing: once the kernel's buffers are full the outbox stays
    // over its limit, and half a second later the client must be cut.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while broker.metrics().slow_disconnects.get() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stalled client was never cut"
        );
        flood(&mut publisher, 1_000).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(broker.metrics().slow_disconnects.get(), 1);
    // It cannot take a close frame through a full socket, so after the grace
    // period the connection is simply cut; either way it ends.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match stalled.next().await {
            Received::Tick(_) | Received::Control(ServerMessage::Gap { .. }) => {
                assert!(tokio::time::Instant::now() < deadline)
            }
            Received::Close(code, _) => {
                assert_eq!(code, Some(1008));
                break;
            }
            Received::Gone => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    broker.shutdown().await;
}

/// The headline guarantee: a stalled reader does not slow the others down,
/// and its backlog stays bounded.
#[tokio::test]
async fn a_stalled_client_does_not_hurt_healthy_ones() {
    let broker = ingest_broker(limits(
        SlowConsumerPolicy::Conflate,
        Duration::from_secs(60),
    ))
    .await;
    let addr = broker.local_addr();
    let mut stalled = Subscriber::connect_small_buffer(addr, "topics=*").await;
    stalled.expect_ack().await;
    let rounds: u64 = 3_000;
    let mut healthy = Vec::new();
    for _ in 0..5 {
        let mut client = Subscriber::connect(addr, "topics=*").await;
        client.expect_ack().await;
        healthy.push(tokio::spawn(async move {
            // Every tick, gap-free and in order, each within a second of its
            // publication (generous: debug build on a shared 2-core machine).
            let mut last: HashMap<String, u64> = HashMap::new();
            let mut worst_ms = 0u64;
            let total = rounds * SYMS.len() as u64;
            for _ in 0..total {
                let t = client.expect_tick().await;
                let prev = last.insert(t.sym.clone(), t.seq).unwrap_or(0);
                assert_eq!(t.seq, prev + 1, "{} gap", t.sym);
                let age_ms = tickcast_broker::clock::now_ns().saturating_sub(t.ts) / 1_000_000;
                worst_ms = worst_ms.max(age_ms);
            }
            worst_ms
        }));
    }
    let mut publisher = Publisher::connect(&broker).await;
    for _ in 0..rounds / 10 {
        let batch: Vec<&str> = SYMS.iter().copied().cycle().take(SYMS.len() * 10).collect();
        publisher.publish(&batch).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for h in healthy {
        let worst_ms = tokio::time::timeout(Duration::from_secs(30), h)
            .await
            .unwrap()
            .unwrap();
        assert!(
            worst_ms < 1_000,
            "a healthy client saw a tick {worst_ms} ms old"
        );
    }
    // The stalled client's backlog: at most the limit plus one frame per symbol.
    let conflated = broker.metrics().conflated.get();
    assert!(conflated > 0, "the stalled client never filled up");
    let stats = reqwest_free_get(addr, "/connections").await;
    let rows: serde_json::Value = serde_json::from_str(&stats).unwrap();
    let max_queued = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["queued_bytes"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(
        max_queued <= 16 * 1024 + SYMS.len() as u64 * 200,
        "backlog {max_queued} bytes"
    );
    drop(stalled);
    broker.shutdown().await;
}

/// A bare HTTP/1.1 GET over a TcpStream.
async fn reqwest_free_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}
