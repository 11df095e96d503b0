//! The once-a-second `--stats` line: rate, latency percentiles, gaps (and
//! how many of the missed ticks the broker's notices named), ticks
//! recovered by resumes, resets, reconnections.

use std::time::Duration;

use tickcast_client::Stats;

/// One line describing `delta`, the activity over `elapsed`.
pub fn format(delta: &Stats, elapsed: Duration) -> String {
    let rate = delta.ticks as f64 / elapsed.as_secs_f64().max(1e-9);
    let latency = if delta.latency.is_empty() {
        "latency -".to_owned()
    } else {
        let h = &delta.latency;
        format!(
            "latency p50 {} p99 {} p99.9 {} max {}",
            ns(h.value_at_quantile(0.5)),
            ns(h.value_at_quantile(0.99)),
            ns(h.value_at_quantile(0.999)),
            ns(h.max())
        )
    };
    format!(
        "rate {rate:.0}/s  {latency}  gaps {} (missed {}, noticed {})  recovered {}  resets {}  reconnects {}",
        delta.gaps, delta.missed, delta.gap_noticed, delta.recovered, delta.resets, delta.reconnects
    )
}

/// A latency in the unit that keeps it short.
fn ns(v: u64) -> String {
    match v {
        0..1_000_000 => format!("{:.0}µs", v as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2}ms", v as f64 / 1e6),
        _ => format!("{:.2}s", v as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shows_rate_percentiles_and_gaps() {
        let mut stats = Stats {
            ticks: 500,
            gaps: 2,
            missed: 7,
            gap_noticed: 5,
            recovered: 40,
            resets: 1,
            ..Stats::default()
        };
        for v in [20_000u64, 30_000, 2_500_000] {
            stats.latency.record(v).unwrap();
        }
        let line = format(&stats, Duration::from_millis(500));
        assert!(line.starts_with("rate 1000/s  latency p50 30µs"), "{line}");
        assert!(
            line.contains("max 2.50ms")
                && line.contains("gaps 2 (missed 7, noticed 5)  recovered 40  resets 1"),
            "{line}"
        );
        assert!(format(&Stats::default(), Duration::from_secs(1)).contains("latency -"));
    }
}
