//! The client side of WebSocket (RFC 6455), just what the load generator needs:
//! the upgrade handshake, parsing server frames in place, and writing masked
//! client frames.
//!
//! Hand-written rather than a WebSocket library because one loadgen core must
//! read millions of frames a second across hundreds of sockets: frames are
//! parsed straight out of a large read buffer with no per-frame allocation
//! or copy, and a whole buffer of frames is handled per read syscall.

/// Opcode of a text frame.
pub const OP_TEXT: u8 = 0x1;
/// Opcode of a binary frame.
pub const OP_BINARY: u8 = 0x2;
/// Opcode of a close frame.
pub const OP_CLOSE: u8 = 0x8;
/// Opcode of a ping frame.
pub const OP_PING: u8 = 0x9;
/// Opcode of a pong frame.
pub const OP_PONG: u8 = 0xA;
const OP_CONTINUATION: u8 = 0x0;

/// A fixed `Sec-WebSocket-Key`. The key only proves to the client that the
/// server speaks WebSocket; a load generator has no use for a fresh nonce.
/// This is the sample key of RFC 6455 §1.3 (16 bytes, base64).
pub const HANDSHAKE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// One frame from the server, borrowing its payload from the read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Text, binary or continuation data.
    Data {
        /// [`OP_TEXT`], [`OP_BINARY`] or 0 for a continuation.
        opcode: u8,
        /// Whether this is the last fragment of its message.
        fin: bool,
        /// The payload.
        payload: &'a [u8],
    },
    /// A ping, to be answered by a pong with the same payload.
    Ping(&'a [u8]),
    /// A pong (the answer to a ping we never send; ignored).
    Pong,
    /// The server closes, with an optional status code.
    Close(Option<u16>),
}

/// Why the server's byte stream is not valid WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// A server frame has the mask bit set (forbidden by RFC 6455 §5.1).
    Masked,
    /// Reserved bits are set (no extension was negotiated).
    ReservedBits,
    /// An opcode RFC 6455 does not define.
    BadOpcode(u8),
    /// A control frame is fragmented or longer than 125 bytes.
    BadControlFrame,
    /// A frame is longer than the reader accepts.
    TooLong(u64),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Masked => write!(f, "server frame is masked"),
            FrameError::ReservedBits => write!(f, "reserved bits set"),
            FrameError::BadOpcode(op) => write!(f, "unknown opcode {op:#x}"),
            FrameError::BadControlFrame => write!(f, "invalid control frame"),
            FrameError::TooLong(len) => write!(f, "frame of {len} bytes is too long"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Parses the frame at the front of `buf`.
///
/// Returns the frame and the bytes it took, `Ok(None)` when `buf` holds only
/// part of a frame (read more and call again), or an error for a stream that
/// cannot be trusted any further. `max_len` bounds the payload size.
pub fn parse_frame(buf: &[u8], max_len: usize) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    if b1 & 0x80 != 0 {
        return Err(FrameError::Masked);
    }
    if b0 & 0x70 != 0 {
        return Err(FrameError::ReservedBits);
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0f;
    let (len, header) = match b1 & 0x7f {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let mut be = [0u8; 8];
                be.copy_from_slice(b);
                (u64::from_be_bytes(be), 10)
            }
            None => return Ok(None),
        },
        short => (u64::from(short), 2),
    };
    if len > max_len as u64 {
        return Err(FrameError::TooLong(len));
    }
    let end = header + len as usize;
    let Some(payload) = buf.get(header..end) else {
        return Ok(None);
    };
    let frame = match opcode {
        OP_CONTINUATION | OP_TEXT | OP_BINARY => Frame::Data {
            opcode,
            fin,
            payload,
        },
        OP_CLOSE | OP_PING | OP_PONG if !fin || len > 125 => {
            return Err(FrameError::BadControlFrame)
        }
        OP_CLOSE => Frame::Close(match payload {
            [hi, lo, ..] => Some(u16::from_be_bytes([*hi, *lo])),
            _ => None,
        }),
        OP_PING => Frame::Ping(payload),
        OP_PONG => Frame::Pong,
        other => return Err(FrameError::BadOpcode(other)),
    };
    Ok(Some((frame, end)))
}

/// Appends one complete client frame, masked with `mask` as RFC 6455
/// requires of every client frame.
pub fn put_client_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
}

/// The HTTP request that upgrades a connection to WebSocket.
pub fn upgrade_request(host: &str, path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {HANDSHAKE_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Why the upgrade failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// The server answered with another status line.
    Refused(String),
    /// The response head grew past the limit without ending.
    TooLong,
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::Refused(status) => write!(f, "upgrade refused: {status}"),
            HandshakeError::TooLong => write!(f, "upgrade response head too long"),
        }
    }
}

impl std::error::Error for HandshakeError {}

/// The longest upgrade response head accepted.
const MAX_HEAD: usize = 8 * 1024;

/// Looks for the end of the upgrade response in `buf`: `Ok(Some(n))` when the
/// first `n` bytes are a complete `101 Switching Protocols` head (frames may
/// follow at once), `Ok(None)` when more bytes are needed.
pub fn parse_upgrade_response(buf: &[u8]) -> Result<Option<usize>, HandshakeError> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD {
            Err(HandshakeError::TooLong)
        } else {
            Ok(None)
        };
    };
    let head = &buf[..end];
    let status = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = status.split(|&b| b == b' ');
    let (version, code) = (parts.next(), parts.next());
    if version.is_some_and(|v| v.starts_with(b"HTTP/1.")) && code == Some(b"101") {
        Ok(Some(end + 4))
    } else {
        Err(HandshakeError::Refused(
            String::from_utf8_lossy(status).into_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unmasked (server) frame, as the broker would write it.
    fn server_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n if n < 126 => out.push(n as u8),
            n if n <= 65535 => {
                out.push(126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn all_three_length_forms_parse_and_split_anywhere() {
        for len in [0, 1, 125, 126, 127, 65535, 65536, 100_000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let bytes = server_frame(OP_BINARY, true, &payload);
            let (frame, used) = parse_frame(&bytes, 1 << 20).unwrap().unwrap();
            assert_eq!(used, bytes.len());
            assert_eq!(
                frame,
                Frame::Data {
                    opcode: OP_BINARY,
                    fin: true,
                    payload: &payload
                }
            );
            for cut in [0, 1, 2, 3, 9, bytes.len() - 1] {
                if cut < bytes.len() {
                    assert_eq!(
                        parse_frame(&bytes[..cut], 1 << 20),
                        Ok(None),
                        "len {len} cut {cut}"
                    );
                }
            }
        }
    }

    #[test]
    fn control_frames_and_violations() {
        let ping = server_frame(OP_PING, true, b"hb");
        assert_eq!(
            parse_frame(&ping, 64).unwrap().unwrap().0,
            Frame::Ping(b"hb")
        );
        let close = server_frame(OP_CLOSE, true, &[0x03, 0xF0, b's']);
        assert_eq!(
            parse_frame(&close, 64).unwrap().unwrap().0,
            Frame::Close(Some(1008))
        );
        assert_eq!(
            parse_frame(&server_frame(OP_CLOSE, true, b""), 64)
                .unwrap()
                .unwrap()
                .0,
            Frame::Close(None)
        );
        let mut masked = server_frame(OP_BINARY, true, b"x");
        masked[1] |= 0x80;
        assert_eq!(parse_frame(&masked, 64), Err(FrameError::Masked));
        assert_eq!(
            parse_frame(&server_frame(OP_PING, false, b""), 64),
            Err(FrameError::BadControlFrame)
        );
        assert_eq!(
            parse_frame(&server_frame(0x3, true, b""), 64),
            Err(FrameError::BadOpcode(3))
        );
        assert_eq!(
            parse_frame(&server_frame(OP_BINARY, true, &[0; 65]), 64),
            Err(FrameError::TooLong(65))
        );
        let mut rsv = server_frame(OP_BINARY, true, b"");
        rsv[0] |= 0x40;
        assert_eq!(parse_frame(&rsv, 64), Err(FrameError::ReservedBits));
    }

    #[test]
    fn client_frames_are_masked_and_unmask_back() {
        for len in [0usize, 5, 200, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mask = [1, 2, 3, 4];
            let mut out = Vec::new();
            put_client_frame(&mut out, OP_TEXT, &payload, mask);
            assert_eq!(out[0], 0x81);
            assert_ne!(out[1] & 0x80, 0, "mask bit");
            let header = match len {
                n if n < 126 => 2,
                n if n <= 65535 => 4,
                _ => 10,
            };
            assert_eq!(&out[header..header + 4], &mask);
            let unmasked: Vec<u8> = out[header + 4..]
                .iter()
                .zip(mask.iter().cycle())
                .map(|(b, m)| b ^ m)
                .collect();
            assert_eq!(unmasked, payload);
        }
    }

    #[test]
    fn upgrade_response_is_checked() {
        let ok = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x82\x00";
        assert_eq!(parse_upgrade_response(ok), Ok(Some(ok.len() - 2)));
        assert_eq!(parse_upgrade_response(&ok[..20]), Ok(None));
        assert!(matches!(
            parse_upgrade_response(b"HTTP/1.1 404 Not Found\r\n\r\n"),
            Err(HandshakeError::Refused(s)) if s.contains("404")
        ));
        assert_eq!(
            parse_upgrade_response(&[b'x'; 9000]),
            Err(HandshakeError::TooLong)
        );
        assert!(upgrade_request("127.0.0.1:1", "/ws").ends_with("\r\n\r\n"));
    }
}
