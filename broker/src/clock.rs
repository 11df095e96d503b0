//! Wall-clock time in nanoseconds since the Unix epoch.
//!
//! Every latency stage is measured against tick `ts` values, which are wall
//! clock nanoseconds set by the feed, so the broker stamps its own stages on
//! the same clock. On Linux this is a vDSO call of about 20 ns.

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
