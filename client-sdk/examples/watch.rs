//! Watch a few tickers: print every tick and every connection change.
//!
//! ```text
//! cargo run -p tickcast-client --example watch -- [ws://127.0.0.1:8080/ws] AAPL MSFT
//! ```

mod common;

use std::io::{self, Write};

use tickcast_client::{Client, Event};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (url, mut args) = common::url_and_rest();
    if args.is_empty() {
        args = vec!["AAPL".into(), "MSFT".into(), "NVDA".into()];
    }

    let mut client = Client::connect(&url).await?;
    client.subscribe(&args).await?;
    let mut out = io::stdout().lock();
    while let Some(event) = client.next().await {
        let Some(line) = describe(event) else {
            continue;
        };
        match writeln!(out, "{line}") {
            Ok(()) => {}
            // Piped into `head`: stop quietly.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// One line for the events worth showing.
fn describe(event: Event) -> Option<String> {
    Some(match event {
        Event::Tick(t) => {
            let tick = &t.tick;
            format!(
                "{:<6} #{:<8} {:>10.2} / {:<10.2} last {:>10.2} x {:<5} ({} µs)",
                tick.sym,
                tick.seq,
                tick.bid,
                tick.ask,
                tick.last,
                tick.last_size,
                t.latency_ns() / 1_000
            )
        }
        Event::Subscribed(topics) => format!("subscribed to {topics:?}"),
        Event::Gap {
            sym, expected, got, ..
        } => {
            format!("{sym}: missed {} ticks ({expected}..{got})", got - expected)
        }
        Event::Reconnecting { delay, cause, .. } => format!("{cause}; retrying in {delay:?}"),
        Event::Reconnected { .. } => "reconnected".to_owned(),
        Event::Error(e) => format!("error: {e}"),
        _ => return None,
    })
}
