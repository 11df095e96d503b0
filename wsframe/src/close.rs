//! Close frame payloads (RFC 6455 §5.5.1, §7.4): a two-byte code and a
//! UTF-8 reason, built to fit the 125-byte control limit and checked when
//! received.

use crate::fixed::Fixed;
use crate::rules::{utf8, Violation, MAX_CONTROL_PAYLOAD};

/// The close codes tickcast sends (§7.4.1).
pub mod code {
    /// Normal closure (echo of a client's close).
    pub const NORMAL: u16 = 1000;
    /// The broker is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// The peer broke the WebSocket protocol.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text message or close reason was not valid UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// Policy violation: slow consumer, ping timeout, abuse.
    pub const POLICY: u16 = 1008;
    /// A message was larger than allowed.
    pub const TOO_BIG: u16 = 1009;
}

/// The largest close payload: a control frame's.
pub const MAX_PAYLOAD: usize = MAX_CONTROL_PAYLOAD as usize;

/// The longest reason: what the code leaves of [`MAX_PAYLOAD`].
pub const MAX_REASON: usize = MAX_PAYLOAD - 2;

/// A received close frame's code and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close<'a> {
    /// The status code, one that may be sent.
    pub code: u16,
    /// The reason (possibly empty).
    pub reason: &'a str,
}

/// Whether `code` may appear in a close frame (§7.4): the defined codes but
/// 1004 (reserved) and 1005, 1006, 1015 (for reporting only), plus the
/// ranges for libraries (3000–3999) and applications (4000–4999).
pub const fn is_valid(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// The payload of a close frame with `code` and `reason`, the reason cut to
/// [`MAX_REASON`] bytes on a character boundary.
pub fn payload(code: u16, reason: &str) -> Fixed<MAX_PAYLOAD> {
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = Fixed::new();
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&reason.as_bytes()[..end]);
    out
}

/// Checks a received close payload: `None` if empty (no code), else its
/// code and reason.
pub fn parse(payload: &[u8]) -> Result<Option<Close<'_>>, Violation> {
    let Some((code, reason)) = payload.split_first_chunk::<2>() else {
        return if payload.is_empty() {
            Ok(None)
        } else {
            Err(Violation::CloseTooShort)
        };
    };
    let code = u16::from_be_bytes(*code);
    if !is_valid(code) {
        return Err(Violation::InvalidCloseCode(code));
    }
    Ok(Some(Close {
        code,
        reason: utf8(reason)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_is_cut_on_a_char_boundary() {
        let p = payload(code::POLICY, &"é".repeat(100));
        assert!(p.len() <= MAX_PAYLOAD);
        assert_eq!(p.len(), 2 + 122, "61 two-byte characters fit in 123");
        assert_eq!(&p[..2], &1008u16.to_be_bytes());
        let parsed = parse(&p).unwrap().unwrap();
        assert_eq!(parsed.code, 1008);
        assert_eq!(parsed.reason, "é".repeat(61));
        assert_eq!(payload(1000, "").len(), 2);
        assert_eq!(payload(1000, &"x".repeat(200)).len(), MAX_PAYLOAD);
    }

    #[test]
    fn received_payloads_are_checked() {
        assert_eq!(parse(&[]), Ok(None));
        assert_eq!(parse(&[0x03]), Err(Violation::CloseTooShort));
        assert_eq!(
            parse(&payload(1000, "bye")),
            Ok(Some(Close {
                code: 1000,
                reason: "bye"
            }))
        );
        assert_eq!(
            parse(&[0x03, 0xe8, 0xff, 0xfe]),
            Err(Violation::InvalidUtf8)
        );
        for bad in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, u16::MAX] {
            assert_eq!(
                parse(&bad.to_be_bytes()),
                Err(Violation::InvalidCloseCode(bad)),
                "{bad}"
            );
        }
        for good in [1000u16, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999] {
            assert!(parse(&good.to_be_bytes()).is_ok(), "{good}");
        }
    }
}
