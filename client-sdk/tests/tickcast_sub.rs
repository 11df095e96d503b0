//! The `tickcast-sub` binary, run as a real process.

mod common;

use std::process::Stdio;

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
