//! `feed-simulator`: the command line over the `feed_simulator` library.
//!
//! Parses arguments, opens files and sockets, and reports failures as one
//! `error: …` line with a non-zero exit code (never a panic), so scripts and
//! people both get a clear answer. All the work is done by the library.

use std::fs::File;
use std::io::{self, BufReader, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::error::ErrorKind as ClapErrorKind;
use clap::{Parser, Subcommand};
use feed_simulator::file::FeedReader;
use feed_simulator::import::import_csv;
use feed_simulator::inspect::summarize;
use feed_simulator::market::{Market, MarketConfig};
use feed_simulator::pacing::{Pacer, Speed};
use feed_simulator::progress;
use feed_simulator::publish::publish;
use feed_simulator::record::record;
use feed_simulator::replay::FileReplay;
use feed_simulator::send::send_paced;
use tokio::net::TcpStream;

// mimalloc: faster small allocations for the owned ticks of publish/replay.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Realistic, deterministic stock-tick feeds for tickcast.
///
/// Generates a simulated market (real tickers, per-symbol random-walk prices
/// on a one-cent grid, ten quotes per trade, skewed activity, Poisson
/// arrivals), records it to feed files, streams it to a broker's TCP ingest,
/// replays and inspects feed files, and imports real data from CSV.
#[derive(Debug, Parser)]
#[command(name = "feed-simulator", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a simulated feed to a file, as fast as the disk allows.
    ///
    /// Writes exactly RATE × DURATION ticks (about DURATION of simulated
    /// time); the same parameters always give a byte-identical file.
    Record {
        #[command(flatten)]
        market: MarketArgs,
        /// Simulated time to record, e.g. `10s`, `5min`, `1h`.
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Duration,
        /// The feed file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Run the rate up to 4× hotter in the first minutes after the open.
        /// The tick count stays RATE × DURATION, so the simulated span is
        /// shorter.
        #[arg(long)]
        open_burst: bool,
    },
    /// Stream a live simulated feed to a broker's TCP ingest.
    ///
    /// Ticks leave on an absolute real-time schedule (no drift; a late
    /// sender catches up instead of skipping time), stamped with the real
    /// send time; all ticks due together share one write.
    Publish {
        /// The broker's ingest address.
        #[arg(long, value_name = "HOST:PORT")]
        to: String,
        #[command(flatten)]
        market: MarketArgs,
        /// Stop after this long, e.g. `30s` (default: run until stopped).
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
    },
    /// Send a feed file to a broker's TCP ingest with its recorded timing.
    ///
    /// Keeps the recorded gaps between ticks, divided by SPEED; `ts` is
    /// restamped with the send time and `orig_ts` holds the recorded time.
    Replay {
        /// The feed file to replay.
        file: PathBuf,
        /// The broker's ingest address.
        #[arg(long, value_name = "HOST:PORT")]
        to: String,
        /// Playback speed: `1` (real time), `10`, `0.5`, … or `max`.
        #[arg(long, default_value = "1")]
        speed: Speed,
        /// Start over at the end, forever. Times and each symbol's `seq`
        /// keep increasing across laps, so nothing downstream goes backwards.
        #[arg(long = "loop")]
        looping: bool,
    },
    /// Summarise a feed file: counts, symbols, time span, rate, first ticks.
    ///
    /// A damaged file is summarised up to the damage, then the damage is
    /// reported as an error.
    Inspect {
        /// The feed file to read.
        file: PathBuf,
        /// Also print the first N ticks.
        #[arg(long, value_name = "N", default_value_t = 0)]
        head: usize,
        /// List this many of the most active symbols.
        #[arg(long, value_name = "K", default_value_t = 10)]
        top: usize,
        /// Print JSON lines instead of text: one summary object, then one
        /// object per tick.
        #[arg(long)]
        json: bool,
    },
    /// Convert a CSV of quotes and trades into a feed file.
    ///
    /// Columns (header row required, any order): ts (integer ns since the
    /// epoch or RFC 3339 UTC), sym, kind (quote|trade); bid, ask, bid_size,
    /// ask_size for quotes; price, size for trades. Rows must be in time
    /// order. See docs/FEED_FORMAT.md.
    Import {
        /// The CSV file to read.
        #[arg(long, value_name = "FILE")]
        csv: PathBuf,
        /// The feed file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// Parameters of the simulated market.
#[derive(Debug, clap::Args)]
struct MarketArgs {
    /// Number of symbols: real US tickers first, generated names beyond.
    #[arg(long, value_name = "N", default_value_t = MarketConfig::default().symbols)]
    symbols: usize,
    /// Average ticks per second over all symbols.
    #[arg(long, value_name = "TICKS_PER_S", default_value_t = MarketConfig::default().rate,
          value_parser = positive_rate, allow_negative_numbers = true)]
    rate: f64,
    /// Seed of the generator: the same seed gives the same stream.
    #[arg(long, value_name = "S", default_value_t = MarketConfig::default().seed)]
    seed: u64,
}

impl MarketArgs {
    fn config(&self, open_burst: bool) -> MarketConfig {
        MarketConfig {
            symbols: self.symbols,
            rate: self.rate,
            seed: self.seed,
            open_burst,
        }
    }
}

fn positive_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err("rate must be a positive number of ticks per second".to_owned()),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        // `inspect … | head` closing the pipe early is not a failure.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints help and version as clap does; squeezes any other parse error into
/// one line (clap's own rendering adds usage and tips on further lines).
fn usage_error(e: &clap::Error) -> ExitCode {
    if matches!(
        e.kind(),
        ClapErrorKind::DisplayHelp | ClapErrorKind::DisplayVersion
    ) {
        print!("{e}");
        return ExitCode::SUCCESS;
    }
    let rendered = e.render().to_string();
    let line: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
        .collect();
    eprintln!("{}", line.join(" "));
    ExitCode::from(2)
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == ErrorKind::BrokenPipe)
    })
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Record {
            market,
            duration,
            out,
            open_burst,
        } => run_record(&market.config(open_burst), duration, &out),
        Command::Publish {
            to,
            market,
            duration,
        } => {
            let market = Market::new(&market.config(false))?;
            runtime()?.block_on(async {
                let mut stream = connect(&to).await?;
                publish(market, duration, &mut stream)
                    .await
                    .with_context(|| format!("publishing to {to}"))?;
                Ok(())
            })
        }
        Command::Replay {
            file,
            to,
            speed,
            looping,
        } => run_replay(&file, &to, speed, looping),
        Command::Inspect {
            file,
            head,
            top,
            json,
        } => run_inspect(&file, head, top, json),
        Command::Import { csv, out } => run_import(&csv, &out),
    }
}

fn run_record(cfg: &MarketConfig, duration: Duration, out: &Path) -> Result<()> {
    let count = (cfg.rate * duration.as_secs_f64()).round();
    if count >= u64::MAX as f64 {
        bail!("rate × duration is too many ticks");
    }
    let count = count as u64;
    // Check the parameters before creating the file.
    Market::new(cfg)?;
    let file = create(out)?;
    let bar = progress::bar(Some(count), "ticks");
    let result = record(cfg, count, file, |n| bar.set_position(n));
    bar.finish_and_clear();
    if let Err(e) = result {
        remove_partial(out);
        return Err(e).with_context(|| format!("cannot write {}", out.display()));
    }
    Ok(())
}

fn run_replay(file: &Path, to: &str, speed: Speed, looping: bool) -> Result<()> {
    let mut source = FileReplay::open(file, looping)
        .with_context(|| format!("cannot open feed file {}", file.display()))?;
    runtime()?.block_on(async {
        let mut stream = connect(to).await?;
        // A looped replay has no end to count towards: a spinner then.
        let len = source.records_per_lap().filter(|_| !looping);
        let bar = progress::bar(len, "ticks");
        let mut pacer = Pacer::new(speed);
        let result = send_paced(&mut source, &mut pacer, &mut stream, |n| {
            bar.set_position(n);
        })
        .await;
        bar.finish_and_clear();
        result.with_context(|| format!("replaying {} to {to}", file.display()))?;
        Ok(())
    })
}

fn run_inspect(file: &Path, head: usize, top: usize, json: bool) -> Result<()> {
    let reader = FeedReader::open(file)
        .with_context(|| format!("cannot open feed file {}", file.display()))?;
    let summary = summarize(reader, head);
    let mut out = io::stdout().lock();
    if json {
        summary.write_json(&mut out, top)?;
    } else {
        writeln!(out, "file:        {}", file.display())?;
        summary.write_text(&mut out, top)?;
    }
    out.flush()?;
    match summary.damage {
        Some(damage) => Err(damage).with_context(|| format!("reading {}", file.display())),
        None => Ok(()),
    }
}

fn run_import(csv: &Path, out: &Path) -> Result<()> {
    let input =
        File::open(csv).with_context(|| format!("cannot open CSV file {}", csv.display()))?;
    let len = input.metadata().map(|m| m.len()).ok();
    let output = create(out)?;
    let bar = progress::bar(len, "bytes");
    let result = import_csv(BufReader::new(input), output, |n| bar.set_position(n));
    bar.finish_and_clear();
    match result {
        Ok((_, stats)) => {
            eprintln!(
                "imported {} ticks of {} symbols into {}",
                stats.records,
                stats.symbols,
                out.display()
            );
            Ok(())
        }
        Err(e) => {
            remove_partial(out);
            Err(e).with_context(|| format!("cannot import {}", csv.display()))
        }
    }
}

fn create(path: &Path) -> Result<File> {
    File::create(path).with_context(|| format!("cannot create {}", path.display()))
}

/// Deletes a half-written output so no one mistakes it for a good file.
fn remove_partial(path: &Path) {
    // Best effort: the error being reported matters more.
    let _ = std::fs::remove_file(path);
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    // One thread: the sender is a single sequential loop.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

async fn connect(to: &str) -> Result<TcpStream> {
    let stream = TcpStream::connect(to)
        .await
        .with_context(|| format!("cannot connect to {to}"))?;
    // We batch writes ourselves; Nagle would only delay a lone due tick.
    stream
        .set_nodelay(true)
        .with_context(|| format!("cannot configure the connection to {to}"))?;
    Ok(stream)
}
