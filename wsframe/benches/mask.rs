//! Masking a word at a time against the byte-at-a-time definition, on a
//! subscribe request's size and on a large payload: the figures beside
//! `mask::apply` come from this bench.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tickcast_wsframe::mask;

/// RFC 6455 §5.3 as written: byte `i` XOR key byte `i % 4`.
fn bytewise(payload: &mut [u8], key: [u8; 4]) {
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

fn masking(c: &mut Criterion) {
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mut group = c.benchmark_group("mask");
    for len in [130usize, 64 * 1024] {
        let mut payload = vec![0x5au8; len];
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("word", len), &len, |b, _| {
            b.iter(|| mask::apply(black_box(&mut payload), black_box(key)))
        });
        group.bench_with_input(BenchmarkId::new("bytewise", len), &len, |b, _| {
            b.iter(|| bytewise(black_box(&mut payload), black_box(key)))
        });
    }
    group.finish();
}

criterion_group!(benches, masking);
criterion_main!(benches);
