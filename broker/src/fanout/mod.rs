//! Fan-out: from one published tick to every subscriber's socket.
//!
//! ```text
//! feed ─▶ Hub::publish ──▶ Inbox (one per writer shard) ──▶ ShardWriter ──▶ sockets
//!          symbols.rs        items in one order:              window.rs
//!          subscriptions.rs  attach, deliveries + their       outbox.rs (per connection)
//!          frame once        recipients, replies, closes,     writer/socket.rs
//!                            detach
//!            ▲                 ▲
//!            └──── Member ─────┘   (a connection's session: subscribe,
//!                                   unsubscribe, reply, close, leave)
//! ```
//!
//! Each piece of state has one owner:
//! - the [`hub::Hub`] owns the symbol table and the subscription table
//!   (under its one lock);
//! - each writer shard ([`writer::ShardWriter`]) owns its connections'
//!   outboxes, sockets and pending frames, with no lock at all;
//! - an [`inbox::Inbox`] is the only channel into a shard, and its order is
//!   what keeps the shard's view in step with the hub's;
//! - a connection's session holds a [`Member`], the one narrow handle it
//!   uses to act on the fan-out; [`connection::Connection`] is the little
//!   the two halves share (liveness, queued reply bytes, cancellation);
//! - the [`replies::ReplyBudget`] bounds what clients make the broker
//!   queue for them (pongs, error replies, acks), per connection and in all.
//!
//! Calls and data flow one way: feed → hub → inbox → writer → socket, and
//! session → member → hub or inbox. Nothing here calls back up.

pub mod connection;
pub mod frame;
pub mod gaps;
pub mod history;
pub mod hub;
pub mod inbox;
pub mod interest;
pub mod outbox;
pub mod pace;
pub mod replies;
pub mod stream;
pub mod subscriptions;
pub mod symbols;
pub mod window;
pub mod writer;

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tickcast_protocol::control::{RequestError, SubscribeOptions};
use tokio_util::sync::CancellationToken;

use crate::auth::entitlements::Entitlements;
use crate::auth::users::UserStats;
use crate::config::Limits;
use crate::observe::metrics::Metrics;
use connection::{Connection, ConnectionInfo};
use frame::close_code;
use history::History;
use hub::Hub;
use inbox::{Delivery, Inbox, Item, Recipients};
use replies::ReplyBudget;
use stream::WriteHalf;
use subscriptions::Route;
use window::Kind;
use writer::ShardWriter;

/// The most writer shards.
pub const MAX_SHARDS: usize = 64;

/// How long `/connections` waits for a shard's report.
const REPORT_TIMEOUT: Duration = Duration::from_secs(2);

/// The fan-out's front door: the hub, the writer shards' inboxes, and the
/// broker-wide parent of every connection's cancellation. Cheap to clone.
#[derive(Clone)]
pub struct Fanout {
    inner: Arc<Inner>,
}

struct Inner {
    hub: Arc<Hub>,
    inboxes: Vec<Arc<Inbox>>,
    replies: Arc<ReplyBudget>,
    metrics: Arc<Metrics>,
    next_id: AtomicU64,
    /// Cancelling it cuts every connection.
    connections: CancellationToken,
}

impl Fanout {
    /// A fan-out with `shards` writer shards (1 to [`MAX_SHARDS`]), and the
    /// writers to run, one task each; under `epoch`, or a random one.
    pub fn new(
        shards: usize,
        limits: &Limits,
        epoch: Option<String>,
        metrics: Arc<Metrics>,
    ) -> (Self, Vec<ShardWriter>) {
        let history = match epoch {
            Some(epoch) => History::with_epoch(limits.history, limits.history_bytes, epoch),
            None => History::new(limits.history, limits.history_bytes),
        };
        let (hub, inboxes) = Hub::with_inboxes(
            shards.clamp(1, MAX_SHARDS),
            limits.outbox_bytes / 2,
            history.with_max_replay(limits.outbox_bytes),
            metrics.clone(),
        );
        let replies = Arc::new(ReplyBudget::new(
            limits.max_reply_bytes,
            limits.max_reply_bytes_total,
        ));
        let writers = inboxes
            .iter()
            .map(|inbox| {
                ShardWriter::new(
                    inbox.clone(),
                    limits.clone(),
                    replies.clone(),
                    metrics.clone(),
                )
            })
            .collect();
        let hub = Arc::new(hub);
        let inner = Inner {
            hub,
            inboxes,
            replies,
            metrics,
            next_id: AtomicU64::new(1),
            connections: CancellationToken::new(),
        };
        (
            Self {
                inner: Arc::new(inner),
            },
            writers,
        )
    }

    /// The hub (feeds publish into it; `/symbols` reads it).
    pub fn hub(&self) -> &Arc<Hub> {
        &self.inner.hub
    }

    /// Places a new connection in the least loaded shard, which takes over
    /// its socket's write half.
    pub fn join(&self, peer: SocketAddr, socket: WriteHalf) -> Member {
        self.join_as(peer, socket, None)
    }

    /// [`Self::join`] for a connection whose deliveries count into its
    /// user's figures.
    pub fn join_as(
        &self,
        peer: SocketAddr,
        socket: WriteHalf,
        user: Option<Arc<UserStats>>,
    ) -> Member {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Connection::new(id, peer, &self.inner.connections).with_user(user));
        let (shard, inbox) = self
            .inner
            .inboxes
            .iter()
            .enumerate()
            .min_by_key(|(_, inbox)| inbox.live())
            .unwrap_or_else(|| unreachable!("a fan-out has at least one shard"));
        let slot = inbox.attach(conn.clone(), socket);
        Member {
            hub: self.inner.hub.clone(),
            inbox: inbox.clone(),
            route: Route {
                shard: shard as u32,
                slot,
            },
            conn,
            replies: self.inner.replies.clone(),
            metrics: self.inner.metrics.clone(),
            overflowed: Cell::new(false),
        }
    }

    /// Bytes of replies queued for clients now, broker-wide.
    pub fn reply_bytes(&self) -> u64 {
        self.inner.replies.queued()
    }

    /// Connections open now.
    pub fn connection_count(&self) -> usize {
        self.inner.inboxes.iter().map(|i| i.live()).sum()
    }

    /// Sends every client a close frame after what is already queued.
    pub fn close_all(&self, code: u16, reason: &str) {
        let frame = frame::close(code, reason);
        for inbox in &self.inner.inboxes {
            inbox.push(Item::CloseAll {
                frame: frame.clone(),
            });
        }
    }

    /// Cuts every connection at once.
    pub fn cut_all(&self) {
        self.inner.connections.cancel();
    }

    /// One row per connection, from each shard, by id.
    pub async fn report(&self) -> Vec<ConnectionInfo> {
        let mut waiting = Vec::new();
        for inbox in &self.inner.inboxes {
            let (tx, rx) = tokio::sync::oneshot::channel();
            inbox.push(Item::Report(tx));
            waiting.push(rx);
        }
        let mut rows = Vec::new();
        for rx in waiting {
            if let Ok(Ok(mut shard)) = tokio::time::timeout(REPORT_TIMEOUT, rx).await {
                rows.append(&mut shard);
            }
        }
        rows.sort_by_key(|r| r.id);
        rows
    }
}

/// A connection's membership in the fan-out: everything its session may
/// do to it. Dropping it takes the connection out: its subscriptions go,
/// then its writer shard drops its socket and frees its slot.
pub struct Member {
    hub: Arc<Hub>,
    inbox: Arc<Inbox>,
    route: Route,
    conn: Arc<Connection>,
    replies: Arc<ReplyBudget>,
    metrics: Arc<Metrics>,
    /// Its replies went past their bound and it is being closed. (A
    /// `Cell`: a membership belongs to its session's task alone.)
    overflowed: Cell<bool>,
}

impl Member {
    /// What the session shares with the writer.
    pub fn connection(&self) -> &Arc<Connection> {
        &self.conn
    }

    /// Subscribes (see [`Hub::subscribe`]); the ack and a resume's notices
    /// are charged to the connection's replies.
    pub fn subscribe(
        &self,
        topics: &[String],
        options: &SubscribeOptions,
        max_topics: usize,
        access: &Arc<Entitlements>,
    ) -> Result<(), RequestError> {
        let ack = self
            .hub
            .subscribe(self.route, topics, options, max_topics, access)?;
        self.charge(ack);
        Ok(())
    }

    /// Changes the connection's entitlements (see [`Hub::regrant`]); the
    /// ack is charged to the connection's replies.
    pub fn regrant(&self, old: &Entitlements, access: &Arc<Entitlements>) {
        let ack = self.hub.regrant(self.route, old, access);
        self.charge(ack);
    }

    /// Unsubscribes (see [`Hub::unsubscribe`]); the ack is charged to the
    /// connection's replies.
    pub fn unsubscribe(&self, topics: &[String]) {
        let ack = self.hub.unsubscribe(self.route, topics);
        self.charge(ack);
    }

    /// Drops every subscription: no tick published from now on reaches it.
    pub fn leave_subscriptions(&self) {
        self.hub.remove(self.route)
    }

    /// Sends a control frame (a pong, an error reply), charged to the
    /// connection's replies; past their bound it is not sent and the
    /// connection is closed instead.
    pub fn reply(&self, frame: Bytes) {
        if self.charge(frame.len()) {
            self.inbox.push(Item::Deliver(Delivery {
                frame,
                kind: Kind::Reply,
                enqueued_ns: 0,
                to: Recipients::One(self.route.slot),
            }));
        } else {
            // Not queued after all: not charged either.
            self.replies.release(&self.conn, frame.len());
        }
    }

    /// Whether the connection's replies went past their bound: it is being
    /// closed (1008) and its session should stop reading.
    pub fn overflowed(&self) -> bool {
        self.overflowed.get()
    }

    /// Charges `bytes` of replies; past a bound, closes the connection once
    /// (1008, its queue dropped) and returns false.
    fn charge(&self, bytes: usize) -> bool {
        let Err(over) = self.replies.charge(&self.conn, bytes) else {
            return true;
        };
        if !self.overflowed.replace(true) {
            self.metrics.reply_overflows.add(1);
            self.close(close_code::POLICY, &over.to_string(), true);
        }
        false
    }

    /// Closes the connection with `code`: after what is queued, or at once
    /// dropping it (`discard`).
    pub fn close(&self, code: u16, reason: &str, discard: bool) {
        self.inbox.push(Item::Close {
            slot: self.route.slot,
            frame: frame::close(code, reason),
            discard,
        });
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        // Subscriptions first: once the detach is in the inbox, no later
        // tick may name the slot (see `inbox.rs`).
        self.hub.remove(self.route);
        self.inbox.push(Item::Detach {
            slot: self.route.slot,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::{TcpListener, TcpStream};

    /// A member on a real loopback socket whose writer never runs, so
    /// nothing it is sent ever leaves its reply budget.
    async fn member(fanout: &Fanout) -> (Member, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        let (_read, write) = server.into_split();
        (fanout.join(peer, write.into()), client)
    }

    #[tokio::test]
    async fn acks_and_replies_are_charged_and_past_the_bound_close_the_connection_once() {
        let limits = Limits {
            max_reply_bytes: 300,
            ..Limits::default()
        };
        let metrics = Arc::new(Metrics::default());
        let (fanout, _writers) = Fanout::new(1, &limits, None, metrics.clone());
        let (member, _client) = member(&fanout).await;
        let topics: Vec<String> = (0..10).map(|i| format!("SYM{i}")).collect();
        assert!(member
            .subscribe(
                &topics,
                &SubscribeOptions::default(),
                100,
                &Arc::new(Entitlements::All)
            )
            .is_ok());
        let ack = fanout.reply_bytes();
        assert!(ack > 50, "the ack is charged: {ack}");
        assert!(!member.overflowed());
        // Each subscribe's ack lists all ten: a few of them pass 300 bytes.
        for _ in 0..5 {
            assert!(member
                .subscribe(
                    &topics,
                    &SubscribeOptions::default(),
                    100,
                    &Arc::new(Entitlements::All)
                )
                .is_ok());
        }
        assert!(member.overflowed());
        assert_eq!(metrics.reply_overflows.get(), 1, "counted once");
        let charged = fanout.reply_bytes();
        member.reply(frame::build(frame::Opcode::Pong, b"late"));
        assert_eq!(fanout.reply_bytes(), charged, "nothing more is queued");
        assert_eq!(metrics.reply_overflows.get(), 1);
    }
}
