//! The client against a real broker on 127.0.0.1, fed through its TCP
//! ingest so every `seq` is known in advance.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{expect_subscribed, expect_tick, next_event, Publisher, STEP};
use tickcast_broker::{BrokerConfig, FeedConfig, RunningBroker};
use tickcast_client::{Client, ClientError, Event, ReconnectPolicy, ResetReason};

/// A broker with an ingest feed, its WebSocket on `listen`.
async fn ingest_broker(listen: SocketAddr) -> (RunningBroker, Publisher) {
    let cfg = BrokerConfig {
        listen,
        feed: FeedConfig::Ingest("127.0.0.1:0".parse().unwrap()),
        ..common::broker_config(FeedConfig::None)
    };
    let broker = tickcast_broker::start(cfg).await.unwrap();
    let publisher = Publisher::connect(broker.ingest_addr().unwrap()).await;
    (broker, publisher)
}

fn url(broker: &RunningBroker) -> String {
    format!("ws://{}/ws", broker.local_addr())
}

#[tokio::test]
async fn subscribed_symbols_arrive_typed_and_in_order() {
    let (broker, mut publisher) = ingest_broker("127.0.0.1:0".parse().unwrap()).await;
    let mut client = Client::connect(&url(&broker)).await.unwrap();
    client.subscribe(["AAPL"]).await.unwrap();
    expect_subscribed(&mut client, &["AAPL"]).await;

    let interleaved: Vec<(&str, u64)> = (1..=20).flat_map(|s| [("AAPL", s), ("MSFT", s)]).collect();
    publisher.send(&interleaved).await;
    for seq in 1..=20 {
        match next_event(&mut client).await {
            Event::Tick(t) => {
                assert_eq!((t.tick.sym.as_str(), t.tick.seq), ("AAPL", seq));
                assert_eq!(t.tick.volume, 1000 + seq);
                assert_eq!(t.raw, t.tick.to_vec());
                assert!(t.received_ns >= t.tick.ts);
            }
            other => panic!("expected AAPL {seq}, got {other:?}"),
        }
    }
    let stats = client.stats();
    assert_eq!(
        (stats.ticks, stats.gaps, stats.duplicates, stats.errors),
        (20, 0, 0, 0)
    );
    // The first tick of a symbol is not a latency sample (it may be a snapshot).
    assert_eq!(stats.latency.len(), 19);
    client.close().await;
    broker.shutdown().await;
}

#[tokio::test]
async fn unsubscribe_stops_ticks_of_that_symbol() {
    let (broker, mut publisher) = ingest_broker("127.0.0.1:0".parse().unwrap()).await;
    let mut client = Client::connect(&url(&broker)).await.unwrap();
    client.subscribe(["AAPL", "MSFT"]).await.unwrap();
    expect_subscribed(&mut client, &["AAPL", "MSFT"]).await;
    publisher.send(&[("AAPL", 1), ("MSFT", 1)]).await;
    assert_eq!(expect_tick(&mut client).await, ("AAPL".into(), 1));
    assert_eq!(expect_tick(&mut client).await, ("MSFT".into(), 1));

    client.unsubscribe(["MSFT"]).await.unwrap();
    expect_subscribed(&mut client, &["AAPL"]).await;
    publisher
        .send(&[("MSFT", 2), ("AAPL", 2), ("MSFT", 3), ("AAPL", 3)])
        .await;
    assert_eq!(expect_tick(&mut client).await, ("AAPL".into(), 2));
    assert_eq!(expect_tick(&mut client).await, ("AAPL".into(), 3));
    // Nothing else may follow (no MSFT), within a bounded wait.
    let extra = tokio::time::timeout(Duration::from_millis(300), client.next()).await;
    assert!(extra.is_err(), "unexpected event {extra:?}");
    client.close().await;
    broker.shutdown().await;
}

/// A restarted broker is a new stream (a new epoch): the SDK's automatic
/// resume is answered per symbol with a reset (reason `epoch`), then the
/// snapshot or the new ticks, which start the symbol over: no gap, no
/// sequence reset, whatever their `seq`.
#[tokio::test]
async fn broker_restart_reconnects_resubscribes_and_resets_each_symbol() {
    let (broker, mut publisher) = ingest_broker("127.0.0.1:0".parse().unwrap()).await;
    let addr = broker.local_addr();
    let policy = ReconnectPolicy {
        min_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        ..ReconnectPolicy::default()
    };
    let mut client = Client::builder(url(&broker))
        .reconnect(policy)
        .connect()
        .await
        .unwrap();
    client.subscribe(["GAPX", "RSTX"]).await.unwrap();
    expect_subscribed(&mut client, &["GAPX", "RSTX"]).await;
    let before: Vec<(&str, u64)> = (1..=5)
        .map(|s| ("GAPX", s))
        .chain([("RSTX", 1), ("RSTX", 2), ("RSTX", 3)])
        .collect();
    publisher.send(&before).await;
    for (sym, seq) in &before {
        assert_eq!(expect_tick(&mut client).await, (sym.to_string(), *seq));
    }

    drop(publisher);
    broker.shutdown().await;
    match next_event(&mut client).await {
        Event::Reconnecting {
            attempt: 1, cause, ..
        } => {
            assert!(
                matches!(cause, ClientError::ServerClosed { code: 1001, .. }),
                "{cause}"
            );
        }
        other => panic!("expected Reconnecting, got {other:?}"),
    }

    // Same port again; the client keeps retrying until it is there. GAPX
    // 9 is published at once, so the client gets it as the snapshot after
    // its reset (or live after it, if it reconnected first).
    let (broker, mut publisher) = ingest_broker(addr).await;
    publisher.send(&[("GAPX", 9)]).await;
    let mut failed_attempts = 0;
    loop {
        match next_event(&mut client).await {
            Event::Reconnecting { .. } => failed_attempts += 1,
            Event::Reconnected { .. } => break,
            other => panic!("expected Reconnecting/Reconnected, got {other:?}"),
        }
        assert!(failed_attempts < 100, "too many failed attempts");
    }
    expect_subscribed(&mut client, &["GAPX", "RSTX"]).await;
    let mut resets = Vec::new();
    let mut ticks = Vec::new();
    while ticks.len() < 4 {
        match next_event(&mut client).await {
            Event::Reset { sym, reason } => {
                assert_eq!(reason, ResetReason::Epoch, "{sym}");
                assert!(
                    !ticks.iter().any(|(s, _)| *s == sym),
                    "{sym}: reset after a tick"
                );
                resets.push(sym);
            }
            Event::Tick(t) => {
                assert!(
                    resets.contains(&t.tick.sym),
                    "{}: tick before its reset",
                    t.tick.sym
                );
                ticks.push((t.tick.sym, t.tick.seq));
                if ticks.len() == 1 {
                    publisher
                        .send(&[("GAPX", 10), ("RSTX", 1), ("RSTX", 2)])
                        .await;
                }
            }
            other => panic!("expected resets and ticks, got {other:?}"),
        }
    }
    resets.sort();
    assert_eq!(resets, ["GAPX", "RSTX"]);
    let of = |sym: &str| -> Vec<u64> {
        ticks
            .iter()
            .filter(|(s, _)| s == sym)
            .map(|(_, q)| *q)
            .collect()
    };
    assert_eq!((of("GAPX"), of("RSTX")), (vec![9, 10], vec![1, 2]));

    let stats = client.stats();
    assert_eq!(
        (stats.reconnects, stats.gaps, stats.missed, stats.resets),
        (1, 0, 0, 2)
    );
    client.close().await;
    tokio::time::timeout(STEP, broker.shutdown()).await.unwrap();
}

/// A program that stops reading makes the broker conflate; the SDK must
/// report the skipped ticks as gaps, keep per-symbol order, and end on each
/// symbol's latest tick.
#[tokio::test]
async fn conflation_by_the_broker_is_reported_as_gaps() {
    let cfg = BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        feed: FeedConfig::Ingest("127.0.0.1:0".parse().unwrap()),
        limits: tickcast_broker::Limits {
            outbox_bytes: 16 * 1024,
            slow_timeout: Duration::from_secs(60),
            ..common::limits()
        },
        ..common::broker_config(FeedConfig::None)
    };
    let broker = tickcast_broker::start(cfg).await.unwrap();
    let mut publisher = Publisher::connect(broker.ingest_addr().unwrap()).await;
    let syms = ["C0", "C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9"];
    let mut client = Client::builder(url(&broker))
        .event_capacity(16)
        .connect()
        .await
        .unwrap();
    client.subscribe(syms).await.unwrap();
    expect_subscribed(&mut client, &syms).await;

    // Far more than the socket buffers hold, while the program reads nothing.
    let rounds: u64 = 20_000;
    for start in (1..=rounds).step_by(100) {
        let batch: Vec<(&str, u64)> = (start..start + 100)
            .flat_map(|seq| syms.iter().map(move |s| (*s, seq)))
            .collect();
        publisher.send(&batch).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while broker.metrics().ticks_in.get() < rounds * syms.len() as u64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "broker did not take the feed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        broker.metrics().conflated.get() > 0,
        "the broker never conflated"
    );

    let mut last = std::collections::HashMap::new();
    let mut gap_events = 0;
    while syms.iter().any(|s| last.get(*s) != Some(&rounds)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "did not reach the latest ticks"
        );
        match next_event(&mut client).await {
            Event::Tick(t) => {
                let prev = last.insert(t.tick.sym.clone(), t.tick.seq).unwrap_or(0);
                assert!(
                    t.tick.seq > prev,
                    "{}: {} after {prev}",
                    t.tick.sym,
                    t.tick.seq
                );
            }
            Event::Gap { expected, got, .. } => {
                assert!(got > expected);
                gap_events += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let stats = client.stats();
    assert!(
        gap_events > 0 && stats.gaps == gap_events,
        "gaps {gap_events} vs {}",
        stats.gaps
    );
    assert!(stats.missed > 0);
    assert_eq!(stats.duplicates, 0);
    client.close().await;
    broker.shutdown().await;
}
