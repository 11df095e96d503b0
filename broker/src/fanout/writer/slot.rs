//! One connection as its writer shard owns it: the socket's write side and
//! the outbox. (The frames delivered to it since its last visit are kept
//! apart, in the shard's dense `pending` lists: see `writer/mod.rs`.)
//!
//! Only the shard's task touches a slot, so nothing in it is locked; what
//! the connection's session needs to see lives in the shared
//! [`Connection`].

use std::sync::Arc;

use tokio::time::Instant;

use crate::fanout::connection::Connection;
use crate::fanout::outbox::Outbox;
use crate::fanout::writer::socket::WriteSide;

/// One connection of a writer shard.
#[derive(Debug)]
pub struct Slot {
    /// What its session shares with the writer.
    pub conn: Arc<Connection>,
    /// Its socket's write side.
    pub side: WriteSide,
    /// Its queue and slow-consumer policy.
    pub outbox: Outbox,
    /// When the sweep first saw it closing.
    pub closing_since: Option<Instant>,
}
