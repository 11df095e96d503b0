//! `frame_reader`: the broker's client frame reader
//! (`tickcast_broker::client::reader::FrameReader`) on any client byte
//! stream, against itself in random chunks and against tungstenite.
//!
//! The input is the byte stream a client sent after its upgrade request;
//! a hash of it chooses how many of its first bytes the upgrade had
//! already read (the reader's `leftover`) and the chunk plan.
//!
//! ## Where we differ from tungstenite on purpose
//!
//! tungstenite 0.28 (as a server, `max_message_size` and `max_frame_size`
//! both set to our limit) is the reference. Its verdict and ours are the
//! same (the same messages in order, then the same close code or the same
//! end of input) except in these cases, each allowed only in its exact
//! shape and counted in [`differences`]:
//!
//! 1. **Header checks come first** (`early`): we refuse a frame on its
//!    header (reserved bits, mask, control-frame rules, message order, the
//!    size limit summed over fragments) before its payload has arrived;
//!    tungstenite reads the whole payload first. When the input ends
//!    inside that payload, we have failed and tungstenite is still waiting.
//! 2. **The size is checked last** (`size_last`): a frame longer than the
//!    limit that also breaks a header rule (reserved bits, no mask, a
//!    control frame fragmented or over 125 bytes) fails with 1002 for the
//!    rule here, 1009 there (tungstenite checks the length first).
//! 3. **Invalid close codes** (`close_code`): we fail the connection with
//!    1002; tungstenite delivers the close with its code replaced by 1002,
//!    which ends the connection with the same code. When the reason is
//!    also not UTF-8, tungstenite checks the reason first (1007).
//! 4. **Close code 1014** (`close_1014`): IANA registered 1014 (bad
//!    gateway) after tungstenite's table was written; we accept it as a
//!    code a peer may send, tungstenite treats it as invalid (1002).
//! 5. **UTF-8 of fragmented text** (`utf8_late`): tungstenite fails on a
//!    fragment whose bytes can no longer become UTF-8; we check the text
//!    when the message is complete (RFC 6455 §8.1 allows either). Until
//!    then we may deliver control frames that came after the bad fragment.

use std::collections::hash_map::DefaultHasher;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::io::ErrorKind;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use tickcast_broker::client::reader::{FrameReader, Message, ReadError};
use tickcast_wsframe::Violation;
use tungstenite::protocol::{Role, WebSocketConfig};

use crate::alloc;
use crate::io::{seed_of, ChunkedAsync, ChunkedRead};

/// The message limit the target runs with: small, so fragmented messages
/// over it fit in a fuzz input (the broker's default is 4 KiB).
pub const MAX_MESSAGE: usize = 1024;

/// One message as both readers see it (pong payloads are ignored by ours).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Msg {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong,
    Close(Option<u16>),
}

impl Msg {
    fn is_control(&self) -> bool {
        matches!(self, Msg::Ping(_) | Msg::Pong | Msg::Close(_))
    }
}

/// How a reading ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// The input ran out (cleanly or inside a frame).
    Eof,
    /// A close frame arrived (the last message); nothing is read after it.
    Closed,
    /// The connection fails; ours keeps its violation, tungstenite's the
    /// close code its error maps to.
    Ours(Violation),
    Theirs(u16, String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Verdict {
    msgs: Vec<Msg>,
    end: End,
}

/// Counts of the allowed differences, by name, since the process started.
static DIFFERENCES: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];
const NAMES: [&str; 5] = [
    "early",
    "size_last",
    "close_code",
    "close_1014",
    "utf8_late",
];

/// How often each deliberate difference from tungstenite was seen.
pub fn differences() -> Vec<(&'static str, u64)> {
    NAMES
        .iter()
        .zip(&DIFFERENCES)
        .map(|(n, c)| (*n, c.load(Ordering::Relaxed)))
        .collect()
}

fn allowed(which: usize) -> Result<(), String> {
    DIFFERENCES[which].fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Our reader over `stream`, `leftover` already read; `chunked`: in the
/// plan's chunks, with every pending read cancelled (the future dropped)
/// and retried, as a `select!` in the session does. Each message goes to
/// `on_msg` as it arrives; the end is returned.
fn read_ours(
    leftover: &[u8],
    stream: &[u8],
    chunked: Option<u64>,
    mut on_msg: impl FnMut(&Message),
) -> End {
    let mut reader = FrameReader::new(MAX_MESSAGE, leftover);
    let mut cx = Context::from_waker(Waker::noop());
    let mut whole = stream;
    let mut pieces = ChunkedAsync::new(stream, chunked.unwrap_or(0));
    loop {
        let got = loop {
            let poll = match chunked {
                Some(_) => pin!(reader.next_message(&mut pieces)).poll(&mut cx),
                None => pin!(reader.next_message(&mut whole)).poll(&mut cx),
            };
            if let Poll::Ready(got) = poll {
                break got;
            }
        };
        match got {
            Ok(msg) => {
                on_msg(&msg);
                if let Message::Close(_) = msg {
                    return End::Closed;
                }
            }
            Err(ReadError::Eof) => return End::Eof,
            Err(ReadError::Violation(v)) => return End::Ours(v),
            Err(ReadError::Io(e)) => panic!("an in-memory read failed: {e}"),
        }
    }
}

/// [`read_ours`], collecting the messages.
fn ours(leftover: &[u8], stream: &[u8], chunked: Option<u64>) -> Verdict {
    let mut msgs = Vec::new();
    let end = read_ours(leftover, stream, chunked, |msg| {
        msgs.push(match msg {
            Message::Text(b) => Msg::Text(b.to_vec()),
            Message::Binary(b) => Msg::Binary(b.to_vec()),
            Message::Ping(b) => Msg::Ping(b.to_vec()),
            Message::Pong => Msg::Pong,
            Message::Close(code) => Msg::Close(*code),
        })
    });
    Verdict { msgs, end }
}

/// What identifies a message, borrowed: hashing it allocates nothing.
type Key<'a> = (u8, Option<u16>, &'a [u8]);

fn key(msg: &Msg) -> Key<'_> {
    match msg {
        Msg::Text(b) => (0, None, b),
        Msg::Binary(b) => (1, None, b),
        Msg::Ping(b) => (2, None, b),
        Msg::Pong => (3, None, &[]),
        Msg::Close(c) => (4, *c, &[]),
    }
}

fn key_of_ours(msg: &Message) -> Key<'_> {
    match msg {
        Message::Text(b) => (0, None, b),
        Message::Binary(b) => (1, None, b),
        Message::Ping(b) => (2, None, b),
        Message::Pong => (3, None, &[]),
        Message::Close(c) => (4, *c, &[]),
    }
}

/// The digest of a verdict, from the hasher its messages went into.
fn finish(mut h: DefaultHasher, end: &End) -> u64 {
    format!("{end:?}").hash(&mut h);
    h.finish()
}

/// [`read_ours`] within the memory budget, giving the verdict's digest:
/// the messages are hashed as they come rather than collected, so the
/// budget measures the reader alone.
fn ours_measured(what: &str, leftover: &[u8], stream: &[u8], chunked: Option<u64>) -> u64 {
    let budget = 4 * MAX_MESSAGE + 2 * (leftover.len() + stream.len()) + 4096;
    let mut h = DefaultHasher::new();
    let end = alloc::within(what, budget, || {
        read_ours(leftover, stream, chunked, |msg| {
            key_of_ours(msg).hash(&mut h)
        })
    });
    finish(h, &end)
}

/// tungstenite as a server over the same bytes, non-blocking in chunks.
fn theirs(leftover: &[u8], stream: &[u8], seed: u64) -> Verdict {
    use tungstenite::error::Error;
    use tungstenite::Message as T;
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let io = ChunkedRead::new(stream, seed, ErrorKind::WouldBlock);
    let mut ws = tungstenite::WebSocket::from_partially_read(
        io,
        leftover.to_vec(),
        Role::Server,
        Some(config),
    );
    let mut msgs = Vec::new();
    loop {
        let end = match ws.read() {
            Ok(T::Text(t)) => {
                msgs.push(Msg::Text(t.as_bytes().to_vec()));
                continue;
            }
            Ok(T::Binary(b)) => {
                msgs.push(Msg::Binary(b.to_vec()));
                continue;
            }
            Ok(T::Ping(b)) => {
                msgs.push(Msg::Ping(b.to_vec()));
                continue;
            }
            Ok(T::Pong(_)) => {
                msgs.push(Msg::Pong);
                continue;
            }
            Ok(T::Close(frame)) => {
                msgs.push(Msg::Close(frame.map(|f| f.code.into())));
                End::Closed
            }
            Ok(T::Frame(_)) => unreachable!("tungstenite reads no raw frames"),
            Err(Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => continue,
            Err(Error::Protocol(
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            ))
            | Err(Error::ConnectionClosed)
            | Err(Error::AlreadyClosed) => End::Eof,
            Err(e @ Error::Capacity(_)) => End::Theirs(1009, e.to_string()),
            Err(e @ Error::Utf8(_)) => End::Theirs(1007, e.to_string()),
            Err(e @ Error::Protocol(_)) => End::Theirs(1002, e.to_string()),
            Err(e) => panic!("tungstenite failed unexpectedly: {e}"),
        };
        return Verdict { msgs, end };
    }
}

/// Whether our verdict and tungstenite's agree, up to the differences
/// documented at the top of this module.
fn agree(ours: &Verdict, theirs: &Verdict) -> Result<(), String> {
    use Violation::*;
    let header_rule = |v: &Violation| {
        matches!(
            v,
            ReservedBits
                | Unmasked
                | UnknownOpcode(_)
                | FragmentedControl
                | ControlTooLong(_)
                | StrayContinuation
                | Interleaved
                | TooBig(_)
        )
    };
    let (a, b) = (&ours.msgs, &theirs.msgs);
    match (&ours.end, &theirs.end) {
        (End::Eof, End::Eof) | (End::Closed, End::Closed) if a == b => Ok(()),
        (End::Ours(v), End::Theirs(code, _)) if a == b && v.close_code() == *code => Ok(()),
        // 1. We refused the header; tungstenite waits for the payload.
        (End::Ours(v), End::Eof) if a == b && header_rule(v) => allowed(0),
        // 2. A header rule and the size: we name the rule.
        (
            End::Ours(ReservedBits | Unmasked | FragmentedControl | ControlTooLong(_)),
            End::Theirs(1009, _),
        ) if a == b => allowed(1),
        // 3. An invalid close code: the same 1002 either way, or 1007
        //    where tungstenite looks at the reason first.
        (End::Ours(InvalidCloseCode(_)), End::Closed)
            if b.split_last() == Some((&Msg::Close(Some(1002)), &a[..])) =>
        {
            allowed(2)
        }
        (End::Ours(InvalidCloseCode(_)), End::Theirs(1007, _)) if a == b => allowed(2),
        // 4. 1014.
        (End::Closed, End::Closed)
            if matches!(
                (a.split_last(), b.split_last()),
                (Some((Msg::Close(Some(1014)), x)), Some((Msg::Close(Some(1002)), y))) if x == y
            ) =>
        {
            allowed(3)
        }
        // 5. tungstenite failed on a text fragment's UTF-8 first (its only
        //    1007); until the message ends we deliver control frames only.
        (_, End::Theirs(1007, _))
            if a.len() >= b.len()
                && a[..b.len()] == b[..]
                && a[b.len()..].iter().all(Msg::is_control) =>
        {
            allowed(4)
        }
        _ => Err(format!(
            "verdicts differ:\n ours:   {ours:?}\n theirs: {theirs:?}"
        )),
    }
}

/// Properties:
/// - our verdict (the messages in order, then the end: the input ran out,
///   a close arrived, or a violation with its close code) is the same
///   whatever the chunking, with every pending read cancelled and retried
///   (the reader is cancel-safe), and with the first bytes handed over as
///   the upgrade's leftover;
/// - it agrees with tungstenite's, up to the differences listed above;
/// - text messages are UTF-8, data messages at most [`MAX_MESSAGE`] bytes,
///   control payloads at most 125;
/// - the reader never holds much more than one message: a header
///   declaring 2⁶⁴ bytes allocates nothing.
pub fn frame_reader(data: &[u8]) {
    let seed = seed_of(data);
    let split = (seed >> 32) as usize % (data.len().min(64) + 1);
    frame_reader_chunked(&data[..split], &data[split..], seed);
}

/// [`frame_reader`] with a given leftover and chunk seed.
fn frame_reader_chunked(leftover: &[u8], stream: &[u8], seed: u64) {
    let all = [leftover, stream].concat();
    let reference = ours(&[], &all, None);
    let mut h = DefaultHasher::new();
    reference.msgs.iter().for_each(|m| key(m).hash(&mut h));
    let want = finish(h, &reference.end);
    // Measured without collecting (the reader's memory alone), compared by
    // digest, and read again in full only to show a difference.
    for (what, leftover, stream, chunked) in [
        ("FrameReader (whole input)", &[][..], &all[..], None),
        ("FrameReader (leftover)", leftover, stream, None),
        ("FrameReader (chunked)", leftover, stream, Some(seed)),
    ] {
        if ours_measured(what, leftover, stream, chunked) != want {
            assert_eq!(
                ours(leftover, stream, chunked),
                reference,
                "{what}: another verdict"
            );
            panic!("{what}: another digest of the same verdict");
        }
    }

    for msg in &reference.msgs {
        match msg {
            Msg::Text(t) => {
                assert!(std::str::from_utf8(t).is_ok());
                assert!(t.len() <= MAX_MESSAGE);
            }
            Msg::Binary(b) => assert!(b.len() <= MAX_MESSAGE),
            Msg::Ping(p) => assert!(p.len() <= 125),
            Msg::Pong | Msg::Close(_) => {}
        }
    }

    let tungstenite = theirs(leftover, stream, seed.rotate_left(17));
    if let Err(why) = agree(&reference, &tungstenite) {
        panic!("{why}");
    }
}
