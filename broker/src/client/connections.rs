//! The registry of live connections and the sweeper that looks after them.
//!
//! Four times a second the sweeper walks every connection and:
//! - closes one that has stayed over its outbox limit for longer than the
//!   slow timeout (1008 "slow consumer"),
//! - pings one that has been silent for the ping interval, and closes one
//!   that has not answered within the pong timeout,
//! - cuts one that has been closing for longer than the grace period
//!   (a peer that stopped reading never finishes the close handshake).
//!
//! Doing this in one periodic pass keeps timers off the per-connection hot
//! path. The registry also serves shutdown (close 1001 to everyone) and the
//! `/connections` listing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;

use crate::client::session::{Session, CLOSE_GRACE};
use crate::config::Limits;
use crate::fanout::frame::{self, close_code, Opcode};
use crate::observe::metrics::Metrics;

const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// Every live connection.
pub struct Connections {
    sessions: Mutex<HashMap<u64, Arc<Session>>>,
    next_id: AtomicU64,
    epoch: Instant,
}

/// One row of `/connections`.
#[derive(Debug, Serialize)]
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

impl Default for Connections {
    fn default() -> Self {
        Self {
            sessions: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            epoch: Instant::now(),
        }
    }
}

impl Connections {
    /// A fresh connection id.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Milliseconds since the registry was created (a cheap monotonic clock
    /// for "last seen" stamps).
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Registers a connection.
    pub fn insert(&self, session: Arc<Session>) {
        self.sessions.lock().insert(session.id(), session);
    }

    /// Forgets a connection.
    pub fn remove(&self, id: u64) {
        self.sessions.lock().remove(&id);
    }

    /// How many connections are registered.
    pub fn len(&self) -> usize {
        self.sessions.lock().len()
    }

    /// Whether no connection is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn all(&self) -> Vec<Arc<Session>> {
        self.sessions.lock().values().cloned().collect()
    }

    /// Per-connection counters, by id.
    pub fn infos(&self) -> Vec<ConnectionInfo> {
        let mut rows: Vec<ConnectionInfo> = self
            .all()
            .iter()
            .map(|s| {
                let c = &s.subscriber.outbox.counters;
                ConnectionInfo {
                    id: s.id(),
                    peer: s.peer.to_string(),
                    queued_bytes: s.subscriber.outbox.queued_bytes(),
                    delivered: c.delivered.load(Ordering::Relaxed),
                    conflated: c.conflated.load(Ordering::Relaxed),
                    dropped: c.dropped.load(Ordering::Relaxed),
                }
            })
            .collect();
        rows.sort_by_key(|r| r.id);
        rows
    }

    /// Sends every client a close frame after what is already queued.
    pub fn close_all(&self, code: u16, reason: &str) {
        for s in self.all() {
            s.close(code, reason, false);
        }
    }

    /// Cuts every connection at once.
    pub fn cancel_all(&self) {
        for s in self.all() {
            s.cancel();
        }
    }

    /// Runs the sweeper forever.
    pub async fn sweep_forever(&self, limits: &Limits, metrics: &Metrics) {
        let mut ticker = tokio::time::interval(SWEEP_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            self.sweep(limits, metrics);
        }
    }

    fn sweep(&self, limits: &Limits, metrics: &Metrics) {
        let now = Instant::now();
        let now_ms = self.now_ms();
        let ping_ms = limits.ping_interval.as_millis() as u64;
        let give_up_ms = ping_ms + limits.pong_timeout.as_millis() as u64;
        for s in self.all() {
            let outbox = &s.subscriber.outbox;
            if outbox.is_closing() {
                let since = s.closing_since_ms.load(Ordering::Relaxed);
                if since == 0 {
                    s.closing_since_ms.store(now_ms.max(1), Ordering::Relaxed);
                } else if now_ms.saturating_sub(since) > CLOSE_GRACE.as_millis() as u64 {
                    s.cancel();
                }
                continue;
            }
            if outbox
                .over_limit_for(now)
                .is_some_and(|d| d > limits.slow_timeout)
            {
                if s.close(close_code::POLICY, "slow consumer", true) {
                    metrics.slow_disconnects.add(1);
                }
                continue;
            }
            let silent_ms = now_ms.saturating_sub(s.last_seen_ms.load(Ordering::Relaxed));
            if silent_ms > give_up_ms {
                if s.close(close_code::POLICY, "ping timeout", true) {
                    metrics.ping_timeouts.add(1);
                }
            } else if silent_ms > ping_ms && !s.ping_outstanding.swap(true, Ordering::Relaxed) {
                s.send_control(frame::build(Opcode::Ping, b"tickcast"));
            }
        }
    }
}
