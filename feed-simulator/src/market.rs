//! The simulated market: a deterministic stream of realistic ticks.
//!
//! Each call to [`Market::next_tick_ref`] draws the next Poisson arrival,
//! picks the symbol it belongs to with Zipf-skewed odds (a few names produce
//! most of the ticks, as on a real exchange; see [`activity_weights`]) and
//! advances that symbol's book (prices near the real tickers' reference
//! prices, each name with its own volatility; see `book.rs`). With
//! `session`, the rate follows a trading day (see `arrivals.rs`). A caller with its own schedule (the load
//! generator) gives each tick's time itself with [`Market::next_tick_at`].
//! Everything comes from one seeded PCG generator and plain vectors, never
//! from the wall clock or a hash map's iteration order, so the same
//! [`MarketConfig`] always yields the same stream, byte for byte.

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use tickcast_protocol::{Tick, TickRef};

use crate::activity::activity_cdf;
pub use crate::activity::{activity_weights, DEFAULT_ZIPF_EXPONENT};
use crate::arrivals::Arrivals;
use crate::book::{dollars, Book};
use crate::reference::reference;
pub use crate::reference::tickers_with_reference;
pub use crate::symbols::{real_ticker_count, symbol_names};

/// Simulated time of the open: 2026-01-05 14:30:00 UTC (09:30 in New York),
/// in nanoseconds since the Unix epoch. Fixed, so streams are reproducible.
pub const MARKET_OPEN_NS: u64 = 1_767_623_400 * 1_000_000_000;

/// The most symbols a market may have (each costs about 150 bytes).
pub const MAX_SYMBOLS: usize = 1_000_000;

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct MarketConfig {
    /// Number of symbols (real tickers first, see [`symbol_names`]).
    pub symbols: usize,
    /// Average ticks per second over all symbols (the base rate when
    /// `open_burst` is on).
    pub rate: f64,
    /// Seed of the generator.
    pub seed: u64,
    /// Run the rate hotter in the first minutes after the open (up to 4×,
    /// decaying back to `rate`).
    pub open_burst: bool,
    /// Market hours: the simulated day opens at 09:30 New York
    /// ([`MARKET_OPEN_NS`]) and closes at 16:00; the rate follows the
    /// U-shaped intraday profile (busiest at the open and the close, with
    /// an opening burst), `rate` being its average over the session, and
    /// drops to a trickle after the close.
    pub session: bool,
}

impl Default for MarketConfig {
    fn default() -> Self {
        Self {
            symbols: 100,
            rate: 5_000.0,
            seed: 1,
            open_burst: false,
            session: false,
        }
    }
}

/// Why a [`MarketConfig`] cannot be simulated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// `symbols` is zero or above [`MAX_SYMBOLS`].
    #[error("symbols must be between 1 and {MAX_SYMBOLS}, not {0}")]
    Symbols(usize),
    /// `rate` is zero, negative or not finite.
    #[error("rate must be a positive number of ticks per second, not {0}")]
    Rate(f64),
    /// The Zipf exponent is negative or not finite.
    #[error("the Zipf exponent must be a finite number of at least 0, not {0}")]
    ZipfExponent(f64),
}

/// The deterministic tick generator.
#[derive(Debug, Clone)]
pub struct Market {
    symbols: Vec<String>,
    books: Vec<Book>,
    /// Cumulative activity shares by rank; the last is 1.0. Binary search
    /// over it picks a symbol in a few comparisons.
    activity_cdf: Vec<f64>,
    arrivals: Arrivals,
    rng: Pcg64Mcg,
    /// The first time given to [`Market::next_tick_at`]: the open of a
    /// market timed by its caller.
    caller_open_ts: Option<u64>,
}

impl Market {
    /// A market at the open, its activity skewed with the
    /// [`DEFAULT_ZIPF_EXPONENT`].
    pub fn new(cfg: &MarketConfig) -> Result<Market, ConfigError> {
        Market::with_zipf(cfg, DEFAULT_ZIPF_EXPONENT)
    }

    /// A market at the open whose symbol of rank `r` (from 0) has activity
    /// ∝ `1 / (r + 1)^zipf_exponent` (see [`activity_weights`]); 0 makes
    /// every symbol equally active.
    ///
    /// A separate constructor rather than a field of [`MarketConfig`], so
    /// code that builds a config field by field keeps compiling.
    pub fn with_zipf(cfg: &MarketConfig, zipf_exponent: f64) -> Result<Market, ConfigError> {
        if cfg.symbols == 0 || cfg.symbols > MAX_SYMBOLS {
            return Err(ConfigError::Symbols(cfg.symbols));
        }
        if !(cfg.rate.is_finite() && cfg.rate > 0.0) {
            return Err(ConfigError::Rate(cfg.rate));
        }
        if !(zipf_exponent.is_finite() && zipf_exponent >= 0.0) {
            return Err(ConfigError::ZipfExponent(zipf_exponent));
        }
        let mut rng = Pcg64Mcg::seed_from_u64(cfg.seed);
        let symbols = symbol_names(cfg.symbols);
        let books = symbols
            .iter()
            .enumerate()
            .map(|(rank, sym)| Book::new(rank, reference(sym), &mut rng))
            .collect();
        Ok(Market {
            symbols,
            books,
            activity_cdf: activity_cdf(&activity_weights(cfg.symbols, zipf_exponent)),
            arrivals: Arrivals::new(cfg.rate, cfg.open_burst, cfg.session),
            rng,
            caller_open_ts: None,
        })
    }

    /// The next tick, its symbol borrowed from the market: the fast path,
    /// with no allocation at all. Its time is the next Poisson arrival.
    pub fn next_tick_ref(&mut self) -> TickRef<'_> {
        let now_ns = self.arrivals.advance(&mut self.rng);
        // Saturates rather than wraps after ~500 years of simulated time.
        let ts = MARKET_OPEN_NS.saturating_add(now_ns as u64);
        self.draw(now_ns, ts).1
    }

    /// The next tick as an owned value; `ts` is the simulated event time.
    pub fn next_tick(&mut self) -> Tick {
        self.next_tick_ref().to_tick()
    }

    /// The next tick at a time the caller chooses, `ts` (ns since the epoch,
    /// which the tick carries), instead of the market's own Poisson
    /// arrivals; returns the symbol's index (its activity rank) too.
    ///
    /// For a caller with its own schedule, such as a load generator sending
    /// at a constant rate and stamping each tick with its intended send
    /// time. The first `ts` given is taken as the open, and prices move by
    /// the time between the stamps. Drive one market either this way or
    /// through [`Market::next_tick_ref`], not both: the two clocks are
    /// unrelated.
    pub fn next_tick_at(&mut self, ts: u64) -> (usize, TickRef<'_>) {
        let open = *self.caller_open_ts.get_or_insert(ts);
        let now_ns = ts.saturating_sub(open) as f64;
        self.draw(now_ns, ts)
    }

    /// The symbols, most active first.
    pub fn symbols(&self) -> &[String] {
        &self.symbols
    }

    /// The last `seq` of each symbol (0: no tick yet), in symbol order.
    pub fn last_seqs(&self) -> Vec<u64> {
        self.books.iter().map(|b| b.seq).collect()
    }

    /// Continues each symbol's numbering after `last[i]` where that is
    /// higher than its own, so ticks sent to a broker that already holds
    /// later ones (from an earlier run) are not taken as stale repeats.
    /// Symbols beyond `last`'s length keep their numbering.
    pub fn resume_after(&mut self, last: &[u64]) {
        for (book, &prev) in self.books.iter_mut().zip(last) {
            book.seq = book.seq.max(prev);
        }
    }

    /// Picks the symbol of the next event at `now_ns` (since the open, on
    /// the book's clock) and advances its book; the tick carries `ts`.
    fn draw(&mut self, now_ns: f64, ts: u64) -> (usize, TickRef<'_>) {
        let u: f64 = self.rng.random();
        let last = self.books.len() - 1;
        let i = self.activity_cdf.partition_point(|&c| c <= u).min(last);
        let book = &mut self.books[i];
        book.step(now_ns, &mut self.rng);
        let tick = TickRef {
            sym: &self.symbols[i],
            seq: book.seq,
            ts,
            bid: dollars(book.bid),
            ask: dollars(book.ask),
            last: dollars(book.last),
            bid_size: book.bid_size,
            ask_size: book.ask_size,
            last_size: book.last_size,
            volume: book.volume,
            orig_ts: None,
        };
        (i, tick)
    }
}
