//! One symbol's simulated top of book and last trade, and how each event
//! changes them.
//!
//! The mid price follows a geometric Brownian motion with the symbol's own
//! volatility, advanced by the simulated time since the symbol's previous
//! event. Quotes are placed around the mid on the one-cent grid; trades hit
//! the standing quote. Prices are kept in integer cents and only converted to
//! dollars when a tick is built: `cents as f64 / 100.0` is the double closest
//! to the decimal price, so every price a reader sees is exactly on the grid
//! as far as a double can be, and no rounding error accumulates.

use rand::Rng;
use rand_distr::StandardNormal;

/// Length of a trading year (252 sessions of 6.5 hours), in nanoseconds.
/// Annual volatilities are quoted against it.
const TRADING_YEAR_NS: f64 = 252.0 * 6.5 * 3600.0 * 1e9;

/// Shares in a round lot; every size is a multiple of it.
const ROUND_LOT: u32 = 100;

/// Lots per order, drawn uniformly from this table: mostly small orders and
/// a long tail of large ones, as in real order flow.
const LOTS: [u32; 16] = [1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 4, 5, 5, 8, 10, 20];

/// One event in eleven is a trade: about ten quote updates per trade.
const TRADE_THRESHOLD: u32 = u32::MAX / 11;

/// Initial prices are log-uniform between these, in cents ($5 to $800).
const MIN_START_CENTS: f64 = 500.0;
const MAX_START_CENTS: f64 = 80_000.0;

/// The simulated state of one symbol.
#[derive(Debug, Clone)]
pub(crate) struct Book {
    /// Variance of the log price per nanosecond.
    var_per_ns: f64,
    /// Usual spread in cents.
    base_spread: u64,
    /// Displayed size multiplier: deeper books show bigger quotes.
    depth: u32,
    /// Mid price in (fractional) cents.
    mid: f64,
    /// Simulated time of the previous event, ns since the open.
    updated_ns: f64,
    pub(crate) bid: u64,
    pub(crate) ask: u64,
    pub(crate) bid_size: u32,
    pub(crate) ask_size: u32,
    pub(crate) last: u64,
    pub(crate) last_size: u32,
    pub(crate) volume: u64,
    pub(crate) seq: u64,
}

impl Book {
    /// A book at the open for the symbol of activity rank `rank` (0 = most
    /// active), with its constants drawn from `rng`.
    pub(crate) fn new(rank: usize, rng: &mut impl Rng) -> Self {
        let start = (MIN_START_CENTS.ln()
            + rng.random::<f64>() * (MAX_START_CENTS.ln() - MIN_START_CENTS.ln()))
        .exp();
        let annual_vol = 0.15 + 0.65 * rng.random::<f64>();
        // Dearer stocks quote wider in cents; the long tail of quieter names
        // is less liquid and often a cent wider still.
        let wide_tail = rank >= 50 && rng.random::<bool>();
        let base_spread = 1 + (start / 25_000.0) as u64 + u64::from(wide_tail);
        let depth = rng.random_range(1..=4);
        let mut book = Self {
            var_per_ns: annual_vol * annual_vol / TRADING_YEAR_NS,
            base_spread,
            depth,
            mid: start,
            updated_ns: 0.0,
            bid: 0,
            ask: 0,
            bid_size: 0,
            ask_size: 0,
            last: 0,
            last_size: 0,
            volume: 0,
            seq: 0,
        };
        book.requote(rng.random());
        // No trade yet at the open: the last price starts at the mid.
        book.last = (book.bid + book.ask) / 2;
        book
    }

    /// Applies the symbol's next event at `now_ns` (since the open): moves
    /// the mid, then either trades against the quote or requotes.
    pub(crate) fn step(&mut self, now_ns: f64, rng: &mut impl Rng) {
        let dt = now_ns - self.updated_ns;
        if dt > 0.0 {
            let z: f64 = rng.sample(StandardNormal);
            let var = self.var_per_ns * dt;
            self.mid *= (var.sqrt() * z - 0.5 * var).exp();
            self.updated_ns = now_ns;
        }
        self.seq += 1;
        // One draw feeds every remaining decision of this event.
        let bits: u64 = rng.random();
        if (bits as u32) < TRADE_THRESHOLD {
            self.trade(bits >> 32);
        } else {
            self.requote(bits >> 32);
        }
    }

    /// A trade at the standing quote, buyer- or seller-initiated at random.
    /// It takes at most the displayed size; an emptied side refills at the
    /// same price, as the next order in the queue shows up.
    fn trade(&mut self, bits: u64) {
        let wanted = lots(bits) * ROUND_LOT;
        let refill = lots(bits >> 4) * ROUND_LOT * self.depth;
        let (price, side) = if bits & (1 << 8) == 0 {
            (self.ask, &mut self.ask_size)
        } else {
            (self.bid, &mut self.bid_size)
        };
        let size = wanted.min(*side);
        *side -= size;
        if *side == 0 {
            *side = refill;
        }
        self.last = price;
        self.last_size = size;
        self.volume += u64::from(size);
    }

    /// New quotes around the mid: the usual spread most of the time, one or
    /// two cents wider now and then.
    fn requote(&mut self, bits: u64) {
        let widen = match bits & 0xff {
            0..=178 => 0,
            179..=229 => 1,
            _ => 2,
        };
        let spread = self.base_spread + widen;
        let bid = (self.mid - spread as f64 / 2.0).round().max(1.0) as u64;
        self.bid = bid;
        self.ask = bid + spread;
        self.bid_size = lots(bits >> 8) * ROUND_LOT * self.depth;
        self.ask_size = lots(bits >> 12) * ROUND_LOT * self.depth;
    }
}

/// Lots for one order, from the low four bits of `bits`.
fn lots(bits: u64) -> u32 {
    LOTS[(bits & 0xf) as usize]
}

/// A price in cents as the dollar value on the wire.
pub(crate) fn dollars(cents: u64) -> f64 {
    cents as f64 / 100.0
}
