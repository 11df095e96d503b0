//! When ticks happen: Poisson arrivals at an average rate, optionally hotter
//! just after the market open.
//!
//! Gaps between events are exponential, which is what independent orders
//! arriving at a constant rate produce. The open burst multiplies the rate by
//! [`BURST_PEAK`] at the open and lets the excess decay exponentially, so the
//! first minutes are busy and the rest of the session runs at the base rate.

use rand::Rng;
use rand_distr::Exp1;

/// Rate multiplier at the instant of the open.
const BURST_PEAK: f64 = 4.0;

/// Time constant of the burst's decay: about 3× the base rate after one
/// minute, 1.1× after five.
const BURST_DECAY_NS: f64 = 90e9;

/// The arrival clock of one market.
#[derive(Debug, Clone)]
pub(crate) struct Arrivals {
    /// Simulated time since the open, in nanoseconds. An `f64` keeps the
    /// fractional nanoseconds of short gaps, so high rates do not drift; it
    /// stays exact to well under a nanosecond for months of simulated time.
    elapsed_ns: f64,
    /// Mean gap at the base rate.
    mean_gap_ns: f64,
    open_burst: bool,
}

impl Arrivals {
    /// A clock at the open producing `rate` events per second on average.
    pub(crate) fn new(rate: f64, open_burst: bool) -> Self {
        Self {
            elapsed_ns: 0.0,
            mean_gap_ns: 1e9 / rate,
            open_burst,
        }
    }

    /// Advances to the next event and returns its time since the open (ns).
    ///
    /// During a burst the gap is drawn at the rate of the current instant.
    /// The rate changes over tens of seconds while gaps are microseconds to
    /// milliseconds, so this matches the exact time-varying process far more
    /// closely than anything a consumer could measure.
    pub(crate) fn advance(&mut self, rng: &mut impl Rng) -> f64 {
        let unit: f64 = rng.sample(Exp1);
        let mut gap = unit * self.mean_gap_ns;
        if self.open_burst {
            gap /= burst_factor(self.elapsed_ns);
        }
        self.elapsed_ns += gap;
        self.elapsed_ns
    }
}

/// How many times the base rate applies `elapsed_ns` after the open.
fn burst_factor(elapsed_ns: f64) -> f64 {
    1.0 + (BURST_PEAK - 1.0) * (-elapsed_ns / BURST_DECAY_NS).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_starts_at_peak_and_decays_to_base() {
        assert_eq!(burst_factor(0.0), BURST_PEAK);
        assert!(burst_factor(60e9) > 2.0);
        assert!(burst_factor(600e9) < 1.01);
    }
}
