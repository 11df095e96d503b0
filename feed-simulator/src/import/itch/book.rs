//! One stock's order book by price level, for the best bid and offer.
//!
//! Each side is a vector of (price, shares) sorted so that the best level
//! is the last element: finding a level is a binary search, and the busy
//! part of a book (near the best prices) sits at the end, where inserting
//! or removing a level moves few elements. A day's book has at most a few
//! thousand levels a side; the vectors grow to that once and are reused,
//! so no message allocates.

/// Price in ITCH units (1/10,000 of a dollar).
pub(super) type Price = u32;

/// One side of a book.
#[derive(Debug, Default)]
struct Side {
    /// Sorted so the best level is last: bids ascending, asks descending.
    levels: Vec<(Price, u64)>,
    bids: bool,
}

impl Side {
    fn find(&self, price: Price) -> Result<usize, usize> {
        if self.bids {
            self.levels.binary_search_by(|l| l.0.cmp(&price))
        } else {
            self.levels.binary_search_by(|l| price.cmp(&l.0))
        }
    }

    fn add(&mut self, price: Price, shares: u32) {
        match self.find(price) {
            Ok(i) => self.levels[i].1 += u64::from(shares),
            Err(i) => self.levels.insert(i, (price, u64::from(shares))),
        }
    }

    /// Takes `shares` off the level at `price` (the caller never takes
    /// more than an order it added there holds).
    fn remove(&mut self, price: Price, shares: u32) {
        if let Ok(i) = self.find(price) {
            let level = &mut self.levels[i].1;
            *level = level.saturating_sub(u64::from(shares));
            if *level == 0 {
                self.levels.remove(i);
            }
        }
    }

    fn best(&self) -> Option<(Price, u64)> {
        self.levels.last().copied()
    }
}

/// The best bid and offer: (price, shares) of each side, if any.
pub(super) type Top = (Option<(Price, u64)>, Option<(Price, u64)>);

/// A stock's book.
#[derive(Debug)]
pub(super) struct Book {
    bids: Side,
    asks: Side,
}

impl Book {
    pub(super) fn new() -> Self {
        Self {
            bids: Side {
                levels: Vec::new(),
                bids: true,
            },
            asks: Side::default(),
        }
    }

    pub(super) fn add(&mut self, buy: bool, price: Price, shares: u32) {
        self.side(buy).add(price, shares);
    }

    pub(super) fn remove(&mut self, buy: bool, price: Price, shares: u32) {
        self.side(buy).remove(price, shares);
    }

    pub(super) fn top(&self) -> Top {
        (self.bids.best(), self.asks.best())
    }

    fn side(&mut self, buy: bool) -> &mut Side {
        if buy {
            &mut self.bids
        } else {
            &mut self.asks
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_levels_follow_adds_and_removals() {
        let mut b = Book::new();
        b.add(true, 100, 10);
        b.add(true, 102, 5);
        b.add(true, 101, 7);
        b.add(false, 105, 3);
        b.add(false, 104, 4);
        b.add(false, 106, 1);
        assert_eq!(b.top(), (Some((102, 5)), Some((104, 4))));
        b.add(true, 102, 1);
        b.remove(true, 102, 6);
        b.remove(false, 104, 4);
        assert_eq!(b.top(), (Some((101, 7)), Some((105, 3))));
        b.remove(true, 101, 7);
        b.remove(true, 100, 10);
        assert_eq!(b.top(), (None, Some((105, 3))));
        // Removing at a price with no level changes nothing.
        b.remove(false, 999, 1);
        assert_eq!(b.top(), (None, Some((105, 3))));
    }
}
