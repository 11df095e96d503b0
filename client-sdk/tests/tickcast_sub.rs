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
