//! Server → client WebSocket frames, built once and shared.
//!
//! A frame the server sends is never masked (RFC 6455 §5.1), so its bytes are
//! identical for every subscriber: the hub builds `header + payload` once into
//! one [`Bytes`] and hands each outbox a clone, which is a reference-count bump,
//! not a copy. Each frame gets its own small allocation rather than a slice of
//! the ingest read buffer, because a slice would keep the whole read buffer
//! alive for as long as the symbol's latest tick is kept for snapshots.

use bytes::{BufMut, Bytes, BytesMut};

const FIN: u8 = 0x80;

/// WebSocket opcodes the broker sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Opcode {
    /// Binary data: every tick and reply.
    Binary = 0x2,
    /// Close, with a code and a reason.
    Close = 0x8,
    /// Ping (keep-alive probe).
    Ping = 0x9,
    /// Pong (answer to a client's ping).
    Pong = 0xA,
}

/// Builds one unfragmented, unmasked frame.
pub fn build(opcode: Opcode, payload: &[u8]) -> Bytes {
    let len = payload.len();
    let mut out = BytesMut::with_capacity(len + 10);
    out.put_u8(FIN | opcode as u8);
    if len < 126 {
        out.put_u8(len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.put_u8(126);
        out.put_u16(len as u16);
    } else {
        out.put_u8(127);
        out.put_u64(len as u64);
    }
    out.put_slice(payload);
    out.freeze()
}

/// A binary data frame.
pub fn binary(payload: &[u8]) -> Bytes {
    build(Opcode::Binary, payload)
}

/// A close frame with `code` and a short `reason` (cut to fit the 125-byte
/// control-frame limit).
pub fn close(code: u16, reason: &str) -> Bytes {
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    build(Opcode::Close, &payload)
}

/// The payload of a frame built by [`build`] (skips the header).
pub fn payload(frame: &[u8]) -> &[u8] {
    let start = match frame.get(1).map(|b| b & 0x7f) {
        Some(126) => 4,
        Some(127) => 10,
        Some(_) => 2,
        None => return &[],
    };
    frame.get(start..).unwrap_or(&[])
}

/// Close codes the broker uses (RFC 6455 §7.4.1).
pub mod close_code {
    /// Normal closure (echo of a client's close).
    pub const NORMAL: u16 = 1000;
    /// The broker is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// The client broke the WebSocket protocol.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text frame was not valid UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// Policy violation: slow consumer, ping timeout, abuse.
    pub const POLICY: u16 = 1008;
    /// A message was larger than allowed.
    pub const TOO_BIG: u16 = 1009;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_use_the_shortest_length_form() {
        assert_eq!(&binary(&[7; 125])[..2], &[0x82, 125]);
        assert_eq!(&binary(&[7; 126])[..4], &[0x82, 126, 0, 126]);
        assert_eq!(&binary(&[7; 65_535])[..4], &[0x82, 126, 0xff, 0xff]);
        assert_eq!(
            &binary(&[7; 65_536])[..10],
            &[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]
        );
        assert_eq!(binary(&[7; 300]).len(), 304);
        for len in [0, 125, 126, 65_535, 65_536] {
            assert_eq!(payload(&binary(&vec![7; len])).len(), len);
        }
    }

    #[test]
    fn close_reason_is_cut_on_a_char_boundary() {
        let f = close(close_code::POLICY, &"é".repeat(100));
        assert_eq!(f[0], 0x88);
        let len = usize::from(f[1]);
        assert!(len <= 125);
        assert_eq!(&f[2..4], &1008u16.to_be_bytes());
        assert!(std::str::from_utf8(&f[4..]).is_ok());
    }
}
