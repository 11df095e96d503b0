//! The client's side of the opening handshake (RFC 6455 §4.1): the upgrade
//! request, and the check of the server's `101` response head.
//!
//! The key is always the sample of RFC 6455 §1.3. The key only lets the
//! client tell that the server speaks WebSocket (it must answer with the
//! key's accept value); a load generator or a test has no use for a fresh
//! nonce, and a fixed key spares this crate SHA-1, base64 and randomness.

use std::fmt;

/// The `Sec-WebSocket-Key` of RFC 6455's sample handshake (§1.3).
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The `Sec-WebSocket-Accept` a server must answer [`SAMPLE_KEY`] with:
/// base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")).
pub const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The longest response head accepted: a `101` head is a few hundred bytes,
/// and a server that never ends its head must not grow the buffer forever.
pub const MAX_RESPONSE_HEAD: usize = 8 * 1024;

/// The upgrade request for `target` (path and query) on `host`.
pub fn upgrade_request(host: &str, target: &str) -> String {
    format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Why the upgrade failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// The server answered with another status line (given).
    Refused(String),
    /// A `101` without the accept value of [`SAMPLE_KEY`].
    WrongAccept,
    /// The response head grew past [`MAX_RESPONSE_HEAD`] without ending.
    TooLong,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Refused(status) => write!(f, "upgrade refused: {status}"),
            HandshakeError::WrongAccept => {
                write!(
                    f,
                    "upgrade response without Sec-WebSocket-Accept: {SAMPLE_ACCEPT}"
                )
            }
            HandshakeError::TooLong => {
                write!(
                    f,
                    "upgrade response head longer than {MAX_RESPONSE_HEAD} bytes"
                )
            }
        }
    }
}

impl std::error::Error for HandshakeError {}

/// Looks for the end of the upgrade response in `buf`: `Ok(Some(n))` when
/// the first `n` bytes are a complete `101` head with the right accept value
/// (frames may follow at once), `Ok(None)` when more bytes are needed.
pub fn parse_upgrade_response(buf: &[u8]) -> Result<Option<usize>, HandshakeError> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > MAX_RESPONSE_HEAD {
            Err(HandshakeError::TooLong)
        } else {
            Ok(None)
        };
    };
    let mut lines = buf[..end].split(|&b| b == b'\n').map(<[u8]>::trim_ascii);
    let status = lines.next().unwrap_or_default();
    let mut parts = status.split(|&b| b == b' ');
    let (version, code) = (parts.next(), parts.next());
    if !(version.is_some_and(|v| v.starts_with(b"HTTP/1.")) && code == Some(b"101")) {
        return Err(HandshakeError::Refused(
            String::from_utf8_lossy(status).into_owned(),
        ));
    }
    let accepted = lines.any(|line| {
        line.iter().position(|&b| b == b':').is_some_and(|colon| {
            line[..colon].eq_ignore_ascii_case(b"sec-websocket-accept")
                && line[colon + 1..].trim_ascii() == SAMPLE_ACCEPT.as_bytes()
        })
    });
    if accepted {
        Ok(Some(end + 4))
    } else {
        Err(HandshakeError::WrongAccept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
        sec-websocket-accept:  s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x82\x00";

    #[test]
    fn a_101_with_the_sample_accept_is_taken_and_frames_may_follow() {
        assert_eq!(parse_upgrade_response(OK), Ok(Some(OK.len() - 2)));
        for cut in 0..OK.len() - 2 {
            assert_eq!(parse_upgrade_response(&OK[..cut]), Ok(None), "cut {cut}");
        }
    }

    #[test]
    fn refusals_wrong_accepts_and_endless_heads_are_errors() {
        assert!(matches!(
            parse_upgrade_response(b"HTTP/1.1 404 Not Found\r\n\r\n"),
            Err(HandshakeError::Refused(s)) if s == "HTTP/1.1 404 Not Found"
        ));
        assert_eq!(
            parse_upgrade_response(
                b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: x\r\n\r\n"
            ),
            Err(HandshakeError::WrongAccept)
        );
        assert_eq!(
            parse_upgrade_response(&[b'x'; MAX_RESPONSE_HEAD + 1]),
            Err(HandshakeError::TooLong)
        );
    }

    #[test]
    fn the_request_sends_the_sample_key() {
        let request = upgrade_request("127.0.0.1:1", "/ws?topics=A");
        assert!(request.starts_with("GET /ws?topics=A HTTP/1.1\r\nHost: 127.0.0.1:1\r\n"));
        assert!(request.contains("\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
        assert!(request.ends_with("\r\n\r\n"));
    }
}
