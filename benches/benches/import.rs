//! ITCH 5.0 import throughput: a synthetic day's order messages, in
//! memory, through `feed_simulator::import::import_itch` into an in-memory
//! feed file.
//!
//! Target (issue 16): at least 5 M input messages/s on one core. The mix is
//! roughly a real day's (NASDAQ's public sample: adds ~45 %, deletes ~40 %,
//! replaces ~8 %, executions and cancels the rest): 500 stocks, each
//! order within 20 cents of its stock's mid, so most messages land near the
//! top of book and a good share move it (each move is a tick encoded and
//! written). Run: `cargo bench -p tickcast-benches --bench import`
//! (criterion reports messages/s as "elem/s").
//!
//! Three cases, because the live-order map is what costs:
//! - `shallow`: about 1,000 orders resting; the map stays in the caches;
//! - `deep`: 250,000 resting first (a busy morning: a ~12 MiB map), and
//!   each execution, cancel, delete or replace names any live order at
//!   random: nearly every lookup misses the caches (the worst case);
//! - `deep_recent`: the same depth, but 70 % of those messages name one of
//!   the 1,000 orders added last. Real days look like this (most orders are
//!   cancelled within moments of their add: Hasbrouck and Saar's "fleeting
//!   orders"); the 70 % is our assumption, not a measured figure.

use std::hint::black_box;
use std::io::Cursor;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use feed_simulator::import::{import_itch, ItchOptions};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

#[path = "../../feed-simulator/tests/support/itch.rs"]
mod itch;

/// Messages per iteration: large enough that the order map and the books
/// reach a steady size.
const MESSAGES: u64 = 2_000_000;
const STOCKS: u16 = 500;

/// A synthetic day whose first messages rest `resting` orders, and where a
/// share `recent` of the messages naming an order name one of the 1,000
/// added last: the bytes and the number of messages.
fn day(resting: usize, recent: f64) -> (Vec<u8>, u64) {
    let mut rng = Pcg64Mcg::seed_from_u64(16);
    let mut s = itch::ItchStream::default();
    let names: Vec<String> = (0..STOCKS).map(|i| format!("S{i:04}")).collect();
    for (i, name) in names.iter().enumerate() {
        s.stock_directory(i as u16 + 1, 0, name);
    }
    // Live orders: (order number, locate, shares, buy).
    let mut live: Vec<(u64, u16, u32, bool)> = Vec::new();
    let mut next_order = 1u64;
    let mut ns = 34_200_000_000_000u64;
    let mut count = u64::from(STOCKS);
    while count < MESSAGES {
        ns += rng.random_range(1..200);
        let roll = rng.random_range(0..100);
        if live.len() < resting || roll < 45 {
            let locate = rng.random_range(1..=STOCKS);
            let mid = 1_000_000 + u32::from(locate) * 1_000; // $100 + $0.10 × locate
            let buy = rng.random_bool(0.5);
            let away = rng.random_range(1..=20) * 100; // 1–20 cents from the mid
            let price = if buy { mid - away } else { mid + away };
            let shares = rng.random_range(1..=5) * 100;
            let name = &names[usize::from(locate - 1)];
            s.add(locate, ns, next_order, buy, shares, name, price);
            live.push((next_order, locate, shares, buy));
            next_order += 1;
        } else {
            // `live` keeps the orders in about the order they were added
            // (a removal moves the newest into the gap).
            let at = if rng.random_bool(recent) {
                live.len() - rng.random_range(1..=live.len().min(1_000))
            } else {
                rng.random_range(0..live.len())
            };
            let (order, locate, shares, buy) = live[at];
            if roll < 85 {
                s.delete(locate, ns, order);
                live.swap_remove(at);
            } else if roll < 93 {
                let mid = 1_000_000 + u32::from(locate) * 1_000;
                let away = rng.random_range(1..=20) * 100;
                let price = if buy { mid - away } else { mid + away };
                s.replace(locate, ns, order, next_order, shares, price);
                live[at].0 = next_order;
                next_order += 1;
            } else if roll < 98 {
                s.executed(locate, ns, order, shares, next_order);
                live.swap_remove(at);
            } else {
                s.cancel(locate, ns, order, shares / 2);
                live[at].2 -= shares / 2;
            }
        }
        count += 1;
    }
    (s.bytes, count)
}

fn import(c: &mut Criterion) {
    let options = ItchOptions {
        day_start: 1_767_589_200_000_000_000, // 2026-01-05, midnight New York
        symbols: None,
    };
    let mut out = Vec::with_capacity(256 << 20);
    let mut group = c.benchmark_group("import_itch");
    group.sample_size(10);
    let cases = [
        ("shallow", 1_000, 0.0),
        ("deep", 250_000, 0.0),
        ("deep_recent", 250_000, 0.7),
    ];
    for (case, resting, recent) in cases {
        let (bytes, count) = day(resting, recent);
        group.throughput(Throughput::Elements(count));
        group.bench_function(case, |b| {
            b.iter(|| {
                out.clear();
                let report = import_itch(&bytes[..], Cursor::new(&mut out), &options, |_| {});
                black_box(report.map(|r| r.stats.records).unwrap_or(0))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, import);
criterion_main!(benches);
