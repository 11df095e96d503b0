//! The live orders of an ITCH day, keyed by order reference number, in a
//! hash map whose hash keeps consecutive numbers in neighbouring buckets.
//!
//! NASDAQ hands out order reference numbers in increasing order through the
//! day, and most messages (executions, cancels, deletes, replaces) name an
//! order added a moment before. With the low bits of the number as the
//! bucket, those recent orders sit together in a few cache lines, where a
//! mixing hash (Fx) scatters them over a table that, with a busy day's
//! hundreds of thousands of resting orders, is far bigger than the caches.
//!
//! The bits above 2^20 and 2^40 are folded onto the low ones ([`FOLD`]):
//! consecutive numbers keep the identity's evenness, and numbers a large
//! power of two apart, which an identity hash would pile on a few buckets
//! (a file numbering its orders 4,096 apart would make the import
//! quadratic), still spread. It is no defence against a file crafted to
//! collide; neither is Fx. The hash's top 7 bits, which the table
//! (hashbrown's SwissTable) compares first, are mixed from the whole
//! number, so neighbours in a group differ there and a probe stays one
//! SIMD compare.
//!
//! Measured with `benches/benches/import.rs` (2026-12-03, pinned to one
//! core, alternated rounds, M messages/s; benches/README.md): the identity
//! form of this hash against Fx, medians of three rounds, `deep_recent`
//! 5.87 against 4.60 (1.28×), `deep` 4.27 against 3.68, `shallow` 6.27
//! against 6.48 (noise); the fold then cost nothing measurable (5.68
//! against 5.60 and 4.69 against 5.66 on `deep_recent`, the machine moving
//! 20 % between runs).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The map of live orders.
pub(super) type Orders<V> = HashMap<u64, V, BuildHasherDefault<OrderRefHasher>>;

/// Hashes an order reference number (a `u64`): itself with its high bits
/// folded onto the low ones, and a tag in the top 7 bits mixed from all of
/// it.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct OrderRefHasher(u64);

/// How far the higher bits are folded down: within each aligned block of
/// 2^20 numbers the fold is one constant.
const FOLD: u32 = 20;

/// Bits of the hash that hashbrown's tag is taken from.
const TAG_SHIFT: u32 = 57;

/// Fx's multiplier: an odd constant that spreads low bits upwards (the
/// tag is taken from the product's top bits).
const MIX: u64 = 0xf135_7aea_2e62_a9c5;

impl Hasher for OrderRefHasher {
    fn finish(&self) -> u64 {
        let n = self.0;
        // The number with its higher bits folded onto the low ones. Within
        // a block of 2^20 that is an xor with one constant, a permutation
        // that keeps every aligned run of numbers together, so consecutive
        // numbers keep the identity's evenness and neighbourhoods.
        let bucket = n ^ (n >> FOLD) ^ (n >> (2 * FOLD));
        let tag = n.wrapping_mul(MIX) >> TAG_SHIFT << TAG_SHIFT;
        (bucket & ((1 << TAG_SHIFT) - 1)) | tag
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed; keep any other input correct anyway.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn consecutive_numbers_get_consecutive_buckets_and_mixed_tags() {
        let build = BuildHasherDefault::<OrderRefHasher>::default();
        let low = |n: u64| build.hash_one(n) & 0xfff;
        assert_eq!((low(1000), low(1001), low(1002)), (1000, 1001, 1002));
        let bucket = |n: u64| build.hash_one(n) & ((1 << 20) - 1);
        assert_eq!(bucket(4097).abs_diff(bucket(4096)), 1);
        let tags: std::collections::HashSet<u64> = (0..1000u64)
            .map(|n| build.hash_one(n) >> TAG_SHIFT)
            .collect();
        assert!(tags.len() > 100, "{} tags", tags.len());
    }

    #[test]
    fn numbers_a_power_of_two_apart_do_not_share_a_bucket() {
        let build = BuildHasherDefault::<OrderRefHasher>::default();
        for shift in [8, 12, 16, 20, 24, 32, 40, 48] {
            let buckets: std::collections::HashSet<u64> = (0..4096u64)
                .map(|k| build.hash_one(k << shift) & 0xf_ffff)
                .collect();
            assert!(buckets.len() > 3_500, "shift {shift}: {}", buckets.len());
        }
    }

    #[test]
    fn the_map_finds_what_it_holds() {
        let mut m: Orders<u32> = Orders::default();
        for n in (0..10_000u64).chain([u64::MAX, 1 << 60]) {
            m.insert(n, n as u32);
        }
        assert_eq!(m.get(&1234), Some(&1234));
        assert_eq!(m.get(&u64::MAX), Some(&(u64::MAX as u32)));
        assert_eq!(m.remove(&(1 << 60)), Some(0));
        assert_eq!(m.len(), 10_001);
    }
}
