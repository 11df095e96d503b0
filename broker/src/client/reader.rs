//! Reading WebSocket frames from a client, strictly.
//!
//! Why not fastwebsockets' reader: it does not tell whether a frame was
//! masked (the field is private), and a server must fail the connection when
//! a client frame is not (RFC 6455 §5.1). Clients only send small control
//! messages, so this reader is simple rather than fast: it enforces masking,
//! reserved bits, known opcodes, control-frame rules, UTF-8 in text, and one
//! size limit that also covers a message split into fragments, and it reports
//! each violation with the close code to send. It keeps all state in `self`
//! and only awaits on `read_buf`, so it is cancel-safe inside `select!`.
//!
//! The read buffer starts small (idle connections are the common case) and
//! grows only as far as the largest allowed message.

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::fanout::frame::close_code;

/// A complete message from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message (valid UTF-8).
    Text(Bytes),
    /// A binary message.
    Binary(Bytes),
    /// A ping with its payload (to echo in the pong).
    Ping(Bytes),
    /// A pong.
    Pong,
    /// A close frame, with the client's code if it sent one.
    Close(Option<u16>),
}

/// Why the connection cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The client closed the TCP connection.
    #[error("connection closed by peer")]
    Eof,
    /// The socket failed.
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
    /// The client broke the protocol; close with 1002.
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// Text that is not UTF-8; close with 1007.
    #[error("invalid UTF-8 in a text message")]
    InvalidUtf8,
    /// A message over the size limit; close with 1009.
    #[error("message larger than {0} bytes")]
    TooBig(usize),
}

impl ReadError {
    /// The close code to send for this error, if a close frame makes sense.
    pub fn close_code(&self) -> Option<u16> {
        match self {
            ReadError::Eof | ReadError::Io(_) => None,
            ReadError::Protocol(_) => Some(close_code::PROTOCOL_ERROR),
            ReadError::InvalidUtf8 => Some(close_code::INVALID_DATA),
            ReadError::TooBig(_) => Some(close_code::TOO_BIG),
        }
    }
}

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// The first read buffer size: enough for any control message in one read.
const INITIAL_BUFFER: usize = 512;

/// Reads client frames off a socket and assembles messages.
pub struct FrameReader {
    buf: BytesMut,
    max_message: usize,
    /// The opcode and payload of a fragmented message in progress.
    partial: Option<(u8, BytesMut)>,
}

struct Header {
    fin: bool,
    opcode: u8,
    header_len: usize,
    payload_len: usize,
    mask: [u8; 4],
}

impl FrameReader {
    /// A reader for messages up to `max_message` bytes. `leftover` holds bytes
    /// already read past the HTTP upgrade request.
    pub fn new(max_message: usize, leftover: &[u8]) -> Self {
        let mut buf = BytesMut::with_capacity(INITIAL_BUFFER.max(leftover.len()));
        buf.extend_from_slice(leftover);
        Self {
            buf,
            max_message,
            partial: None,
        }
    }

    /// Reads until one whole message (or control frame) has arrived.
    pub async fn next_message<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
    ) -> Result<Message, ReadError> {
        loop {
            if let Some(msg) = self.parse_one()? {
                return Ok(msg);
            }
            if io.read_buf(&mut self.buf).await? == 0 {
                return Err(ReadError::Eof);
            }
        }
    }

    /// Tries to take one message out of the buffer. `Ok(None)`: read more.
    fn parse_one(&mut self) -> Result<Option<Message>, ReadError> {
        loop {
            let Some(h) = self.header()? else {
                return Ok(None);
            };
            let total = h.header_len + h.payload_len;
            if self.buf.len() < total {
                self.buf.reserve(total - self.buf.len());
                return Ok(None);
            }
            self.buf.advance(h.header_len);
            let mut payload = self.buf.split_to(h.payload_len);
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= h.mask[i & 3];
            }
            if let Some(msg) = self.on_frame(h.fin, h.opcode, payload)? {
                return Ok(Some(msg));
            }
        }
    }

    /// Decodes and checks the header at the front of the buffer.
    fn header(&self) -> Result<Option<Header>, ReadError> {
        let b = &self.buf[..];
        if b.len() < 2 {
            return Ok(None);
        }
        let fin = b[0] & 0x80 != 0;
        if b[0] & 0x70 != 0 {
            return Err(ReadError::Protocol(
                "reserved bits set without a negotiated extension",
            ));
        }
        let opcode = b[0] & 0x0f;
        if !matches!(
            opcode,
            OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
        ) {
            return Err(ReadError::Protocol("unknown opcode"));
        }
        if b[1] & 0x80 == 0 {
            return Err(ReadError::Protocol("client frame is not masked"));
        }
        let (len, ext) = match b[1] & 0x7f {
            126 => {
                let Some(x) = b.get(2..4) else {
                    return Ok(None);
                };
                (u64::from(u16::from_be_bytes([x[0], x[1]])), 2)
            }
            127 => {
                let Some(x) = b.get(2..10) else {
                    return Ok(None);
                };
                let mut be = [0u8; 8];
                be.copy_from_slice(x);
                (u64::from_be_bytes(be), 8)
            }
            n => (u64::from(n), 0),
        };
        let is_control = opcode >= OP_CLOSE;
        if is_control && (!fin || len > 125) {
            return Err(ReadError::Protocol(
                "control frame fragmented or longer than 125 bytes",
            ));
        }
        let already = self.partial.as_ref().map_or(0, |(_, p)| p.len());
        if !is_control && len.saturating_add(already as u64) > self.max_message as u64 {
            return Err(ReadError::TooBig(self.max_message));
        }
        let header_len = 2 + ext + 4;
        let Some(m) = b.get(2 + ext..header_len) else {
            return Ok(None);
        };
        Ok(Some(Header {
            fin,
            opcode,
            header_len,
            payload_len: len as usize,
            mask: [m[0], m[1], m[2], m[3]],
        }))
    }

    /// Handles one unmasked frame; returns a message once one is complete.
    fn on_frame(
        &mut self,
        fin: bool,
        opcode: u8,
        payload: BytesMut,
    ) -> Result<Option<Message>, ReadError> {
        let (opcode, body) = match opcode {
            OP_PING => return Ok(Some(Message::Ping(payload.freeze()))),
            OP_PONG => return Ok(Some(Message::Pong)),
            OP_CLOSE => return close_message(&payload).map(Some),
            OP_CONTINUATION => {
                let Some((first, mut body)) = self.partial.take() else {
                    return Err(ReadError::Protocol(
                        "continuation frame without a message to continue",
                    ));
                };
                body.extend_from_slice(&payload);
                (first, body)
            }
            _ if self.partial.is_some() => {
                return Err(ReadError::Protocol(
                    "new message started inside a fragmented one",
                ));
            }
            _ => (opcode, payload),
        };
        if !fin {
            self.partial = Some((opcode, body));
            return Ok(None);
        }
        let body = body.freeze();
        if opcode == OP_TEXT {
            std::str::from_utf8(&body).map_err(|_| ReadError::InvalidUtf8)?;
            Ok(Some(Message::Text(body)))
        } else {
            Ok(Some(Message::Binary(body)))
        }
    }
}

fn close_message(payload: &[u8]) -> Result<Message, ReadError> {
    match payload.len() {
        0 => Ok(Message::Close(None)),
        1 => Err(ReadError::Protocol("close frame with a one-byte payload")),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            if !valid {
                return Err(ReadError::Protocol("invalid close code"));
            }
            std::str::from_utf8(&payload[2..]).map_err(|_| ReadError::InvalidUtf8)?;
            Ok(Message::Close(Some(code)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a masked client frame.
    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x11, 0x22, 0x33, 0x44];
        let mut out = vec![first];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
        out
    }

    async fn read(bytes: &[u8], max: usize) -> Vec<Result<Message, String>> {
        let mut reader = FrameReader::new(max, &[]);
        let mut io = bytes;
        let mut out = Vec::new();
        loop {
            match reader.next_message(&mut io).await {
                Ok(m) => out.push(Ok(m)),
                Err(ReadError::Eof) => return out,
                Err(e) => {
                    out.push(Err(format!("{:?} {e}", e.close_code())));
                    return out;
                }
            }
        }
    }

    #[tokio::test]
    async fn reads_text_binary_and_control_frames() {
        let mut input = frame(0x81, b"hello");
        input.extend(frame(0x82, &[1, 2, 3]));
        input.extend(frame(0x89, b"p"));
        input.extend(frame(0x8A, b""));
        input.extend(frame(0x88, &[0x03, 0xe8]));
        assert_eq!(
            read(&input, 4096).await,
            vec![
                Ok(Message::Text(Bytes::from_static(b"hello"))),
                Ok(Message::Binary(Bytes::from_static(&[1, 2, 3]))),
                Ok(Message::Ping(Bytes::from_static(b"p"))),
                Ok(Message::Pong),
                Ok(Message::Close(Some(1000))),
            ]
        );
    }

    #[tokio::test]
    async fn assembles_fragments_with_control_frames_between() {
        let mut input = frame(0x01, b"hel");
        input.extend(frame(0x89, b""));
        input.extend(frame(0x80, b"lo"));
        assert_eq!(
            read(&input, 4096).await,
            vec![
                Ok(Message::Ping(Bytes::new())),
                Ok(Message::Text(Bytes::from_static(b"hello")))
            ]
        );
    }

    #[tokio::test]
    async fn byte_by_byte_delivery_gives_the_same_message() {
        let input = frame(0x81, &[b'x'; 300]);
        let mut reader = FrameReader::new(4096, &[]);
        let (mut tx, mut rx) = tokio::io::duplex(1);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            tx.write_all(&input).await
        });
        let msg = reader.next_message(&mut rx).await.unwrap();
        assert_eq!(msg, Message::Text(Bytes::from(vec![b'x'; 300])));
        writer.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn each_violation_gets_its_close_code() {
        let unmasked = vec![0x81, 0x02, b'h', b'i'];
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (unmasked, "Some(1002)"),
            (frame(0xC1, b"x"), "Some(1002)"),      // RSV1
            (frame(0x83, b"x"), "Some(1002)"),      // opcode 3
            (frame(0x09, b"x"), "Some(1002)"),      // fragmented ping
            (frame(0x89, &[0; 126]), "Some(1002)"), // ping > 125
            (frame(0x80, b"x"), "Some(1002)"),      // stray continuation
            (
                [frame(0x01, b"a"), frame(0x81, b"b")].concat(),
                "Some(1002)",
            ),
            (frame(0x81, &[0xff, 0xfe]), "Some(1007)"), // bad UTF-8
            (frame(0x82, &[0; 5000]), "Some(1009)"),    // too big
            (
                [frame(0x02, &[0; 3000]), frame(0x80, &[0; 3000])].concat(),
                "Some(1009)",
            ),
            (frame(0x88, &[0x03]), "Some(1002)"), // 1-byte close
            (frame(0x88, &[0x03, 0xed]), "Some(1002)"), // close code 1005 is reserved
        ];
        for (input, code) in cases {
            let out = read(&input, 4096).await;
            let last = out.last().cloned().unwrap();
            assert!(
                matches!(&last, Err(e) if e.starts_with(code)),
                "{input:02x?} gave {last:?}"
            );
        }
    }

    #[tokio::test]
    async fn huge_length_is_refused_before_buffering() {
        let mut input = vec![0x82, 0x80 | 127];
        input.extend_from_slice(&u64::MAX.to_be_bytes());
        input.extend_from_slice(&[0; 4]);
        let mut reader = FrameReader::new(4096, &[]);
        let mut io = &input[..];
        assert!(matches!(
            reader.next_message(&mut io).await,
            Err(ReadError::TooBig(4096))
        ));
        assert!(reader.buf.capacity() < 64 * 1024);
    }
}
