//! Approximate reference prices and annual volatilities of the real
//! tickers the simulator names, so a simulated `NVDA` trades near where
//! the real one does and a utility moves less than a chip maker.
//!
//! Rounded figures from late 2025 (price in dollars, annual volatility as
//! a fraction): the order of magnitude and the rough ranking are what
//! matter, not the cents. A name missing here gets a drawn price and
//! volatility like a generated one (`book.rs`).

/// A ticker's reference price (dollars) and annual volatility.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Reference {
    pub(crate) price: f64,
    pub(crate) annual_vol: f64,
}

/// `(ticker, price, annual volatility)`.
const TABLE: &[(&str, f64, f64)] = &[
    ("AAPL", 230.0, 0.25),
    ("MSFT", 420.0, 0.22),
    ("NVDA", 140.0, 0.50),
    ("AMZN", 190.0, 0.30),
    ("GOOGL", 170.0, 0.28),
    ("META", 580.0, 0.35),
    ("TSLA", 250.0, 0.60),
    ("AVGO", 170.0, 0.45),
    ("BRK.B", 460.0, 0.15),
    ("JPM", 220.0, 0.22),
    ("LLY", 800.0, 0.30),
    ("V", 290.0, 0.18),
    ("UNH", 560.0, 0.25),
    ("XOM", 115.0, 0.22),
    ("MA", 500.0, 0.19),
    ("JNJ", 155.0, 0.15),
    ("PG", 165.0, 0.14),
    ("HD", 390.0, 0.22),
    ("COST", 880.0, 0.20),
    ("ABBV", 180.0, 0.22),
    ("MRK", 100.0, 0.22),
    ("WMT", 80.0, 0.17),
    ("NFLX", 700.0, 0.35),
    ("CRM", 290.0, 0.33),
    ("BAC", 42.0, 0.25),
    ("CVX", 150.0, 0.22),
    ("KO", 65.0, 0.13),
    ("AMD", 150.0, 0.50),
    ("PEP", 160.0, 0.15),
    ("TMO", 560.0, 0.22),
    ("ADBE", 500.0, 0.32),
    ("LIN", 450.0, 0.17),
    ("ORCL", 170.0, 0.35),
    ("ACN", 350.0, 0.23),
    ("MCD", 290.0, 0.16),
    ("CSCO", 55.0, 0.20),
    ("ABT", 115.0, 0.18),
    ("WFC", 65.0, 0.27),
    ("DHR", 240.0, 0.23),
    ("TMUS", 220.0, 0.20),
    ("INTC", 22.0, 0.50),
    ("DIS", 95.0, 0.27),
    ("QCOM", 165.0, 0.38),
    ("INTU", 640.0, 0.30),
    ("VZ", 42.0, 0.18),
    ("AMGN", 300.0, 0.22),
    ("TXN", 200.0, 0.28),
    ("IBM", 210.0, 0.22),
    ("CAT", 380.0, 0.27),
    ("PFE", 26.0, 0.22),
    ("NOW", 950.0, 0.35),
    ("CMCSA", 42.0, 0.22),
    ("UNP", 240.0, 0.20),
    ("GE", 180.0, 0.30),
    ("AMAT", 180.0, 0.42),
    ("NEE", 75.0, 0.22),
    ("GS", 520.0, 0.27),
    ("T", 22.0, 0.20),
    ("BA", 155.0, 0.38),
    ("UBER", 75.0, 0.42),
    ("NKE", 75.0, 0.30),
    ("SBUX", 95.0, 0.28),
    ("MU", 100.0, 0.50),
    ("PYPL", 75.0, 0.38),
    ("F", 10.5, 0.35),
    ("GM", 50.0, 0.33),
    ("C", 65.0, 0.28),
    ("MS", 120.0, 0.27),
    ("SCHW", 75.0, 0.30),
    ("PLTR", 45.0, 0.70),
    ("SHOP", 80.0, 0.55),
    ("COIN", 230.0, 0.80),
    ("RIVN", 11.0, 0.70),
    ("LCID", 2.5, 0.75),
    ("SOFI", 10.0, 0.60),
    ("HOOD", 28.0, 0.70),
    ("SNOW", 140.0, 0.55),
    ("CRWD", 300.0, 0.50),
    ("SNAP", 11.0, 0.60),
    ("GME", 22.0, 0.90),
    ("AMC", 4.5, 1.00),
    ("NIO", 4.8, 0.75),
    ("BABA", 90.0, 0.45),
    ("TSM", 190.0, 0.40),
    ("ASML", 700.0, 0.38),
    ("ARM", 140.0, 0.65),
    ("SMCI", 35.0, 0.90),
    ("DELL", 120.0, 0.45),
    ("CCL", 20.0, 0.45),
    ("AAL", 14.0, 0.45),
];

/// The reference of `sym`, if it is in the table.
pub(crate) fn reference(sym: &str) -> Option<Reference> {
    TABLE
        .iter()
        .find(|(name, _, _)| *name == sym)
        .map(|&(_, price, annual_vol)| Reference { price, annual_vol })
}

/// Every ticker with a reference (for the tests).
pub fn tickers_with_reference() -> impl Iterator<Item = (&'static str, f64)> {
    TABLE.iter().map(|&(name, price, _)| (name, price))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_is_a_known_ticker_once_with_sane_figures() {
        let known = crate::symbols::symbol_names(crate::symbols::real_ticker_count());
        let mut seen = std::collections::HashSet::new();
        for &(name, price, vol) in TABLE {
            assert!(known.iter().any(|k| k == name), "{name} is not simulated");
            assert!(seen.insert(name), "{name} twice");
            assert!((1.0..5_000.0).contains(&price), "{name} {price}");
            assert!((0.05..2.0).contains(&vol), "{name} {vol}");
        }
        assert_eq!(reference("NVDA").map(|r| r.price), Some(140.0));
        assert_eq!(reference("ZQ0001"), None);
    }
}
