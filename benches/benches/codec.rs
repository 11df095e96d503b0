//! The tick codec, hand-written vs the project's MessagePack libraries
//! (`rmp-serde`, `rmp`), on the same ticks and the same wire bytes.

use std::hint::black_box;

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

fn rmp_encode(t: &TickRef<'_>, out: &mut Vec<u8>) {
    use rmp::encode::{write_f64, write_map_len, write_str, write_uint};
    // Writing to a Vec cannot fail.
    let _ = write_map_len(out, if t.orig_ts.is_some() { 12 } else { 11 });
    let _ = write_str(out, "type");
    let _ = write_str(out, "tick");
    let _ = write_str(out, "sym");
    let _ = write_str(out, t.sym);
    let _ = write_str(out, "seq");
    let _ = write_uint(out, t.seq);
    let _ = write_str(out, "ts");
    let _ = write_uint(out, t.ts);
    let _ = write_str(out, "bid");
    let _ = write_f64(out, t.bid);
    let _ = write_str(out, "ask");
    let _ = write_f64(out, t.ask);
    let _ = write_str(out, "last");
    let _ = write_f64(out, t.last);
    let _ = write_str(out, "bid_size");
    let _ = write_uint(out, u64::from(t.bid_size));
    let _ = write_str(out, "ask_size");
    let _ = write_uint(out, u64::from(t.ask_size));
    let _ = write_str(out, "last_size");
    let _ = write_uint(out, u64::from(t.last_size));
    let _ = write_str(out, "volume");
    let _ = write_uint(out, t.volume);
    if let Some(orig) = t.orig_ts {
        let _ = write_str(out, "orig_ts");
        let _ = write_uint(out, orig);
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

// ---- decode with rmp's low-level readers ---------------------------------

/// Reads a string's bytes without UTF-8 checks (keys are matched as bytes).
fn rmp_str<'a>(rd: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = rmp::decode::read_str_len(rd).ok()? as usize;
    let (s, rest) = rd.split_at_checked(len)?;
    *rd = rest;
    Some(s)
}

/// [`rmp_str`] on rmp's own slice reader, [`rmp::decode::Bytes`].
fn bytes_str<'a>(rd: &mut rmp::decode::Bytes<'a>) -> Option<&'a [u8]> {
    let len = rmp::decode::read_str_len(rd).ok()? as usize;
    let (s, rest) = rd.remaining_slice().split_at_checked(len)?;
    *rd = rmp::decode::Bytes::new(rest);
    Some(s)
}

/// rmp reads a tick through either `&[u8]` (its `io::Read` impl) or
/// [`rmp::decode::Bytes`] (its own slice reader).
trait Input<'a>: rmp::decode::RmpRead + Sized {
    fn str_bytes(&mut self) -> Option<&'a [u8]>;
    fn first(&self) -> Option<u8>;
    fn rest(&self) -> &'a [u8];
    fn set_rest(&mut self, rest: &'a [u8]);
}

impl<'a> Input<'a> for &'a [u8] {
    fn str_bytes(&mut self) -> Option<&'a [u8]> {
        rmp_str(self)
    }
    fn first(&self) -> Option<u8> {
        <[u8]>::first(self).copied()
    }
    fn rest(&self) -> &'a [u8] {
        self
    }
    fn set_rest(&mut self, rest: &'a [u8]) {
        *self = rest;
    }
}

impl<'a> Input<'a> for rmp::decode::Bytes<'a> {
    fn str_bytes(&mut self) -> Option<&'a [u8]> {
        bytes_str(self)
    }
    fn first(&self) -> Option<u8> {
        self.remaining_slice().first().copied()
    }
    fn rest(&self) -> &'a [u8] {
        self.remaining_slice()
    }
    fn set_rest(&mut self, rest: &'a [u8]) {
        *self = rmp::decode::Bytes::new(rest);
    }
}

fn rmp_price<'a>(rd: &mut impl Input<'a>) -> Option<f64> {
    match rd.first()? {
        0xcb => rmp::decode::read_f64(rd).ok(),
        0xca => rmp::decode::read_f32(rd).ok().map(f64::from),
        _ => rmp::decode::read_int::<f64, _>(rd).ok(),
    }
}

fn rmp_decode_in<'a>(mut rd: impl Input<'a>) -> Option<TickRef<'a>> {
    use rmp::decode::{read_int, read_map_len};
    let n = read_map_len(&mut rd).ok()?;
    let mut t = TickRef {
        sym: "",
        seq: 0,
        ts: 0,
        bid: 0.0,
        ask: 0.0,
        last: 0.0,
        bid_size: 0,
        ask_size: 0,
        last_size: 0,
        volume: 0,
        orig_ts: None,
    };
    let mut seen = 0u16;
    for _ in 0..n {
        let key = rd.str_bytes()?;
        let bit = match key {
            b"type" => {
                (rd.str_bytes()? == b"tick").then_some(())?;
                1
            }
            b"sym" => {
                t.sym = std::str::from_utf8(rd.str_bytes()?).ok()?;
                2
            }
            b"seq" => {
                t.seq = read_int(&mut rd).ok()?;
                4
            }
            b"ts" => {
                t.ts = read_int(&mut rd).ok()?;
                8
            }
            b"bid" => {
                t.bid = rmp_price(&mut rd)?;
                16
            }
            b"ask" => {
                t.ask = rmp_price(&mut rd)?;
                32
            }
            b"last" => {
                t.last = rmp_price(&mut rd)?;
                64
            }
            b"bid_size" => {
                t.bid_size = read_int(&mut rd).ok()?;
                128
            }
            b"ask_size" => {
                t.ask_size = read_int(&mut rd).ok()?;
                256
            }
            b"last_size" => {
                t.last_size = read_int(&mut rd).ok()?;
                512
            }
            b"volume" => {
                t.volume = read_int(&mut rd).ok()?;
                1024
            }
            b"orig_ts" => {
                t.orig_ts = Some(read_int(&mut rd).ok()?);
                2048
            }
            _ => {
                let rest = rd.rest();
                let len = rmp::decode::MessageLen::with_limits(16, usize::MAX)
                    .incremental_len(rest)
                    .ok()?;
                rd.set_rest(rest.get(len..)?);
                0
            }
        };
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
    }
    (seen & 0x7ff == 0x7ff && rd.rest().is_empty() && valid(&t)).then_some(t)
}

fn rmp_decode(buf: &[u8]) -> Option<TickRef<'_>> {
    rmp_decode_in(buf)
}

fn rmp_bytes_decode(buf: &[u8]) -> Option<TickRef<'_>> {
    rmp_decode_in(rmp::decode::Bytes::new(buf))
}

// ---- peek with rmp's low-level readers -------------------------------------

fn rmp_peek_in<'a>(mut rd: impl Input<'a>) -> Option<TickHeader<'a>> {
    if rmp::decode::read_map_len(&mut rd).ok()? < 4
        || rd.str_bytes()? != b"type"
        || rd.str_bytes()? != b"tick"
        || rd.str_bytes()? != b"sym"
    {
        return None;
    }
    let sym = rd.str_bytes()?;
    if rd.str_bytes()? != b"seq" {
        return None;
    }
    let seq = rmp::decode::read_int(&mut rd).ok()?;
    if rd.str_bytes()? != b"ts" {
        return None;
    }
    let ts = rmp::decode::read_int(&mut rd).ok()?;
    Some(TickHeader { sym, seq, ts })
}

fn rmp_peek(buf: &[u8]) -> Option<TickHeader<'_>> {
    rmp_peek_in(buf)
}

fn rmp_bytes_peek(buf: &[u8]) -> Option<TickHeader<'_>> {
    rmp_peek_in(rmp::decode::Bytes::new(buf))
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
    let mut ints = Vec::new();
    {
        let _ = write_map_len(&mut ints, 11);
        let _ = write_str(&mut ints, "type");
        let _ = write_str(&mut ints, "tick");
        let _ = write_str(&mut ints, "sym");
        let _ = write_str(&mut ints, &t.sym);
        let _ = write_str(&mut ints, "seq");
        let _ = write_uint(&mut ints, t.seq);
        let _ = write_str(&mut ints, "ts");
        let _ = write_uint(&mut ints, t.ts);
        for (k, v) in [("bid", t.bid), ("ask", t.ask), ("last", t.last)] {
            let _ = write_str(&mut ints, k);
            let _ = write_uint(&mut ints, v as u64);
        }
        for (k, v) in [
            ("bid_size", u64::from(t.bid_size)),
            ("ask_size", u64::from(t.ask_size)),
            ("last_size", u64::from(t.last_size)),
            ("volume", t.volume),
        ] {
            let _ = write_str(&mut ints, k);
            let _ = write_uint(&mut ints, v);
        }
    }
    ints
}

/// Every variant writes and reads exactly the wire bytes of the hand-written
/// codec: checked before anything is timed.
fn check_same_bytes(ticks: &[(&str, Tick)]) {
    for (name, t) in ticks {
        let ours = t.to_vec();
        let mut low = Vec::new();
        rmp_encode(&t.as_ref(), &mut low);
        assert_eq!(low, ours, "rmp encode, {name}");
        assert_eq!(
            rmp_serde::to_vec_named(t).ok().as_deref(),
            Some(&ours[..]),
            "rmp-serde encode, {name}"
        );
        let bytes = wire(name, t);
        let want = TickRef::decode(&bytes).ok();
        assert_eq!(want.as_ref(), Some(&t.as_ref()), "{name}");
        assert_eq!(rmp_decode(&bytes), want, "rmp decode, {name}");
        assert_eq!(rmp_bytes_decode(&bytes), want, "rmp Bytes decode, {name}");
        assert_eq!(serde_flat_decode(&bytes), want, "rmp-serde flat, {name}");
        assert_eq!(
            serde_derived_decode::<TickRef<'_>>(&bytes),
            want,
            "rmp-serde derived, {name}"
        );
        let header = TickHeader::peek(&bytes);
        assert!(header.is_some(), "{name}");
        assert_eq!(rmp_peek(&bytes), header, "rmp peek, {name}");
        assert_eq!(rmp_bytes_peek(&bytes), header, "rmp Bytes peek, {name}");
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
        g.bench_with_input(BenchmarkId::new("hand", name), &t, |b, t| {
            b.iter(|| {
                out.clear();
                black_box(t).encode(&mut out);
                black_box(out.len())
            })
        });
        g.bench_with_input(BenchmarkId::new("rmp", name), &t, |b, t| {
            b.iter(|| {
                out.clear();
                rmp_encode(black_box(t), &mut out);
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

fn decode_borrowed(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec_decode_borrowed");
    g.throughput(Throughput::Elements(1));
    for (name, t) in &ticks() {
        let bytes = wire(name, t);
        let bytes = &bytes[..];
        g.bench_with_input(BenchmarkId::new("hand", name), bytes, |b, bytes| {
            b.iter(|| TickRef::decode(black_box(bytes)).map(|t| t.seq))
        });
        g.bench_with_input(BenchmarkId::new("rmp", name), bytes, |b, bytes| {
            b.iter(|| rmp_decode(black_box(bytes)).map(|t| t.seq))
        });
        g.bench_with_input(BenchmarkId::new("rmp_bytes", name), bytes, |b, bytes| {
            b.iter(|| rmp_bytes_decode(black_box(bytes)).map(|t| t.seq))
        });
        g.bench_with_input(
            BenchmarkId::new("rmp_serde_flat", name),
            bytes,
            |b, bytes| b.iter(|| serde_flat_decode(black_box(bytes)).map(|t| t.seq)),
        );
        g.bench_with_input(
            BenchmarkId::new("rmp_serde_derived", name),
            bytes,
            |b, bytes| {
                b.iter(|| {
                    serde_derived_decode::<TickRef<'_>>(black_box(bytes))
                        .filter(valid)
                        .map(|t| t.seq)
                })
            },
        );
    }
    g.finish();
}

fn decode_owned(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec_decode_owned");
    g.throughput(Throughput::Elements(1));
    for (name, t) in &ticks() {
        let bytes = wire(name, t);
        let bytes = &bytes[..];
        g.bench_with_input(BenchmarkId::new("hand", name), bytes, |b, bytes| {
            b.iter(|| Tick::decode(black_box(bytes)))
        });
        g.bench_with_input(BenchmarkId::new("rmp", name), bytes, |b, bytes| {
            b.iter(|| rmp_decode(black_box(bytes)).map(|t| t.to_tick()))
        });
        g.bench_with_input(BenchmarkId::new("rmp_bytes", name), bytes, |b, bytes| {
            b.iter(|| rmp_bytes_decode(black_box(bytes)).map(|t| t.to_tick()))
        });
        g.bench_with_input(
            BenchmarkId::new("rmp_serde_flat", name),
            bytes,
            |b, bytes| b.iter(|| serde_flat_decode(black_box(bytes)).map(|t| t.to_tick())),
        );
        g.bench_with_input(
            BenchmarkId::new("rmp_serde_derived", name),
            bytes,
            |b, bytes| {
                b.iter(|| {
                    serde_derived_decode::<Tick>(black_box(bytes)).filter(|t| valid(&t.as_ref()))
                })
            },
        );
    }
    g.finish();
}

fn peek(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec_peek");
    g.throughput(Throughput::Elements(1));
    for (name, t) in &ticks() {
        let bytes = wire(name, t);
        let bytes = &bytes[..];
        g.bench_with_input(BenchmarkId::new("hand", name), bytes, |b, bytes| {
            b.iter(|| TickHeader::peek(black_box(bytes)).map(|h| h.seq))
        });
        g.bench_with_input(BenchmarkId::new("rmp", name), bytes, |b, bytes| {
            b.iter(|| rmp_peek(black_box(bytes)).map(|h| h.seq))
        });
        g.bench_with_input(BenchmarkId::new("rmp_bytes", name), bytes, |b, bytes| {
            b.iter(|| rmp_bytes_peek(black_box(bytes)).map(|h| h.seq))
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
