//! Reading WebSocket frames from a client, strictly.
//!
//! Why not fastwebsockets' reader: it does not tell whether a frame was
//! masked (the field is private), and a server must fail the connection when
//! a client frame is not (RFC 6455 §5.1). Clients only send small control
//! messages, so this reader is simple rather than fast. The rules (masking,
//! reserved bits, known opcodes, control-frame rules, fragment order, UTF-8,
//! close codes, one size limit that also covers a message split into
//! fragments) are `tickcast-wsframe`'s, each violation with the close code to
//! send; this module adds the buffering and the assembly of fragments. It
//! keeps all state in `self` and only awaits on `read_buf`, so it is
//! cancel-safe inside `select!`.
//!
//! The read buffer starts small (idle connections are the common case) and
//! grows only as far as the largest allowed message.

use bytes::{Buf, Bytes, BytesMut};
use tickcast_wsframe::rules::{check_sequence, utf8};
use tickcast_wsframe::{close, mask, Header, Opcode, Rules, Violation};
use tokio::io::{AsyncRead, AsyncReadExt};

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
    /// The client broke RFC 6455; close with the code the violation names.
    #[error(transparent)]
    Violation(#[from] Violation),
}

impl ReadError {
    /// The close code to send for this error, if a close frame makes sense.
    pub fn close_code(&self) -> Option<u16> {
        match self {
            ReadError::Eof | ReadError::Io(_) => None,
            ReadError::Violation(v) => Some(v.close_code()),
        }
    }
}

/// The code to answer a client's close with: its own, echoed as RFC 6455
/// §5.5.1 asks, or 1000 (normal closure) if it sent none.
pub fn close_reply_code(code: Option<u16>) -> u16 {
    code.unwrap_or(close::code::NORMAL)
}

/// The first read buffer size: enough for any control message in one read.
const INITIAL_BUFFER: usize = 512;

/// Reads client frames off a socket and assembles messages.
pub struct FrameReader {
    buf: BytesMut,
    /// A server's rules, with the message size limit.
    rules: Rules,
    /// The opcode and payload of a fragmented message in progress.
    partial: Option<(Opcode, BytesMut)>,
}

impl FrameReader {
    /// A reader for messages up to `max_message` bytes. `leftover` holds bytes
    /// already read past the HTTP upgrade request.
    pub fn new(max_message: usize, leftover: &[u8]) -> Self {
        let mut buf = BytesMut::with_capacity(INITIAL_BUFFER.max(leftover.len()));
        buf.extend_from_slice(leftover);
        Self {
            buf,
            rules: Rules::server(max_message as u64),
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
            let Some((header, header_len)) = Header::parse(&self.buf) else {
                return Ok(None);
            };
            // Checked on the header alone, before any payload is buffered.
            let buffered = self.partial.as_ref().map_or(0, |(_, p)| p.len() as u64);
            let opcode = self.rules.check(&header, buffered)?;
            check_sequence(opcode, self.partial.is_some())?;
            // `check` bounded the length by `max_message`, a usize.
            let payload_len = header.payload_len as usize;
            let total = header_len + payload_len;
            if self.buf.len() < total {
                self.buf.reserve(total - self.buf.len());
                return Ok(None);
            }
            self.buf.advance(header_len);
            let mut payload = self.buf.split_to(payload_len);
            if let Some(key) = header.mask {
                mask::apply(&mut payload, key);
            }
            if let Some(msg) = self.on_frame(header.fin(), opcode, payload)? {
                return Ok(Some(msg));
            }
        }
    }

    /// Handles one unmasked frame, already checked for its place in the
    /// message sequence; returns a message once one is complete.
    fn on_frame(
        &mut self,
        fin: bool,
        opcode: Opcode,
        payload: BytesMut,
    ) -> Result<Option<Message>, ReadError> {
        match opcode {
            Opcode::Ping => return Ok(Some(Message::Ping(payload.freeze()))),
            Opcode::Pong => return Ok(Some(Message::Pong)),
            Opcode::Close => {
                let code = close::parse(&payload)?.map(|c| c.code);
                return Ok(Some(Message::Close(code)));
            }
            Opcode::Continuation | Opcode::Text | Opcode::Binary => {}
        }
        // A continuation has a message in progress and a new message has
        // none: `check_sequence` saw to both.
        let (opcode, body) = match self.partial.take() {
            Some((first, mut body)) => {
                body.extend_from_slice(&payload);
                (first, body)
            }
            None => (opcode, payload),
        };
        if !fin {
            self.partial = Some((opcode, body));
            return Ok(None);
        }
        let body = body.freeze();
        if opcode == Opcode::Text {
            utf8(&body)?;
            Ok(Some(Message::Text(body)))
        } else {
            Ok(Some(Message::Binary(body)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickcast_wsframe::put_frame;

    /// Builds a masked client frame.
    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        put_frame(&mut out, first, Some([0x11, 0x22, 0x33, 0x44]), payload);
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

    /// The header rules and their codes are tested in `tickcast-wsframe`;
    /// these are the ones that take the reader's state (fragments, the
    /// assembled text, the close payload), plus one header rule to show a
    /// violation reaches the caller with its code.
    #[tokio::test]
    async fn each_violation_gets_its_close_code() {
        let unmasked = vec![0x81, 0x02, b'h', b'i'];
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (unmasked, "Some(1002)"),
            (frame(0x80, b"x"), "Some(1002)"), // stray continuation
            (
                [frame(0x01, b"a"), frame(0x81, b"b")].concat(),
                "Some(1002)",
            ),
            (frame(0x81, &[0xff, 0xfe]), "Some(1007)"), // bad UTF-8
            (
                [frame(0x01, &[0xe2, 0x82]), frame(0x80, &[0xac, 0xff])].concat(),
                "Some(1007)",
            ),
            (frame(0x82, &[0; 5000]), "Some(1009)"), // too big
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

    #[test]
    fn a_close_is_answered_with_its_own_code_or_1000() {
        assert_eq!(close_reply_code(Some(4000)), 4000);
        assert_eq!(close_reply_code(Some(1001)), 1001);
        assert_eq!(close_reply_code(None), 1000);
    }

    #[tokio::test]
    async fn huge_length_is_refused_before_buffering() {
        let header = Header {
            first: 0x82,
            mask: Some([0; 4]),
            payload_len: u64::MAX,
        };
        let input = header.encode();
        let mut reader = FrameReader::new(4096, &[]);
        let mut io = &input[..];
        assert!(matches!(
            reader.next_message(&mut io).await,
            Err(ReadError::Violation(Violation::TooBig(4096)))
        ));
        assert!(reader.buf.capacity() < 64 * 1024);
    }
}
