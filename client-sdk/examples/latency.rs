//! Measure receive latency (receive time minus the tick's `ts`) for a while,
//! then print percentiles.
//!
//! ```text
//! cargo run --release -p tickcast-client --example latency -- [ws://127.0.0.1:8080/ws] [SECONDS] [TOPIC...]
//! ```
//!
//! The broker and this program must share a clock (same machine, or
//! synchronised hosts) for the numbers to mean anything.

use std::time::Duration;

use tickcast_client::{Client, Event};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let url = if args.first().is_some_and(|a| a.starts_with("ws://")) {
        args.remove(0)
    } else {
        "ws://127.0.0.1:8080/ws".to_owned()
    };
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

    let stats = client.stats();
    let h = &stats.latency;
    println!(
        "{} ticks in {seconds} s ({:.0}/s), {} gaps ({} missed), {} reconnects",
        stats.ticks,
        stats.ticks as f64 / seconds.max(1) as f64,
        stats.gaps,
        stats.missed,
        stats.reconnects
    );
    if h.is_empty() {
        println!("no latency samples");
        return Ok(());
    }
    for q in [0.5, 0.9, 0.99, 0.999, 0.9999] {
        println!(
            "p{:<7} {:>10.1} µs",
            q * 100.0,
            h.value_at_quantile(q) as f64 / 1e3
        );
    }
    println!("max      {:>10.1} µs", h.max() as f64 / 1e3);
    Ok(())
}
