//! The clock of the tick's `ts`: wall-clock nanoseconds since the Unix epoch.
//!
//! Feeds stamp ticks with it and every reader measures latency against it
//! (broker stages, SDK receive latency, the load generator), so there is one
//! definition. On Linux this is a vDSO call of about 20 ns.

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
