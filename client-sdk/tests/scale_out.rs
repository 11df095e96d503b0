//! The SDK over scale-out: an origin publishing to a real `nats-server`,
//! two edges, and a client given both edges' URLs.

mod common;
#[path = "../../broker/tests/common/nats.rs"]
#[allow(dead_code)]
mod nats;

use std::time::Duration;

use common::{expect_subscribed, next_event, Publisher};
use nats::NatsServer;
use tickcast_broker::config::NatsConfig;
use tickcast_broker::{BrokerConfig, FeedConfig, RunningBroker};
use tickcast_client::{Client, Event, ReconnectPolicy};
use tokio::time::Instant;

async fn edge(nats: &NatsServer) -> RunningBroker {
    tickcast_broker::start(BrokerConfig {
        feed: FeedConfig::Nats(NatsConfig::new(&nats.url())),
        ..common::broker_config(FeedConfig::None)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_edge_dies_carries_on_at_the_other_with_every_tick_once() {
    let nats = NatsServer::start();
    let origin = tickcast_broker::start(BrokerConfig {
        feed: FeedConfig::Ingest("127.0.0.1:0".parse().unwrap()),
        nats_out: Some(NatsConfig::new(&nats.url())),
        ..common::broker_config(FeedConfig::None)
    })
    .await
    .unwrap();
    let (a, b) = (edge(&nats).await, edge(&nats).await);
    let mut publisher = Publisher::connect(origin.ingest_addr().unwrap()).await;
    // Until both edges take ticks: their NATS subscriptions are live.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut warm = 0;
    while a.metrics().ticks_in.get() == 0 || b.metrics().ticks_in.get() == 0 {
        assert!(Instant::now() < deadline, "the edges took no tick");
        warm += 1;
        publisher.send(&[("WARM", warm)]).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let urls = [
        format!("ws://{}/ws", a.local_addr()),
        format!("ws://{}/ws", b.local_addr()),
    ];
    let mut client = Client::builder(&urls[0])
        .urls(urls.clone())
        .reconnect(ReconnectPolicy {
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
            ..ReconnectPolicy::default()
        })
        .connect()
        .await
        .unwrap();
    client.subscribe(["AAPL"]).await.unwrap();
    expect_subscribed(&mut client, &["AAPL"]).await;

    // 2,000 ticks, 10 every 5 ms; edge A goes at the 500th received.
    const TOTAL: u64 = 2_000;
    let feed = tokio::spawn(async move {
        for start in (1..=TOTAL).step_by(10) {
            let batch: Vec<(&str, u64)> = (start..start + 10).map(|seq| ("AAPL", seq)).collect();
            publisher.send(&batch).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        publisher
    });
    let (mut seen, mut recovered, mut moved_to) = (Vec::new(), 0, None);
    let mut a = Some(a);
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.last() != Some(&TOTAL) {
        assert!(Instant::now() < deadline, "the feed did not come through");
        match next_event(&mut client).await {
            Event::Tick(t) => {
                seen.push(t.tick.seq);
                if seen.len() == 500 {
                    if let Some(a) = a.take() {
                        tokio::spawn(a.shutdown());
                    }
                }
            }
            Event::Recovered { ticks, .. } => recovered += ticks,
            Event::Reconnected { url, .. } => moved_to = Some(url),
            Event::Reconnecting { .. } | Event::Subscribed(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    drop(feed.await.unwrap());
    assert_eq!(moved_to.as_deref(), Some(urls[1].as_str()));
    assert!(
        seen == (1..=TOTAL).collect::<Vec<_>>(),
        "not every tick exactly once, in order"
    );
    let stats = client.stats();
    assert_eq!(
        (stats.reconnects, stats.gaps, stats.resets, stats.duplicates),
        (1, 0, 0, 0)
    );
    assert_eq!(stats.recovered, recovered);
    eprintln!("moved to the second edge; {recovered} ticks recovered there");
    b.shutdown().await;
    origin.shutdown().await;
}
