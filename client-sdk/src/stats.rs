//! Counters and the receive-latency histogram of one client.
//!
//! They are updated by the [`crate::Client`] as it hands out events, on the
//! program's own task, so recording needs no lock and no atomic; reading them
//! is a copy ([`crate::Client::stats`]).

use hdrhistogram::Histogram;

/// Largest latency recorded exactly: one minute. Anything above is recorded
/// as one minute (a clock that far off is not a transit time).
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// A snapshot of a client's counters since it was created.
///
/// Take two snapshots and [`Stats::since`] gives the activity in between
/// (rates, interval percentiles).
#[derive(Debug, Clone)]
pub struct Stats {
    /// Ticks delivered.
    pub ticks: u64,
    /// Payload bytes of the delivered ticks.
    pub bytes: u64,
    /// [`crate::Event::Gap`] events.
    pub gaps: u64,
    /// Ticks missed in those gaps (sum of `got - expected`).
    pub missed: u64,
    /// Of `missed`, the ticks the broker's gap notices named (conflated,
    /// dropped or rate-capped for this client, on purpose); the rest were
    /// seen missing from a `seq` jump alone.
    pub gap_noticed: u64,
    /// [`crate::Event::Recovered`] events: symbols resumed after a
    /// reconnection.
    pub recoveries: u64,
    /// Ticks those resumes replayed (the missed ticks received after all).
    pub recovered: u64,
    /// Ticks dropped because their `seq` was not new.
    pub duplicates: u64,
    /// [`crate::Event::Reset`] and [`crate::Event::SeqReset`] events: a
    /// symbol started over.
    pub resets: u64,
    /// Successful reconnections.
    pub reconnects: u64,
    /// [`crate::Event::Error`] events.
    pub errors: u64,
    /// Receive time minus tick `ts`, in nanoseconds, of every delivered tick
    /// except each symbol's first on a connection (the snapshot, whose `ts`
    /// can be arbitrarily old). Resolution 1 µs, 3 significant digits.
    pub latency: Histogram<u64>,
}

impl Default for Stats {
    fn default() -> Self {
        // Constant bounds that hdrhistogram accepts (low >= 1, high >= 2 *
        // low, sigfig <= 5): nothing at run time can make this fail.
        let latency = Histogram::new_with_bounds(1_000, MAX_LATENCY_NS, 3)
            .expect("constant histogram bounds are valid");
        Self {
            ticks: 0,
            bytes: 0,
            gaps: 0,
            missed: 0,
            gap_noticed: 0,
            recoveries: 0,
            recovered: 0,
            duplicates: 0,
            resets: 0,
            reconnects: 0,
            errors: 0,
            latency,
        }
    }
}

impl Stats {
    /// The activity between `earlier` (a previous snapshot of the same
    /// client) and `self`.
    pub fn since(&self, earlier: &Stats) -> Stats {
        let mut latency = self.latency.clone();
        // Both come from the same client, so `earlier` holds a subset of the
        // counts and subtracting cannot fail; if it did, the cumulative
        // histogram is still a truthful (if wider) answer.
        let _ = latency.subtract(&earlier.latency);
        Stats {
            ticks: self.ticks - earlier.ticks.min(self.ticks),
            bytes: self.bytes - earlier.bytes.min(self.bytes),
            gaps: self.gaps - earlier.gaps.min(self.gaps),
            missed: self.missed - earlier.missed.min(self.missed),
            gap_noticed: self.gap_noticed - earlier.gap_noticed.min(self.gap_noticed),
            recoveries: self.recoveries - earlier.recoveries.min(self.recoveries),
            recovered: self.recovered - earlier.recovered.min(self.recovered),
            duplicates: self.duplicates - earlier.duplicates.min(self.duplicates),
            resets: self.resets - earlier.resets.min(self.resets),
            reconnects: self.reconnects - earlier.reconnects.min(self.reconnects),
            errors: self.errors - earlier.errors.min(self.errors),
            latency,
        }
    }

    pub(crate) fn record_latency(&mut self, ns: u64) {
        self.latency.saturating_record(ns.min(MAX_LATENCY_NS));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_gives_the_interval() {
        let mut stats = Stats {
            ticks: 10,
            ..Stats::default()
        };
        stats.record_latency(5_000);
        let earlier = stats.clone();
        stats.ticks = 25;
        stats.gaps = 1;
        stats.record_latency(2_000_000);
        stats.record_latency(u64::MAX);
        let delta = stats.since(&earlier);
        assert_eq!((delta.ticks, delta.gaps), (15, 1));
        assert_eq!(delta.latency.len(), 2);
        assert!(delta.latency.min() >= 1_990_000);
        assert!(delta.latency.max() >= MAX_LATENCY_NS);
    }
}
