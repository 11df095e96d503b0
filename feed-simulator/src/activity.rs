//! How active each symbol is: a Zipf law over activity ranks.
//!
//! The symbol of rank `r` (0 = most active) gets activity proportional to
//! `1 / (r + 1)^s`. With the default `s` = 1.0 the top 10% of 100 symbols
//! produce about 56% of the ticks, close to what a real tape shows. One
//! function, so that everything drawing symbols by activity (the market's
//! tick generator, the load generator's choice of subscriber topics) draws
//! them by the same law.

/// The default Zipf exponent `s`: activity ∝ `1 / rank`.
pub const DEFAULT_ZIPF_EXPONENT: f64 = 1.0;

/// Unnormalised activity weights of `n` symbols, most active first: the
/// symbol of rank `r` (from 0) weighs `1 / (r + 1)^zipf_exponent`.
pub fn activity_weights(n: usize, zipf_exponent: f64) -> Vec<f64> {
    // `powf(-s)`, not `1 / powf(s)`: the two can differ in the last bit, and
    // this is the form every recorded feed was generated with.
    (1..=n)
        .map(|rank| (rank as f64).powf(-zipf_exponent))
        .collect()
}

/// Cumulative activity shares: entry `r` is the share of ranks `0..=r`, the
/// last is exactly 1.0. A uniform draw `u` in `[0, 1)` picks the first rank
/// whose entry exceeds `u`.
pub(crate) fn activity_cdf(weights: &[f64]) -> Vec<f64> {
    let total: f64 = weights.iter().sum();
    let mut acc = 0.0;
    let mut cdf: Vec<f64> = weights
        .iter()
        .map(|w| {
            acc += w;
            acc / total
        })
        .collect();
    // Rounding may leave the last share a hair under 1.0; a draw above it
    // must still land on the last symbol.
    if let Some(last) = cdf.last_mut() {
        *last = 1.0;
    }
    cdf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_follow_the_exponent() {
        let close = |got: Vec<f64>, want: &[f64]| {
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
            }
        };
        close(activity_weights(4, 1.0), &[1.0, 0.5, 1.0 / 3.0, 0.25]);
        close(activity_weights(3, 2.0), &[1.0, 0.25, 1.0 / 9.0]);
        assert_eq!(activity_weights(3, 0.0), [1.0, 1.0, 1.0]);
        assert!(activity_weights(0, 1.0).is_empty());
    }

    #[test]
    fn the_cdf_rises_to_exactly_one() {
        let cdf = activity_cdf(&activity_weights(100, 1.0));
        assert!(cdf.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(cdf.last(), Some(&1.0));
        // The top 10 of 100 hold about 56% of the activity.
        assert!((cdf[9] - 0.56).abs() < 0.01, "{}", cdf[9]);
    }
}
