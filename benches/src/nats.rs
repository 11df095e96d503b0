//! The bits of the NATS client protocol the comparison runs need.
//!
//! NATS is a line protocol (`MSG <subject> <sid> [reply] <len>\r\n<payload>\r\n`,
//! `PING`, `PONG`, `INFO {…}`, `+OK`, `-ERR '…'`). Over WebSocket the server
//! may split or join protocol lines across frames, so the subscriber feeds
//! every frame's payload into one byte stream and parses that. A symbol `SYM`
//! is published on subject `ticks.SYM`; `*` is `ticks.>`.

/// The subject prefix of every tick.
pub const SUBJECT_PREFIX: &str = "ticks.";

/// The first thing a client sends: no `+OK` per command, no strict checks.
pub const CONNECT: &[u8] = b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\n";

/// The longest control line accepted (`INFO` is the longest, well under this).
const MAX_LINE: usize = 64 * 1024;

/// One operation from the server, borrowing from the stream buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerOp<'a> {
    /// Server information (sent first, and on cluster changes).
    Info,
    /// A keep-alive: answer `PONG`.
    Ping,
    /// The answer to our `PING`: every command sent before it is processed.
    Pong,
    /// `+OK` (only in verbose mode).
    Ok,
    /// `-ERR '…'`.
    Err(&'a [u8]),
    /// A message on a subscription.
    Msg {
        /// The subject it was published on.
        subject: &'a [u8],
        /// The message bytes.
        payload: &'a [u8],
    },
}

/// Why the stream is not valid NATS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NatsError {
    /// A line that is no known operation.
    UnknownOp(String),
    /// A `MSG` line without a valid length.
    BadMsg,
    /// A line longer than the limit.
    LineTooLong,
}

impl std::fmt::Display for NatsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NatsError::UnknownOp(op) => write!(f, "unknown NATS operation {op:?}"),
            NatsError::BadMsg => write!(f, "malformed NATS MSG line"),
            NatsError::LineTooLong => write!(f, "NATS control line too long"),
        }
    }
}

impl std::error::Error for NatsError {}

/// Parses the operation at the front of `buf`: the operation and the bytes it
/// took, or `Ok(None)` when more bytes are needed.
pub fn parse_op(buf: &[u8]) -> Result<Option<(ServerOp<'_>, usize)>, NatsError> {
    let Some(eol) = find_crlf(buf) else {
        return if buf.len() > MAX_LINE {
            Err(NatsError::LineTooLong)
        } else {
            Ok(None)
        };
    };
    let line = &buf[..eol];
    let after = eol + 2;
    let op = match line.get(..3) {
        Some(b"MSG") | Some(b"msg") => {
            let mut fields = line[3..]
                .split(|&b| b == b' ' || b == b'\t')
                .filter(|f| !f.is_empty());
            let subject = fields.next().ok_or(NatsError::BadMsg)?;
            // `sid`, then an optional reply subject, then the length last.
            let len = fields
                .next_back()
                .and_then(parse_len)
                .ok_or(NatsError::BadMsg)?;
            let end = after + len;
            let Some(payload) = buf.get(after..end) else {
                return Ok(None);
            };
            return match buf.get(end..end + 2) {
                Some(b"\r\n") => Ok(Some((ServerOp::Msg { subject, payload }, end + 2))),
                Some(_) => Err(NatsError::BadMsg),
                None => Ok(None),
            };
        }
        _ if line.eq_ignore_ascii_case(b"PING") => ServerOp::Ping,
        _ if line.eq_ignore_ascii_case(b"PONG") => ServerOp::Pong,
        _ if line.eq_ignore_ascii_case(b"+OK") => ServerOp::Ok,
        _ if starts_with_ignore_case(line, b"INFO") => ServerOp::Info,
        _ if starts_with_ignore_case(line, b"-ERR") => ServerOp::Err(line[4..].trim_ascii()),
        _ => {
            let shown = &line[..line.len().min(40)];
            return Err(NatsError::UnknownOp(
                String::from_utf8_lossy(shown).into_owned(),
            ));
        }
    };
    Ok(Some((op, after)))
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

fn starts_with_ignore_case(line: &[u8], prefix: &[u8]) -> bool {
    line.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

fn parse_len(field: &[u8]) -> Option<usize> {
    if field.is_empty() || field.len() > 9 {
        return None;
    }
    field.iter().try_fold(0usize, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + usize::from(b - b'0'))
    })
}

/// The subject of a topic: `ticks.SYM`, or `ticks.>` for `*`.
pub fn subject(topic: &str) -> String {
    if topic == tickcast_protocol::WILDCARD {
        format!("{SUBJECT_PREFIX}>")
    } else {
        format!("{SUBJECT_PREFIX}{topic}")
    }
}

/// `CONNECT`, one `SUB` per topic and a `PING`, whose `PONG` then
/// acknowledges the whole subscription.
pub fn subscribe_commands(topics: &[String]) -> Vec<u8> {
    let mut out = CONNECT.to_vec();
    for (sid, topic) in topics.iter().enumerate() {
        out.extend_from_slice(format!("SUB {} {}\r\n", subject(topic), sid + 1).as_bytes());
    }
    out.extend_from_slice(b"PING\r\n");
    out
}

/// Appends `PUB ticks.<sym> <len>\r\n<payload>\r\n`.
pub fn put_pub(out: &mut Vec<u8>, sym: &str, payload: &[u8]) {
    out.extend_from_slice(b"PUB ");
    out.extend_from_slice(SUBJECT_PREFIX.as_bytes());
    out.extend_from_slice(sym.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_split_anywhere_gives_the_same_ops() {
        let stream: &[u8] = b"INFO {\"server_id\":\"x\"}\r\nPONG\r\nMSG ticks.AAPL 1 5\r\nhello\r\nPING\r\nMSG ticks.MSFT 2 _INBOX.r 0\r\n\r\n-ERR 'Slow Consumer'\r\n";
        let mut whole = Vec::new();
        let mut rest = stream;
        while let Some((op, used)) = parse_op(rest).unwrap() {
            whole.push(format!("{op:?}"));
            rest = &rest[used..];
        }
        assert!(rest.is_empty());
        assert_eq!(whole.len(), 6);
        assert!(
            whole[2].contains("payload: [104, 101, 108, 108, 111]"),
            "{}",
            whole[2]
        );
        for cut in 0..stream.len() {
            let mut buf = stream[..cut].to_vec();
            let mut ops = Vec::new();
            let mut drain = |buf: &mut Vec<u8>| {
                let mut used_total = 0;
                while let Some((op, used)) = parse_op(&buf[used_total..]).unwrap() {
                    ops.push(format!("{op:?}"));
                    used_total += used;
                }
                buf.drain(..used_total);
            };
            drain(&mut buf);
            buf.extend_from_slice(&stream[cut..]);
            drain(&mut buf);
            assert_eq!(ops, whole, "cut at {cut}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_op(b"HELLO\r\n").is_err());
        assert_eq!(parse_op(b"MSG ticks.A 1 x\r\n"), Err(NatsError::BadMsg));
        assert_eq!(parse_op(b"MSG ticks.A 1 2\r\nabXX"), Err(NatsError::BadMsg));
        assert_eq!(parse_op(b"MSG\r\n"), Err(NatsError::BadMsg));
        assert_eq!(parse_op(&[b'A'; 70_000]), Err(NatsError::LineTooLong));
    }

    #[test]
    fn commands_are_well_formed() {
        let cmds = subscribe_commands(&["AAPL".into(), "*".into()]);
        let text = String::from_utf8(cmds).unwrap();
        assert!(text.starts_with("CONNECT {"));
        assert!(text.contains("SUB ticks.AAPL 1\r\nSUB ticks.> 2\r\nPING\r\n"));
        let mut out = Vec::new();
        put_pub(&mut out, "AAPL", b"xyz");
        assert_eq!(out, b"PUB ticks.AAPL 3\r\nxyz\r\n");
    }
}
