//! A/B comparison over several rounds: the median of each figure, per
//! step, for two sets of runs of the same scenario (an old and a new build
//! of the server, alternated round by round by `benches/compare.sh`).
//!
//! One run decides nothing on a shared machine (p99 moves 2× between
//! half-hours here), so a change is judged on medians of rounds whose
//! builds ran side by side, with each round's p99 listed to show the spread.

use std::fmt::Write as _;

use crate::report::{fmt_count, fmt_ms, ClassReport, RunReport, StepReport};

/// The median of `values` (the mean of the middle two for an even count);
/// 0 for none.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// One figure of a step, per run.
fn per_run(runs: &[RunReport], step: usize, figure: impl Fn(&StepReport) -> f64) -> Vec<f64> {
    runs.iter()
        .filter_map(|r| r.steps.get(step))
        .map(figure)
        .collect()
}

fn stalled_closed(s: &StepReport) -> f64 {
    s.stalled
        .as_ref()
        .map_or(0.0, |c: &ClassReport| c.disconnected as f64)
}

/// The table: per step, medians of a and b and their ratio (b ÷ a) for
/// healthy deliveries per second, p50, p99, p99.9, the delivered share,
/// the server's and the loadgen's CPU, and stalled subscribers closed;
/// then every round's p99.
pub fn medians_table(a_label: &str, a: &[RunReport], b_label: &str, b: &[RunReport]) -> String {
    let mut out = String::new();
    let scenario = a.first().or(b.first()).map_or("?", |r| r.scenario.as_str());
    let _ = writeln!(
        out,
        "{scenario}: medians of {} run(s) of {a_label} (a) and {} of {b_label} (b); ratio b ÷ a",
        a.len(),
        b.len()
    );
    let _ = writeln!(
        out,
        "{:>9} | {:>8} {:>8} {:>5} | {:>7} {:>7} {:>5} | {:>7} {:>7} {:>5} | {:>7} {:>7} {:>5} | {:>6} {:>6} | {:>5} {:>5} {:>5} | {:>5} {:>5} | {:>3} {:>3}",
        "rate", "deliv a", "deliv b", "b/a", "p50 a", "p50 b", "b/a", "p99 a", "p99 b", "b/a", "p999 a", "p999 b", "b/a",
        "ok a", "ok b", "cpu a", "cpu b", "b/a", "lg a", "lg b", "st a", "st b"
    );
    let steps = a.iter().chain(b).map(|r| r.steps.len()).min().unwrap_or(0);
    let ratio = |x: f64, y: f64| {
        if x > 0.0 {
            format!("{:.2}", y / x)
        } else {
            "-".to_owned()
        }
    };
    let mut p99s = String::new();
    for step in 0..steps {
        let m = |runs: &[RunReport], f: &dyn Fn(&StepReport) -> f64| {
            median(&mut per_run(runs, step, f))
        };
        let deliv = |s: &StepReport| s.healthy.delivered_per_s;
        let p50 = |s: &StepReport| s.healthy.latency.p50_ms;
        let p99 = |s: &StepReport| s.healthy.latency.p99_ms;
        let p999 = |s: &StepReport| s.healthy.latency.p999_ms;
        let ok = |s: &StepReport| s.healthy.delivered_ratio;
        let cpu = |s: &StepReport| s.server_cpu_cores.unwrap_or(0.0);
        let lg = |s: &StepReport| s.loadgen_cpu_cores;
        let rate = a
            .iter()
            .chain(b)
            .find_map(|r| r.steps.get(step))
            .map_or(0.0, |s| s.rate_target);
        let (da, db) = (m(a, &deliv), m(b, &deliv));
        let (p50a, p50b) = (m(a, &p50), m(b, &p50));
        let (p99a, p99b) = (m(a, &p99), m(b, &p99));
        let (p999a, p999b) = (m(a, &p999), m(b, &p999));
        let (ca, cb) = (m(a, &cpu), m(b, &cpu));
        let _ = writeln!(
            out,
            "{:>9} | {:>8} {:>8} {:>5} | {:>7} {:>7} {:>5} | {:>7} {:>7} {:>5} | {:>7} {:>7} {:>5} | {:>6.3} {:>6.3} | {:>5.2} {:>5.2} {:>5} | {:>5.2} {:>5.2} | {:>3} {:>3}",
            fmt_count(rate),
            fmt_count(da), fmt_count(db), ratio(da, db),
            fmt_ms(p50a), fmt_ms(p50b), ratio(p50a, p50b),
            fmt_ms(p99a), fmt_ms(p99b), ratio(p99a, p99b),
            fmt_ms(p999a), fmt_ms(p999b), ratio(p999a, p999b),
            m(a, &ok), m(b, &ok),
            ca, cb, ratio(ca, cb),
            m(a, &lg), m(b, &lg),
            m(a, &stalled_closed), m(b, &stalled_closed),
        );
        let list = |runs: &[RunReport]| {
            per_run(runs, step, p99)
                .iter()
                .map(|v| fmt_ms(*v))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        let _ = writeln!(p99s, "{:>9}: a {}; b {}", fmt_count(rate), list(a), list(b));
    }
    let _ = writeln!(out, "p99 (ms) of each round, in order:");
    out.push_str(&p99s);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&mut []), 0.0);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
