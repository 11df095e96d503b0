//! The command line of `feed-simulator`: subcommands and their flags.
//!
//! Only parsing lives here; [`crate::commands`] does the work. Defaults come
//! from the library's [`MarketConfig::default`], so `--help` and the
//! library agree on what an unconfigured market is.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use feed_simulator::market::MarketConfig;
use feed_simulator::new_york::Date;
use feed_simulator::pacing::Speed;

/// Realistic, deterministic stock-tick feeds for tickcast.
///
/// Generates a simulated market (real tickers, per-symbol random-walk prices
/// on a one-cent grid, ten quotes per trade, skewed activity, Poisson
/// arrivals), records it to feed files, streams it to a broker's TCP ingest,
/// replays and inspects feed files, and imports real data (CSV, Databento
/// DBN, NASDAQ ITCH 5.0).
#[derive(Debug, Parser)]
#[command(name = "feed-simulator", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
        conn: ConnArgs,
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
        #[command(flatten)]
        conn: ConnArgs,
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
    /// Convert real market data into a feed file: a CSV of quotes and
    /// trades, a Databento DBN file, or a NASDAQ TotalView-ITCH 5.0 file.
    ///
    /// CSV columns (header row required, any order): ts (integer ns since
    /// the epoch or RFC 3339 UTC), sym, kind (quote|trade); bid, ask,
    /// bid_size, ask_size for quotes; price, size for trades; rows in time
    /// order. DBN: schemas mbp-1, tbbo, bbo-1s, bbo-1m, trades, mbp-10 (top
    /// level), plain or zstd. ITCH: the order messages rebuild each stock's
    /// book; a tick on every change of its best bid or offer and on every
    /// trade. A damaged DBN or ITCH file keeps every tick before the damage
    /// and names its byte offset. See docs/FEED_FORMAT.md.
    #[command(group(clap::ArgGroup::new("input").required(true).args(["csv", "dbn", "itch"])))]
    Import {
        /// A CSV file of quotes and trades.
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
        /// A Databento DBN file (plain or zstd-compressed).
        #[arg(long, value_name = "FILE")]
        dbn: Option<PathBuf>,
        /// A NASDAQ TotalView-ITCH 5.0 file (2-byte length before each
        /// message, uncompressed).
        #[arg(long, value_name = "FILE", requires = "date")]
        itch: Option<PathBuf>,
        /// ITCH: the trading day (YYYY-MM-DD); its times count from
        /// midnight New York.
        #[arg(long, value_name = "YYYY-MM-DD", requires = "itch", value_parser = Date::parse)]
        date: Option<Date>,
        /// ITCH: import only these symbols (comma-separated).
        #[arg(long, value_name = "SYM,SYM", requires = "itch", value_delimiter = ',')]
        symbols: Option<Vec<String>>,
        /// The feed file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// How to reach a broker that requires tokens or TLS.
#[derive(Debug, clap::Args)]
pub struct ConnArgs {
    /// Authenticate with the JWT in this file (trailing newline trimmed);
    /// it needs a `pub` claim covering the symbols sent.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Connect with TLS (the broker's --ingest-tls), trusting the system's
    /// root certificates unless --ca is given.
    #[arg(long)]
    pub tls: bool,
    /// With --tls: trust the CA certificates in this PEM file instead.
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub ca: Option<PathBuf>,
    /// With --tls: the name the broker's certificate must carry (default:
    /// the host of --to).
    #[arg(long, value_name = "NAME", requires = "tls")]
    pub server_name: Option<String>,
}

/// Parameters of the simulated market.
#[derive(Debug, clap::Args)]
pub struct MarketArgs {
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
    /// Market hours: 09:30-16:00 New York, the U-shaped intraday volume
    /// profile with an opening burst (--rate is its average), quiet after
    /// the close.
    #[arg(long)]
    session: bool,
}

impl MarketArgs {
    /// The market these flags describe.
    pub fn config(&self, open_burst: bool) -> MarketConfig {
        MarketConfig {
            symbols: self.symbols,
            rate: self.rate,
            seed: self.seed,
            open_burst,
            session: self.session,
        }
    }
}

fn positive_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err("rate must be a positive number of ticks per second".to_owned()),
    }
}
