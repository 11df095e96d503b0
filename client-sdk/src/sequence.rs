//! Per-symbol `seq` tracking: finds gaps, duplicates and restarts.
//!
//! The broker promises strictly increasing `seq` per symbol on one
//! connection, so on one connection anything at or below the last `seq` is a
//! duplicate (typically the snapshot of a symbol the client already has).
//! Across a reconnection the new broker may have restarted its feed, so there
//! the first tick of a symbol with a lower `seq` is a restart, not a
//! duplicate: dropping it would drop every tick until the new numbering
//! caught up with the old one.

use std::collections::HashMap;

/// How one tick relates to the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The next `seq`, or the first tick ever seen for the symbol.
    InOrder,
    /// `seq` jumped past `expected`.
    Gap {
        /// The `seq` that was due.
        expected: u64,
    },
    /// First tick after a reconnection, below the last one: a restart.
    Reset {
        /// The last `seq` before the reconnection.
        last: u64,
    },
    /// At or below the last `seq` on the same connection: drop it.
    Duplicate,
}

/// One checked tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checked {
    /// How it relates to the ones before.
    pub verdict: Verdict,
    /// Whether it is the symbol's first tick on this connection, which is
    /// usually the broker's snapshot (its `ts` is when the broker last saw
    /// the symbol, not a transit time, so it must not count as latency).
    pub first_on_connection: bool,
}

struct Last {
    seq: u64,
    connection: u64,
}

/// The last `seq` of every symbol received.
#[derive(Default)]
pub(crate) struct SeqTracker {
    symbols: HashMap<String, Last>,
    connection: u64,
}

impl SeqTracker {
    /// A new connection begins: each symbol's next tick may be a restart.
    pub fn on_reconnect(&mut self) {
        self.connection += 1;
    }

    /// Forgets the symbols `keep` says no to (after an unsubscribe, so that
    /// subscribing again later does not report the time away as a gap).
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.symbols.retain(|sym, _| keep(sym));
    }

    /// Checks `seq` against the last one of `sym` and records it unless it
    /// is a duplicate.
    pub fn check(&mut self, sym: &str, seq: u64) -> Checked {
        let connection = self.connection;
        // Look up by `&str` first: only a symbol's first tick allocates.
        let Some(last) = self.symbols.get_mut(sym) else {
            self.symbols
                .insert(sym.to_owned(), Last { seq, connection });
            return Checked {
                verdict: Verdict::InOrder,
                first_on_connection: true,
            };
        };
        let first_on_connection = last.connection != connection;
        last.connection = connection;
        let expected = last.seq.saturating_add(1);
        let verdict = if seq == expected {
            Verdict::InOrder
        } else if seq > expected {
            Verdict::Gap { expected }
        } else if first_on_connection && seq < last.seq {
            Verdict::Reset { last: last.seq }
        } else {
            return Checked {
                verdict: Verdict::Duplicate,
                first_on_connection,
            };
        };
        last.seq = seq;
        Checked {
            verdict,
            first_on_connection,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdicts(tracker: &mut SeqTracker, sym: &str, seqs: &[u64]) -> Vec<Verdict> {
        seqs.iter()
            .map(|&s| tracker.check(sym, s).verdict)
            .collect()
    }

    #[test]
    fn in_order_gap_and_duplicate_on_one_connection() {
        let mut t = SeqTracker::default();
        assert_eq!(
            verdicts(&mut t, "A", &[5, 6, 9, 9, 3, 10]),
            [
                Verdict::InOrder,
                Verdict::InOrder,
                Verdict::Gap { expected: 7 },
                Verdict::Duplicate,
                Verdict::Duplicate,
                Verdict::InOrder,
            ]
        );
        assert_eq!(verdicts(&mut t, "B", &[1]), [Verdict::InOrder]);
    }

    #[test]
    fn after_reconnect_a_lower_seq_is_a_reset_and_the_same_seq_a_duplicate() {
        let mut t = SeqTracker::default();
        verdicts(&mut t, "A", &[1, 2, 3]);
        verdicts(&mut t, "B", &[1, 2]);
        t.on_reconnect();
        assert_eq!(
            t.check("A", 1),
            Checked {
                verdict: Verdict::Reset { last: 3 },
                first_on_connection: true
            }
        );
        assert_eq!(
            verdicts(&mut t, "A", &[2, 1]),
            [Verdict::InOrder, Verdict::Duplicate]
        );
        assert_eq!(
            verdicts(&mut t, "B", &[2, 3]),
            [Verdict::Duplicate, Verdict::InOrder]
        );
    }

    #[test]
    fn snapshot_continuing_the_sequence_is_no_gap() {
        let mut t = SeqTracker::default();
        verdicts(&mut t, "A", &[1, 2]);
        t.on_reconnect();
        let first = t.check("A", 3);
        assert_eq!(first.verdict, Verdict::InOrder);
        assert!(first.first_on_connection);
        assert!(!t.check("A", 4).first_on_connection);
        t.on_reconnect();
        assert_eq!(t.check("A", 9).verdict, Verdict::Gap { expected: 5 });
    }

    #[test]
    fn retained_symbols_only_are_remembered() {
        let mut t = SeqTracker::default();
        verdicts(&mut t, "A", &[7]);
        verdicts(&mut t, "B", &[7]);
        t.retain(|sym| sym == "B");
        assert_eq!(t.check("A", 20).verdict, Verdict::InOrder);
        assert_eq!(t.check("B", 20).verdict, Verdict::Gap { expected: 8 });
    }
}
