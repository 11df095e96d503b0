//! Server → client WebSocket frames, built once and shared.
//!
//! A frame the server sends is never masked (RFC 6455 §5.1), so its bytes are
//! identical for every subscriber: the hub builds `header + payload` once into
//! one [`Bytes`] and hands each outbox a clone, which is a reference-count bump,
//! not a copy. Each frame gets its own small allocation rather than a slice of
//! the ingest read buffer, because a slice would keep the whole read buffer
//! alive for as long as the symbol's latest tick is kept for snapshots.
//!
//! The wire layout itself is `tickcast-wsframe`'s; this module only puts it
//! into `Bytes`.

use bytes::{BufMut, Bytes, BytesMut};
use tickcast_protocol::control::GapReason;
use tickcast_protocol::{ServerMessage, TickHeader, TickRef};
use tickcast_wsframe::{close, Header};

/// Close codes the broker uses (RFC 6455 §7.4.1).
pub use tickcast_wsframe::close::code as close_code;
/// WebSocket opcodes.
pub use tickcast_wsframe::Opcode;

/// Builds one unfragmented, unmasked frame.
pub fn build(opcode: Opcode, payload: &[u8]) -> Bytes {
    let header = Header::new(opcode, payload.len() as u64).encode();
    let mut out = BytesMut::with_capacity(header.len() + payload.len());
    out.put_slice(&header);
    out.put_slice(payload);
    out.freeze()
}

/// A binary data frame.
pub fn binary(payload: &[u8]) -> Bytes {
    build(Opcode::Binary, payload)
}

/// The pong that answers a ping: its payload echoed (RFC 6455 §5.5.3).
pub fn pong(ping_payload: &[u8]) -> Bytes {
    build(Opcode::Pong, ping_payload)
}

/// A close frame with `code` and a short `reason` (cut to fit the 125-byte
/// control-frame limit).
pub fn close(code: u16, reason: &str) -> Bytes {
    build(Opcode::Close, &close::payload(code, reason))
}

/// A control message of the broker's as a binary frame.
pub fn message(msg: &ServerMessage) -> Bytes {
    binary(&msg.to_msgpack())
}

/// A `gap` notice: `sym`'s ticks `from..=to` were not sent, for `reason`.
pub fn gap(sym: String, from: u64, to: u64, reason: GapReason) -> Bytes {
    message(&ServerMessage::Gap {
        sym,
        from,
        to,
        reason,
    })
}

/// The symbol and `seq` of a tick frame the hub built, read back from its
/// payload. For the slow paths only (a conflated, dropped or capped tick,
/// whose `seq` goes into a `gap` notice): the hot path never needs them.
pub fn tick_id(frame: &[u8]) -> Option<(String, u64)> {
    let payload = payload(frame);
    match TickHeader::peek(payload) {
        Some(h) => Some((String::from_utf8_lossy(h.sym).into_owned(), h.seq)),
        // A publisher's tick in another key order: the full decoder.
        None => TickRef::decode(payload)
            .ok()
            .map(|t| (t.sym.to_owned(), t.seq)),
    }
}

/// The payload of a frame built by [`build`] (skips the header).
pub fn payload(frame: &[u8]) -> &[u8] {
    Header::parse(frame).map_or(&[], |(_, start)| &frame[start..])
}

/// [`payload`], shared with the frame (a reference-count bump, no copy).
pub fn payload_bytes(frame: &Bytes) -> Bytes {
    Header::parse(frame).map_or_else(Bytes::new, |(_, start)| frame.slice(start..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_skips_each_length_form() {
        for len in [0, 125, 126, 65_535, 65_536] {
            let frame = binary(&vec![7; len]);
            assert_eq!(frame[0], 0x82);
            assert_eq!(payload(&frame), &vec![7; len][..]);
        }
        assert_eq!(payload(&[]), b"");
        assert_eq!(payload(&close(1008, "slow")), b"\x03\xf0slow");
    }

    #[test]
    fn a_pong_echoes_the_ping_payload() {
        assert_eq!(&pong(b"abc")[..], b"\x8a\x03abc");
        assert_eq!(&pong(b"")[..], b"\x8a\x00");
    }
}
