//! The account of ticks the broker skipped for a client, per symbol, that
//! becomes its `gap` notices.
//!
//! Wherever a tick is conflated, dropped or held back by a rate cap (the
//! outbox; the inbox when a shard falls far behind), its `seq` is added
//! here, and the notices go out just before the next tick of that symbol
//! the client does get. Consecutive `seq`s merge into one range; a `seq`
//! that does not follow the last (the feed itself skipped some) starts a
//! new one, so the notices name exactly the ticks the broker had and did
//! not send, each once.

use bytes::Bytes;
use tickcast_protocol::control::GapReason;

use crate::fanout::frame;

/// Skipped `seq`s of one symbol, as inclusive ranges in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skips {
    ranges: Vec<(u64, u64)>,
}

impl Skips {
    /// Adds one skipped `seq` (each later than the ones before).
    pub fn add(&mut self, seq: u64) {
        match self.ranges.last_mut() {
            Some((_, to)) if to.checked_add(1) == Some(seq) => *to = seq,
            _ => self.ranges.push((seq, seq)),
        }
    }

    /// Adds every range of `other` (all later than these).
    pub fn append(&mut self, other: Skips) {
        for (from, to) in other.ranges {
            match self.ranges.last_mut() {
                Some((_, last)) if last.checked_add(1) == Some(from) => *last = to,
                _ => self.ranges.push((from, to)),
            }
        }
    }

    /// Whether nothing was skipped.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The latest `seq` skipped, if any.
    pub fn last(&self) -> Option<u64> {
        self.ranges.last().map(|&(_, to)| to)
    }

    /// How many ticks were skipped.
    pub fn count(&self) -> u64 {
        self.ranges.iter().map(|(f, t)| t - f + 1).sum()
    }

    /// The ranges.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    /// The `gap` notices of `sym` for these ranges, in order.
    pub fn notices(&self, sym: &str, reason: GapReason) -> Vec<Bytes> {
        self.ranges
            .iter()
            .map(|&(from, to)| frame::gap(sym.to_owned(), from, to, reason))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_seqs_merge_and_a_hole_starts_a_new_range() {
        let mut s = Skips::default();
        for seq in [3, 4, 5, 8, 9] {
            s.add(seq);
        }
        assert_eq!(s.ranges(), &[(3, 5), (8, 9)]);
        assert_eq!(s.count(), 5);
        let mut more = Skips::default();
        more.add(10);
        more.add(12);
        s.append(more);
        assert_eq!(s.ranges(), &[(3, 5), (8, 10), (12, 12)]);
        assert_eq!(s.notices("AAPL", GapReason::Conflated).len(), 3);
    }
}
