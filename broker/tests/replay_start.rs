//! `--replay-start`: a replay that waits for its first subscriber or for a
//! set time, and its progress on `/stats`. Real brokers on loopback, read by
//! tokio-tungstenite subscribers.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{stats, Subscriber, SHARDS, WAIT};
use feed_simulator::file::{FeedHeader, FeedWriter};
use feed_simulator::market::{Market, MarketConfig};
use feed_simulator::pacing::Speed;
use tickcast_broker::clock::now_ns;
use tickcast_broker::{BrokerConfig, FeedConfig, Limits, ReplayStart, RunningBroker};
use tickcast_protocol::Tick;

/// Writes `count` ticks of a small simulated market to `path`.
fn record_feed(path: &Path, count: u64) -> Vec<Tick> {
    let cfg = MarketConfig {
        symbols: 6,
        rate: 5_000.0,
        seed: 9,
        ..MarketConfig::default()
    };
    let mut market = Market::new(&cfg).unwrap();
    let ticks: Vec<Tick> = (0..count).map(|_| market.next_tick()).collect();
    let header = FeedHeader::simulated(6, cfg.rate, cfg.seed, count, false);
    let mut writer = FeedWriter::new(std::fs::File::create(path).unwrap(), &header).unwrap();
    for t in &ticks {
        writer.write_tick(&t.as_ref()).unwrap();
    }
    writer.finish().unwrap();
    ticks
}

/// A broker replaying `path` at full speed, starting at `start`.
async fn replay_broker(path: &Path, start: ReplayStart) -> RunningBroker {
    tickcast_broker::start(BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        feed: FeedConfig::Replay {
            path: path.to_path_buf(),
            speed: Speed::Max,
            looping: false,
            start,
        },
        limits: Limits {
            writer_shards: SHARDS,
            ..Limits::default()
        },
        ..Default::default()
    })
    .await
    .unwrap()
}

/// Reads every recorded tick, in order, as recorded (restamped `ts`, the
/// recorded time in `orig_ts`).
async fn expect_all(sub: &mut Subscriber, recorded: &[Tick]) {
    for want in recorded {
        let got = sub.expect_tick().await;
        assert_eq!(got.orig_ts, Some(want.ts), "{} #{}", got.sym, got.seq);
        assert_eq!(
            Tick {
                ts: want.ts,
                orig_ts: None,
                ..got
            },
            *want
        );
    }
}

/// `/stats`' `replay` object once its state is `want` (panics after [`WAIT`]).
async fn replay_stats_when(broker: &RunningBroker, want: &str) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let replay = stats(broker.local_addr()).await["replay"].clone();
        if replay["state"] == want {
            return replay;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "replay never {want}: {replay}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// At full speed the whole file would be gone within milliseconds of the
/// start; on-subscribe holds it until a subscriber that connected half a
/// second later is in place, and that subscriber gets the first tick.
#[tokio::test]
async fn on_subscribe_holds_the_replay_until_the_first_subscription() {
    const COUNT: u64 = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("day.tcf");
    let recorded = record_feed(&file, COUNT);
    let size = std::fs::metadata(&file).unwrap().len();
    let broker = replay_broker(&file, ReplayStart::OnSubscribe).await;

    tokio::time::sleep(Duration::from_millis(500)).await;
    let waiting = replay_stats_when(&broker, "waiting").await;
    assert_eq!(waiting["ticks"], 0);
    assert_eq!(waiting["start"], "on-subscribe");
    assert_eq!(waiting["speed"], "max");
    assert_eq!(waiting["total_ticks"], COUNT);
    assert_eq!(waiting["total_bytes"], size);
    assert_eq!(
        broker.metrics().ticks_in.get(),
        0,
        "a tick before any subscriber"
    );

    let mut sub = Subscriber::connect(broker.local_addr(), "topics=%2A").await;
    assert_eq!(sub.expect_ack().await, ["*"]);
    expect_all(&mut sub, &recorded).await;
    assert!(sub.next_within(Duration::from_millis(200)).await.is_none());

    let done = replay_stats_when(&broker, "finished").await;
    assert_eq!(done["ticks"], COUNT);
    assert_eq!(done["bytes"], size, "the position is the end of the file");
    assert_eq!(done["laps"], 0);
    let last = recorded.last().unwrap().ts;
    assert_eq!(done["last_ts"], last);
    assert_eq!(
        done["last_time"],
        feed_simulator::rfc3339::format(last).as_str()
    );
    broker.shutdown().await;
}

/// `at=TIME` waits for the wall clock, however early the subscriber is.
#[tokio::test]
async fn at_a_time_starts_the_replay_then_and_not_before() {
    const COUNT: u64 = 300;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("day.tcf");
    let recorded = record_feed(&file, COUNT);
    let at = now_ns() + 700_000_000;
    let broker = replay_broker(&file, ReplayStart::At(at)).await;
    let mut sub = Subscriber::connect(broker.local_addr(), "topics=%2A").await;
    assert_eq!(sub.expect_ack().await, ["*"]);
    let waiting = replay_stats_when(&broker, "waiting").await;
    assert_eq!(
        waiting["start"],
        format!("at={}", feed_simulator::rfc3339::format(at)).as_str()
    );
    let first = sub.expect_tick().await;
    assert!(
        now_ns() >= at,
        "the first tick came {} ms early",
        (at - now_ns()) / 1_000_000
    );
    assert!(first.ts >= at, "restamped before the start time");
    assert_eq!(first.orig_ts, Some(recorded[0].ts));
    expect_all(&mut sub, &recorded[1..]).await;
    assert_eq!(replay_stats_when(&broker, "finished").await["ticks"], COUNT);
    broker.shutdown().await;
}

/// No replay, no `replay` object.
#[tokio::test]
async fn stats_have_no_replay_without_one() {
    let broker = common::ingest_broker(common::limits()).await;
    assert!(stats(broker.local_addr()).await.get("replay").is_none());
    broker.shutdown().await;
}
