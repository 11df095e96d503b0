//! Observability: what the broker counts and how long each stage takes.
//!
//! - [`latency`]: the per-stage latency HdrHistograms, the once-a-second
//!   ticker that rotates their intervals, and the optional interval log
//!   (`--hdr-log`). It depends on nothing else in the crate.
//! - [`metrics`]: the counters and gauges, each declared once and registered
//!   with a prometheus-client registry; `/metrics` (Prometheus text, with the
//!   stage quantiles read from [`latency`]'s histograms at each scrape),
//!   `/stats` and the shutdown summary. It depends on [`latency`].
pub mod latency;
pub mod metrics;
