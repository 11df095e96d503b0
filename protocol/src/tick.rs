//! The market-data tick: what it holds, how it is encoded, how it is checked.
//!
//! A tick is one MessagePack **map** with string keys (see `docs/PROTOCOL.md`):
//! `type` = `"tick"`, `sym`, `seq`, `ts`, `bid`, `ask`, `last`, `bid_size`,
//! `ask_size`, `last_size`, `volume`, and optionally `orig_ts` (the original
//! event time of a replayed tick). A tick carries the whole top-of-book and
//! last-trade state of its symbol, so a reader that skips ticks (conflation)
//! still holds a consistent view.
//!
//! [`TickRef`] borrows its symbol from the input buffer, so the broker can
//! validate an ingested record without allocating; [`Tick`] owns it.
//!
//! Which parts are hand-written and which use a library, measured against
//! `rmp` and `rmp-serde` (the figures are in the `msgpack` module): the
//! encoder and [`TickHeader::peek`]'s fast path are ours (rmp costs 1.65×
//! through our `BufMut` signature, and 5.2× for the peek; rmp-serde 2.5×
//! and 21×); the decoder reads the MessagePack values with rmp and keeps
//! its own key dispatch and checks, so every failure is a typed
//! [`DecodeError`] (rmp-serde decoded 1.8–2.0× slower and cannot say which
//! key was wrong).

use bytes::BufMut;
use serde::{Deserialize, Serialize};

use crate::msgpack::{self, ReadError, Reader};

/// One tick, generic over how it holds its symbol: [`Tick`] owns it,
/// [`TickRef`] borrows it from the encoded buffer. Serialises (serde) to
/// exactly the wire format's keys, `"type": "tick"` included, so
/// `serde_json::to_string(&tick)` gives a JSON line of the same shape as the
/// MessagePack map.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "tick")]
pub struct TickOf<S> {
    /// Ticker symbol, e.g. `AAPL`.
    pub sym: S,
    /// Per-symbol sequence number from the feed, starting at 1.
    pub seq: u64,
    /// Nanoseconds since the Unix epoch when the feed produced (or sent) it.
    pub ts: u64,
    /// Best bid price.
    pub bid: f64,
    /// Best ask price.
    pub ask: f64,
    /// Price of the last trade.
    pub last: f64,
    /// Size at the best bid, in shares.
    pub bid_size: u32,
    /// Size at the best ask, in shares.
    pub ask_size: u32,
    /// Size of the last trade, in shares.
    pub last_size: u32,
    /// Cumulative traded volume of the day.
    pub volume: u64,
    /// Original event time of a replayed tick, when `ts` was restamped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orig_ts: Option<u64>,
}

/// A tick that owns its symbol.
pub type Tick = TickOf<String>;

/// A decoded tick whose symbol borrows from the encoded buffer.
pub type TickRef<'a> = TickOf<&'a str>;

impl<S> TickOf<S> {
    /// The same tick with its symbol mapped (owned ↔ borrowed).
    fn with_sym<T>(&self, sym: T) -> TickOf<T> {
        TickOf {
            sym,
            seq: self.seq,
            ts: self.ts,
            bid: self.bid,
            ask: self.ask,
            last: self.last,
            bid_size: self.bid_size,
            ask_size: self.ask_size,
            last_size: self.last_size,
            volume: self.volume,
            orig_ts: self.orig_ts,
        }
    }
}

/// Why bytes are not a valid tick. Every variant names what was wrong, so a
/// publisher's log line says exactly which field to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside a value.
    #[error("tick is truncated")]
    Truncated,
    /// The top-level value is not a map.
    #[error("tick is not a MessagePack map")]
    NotAMap,
    /// A map key is not a string.
    #[error("tick has a non-string key")]
    NonStringKey,
    /// A string is not valid UTF-8.
    #[error("tick contains invalid UTF-8")]
    InvalidUtf8,
    /// A required key is absent.
    #[error("tick is missing key `{0}`")]
    MissingKey(&'static str),
    /// A key appears twice.
    #[error("tick has key `{0}` twice")]
    DuplicateKey(&'static str),
    /// A value has the wrong type (or is out of range for it).
    #[error("tick key `{key}` must be {expected}")]
    WrongType {
        /// The offending key.
        key: &'static str,
        /// What the key must hold.
        expected: &'static str,
    },
    /// `type` is present but is not `"tick"`.
    #[error("message type is `{0}`, expected `tick`")]
    NotATick(String),
    /// The symbol is empty or longer than [`MAX_SYMBOL_LEN`].
    #[error("symbol must be 1 to {MAX_SYMBOL_LEN} bytes")]
    BadSymbol,
    /// A price is NaN, infinite or negative.
    #[error("price `{key}` is {value}, must be finite and non-negative")]
    InvalidPrice {
        /// The offending key.
        key: &'static str,
        /// Its value.
        value: f64,
    },
    /// The bid is above the ask.
    #[error("crossed book: bid {bid} > ask {ask}")]
    CrossedBook {
        /// The bid.
        bid: f64,
        /// The ask.
        ask: f64,
    },
    /// An unknown key holds a value nested too deeply to skip safely.
    #[error("unknown key holds a value nested too deeply")]
    TooDeep,
    /// Bytes follow the map.
    #[error("{0} trailing bytes after the tick")]
    TrailingBytes(usize),
}

/// The longest symbol accepted, in bytes.
pub const MAX_SYMBOL_LEN: usize = 32;

impl From<ReadError> for DecodeError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Truncated => DecodeError::Truncated,
            ReadError::InvalidUtf8 => DecodeError::InvalidUtf8,
            ReadError::TooDeep => DecodeError::TooDeep,
            // Callers map type errors themselves, with the key's name.
            ReadError::WrongType => DecodeError::NotAMap,
        }
    }
}

// Field bits, to find missing and duplicate keys with one integer.
const F_TYPE: u16 = 1 << 0;
const F_SYM: u16 = 1 << 1;
const F_SEQ: u16 = 1 << 2;
const F_TS: u16 = 1 << 3;
const F_BID: u16 = 1 << 4;
const F_ASK: u16 = 1 << 5;
const F_LAST: u16 = 1 << 6;
const F_BID_SIZE: u16 = 1 << 7;
const F_ASK_SIZE: u16 = 1 << 8;
const F_LAST_SIZE: u16 = 1 << 9;
const F_VOLUME: u16 = 1 << 10;
const F_ORIG_TS: u16 = 1 << 11;
const REQUIRED: [(u16, &str); 11] = [
    (F_TYPE, "type"),
    (F_SYM, "sym"),
    (F_SEQ, "seq"),
    (F_TS, "ts"),
    (F_BID, "bid"),
    (F_ASK, "ask"),
    (F_LAST, "last"),
    (F_BID_SIZE, "bid_size"),
    (F_ASK_SIZE, "ask_size"),
    (F_LAST_SIZE, "last_size"),
    (F_VOLUME, "volume"),
];

impl<'a> TickRef<'a> {
    /// Decodes and validates one encoded tick (the whole of `buf`).
    ///
    /// Unknown keys are skipped (forward compatibility). Integers are
    /// accepted for prices, because some MessagePack libraries (JavaScript's
    /// among them) write whole-number floats as integers.
    pub fn decode(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let entries = r.map_len().map_err(|e| match e {
            ReadError::WrongType => DecodeError::NotAMap,
            other => other.into(),
        })?;
        let mut seen = 0u16;
        let mut t: TickRef<'a> = TickOf {
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
        for _ in 0..entries {
            let key = r.str_bytes().map_err(|e| match e {
                ReadError::WrongType => DecodeError::NonStringKey,
                other => other.into(),
            })?;
            let (bit, name): (u16, &'static str) = match key {
                b"type" => (F_TYPE, "type"),
                b"sym" => (F_SYM, "sym"),
                b"seq" => (F_SEQ, "seq"),
                b"ts" => (F_TS, "ts"),
                b"bid" => (F_BID, "bid"),
                b"ask" => (F_ASK, "ask"),
                b"last" => (F_LAST, "last"),
                b"bid_size" => (F_BID_SIZE, "bid_size"),
                b"ask_size" => (F_ASK_SIZE, "ask_size"),
                b"last_size" => (F_LAST_SIZE, "last_size"),
                b"volume" => (F_VOLUME, "volume"),
                b"orig_ts" => (F_ORIG_TS, "orig_ts"),
                _ => {
                    r.skip()?;
                    continue;
                }
            };
            if seen & bit != 0 {
                return Err(DecodeError::DuplicateKey(name));
            }
            seen |= bit;
            match bit {
                F_TYPE => {
                    let ty = read_str(&mut r, name)?;
                    if ty != "tick" {
                        return Err(DecodeError::NotATick(ty.to_owned()));
                    }
                }
                F_SYM => {
                    t.sym = read_str(&mut r, name)?;
                    if t.sym.is_empty() || t.sym.len() > MAX_SYMBOL_LEN {
                        return Err(DecodeError::BadSymbol);
                    }
                }
                F_SEQ => t.seq = read_u64(&mut r, name)?,
                F_TS => t.ts = read_u64(&mut r, name)?,
                F_VOLUME => t.volume = read_u64(&mut r, name)?,
                F_ORIG_TS => t.orig_ts = Some(read_u64(&mut r, name)?),
                F_BID => t.bid = read_price(&mut r, name)?,
                F_ASK => t.ask = read_price(&mut r, name)?,
                F_LAST => t.last = read_price(&mut r, name)?,
                F_BID_SIZE => t.bid_size = read_u32(&mut r, name)?,
                F_ASK_SIZE => t.ask_size = read_u32(&mut r, name)?,
                _ => t.last_size = read_u32(&mut r, name)?,
            }
        }
        if let Some((_, name)) = REQUIRED.iter().find(|(bit, _)| seen & bit == 0) {
            return Err(DecodeError::MissingKey(name));
        }
        if !r.is_empty() {
            return Err(DecodeError::TrailingBytes(r.remaining_len()));
        }
        if t.bid > t.ask {
            return Err(DecodeError::CrossedBook {
                bid: t.bid,
                ask: t.ask,
            });
        }
        Ok(t)
    }

    /// Appends the encoded tick to `out`.
    ///
    /// Keys are written in a fixed order and integers in their smallest form,
    /// which is what generic MessagePack encoders produce too.
    pub fn encode(&self, out: &mut impl BufMut) {
        msgpack::write_map_len(out, if self.orig_ts.is_some() { 12 } else { 11 });
        msgpack::write_str(out, "type");
        msgpack::write_str(out, "tick");
        msgpack::write_str(out, "sym");
        msgpack::write_str(out, self.sym);
        msgpack::write_str(out, "seq");
        msgpack::write_uint(out, self.seq);
        msgpack::write_str(out, "ts");
        msgpack::write_uint(out, self.ts);
        msgpack::write_str(out, "bid");
        msgpack::write_f64(out, self.bid);
        msgpack::write_str(out, "ask");
        msgpack::write_f64(out, self.ask);
        msgpack::write_str(out, "last");
        msgpack::write_f64(out, self.last);
        msgpack::write_str(out, "bid_size");
        msgpack::write_uint(out, u64::from(self.bid_size));
        msgpack::write_str(out, "ask_size");
        msgpack::write_uint(out, u64::from(self.ask_size));
        msgpack::write_str(out, "last_size");
        msgpack::write_uint(out, u64::from(self.last_size));
        msgpack::write_str(out, "volume");
        msgpack::write_uint(out, self.volume);
        if let Some(orig) = self.orig_ts {
            msgpack::write_str(out, "orig_ts");
            msgpack::write_uint(out, orig);
        }
    }

    /// Copies the tick into an owned [`Tick`].
    pub fn to_tick(&self) -> Tick {
        self.with_sym(self.sym.to_owned())
    }
}

impl Tick {
    /// A plausible AAPL tick, for documentation, tests and benchmarks:
    /// change what matters with struct update syntax.
    ///
    /// ```
    /// use tickcast_protocol::Tick;
    /// let tick = Tick { seq: 7, ..Tick::example() };
    /// assert_eq!(Tick::decode(&tick.to_vec()), Ok(tick));
    /// ```
    pub fn example() -> Self {
        Tick {
            sym: "AAPL".into(),
            seq: 42,
            // 2026-01-01 00:00:00.123456789 UTC
            ts: 1_767_225_600_123_456_789,
            bid: 189.49,
            ask: 189.51,
            last: 189.5,
            bid_size: 300,
            ask_size: 200,
            last_size: 100,
            volume: 22_184_300,
            orig_ts: None,
        }
    }

    /// Borrows the tick as a [`TickRef`].
    pub fn as_ref(&self) -> TickRef<'_> {
        self.with_sym(self.sym.as_str())
    }

    /// Decodes and validates one encoded tick into an owned value.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        TickRef::decode(buf).map(|t| t.to_tick())
    }

    /// Appends the encoded tick to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        self.as_ref().encode(out)
    }

    /// Encodes the tick into a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        self.encode(&mut out);
        out
    }
}

/// The routing fields of a tick (`sym`, `seq`, `ts`), read without decoding
/// the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickHeader<'a> {
    /// Ticker symbol, as raw bytes: not checked for UTF-8, because a reader
    /// that only compares it with the symbols it knows does not need to pay
    /// for that (measured at a tenth of the load generator's CPU).
    pub sym: &'a [u8],
    /// Per-symbol sequence number.
    pub seq: u64,
    /// Event time, nanoseconds since the Unix epoch.
    pub ts: u64,
}

impl<'a> TickHeader<'a> {
    /// Reads `sym`, `seq` and `ts` from a tick whose first keys come in the
    /// order [`TickRef::encode`] writes them (`type`, `sym`, `seq`, `ts`),
    /// without looking at the rest.
    ///
    /// Returns `None` for anything else (another key order, a control
    /// message, garbage), so the caller falls back to [`TickRef::decode`].
    /// It validates nothing past these fields: it is for readers that trust
    /// their source and count every nanosecond, such as the load generator,
    /// which reads millions of ticks a second on one core where a full decode
    /// would make it the bottleneck it is trying to measure.
    pub fn peek(buf: &'a [u8]) -> Option<Self> {
        Self::peek_fixed(buf).or_else(|| Self::peek_generic(buf))
    }

    /// [`TickHeader::peek`] for exactly what [`TickRef::encode`] writes: a
    /// fixmap, then the constant bytes `"type" "tick" "sym"` compared in one
    /// go, a fixstr symbol and fixstr keys: 9 ns where walking the same
    /// bytes value by value with rmp's readers takes 5.2× as long (see the
    /// `msgpack` module).
    #[inline]
    fn peek_fixed(buf: &'a [u8]) -> Option<Self> {
        const PREFIX: &[u8] = b"\xa4type\xa4tick\xa3sym";
        let (&map, rest) = buf.split_first()?;
        if !(0x84..=0x8f).contains(&map) || !rest.starts_with(PREFIX) {
            return None;
        }
        let rest = &rest[PREFIX.len()..];
        let (&sym_marker, rest) = rest.split_first()?;
        if !(0xa0..=0xbf).contains(&sym_marker) {
            return None;
        }
        let (sym, rest) = rest.split_at_checked(usize::from(sym_marker & 0x1f))?;
        let rest = rest.strip_prefix(b"\xa3seq")?;
        let (seq, rest) = fixed_uint(rest)?;
        let rest = rest.strip_prefix(b"\xa2ts")?;
        let (ts, _) = fixed_uint(rest)?;
        Some(Self { sym, seq, ts })
    }

    /// [`TickHeader::peek`] for any encoding of the first four keys in
    /// canonical order (e.g. the str8 of a 32-byte symbol), value by value
    /// with rmp's readers.
    fn peek_generic(buf: &'a [u8]) -> Option<Self> {
        let mut r = Reader::new(buf);
        if r.map_len().ok()? < 4
            || r.str_bytes().ok()? != b"type"
            || r.str_bytes().ok()? != b"tick"
            || r.str_bytes().ok()? != b"sym"
        {
            return None;
        }
        let sym = r.str_bytes().ok()?;
        if r.str_bytes().ok()? != b"seq" {
            return None;
        }
        let seq = r.u64().ok()?;
        if r.str_bytes().ok()? != b"ts" {
            return None;
        }
        let ts = r.u64().ok()?;
        Some(Self { sym, seq, ts })
    }
}

/// An unsigned integer in any MessagePack width, and the bytes after it.
#[inline]
fn fixed_uint(buf: &[u8]) -> Option<(u64, &[u8])> {
    let (&marker, rest) = buf.split_first()?;
    fn be<const N: usize>(rest: &[u8]) -> Option<([u8; N], &[u8])> {
        let (head, tail) = rest.split_first_chunk::<N>()?;
        Some((*head, tail))
    }
    Some(match marker {
        0x00..=0x7f => (u64::from(marker), rest),
        0xcc => be::<1>(rest).map(|(b, r)| (u64::from(b[0]), r))?,
        0xcd => be::<2>(rest).map(|(b, r)| (u64::from(u16::from_be_bytes(b)), r))?,
        0xce => be::<4>(rest).map(|(b, r)| (u64::from(u32::from_be_bytes(b)), r))?,
        0xcf => be::<8>(rest).map(|(b, r)| (u64::from_be_bytes(b), r))?,
        _ => return None,
    })
}

fn wrong(key: &'static str, expected: &'static str) -> impl Fn(ReadError) -> DecodeError {
    move |e| match e {
        ReadError::WrongType => DecodeError::WrongType { key, expected },
        other => other.into(),
    }
}

fn read_str<'a>(r: &mut Reader<'a>, key: &'static str) -> Result<&'a str, DecodeError> {
    r.str().map_err(wrong(key, "a string"))
}

fn read_u64(r: &mut Reader<'_>, key: &'static str) -> Result<u64, DecodeError> {
    r.u64().map_err(wrong(key, "an unsigned integer"))
}

fn read_u32(r: &mut Reader<'_>, key: &'static str) -> Result<u32, DecodeError> {
    r.u32().map_err(wrong(key, "an unsigned 32-bit integer"))
}

fn read_price(r: &mut Reader<'_>, key: &'static str) -> Result<f64, DecodeError> {
    let value = r.f64().map_err(wrong(key, "a number"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(DecodeError::InvalidPrice { key, value });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_peek_reads_what_encode_wrote_and_nothing_else() {
        let tick = Tick {
            sym: "MSFT".into(),
            seq: 70_000,
            ts: 1_763_900_000_123_456_789,
            bid: 410.1,
            ask: 410.12,
            last: 410.11,
            bid_size: 100,
            ask_size: 200,
            last_size: 50,
            volume: 9_000_000,
            orig_ts: Some(5),
        };
        let bytes = tick.to_vec();
        assert_eq!(
            TickHeader::peek(&bytes),
            Some(TickHeader {
                sym: b"MSFT",
                seq: 70_000,
                ts: 1_763_900_000_123_456_789
            })
        );
        for cut in 0..40 {
            assert_eq!(TickHeader::peek(&bytes[..cut]), None, "cut at {cut}");
        }
        let control = crate::ServerMessage::subscribed(vec!["MSFT".into()]).to_msgpack();
        assert_eq!(TickHeader::peek(&control), None);
    }

    #[test]
    fn rmp_serde_writes_and_reads_the_same_bytes() {
        // What the codec bench compares with must be the same wire format.
        for (seq, orig_ts) in [(1, None), (300, Some(70_000)), (u64::MAX, Some(0))] {
            for sym in ["F", "AAPL", &"X".repeat(MAX_SYMBOL_LEN)] {
                let tick = Tick {
                    sym: sym.into(),
                    seq,
                    orig_ts,
                    ..Tick::example()
                };
                let bytes = tick.to_vec();
                assert_eq!(rmp_serde::to_vec_named(&tick).ok(), Some(bytes.clone()));
                assert_eq!(rmp_serde::from_slice::<Tick>(&bytes).ok(), Some(tick));
            }
        }
    }

    #[test]
    fn the_fixed_layout_peek_agrees_with_the_generic_one() {
        let tick = |sym: &str, seq, ts| {
            Tick {
                sym: sym.into(),
                seq,
                ts,
                bid: 1.0,
                ask: 1.5,
                last: 1.25,
                bid_size: 1,
                ask_size: 2,
                last_size: 3,
                volume: 4,
                orig_ts: None,
            }
            .to_vec()
        };
        let widths = [
            0,
            1,
            127,
            128,
            255,
            256,
            65_535,
            65_536,
            u64::from(u32::MAX) + 1,
            u64::MAX,
        ];
        for sym in ["A", "BRK.B", "ABCDEFGHIJKLMNOPQRSTUVWXYZ01234"] {
            for &seq in &widths {
                for &ts in &widths {
                    let bytes = tick(sym, seq, ts);
                    let fixed = TickHeader::peek_fixed(&bytes);
                    assert!(fixed.is_some(), "{sym} {seq} {ts}");
                    assert_eq!(fixed, TickHeader::peek_generic(&bytes));
                    for cut in 0..bytes.len() {
                        let part = &bytes[..cut];
                        assert_eq!(TickHeader::peek_fixed(part), TickHeader::peek_generic(part));
                    }
                }
            }
        }
        // A 32-byte symbol needs str8: only the generic path reads it.
        let bytes = tick(&"X".repeat(32), 1, 2);
        assert_eq!(TickHeader::peek_fixed(&bytes), None);
        assert_eq!(TickHeader::peek(&bytes).map(|h| h.sym.len()), Some(32));
    }
}
