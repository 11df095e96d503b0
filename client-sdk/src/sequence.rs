//! Per-symbol `seq` tracking: finds gaps, duplicates and restarts, and
//! keeps the positions a reconnection resumes from.
//!
//! The broker promises strictly increasing `seq` per symbol on one
//! connection, so on one connection anything at or below the last `seq` is a
//! duplicate (typically the snapshot of a symbol the client already has).
//! Across a reconnection the new broker may have restarted its feed, so there
//! the first tick of a symbol with a lower `seq` is a restart, not a
//! duplicate: dropping it would drop every tick until the new numbering
//! caught up with the old one.
//!
//! The broker's continuity notices (docs/PROTOCOL.md) refine this: a `reset`
//! makes the symbol's next tick a new baseline (neither a gap nor a restart),
//! and a `gap` notice moves the position past the `seq`s it names, so the
//! jump that follows is not reported a second time. The epochs (the
//! broker's, from each `subscribed` ack; a symbol's own, after its feed
//! restarted) name the stream the positions belong to, and go with them in
//! the resubscribe after a reconnection (`crate::subscriptions`).
//!
//! Owned by the session task, which sees every frame in wire order (so the
//! positions it resumes from are those of every tick handed on, read by the
//! program yet or not); no lock.

use std::collections::{BTreeMap, HashMap};

/// How one tick relates to the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The next `seq`, the first tick ever seen for the symbol, or the
    /// first after a `reset`.
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
    /// `None` after a `reset`: the next tick starts over.
    seq: Option<u64>,
    connection: u64,
}

/// The last `seq` of every symbol received, and the epochs.
#[derive(Default)]
pub(crate) struct SeqTracker {
    symbols: HashMap<String, Last>,
    connection: u64,
    /// The broker's epoch, from the latest ack (`None` from a broker
    /// without one, which then gets no positions).
    epoch: Option<String>,
    /// Symbols whose epoch differs from `epoch` (their feed restarted).
    epochs: HashMap<String, String>,
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
        self.epochs.retain(|sym, _| keep(sym));
    }

    /// An ack: the broker's epoch, and the own epochs of symbols it just
    /// subscribed. A different broker epoch (another broker run) makes
    /// every own epoch of the old one meaningless.
    pub fn on_ack(&mut self, epoch: Option<String>, epochs: BTreeMap<String, String>) {
        if epoch != self.epoch {
            self.epochs.clear();
            self.epoch = epoch;
        }
        self.epochs.extend(epochs);
    }

    /// A `reset` of `sym`: its next tick is a new baseline; `epoch` is its
    /// own new epoch when its feed restarted.
    pub fn on_reset(&mut self, sym: &str, epoch: Option<String>) {
        if let Some(last) = self.symbols.get_mut(sym) {
            last.seq = None;
        }
        if let Some(epoch) = epoch {
            self.epochs.insert(sym.to_owned(), epoch);
        }
    }

    /// A `gap` notice: the broker skipped `sym`'s ticks `from..=to`, so the
    /// next one due is `to + 1`. Returns the first `seq` of a hole before
    /// `from` that the notice does not explain (ticks missed before it).
    pub fn on_gap_notice(&mut self, sym: &str, from: u64, to: u64) -> Option<u64> {
        let Some(Last { seq: Some(seq), .. }) = self.symbols.get_mut(sym) else {
            return None;
        };
        let expected = seq.saturating_add(1);
        *seq = (*seq).max(to);
        (from > expected).then_some(expected)
    }

    /// The broker's epoch, if it gave one.
    pub fn epoch(&self) -> Option<&str> {
        self.epoch.as_deref()
    }

    /// Every symbol with a position: its last `seq`, and its own epoch when
    /// it differs from [`SeqTracker::epoch`].
    pub fn positions(&self) -> impl Iterator<Item = (&str, u64, Option<&str>)> {
        self.symbols.iter().filter_map(|(sym, last)| {
            let own = self.epochs.get(sym).map(String::as_str);
            last.seq.map(|seq| (sym.as_str(), seq, own))
        })
    }

    /// Checks `seq` against the last one of `sym` and records it unless it
    /// is a duplicate.
    pub fn check(&mut self, sym: &str, seq: u64) -> Checked {
        let connection = self.connection;
        // Look up by `&str` first: only a symbol's first tick allocates.
        let Some(last) = self.symbols.get_mut(sym) else {
            self.symbols.insert(
                sym.to_owned(),
                Last {
                    seq: Some(seq),
                    connection,
                },
            );
            return Checked {
                verdict: Verdict::InOrder,
                first_on_connection: true,
            };
        };
        let first_on_connection = last.connection != connection;
        last.connection = connection;
        let Some(last_seq) = last.seq else {
            last.seq = Some(seq);
            return Checked {
                verdict: Verdict::InOrder,
                first_on_connection,
            };
        };
        let expected = last_seq.saturating_add(1);
        let verdict = if seq == expected {
            Verdict::InOrder
        } else if seq > expected {
            Verdict::Gap { expected }
        } else if first_on_connection && seq < last_seq {
            Verdict::Reset { last: last_seq }
        } else {
            return Checked {
                verdict: Verdict::Duplicate,
                first_on_connection,
            };
        };
        last.seq = Some(seq);
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

    #[test]
    fn a_reset_makes_the_next_tick_a_baseline_and_a_notice_skips_its_range() {
        let mut t = SeqTracker::default();
        verdicts(&mut t, "A", &[1, 2, 3]);
        t.on_reset("A", Some("e.1".into()));
        assert_eq!(verdicts(&mut t, "A", &[1, 2]), [Verdict::InOrder; 2]);
        assert_eq!(t.on_gap_notice("A", 3, 7), None);
        assert_eq!(
            verdicts(&mut t, "A", &[8, 10]),
            [Verdict::InOrder, Verdict::Gap { expected: 9 }]
        );
        t.on_reconnect();
        t.on_reset("A", None);
        assert_eq!(t.check("A", 1).verdict, Verdict::InOrder);
        assert_eq!(t.positions().collect::<Vec<_>>(), [("A", 1, Some("e.1"))]);
        // A notice beyond the next `seq` leaves a hole it does not explain.
        assert_eq!(t.on_gap_notice("A", 5, 6), Some(2));
        assert_eq!(t.check("A", 7).verdict, Verdict::InOrder);
    }

    #[test]
    fn a_new_broker_epoch_forgets_the_own_epochs_of_the_old_one() {
        let mut t = SeqTracker::default();
        verdicts(&mut t, "A", &[4]);
        verdicts(&mut t, "B", &[2]);
        t.on_ack(
            Some("e".into()),
            BTreeMap::from([("A".into(), "e.1".into())]),
        );
        t.on_ack(Some("e".into()), BTreeMap::new());
        let mut p: Vec<_> = t.positions().collect();
        p.sort();
        assert_eq!(
            (t.epoch(), p),
            (Some("e"), vec![("A", 4, Some("e.1")), ("B", 2, None)])
        );
        t.on_ack(Some("f".into()), BTreeMap::new());
        assert!(t.positions().all(|(_, _, own)| own.is_none()));
        t.retain(|sym| sym == "B");
        assert_eq!(t.positions().collect::<Vec<_>>(), [("B", 2, None)]);
    }
}
