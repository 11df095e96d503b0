//! Micro-benchmarks of the broker's hot path, to guide optimisation: the tick
//! codec, frame building, the hub's fan-out of one tick to 1,000
//! subscribers, an outbox collecting its ticks from a writer pass,
//! conflation under pressure, and the writer's batch assembly.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tickcast_broker::config::SlowConsumerPolicy;
use tickcast_broker::fanout::hub::{Hub, Published, Route, Subscriber, TickIn};
use tickcast_broker::fanout::outbox::{Batch, Outbox};
use tickcast_broker::fanout::{frame, writer};
use tickcast_broker::observe::metrics::Metrics;
use tickcast_protocol::{Tick, TickRef};

fn tick() -> Tick {
    Tick {
        seq: 123_456,
        ..Tick::example()
    }
}

fn codec(c: &mut Criterion) {
    let t = tick();
    let bytes = t.to_vec();
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(256);
    g.bench_function("encode", |b| {
        b.iter(|| {
            out.clear();
            black_box(&t).encode(&mut out);
            black_box(out.len())
        })
    });
    g.bench_function("decode_borrowed", |b| {
        b.iter(|| TickRef::decode(black_box(&bytes)).map(|t| t.seq))
    });
    g.bench_function("frame_build", |b| {
        b.iter(|| frame::binary(black_box(&bytes)))
    });
    g.finish();
}

/// One tick published to 1,000 subscribers of its symbol. The writer's
/// share is taken outside the timed part, so this is the hub's own cost.
fn fanout(c: &mut Criterion) {
    let payload = tick().to_vec();
    let metrics = Arc::new(Metrics::default());
    let hub = Hub::new(metrics.clone(), 1, usize::MAX);
    let subs: Vec<Subscriber> = (0..1_000u32)
        .map(|index| {
            let sub = Subscriber::new(
                u64::from(index),
                Route { shard: 0, index },
                Arc::new(Outbox::new(1 << 30, SlowConsumerPolicy::Conflate)),
            );
            hub.subscribe(&sub, &["AAPL".to_owned()], 10).map(|()| sub)
        })
        .collect::<Result<_, _>>()
        .unwrap_or_default();
    let (mut published, mut dirty) = (Vec::new(), Vec::new());
    let mut g = c.benchmark_group("hub");
    g.throughput(Throughput::Elements(subs.len() as u64));
    // Criterion calls the closure once per sample: the seq counter lives
    // outside it, or every sample after the first would publish stale seqs
    // (which the hub rightly skips).
    let mut seq = 1u64 << 20;
    g.bench_function("fanout_1_tick_to_1000", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                seq += 1;
                let batch = [TickIn {
                    sym: "AAPL",
                    seq,
                    ts: 1,
                    payload: &payload,
                    recv_ns: 1,
                }];
                let start = Instant::now();
                hub.publish(black_box(&batch));
                total += start.elapsed();
                if i % 64 == 63 {
                    published.clear();
                    dirty.iter_mut().for_each(|w| *w = 0);
                    hub.take(0, &mut published, &mut dirty, false);
                }
            }
            total
        })
    });
    g.finish();
    // A bench that published stale seqs would have measured nothing.
    assert_eq!(
        metrics.ticks_stale.get(),
        0,
        "the fan-out bench published stale ticks"
    );
}

/// A writer visit's outbox work: picking the ticks one subscriber of 10 of
/// 200 symbols wants out of 100 fresh ones, straight into the batch.
fn collect(c: &mut Criterion) {
    let frame = frame::binary(&tick().to_vec());
    let published: Vec<Published> = (0..100u32)
        .map(|i| Published {
            pos: u64::from(i),
            sym: (i * 7) % 200,
            frame: frame.clone(),
            enqueued_ns: 1,
        })
        .collect();
    let outbox = Outbox::new(1 << 20, SlowConsumerPolicy::Conflate);
    outbox.update_interest(|interest| {
        for sym in (0..200).step_by(20) {
            interest.add(sym, 0);
        }
    });
    let mut batch = Batch::default();
    let mut g = c.benchmark_group("outbox");
    g.throughput(Throughput::Elements(published.len() as u64));
    g.bench_function("collect_from_100_fresh", |b| {
        b.iter(|| {
            batch.clear();
            outbox.collect(black_box(&published), false, &mut batch, usize::MAX);
            batch.len()
        })
    });
    g.finish();
}

/// Pushing into an outbox that is over its limit: every push replaces the
/// held frame of its symbol.
fn conflation(c: &mut Criterion) {
    let frame = frame::binary(&tick().to_vec());
    let outbox = Outbox::new(4 * 1024, SlowConsumerPolicy::Conflate);
    for i in 0..100 {
        outbox.push_tick(i % 50, &frame, 1);
    }
    let mut g = c.benchmark_group("outbox");
    g.throughput(Throughput::Elements(1));
    let mut sym = 0u32;
    g.bench_function("push_conflating", |b| {
        b.iter(|| {
            sym = (sym + 1) % 50;
            outbox.push_tick(sym, black_box(&frame), 1)
        })
    });
    g.finish();
}

/// Copying a writer's batch of 64 ticks into one buffer.
fn assembly(c: &mut Criterion) {
    let frame: Bytes = frame::binary(&tick().to_vec());
    let published: Vec<Published> = (0..64)
        .map(|pos| Published {
            pos,
            sym: 0,
            frame: frame.clone(),
            enqueued_ns: 1,
        })
        .collect();
    let batch = Batch {
        queued: Vec::new(),
        fresh: (0..64).collect(),
    };
    let mut g = c.benchmark_group("writer");
    g.throughput(Throughput::Elements(batch.len() as u64));
    g.bench_function("assemble_64_frames", |b| {
        b.iter_batched_ref(
            Vec::new,
            |buf| writer::assemble(black_box(&batch), &published, buf),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, codec, fanout, collect, conflation, assembly);
criterion_main!(benches);
