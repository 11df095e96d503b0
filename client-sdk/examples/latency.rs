//! Measure receive latency (receive time minus the tick's `ts`) for a while,
//! then print percentiles.
//!
//! ```text
//! cargo run --release -p tickcast-client --example latency -- [ws://127.0.0.1:8080/ws] [SECONDS] [TOPIC...]
//! ```
//!
//! The broker and this program must share a clock (same machine, or
//! synchronised hosts) for the numbers to mean anything.

mod common;

use std::time::Duration;

use std::io::{self, Write};

use tickcast_client::{Client, Event, Stats};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (url, mut args) = common::url_and_rest();
    let seconds = match args.first().map(|a| a.parse::<u64>()) {
        Some(Ok(s)) => {
            args.remove(0);
            s
        }
        _ => 10,
    };
    if args.is_empty() {
        args.push("*".into());
    }

    let mut client = Client::connect(&url).await?;
    client.subscribe(&args).await?;
    let run = async {
        while let Some(event) = client.next().await {
            if let Event::Error(e) = event {
                eprintln!("error: {e}");
            }
        }
    };
    // Events are consumed (and recorded) until the time is up.
    let _ = tokio::time::timeout(Duration::from_secs(seconds), run).await;

    let report = report(&client.stats(), seconds);
    match io::stdout().write_all(report.as_bytes()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// The summary: counts, then latency percentiles in microseconds.
fn report(stats: &Stats, seconds: u64) -> String {
    let mut out = format!(
        "{} ticks in {seconds} s ({:.0}/s), {} gaps ({} missed), {} reconnects\n",
        stats.ticks,
        stats.ticks as f64 / seconds.max(1) as f64,
        stats.gaps,
        stats.missed,
        stats.reconnects
    );
    let h = &stats.latency;
    if h.is_empty() {
        out.push_str("no latency samples\n");
        return out;
    }
    for q in [0.5, 0.9, 0.99, 0.999, 0.9999] {
        let us = h.value_at_quantile(q) as f64 / 1e3;
        out.push_str(&format!("p{:<7} {us:>10.1} µs\n", q * 100.0));
    }
    out.push_str(&format!("max      {:>10.1} µs\n", h.max() as f64 / 1e3));
    out
}
