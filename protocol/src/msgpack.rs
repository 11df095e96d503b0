//! The small slice of MessagePack the tick codec needs, written by hand.
//!
//! Why not `rmp-serde` for ticks: ticks are the hot path (the simulator writes
//! millions a second, the broker validates every ingested one), and a serde
//! round trip through a derived visitor costs several times more than reading
//! the few types a tick uses straight off a byte slice. Control messages are
//! rare and keep using `rmp-serde`. The tests check both against `rmpv`, a
//! generic MessagePack implementation, so the two never disagree.

use bytes::BufMut;

/// Why a MessagePack value could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// The input ended inside a value.
    Truncated,
    /// The value has another type than the one asked for.
    WrongType,
    /// A string was not valid UTF-8.
    InvalidUtf8,
    /// Nested containers deeper than [`MAX_SKIP_DEPTH`].
    TooDeep,
}

/// How deep an ignored (unknown-key) value may nest before we give up; keeps
/// hostile input from recursing without bound.
const MAX_SKIP_DEPTH: usize = 16;

/// A cursor over an encoded MessagePack buffer.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// A number read from the input, before the caller decides what fits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Number {
    Unsigned(u64),
    Negative(i64),
    Float(f64),
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// How many bytes are left after the cursor.
    pub(crate) fn remaining_len(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ReadError> {
        let end = self.pos.checked_add(n).ok_or(ReadError::Truncated)?;
        let bytes = self.buf.get(self.pos..end).ok_or(ReadError::Truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8, ReadError> {
        Ok(self.take(1)?[0])
    }

    fn peek(&self) -> Result<u8, ReadError> {
        self.buf.get(self.pos).copied().ok_or(ReadError::Truncated)
    }

    fn be<const N: usize>(&mut self) -> Result<[u8; N], ReadError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// Reads a map header and returns the number of entries.
    pub(crate) fn map_len(&mut self) -> Result<usize, ReadError> {
        match self.peek()? {
            m @ 0x80..=0x8f => {
                self.pos += 1;
                Ok(usize::from(m & 0x0f))
            }
            0xde => {
                self.pos += 1;
                Ok(usize::from(u16::from_be_bytes(self.be()?)))
            }
            0xdf => {
                self.pos += 1;
                Ok(u32::from_be_bytes(self.be()?) as usize)
            }
            _ => Err(ReadError::WrongType),
        }
    }

    /// Reads a string's bytes without copying or validating them (map keys:
    /// matching them against known ASCII keys makes UTF-8 checks pointless,
    /// and those checks were a quarter of the decode time).
    #[inline]
    pub(crate) fn str_bytes(&mut self) -> Result<&'a [u8], ReadError> {
        let len = match self.peek()? {
            s @ 0xa0..=0xbf => {
                self.pos += 1;
                usize::from(s & 0x1f)
            }
            0xd9 => {
                self.pos += 1;
                usize::from(self.byte()?)
            }
            0xda => {
                self.pos += 1;
                usize::from(u16::from_be_bytes(self.be()?))
            }
            0xdb => {
                self.pos += 1;
                u32::from_be_bytes(self.be()?) as usize
            }
            _ => return Err(ReadError::WrongType),
        };
        self.take(len)
    }

    /// Reads a string without copying it.
    #[inline]
    pub(crate) fn str(&mut self) -> Result<&'a str, ReadError> {
        std::str::from_utf8(self.str_bytes()?).map_err(|_| ReadError::InvalidUtf8)
    }

    /// Reads any integer or float.
    #[inline]
    pub(crate) fn number(&mut self) -> Result<Number, ReadError> {
        let marker = self.peek()?;
        let n = match marker {
            0x00..=0x7f => Number::Unsigned(u64::from(marker)),
            0xe0..=0xff => Number::Negative(i64::from(marker as i8)),
            0xca..=0xd3 => {
                self.pos += 1;
                return Ok(match marker {
                    0xcc => Number::Unsigned(u64::from(self.byte()?)),
                    0xcd => Number::Unsigned(u64::from(u16::from_be_bytes(self.be()?))),
                    0xce => Number::Unsigned(u64::from(u32::from_be_bytes(self.be()?))),
                    0xcf => Number::Unsigned(u64::from_be_bytes(self.be()?)),
                    0xd0 => signed(i64::from(i8::from_be_bytes(self.be()?))),
                    0xd1 => signed(i64::from(i16::from_be_bytes(self.be()?))),
                    0xd2 => signed(i64::from(i32::from_be_bytes(self.be()?))),
                    0xd3 => signed(i64::from_be_bytes(self.be()?)),
                    0xca => Number::Float(f64::from(f32::from_be_bytes(self.be()?))),
                    _ => Number::Float(f64::from_be_bytes(self.be()?)),
                });
            }
            _ => return Err(ReadError::WrongType),
        };
        self.pos += 1;
        Ok(n)
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

fn signed(v: i64) -> Number {
    if v >= 0 {
        Number::Unsigned(v as u64)
    } else {
        Number::Negative(v)
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
