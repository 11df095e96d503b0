//! One symbol's simulated top of book and last trade, and how each event
//! changes them.
//!
//! The mid price follows a geometric Brownian motion with the symbol's own
//! volatility, advanced by the simulated time since the symbol's previous
//! event. It starts near the ticker's reference price (`reference.rs`;
//! within ±5 %) or, for a name without one, at a log-normal draw (median
//! [`GENERATED_MEDIAN`], a few pennies to a few thousand dollars). Quotes
//! are placed around the mid on the price's tick grid, as US equities are
//! quoted: $0.01 at or above $1, $0.0001 below. Trades hit the standing
//! quote. Prices are kept in integer units of $0.0001 and only converted to
//! dollars when a tick is built: `units as f64 / 10_000.0` is the double
//! closest to the decimal price, so every price a reader sees is on its
//! grid as far as a double can be, and no rounding error accumulates.
use rand::Rng;
use rand_distr::StandardNormal;

use crate::reference::Reference;

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

/// Price units per dollar: prices are integer multiples of $0.0001.
pub(crate) const UNITS_PER_DOLLAR: u64 = 10_000;

/// One cent, the tick size at or above $1.
const CENT: u64 = 100;

/// A named ticker starts within this fraction of its reference price
/// (a log-normal jitter of 2 %, clamped).
const REFERENCE_BAND: f64 = 0.05;

/// Generated names: log-normal start prices with this median (dollars)
/// and log standard deviation, clamped to [`GENERATED_RANGE`]: about 70 %
/// between $8 and $110, 1 % under $1.
const GENERATED_MEDIAN: f64 = 30.0;
const GENERATED_SIGMA: f64 = 1.3;
const GENERATED_RANGE: (f64, f64) = (0.05, 3_000.0);

/// Generated names' annual volatility: log-normal around this, cheaper
/// names more volatile (×1.8 under $5), clamped to 10 %–150 %.
const GENERATED_VOL: f64 = 0.30;

/// Below $1 the spread is about this fraction of the price (0.3 %).
const SUB_DOLLAR_SPREAD: f64 = 0.003;

/// The simulated state of one symbol.
#[derive(Debug, Clone)]
pub(crate) struct Book {
    /// Variance of the log price per nanosecond.
    var_per_ns: f64,
    /// Usual spread in cents (at or above $1).
    base_spread: u64,
    /// Displayed size multiplier: deeper books show bigger quotes.
    depth: u32,
    /// Mid price in (fractional) units of $0.0001.
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
    /// active), near `reference` when the ticker has one, with its other
    /// constants drawn from `rng`.
    pub(crate) fn new(rank: usize, reference: Option<Reference>, rng: &mut impl Rng) -> Self {
        let z: f64 = rng.sample(StandardNormal);
        let (start_dollars, annual_vol) = match reference {
            Some(r) => {
                let jitter = (0.02 * z).clamp(-REFERENCE_BAND, REFERENCE_BAND);
                (r.price * jitter.exp(), r.annual_vol)
            }
            None => {
                let (lo, hi) = GENERATED_RANGE;
                let price = (GENERATED_MEDIAN.ln() + GENERATED_SIGMA * z)
                    .exp()
                    .clamp(lo, hi);
                let z_vol: f64 = rng.sample(StandardNormal);
                let cheap = if price < 5.0 { 1.8 } else { 1.0 };
                let vol = (GENERATED_VOL * cheap * (0.35 * z_vol).exp()).clamp(0.10, 1.5);
                (price, vol)
            }
        };
        let start = start_dollars * UNITS_PER_DOLLAR as f64;
        // Dearer stocks quote wider in cents; the long tail of quieter names
        // is less liquid and often a cent wider still.
        let wide_tail = rank >= 50 && rng.random::<bool>();
        let base_spread = 1 + (start_dollars / 250.0) as u64 + u64::from(wide_tail);
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
        // No trade yet at the open: the last price starts at the mid (on
        // its grid).
        book.last = snap_down(book.bid + (book.ask - book.bid) / 2);
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
    /// two ticks wider now and then. At or above $1 both sides are on the
    /// cent grid; below, on the $0.0001 grid, with an ask that reaches $1
    /// rounded up to a whole cent.
    fn requote(&mut self, bits: u64) {
        let widen = match bits & 0xff {
            0..=178 => 0,
            179..=229 => 1,
            _ => 2,
        };
        let (bid, ask) = if self.mid >= UNITS_PER_DOLLAR as f64 {
            let spread = (self.base_spread + widen) * CENT;
            let bid = ((self.mid - spread as f64 / 2.0) / CENT as f64).round() as u64 * CENT;
            let bid = bid.max(UNITS_PER_DOLLAR);
            (bid, bid + spread)
        } else {
            let spread = (self.mid * SUB_DOLLAR_SPREAD).round().max(1.0) as u64 + widen;
            let bid = (self.mid - spread as f64 / 2.0).round().max(1.0) as u64;
            let ask = bid + spread;
            let ask = if ask >= UNITS_PER_DOLLAR {
                ask.div_ceil(CENT) * CENT
            } else {
                ask
            };
            (bid, ask)
        };
        self.bid = bid;
        self.ask = ask;
        self.bid_size = lots(bits >> 8) * ROUND_LOT * self.depth;
        self.ask_size = lots(bits >> 12) * ROUND_LOT * self.depth;
    }
}

/// Lots for one order, from the low four bits of `bits`.
fn lots(bits: u64) -> u32 {
    LOTS[(bits & 0xf) as usize]
}

/// The tick size (in units of $0.0001) for a price: a cent at or above
/// $1, $0.0001 below.
pub(crate) fn tick_size(units: u64) -> u64 {
    if units >= UNITS_PER_DOLLAR {
        CENT
    } else {
        1
    }
}

/// `units` rounded down onto its price's grid.
fn snap_down(units: u64) -> u64 {
    units / tick_size(units) * tick_size(units)
}

/// A price in units of $0.0001 as the dollar value on the wire.
pub(crate) fn dollars(units: u64) -> f64 {
    units as f64 / UNITS_PER_DOLLAR as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_pcg::Pcg64Mcg;

    fn on_grid(units: u64) -> bool {
        units % tick_size(units) == 0
    }

    #[test]
    fn quotes_keep_to_the_tick_size_on_both_sides_of_a_dollar() {
        let mut rng = Pcg64Mcg::seed_from_u64(1);
        for dollars_start in [0.0731, 0.42, 0.9989, 0.9999, 1.0, 1.004, 3.17, 245.5] {
            let reference = Reference {
                price: dollars_start,
                annual_vol: 3.0,
            };
            let mut book = Book::new(0, Some(reference), &mut rng);
            for k in 0..5_000 {
                // A minute apart at 300 % a year: prices cross $1 often.
                book.step(k as f64 * 60e9, &mut rng);
                for p in [book.bid, book.ask, book.last] {
                    assert!(on_grid(p), "{p} units off the grid (start {dollars_start})");
                }
                assert!(book.bid < book.ask && book.bid > 0);
            }
        }
    }
}
