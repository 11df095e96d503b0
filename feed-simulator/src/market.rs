//! The simulated market: a deterministic stream of realistic ticks.
//!
//! Each call to [`Market::next_tick_ref`] draws the next Poisson arrival,
//! picks the symbol it belongs to with Zipf-skewed odds (a few names produce
//! most of the ticks, as on a real exchange) and advances that symbol's book.
//! Everything comes from one seeded PCG generator and plain vectors, never
//! from the wall clock or a hash map's iteration order, so the same
//! [`MarketConfig`] always yields the same stream, byte for byte.

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use tickcast_protocol::{Tick, TickRef};

use crate::arrivals::Arrivals;
use crate::book::{dollars, Book};
pub use crate::symbols::{real_ticker_count, symbol_names};

/// Simulated time of the open: 2026-01-05 14:30:00 UTC (09:30 in New York),
/// in nanoseconds since the Unix epoch. Fixed, so streams are reproducible.
pub const MARKET_OPEN_NS: u64 = 1_767_623_400 * 1_000_000_000;

/// The most symbols a market may have (each costs about 150 bytes).
pub const MAX_SYMBOLS: usize = 1_000_000;

/// Exponent of the activity skew: the symbol of rank `r` (from 1) gets
/// activity proportional to `1 / r^ZIPF_EXPONENT`. With 1.0, the top 10% of
/// 100 symbols produce about 56% of the ticks.
const ZIPF_EXPONENT: f64 = 1.0;

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
}

impl Default for MarketConfig {
    fn default() -> Self {
        Self {
            symbols: 100,
            rate: 5_000.0,
            seed: 1,
            open_burst: false,
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
}

impl Market {
    /// A market at the open.
    pub fn new(cfg: &MarketConfig) -> Result<Market, ConfigError> {
        if cfg.symbols == 0 || cfg.symbols > MAX_SYMBOLS {
            return Err(ConfigError::Symbols(cfg.symbols));
        }
        if !(cfg.rate.is_finite() && cfg.rate > 0.0) {
            return Err(ConfigError::Rate(cfg.rate));
        }
        let mut rng = Pcg64Mcg::seed_from_u64(cfg.seed);
        let books = (0..cfg.symbols)
            .map(|rank| Book::new(rank, &mut rng))
            .collect();
        Ok(Market {
            symbols: symbol_names(cfg.symbols),
            books,
            activity_cdf: zipf_cdf(cfg.symbols),
            arrivals: Arrivals::new(cfg.rate, cfg.open_burst),
            rng,
        })
    }

    /// The next tick, its symbol borrowed from the market: the fast path,
    /// with no allocation at all.
    pub fn next_tick_ref(&mut self) -> TickRef<'_> {
        let now_ns = self.arrivals.advance(&mut self.rng);
        let u: f64 = self.rng.random();
        let last = self.books.len() - 1;
        let i = self.activity_cdf.partition_point(|&c| c <= u).min(last);
        let book = &mut self.books[i];
        book.step(now_ns, &mut self.rng);
        TickRef {
            sym: &self.symbols[i],
            seq: book.seq,
            // Saturates rather than wraps after ~500 years of simulated time.
            ts: MARKET_OPEN_NS.saturating_add(now_ns as u64),
            bid: dollars(book.bid),
            ask: dollars(book.ask),
            last: dollars(book.last),
            bid_size: book.bid_size,
            ask_size: book.ask_size,
            last_size: book.last_size,
            volume: book.volume,
            orig_ts: None,
        }
    }

    /// The next tick as an owned value; `ts` is the simulated event time.
    pub fn next_tick(&mut self) -> Tick {
        self.next_tick_ref().to_tick()
    }

    /// The symbols, most active first.
    pub fn symbols(&self) -> &[String] {
        &self.symbols
    }
}

/// Cumulative Zipf shares of `n` ranks.
fn zipf_cdf(n: usize) -> Vec<f64> {
    let weights: Vec<f64> = (1..=n)
        .map(|rank| (rank as f64).powf(-ZIPF_EXPONENT))
        .collect();
    let total: f64 = weights.iter().sum();
    let mut acc = 0.0;
    let mut cdf: Vec<f64> = weights
        .iter()
        .map(|w| {
            acc += w;
            acc / total
        })
        .collect();
    // Rounding may leave the last share a hair under 1.0; a draw above it
    // must still land on the last symbol.
    if let Some(last) = cdf.last_mut() {
        *last = 1.0;
    }
    cdf
}
