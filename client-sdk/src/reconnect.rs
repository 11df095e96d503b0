//! When to try again after the connection is lost: exponential backoff with
//! jitter.
//!
//! Jitter matters for a broker restart: every client loses its connection at
//! the same instant, and without it they would all come back in the same
//! millisecond, attempt after attempt.

use std::time::Duration;

use rand::Rng;

/// How the client reconnects after losing its connection.
///
/// The delay before attempt `n` (from 1) is `min_delay * 2^(n-1)`, capped at
/// `max_delay`, then reduced by a random fraction of up to `jitter` (so with
/// `jitter = 0.5` it lies between half and all of the nominal delay).
#[derive(Debug, Clone, PartialEq)]
pub struct ReconnectPolicy {
    /// Delay before the first attempt.
    pub min_delay: Duration,
    /// Longest delay between attempts.
    pub max_delay: Duration,
    /// Fraction (0 to 1) of each delay that is randomised away.
    pub jitter: f64,
    /// Attempts after one loss before giving up; `None` for no limit.
    /// `Some(0)` never reconnects.
    pub max_attempts: Option<u32>,
}

impl Default for ReconnectPolicy {
    /// 100 ms doubling up to 5 s, 50 % jitter, retrying forever.
    fn default() -> Self {
        Self {
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            jitter: 0.5,
            max_attempts: None,
        }
    }
}

impl ReconnectPolicy {
    /// A policy that never reconnects: the event stream ends when the
    /// connection does.
    pub fn never() -> Self {
        Self {
            max_attempts: Some(0),
            ..Self::default()
        }
    }

    /// Whether attempt number `attempt` (from 1) is allowed.
    pub fn allows(&self, attempt: u32) -> bool {
        self.max_attempts.is_none_or(|max| attempt <= max)
    }

    /// The delay before attempt number `attempt` (from 1), jitter included.
    pub fn delay(&self, attempt: u32) -> Duration {
        let nominal = self.nominal_delay(attempt);
        let jitter = self.jitter.clamp(0.0, 1.0);
        if jitter == 0.0 {
            return nominal;
        }
        let keep = 1.0 - rand::rng().random_range(0.0..=jitter);
        nominal.mul_f64(keep)
    }

    fn nominal_delay(&self, attempt: u32) -> Duration {
        // Past 2^20 the cap has long been reached; bounding the shift keeps
        // the multiplication from overflowing.
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        self.min_delay
            .saturating_mul(factor)
            .min(self.max_delay.max(self.min_delay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_up_to_the_cap() {
        let policy = ReconnectPolicy {
            jitter: 0.0,
            ..ReconnectPolicy::default()
        };
        let ms = |n| policy.delay(n).as_millis();
        assert_eq!(
            [ms(1), ms(2), ms(3), ms(6), ms(7)],
            [100, 200, 400, 3200, 5000]
        );
        assert_eq!(policy.delay(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let policy = ReconnectPolicy::default();
        for attempt in 1..200 {
            let nominal = policy.nominal_delay(attempt);
            let delay = policy.delay(attempt);
            assert!(delay <= nominal && delay >= nominal / 2, "{delay:?}");
        }
    }

    #[test]
    fn attempts_are_bounded_only_when_asked() {
        assert!(ReconnectPolicy::default().allows(u32::MAX));
        assert!(!ReconnectPolicy::never().allows(1));
        let three = ReconnectPolicy {
            max_attempts: Some(3),
            ..ReconnectPolicy::default()
        };
        assert!(three.allows(3) && !three.allows(4));
    }
}
