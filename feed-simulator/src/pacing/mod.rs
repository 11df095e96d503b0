//! Pacing: when each event of a stream is due, at a chosen speed.
//!
//! The schedule is absolute: the first event maps to the moment pacing
//! starts, and event `k` is due at `start + (ts_k - ts_0) / speed`. Each due
//! time is computed from the start, never from the previous event, so sleep
//! overshoot does not accumulate into drift. A sender that falls behind is
//! not forgiven its lateness either: late events are due at once, and the
//! sender catches up instead of sliding the whole schedule (the "coordinated
//! omission" mistake that hides a slow system's real delays).
//!
//! [`Pacer`] computes the schedule; [`pace`] is the delivery loop over it
//! that every paced feed shares (batching what is due together), fed by a
//! [`PacedSource`] and draining into a [`BatchSink`].

mod driver;
mod sources;

pub use driver::{pace, BatchSink, PaceError, PacedSource};

use std::str::FromStr;
use std::time::Duration;

use tokio::time::Instant;

/// How fast to play event time back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// This many seconds of event time per second of real time.
    Factor(f64),
    /// As fast as possible, no waiting.
    Max,
}

/// A speed that is not a positive number or `max`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("speed must be a positive number (e.g. 1, 10, 0.5) or `max`, not `{0}`")]
pub struct SpeedError(String);

impl FromStr for Speed {
    type Err = SpeedError;

    /// Parses `1`, `10`, `0.5` (an optional trailing `x` is allowed: `10x`)
    /// or `max`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if text.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        let number = text.strip_suffix(['x', 'X']).unwrap_or(text);
        match number.parse::<f64>() {
            Ok(f) if f.is_finite() && f > 0.0 => Ok(Speed::Factor(f)),
            _ => Err(SpeedError(s.to_owned())),
        }
    }
}

/// Maps event times (ns) to due instants on an absolute schedule.
#[derive(Debug, Clone)]
pub struct Pacer {
    speed: Speed,
    /// The start instant and the event time mapped to it, set by the first
    /// event seen.
    origin: Option<(Instant, u64)>,
}

impl Pacer {
    /// A pacer whose schedule starts with the first event it is given.
    pub fn new(speed: Speed) -> Pacer {
        Pacer {
            speed,
            origin: None,
        }
    }

    /// Waits until the event at `event_ts_ns` is due. Returns at once for
    /// [`Speed::Max`] and when the event is already due or late.
    pub async fn wait_until_due(&mut self, event_ts_ns: u64) {
        match self.due_at(event_ts_ns) {
            Due::Now => {}
            Due::At(due) => tokio::time::sleep_until(due).await,
            // Further away than an `Instant` can express: tokio clamps a
            // maximal sleep to its own far future.
            Due::Never => tokio::time::sleep(Duration::MAX).await,
        }
    }

    /// Whether the event at `event_ts_ns` is due now (it starts the schedule
    /// if it is the first event).
    pub fn is_due(&mut self, event_ts_ns: u64) -> bool {
        matches!(self.due_at(event_ts_ns), Due::Now)
    }

    fn due_at(&mut self, event_ts_ns: u64) -> Due {
        let Speed::Factor(factor) = self.speed else {
            return Due::Now;
        };
        let (start, first_ts) = *self
            .origin
            .get_or_insert_with(|| (Instant::now(), event_ts_ns));
        // An event stamped before the first one is simply due at once.
        let event_offset = event_ts_ns.saturating_sub(first_ts);
        // `as` saturates, so a huge offset at a tiny speed cannot wrap.
        let real_offset = Duration::from_nanos((event_offset as f64 / factor) as u64);
        match start.checked_add(real_offset) {
            Some(due) if due > Instant::now() => Due::At(due),
            Some(_) => Due::Now,
            None => Due::Never,
        }
    }
}

/// When an event is due.
enum Due {
    Now,
    At(Instant),
    Never,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_parses_numbers_and_max() {
        assert_eq!("1".parse(), Ok(Speed::Factor(1.0)));
        assert_eq!("10".parse(), Ok(Speed::Factor(10.0)));
        assert_eq!("0.5".parse(), Ok(Speed::Factor(0.5)));
        assert_eq!("10x".parse(), Ok(Speed::Factor(10.0)));
        assert_eq!("max".parse(), Ok(Speed::Max));
        assert_eq!("MAX".parse(), Ok(Speed::Max));
    }

    #[test]
    fn speed_rejects_non_positive_and_nan() {
        for bad in ["0", "-1", "NaN", "inf", "", "fast", "x"] {
            assert!(bad.parse::<Speed>().is_err(), "{bad:?} accepted");
        }
    }
}
