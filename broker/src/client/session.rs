//! One WebSocket client from upgrade to close: its reader loop, its control
//! messages, and the state the sweeper looks at.
//!
//! Each connection runs one task, this one: it reads client frames and
//! answers them (subscribe, unsubscribe, ping, close). Its writes are made by
//! its writer shard (`writer.rs`). The two share a [`Session`]: the outbox,
//! the socket's write half, the last time the client was heard from, and a
//! cancellation token that ends the connection at once when it must go
//! without ceremony (socket error, stalled peer past its grace period).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tickcast_protocol::control::{ErrorCode, RequestError};
use tickcast_protocol::ClientRequest;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::client::reader::{FrameReader, Message, ReadError};
use crate::fanout::frame::{self, close_code, Opcode};
use crate::fanout::hub::{Hub, Route, Subscriber};
use crate::fanout::outbox::Outbox;
use crate::fanout::writer::WriteSide;
use crate::Shared;

/// How long a closing connection may take to finish the close handshake
/// before it is cut.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// State shared by a connection's reader, writer and the sweeper.
pub struct Session {
    /// The hub's view of this connection (id, route and outbox).
    pub subscriber: Subscriber,
    /// The socket's write half, used by the writer shard.
    pub(crate) write: Mutex<WriteSide>,
    /// The client's address.
    pub peer: SocketAddr,
    /// When the client was last heard from, ms since the registry's epoch.
    pub(crate) last_seen_ms: AtomicU64,
    /// A ping is out and unanswered.
    pub(crate) ping_outstanding: AtomicBool,
    /// When the sweeper first saw the connection closing (ms), 0 if not.
    pub(crate) closing_since_ms: AtomicU64,
    cancel: CancellationToken,
    /// The close frame is out (see [`Session::writer_finished`]).
    finished: Notify,
    /// To mark the connection for its writer.
    hub: Arc<Hub>,
}

impl Session {
    /// A session for a new connection: `route` places it in a writer shard
    /// (`Writers::attach`), `socket` is its write half.
    pub fn new(
        id: u64,
        route: Route,
        peer: SocketAddr,
        outbox: Outbox,
        socket: tokio::net::tcp::OwnedWriteHalf,
        hub: Arc<Hub>,
        now_ms: u64,
    ) -> Self {
        Self {
            subscriber: Subscriber::new(id, route, Arc::new(outbox)),
            write: Mutex::new(WriteSide::new(socket)),
            peer,
            last_seen_ms: AtomicU64::new(now_ms),
            ping_outstanding: AtomicBool::new(false),
            closing_since_ms: AtomicU64::new(0),
            cancel: CancellationToken::new(),
            finished: Notify::new(),
            hub,
        }
    }

    /// The connection id.
    pub fn id(&self) -> u64 {
        self.subscriber.id
    }

    /// Its place among the writer shards.
    pub fn route(&self) -> Route {
        self.subscriber.route
    }

    /// Called by the writer once the close frame is out.
    pub(crate) fn writer_finished(&self) {
        self.finished.notify_one();
    }

    /// Waits until the writer has sent the close frame.
    async fn wait_writer_finished(&self) {
        self.finished.notified().await
    }

    /// Ends both tasks of the connection now.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Resolves when the connection has been cancelled.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// Queues a close frame (see [`Outbox::close`]) and marks the
    /// connection for its writer.
    pub fn close(&self, code: u16, reason: &str, discard: bool) -> bool {
        let started = self.subscriber.outbox.close(code, reason, discard);
        if started {
            self.hub.kick(self.route());
        }
        started
    }

    /// Queues a control frame and marks the connection for its writer.
    pub fn send_control(&self, frame: Bytes) {
        if self.subscriber.outbox.push_control(frame) {
            self.hub.kick(self.route());
        }
    }
}

/// A token bucket for control messages: `burst` at once, `rate` a second.
struct RateLimit {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl RateLimit {
    fn new(rate: u32, burst: u32) -> Self {
        Self {
            tokens: f64::from(burst),
            rate: f64::from(rate),
            burst: f64::from(burst),
            last: Instant::now(),
        }
    }

    fn allow(&mut self) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Serves one upgraded connection until it closes. `leftover` holds bytes
/// the HTTP layer read past the upgrade request; `topics` come from the
/// `?topics=` query and are subscribed before anything is read.
pub async fn run(stream: TcpStream, leftover: Bytes, shared: Arc<Shared>, topics: Vec<String>) {
    let Ok(peer) = stream.peer_addr() else { return };
    let limits = &shared.limits;
    let (mut rd, wr) = stream.into_split();
    let session = shared.writers.attach(|route| {
        Arc::new(Session::new(
            shared.connections.next_id(),
            route,
            peer,
            Outbox::new(limits.outbox_bytes, limits.slow_policy),
            wr,
            shared.hub.clone(),
            shared.connections.now_ms(),
        ))
    });
    shared.connections.insert(session.clone());
    shared.metrics.connections.add(1);
    shared.metrics.connections_total.add(1);
    debug!(id = session.id(), %peer, "connected");
    let mut reader = FrameReader::new(limits.max_control_bytes, &leftover);
    drop(leftover);
    let mut rate = RateLimit::new(limits.control_rate, limits.control_burst);

    if !topics.is_empty() {
        apply(&shared, &session, ClientRequest::Subscribe { topics });
    }
    loop {
        let msg = tokio::select! {
            msg = reader.next_message(&mut rd) => msg,
            _ = session.cancelled() => break,
        };
        session
            .last_seen_ms
            .store(shared.connections.now_ms(), Ordering::Relaxed);
        session.ping_outstanding.store(false, Ordering::Relaxed);
        match msg {
            Ok(Message::Text(body)) => on_request(
                &shared,
                &session,
                &mut rate,
                ClientRequest::from_json(&body),
            ),
            Ok(Message::Binary(body)) => on_request(
                &shared,
                &session,
                &mut rate,
                ClientRequest::from_msgpack(&body),
            ),
            Ok(Message::Ping(payload)) => {
                session.send_control(frame::build(Opcode::Pong, &payload))
            }
            Ok(Message::Pong) => {}
            Ok(Message::Close(code)) => {
                // Echo the client's code, as RFC 6455 §5.5.1 asks.
                session.close(code.unwrap_or(close_code::NORMAL), "", true);
                break;
            }
            Err(e) => {
                if let Some(code) = e.close_code() {
                    shared.metrics.protocol_errors.add(1);
                    debug!(id = session.id(), %peer, error = %e, "closing on protocol error");
                    session.close(code, &e.to_string(), true);
                } else if !matches!(e, ReadError::Eof) {
                    debug!(id = session.id(), %peer, error = %e, "read failed");
                }
                if matches!(e, ReadError::Eof | ReadError::Io(_)) {
                    session.cancel();
                }
                break;
            }
        }
    }
    // No more ticks for this connection from here on.
    shared.hub.remove(&session.subscriber);
    // Let the writer finish sending the close frame, within the grace period.
    tokio::select! {
        _ = session.wait_writer_finished() => {}
        _ = session.cancelled() => {}
        _ = tokio::time::sleep(CLOSE_GRACE) => session.cancel(),
    }
    shared.writers.detach(&session);
    shared.connections.remove(session.id());
    shared.metrics.connections.sub(1);
    debug!(id = session.id(), %peer, "disconnected");
}

fn on_request(
    shared: &Shared,
    session: &Arc<Session>,
    rate: &mut RateLimit,
    request: Result<ClientRequest, RequestError>,
) {
    if !rate.allow() {
        let limit = shared.limits.control_rate;
        reply_error(
            shared,
            session,
            &RequestError::new(
                ErrorCode::RateLimited,
                format!("too many control messages: at most {limit} a second"),
            ),
        );
        return;
    }
    match request {
        Ok(request) => apply(shared, session, request),
        Err(e) => reply_error(shared, session, &e),
    }
}

/// Carries out a valid request; the hub queues the reply.
fn apply(shared: &Shared, session: &Arc<Session>, request: ClientRequest) {
    match request {
        ClientRequest::Subscribe { topics } => {
            if let Err(e) =
                shared
                    .hub
                    .subscribe(&session.subscriber, &topics, shared.limits.max_topics)
            {
                reply_error(shared, session, &e);
            }
        }
        ClientRequest::Unsubscribe { topics } => {
            shared.hub.unsubscribe(&session.subscriber, &topics)
        }
    }
}

fn reply_error(shared: &Shared, session: &Session, e: &RequestError) {
    shared.metrics.request_errors.add(1);
    session.send_control(frame::binary(&e.to_message().to_msgpack()));
}
