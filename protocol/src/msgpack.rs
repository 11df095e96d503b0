//! The slice of MessagePack the tick codec needs: reading on `rmp` (the
//! project's low-level MessagePack library), writing and the bounded skip
//! of unknown values by hand, each for a measured reason.
//!
//! Measured with `cargo bench -p tickcast-benches --bench codec` on five
//! ticks (the example, 1- and 32-byte symbols, with `orig_ts`, whole-number
//! prices), every variant checked to write and read the same bytes; time of
//! the library ÷ time of ours, median (range) over the five ticks and two
//! or three runs. Taken on the shared 2-core machine while others compiled
//! (2026-12-01), so the ratios, not the nanoseconds, are the figures; the
//! lead re-takes them on a quiet machine (see `benches/README.md`).
//!
//! | operation | ours | rmp | rmp-serde | decision |
//! |---|---|---|---|---|
//! | encode | 46 ns | 1.21× (0.98–1.46) into a `Vec`; 1.65× (1.38–1.99) through the `BufMut` adapter our signature needs | 2.52× (2.02–3.50) | keep ours ([`write_str`] and the rest) |
//! | decode, borrowed | 120–275 ns | 1.23× (0.84–1.56) | 1.80× (1.25–2.21) flat struct, 1.96× derived | reads on rmp ([`Reader`]); the tick logic stays ours |
//! | decode, owned | 120–340 ns | 1.37× (0.91–1.58) | 1.81× flat, 1.90× derived | as borrowed |
//! | `TickHeader::peek` | 9 ns | 5.2× (4.5–6.8) | 21× (18–27) | keep ours (the fixed-layout path in `tick.rs`) |
//!
//! Encode keeps its own writers: rmp writes to `std::io::Write`, and
//! `TickRef::encode` appends to any `BufMut` (`framing::put_tick_record`
//! encodes straight into a record buffer), so rmp would go through an
//! adapter, at 1.65× ours; into a plain `Vec` it is 1.21×, but only by
//! changing a signature every producer uses. The decode figures
//! compare the hand-written reader this module had until then (commit
//! a7bc64b has it and the bench that timed it, three runs); rmp's readers
//! were close, so they replaced it. rmp-serde does not replace the tick
//! decoder: it is 1.8–2.0× the hand-written one (1.24–1.48× the rmp one
//! here, two runs), and it cannot say which key was missing or mistyped
//! (`DecodeError`) without a hand-written visitor of its own.
//!
//! What stays ours in the reader, and why:
//! - [`Reader::skip`]: rmp's only value skipper, `decode::MessageLen`,
//!   panics (`todo!()`) on extension types in 0.8.15, and an unknown key
//!   from a hostile publisher may hold one; ours is bounded in depth.
//! - [`Reader::str_bytes`] reads a string's length with rmp and takes the
//!   bytes itself, skipping the UTF-8 check of rmp's `read_str_from_slice`:
//!   keys are matched against known ASCII names, so the check is pointless
//!   (it was a quarter of the decode time).
//!
//! Control messages are rare and use `rmp-serde`. The tests check both
//! against `rmpv`, a generic MessagePack implementation, so the two never
//! disagree.

use bytes::BufMut;
use rmp::decode::{self, NumValueReadError, ValueReadError};

/// Why a MessagePack value could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// The input ended inside a value.
    Truncated,
    /// The value has another type than the one asked for (or, for an
    /// integer, does not fit the one asked for).
    WrongType,
    /// A string was not valid UTF-8.
    InvalidUtf8,
    /// Nested containers deeper than [`MAX_SKIP_DEPTH`].
    TooDeep,
}

impl<E: rmp::decode::RmpReadErr> From<ValueReadError<E>> for ReadError {
    fn from(e: ValueReadError<E>) -> Self {
        match e {
            ValueReadError::InvalidMarkerRead(_) | ValueReadError::InvalidDataRead(_) => {
                ReadError::Truncated
            }
            ValueReadError::TypeMismatch(_) => ReadError::WrongType,
        }
    }
}

impl<E: rmp::decode::RmpReadErr> From<NumValueReadError<E>> for ReadError {
    fn from(e: NumValueReadError<E>) -> Self {
        match e {
            NumValueReadError::InvalidMarkerRead(_) | NumValueReadError::InvalidDataRead(_) => {
                ReadError::Truncated
            }
            NumValueReadError::TypeMismatch(_) | NumValueReadError::OutOfRange => {
                ReadError::WrongType
            }
        }
    }
}

/// How deep an ignored (unknown-key) value may nest before we give up; keeps
/// hostile input from recursing without bound.
const MAX_SKIP_DEPTH: usize = 16;

/// A cursor over an encoded MessagePack buffer: rmp reads from the front of
/// `rest`.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { rest: buf }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// How many bytes are left after the cursor.
    pub(crate) fn remaining_len(&self) -> usize {
        self.rest.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ReadError> {
        let (head, rest) = self.rest.split_at_checked(n).ok_or(ReadError::Truncated)?;
        self.rest = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, ReadError> {
        let (&first, rest) = self.rest.split_first().ok_or(ReadError::Truncated)?;
        self.rest = rest;
        Ok(first)
    }

    fn be<const N: usize>(&mut self) -> Result<[u8; N], ReadError> {
        let (head, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(ReadError::Truncated)?;
        self.rest = rest;
        Ok(*head)
    }

    /// Reads a map header and returns the number of entries.
    pub(crate) fn map_len(&mut self) -> Result<usize, ReadError> {
        Ok(decode::read_map_len(&mut self.rest)? as usize)
    }

    /// Reads a string's bytes without copying or validating them (see the
    /// module docs).
    #[inline]
    pub(crate) fn str_bytes(&mut self) -> Result<&'a [u8], ReadError> {
        let len = decode::read_str_len(&mut self.rest)?;
        self.take(len as usize)
    }

    /// Reads a string without copying it.
    #[inline]
    pub(crate) fn str(&mut self) -> Result<&'a str, ReadError> {
        std::str::from_utf8(self.str_bytes()?).map_err(|_| ReadError::InvalidUtf8)
    }

    /// Reads an integer of any width that fits `u64`.
    #[inline]
    pub(crate) fn u64(&mut self) -> Result<u64, ReadError> {
        Ok(decode::read_int(&mut self.rest)?)
    }

    /// Reads an integer of any width that fits `u32`.
    #[inline]
    pub(crate) fn u32(&mut self) -> Result<u32, ReadError> {
        Ok(decode::read_int(&mut self.rest)?)
    }

    /// Reads a float32, a float64 or an integer, as `f64` (some encoders,
    /// JavaScript's among them, write whole-number floats as integers).
    #[inline]
    pub(crate) fn f64(&mut self) -> Result<f64, ReadError> {
        match self.rest.first() {
            Some(0xcb) => Ok(decode::read_f64(&mut self.rest)?),
            Some(0xca) => Ok(f64::from(decode::read_f32(&mut self.rest)?)),
            _ => Ok(decode::read_int(&mut self.rest)?),
        }
    }

    /// Skips one value of any type (used for unknown keys).
    pub(crate) fn skip(&mut self) -> Result<(), ReadError> {
        self.skip_depth(0)
    }

    fn skip_depth(&mut self, depth: usize) -> Result<(), ReadError> {
        if depth > MAX_SKIP_DEPTH {
            return Err(ReadError::TooDeep);
        }
        let marker = self.byte()?;
        let (payload, items): (usize, usize) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0x80..=0x8f => (0, usize::from(marker & 0x0f) * 2),
            0x90..=0x9f => (0, usize::from(marker & 0x0f)),
            0xa0..=0xbf => (usize::from(marker & 0x1f), 0),
            0xc4 | 0xd9 => (usize::from(self.byte()?), 0),
            0xc5 | 0xda => (usize::from(u16::from_be_bytes(self.be()?)), 0),
            0xc6 | 0xdb => (u32::from_be_bytes(self.be()?) as usize, 0),
            0xc7 => (usize::from(self.byte()?) + 1, 0),
            0xc8 => (usize::from(u16::from_be_bytes(self.be()?)) + 1, 0),
            0xc9 => (u32::from_be_bytes(self.be()?) as usize + 1, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xca | 0xce | 0xd2 => (4, 0),
            0xcb | 0xcf | 0xd3 => (8, 0),
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xdc => (0, usize::from(u16::from_be_bytes(self.be()?))),
            0xdd => (0, u32::from_be_bytes(self.be()?) as usize),
            0xde => (0, usize::from(u16::from_be_bytes(self.be()?)) * 2),
            0xdf => (
                0,
                (u32::from_be_bytes(self.be()?) as usize).saturating_mul(2),
            ),
            // 0xc1 is "never used" in the spec.
            _ => return Err(ReadError::WrongType),
        };
        self.take(payload)?;
        for _ in 0..items {
            self.skip_depth(depth + 1)?;
        }
        Ok(())
    }
}

/// Writes a map header for `len` entries.
pub(crate) fn write_map_len(out: &mut impl BufMut, len: usize) {
    if len < 16 {
        out.put_u8(0x80 | len as u8);
    } else {
        out.put_u8(0xde);
        out.put_u16(len as u16);
    }
}

/// Writes a string in the smallest encoding.
pub(crate) fn write_str(out: &mut impl BufMut, s: &str) {
    let len = s.len();
    if len < 32 {
        out.put_u8(0xa0 | len as u8);
    } else if len <= usize::from(u8::MAX) {
        out.put_u8(0xd9);
        out.put_u8(len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.put_u8(0xda);
        out.put_u16(len as u16);
    } else {
        out.put_u8(0xdb);
        out.put_u32(len as u32);
    }
    out.put_slice(s.as_bytes());
}

/// Writes an unsigned integer in the smallest encoding, as every MessagePack
/// library does, so generic decoders see an ordinary integer.
pub(crate) fn write_uint(out: &mut impl BufMut, v: u64) {
    if v < 128 {
        out.put_u8(v as u8);
    } else if v <= u64::from(u8::MAX) {
        out.put_u8(0xcc);
        out.put_u8(v as u8);
    } else if v <= u64::from(u16::MAX) {
        out.put_u8(0xcd);
        out.put_u16(v as u16);
    } else if v <= u64::from(u32::MAX) {
        out.put_u8(0xce);
        out.put_u32(v as u32);
    } else {
        out.put_u8(0xcf);
        out.put_u64(v);
    }
}

/// Writes a float64 (prices are always float64 on the wire, never narrowed).
pub(crate) fn write_f64(out: &mut impl BufMut, v: f64) {
    out.put_u8(0xcb);
    out.put_f64(v);
}
