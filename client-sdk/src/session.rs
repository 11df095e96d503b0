//! The background task that owns the connection.
//!
//! It reads frames, decodes them into [`Event`]s and sends them to the
//! [`crate::Client`] through a bounded channel. When the program reads
//! events more slowly than they arrive, the channel fills, this task stops
//! reading, TCP pushes back, and the broker conflates: the program then sees
//! [`Event::Gap`]s instead of this process buffering without bound.
//!
//! When the connection is lost it reconnects with backoff
//! ([`ReconnectPolicy`]) and restores every topic. Writing happens in a small
//! per-connection task fed by a queue, because a read cannot be interrupted
//! safely to write (fastwebsockets' `read_frame` is not cancel-safe).

use std::convert::Infallible;
use std::future::ready;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload};
use tickcast_protocol::clock::now_ns;
use tickcast_protocol::control::{decode_server_frame, Incoming};
use tickcast_protocol::ServerMessage;
use tokio::sync::mpsc;
use tracing::debug;

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
    pub target: Target,
    pub policy: ReconnectPolicy,
    pub connect_timeout: Duration,
    pub idle_timeout: Option<Duration>,
    pub subs: Arc<Subscriptions>,
    pub events: mpsc::Sender<Event>,
}

impl Session {
    /// Serves `first`, then reconnects until the policy gives up, the
    /// program closes the client, or drops it.
    pub async fn run(self, first: (WsReader, WsWriter)) {
        let mut conn = first;
        loop {
            let Some(cause) = self.serve(conn).await else {
                return;
            };
            if self.subs.is_closing() {
                return;
            }
            match self.reconnect(cause).await {
                Some(next) => conn = next,
                None => return,
            }
        }
    }

    /// Pumps one connection until it ends. Returns why it ended, or `None`
    /// when the program has gone away.
    async fn serve(&self, (mut reader, writer): (WsReader, WsWriter)) -> Option<ClientError> {
        let (queue, pending) = mpsc::channel(WRITE_QUEUE);
        tokio::spawn(write_frames(writer, pending));
        if let Some(restore) = self.subs.attach(queue.clone()) {
            // The queue is new and empty, so there is room.
            let _ = queue.try_send(request_frame(&restore));
        }
        let cause = self.read_frames(&mut reader, &queue).await;
        self.subs.detach();
        cause
    }

    async fn read_frames(&self, reader: &mut WsReader, queue: &FrameSender) -> Option<ClientError> {
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
            let event = match frame.opcode {
                OpCode::Binary | OpCode::Text if !frame.fin => Event::Error(ClientError::Protocol(
                    "fragmented message (the broker never fragments)",
                )),
                OpCode::Binary => decode(frame.payload, received_ns),
                OpCode::Text => Event::Error(ClientError::Protocol(
                    "text frame (the broker sends binary MessagePack)",
                )),
                OpCode::Close => return Some(close_cause(&frame.payload)),
                // Continuations of a fragmented message (already reported),
                // pings (answered by `reply`) and pongs carry nothing.
                OpCode::Continuation | OpCode::Ping | OpCode::Pong => continue,
            };
            if self.events.send(event).await.is_err() {
                return None;
            }
        }
    }

    /// Reconnects after `cause`, announcing every attempt. Returns the new
    /// connection, or `None` when giving up or the program has gone away.
    async fn reconnect(&self, mut cause: ClientError) -> Option<(WsReader, WsWriter)> {
        let mut attempt = 1;
        loop {
            if !self.policy.allows(attempt) {
                let gave_up = ClientError::GaveUp {
                    attempts: attempt - 1,
                    cause: Box::new(cause),
                };
                let _ = self.events.send(Event::Error(gave_up)).await;
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
            if self.events.send(announce).await.is_err() {
                return None;
            }
            tokio::time::sleep(delay).await;
            if self.subs.is_closing() {
                return None;
            }
            match transport::connect(&self.target, self.connect_timeout).await {
                Ok(conn) => {
                    debug!(attempt, "tickcast connection restored");
                    // Sent before the new connection's first frame, so the
                    // client knows where the old connection's ticks end.
                    if self
                        .events
                        .send(Event::Reconnected { attempt })
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

/// Turns one binary frame into an event; never fails, never panics.
fn decode(payload: Payload<'_>, received_ns: u64) -> Event {
    let tick = match decode_server_frame(&payload) {
        Ok(Incoming::Tick(tick)) => tick.to_tick(),
        Ok(Incoming::Control(ServerMessage::Subscribed { topics, .. })) => {
            return Event::Subscribed(topics)
        }
        Ok(Incoming::Control(ServerMessage::Error { code, message })) => {
            return Event::Error(ClientError::Refused { code, message })
        }
        Ok(Incoming::Control(ServerMessage::Authenticated { exp, .. })) => {
            return Event::Authenticated { exp }
        }
        Ok(Incoming::Control(
            notice @ (ServerMessage::Recovered { .. }
            | ServerMessage::Reset { .. }
            | ServerMessage::Gap { .. }),
        )) => return Event::Notice(notice),
        Err(e) => return Event::Error(e.into()),
    };
    // fastwebsockets hands out payloads split off its read buffer, so this
    // is a reference-count bump, not a copy.
    let raw = match payload {
        Payload::Bytes(bytes) => bytes.freeze(),
        other => Bytes::from(Vec::from(other)),
    };
    Event::Tick(ReceivedTick {
        tick,
        raw,
        received_ns,
    })
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

    #[test]
    fn decodes_ticks_acks_refusals_and_garbage() {
        let bytes = tick().to_vec();
        match decode(Payload::Owned(bytes.clone()), 5) {
            Event::Tick(t) => {
                assert_eq!(t.tick, tick());
                assert_eq!(&t.raw[..], &bytes[..]);
                assert_eq!(t.latency_ns(), 4);
            }
            other => panic!("{other:?}"),
        }
        let ack = ServerMessage::subscribed(vec!["AAPL".into()]);
        assert!(
            matches!(decode(Payload::Owned(ack.to_msgpack()), 0), Event::Subscribed(t) if t == ["AAPL"])
        );
        let refusal = ServerMessage::Error {
            code: ErrorCode::InvalidTopic,
            message: "no".into(),
        };
        assert!(matches!(
            decode(Payload::Owned(refusal.to_msgpack()), 0),
            Event::Error(ClientError::Refused {
                code: ErrorCode::InvalidTopic,
                ..
            })
        ));
        for garbage in [&b""[..], b"\xc1", b"hello", &bytes[..bytes.len() - 1]] {
            assert!(matches!(
                decode(Payload::Borrowed(garbage), 0),
                Event::Error(ClientError::Decode(_))
            ));
        }
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
