//! `tickcast-sub`: subscribe to a tickcast broker and print ticks.
//!
//! A thin program over the SDK, for looking at a feed from a shell and for
//! scripts (`--json`, `--count`, `--duration`). Diagnostics go to stderr so
//! stdout carries ticks only; a closed stdout (`| head`) ends it quietly.
//! Built with the crate's `cli` feature (on by default), which brings clap,
//! anyhow, humantime and mimalloc; the SDK library needs none of them.

mod args;
mod output;
mod stats_line;

use std::fmt;
use std::future::pending;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;
use clap::Parser;
use tickcast_client::{Client, ClientError, Event};
use tokio::time::{interval_at, sleep, Instant, MissedTickBehavior};

use args::{Args, DEFAULT_URL};

// mimalloc: every tick allocates its symbol and event; a faster allocator
// is the cheapest win for a program that does little else.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How often `--stats` reports.
const STATS_EVERY: Duration = Duration::from_secs(1);

/// Output buffer: large enough that a burst of ticks is one write.
const OUT_BUFFER: usize = 64 * 1024;

// One connection needs one thread; the SDK's background task and this loop
// then share a core without cross-thread wake-ups.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // `{e}`, not `{e:#}`: SDK errors already name their cause, and
            // the chain would repeat it.
            note(format_args!("{e}"));
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let (urls, topics) = args.target()?;
    let mut builder = Client::builder(DEFAULT_URL).urls(urls);
    if let Some(token) = args.token()? {
        builder = builder.token(token);
    }
    if let Some(ca) = &args.ca {
        builder = builder.ca_file(ca);
    }
    if let Some(rate) = args.max_rate {
        builder = builder.max_rate(rate);
    }
    let mut client = builder.connect().await?;
    client.subscribe(topics).await?;
    if args.count == Some(0) {
        client.close().await;
        return Ok(());
    }

    let mut out = BufWriter::with_capacity(OUT_BUFFER, io::stdout().lock());
    if !args.json {
        writeln!(out, "{}", output::text_header())?;
    }
    let stop = async {
        match args.duration {
            Some(d) => sleep(d).await,
            None => pending().await,
        }
    };
    tokio::pin!(stop);
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    // The first report after a full second, not at once: a rate over a few
    // microseconds of snapshot burst would be meaningless.
    let mut report = interval_at(Instant::now() + STATS_EVERY, STATS_EVERY);
    report.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_report = (Instant::now(), client.stats());
    let mut printed = 0u64;

    let result = loop {
        let event = tokio::select! {
            event = client.next() => event,
            _ = &mut stop => break Ok(()),
            _ = &mut interrupted => break Ok(()),
            _ = report.tick(), if args.stats => {
                let now = (Instant::now(), client.stats());
                let delta = now.1.since(&last_report.1);
                note(format_args!("{}", stats_line::format(&delta, now.0 - last_report.0)));
                last_report = now;
                continue;
            }
        };
        let Some(event) = event else {
            break Err(anyhow!("the connection ended"));
        };
        match event {
            Event::Tick(t) => {
                if args.json {
                    output::write_json(&mut out, &t.tick)?;
                } else {
                    output::write_text(&mut out, &t.tick)?;
                }
                printed += 1;
                if args.count == Some(printed) {
                    break Ok(());
                }
                // Flush when caught up rather than per line: one write per
                // burst instead of one per tick.
                if client.buffered() == 0 {
                    out.flush()?;
                }
            }
            // The broker's own gap notices are routine under a cap or for a
            // slow reader: counted in --stats, not a line each.
            Event::Gap {
                sym,
                expected,
                got,
                reason: None,
            } => note(format_args!(
                "gap in {sym}: expected seq {expected}, got {got}"
            )),
            Event::Reset { sym, reason } => note(format_args!(
                "{sym} starts over ({reason:?}): snapshot or new ticks follow"
            )),
            Event::SeqReset { sym, last, got } => note(format_args!(
                "{sym} restarted its sequence: last seq {last}, now {got}"
            )),
            Event::Reconnecting {
                attempt,
                delay,
                cause,
            } => note(format_args!(
                "{cause}; reconnecting in {} ms (attempt {attempt})",
                delay.as_millis()
            )),
            Event::Reconnected { url, .. } => note(format_args!("reconnected to {url}")),
            // The topics are fixed, so a refusal will not go away; and the
            // client only gives up when the policy says so. Both end the run.
            Event::Error(e @ (ClientError::Refused { .. } | ClientError::GaveUp { .. })) => {
                break Err(e.into())
            }
            Event::Error(e) => note(format_args!("{e}")),
            _ => {}
        }
    };
    out.flush()?;
    client.close().await;
    result
}

/// One diagnostic line on stderr. A closed stderr is ignored: there is
/// nobody left to tell.
fn note(message: fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "tickcast-sub: {message}");
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}
