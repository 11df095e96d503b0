//! The symbols of a run, how active each is, and who subscribes to what.
//!
//! Real market data is skewed: a few symbols trade far more often than the
//! rest, and most clients watch the same popular few. Both the publisher's
//! choice of symbol (`feed_simulator::market::Market`) and each subscriber's
//! choice of topics follow one Zipf law, the simulator's
//! `activity_weights` (weight of rank r ∝ 1/r^s), so the busiest symbols are
//! also the most fanned-out, which is the hard case for a broker. Everything is seeded,
//! so a scenario produces the same plan on every run and every target.

use rustc_hash::FxHashMap;

use anyhow::{Context, Result};
use feed_simulator::market::activity_weights;
use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;
use serde::Serialize;

use crate::scenario::Subscribers;

/// Mixed into the scenario seed so the subscription plan and the publisher's
/// ticks come from unrelated random streams.
const PLAN_STREAM: u64 = 0x9e37_79b9_7f4a_7c15;

/// The symbols of a run and their activity weights.
#[derive(Debug)]
pub struct Universe {
    names: Vec<String>,
    weights: Vec<f64>,
    /// Symbols of at most 8 bytes, packed into a `u64` → (index, length):
    /// one multiply-hash and one integer compare per received tick.
    short: FxHashMap<u64, (u32, u8)>,
    /// Longer symbol bytes → index.
    long: FxHashMap<Box<[u8]>, u32>,
}

impl Universe {
    /// `count` symbols, symbol 0 the most active, weights ∝ 1/(rank+1)^`zipf_s`.
    pub fn new(count: usize, zipf_s: f64) -> Self {
        // The simulator's names (real tickers first), so runs read like the
        // demo feed and symbols line up with anything recorded from it.
        let names = feed_simulator::market::symbol_names(count);
        // The law the publisher's market draws its symbols by.
        let weights = activity_weights(count, zipf_s);
        let (mut short, mut long) = (FxHashMap::default(), FxHashMap::default());
        for (i, name) in names.iter().enumerate() {
            let bytes = name.as_bytes();
            match pack(bytes) {
                Some(key) => {
                    short.insert(key, (i as u32, bytes.len() as u8));
                }
                None => {
                    long.insert(Box::from(bytes), i as u32);
                }
            }
        }
        Self {
            names,
            weights,
            short,
            long,
        }
    }

    /// How many symbols.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no symbols.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The name of symbol `i`.
    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// Every symbol name, most active first.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The activity weights (unnormalised), most active first.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// `k` distinct symbols drawn with the activity weights (the busiest the
    /// likeliest), sorted.
    pub fn draw_topics(&self, rng: &mut impl rand::Rng, k: usize) -> Result<Vec<u32>> {
        let picked = rand::seq::index::sample_weighted(rng, self.len(), |i| self.weights[i], k)
            .context("cannot draw topics from the symbol weights")?;
        let mut syms: Vec<u32> = picked.into_iter().map(|i| i as u32).collect();
        syms.sort_unstable();
        Ok(syms)
    }

    /// The index of a symbol name, if it is one of ours.
    #[inline]
    pub fn lookup(&self, sym: &[u8]) -> Option<usize> {
        match pack(sym) {
            // Zero padding makes "AB" and "AB\0" pack alike: the length tells.
            Some(key) => match self.short.get(&key) {
                Some(&(i, len)) if usize::from(len) == sym.len() => Some(i as usize),
                _ => None,
            },
            None => self.long.get(sym).map(|&i| i as usize),
        }
    }
}

/// A symbol of at most 8 bytes as one integer (zero-padded; the length
/// tells "AB" from "AB\0").
#[inline]
pub fn pack(sym: &[u8]) -> Option<u64> {
    if sym.len() > 8 {
        return None;
    }
    // Shifts, not a copy into a stack array: reading that back as one
    // integer stalls on store forwarding (seen at 6 % of the loadgen).
    Some(
        sym.iter()
            .rev()
            .fold(0u64, |word, &b| (word << 8) | u64::from(b)),
    )
}

/// How a subscriber behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// Reads as fast as it can; its latency is the headline figure.
    Healthy,
    /// Pauses after every read.
    Slow,
    /// Never reads after its subscription is acknowledged.
    Stalled,
}

impl Class {
    /// Every class, in report order; `class as usize` indexes arrays of this.
    pub const ALL: [Class; 3] = [Class::Healthy, Class::Slow, Class::Stalled];
}

/// What one subscriber subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topics {
    /// `*`: every symbol.
    All,
    /// These symbol indices.
    Some(Vec<u32>),
}

/// One subscriber connection to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberPlan {
    /// How it behaves.
    pub class: Class,
    /// What it subscribes to.
    pub topics: Topics,
}

impl SubscriberPlan {
    /// The topic strings to send in the subscribe request.
    pub fn topic_names(&self, universe: &Universe) -> Vec<String> {
        match &self.topics {
            Topics::All => vec![tickcast_protocol::WILDCARD.to_owned()],
            Topics::Some(syms) => syms
                .iter()
                .map(|&i| universe.name(i as usize).to_owned())
                .collect(),
        }
    }

    /// Whether it receives symbol `sym`.
    pub fn covers(&self, sym: usize) -> bool {
        match &self.topics {
            Topics::All => true,
            Topics::Some(syms) => syms.contains(&(sym as u32)),
        }
    }
}

/// Draws every subscriber's topics: healthy ones first, then wildcard, slow
/// and stalled ones. Topic sets are `topics_per_sub` distinct symbols drawn
/// with the Zipf weights.
pub fn plan_subscribers(
    spec: &Subscribers,
    universe: &Universe,
    seed: u64,
) -> Result<Vec<SubscriberPlan>> {
    let mut rng = Pcg64Mcg::seed_from_u64(seed ^ PLAN_STREAM);
    let mut draw = |class| -> Result<SubscriberPlan> {
        Ok(SubscriberPlan {
            class,
            topics: Topics::Some(universe.draw_topics(&mut rng, spec.topics_per_sub)?),
        })
    };
    let mut plans = Vec::new();
    for _ in 0..spec.count {
        plans.push(draw(Class::Healthy)?);
    }
    plans.extend((0..spec.wildcard).map(|_| SubscriberPlan {
        class: Class::Healthy,
        topics: Topics::All,
    }));
    for _ in 0..spec.slow {
        plans.push(draw(Class::Slow)?);
    }
    for _ in 0..spec.stalled {
        let plan = if spec.stalled_wildcard {
            SubscriberPlan {
                class: Class::Stalled,
                topics: Topics::All,
            }
        } else {
            draw(Class::Stalled)?
        };
        plans.push(plan);
    }
    Ok(plans)
}

/// How many subscribers of each class receive each symbol: with the
/// publisher's per-symbol counts this gives the exact expected deliveries.
#[derive(Debug, Clone)]
pub struct Fanout {
    per_class: [Vec<u64>; 3],
}

impl Fanout {
    /// Counts the plans' receivers per symbol.
    pub fn new(plans: &[SubscriberPlan], symbols: usize) -> Self {
        let mut per_class = [vec![0; symbols], vec![0; symbols], vec![0; symbols]];
        for plan in plans {
            let counts = &mut per_class[plan.class as usize];
            match &plan.topics {
                Topics::All => counts.iter_mut().for_each(|c| *c += 1),
                Topics::Some(syms) => syms.iter().for_each(|&s| counts[s as usize] += 1),
            }
        }
        Self { per_class }
    }

    /// Deliveries owed to `class` for `published[sym]` ticks of each symbol.
    pub fn expected(&self, class: Class, published: &[u64]) -> u64 {
        self.per_class[class as usize]
            .iter()
            .zip(published)
            .map(|(subs, ticks)| subs * ticks)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_symbol_is_found_by_its_bytes_and_nothing_else_is() {
        let universe = Universe::new(5_000, 1.0);
        for (i, name) in universe.names.iter().enumerate() {
            assert_eq!(universe.lookup(name.as_bytes()), Some(i), "{name}");
            let mut padded = name.as_bytes().to_vec();
            padded.push(0);
            assert_eq!(universe.lookup(&padded), None, "{name} + NUL");
            let other = format!("{name}#");
            assert_eq!(universe.lookup(other.as_bytes()), None, "{other}");
        }
        assert_eq!(universe.lookup(b""), None);
        assert_eq!(universe.lookup(b"NOT-A-REAL-SYMBOL"), None);
    }

    #[test]
    fn the_publisher_draws_symbols_by_the_universe_weights() {
        use feed_simulator::market::{Market, MarketConfig};

        let universe = Universe::new(50, 1.2);
        let cfg = MarketConfig {
            symbols: 50,
            seed: 3,
            ..MarketConfig::default()
        };
        let mut market = Market::with_zipf(&cfg, 1.2).unwrap();
        assert_eq!(market.symbols(), universe.names());
        let mut counts = [0u64; 50];
        let draws = 100_000;
        for i in 0..draws {
            counts[market.next_tick_at(i).0] += 1;
        }
        let total: f64 = universe.weights().iter().sum();
        for rank in [0, 1, 2, 10] {
            let want = universe.weights()[rank] / total;
            let got = counts[rank] as f64 / draws as f64;
            assert!((got - want).abs() < 0.01, "rank {rank}: {got} vs {want}");
        }
    }

    #[test]
    fn plans_are_deterministic_skewed_and_counted() {
        let universe = Universe::new(200, 1.0);
        assert_eq!(universe.len(), 200);
        assert_eq!(universe.lookup(universe.name(17).as_bytes()), Some(17));
        let spec = Subscribers {
            count: 400,
            topics_per_sub: 10,
            wildcard: 2,
            stalled: 1,
            ..Subscribers::default()
        };
        let plans = plan_subscribers(&spec, &universe, 7).unwrap();
        assert_eq!(plans, plan_subscribers(&spec, &universe, 7).unwrap());
        assert_eq!(plans.len(), 403);
        for plan in &plans[..400] {
            let Topics::Some(syms) = &plan.topics else {
                panic!("healthy plan on *")
            };
            let mut dedup = syms.clone();
            dedup.dedup();
            assert_eq!(dedup.len(), 10);
        }
        let fanout = Fanout::new(&plans, universe.len());
        let mut one_each = vec![0; 200];
        one_each[0] = 1;
        let top = fanout.expected(Class::Healthy, &one_each);
        one_each.swap(0, 199);
        let bottom = fanout.expected(Class::Healthy, &one_each);
        assert!(
            top > 2 * bottom,
            "popular symbol has {top} subscribers, rare {bottom}"
        );
        assert_eq!(fanout.expected(Class::Stalled, &vec![1; 200]), 10);
    }
}
