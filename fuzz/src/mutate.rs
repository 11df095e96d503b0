//! The stable driver's mutator: corpus entries changed the way libFuzzer's
//! default mutators change them, on a seeded PCG generator.
//!
//! Bit flips, bytes set to the values parsers trip on, random bytes
//! inserted, ranges deleted or duplicated, truncation, the big-endian
//! lengths that matter here (0, 125/126/127, 2¹⁶, the 64 KiB record limit,
//! 2³²−1) written over any 2 or 4 bytes, and splices of two entries.

use rand::{Rng, RngCore};

/// The longest input the driver makes (libFuzzer's default `-max_len` for
/// a corpus of small files is 4096; a little more reaches the 64 KiB
/// record limit's neighbourhood through lengths, not sizes).
pub const MAX_LEN: usize = 8 * 1024;

const BYTES: [u8; 12] = [
    0, 1, 0x7e, 0x7f, 0x80, 0x81, 0xc0, 0xc1, 0xd9, 0xdf, 0xfe, 0xff,
];
const LENGTHS: [u32; 10] = [
    0,
    1,
    125,
    126,
    127,
    0xffff,
    0x1_0000,
    0x1_0001,
    0x7fff_ffff,
    u32::MAX,
];

/// A new input from `corpus` (which must not be empty): one entry, changed
/// one to eight times.
pub fn mutate(rng: &mut impl RngCore, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut data = corpus[rng.random_range(0..corpus.len())].clone();
    for _ in 0..rng.random_range(1..=8) {
        mutate_once(rng, &mut data, corpus);
    }
    data.truncate(MAX_LEN);
    data
}

fn mutate_once(rng: &mut impl RngCore, data: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    let len = data.len();
    let at = |rng: &mut dyn RngCore, extra: usize| rng.random_range(0..len + extra);
    match rng.random_range(0..9) {
        0 if len > 0 => {
            let i = at(rng, 0);
            data[i] ^= 1 << rng.random_range(0..8);
        }
        1 if len > 0 => {
            let i = at(rng, 0);
            data[i] = BYTES[rng.random_range(0..BYTES.len())];
        }
        2 => {
            let i = at(rng, 1);
            let n = rng.random_range(1..=8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            data.splice(i..i, bytes);
        }
        3 if len > 0 => {
            let i = at(rng, 0);
            let n = rng.random_range(1..=(len - i).min(16));
            data.drain(i..i + n);
        }
        4 if len > 0 => {
            let cut = at(rng, 0);
            data.truncate(cut);
        }
        5 if len >= 4 => {
            let i = rng.random_range(0..=len - 4);
            let v = LENGTHS[rng.random_range(0..LENGTHS.len())];
            data[i..i + 4].copy_from_slice(&v.to_be_bytes());
        }
        6 if len >= 2 => {
            let i = rng.random_range(0..=len - 2);
            let v = LENGTHS[rng.random_range(0..LENGTHS.len())] as u16;
            data[i..i + 2].copy_from_slice(&v.to_be_bytes());
        }
        7 if len > 0 => {
            let i = at(rng, 0);
            let n = rng.random_range(1..=(len - i).min(64));
            let copy = data[i..i + n].to_vec();
            let to = at(rng, 1);
            data.splice(to..to, copy);
        }
        _ => {
            let other = &corpus[rng.random_range(0..corpus.len())];
            let keep = rng.random_range(0..=len);
            let from = rng.random_range(0..=other.len());
            data.truncate(keep);
            data.extend_from_slice(&other[from..]);
        }
    }
}
