//! HdrHistogram's classic percentile-distribution text (`.hgrm`).
//!
//! The format of Java HdrHistogram's `outputPercentileDistribution`
//! (`Value Percentile TotalCount 1/(1-Percentile)`), which the HdrHistogram
//! plotters and most latency tooling read, so our runs can be overlaid with
//! anyone else's (wrk2, NATS bench exports) on one chart.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

/// Renders `h` as a percentile distribution, values divided by `unit_ratio`
/// (1e6 turns nanoseconds into milliseconds).
pub fn percentile_distribution(h: &Histogram<u64>, unit_ratio: f64) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let value = v.value_iterated_to() as f64 / unit_ratio;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                let _ = writeln!(
                    out,
                    "{value:12.3} {q:2.12} {total:10} {:14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(out, "{value:12.3} {q:2.12} {total:10}");
            }
        }
    }
    let (mean, stdev, max) = if h.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (
            h.mean() / unit_ratio,
            h.stdev() / unit_ratio,
            h.max() as f64 / unit_ratio,
        )
    };
    let _ = writeln!(
        out,
        "#[Mean    = {mean:12.3}, StdDeviation   = {stdev:12.3}]"
    );
    let _ = writeln!(
        out,
        "#[Max     = {max:12.3}, Total count    = {:12}]",
        h.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        // HdrHistogram's sub-bucket count: 2·10^digits rounded up to a power of two.
        (2 * 10u64.pow(u32::from(h.sigfig()))).next_power_of_two()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::new_histogram;

    #[test]
    fn distribution_has_the_classic_shape() {
        let mut h = new_histogram();
        for ms in 1..=1000u64 {
            h.record(ms * 1_000_000).unwrap();
        }
        let text = percentile_distribution(&h, 1e6);
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(
            header,
            ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
        );
        assert_eq!(lines.next(), Some(""));
        let rows: Vec<Vec<f64>> = text
            .lines()
            .skip(2)
            .take_while(|l| !l.starts_with('#'))
            .map(|l| l.split_whitespace().map(|f| f.parse().unwrap()).collect())
            .collect();
        assert!(rows.len() > 20);
        let first = &rows[0];
        assert!((first[0] - 1.0).abs() < 0.01 && first[1] == 0.0 && first[2] == 1.0);
        let last = rows.last().unwrap();
        assert_eq!(last.len(), 3, "the 100% row has no 1/(1-p) column");
        assert!((last[0] - 1000.0).abs() < 1.0 && last[1] == 1.0 && last[2] == 1000.0);
        assert!(rows
            .windows(2)
            .all(|w| w[0][1] <= w[1][1] && w[0][2] <= w[1][2]));
        assert!(text.contains("Total count    =         1000]"));
        let empty = percentile_distribution(&new_histogram(), 1e6);
        assert!(empty.contains("Total count    =            0]"));
    }
}
