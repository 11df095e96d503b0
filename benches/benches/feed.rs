//! Feed simulator throughput: generating a recording into an in-memory feed
//! file, and decoding a recorded feed file.
//!
//! Targets (issue "feed simulator"): at least 2 M ticks/s generated into a
//! file and 5 M ticks/s decoded, each on one core. Memory buffers take the
//! disk out of the measurement; both paths are otherwise the ones the
//! `record` command and the broker's `--replay` use.

use std::hint::black_box;
use std::io::Cursor;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use feed_simulator::file::FeedReader;
use feed_simulator::market::MarketConfig;
use feed_simulator::record::record;

/// Ticks per iteration: enough to amortise setup, small enough to iterate.
const TICKS: u64 = 100_000;

fn config() -> MarketConfig {
    MarketConfig {
        symbols: 200,
        rate: 50_000.0,
        ..MarketConfig::default()
    }
}

fn generate(c: &mut Criterion) {
    let cfg = config();
    // Reuse one buffer so the measurement is generation + encoding, not the
    // allocator growing a 13 MB vector.
    let mut buf = Vec::with_capacity(16 << 20);
    let mut group = c.benchmark_group("feed");
    group.throughput(Throughput::Elements(TICKS));
    group.bench_function("generate_into_file_buffer", |b| {
        b.iter(|| {
            buf.clear();
            let out = record(&cfg, TICKS, &mut buf, |_| {});
            black_box(out.is_ok())
        })
    });
    group.finish();
}

fn decode(c: &mut Criterion) {
    let file =
        record(&config(), TICKS, Vec::new(), |_| {}).expect("recording into memory cannot fail");
    let mut group = c.benchmark_group("feed");
    group.throughput(Throughput::Elements(TICKS));
    // The borrowing path the broker's replay and `inspect` use.
    group.bench_function("decode_file_buffer", |b| {
        b.iter(|| {
            let Ok(mut reader) = FeedReader::from_reader(Cursor::new(&file)) else {
                return 0;
            };
            let mut volume = 0u64;
            while let Ok(Some(tick)) = reader.read_record() {
                volume = volume.wrapping_add(tick.volume);
            }
            black_box(volume)
        })
    });
    // The owned-tick iterator: one symbol allocation per tick on top.
    group.bench_function("decode_file_buffer_owned", |b| {
        b.iter(|| {
            let Ok(reader) = FeedReader::from_reader(Cursor::new(&file)) else {
                return 0;
            };
            black_box(reader.map_while(Result::ok).count())
        })
    });
    group.finish();
}

criterion_group!(benches, generate, decode);
criterion_main!(benches);
