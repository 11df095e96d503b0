//! A growable set of small integers, one bit each.
//!
//! The writer shards keep the connections that have something to send (and
//! those whose socket is full) as bits indexed by slot: a set of 1,000
//! connections is 16 words, so marking, testing and walking it in order stay
//! in L1, where a `HashSet` would cost a hash and a cache miss per mark.

/// A set of `usize` values, stored as bits; it grows to fit the largest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bitmap {
    words: Vec<u64>,
}

impl Bitmap {
    /// Adds `i`.
    #[inline]
    pub fn insert(&mut self, i: usize) {
        let word = i / 64;
        if self.words.len() <= word {
            self.words.resize(word + 1, 0);
        }
        self.words[word] |= 1 << (i % 64);
    }

    /// Removes `i`.
    #[inline]
    pub fn remove(&mut self, i: usize) {
        if let Some(word) = self.words.get_mut(i / 64) {
            *word &= !(1 << (i % 64));
        }
    }

    /// Whether `i` is in the set.
    #[inline]
    pub fn contains(&self, i: usize) -> bool {
        self.words
            .get(i / 64)
            .is_some_and(|word| word & (1 << (i % 64)) != 0)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    /// Removes and returns the smallest member at or above `from`.
    pub fn take_next(&mut self, from: usize) -> Option<usize> {
        let mut word = from / 64;
        let mut bits = self.words.get(word)? & (!0u64 << (from % 64));
        while bits == 0 {
            word += 1;
            bits = *self.words.get(word)?;
        }
        let i = word * 64 + bits.trailing_zeros() as usize;
        self.words[word] &= !(1 << (i % 64));
        Some(i)
    }

    /// The members, smallest first.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &word)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                (bits != 0).then(|| {
                    let i = w * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    i
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_come_out_in_order_once() {
        let mut set = Bitmap::default();
        for i in [3, 64, 200, 0, 64] {
            set.insert(i);
        }
        assert!(set.contains(200) && !set.contains(199) && !set.contains(10_000));
        assert_eq!(set.iter().collect::<Vec<_>>(), [0, 3, 64, 200]);
        assert_eq!(set.take_next(1), Some(3));
        assert_eq!(set.take_next(4), Some(64));
        assert_eq!(set.take_next(65), Some(200));
        assert_eq!(set.take_next(201), None);
        assert_eq!(set.take_next(0), Some(0));
        assert_eq!(set.take_next(0), None);
        assert!(set.is_empty());
        set.insert(7);
        set.remove(7);
        set.remove(1_000);
        assert!(set.is_empty());
    }
}
