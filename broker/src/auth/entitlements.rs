//! What a token lets its holder see (`syms`) or publish (`pub`): exact
//! symbols, prefix patterns such as `BRK.*`, or `*` for everything.
//!
//! Checked once per (connection, symbol) pair, never per tick: a subscribe
//! checks the topics it names, and a `*` subscriber entitled to a subset is
//! resolved symbol by symbol when it subscribes and when a symbol first
//! appears (`fanout/subscriptions.rs`). A check is a hash lookup plus one
//! `starts_with` per prefix pattern; tokens carry a handful of patterns.

use std::collections::HashSet;

use tickcast_protocol::control::validate_topic;
use tickcast_protocol::WILDCARD;

/// The most patterns one claim may list (a token is a header; thousands of
/// exact symbols belong in patterns).
pub const MAX_PATTERNS: usize = 4096;

/// A set of symbols given by exact names and prefixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entitlements {
    /// Every symbol (`*`).
    All,
    /// These symbols and every symbol starting with one of these prefixes.
    Some {
        /// Exact symbols.
        exact: HashSet<Box<str>>,
        /// Prefixes (`BRK.` for the pattern `BRK.*`).
        prefixes: Vec<Box<str>>,
    },
}

/// Why a claim is not a list of patterns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadPattern {
    /// Too many entries.
    #[error("more than {MAX_PATTERNS} patterns")]
    TooMany,
    /// An entry is neither a symbol, `PREFIX*` nor `*`.
    #[error("not a symbol or pattern: {0:?}")]
    Invalid(String),
}

impl Entitlements {
    /// Nothing at all (a token without the claim).
    pub fn none() -> Self {
        Entitlements::Some {
            exact: HashSet::new(),
            prefixes: Vec::new(),
        }
    }

    /// Parses a claim's list: each entry a symbol, `PREFIX*` or `*`.
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<Self, BadPattern> {
        if patterns.len() > MAX_PATTERNS {
            return Err(BadPattern::TooMany);
        }
        let (mut exact, mut prefixes) = (HashSet::new(), Vec::new());
        for p in patterns {
            let p = p.as_ref();
            if p == WILDCARD {
                return Ok(Entitlements::All);
            }
            let bad = || BadPattern::Invalid(p.chars().take(40).collect());
            match p.strip_suffix('*') {
                Some(prefix) => {
                    if prefix == WILDCARD {
                        return Err(bad());
                    }
                    validate_topic(prefix).map_err(|_| bad())?;
                    prefixes.push(prefix.into());
                }
                None => {
                    validate_topic(p).map_err(|_| bad())?;
                    exact.insert(p.into());
                }
            }
        }
        Ok(Entitlements::Some { exact, prefixes })
    }

    /// Whether `sym` is in the set.
    pub fn allows(&self, sym: &str) -> bool {
        match self {
            Entitlements::All => true,
            Entitlements::Some { exact, prefixes } => {
                exact.contains(sym) || prefixes.iter().any(|p| sym.starts_with(&**p))
            }
        }
    }

    /// Whether the set is every symbol.
    pub fn is_all(&self) -> bool {
        matches!(self, Entitlements::All)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_prefix_and_everything() {
        let e = Entitlements::parse(&["AAPL", "BRK.*", "X*"]).unwrap();
        assert!(e.allows("AAPL") && e.allows("BRK.A") && e.allows("BRK.B") && e.allows("XOM"));
        assert!(!e.allows("AAP") && !e.allows("AAPLX") && !e.allows("BRK") && !e.allows("MSFT"));
        assert!(!e.is_all());
        let all = Entitlements::parse(&["AAPL", "*"]).unwrap();
        assert!(all.is_all() && all.allows("ANY"));
        assert!(!Entitlements::none().allows("AAPL"));
        for bad in ["", "A B", "**", "A*B", "*X"] {
            assert!(Entitlements::parse(&[bad]).is_err(), "{bad:?}");
        }
        let many = vec!["A"; MAX_PATTERNS + 1];
        assert_eq!(Entitlements::parse(&many), Err(BadPattern::TooMany));
    }
}
