//! Observability: counters and per-stage latency histograms.
pub mod latency;
pub mod metrics;
