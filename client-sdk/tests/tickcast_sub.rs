//! The `tickcast-sub` binary, run as a real process.

mod common;

use std::process::Stdio;

use feed_simulator::market::MarketConfig;
use tickcast_broker::{BrokerConfig, FeedConfig};
use tickcast_protocol::Tick;
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tickcast-sub");

#[tokio::test]
async fn closed_port_exits_non_zero_with_one_line_on_stderr() {
    // Bind then drop a listener: the port is free and nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let run = Command::new(BIN)
        .args([&format!("ws://127.0.0.1:{port}/ws"), "AAPL"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(common::STEP, run)
        .await
        .unwrap()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot connect"), "{stderr}");
}

async fn run_sub(args: &[&str]) -> std::process::Output {
    let run = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(common::STEP, run)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn count_and_json_print_that_many_wire_ticks_and_exit_zero() {
    let cfg = BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        feed: FeedConfig::Sim(MarketConfig {
            symbols: 20,
            rate: 500.0,
            seed: 7,
            open_burst: false,
            session: false,
        }),
        ..common::broker_config(FeedConfig::None)
    };
    let broker = tickcast_broker::start(cfg).await.unwrap();
    let url = format!("ws://{}/ws", broker.local_addr());
    let out = run_sub(&[&url, "*", "--count", "5", "--json"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 5, "{stdout}");
    for line in stdout.lines() {
        let tick: Tick = serde_json::from_str(line).unwrap();
        assert!(!tick.sym.is_empty() && tick.seq >= 1 && tick.bid <= tick.ask);
        let keys: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line).unwrap();
        for key in [
            "type",
            "sym",
            "seq",
            "ts",
            "bid",
            "ask",
            "last",
            "bid_size",
            "ask_size",
            "last_size",
            "volume",
        ] {
            assert!(keys.contains_key(key), "{key} missing in {line}");
        }
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn refused_subscription_exits_non_zero_with_one_line() {
    let mut cfg = BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        feed: FeedConfig::None,
        ..common::broker_config(FeedConfig::None)
    };
    cfg.limits.max_topics = 2;
    let broker = tickcast_broker::start(cfg).await.unwrap();
    let url = format!("ws://{}/ws", broker.local_addr());
    let out = run_sub(&[&url, "AAA", "BBB", "CCC"]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("too_many_topics"), "{stderr}");
    broker.shutdown().await;
}

#[tokio::test]
async fn max_rate_caps_each_symbol_and_stats_count_the_noticed_gaps() {
    let cfg = BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        feed: FeedConfig::Sim(MarketConfig {
            symbols: 5,
            rate: 2_000.0,
            seed: 7,
            open_burst: false,
            session: false,
        }),
        ..common::broker_config(FeedConfig::None)
    };
    let broker = tickcast_broker::start(cfg).await.unwrap();
    let url = format!("ws://{}/ws", broker.local_addr());
    let out = run_sub(&[
        &url,
        "*",
        "--json",
        "--max-rate",
        "4",
        "--stats",
        "--duration",
        "1500ms",
    ])
    .await;
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    let mut per_symbol = std::collections::HashMap::<String, usize>::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let tick: Tick = serde_json::from_str(line).unwrap();
        *per_symbol.entry(tick.sym).or_default() += 1;
    }
    assert!(!per_symbol.is_empty());
    // 4 a second over 1.5 s, plus the snapshot each symbol starts with.
    for (sym, n) in &per_symbol {
        assert!(*n <= 4 * 3 / 2 + 1 + 1, "{sym}: {n} ticks");
    }
    // The once-a-second line counts what the cap skipped (2,000 ticks/s
    // over 5 symbols is far above 4 a second each).
    let stats = stderr
        .lines()
        .find(|l| l.contains("rate "))
        .unwrap_or_else(|| panic!("no stats line in {stderr}"));
    let noticed: u64 = stats
        .split("noticed ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no noticed count in {stats}"));
    assert!(noticed > 0, "{stats}");
    assert!(stats.contains("recovered 0  resets 0"), "{stats}");
    broker.shutdown().await;
}
