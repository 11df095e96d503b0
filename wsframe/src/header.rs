//! The frame header (RFC 6455 §5.2): parse any header from a byte slice,
//! encode any header, valid or not.
//!
//! Parsing checks nothing but that the bytes are there: whether a header is
//! acceptable depends on who reads it and what was agreed, which is
//! [`crate::rules`]' job. Encoding takes the first byte as given, so tests
//! can send reserved bits, unknown opcodes or unmasked client frames through
//! the same code that writes valid ones; it always picks the shortest of the
//! three length forms (7 bits, 16 bits, 64 bits), as §5.2 requires.

use crate::fixed::Fixed;
use crate::opcode::Opcode;

/// The FIN bit of the first byte: the last fragment of a message.
pub const FIN: u8 = 0x80;
/// RSV1, the first of the three reserved bits (permessage-deflate's).
pub const RSV1: u8 = 0x40;
/// All three reserved bits.
pub const RSV: u8 = 0x70;
/// The low nibble of the first byte: the opcode.
const OPCODE: u8 = 0x0f;
/// The mask bit of the second byte.
const MASKED: u8 = 0x80;

/// The longest header: 2 bytes, a 64-bit length and a 4-byte mask key.
pub const MAX_HEADER: usize = 14;

/// One frame header, as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The first byte as it is: FIN, RSV1–3 and the opcode's four bits.
    pub first: u8,
    /// The masking key, if the mask bit is set.
    pub mask: Option<[u8; 4]>,
    /// The payload length the header declares.
    pub payload_len: u64,
}

impl Header {
    /// An unfragmented, unmasked frame of `opcode` (what a server sends).
    #[inline]
    pub const fn new(opcode: Opcode, payload_len: u64) -> Self {
        Self {
            first: FIN | opcode as u8,
            mask: None,
            payload_len,
        }
    }

    /// Whether FIN is set.
    #[inline]
    pub const fn fin(&self) -> bool {
        self.first & FIN != 0
    }

    /// The opcode's four bits, defined or not.
    #[inline]
    pub const fn opcode_bits(&self) -> u8 {
        self.first & OPCODE
    }

    /// Parses the header at the front of `buf`: the header and how many
    /// bytes it takes, or `None` if `buf` ends before the header does.
    ///
    /// A length in a longer form than needed is read as it is, not refused.
    #[inline]
    pub fn parse(buf: &[u8]) -> Option<(Header, usize)> {
        let [first, second, ref rest @ ..] = *buf else {
            return None;
        };
        let (payload_len, rest) = match second & !MASKED {
            126 => {
                let (len, rest) = rest.split_first_chunk::<2>()?;
                (u64::from(u16::from_be_bytes(*len)), rest)
            }
            127 => {
                let (len, rest) = rest.split_first_chunk::<8>()?;
                (u64::from_be_bytes(*len), rest)
            }
            short => (u64::from(short), rest),
        };
        let mask = if second & MASKED != 0 {
            Some(*rest.first_chunk::<4>()?)
        } else {
            None
        };
        let used = buf.len() - rest.len() + mask.map_or(0, |m| m.len());
        Some((
            Header {
                first,
                mask,
                payload_len,
            },
            used,
        ))
    }

    /// The header's bytes, to put in front of the payload.
    pub fn encode(&self) -> Fixed<MAX_HEADER> {
        let mut out = Fixed::new();
        let masked = if self.mask.is_some() { MASKED } else { 0 };
        match self.payload_len {
            short @ 0..=125 => out.extend_from_slice(&[self.first, masked | short as u8]),
            medium @ 126..=0xffff => {
                out.extend_from_slice(&[self.first, masked | 126]);
                out.extend_from_slice(&(medium as u16).to_be_bytes());
            }
            long => {
                out.extend_from_slice(&[self.first, masked | 127]);
                out.extend_from_slice(&long.to_be_bytes());
            }
        }
        if let Some(mask) = self.mask {
            out.extend_from_slice(&mask);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_use_the_shortest_length_form() {
        let cases: [(u64, &[u8]); 5] = [
            (0, &[0x82, 0]),
            (125, &[0x82, 125]),
            (126, &[0x82, 126, 0, 126]),
            (65_535, &[0x82, 126, 0xff, 0xff]),
            (65_536, &[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
        ];
        for (len, want) in cases {
            let header = Header::new(Opcode::Binary, len);
            let bytes = header.encode();
            assert_eq!(&bytes[..], want, "length {len}");
            assert_eq!(Header::parse(&bytes), Some((header, want.len())));
        }
    }

    #[test]
    fn a_mask_key_follows_the_length_and_sets_the_mask_bit() {
        let header = Header {
            first: 0x81,
            mask: Some([1, 2, 3, 4]),
            payload_len: 300,
        };
        let bytes = header.encode();
        assert_eq!(&bytes[..], &[0x81, 0x80 | 126, 1, 44, 1, 2, 3, 4]);
        assert_eq!(Header::parse(&bytes), Some((header, 8)));
    }

    #[test]
    fn any_first_byte_is_sent_as_is() {
        for first in [0x00, 0x03, 0x09, 0xC1, 0xFF] {
            let header = Header {
                first,
                mask: None,
                payload_len: 1,
            };
            assert_eq!(header.encode()[0], first);
            assert_eq!(Header::parse(&header.encode()), Some((header, 2)));
        }
    }

    #[test]
    fn a_header_cut_anywhere_needs_more_bytes() {
        for len in [0, 125, 126, 65_535, 65_536] {
            for mask in [None, Some([9, 9, 9, 9])] {
                let header = Header {
                    first: 0x82,
                    mask,
                    payload_len: len,
                };
                let bytes = header.encode();
                for cut in 0..bytes.len() {
                    assert_eq!(Header::parse(&bytes[..cut]), None, "{len} {mask:?} {cut}");
                }
            }
        }
    }

    #[test]
    fn a_longer_length_form_than_needed_is_read_as_it_is() {
        let bytes = [0x82, 127, 0, 0, 0, 0, 0, 0, 0, 5];
        assert_eq!(
            Header::parse(&bytes),
            Some((Header::new(Opcode::Binary, 5), 10))
        );
    }
}
