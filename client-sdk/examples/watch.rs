//! Watch a few tickers: print every tick and every connection change.
//!
//! ```text
//! cargo run -p tickcast-client --example watch -- [ws://127.0.0.1:8080/ws] AAPL MSFT
//! ```

use tickcast_client::{Client, Event};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let url = if args.first().is_some_and(|a| a.starts_with("ws://")) {
        args.remove(0)
    } else {
        "ws://127.0.0.1:8080/ws".to_owned()
    };
    if args.is_empty() {
        args = vec!["AAPL".into(), "MSFT".into(), "NVDA".into()];
    }

    let mut client = Client::connect(&url).await?;
    client.subscribe(&args).await?;
    while let Some(event) = client.next().await {
        match event {
            Event::Tick(t) => {
                let tick = &t.tick;
                println!(
                    "{:<6} #{:<8} {:>10.2} / {:<10.2} last {:>10.2} x {:<5} ({} µs)",
                    tick.sym,
                    tick.seq,
                    tick.bid,
                    tick.ask,
                    tick.last,
                    tick.last_size,
                    t.latency_ns() / 1_000
                );
            }
            Event::Subscribed(topics) => println!("subscribed to {topics:?}"),
            Event::Gap { sym, expected, got } => {
                println!("{sym}: missed {} ticks ({expected}..{got})", got - expected)
            }
            Event::Reconnecting { delay, cause, .. } => {
                println!("{cause}; retrying in {delay:?}")
            }
            Event::Reconnected { .. } => println!("reconnected"),
            Event::Error(e) => println!("error: {e}"),
            _ => {}
        }
    }
    Ok(())
}
