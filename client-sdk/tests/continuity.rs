//! Continuity against a real broker on 127.0.0.1: automatic resume across a
//! network cut (a proxy in the test drops the connection abruptly while the
//! feed goes on), a feed restart, and `max_rate`.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::{expect_subscribed, next_event, Publisher, STEP};
use tickcast_broker::{BrokerConfig, FeedConfig, RunningBroker};
use tickcast_client::{Client, Event, GapReason, ReconnectPolicy, ResetReason};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

async fn ingest_broker() -> (RunningBroker, Publisher) {
    let cfg = BrokerConfig {
        feed: FeedConfig::Ingest("127.0.0.1:0".parse().unwrap()),
        ..common::broker_config(FeedConfig::None)
    };
    let broker = tickcast_broker::start(cfg).await.unwrap();
    let publisher = Publisher::connect(broker.ingest_addr().unwrap()).await;
    (broker, publisher)
}

fn quick_reconnect() -> ReconnectPolicy {
    ReconnectPolicy {
        min_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
        ..ReconnectPolicy::default()
    }
}

/// A TCP proxy to `upstream` that can cut every connection through it at
/// once, abruptly: both sockets dropped, the client's with a zero linger so
/// it gets a reset rather than a clean end. New connections are served.
struct Proxy {
    addr: SocketAddr,
    cuts: watch::Sender<u64>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cuts, _) = watch::channel(0u64);
        let watcher = cuts.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut cut = watcher.subscribe();
                cut.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(mut broker) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut broker) => {}
                        _ = cut.changed() => {
                            // An RST to the client, mid-stream.
                            let _ = socket_linger_zero(&client);
                        }
                    }
                });
            }
        });
        Self { addr, cuts }
    }

    fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Cuts every connection through the proxy now.
    fn cut(&self) {
        self.cuts.send_modify(|n| *n += 1);
    }
}

#[allow(deprecated)] // tokio's set_linger: deprecated for blocking on drop, which a zero linger never does
fn socket_linger_zero(stream: &TcpStream) -> std::io::Result<()> {
    stream.set_linger(Some(Duration::ZERO))
}

/// What a client saw of one symbol: its tick `seq`s in order.
type Seen = BTreeMap<String, Vec<u64>>;

#[tokio::test]
async fn a_network_cut_is_resumed_with_every_tick_exactly_once() {
    let (broker, mut publisher) = ingest_broker().await;
    let proxy = Proxy::start(broker.local_addr()).await;
    let syms = ["CUTA", "CUTB"];
    let mut client = Client::builder(proxy.url())
        .reconnect(quick_reconnect())
        .connect()
        .await
        .unwrap();
    client.subscribe(syms).await.unwrap();
    expect_subscribed(&mut client, &syms).await;

    // 2 × 3,000 ticks in 10-tick batches every 5 ms (about 1.5 s), well
    // inside the broker's 1,000-tick history per symbol for a reconnection
    // of a few tens of ms.
    let total: u64 = 3_000;
    let feed = tokio::spawn(async move {
        for start in (1..=total).step_by(10) {
            let batch: Vec<(&str, u64)> = (start..start + 10)
                .flat_map(|seq| syms.iter().map(move |s| (*s, seq)))
                .collect();
            publisher.send(&batch).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        publisher
    });

    let mut seen = Seen::new();
    let mut recovered = Vec::new();
    let mut cut = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while syms
        .iter()
        .any(|s| seen.get(*s).and_then(|v| v.last()) != Some(&total))
    {
        assert!(Instant::now() < deadline, "the feed did not come through");
        match next_event(&mut client).await {
            Event::Tick(t) => {
                let got = seen.entry(t.tick.sym.clone()).or_default();
                got.push(t.tick.seq);
                if !cut && got.len() == 500 {
                    proxy.cut();
                    cut = true;
                }
            }
            Event::Recovered { sym, ticks } => recovered.push((sym, ticks)),
            Event::Reconnecting { .. } | Event::Reconnected { .. } | Event::Subscribed(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(cut, "the stream ended before the cut");
    let full: Vec<u64> = (1..=total).collect();
    for sym in syms {
        assert!(
            seen[sym] == full,
            "{sym}: not every tick exactly once, in order"
        );
    }
    let mut resumed: Vec<&str> = recovered.iter().map(|(s, _)| s.as_str()).collect();
    resumed.sort_unstable();
    assert_eq!(resumed, syms, "each symbol is resumed once");
    let stats = client.stats();
    assert_eq!(
        (stats.reconnects, stats.gaps, stats.resets, stats.duplicates),
        (1, 0, 0, 0)
    );
    assert_eq!(stats.recoveries, 2);
    assert!(stats.recovered > 0, "the cut lost nothing to recover");
    assert_eq!(
        stats.recovered,
        recovered.iter().map(|(_, n)| n).sum::<u64>()
    );
    drop(feed.await.unwrap());
    client.close().await;
    broker.shutdown().await;
}

#[tokio::test]
async fn a_feed_restart_is_a_reset_and_its_own_epoch_resumes() {
    let (broker, mut publisher) = ingest_broker().await;
    let proxy = Proxy::start(broker.local_addr()).await;
    let mut client = Client::builder(proxy.url())
        .reconnect(quick_reconnect())
        .connect()
        .await
        .unwrap();
    client.subscribe(["RSTA"]).await.unwrap();
    expect_subscribed(&mut client, &["RSTA"]).await;
    publisher
        .send(&[
            ("RSTA", 1),
            ("RSTA", 2),
            ("RSTA", 3),
            ("RSTA", 1),
            ("RSTA", 2),
        ])
        .await;
    let mut events = Vec::new();
    for _ in 0..6 {
        events.push(match next_event(&mut client).await {
            Event::Tick(t) => format!("tick {}", t.tick.seq),
            Event::Reset {
                reason: ResetReason::FeedRestart,
                ..
            } => "reset feed_restart".to_owned(),
            other => panic!("unexpected {other:?}"),
        });
    }
    assert_eq!(
        events,
        [
            "tick 1",
            "tick 2",
            "tick 3",
            "reset feed_restart",
            "tick 1",
            "tick 2"
        ]
    );

    // Resuming after the restart needs the symbol's own epoch, which the
    // SDK took from the reset: recovered, not another reset.
    proxy.cut();
    loop {
        match next_event(&mut client).await {
            Event::Reconnecting { .. } | Event::Reconnected { .. } | Event::Subscribed(_) => {}
            Event::Recovered { sym, ticks: 0 } if sym == "RSTA" => break,
            other => panic!("expected a recovery, got {other:?}"),
        }
    }
    publisher.send(&[("RSTA", 3)]).await;
    match next_event(&mut client).await {
        Event::Tick(t) => assert_eq!(t.tick.seq, 3),
        other => panic!("expected RSTA 3, got {other:?}"),
    }
    let stats = client.stats();
    assert_eq!((stats.resets, stats.gaps, stats.recoveries), (1, 0, 1));
    client.close().await;
    broker.shutdown().await;
}

#[tokio::test]
async fn max_rate_caps_ticks_and_notices_account_for_the_rest() {
    let (broker, mut publisher) = ingest_broker().await;
    let rate = 4;
    let mut client = Client::builder(format!("ws://{}/ws", broker.local_addr()))
        .max_rate(rate)
        .connect()
        .await
        .unwrap();
    client.subscribe(["CAPA", "CAPB"]).await.unwrap();
    expect_subscribed(&mut client, &["CAPA", "CAPB"]).await;

    // A burst: 2 × 100 ticks over about a second.
    let total: u64 = 100;
    let start = Instant::now();
    for first in (1..=total).step_by(10) {
        let batch: Vec<(&str, u64)> = (first..first + 10)
            .flat_map(|seq| [("CAPA", seq), ("CAPB", seq)])
            .collect();
        publisher.send(&batch).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let quiet = Instant::now();

    let mut delivered = Seen::new();
    let mut skipped = Seen::new();
    let mut finals = BTreeMap::new();
    while finals.len() < 2 {
        assert!(quiet.elapsed() < STEP, "the final ticks did not arrive");
        match next_event(&mut client).await {
            Event::Tick(t) => {
                if t.tick.seq == total {
                    finals.insert(t.tick.sym.clone(), quiet.elapsed());
                }
                delivered.entry(t.tick.sym).or_default().push(t.tick.seq);
            }
            Event::Gap {
                sym,
                expected,
                got,
                reason,
            } => {
                assert_eq!(reason, Some(GapReason::RateCapped));
                skipped.entry(sym).or_default().extend(expected..got);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    // Slack for a shared, noisy machine on top of the cap's 1/rate.
    let final_within = Duration::from_millis(250 + 250);
    for sym in ["CAPA", "CAPB"] {
        let got = &delivered[sym];
        let bound = (f64::from(rate) * seconds).floor() as usize + 1;
        assert!(
            got.len() >= 2 && got.len() <= bound,
            "{sym}: {} ticks in {seconds:.2} s (at most {bound})",
            got.len()
        );
        assert!(
            finals[sym] <= final_within,
            "{sym}: final tick after {:?}",
            finals[sym]
        );
        let mut all: Vec<u64> = got.iter().chain(&skipped[sym]).copied().collect();
        all.sort_unstable();
        assert_eq!(
            all,
            (1..=total).collect::<Vec<_>>(),
            "{sym}: notices + ticks"
        );
    }
    let stats = client.stats();
    let ticks: u64 = delivered.values().map(|v| v.len() as u64).sum();
    assert_eq!(stats.ticks, ticks);
    assert_eq!(stats.gap_noticed, 2 * total - ticks);
    assert_eq!(stats.missed, stats.gap_noticed);
    // Nothing more: no tick left behind the final one.
    let extra = tokio::time::timeout(Duration::from_millis(300), client.next()).await;
    assert!(extra.is_err(), "unexpected event {extra:?}");
    client.close().await;
    broker.shutdown().await;
}
