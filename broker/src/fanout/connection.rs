//! What a connection's two halves share: the session task that reads the
//! client, and the writer shard that writes to it.
//!
//! Everything else about a connection has exactly one owner: its
//! subscriptions belong to the hub, its outbox and socket write half to its
//! writer shard, its read half and request rate limit to its session. What
//! is left is small and lock-free: who it is, when the client was last
//! heard from (the session stamps it, the writer's sweep reads it), the
//! bytes of replies queued for it (`replies.rs`), a cancellation token that
//! ends both halves at once, and the signal that the close frame is out.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::auth::users::UserStats;

/// One client connection, shared by its session and its writer shard.
#[derive(Debug)]
pub struct Connection {
    /// Unique for the broker's lifetime (logs, `/connections`).
    pub id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    /// When the connection was accepted: `last_heard_ms` counts from here.
    started: Instant,
    /// When the client last sent anything, ms after `started`.
    last_heard_ms: AtomicU64,
    /// A ping is out and unanswered.
    ping_outstanding: AtomicBool,
    /// Bytes of replies queued and not yet taken for a write (charged and
    /// released by [`ReplyBudget`](crate::fanout::replies::ReplyBudget)).
    pub(crate) replies_queued: AtomicI64,
    /// Ends both halves without ceremony (socket error, a peer past its
    /// grace period, broker shutdown).
    cancel: CancellationToken,
    /// The writer has sent the close frame (or given up on the socket).
    closed: Notify,
    /// Its user's figures (with tokens), counted into by its writer.
    pub user: Option<Arc<UserStats>>,
}

impl Connection {
    /// A connection whose cancellation also follows `parent` (the broker's).
    pub fn new(id: u64, peer: SocketAddr, parent: &CancellationToken) -> Self {
        Self {
            id,
            peer,
            started: Instant::now(),
            last_heard_ms: AtomicU64::new(0),
            ping_outstanding: AtomicBool::new(false),
            replies_queued: AtomicI64::new(0),
            cancel: parent.child_token(),
            closed: Notify::new(),
            user: None,
        }
    }

    /// The same, counting its deliveries into `user`'s figures.
    pub fn with_user(mut self, user: Option<Arc<UserStats>>) -> Self {
        self.user = user;
        self
    }

    /// The client sent something: it is alive, and answers any ping.
    pub fn heard_from(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_heard_ms.store(ms, Ordering::Relaxed);
        self.ping_outstanding.store(false, Ordering::Relaxed);
    }

    /// How long the client has been silent.
    pub fn silent_for(&self, now: Instant) -> Duration {
        let heard =
            self.started + Duration::from_millis(self.last_heard_ms.load(Ordering::Relaxed));
        now.saturating_duration_since(heard)
    }

    /// Records that a ping went out; false if one already was.
    pub fn start_ping(&self) -> bool {
        !self.ping_outstanding.swap(true, Ordering::Relaxed)
    }

    /// Ends both halves of the connection now.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Resolves once the connection is cancelled.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// The writer sent the close frame: the session may finish.
    pub fn close_sent(&self) {
        self.closed.notify_one();
    }

    /// Resolves once the writer has sent the close frame.
    pub async fn wait_close_sent(&self) {
        self.closed.notified().await
    }
}

/// One row of `/connections`, reported by the connection's writer shard.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConnectionInfo {
    /// Connection id.
    pub id: u64,
    /// Client address.
    pub peer: String,
    /// Bytes waiting in its outbox.
    pub queued_bytes: usize,
    /// Frames written to it.
    pub delivered: u64,
    /// Ticks conflated for it.
    pub conflated: u64,
    /// Ticks dropped for it.
    pub dropped: u64,
}
