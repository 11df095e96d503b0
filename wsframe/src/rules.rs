//! What a reader must refuse (RFC 6455 §5), by role, each refusal a typed
//! [`Violation`] that names the close code to fail the connection with.
//!
//! The checks run on the header alone, before a payload byte is buffered, so
//! a peer declaring a huge frame is refused on its first 14 bytes. Which
//! side reads matters for one rule: a server requires every frame to be
//! masked, a client forbids it (§5.1). No extension is ever negotiated here,
//! so any reserved bit is an error.

use std::fmt;

use crate::close::code;
use crate::header::{Header, RSV};
use crate::opcode::Opcode;

/// The largest control frame payload (§5.5).
pub const MAX_CONTROL_PAYLOAD: u64 = 125;

/// Which side is reading the frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A server, reading a client's frames: they must be masked.
    Server,
    /// A client, reading a server's frames: they must not be.
    Client,
}

/// The rules a reader applies to every header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Who reads.
    pub role: Role,
    /// The largest data message accepted, summed over its fragments.
    pub max_message: u64,
}

/// Why a frame must not be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// A client frame without the mask bit (§5.1).
    Unmasked,
    /// A server frame with the mask bit (§5.1).
    Masked,
    /// A reserved bit set, with no extension negotiated (§5.2).
    ReservedBits,
    /// One of the opcodes RFC 6455 reserves (§5.2), with its value.
    UnknownOpcode(u8),
    /// A control frame without FIN (§5.5).
    FragmentedControl,
    /// A control frame longer than 125 bytes (§5.5), with its length.
    ControlTooLong(u64),
    /// A continuation frame with no fragmented message to continue (§5.4).
    StrayContinuation,
    /// A text or binary frame inside a fragmented message (§5.4).
    Interleaved,
    /// A data message larger than the limit, which it names.
    TooBig(u64),
    /// Text, or a close reason, that is not UTF-8 (§8.1).
    InvalidUtf8,
    /// A close payload of a single byte: half a code (§5.5.1).
    CloseTooShort,
    /// A close code that may not be sent (§7.4), with its value.
    InvalidCloseCode(u16),
}

impl Violation {
    /// The close code to fail the connection with (§7.4.1).
    pub const fn close_code(&self) -> u16 {
        match self {
            Violation::InvalidUtf8 => code::INVALID_DATA,
            Violation::TooBig(_) => code::TOO_BIG,
            _ => code::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The text goes out as the close reason: short, and it says which
        // rule broke (1002 covers many).
        if self.close_code() == code::PROTOCOL_ERROR {
            f.write_str("protocol error: ")?;
        }
        match self {
            Violation::Unmasked => f.write_str("client frame is not masked"),
            Violation::Masked => f.write_str("server frame is masked"),
            Violation::ReservedBits => {
                f.write_str("reserved bits set without a negotiated extension")
            }
            Violation::UnknownOpcode(bits) => write!(f, "unknown opcode {bits:#x}"),
            Violation::FragmentedControl => f.write_str("fragmented control frame"),
            Violation::ControlTooLong(len) => {
                write!(f, "control frame of {len} bytes (at most 125)")
            }
            Violation::StrayContinuation => {
                f.write_str("continuation frame without a message to continue")
            }
            Violation::Interleaved => f.write_str("new message started inside a fragmented one"),
            Violation::TooBig(limit) => write!(f, "message larger than {limit} bytes"),
            Violation::InvalidUtf8 => {
                f.write_str("invalid UTF-8 in a text message or close reason")
            }
            Violation::CloseTooShort => f.write_str("close frame with a one-byte payload"),
            Violation::InvalidCloseCode(c) => write!(f, "invalid close code {c}"),
        }
    }
}

impl std::error::Error for Violation {}

impl Rules {
    /// The rules of a server reading client frames.
    pub const fn server(max_message: u64) -> Self {
        Self {
            role: Role::Server,
            max_message,
        }
    }

    /// The rules of a client reading server frames.
    pub const fn client(max_message: u64) -> Self {
        Self {
            role: Role::Client,
            max_message,
        }
    }

    /// Checks one header; `buffered` is how much of a fragmented message is
    /// already held (0 if none), so the limit covers the whole message a
    /// continuation adds to. A text or binary frame starts a message of its
    /// own: `buffered` does not count against it (inside a fragmented
    /// message it is [`Violation::Interleaved`], which [`check_sequence`]
    /// names, not a size error). Returns the opcode, now known to be
    /// defined.
    ///
    /// On success the payload is at most `max_message` (or 125) bytes.
    #[inline]
    pub fn check(&self, header: &Header, buffered: u64) -> Result<Opcode, Violation> {
        if header.first & RSV != 0 {
            return Err(Violation::ReservedBits);
        }
        let bits = header.opcode_bits();
        let opcode = Opcode::from_bits(bits).ok_or(Violation::UnknownOpcode(bits))?;
        match (self.role, header.mask) {
            (Role::Server, None) => return Err(Violation::Unmasked),
            (Role::Client, Some(_)) => return Err(Violation::Masked),
            _ => {}
        }
        let len = header.payload_len;
        if opcode.is_control() {
            if !header.fin() {
                return Err(Violation::FragmentedControl);
            }
            if len > MAX_CONTROL_PAYLOAD {
                return Err(Violation::ControlTooLong(len));
            }
        } else {
            // Only a continuation adds to the message already held.
            let held = if opcode == Opcode::Continuation {
                buffered
            } else {
                0
            };
            if len.saturating_add(held) > self.max_message {
                return Err(Violation::TooBig(self.max_message));
            }
        }
        Ok(opcode)
    }
}

/// Checks where a frame of `opcode` falls in the message sequence (§5.4):
/// a continuation only inside a fragmented message (`in_message`), a new
/// text or binary message only outside one; control frames anywhere.
#[inline]
pub fn check_sequence(opcode: Opcode, in_message: bool) -> Result<(), Violation> {
    match opcode {
        Opcode::Continuation if !in_message => Err(Violation::StrayContinuation),
        Opcode::Text | Opcode::Binary if in_message => Err(Violation::Interleaved),
        _ => Ok(()),
    }
}

/// `bytes` as text, or [`Violation::InvalidUtf8`].
pub fn utf8(bytes: &[u8]) -> Result<&str, Violation> {
    std::str::from_utf8(bytes).map_err(|_| Violation::InvalidUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::{FIN, RSV1};

    fn header(first: u8, masked: bool, payload_len: u64) -> Header {
        Header {
            first,
            mask: masked.then_some([1, 2, 3, 4]),
            payload_len,
        }
    }

    #[test]
    fn each_violation_gets_its_close_code() {
        use Violation::*;
        let (server, client) = (Rules::server(4096), Rules::client(4096));
        let (text, ping) = (FIN | Opcode::Text as u8, Opcode::Ping as u8);
        // (rules, first byte, masked, length, violation, close code)
        let cases = [
            (server, text, false, 2, Unmasked, 1002),
            (client, text, true, 2, Masked, 1002),
            (server, text | RSV1, true, 2, ReservedBits, 1002),
            (client, 0x92, false, 0, ReservedBits, 1002),
            (server, 0x83, true, 1, UnknownOpcode(3), 1002),
            (client, 0x8F, false, 1, UnknownOpcode(0xF), 1002),
            (server, ping, true, 1, FragmentedControl, 1002),
            (client, FIN | ping, false, 126, ControlTooLong(126), 1002),
            (server, 0x82, true, 4097, TooBig(4096), 1009),
            (client, 0x02, false, 5000, TooBig(4096), 1009),
        ];
        for (rules, first, masked, len, want, code) in cases {
            let h = header(first, masked, len);
            assert_eq!(rules.check(&h, 0), Err(want), "{h:02x?}");
            assert_eq!(want.close_code(), code, "{want}");
        }
        assert_eq!(InvalidUtf8.close_code(), 1007);
        assert_eq!(StrayContinuation.close_code(), 1002);
        assert_eq!(InvalidCloseCode(1005).close_code(), 1002);
    }

    #[test]
    fn valid_headers_pass_for_their_role() {
        let server = Rules::server(4096);
        let client = Rules::client(4096);
        assert_eq!(server.check(&header(0x81, true, 4096), 0), Ok(Opcode::Text));
        assert_eq!(
            client.check(&header(0x02, false, 10), 0),
            Ok(Opcode::Binary)
        );
        assert_eq!(
            client.check(&header(0x00, false, 0), 0),
            Ok(Opcode::Continuation)
        );
        assert_eq!(server.check(&header(0x89, true, 125), 0), Ok(Opcode::Ping));
        // A control frame between fragments is not held to the message limit.
        assert_eq!(
            client.check(&header(0x88, false, 2), 4096),
            Ok(Opcode::Close)
        );
    }

    #[test]
    fn the_limit_covers_a_message_across_its_fragments() {
        let rules = Rules::server(4096);
        assert!(rules.check(&header(0x80, true, 1096), 3000).is_ok());
        assert_eq!(
            rules.check(&header(0x80, true, 1097), 3000),
            Err(Violation::TooBig(4096))
        );
    }

    #[test]
    fn only_a_continuation_adds_to_the_buffered_message() {
        // Found by the frame_reader fuzz target: a new text frame inside a
        // fragmented message was refused as too big (1009) when the two
        // together passed the limit; it is an interleaved frame (1002).
        let rules = Rules::server(4096);
        assert_eq!(
            rules.check(&header(0x81, true, 1097), 3000),
            Ok(Opcode::Text)
        );
        assert_eq!(
            check_sequence(Opcode::Text, true),
            Err(Violation::Interleaved)
        );
        assert_eq!(
            rules.check(&header(0x82, true, 4097), 3000),
            Err(Violation::TooBig(4096))
        );
    }

    #[test]
    fn huge_declared_lengths_are_refused_on_the_header_alone() {
        let huge = header(0x82, true, u64::MAX);
        let bytes = huge.encode();
        assert_eq!(bytes.len(), 14, "nothing but the header");
        let (parsed, _) = Header::parse(&bytes).expect("a whole header");
        let rules = Rules::server(4096);
        assert_eq!(rules.check(&parsed, 0), Err(Violation::TooBig(4096)));
        assert_eq!(rules.check(&parsed, u64::MAX), Err(Violation::TooBig(4096)));
    }

    #[test]
    fn fragments_follow_the_message_sequence() {
        assert_eq!(
            check_sequence(Opcode::Continuation, false),
            Err(Violation::StrayContinuation)
        );
        assert_eq!(
            check_sequence(Opcode::Text, true),
            Err(Violation::Interleaved)
        );
        assert_eq!(
            check_sequence(Opcode::Binary, true),
            Err(Violation::Interleaved)
        );
        assert_eq!(check_sequence(Opcode::Continuation, true), Ok(()));
        assert_eq!(check_sequence(Opcode::Ping, true), Ok(()));
        assert_eq!(check_sequence(Opcode::Binary, false), Ok(()));
    }

    #[test]
    fn close_reasons_name_the_rule() {
        assert_eq!(
            Violation::Unmasked.to_string(),
            "protocol error: client frame is not masked"
        );
        assert_eq!(
            Violation::TooBig(4096).to_string(),
            "message larger than 4096 bytes"
        );
        assert!(Violation::InvalidUtf8.to_string().contains("UTF-8"));
        assert!(Violation::FragmentedControl
            .to_string()
            .contains("control frame"));
        assert!(Violation::UnknownOpcode(3).to_string().contains("opcode"));
        assert!(Violation::ReservedBits
            .to_string()
            .contains("reserved bits"));
    }
}
