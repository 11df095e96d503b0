//! Latency recording: receive time − intended send time, into HdrHistograms.
//!
//! One histogram per second of the measured window (for the over-time
//! charts), merged into the whole window's on demand: one record per tick,
//! not two, on the load generator's hottest path. Values are nanoseconds at
//! 3 significant digits (0.1% resolution at any magnitude), recorded with
//! `saturating_record`, so an absurd value is clamped instead of lost. Each
//! subscriber thread has its own recorder (no sharing on the hot path); they
//! are merged at the end.

use hdrhistogram::Histogram;
use serde::Serialize;

/// The largest latency tracked exactly: a minute (anything slower is a
/// failed run anyway, and is clamped to this).
const MAX_NS: u64 = 60_000_000_000;

/// The tick clock (`ts` is stamped with it), so receive − `ts` is a true
/// one-way delay on the same host.
pub use tickcast_protocol::clock::now_ns;

/// A new empty latency histogram (ns, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    // 1..=60 s at 3 digits is a valid configuration; creation cannot fail.
    Histogram::new_with_bounds(1, MAX_NS, 3).unwrap_or_else(|_| unreachable!())
}

/// Latency over a window and per second of it.
#[derive(Debug, Clone)]
pub struct LatencyRecorder {
    per_second: Vec<Histogram<u64>>,
    /// Deliveries past the last per-second slot.
    later: Histogram<u64>,
    max_seconds: usize,
}

impl LatencyRecorder {
    /// A recorder with per-second slots for at most `max_seconds` seconds.
    pub fn new(max_seconds: usize) -> Self {
        Self {
            per_second: Vec::new(),
            later: new_histogram(),
            max_seconds,
        }
    }

    /// Records one delivery: intended send time `ts`, received at `recv`
    /// (both ns since the epoch), `second` = which second of the window.
    #[inline]
    pub fn record(&mut self, ts: u64, recv: u64, second: usize) {
        let delay = recv.saturating_sub(ts).max(1);
        if second >= self.max_seconds {
            self.later.saturating_record(delay);
            return;
        }
        if second >= self.per_second.len() {
            self.per_second.resize_with(second + 1, new_histogram);
        }
        self.per_second[second].saturating_record(delay);
    }

    /// Adds another recorder's values into this one.
    pub fn merge(&mut self, other: &LatencyRecorder) {
        // Same bounds on both sides, so addition cannot fail.
        let _ = self.later.add(&other.later);
        if other.per_second.len() > self.per_second.len() {
            self.per_second
                .resize_with(other.per_second.len(), new_histogram);
        }
        for (mine, theirs) in self.per_second.iter_mut().zip(&other.per_second) {
            let _ = mine.add(theirs);
        }
    }

    /// The whole window's histogram.
    pub fn histogram(&self) -> Histogram<u64> {
        let mut total = self.later.clone();
        for second in &self.per_second {
            // Same bounds on both sides, so addition cannot fail.
            let _ = total.add(second);
        }
        total
    }

    /// One histogram per second of the window.
    pub fn per_second(&self) -> &[Histogram<u64>] {
        &self.per_second
    }
}

/// The usual percentiles of a histogram, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct Summary {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// 99.99th percentile.
    pub p9999_ms: f64,
    /// Largest value.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

impl Summary {
    /// Summarises `h` (ns values).
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |ns: u64| ns as f64 / 1e6;
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p90_ms: ms(h.value_at_quantile(0.9)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            p9999_ms: ms(h.value_at_quantile(0.9999)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn a_known_delay_comes_back_within_histogram_precision() {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(1);
        let mut rec = LatencyRecorder::new(10);
        let mut exact = Vec::new();
        let base = 1_763_900_000_000_000_000u64;
        for i in 0..100_000u64 {
            // 5 ms ± 0.5 ms of jitter, and every 1000th delivery 50 ms late.
            let delay = if i % 1000 == 999 {
                50_000_000
            } else {
                5_000_000 + rng.random_range(0..1_000_000) - 500_000
            };
            let ts = base + i * 10_000;
            rec.record(ts, ts + delay, (i / 10_000) as usize);
            exact.push(delay);
        }
        exact.sort_unstable();
        let s = Summary::of(&rec.histogram());
        assert_eq!(s.count, 100_000);
        let within = |got_ms: f64, want_ns: u64| {
            let want = want_ns as f64 / 1e6;
            assert!(
                (got_ms - want).abs() <= want * 0.001 + 1e-6,
                "{got_ms} vs {want}"
            );
        };
        within(s.p50_ms, exact[49_999]);
        within(s.p99_ms, exact[98_999]);
        within(s.max_ms, 50_000_000);
        assert!((5.0..5.1).contains(&s.mean_ms), "{}", s.mean_ms);
        assert_eq!(rec.per_second().len(), 10);
        assert!(rec.per_second().iter().all(|h| h.len() == 10_000));
        let mut merged = LatencyRecorder::new(10);
        merged.merge(&rec);
        merged.merge(&rec);
        assert_eq!(merged.histogram().len(), 200_000);
        assert_eq!(merged.per_second()[3].len(), 20_000);
    }

    #[test]
    fn clock_skew_and_huge_delays_are_clamped_not_lost() {
        let mut rec = LatencyRecorder::new(0);
        rec.record(100, 50, 0);
        rec.record(0, u64::MAX, 0);
        assert_eq!(rec.histogram().len(), 2);
        assert!(rec.per_second().is_empty());
    }
}
