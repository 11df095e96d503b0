//! The writer's periodic look at each of its connections.
//!
//! Four times a second a shard checks every connection it owns and:
//! - cuts one that has been closing for longer than the grace period (a
//!   peer that stopped reading never finishes the close handshake);
//! - closes one that has stayed over its outbox limit for longer than the
//!   slow timeout (1008 "slow consumer");
//! - pings one that has been silent for the ping interval, and closes one
//!   that has not answered within the pong timeout (1008 "ping timeout").
//!
//! Doing this in one periodic pass by the connection's owner keeps timers
//! off the per-connection hot path and needs no lock: the outbox is the
//! writer's own, and the session's last sign of life is an atomic.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::Limits;
use crate::fanout::frame::{self, close_code, Opcode};
use crate::fanout::writer::slot::Slot;
use crate::observe::metrics::Metrics;

/// How often a shard sweeps its connections.
pub const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// Applies the rules above to one connection; returns whether it now has
/// something to write (a ping or a close frame).
pub fn sweep(slot: &mut Slot, limits: &Limits, metrics: &Metrics, now: Instant) -> bool {
    if slot.outbox.is_closing() || !slot.side.is_open() {
        let since = *slot.closing_since.get_or_insert(now);
        if now.saturating_duration_since(since) > limits.close_grace {
            slot.conn.cancel();
        }
        return false;
    }
    if slot
        .outbox
        .over_limit_for(now)
        .is_some_and(|d| d > limits.slow_timeout)
    {
        let close = frame::close(close_code::POLICY, "slow consumer");
        if slot.outbox.close(close, true) {
            metrics.slow_disconnects.add(1);
        }
        return true;
    }
    let silent = slot.conn.silent_for(now);
    if silent > limits.ping_interval + limits.pong_timeout {
        let close = frame::close(close_code::POLICY, "ping timeout");
        if slot.outbox.close(close, true) {
            metrics.ping_timeouts.add(1);
        }
        return true;
    }
    if silent > limits.ping_interval && slot.conn.start_ping() {
        return slot
            .outbox
            .push_control(frame::build(Opcode::Ping, b"tickcast"));
    }
    false
}
