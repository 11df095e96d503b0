//! The publisher's ticks: which symbol comes next, its sequence number and a
//! plausible book.
//!
//! Symbols are drawn from the universe's Zipf weights, so activity is skewed
//! like a real tape. Each symbol's `seq` counts up from 1 with no gaps (the
//! subscribers check exactly that), and prices take small random steps with
//! the bid always a tick or more below the ask, so the broker's validation
//! accepts every tick. The state survives between steps of a run, so
//! sequence numbers never restart while a broker remembers the symbol.

use rand::distr::weighted::WeightedIndex;
use rand::distr::Distribution;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use tickcast_protocol::TickRef;

use crate::universe::Universe;

/// One cent: the price grid.
const TICK_SIZE: f64 = 0.01;

/// Per-symbol market state.
#[derive(Debug, Clone)]
struct Book {
    mid: f64,
    volume: u64,
}

/// A deterministic stream of valid ticks over a [`Universe`].
#[derive(Debug)]
pub struct TickSource {
    picker: WeightedIndex<f64>,
    rng: Pcg64Mcg,
    books: Vec<Book>,
    seq: Vec<u64>,
}

impl TickSource {
    /// A source over `universe`'s symbols, seeded by `seed`.
    pub fn new(universe: &Universe, seed: u64) -> anyhow::Result<Self> {
        let picker = WeightedIndex::new(universe.weights())?;
        let mut rng = Pcg64Mcg::seed_from_u64(seed);
        let books = (0..universe.len())
            .map(|_| Book {
                mid: rng.random_range(5.0..500.0),
                volume: 0,
            })
            .collect();
        Ok(Self {
            picker,
            rng,
            books,
            seq: vec![0; universe.len()],
        })
    }

    /// The last sequence number sent for each symbol (0: none yet).
    pub fn seqs(&self) -> &[u64] {
        &self.seq
    }

    /// Continues each symbol's numbering after `last[sym]` (e.g. what a
    /// long-running broker already holds), so its ticks are not taken as
    /// stale repeats.
    pub fn resume_after(&mut self, last: &[u64]) {
        for (seq, &prev) in self.seq.iter_mut().zip(last) {
            *seq = (*seq).max(prev);
        }
    }

    /// The next tick, stamped `ts`; returns its symbol index too.
    pub fn next<'u>(&mut self, universe: &'u Universe, ts: u64) -> (usize, TickRef<'u>) {
        let sym = self.picker.sample(&mut self.rng);
        let rng = &mut self.rng;
        let book = &mut self.books[sym];
        // A small multiplicative random walk, kept off zero.
        book.mid = (book.mid * (1.0 + rng.random_range(-2e-4..2e-4))).max(1.0);
        let bid = (book.mid / TICK_SIZE).floor() * TICK_SIZE;
        let ask = bid + TICK_SIZE * f64::from(rng.random_range(1u8..=3));
        let last_size = 100 * rng.random_range(1u32..=10);
        book.volume += u64::from(last_size);
        self.seq[sym] += 1;
        let tick = TickRef {
            sym: universe.name(sym),
            seq: self.seq[sym],
            ts,
            bid,
            ask,
            last: if rng.random_bool(0.5) { bid } else { ask },
            bid_size: 100 * rng.random_range(1u32..=50),
            ask_size: 100 * rng.random_range(1u32..=50),
            last_size,
            volume: book.volume,
            orig_ts: None,
        };
        (sym, tick)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_valid_skewed_and_numbered_without_gaps() {
        let universe = Universe::new(50, 1.0);
        let mut source = TickSource::new(&universe, 3).unwrap();
        source.resume_after(&[10; 50]);
        let mut counts = vec![0u64; 50];
        for i in 0..20_000u64 {
            let (sym, tick) = source.next(&universe, 1_000 + i);
            counts[sym] += 1;
            assert_eq!(tick.seq, 10 + counts[sym]);
            let mut buf = Vec::new();
            tick.encode(&mut buf);
            assert_eq!(TickRef::decode(&buf).unwrap(), tick);
        }
        assert!(counts[0] > 5 * counts[49], "{counts:?}");
        assert_eq!(source.seqs()[7], 10 + counts[7]);
    }
}
