//! A whole frame in a buffer: parsed in place with its payload borrowed,
//! or appended to a `Vec` with its payload masked.
//!
//! In place because the load generator reads millions of frames a second
//! out of one shared read buffer: a frame costs a header parse, the checks
//! and a slice, never an allocation or a copy.

use crate::header::Header;
use crate::mask;
use crate::opcode::Opcode;
use crate::rules::{Rules, Violation};

/// One frame, its payload borrowed from the buffer it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The header as received.
    pub header: Header,
    /// The header's opcode, checked.
    pub opcode: Opcode,
    /// The payload as it lies in the buffer (still masked if
    /// `header.mask` is set).
    pub payload: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Parses and checks the frame at the front of `buf` as the first frame
    /// of no message in progress (the caller limits fragmented messages):
    /// the frame and the bytes it took, `Ok(None)` when `buf` holds only
    /// part of it, or the rule it breaks.
    #[inline]
    pub fn parse(buf: &'a [u8], rules: &Rules) -> Result<Option<(Frame<'a>, usize)>, Violation> {
        let Some((header, start)) = Header::parse(buf) else {
            return Ok(None);
        };
        let opcode = rules.check(&header, 0)?;
        // A length past usize can never fit a buffer: wait for the bytes,
        // which the caller's own buffer limit will refuse first.
        let end = usize::try_from(header.payload_len)
            .ok()
            .and_then(|len| start.checked_add(len));
        let Some(payload) = end.and_then(|end| buf.get(start..end)) else {
            return Ok(None);
        };
        Ok(Some((
            Frame {
                header,
                opcode,
                payload,
            },
            start + payload.len(),
        )))
    }
}

/// Appends one frame whose first byte is `first` (FIN, RSV bits, opcode, any
/// of them invalid on purpose if need be), masked with `mask` if given, as a
/// client must (§5.3).
pub fn put_frame(out: &mut Vec<u8>, first: u8, mask: Option<[u8; 4]>, payload: &[u8]) {
    let header = Header {
        first,
        mask,
        payload_len: payload.len() as u64,
    };
    out.extend_from_slice(&header.encode());
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(mask) = mask {
        mask::apply(&mut out[start..], mask);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::FIN;

    const BINARY: u8 = FIN | Opcode::Binary as u8;

    #[test]
    fn all_three_length_forms_round_trip_and_split_anywhere() {
        let rules = Rules::client(1 << 20);
        for len in [0, 1, 125, 126, 127, 65_535, 65_536, 100_000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut bytes = Vec::new();
            put_frame(&mut bytes, BINARY, None, &payload);
            let (frame, used) = Frame::parse(&bytes, &rules).unwrap().unwrap();
            assert_eq!(used, bytes.len());
            assert_eq!(
                (frame.opcode, frame.payload),
                (Opcode::Binary, &payload[..])
            );
            assert!(frame.header.fin());
            let cuts: Vec<usize> = if len < 300 {
                (0..bytes.len()).collect()
            } else {
                vec![0, 1, 2, 3, 9, 10, bytes.len() / 2, bytes.len() - 1]
            };
            for cut in cuts {
                assert_eq!(
                    Frame::parse(&bytes[..cut], &rules),
                    Ok(None),
                    "len {len} cut {cut}"
                );
            }
        }
    }

    #[test]
    fn frames_follow_each_other_in_one_buffer() {
        let mut bytes = Vec::new();
        put_frame(&mut bytes, BINARY, None, b"one");
        put_frame(&mut bytes, FIN | Opcode::Ping as u8, None, b"hb");
        put_frame(&mut bytes, Opcode::Text as u8, None, b"par");
        put_frame(&mut bytes, FIN, None, b"tial");
        let rules = Rules::client(64);
        let mut seen = Vec::new();
        let mut at = 0;
        while let Some((frame, used)) = Frame::parse(&bytes[at..], &rules).unwrap() {
            seen.push((frame.opcode, frame.header.fin(), frame.payload));
            at += used;
        }
        assert_eq!(at, bytes.len());
        assert_eq!(
            seen,
            [
                (Opcode::Binary, true, &b"one"[..]),
                (Opcode::Ping, true, b"hb"),
                (Opcode::Text, false, b"par"),
                (Opcode::Continuation, true, b"tial"),
            ]
        );
    }

    #[test]
    fn client_frames_are_masked_and_unmask_back() {
        let mask = [1, 2, 3, 4];
        for len in [0usize, 5, 200, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mut bytes = Vec::new();
            put_frame(&mut bytes, FIN | Opcode::Text as u8, Some(mask), &payload);
            let (frame, used) = Frame::parse(&bytes, &Rules::server(1 << 20))
                .unwrap()
                .unwrap();
            assert_eq!(used, bytes.len());
            assert_eq!(frame.header.mask, Some(mask));
            let mut unmasked = frame.payload.to_vec();
            mask::apply(&mut unmasked, mask);
            assert_eq!(unmasked, payload);
        }
    }

    #[test]
    fn violations_are_found_before_the_payload_arrives() {
        let mut masked = Vec::new();
        put_frame(&mut masked, BINARY, Some([1; 4]), &[0; 100]);
        let client = Rules::client(64);
        assert_eq!(Frame::parse(&masked[..6], &client), Err(Violation::Masked));
        let mut big = Vec::new();
        put_frame(&mut big, BINARY, None, &[0; 65]);
        assert_eq!(Frame::parse(&big[..2], &client), Err(Violation::TooBig(64)));
    }
}
