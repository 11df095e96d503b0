//! Micro-benchmarks of the broker's hot path, to guide optimisation: the tick
//! codec, frame building, the hub's publication of one tick to 1,000
//! subscribers, a `*` subscribe over 100,000 symbols (and how long it keeps
//! a publisher waiting), an outbox collecting its pending frames, conflation
//! under pressure, and the writer's batch assembly.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tickcast_broker::auth::entitlements::Entitlements;
use tickcast_broker::config::SlowConsumerPolicy;
use tickcast_broker::fanout::history::History;
use tickcast_broker::fanout::hub::{Hub, TickIn};
use tickcast_broker::fanout::inbox::Inbox;
use tickcast_broker::fanout::outbox::{Batch, Outbox};
use tickcast_broker::fanout::subscriptions::Route;
use tickcast_broker::fanout::window::{Frame, Kind, Window};
use tickcast_broker::fanout::{frame, writer};
use tickcast_broker::observe::metrics::Metrics;
use tickcast_protocol::control::SubscribeOptions;
use tickcast_protocol::{Tick, TickRef};

/// A subscriber entitled to every symbol (a broker without tokens).
fn everything() -> Arc<Entitlements> {
    Arc::new(Entitlements::All)
}

fn tick() -> Tick {
    Tick {
        seq: 123_456,
        ..Tick::example()
    }
}

fn none() -> SubscribeOptions {
    SubscribeOptions::default()
}

/// A hub with one writer shard, and that shard's inbox.
fn hub() -> (Hub, Arc<Inbox>, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::default());
    // Default history, as a broker runs.
    let limits = tickcast_broker::Limits::default();
    let history = History::new(limits.history, limits.history_bytes);
    let (hub, mut inboxes) = Hub::with_inboxes(1, usize::MAX, history, metrics.clone());
    (hub, inboxes.remove(0), metrics)
}

/// Publishes one tick and returns how long the hub took.
fn publish_one(hub: &Hub, sym: &str, seq: u64, payload: &[u8]) -> Duration {
    let batch = [TickIn {
        sym,
        seq,
        ts: 1,
        payload,
        recv_ns: 1,
        epoch: None,
    }];
    let start = Instant::now();
    hub.publish(black_box(&batch));
    start.elapsed()
}

/// Empties an inbox, as its writer would.
fn drain(inbox: &Inbox) {
    let (mut items, mut freed) = (Vec::new(), Vec::new());
    inbox.take(&mut items, &mut freed, false);
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

/// One tick published to 1,000 subscribers of its symbol: the hub's share
/// of the fan-out (the writer then pushes one position per recipient).
fn fanout(c: &mut Criterion) {
    let payload = tick().to_vec();
    let (hub, inbox, metrics) = hub();
    for slot in 0..1_000u32 {
        let route = Route { shard: 0, slot };
        if let Err(e) = hub.subscribe(route, &["AAPL".to_owned()], &none(), 10, &everything()) {
            panic!("{e:?}");
        }
    }
    drain(&inbox);
    let mut g = c.benchmark_group("hub");
    g.throughput(Throughput::Elements(1_000));
    // Criterion calls the closure once per sample: the seq counter lives
    // outside it, or every sample after the first would publish stale seqs
    // (which the hub rightly skips).
    let mut seq = 1u64 << 20;
    g.bench_function("publish_1_tick_to_1000", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                seq += 1;
                total += publish_one(&hub, "AAPL", seq, &payload);
                if i % 64 == 63 {
                    drain(&inbox);
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

/// A hub that has had one tick of each of `n` symbols.
fn hub_with_symbols(n: usize) -> (Hub, Arc<Inbox>, Vec<String>) {
    let (hub, inbox, _) = hub();
    let payload = tick().to_vec();
    let names: Vec<String> = (0..n).map(|i| format!("S{i:06}")).collect();
    for chunk in names.chunks(1_000) {
        let batch: Vec<TickIn<'_>> = chunk
            .iter()
            .map(|sym| TickIn {
                sym,
                seq: 1,
                ts: 1,
                payload: &payload,
                recv_ns: 1,
                epoch: None,
            })
            .collect();
        hub.publish(&batch);
    }
    (hub, inbox, names)
}

/// A subscribe to `*` over 100,000 symbols: the ack and a snapshot of every
/// symbol. Then, while such subscribes run back to back, how long one
/// publication of a single tick waits for the hub's lock (printed: the hub
/// hands the lock over between chunks of `SNAPSHOT_CHUNK` symbols).
fn subscribe_wildcard(c: &mut Criterion) {
    let (hub, inbox, names) = hub_with_symbols(100_000);
    let route = Route { shard: 0, slot: 0 };
    let star = ["*".to_owned()];
    let all = everything();
    let mut g = c.benchmark_group("hub");
    g.sample_size(20);
    g.throughput(Throughput::Elements(names.len() as u64));
    g.bench_function("subscribe_wildcard_100k", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let subscribed = hub.subscribe(route, black_box(&star), &none(), 10, &all);
                total += start.elapsed();
                assert!(subscribed.is_ok());
                hub.unsubscribe(route, &star);
                drain(&inbox);
            }
            total
        })
    });
    g.finish();

    let hub = Arc::new(hub);
    let done = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (hub, done) = (hub.clone(), done.clone());
        std::thread::spawn(move || {
            let payload = tick().to_vec();
            let mut waits = Vec::new();
            let mut seq = 1;
            while !done.load(Ordering::Relaxed) && waits.len() < 10_000_000 {
                seq += 1;
                waits.push(publish_one(&hub, "S000007", seq, &payload));
            }
            waits
        })
    };
    let started = Instant::now();
    for _ in 0..20 {
        let subscribed = hub.subscribe(route, &star, &none(), 10, &everything());
        assert!(subscribed.is_ok());
        hub.unsubscribe(route, &star);
        drain(&inbox);
    }
    let subscribing = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let mut waits = publisher.join().unwrap_or_default();
    waits.sort_unstable();
    let at = |q: f64| waits[((waits.len() - 1) as f64 * q) as usize];
    println!(
        "hub/publish_during_wildcard_subscribes: 20 subscribes to * over 100k symbols in {subscribing:?}; \
         {} publications of one tick meanwhile: p50 {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
        waits.len(),
        at(0.5),
        at(0.99),
        at(0.999),
        at(1.0)
    );
}

/// A window of 100 fresh ticks and a connection with 10 of them pending
/// (a subscriber of 10 of 200 symbols): its outbox collecting them straight
/// into the write batch.
fn collect(c: &mut Criterion) {
    let bytes = frame::binary(&tick().to_vec());
    let mut window = Window::default();
    let positions: Vec<u32> = (0..100u32)
        .map(|i| {
            window.push(Frame {
                bytes: bytes.clone(),
                kind: Kind::Tick((i * 7) % 200),
                enqueued_ns: 1,
            })
        })
        .collect();
    let pending: Vec<u32> = positions.iter().copied().step_by(10).collect();
    let mut outbox = Outbox::new(1 << 20, SlowConsumerPolicy::Conflate);
    let mut batch = Batch::default();
    let mut g = c.benchmark_group("outbox");
    g.throughput(Throughput::Elements(pending.len() as u64));
    g.bench_function("collect_10_pending", |b| {
        b.iter(|| {
            batch.clear();
            outbox.collect(
                black_box(&pending),
                &window,
                false,
                &mut batch,
                usize::MAX,
                tokio::time::Instant::now(),
            );
            batch.len()
        })
    });
    g.finish();
}

/// Pushing into an outbox that is over its limit: every push replaces the
/// held frame of its symbol.
fn conflation(c: &mut Criterion) {
    let frame = frame::binary(&tick().to_vec());
    let mut outbox = Outbox::new(4 * 1024, SlowConsumerPolicy::Conflate);
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
    let bytes: Bytes = frame::binary(&tick().to_vec());
    let mut window = Window::default();
    let fresh = (0..64)
        .map(|_| {
            window.push(Frame {
                bytes: bytes.clone(),
                kind: Kind::Tick(0),
                enqueued_ns: 1,
            })
        })
        .collect();
    let batch = Batch {
        queued: Vec::new(),
        fresh,
    };
    let mut g = c.benchmark_group("writer");
    g.throughput(Throughput::Elements(batch.len() as u64));
    g.bench_function("assemble_64_frames", |b| {
        b.iter_batched_ref(
            Vec::new,
            |buf| writer::assemble(black_box(&batch), &window, buf),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(
    benches,
    codec,
    fanout,
    subscribe_wildcard,
    collect,
    conflation,
    assembly
);
criterion_main!(benches);
