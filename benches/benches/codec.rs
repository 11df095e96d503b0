//! The tick codec as the protocol crate has it (`tickcast`: a hand-written
//! encoder, a decoder on rmp's low-level readers, a hand-written fast path
//! for `TickHeader::peek`) against the alternatives it was chosen over, on
//! the same ticks and the same wire bytes: rmp's writers (into a `Vec`, and
//! through the `BufMut` adapter our encoder's signature would need),
//! rmp-serde (derived, and a flat struct that borrows its strings), and
//! for the peek rmp's readers alone.
//!
//! The figures and the decision for each operation are in
//! `protocol/src/msgpack.rs` and `benches/README.md`; the hand-written
//! decoder they were compared with is in the bench as of commit a7bc64b.

use std::hint::black_box;
use std::io::Write;

use bytes::BufMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde::Deserialize;
use tickcast_protocol::tick::MAX_SYMBOL_LEN;
use tickcast_protocol::{Tick, TickHeader, TickRef};

/// The ticks every variant runs on: the example, symbols short and long
/// (32 bytes needs a str8), a replayed tick, and whole-number prices.
fn ticks() -> Vec<(&'static str, Tick)> {
    let ex = Tick::example();
    vec![
        ("example", ex.clone()),
        (
            "short_sym",
            Tick {
                sym: "F".into(),
                seq: 7,
                ..ex.clone()
            },
        ),
        (
            "long_sym",
            Tick {
                sym: "X".repeat(MAX_SYMBOL_LEN),
                ..ex.clone()
            },
        ),
        (
            "orig_ts",
            Tick {
                orig_ts: Some(ex.ts - 5_000_000_000),
                ..ex.clone()
            },
        ),
        (
            "int_prices",
            Tick {
                bid: 190.0,
                ask: 191.0,
                last: 190.0,
                ..ex
            },
        ),
    ]
}

// ---- encode with rmp's low-level writers ---------------------------------

/// The tick through rmp's writers, into any `io::Write`.
fn rmp_encode(t: &TickRef<'_>, out: &mut impl Write) {
    use rmp::encode::{write_f64, write_map_len, write_str, write_uint};
    // Neither writer below can fail.
    let _ = write_map_len(out, if t.orig_ts.is_some() { 12 } else { 11 });
    let _ = write_str(out, "type");
    let _ = write_str(out, "tick");
    let _ = write_str(out, "sym");
    let _ = write_str(out, t.sym);
    for (k, v) in [("seq", t.seq), ("ts", t.ts)] {
        let _ = write_str(out, k);
        let _ = write_uint(out, v);
    }
    for (k, v) in [("bid", t.bid), ("ask", t.ask), ("last", t.last)] {
        let _ = write_str(out, k);
        let _ = write_f64(out, v);
    }
    for (k, v) in [
        ("bid_size", u64::from(t.bid_size)),
        ("ask_size", u64::from(t.ask_size)),
        ("last_size", u64::from(t.last_size)),
        ("volume", t.volume),
    ] {
        let _ = write_str(out, k);
        let _ = write_uint(out, v);
    }
    if let Some(orig) = t.orig_ts {
        let _ = write_str(out, "orig_ts");
        let _ = write_uint(out, orig);
    }
}

/// What `TickRef::encode(&mut impl BufMut)` would have to hand rmp, whose
/// writers take `io::Write`: an adapter that puts every slice.
struct PutAll<'a, B>(&'a mut B);

impl<B: BufMut> Write for PutAll<'_, B> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.put_slice(buf);
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.put_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// ---- decode with rmp-serde: a flat wire struct that borrows its strings --

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(rename = "type")]
    ty: &'a str,
    sym: &'a str,
    seq: u64,
    ts: u64,
    bid: f64,
    ask: f64,
    last: f64,
    bid_size: u32,
    ask_size: u32,
    last_size: u32,
    volume: u64,
    #[serde(default)]
    orig_ts: Option<u64>,
}

/// The checks `TickRef::decode` makes beyond the types, for the library
/// variants (so every variant does the same work).
fn valid(t: &TickRef<'_>) -> bool {
    !t.sym.is_empty()
        && t.sym.len() <= MAX_SYMBOL_LEN
        && [t.bid, t.ask, t.last]
            .iter()
            .all(|p| p.is_finite() && *p >= 0.0)
        && t.bid <= t.ask
}

fn serde_flat_decode(buf: &[u8]) -> Option<TickRef<'_>> {
    let w: Wire<'_> = rmp_serde::from_slice(buf).ok()?;
    let t = TickRef {
        sym: w.sym,
        seq: w.seq,
        ts: w.ts,
        bid: w.bid,
        ask: w.ask,
        last: w.last,
        bid_size: w.bid_size,
        ask_size: w.ask_size,
        last_size: w.last_size,
        volume: w.volume,
        orig_ts: w.orig_ts,
    };
    (w.ty == "tick" && valid(&t)).then_some(t)
}

/// The derived `Deserialize` of `TickOf` (internally tagged by `type`).
fn serde_derived_decode<'a, T: Deserialize<'a>>(buf: &'a [u8]) -> Option<T> {
    rmp_serde::from_slice(buf).ok()
}

/// Reads a string's bytes with rmp, without UTF-8 checks (keys are matched
/// as bytes).
fn rmp_str<'a>(rd: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = rmp::decode::read_str_len(rd).ok()? as usize;
    let (s, rest) = rd.split_at_checked(len)?;
    *rd = rest;
    Some(s)
}

// ---- peek with rmp's low-level readers -------------------------------------

/// `TickHeader::peek` with rmp's readers alone, value by value.
fn rmp_peek(buf: &[u8]) -> Option<TickHeader<'_>> {
    let mut rd = buf;
    if rmp::decode::read_map_len(&mut rd).ok()? < 4
        || rmp_str(&mut rd)? != b"type"
        || rmp_str(&mut rd)? != b"tick"
        || rmp_str(&mut rd)? != b"sym"
    {
        return None;
    }
    let sym = rmp_str(&mut rd)?;
    if rmp_str(&mut rd)? != b"seq" {
        return None;
    }
    let seq = rmp::decode::read_int(&mut rd).ok()?;
    if rmp_str(&mut rd)? != b"ts" {
        return None;
    }
    let ts = rmp::decode::read_int(&mut rd).ok()?;
    Some(TickHeader { sym, seq, ts })
}

#[derive(Deserialize)]
struct HeaderWire<'a> {
    #[serde(rename = "type")]
    ty: &'a str,
    sym: &'a [u8],
    seq: u64,
    ts: u64,
}

fn serde_peek(buf: &[u8]) -> Option<TickHeader<'_>> {
    let h: HeaderWire<'_> = rmp_serde::from_slice(buf).ok()?;
    (h.ty == "tick").then_some(TickHeader {
        sym: h.sym,
        seq: h.seq,
        ts: h.ts,
    })
}

// ---- the benchmarks ----------------------------------------------------------

/// The bytes each tick decodes from: what our encoder writes, except the
/// whole-number prices, written as integers the way JavaScript encoders do.
fn wire(name: &str, t: &Tick) -> Vec<u8> {
    if name != "int_prices" {
        return t.to_vec();
    }
    use rmp::encode::{write_map_len, write_str, write_uint};
    // Writing to a Vec cannot fail.
    let mut ints = Vec::new();
    let _ = write_map_len(&mut ints, 11);
    let _ = write_str(&mut ints, "type");
    let _ = write_str(&mut ints, "tick");
    let _ = write_str(&mut ints, "sym");
    let _ = write_str(&mut ints, &t.sym);
    for (k, v) in [
        ("seq", t.seq),
        ("ts", t.ts),
        ("bid", t.bid as u64),
        ("ask", t.ask as u64),
        ("last", t.last as u64),
        ("bid_size", u64::from(t.bid_size)),
        ("ask_size", u64::from(t.ask_size)),
        ("last_size", u64::from(t.last_size)),
        ("volume", t.volume),
    ] {
        let _ = write_str(&mut ints, k);
        let _ = write_uint(&mut ints, v);
    }
    ints
}

/// Every variant writes and reads exactly the wire bytes of the protocol
/// crate's codec: checked before anything is timed.
fn check_same_bytes(ticks: &[(&str, Tick)]) {
    for (name, t) in ticks {
        let ours = t.to_vec();
        let mut vec = Vec::new();
        rmp_encode(&t.as_ref(), &mut vec);
        assert_eq!(vec, ours, "rmp encode, {name}");
        let mut bufmut = Vec::new();
        rmp_encode(&t.as_ref(), &mut PutAll(&mut bufmut));
        assert_eq!(bufmut, ours, "rmp encode through BufMut, {name}");
        assert_eq!(
            rmp_serde::to_vec_named(t).ok().as_deref(),
            Some(&ours[..]),
            "rmp-serde encode, {name}"
        );
        let bytes = wire(name, t);
        let want = TickRef::decode(&bytes).ok();
        assert_eq!(want.as_ref(), Some(&t.as_ref()), "{name}");
        assert_eq!(serde_flat_decode(&bytes), want, "rmp-serde flat, {name}");
        assert_eq!(
            serde_derived_decode::<TickRef<'_>>(&bytes),
            want,
            "rmp-serde derived, {name}"
        );
        let header = TickHeader::peek(&bytes);
        assert!(header.is_some(), "{name}");
        assert_eq!(rmp_peek(&bytes), header, "rmp peek, {name}");
        assert_eq!(serde_peek(&bytes), header, "rmp-serde peek, {name}");
    }
}

fn encode(c: &mut Criterion) {
    let ticks = ticks();
    check_same_bytes(&ticks);
    let mut g = c.benchmark_group("codec_encode");
    g.throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(256);
    for (name, t) in &ticks {
        let t = t.as_ref();
        g.bench_with_input(BenchmarkId::new("tickcast", name), &t, |b, t| {
            b.iter(|| {
                out.clear();
                black_box(t).encode(&mut out);
                black_box(out.len())
            })
        });
        g.bench_with_input(BenchmarkId::new("rmp_vec", name), &t, |b, t| {
            b.iter(|| {
                out.clear();
                rmp_encode(black_box(t), &mut out);
                black_box(out.len())
            })
        });
        g.bench_with_input(BenchmarkId::new("rmp_bufmut", name), &t, |b, t| {
            b.iter(|| {
                out.clear();
                rmp_encode(black_box(t), &mut PutAll(&mut out));
                black_box(out.len())
            })
        });
        g.bench_with_input(BenchmarkId::new("rmp_serde", name), &t, |b, t| {
            b.iter(|| {
                out.clear();
                let _ = rmp_serde::encode::write_named(&mut out, black_box(t));
                black_box(out.len())
            })
        });
    }
    g.finish();
}

/// A way to decode: bytes to something of the tick (so that nothing is
/// optimised away).
type Decode<T> = fn(&[u8]) -> Option<T>;

/// One decode group: ours against rmp-serde's two ways.
fn decode_group<T>(c: &mut Criterion, group: &str, variants: [(&str, Decode<T>); 3]) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(1));
    for (name, t) in &ticks() {
        let bytes = wire(name, t);
        for (variant, decode) in variants {
            g.bench_with_input(BenchmarkId::new(variant, name), &bytes[..], |b, bytes| {
                b.iter(|| decode(black_box(bytes)))
            });
        }
    }
    g.finish();
}

fn decode_borrowed(c: &mut Criterion) {
    decode_group(
        c,
        "codec_decode_borrowed",
        [
            ("tickcast", |b| TickRef::decode(b).ok().map(|t| t.seq)),
            ("rmp_serde_flat", |b| serde_flat_decode(b).map(|t| t.seq)),
            ("rmp_serde_derived", |b| {
                serde_derived_decode::<TickRef<'_>>(b)
                    .filter(valid)
                    .map(|t| t.seq)
            }),
        ],
    );
}

fn decode_owned(c: &mut Criterion) {
    decode_group(
        c,
        "codec_decode_owned",
        [
            ("tickcast", |b| Tick::decode(b).ok()),
            ("rmp_serde_flat", |b| {
                serde_flat_decode(b).map(|t| t.to_tick())
            }),
            ("rmp_serde_derived", |b| {
                serde_derived_decode::<Tick>(b).filter(|t| valid(&t.as_ref()))
            }),
        ],
    );
}

fn peek(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec_peek");
    g.throughput(Throughput::Elements(1));
    for (name, t) in &ticks() {
        let bytes = wire(name, t);
        let bytes = &bytes[..];
        g.bench_with_input(BenchmarkId::new("tickcast", name), bytes, |b, bytes| {
            b.iter(|| TickHeader::peek(black_box(bytes)).map(|h| h.seq))
        });
        g.bench_with_input(BenchmarkId::new("rmp", name), bytes, |b, bytes| {
            b.iter(|| rmp_peek(black_box(bytes)).map(|h| h.seq))
        });
        g.bench_with_input(BenchmarkId::new("rmp_serde", name), bytes, |b, bytes| {
            b.iter(|| serde_peek(black_box(bytes)).map(|h| h.seq))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = encode, decode_borrowed, decode_owned, peek
}
criterion_main!(benches);
