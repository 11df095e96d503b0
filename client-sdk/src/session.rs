//! The background task that owns the connection.
//!
//! It reads frames, decodes them into [`Event`]s, checks every tick's `seq`
//! against its symbol's last ([`SeqTracker`], which the broker's `reset` and
//! `gap` notices and acks' epochs also feed), and sends the events to the
//! [`crate::Client`] through a bounded channel. When the program reads
//! events more slowly than they arrive, the channel fills, this task stops
//! reading, TCP pushes back, and the broker conflates: the program then sees
//! [`Event::Gap`]s instead of this process buffering without bound.
//!
//! When the connection is lost it reconnects with backoff
//! ([`ReconnectPolicy`]) and restores every topic, resuming each symbol from
//! the last tick handed on (so the broker replays exactly what was missed,
//! or says why not). The tracking is done here rather than in the client
//! because this task sees every frame first and in wire order: the position
//! a resume gives must include ticks still waiting in the channel, or the
//! broker would send them twice. Writing happens in a small
//! per-connection task fed by a queue, because a read cannot be interrupted
//! safely to write (fastwebsockets' `read_frame` is not cancel-safe).

use std::collections::HashSet;
use std::convert::Infallible;
use std::future::ready;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload};
use tickcast_protocol::clock::now_ns;
use tickcast_protocol::control::{decode_server_frame, Incoming};
use tickcast_protocol::{ServerMessage, WILDCARD};
use tokio::sync::mpsc;
use tracing::debug;

use crate::sequence::{SeqTracker, Verdict};
use crate::subscriptions::{request_frame, FrameSender, Subscriptions};
use crate::transport::{self, Target, WsReader, WsWriter};
use crate::{ClientError, Event, ReceivedTick, ReconnectPolicy};

/// Frames waiting for the writer. Requests are rare; the bound only matters
/// against a program that floods subscribe calls into a stalled socket.
const WRITE_QUEUE: usize = 64;

/// Close code sent when no close frame code was given (RFC 6455 §7.1.5).
const NO_STATUS: u16 = 1005;

/// Everything the session task needs.
pub(crate) struct Session {
    /// The brokers, in the program's order.
    pub targets: Vec<Target>,
    /// The one connected (or last tried).
    pub current: usize,
    pub policy: ReconnectPolicy,
    pub connect_timeout: Duration,
    pub idle_timeout: Option<Duration>,
    pub subs: Arc<Subscriptions>,
    pub events: mpsc::Sender<Note>,
}

/// What the session hands the client, in the order the program sees it.
#[derive(Debug)]
pub(crate) enum Note {
    /// An event for the program, as is.
    Event(Event),
    /// A tick for the program, and whether it is its symbol's first on this
    /// connection (a snapshot, whose `ts` is no transit time).
    Tick(ReceivedTick, bool),
    /// A tick dropped because its `seq` was not new; only counted.
    Duplicate,
}

/// One decoded binary frame.
enum Decoded {
    Tick(ReceivedTick),
    Message(ServerMessage),
}

impl Session {
    /// Serves `first`, then reconnects until the policy gives up, the
    /// program closes the client, or drops it.
    pub async fn run(mut self, first: (WsReader, WsWriter)) {
        let mut conn = first;
        let mut tracker = SeqTracker::default();
        loop {
            let Some(cause) = self.serve(conn, &mut tracker).await else {
                return;
            };
            if self.subs.is_closing() {
                return;
            }
            match self.reconnect(cause).await {
                Some(next) => conn = next,
                None => return,
            }
            tracker.on_reconnect();
        }
    }

    /// Pumps one connection until it ends. Returns why it ended, or `None`
    /// when the program has gone away.
    async fn serve(
        &self,
        (mut reader, writer): (WsReader, WsWriter),
        tracker: &mut SeqTracker,
    ) -> Option<ClientError> {
        let (queue, pending) = mpsc::channel(WRITE_QUEUE);
        tokio::spawn(write_frames(writer, pending));
        if let Some(restore) = self.subs.attach(queue.clone(), tracker) {
            // The queue is new and empty, so there is room.
            let _ = queue.try_send(request_frame(&restore));
        }
        let cause = self.read_frames(&mut reader, &queue, tracker).await;
        self.subs.detach();
        cause
    }

    async fn read_frames(
        &self,
        reader: &mut WsReader,
        queue: &FrameSender,
        tracker: &mut SeqTracker,
    ) -> Option<ClientError> {
        // Pongs and the reply to a close go out through the writer's queue.
        // A pong that does not fit is dropped: the socket is stalled anyway.
        let mut reply = |frame: Frame<'static>| {
            let _ = queue.try_send(frame);
            ready(Ok::<(), Infallible>(()))
        };
        loop {
            let read = reader.read_frame(&mut reply);
            let frame = match self.idle_timeout {
                // Abandoning a half-read frame leaves the reader unusable,
                // which is fine: the connection is dropped right after.
                Some(limit) => match tokio::time::timeout(limit, read).await {
                    Ok(frame) => frame,
                    Err(_) => return Some(ClientError::Idle(limit)),
                },
                None => read.await,
            };
            let frame = match frame {
                Ok(frame) => frame,
                Err(e) => return Some(ClientError::ConnectionLost(e.into())),
            };
            let received_ns = now_ns();
            let (announce, note) = match frame.opcode {
                OpCode::Binary | OpCode::Text if !frame.fin => (
                    None,
                    Note::Event(Event::Error(ClientError::Protocol(
                        "fragmented message (the broker never fragments)",
                    ))),
                ),
                OpCode::Binary => match decode(frame.payload, received_ns) {
                    Ok(decoded) => follow(tracker, decoded),
                    Err(e) => (None, Note::Event(Event::Error(e))),
                },
                OpCode::Text => (
                    None,
                    Note::Event(Event::Error(ClientError::Protocol(
                        "text frame (the broker sends binary MessagePack)",
                    ))),
                ),
                OpCode::Close => return Some(close_cause(&frame.payload)),
                // Continuations of a fragmented message (already reported),
                // pings (answered by `reply`) and pongs carry nothing.
                OpCode::Continuation | OpCode::Ping | OpCode::Pong => continue,
            };
            for note in announce.into_iter().chain([note]) {
                if self.events.send(note).await.is_err() {
                    return None;
                }
            }
        }
    }

    /// Reconnects after `cause`, announcing every attempt. Returns the new
    /// connection, or `None` when giving up or the program has gone away.
    /// Reconnects with backoff; with several brokers each attempt goes to
    /// the next one round the list, starting with the one after the broker
    /// just lost (which may be down for good: an edge that died).
    async fn reconnect(&mut self, mut cause: ClientError) -> Option<(WsReader, WsWriter)> {
        let mut attempt = 1;
        loop {
            if !self.policy.allows(attempt) {
                let gave_up = ClientError::GaveUp {
                    attempts: attempt - 1,
                    cause: Box::new(cause),
                };
                let _ = self.events.send(Note::Event(Event::Error(gave_up))).await;
                return None;
            }
            let delay = self.policy.delay(attempt);
            // Also logged, for programs that log rather than watch events.
            debug!(attempt, ?delay, %cause, "tickcast connection lost; reconnecting");
            let announce = Event::Reconnecting {
                attempt,
                delay,
                cause,
            };
            if self.events.send(Note::Event(announce)).await.is_err() {
                return None;
            }
            tokio::time::sleep(delay).await;
            if self.subs.is_closing() {
                return None;
            }
            self.current = (self.current + 1) % self.targets.len();
            let target = &self.targets[self.current];
            match transport::connect(target, self.connect_timeout).await {
                Ok(conn) => {
                    let url = target.endpoint.url.clone();
                    debug!(attempt, %url, "tickcast connection restored");
                    // Sent before the new connection's first frame, so the
                    // client knows where the old connection's ticks end.
                    if self
                        .events
                        .send(Note::Event(Event::Reconnected { attempt, url }))
                        .await
                        .is_err()
                    {
                        return None;
                    }
                    return Some(conn);
                }
                Err(e) => cause = e,
            }
            attempt = attempt.saturating_add(1);
        }
    }
}

/// Writes queued frames until the queue closes or a close frame is sent.
async fn write_frames(mut writer: WsWriter, mut pending: mpsc::Receiver<Frame<'static>>) {
    while let Some(frame) = pending.recv().await {
        let is_close = frame.opcode == OpCode::Close;
        // A failed write is not reported here: the reader sees the same
        // broken connection and reports it once.
        if writer.write_frame(frame).await.is_err() || writer.flush().await.is_err() || is_close {
            return;
        }
    }
}

/// Decodes one binary frame; never panics.
fn decode(payload: Payload<'_>, received_ns: u64) -> Result<Decoded, ClientError> {
    let tick = match decode_server_frame(&payload)? {
        Incoming::Tick(tick) => tick.to_tick(),
        Incoming::Control(message) => return Ok(Decoded::Message(message)),
    };
    // fastwebsockets hands out payloads split off its read buffer, so this
    // is a reference-count bump, not a copy.
    let raw = match payload {
        Payload::Bytes(bytes) => bytes.freeze(),
        other => Bytes::from(Vec::from(other)),
    };
    Ok(Decoded::Tick(ReceivedTick {
        tick,
        raw,
        received_ns,
    }))
}

/// What one decoded frame means for the program, after the `seq` checks:
/// an announcement (a gap or restart the tick reveals) and the note itself.
fn follow(tracker: &mut SeqTracker, decoded: Decoded) -> (Option<Note>, Note) {
    let message = match decoded {
        Decoded::Tick(received) => return follow_tick(tracker, received),
        Decoded::Message(message) => message,
    };
    let event = match message {
        ServerMessage::Subscribed {
            topics,
            epoch,
            epochs,
        } => {
            if !topics.iter().any(|t| t == WILDCARD) {
                let wanted: HashSet<&str> = topics.iter().map(String::as_str).collect();
                tracker.retain(|sym| wanted.contains(sym));
            }
            tracker.on_ack(epoch, epochs);
            Event::Subscribed(topics)
        }
        ServerMessage::Recovered { sym, ticks, .. } => Event::Recovered { sym, ticks },
        ServerMessage::Reset { sym, reason, epoch } => {
            tracker.on_reset(&sym, epoch);
            Event::Reset { sym, reason }
        }
        ServerMessage::Gap {
            sym,
            from,
            to,
            reason,
        } => {
            let unexplained = tracker.on_gap_notice(&sym, from, to).map(|expected| {
                Note::Event(Event::Gap {
                    sym: sym.clone(),
                    expected,
                    got: from,
                    reason: None,
                })
            });
            let noticed = Event::Gap {
                sym,
                expected: from,
                got: to.saturating_add(1),
                reason: Some(reason),
            };
            return (unexplained, Note::Event(noticed));
        }
        ServerMessage::Error { code, message } => {
            Event::Error(ClientError::Refused { code, message })
        }
        ServerMessage::Authenticated { exp, .. } => Event::Authenticated { exp },
    };
    (None, Note::Event(event))
}

fn follow_tick(tracker: &mut SeqTracker, received: ReceivedTick) -> (Option<Note>, Note) {
    let seq = received.tick.seq;
    let checked = tracker.check(&received.tick.sym, seq);
    let announce = match checked.verdict {
        Verdict::Duplicate => return (None, Note::Duplicate),
        Verdict::InOrder => None,
        Verdict::Gap { expected } => Some(Event::Gap {
            sym: received.tick.sym.clone(),
            expected,
            got: seq,
            reason: None,
        }),
        Verdict::Reset { last } => Some(Event::SeqReset {
            sym: received.tick.sym.clone(),
            last,
            got: seq,
        }),
    };
    (
        announce.map(Note::Event),
        Note::Tick(received, checked.first_on_connection),
    )
}

fn close_cause(payload: &[u8]) -> ClientError {
    match payload {
        [hi, lo, reason @ ..] => ClientError::ServerClosed {
            code: u16::from_be_bytes([*hi, *lo]),
            reason: String::from_utf8_lossy(reason).into_owned(),
        },
        _ => ClientError::ServerClosed {
            code: NO_STATUS,
            reason: String::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickcast_protocol::{ErrorCode, Tick};

    fn tick() -> Tick {
        Tick {
            sym: "AAPL".into(),
            seq: 7,
            ts: 1,
            bid: 1.0,
            ask: 2.0,
            last: 1.5,
            bid_size: 1,
            ask_size: 2,
            last_size: 3,
            volume: 4,
            orig_ts: None,
        }
    }

    /// What one frame becomes: the announcement (if any) and the note.
    fn frame(tracker: &mut SeqTracker, bytes: Vec<u8>, received_ns: u64) -> (Option<Note>, Note) {
        match decode(Payload::Owned(bytes), received_ns) {
            Ok(decoded) => follow(tracker, decoded),
            Err(e) => (None, Note::Event(Event::Error(e))),
        }
    }

    fn tick_of(sym: &str, seq: u64) -> Vec<u8> {
        Tick {
            sym: sym.into(),
            seq,
            ..tick()
        }
        .to_vec()
    }

    #[test]
    fn decodes_ticks_acks_refusals_and_garbage() {
        let mut tracker = SeqTracker::default();
        let bytes = tick().to_vec();
        match frame(&mut tracker, bytes.clone(), 5) {
            (None, Note::Tick(t, true)) => {
                assert_eq!(t.tick, tick());
                assert_eq!(&t.raw[..], &bytes[..]);
                assert_eq!(t.latency_ns(), 4);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            frame(&mut tracker, bytes.clone(), 5),
            (None, Note::Duplicate)
        ));
        let ack = ServerMessage::subscribed(vec!["AAPL".into()]);
        assert!(matches!(
            frame(&mut tracker, ack.to_msgpack(), 0),
            (None, Note::Event(Event::Subscribed(t))) if t == ["AAPL"]
        ));
        let refusal = ServerMessage::Error {
            code: ErrorCode::InvalidTopic,
            message: "no".into(),
        };
        assert!(matches!(
            frame(&mut tracker, refusal.to_msgpack(), 0),
            (
                None,
                Note::Event(Event::Error(ClientError::Refused {
                    code: ErrorCode::InvalidTopic,
                    ..
                }))
            )
        ));
        for garbage in [&b""[..], b"\xc1", b"hello", &bytes[..bytes.len() - 1]] {
            assert!(matches!(
                decode(Payload::Borrowed(garbage), 0),
                Err(ClientError::Decode(_))
            ));
        }
    }

    #[test]
    fn notices_become_events_and_move_the_baseline() {
        use tickcast_protocol::control::{GapReason, ResetReason};
        let mut t = SeqTracker::default();
        assert!(matches!(
            frame(&mut t, tick_of("A", 1), 0),
            (None, Note::Tick(..))
        ));
        let gap = ServerMessage::Gap {
            sym: "A".into(),
            from: 2,
            to: 5,
            reason: GapReason::RateCapped,
        };
        assert!(matches!(
            frame(&mut t, gap.to_msgpack(), 0),
            (
                None,
                Note::Event(Event::Gap {
                    expected: 2,
                    got: 6,
                    reason: Some(GapReason::RateCapped),
                    ..
                })
            )
        ));
        // The jump the notice announced is not reported again.
        assert!(matches!(
            frame(&mut t, tick_of("A", 6), 0),
            (None, Note::Tick(..))
        ));
        let reset = ServerMessage::Reset {
            sym: "A".into(),
            reason: ResetReason::FeedRestart,
            epoch: Some("e.1".into()),
        };
        assert!(matches!(
            frame(&mut t, reset.to_msgpack(), 0),
            (
                None,
                Note::Event(Event::Reset {
                    reason: ResetReason::FeedRestart,
                    ..
                })
            )
        ));
        assert!(matches!(
            frame(&mut t, tick_of("A", 1), 0),
            (None, Note::Tick(..))
        ));
        // Without a notice, a jump is a gap with no reason.
        assert!(matches!(
            frame(&mut t, tick_of("A", 4), 0),
            (
                Some(Note::Event(Event::Gap {
                    expected: 2,
                    got: 4,
                    reason: None,
                    ..
                })),
                Note::Tick(..)
            )
        ));
        let recovered = ServerMessage::Recovered {
            sym: "A".into(),
            ticks: 3,
            to: 7,
        };
        assert!(matches!(
            frame(&mut t, recovered.to_msgpack(), 0),
            (None, Note::Event(Event::Recovered { ticks: 3, .. }))
        ));
    }

    #[test]
    fn close_frames_give_code_and_reason() {
        assert!(matches!(
            close_cause(b"\x03\xe9going away"),
            ClientError::ServerClosed { code: 1001, reason } if reason == "going away"
        ));
        assert!(matches!(
            close_cause(b""),
            ClientError::ServerClosed {
                code: NO_STATUS,
                ..
            }
        ));
    }
}
