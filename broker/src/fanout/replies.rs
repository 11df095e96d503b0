//! The bound on what the broker writes because a client asked: pongs,
//! error replies and subscription acks.
//!
//! Ticks are bounded by the outbox and its slow-consumer policy, but a
//! reply is the client's own doing: a client that sends pings as fast as it
//! can and never reads would otherwise queue pongs without end (tried
//! before this bound: 33 MB to over 2 GB of resident memory in 8 s). So
//! every reply is charged, in bytes, to its connection and to the broker's
//! total from the moment it is queued until its writer takes it out of the
//! outbox for a write (or drops the connection). Past either bound the
//! connection is closed with 1008, its queue discarded.
//!
//! Who charges and who releases: a session charges its pongs and error
//! replies before it queues them, and a subscription's ack right after the
//! hub queued it; the connection's writer releases each as it leaves the
//! outbox, and whatever is left when the connection detaches. A writer may
//! take an ack before its session has charged it, so a count can dip below
//! what is queued for an instant, never above it: the bound is never hit
//! by mistake. Counts are relaxed atomics: each is one number, and nothing
//! else is read in step with it.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::fanout::connection::Connection;

/// Which bound a charge went past.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Overflow {
    /// The connection's own.
    #[error("too many unread replies")]
    Connection,
    /// The broker's total.
    #[error("too many unread replies, broker-wide")]
    Total,
}

/// The broker-wide reply count and both bounds (one per broker, shared by
/// every session and writer).
#[derive(Debug)]
pub struct ReplyBudget {
    per_connection: i64,
    total: i64,
    queued: AtomicI64,
}

impl ReplyBudget {
    /// A budget of `per_connection` bytes per connection and `total` in all.
    pub fn new(per_connection: usize, total: usize) -> Self {
        let clamp = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        Self {
            per_connection: clamp(per_connection),
            total: clamp(total),
            queued: AtomicI64::new(0),
        }
    }

    /// Charges `bytes` of replies to `conn`; an error says which bound the
    /// charge went past (the bytes stay charged until released).
    pub fn charge(&self, conn: &Connection, bytes: usize) -> Result<(), Overflow> {
        let bytes = bytes as i64;
        let own = conn.replies_queued.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let all = self.queued.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if own > self.per_connection {
            Err(Overflow::Connection)
        } else if all > self.total {
            Err(Overflow::Total)
        } else {
            Ok(())
        }
    }

    /// Releases `bytes` of `conn`'s replies (taken for a write).
    pub fn release(&self, conn: &Connection, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let bytes = bytes as i64;
        conn.replies_queued.fetch_sub(bytes, Ordering::Relaxed);
        self.queued.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Releases whatever `conn` still has charged (it is detaching).
    pub fn release_all(&self, conn: &Connection) {
        let left = conn.replies_queued.swap(0, Ordering::Relaxed);
        self.queued.fetch_sub(left, Ordering::Relaxed);
    }

    /// Bytes of replies queued now, broker-wide.
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed).max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::sync::CancellationToken;

    fn conn(id: u64) -> Connection {
        Connection::new(
            id,
            "127.0.0.1:1".parse().unwrap(),
            &CancellationToken::new(),
        )
    }

    #[test]
    fn each_connection_and_the_total_are_bounded_and_released() {
        let budget = ReplyBudget::new(100, 150);
        let (a, b) = (conn(1), conn(2));
        assert_eq!(budget.charge(&a, 100), Ok(()));
        assert_eq!(budget.charge(&a, 1), Err(Overflow::Connection));
        assert_eq!(budget.charge(&b, 49), Ok(()));
        assert_eq!(budget.charge(&b, 1), Err(Overflow::Total), "151 in all");
        budget.release(&a, 60);
        assert_eq!(budget.queued(), 91);
        assert_eq!(budget.charge(&b, 1), Ok(()), "room again");
        budget.release_all(&a);
        budget.release_all(&b);
        assert_eq!(budget.queued(), 0);
        assert_eq!(
            budget.charge(&a, 100),
            Ok(()),
            "a detached count starts over"
        );
    }

    #[test]
    fn a_release_before_its_charge_never_overflows() {
        let budget = ReplyBudget::new(100, 1_000);
        let a = conn(1);
        // The writer took an ack before the session charged it.
        budget.release(&a, 80);
        assert_eq!(budget.queued(), 0, "shown as zero");
        assert_eq!(budget.charge(&a, 80), Ok(()));
        assert_eq!(budget.charge(&a, 100), Ok(()), "the count was back at 0");
        assert_eq!(budget.charge(&a, 1), Err(Overflow::Connection));
    }
}
