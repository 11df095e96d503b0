//! When ticks happen: Poisson arrivals at an average rate, optionally hotter
//! just after the market open, optionally shaped like a trading day.
//!
//! Gaps between events are exponential, which is what independent orders
//! arriving at a constant rate produce. The open burst multiplies the rate by
//! [`BURST_PEAK`] at the open and lets the excess decay exponentially, so the
//! first minutes are busy and the rest of the session runs at the base rate.
//!
//! The session (`--session`) is the 6.5 hours from 09:30 to 16:00 New York
//! time. Over it the rate follows the U-shaped intraday volume profile seen
//! on US equities, `0.5 + 1.5·(2x − 1)²` at the fraction `x` of the session
//! gone (2× the average at the open and the close, half of it at midday;
//! the profile averages exactly 1), plus an opening burst of
//! [`SESSION_OPEN_EXTRA`]× decaying over [`SESSION_OPEN_DECAY_NS`] (the
//! crossing and the first repricing). After the close the rate drops to
//! [`AFTER_CLOSE`] of the average: late prints and after-hours quotes.

use rand::Rng;
use rand_distr::Exp1;

/// Rate multiplier at the instant of the open.
const BURST_PEAK: f64 = 4.0;

/// Time constant of the burst's decay: about 3× the base rate after one
/// minute, 1.1× after five.
const BURST_DECAY_NS: f64 = 90e9;

/// Length of the session, 09:30 to 16:00, in nanoseconds.
pub(crate) const SESSION_NS: f64 = 6.5 * 3600.0 * 1e9;

/// The opening burst of the session: this many times the average extra at
/// the open, decaying with [`SESSION_OPEN_DECAY_NS`].
const SESSION_OPEN_EXTRA: f64 = 2.0;

/// Time constant of the session's opening burst: three minutes.
const SESSION_OPEN_DECAY_NS: f64 = 180e9;

/// The rate after the close, as a share of the session average.
const AFTER_CLOSE: f64 = 0.02;

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
    session: bool,
}

impl Arrivals {
    /// A clock at the open producing `rate` events per second on average.
    pub(crate) fn new(rate: f64, open_burst: bool, session: bool) -> Self {
        Self {
            elapsed_ns: 0.0,
            mean_gap_ns: 1e9 / rate,
            open_burst,
            session,
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
        if self.session {
            gap /= session_factor(self.elapsed_ns);
        }
        self.elapsed_ns += gap;
        self.elapsed_ns
    }
}

/// How many times the base rate applies `elapsed_ns` after the open.
fn burst_factor(elapsed_ns: f64) -> f64 {
    1.0 + (BURST_PEAK - 1.0) * (-elapsed_ns / BURST_DECAY_NS).exp()
}

/// How many times the average rate applies `elapsed_ns` after the open of
/// a session.
pub(crate) fn session_factor(elapsed_ns: f64) -> f64 {
    if elapsed_ns >= SESSION_NS {
        return AFTER_CLOSE;
    }
    let x = elapsed_ns / SESSION_NS;
    let u_shape = 0.5 + 1.5 * (2.0 * x - 1.0).powi(2);
    u_shape + SESSION_OPEN_EXTRA * (-elapsed_ns / SESSION_OPEN_DECAY_NS).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_profile_is_a_u_with_an_opening_burst_and_a_quiet_close() {
        assert!((session_factor(0.0) - 4.0).abs() < 1e-9);
        assert!((session_factor(SESSION_NS / 2.0) - 0.5).abs() < 1e-6);
        assert!((session_factor(SESSION_NS - 1.0) - 2.0).abs() < 1e-6);
        assert_eq!(session_factor(SESSION_NS), AFTER_CLOSE);
        // Averages about 1 over the session (the burst adds ~1.5 %).
        let n = 10_000;
        let mean = (0..n)
            .map(|i| session_factor((i as f64 + 0.5) / n as f64 * SESSION_NS))
            .sum::<f64>()
            / n as f64;
        assert!((mean - 1.015).abs() < 0.005, "{mean}");
    }

    #[test]
    fn burst_starts_at_peak_and_decays_to_base() {
        assert_eq!(burst_factor(0.0), BURST_PEAK);
        assert!(burst_factor(60e9) > 2.0);
        assert!(burst_factor(600e9) < 1.01);
    }
}
