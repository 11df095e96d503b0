//! Connections per user, for the `max_conns` claim (a user past its limit
//! is refused with HTTP 429 before the upgrade), and the per-user figures
//! on `/metrics`.
//!
//! Per user: its connections now, and the frames written to them
//! ([`UserStats`], bumped by the writer shards once per write, not per
//! frame: one relaxed atomic add beside the send it counts). `/metrics`
//! shows the [`TOP_USERS`] users with the most deliveries, and the rest
//! summed as `user="_other"`, so the label set stays bounded however many
//! users connect. A user's entry (and its delivery count) lives while it
//! has a connection: its counter starts again from zero when it comes back,
//! which Prometheus reads as a counter reset.
//!
//! Locking: one `parking_lot` mutex over the map, held for one update when
//! a connection is admitted, one when it closes and one copy per scrape,
//! never across an await. A user with no connection has no entry, so the
//! map is bounded by the connections open.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// Users shown by name on `/metrics`; the rest are summed.
pub const TOP_USERS: usize = 20;

/// One user's connections now.
#[derive(Debug)]
struct Held {
    count: u32,
    stats: Arc<UserStats>,
}

/// The connections each user holds now.
#[derive(Debug, Default)]
pub struct Users {
    held: Mutex<HashMap<Arc<str>, Held>>,
}

/// What the writers count for one user.
#[derive(Debug, Default)]
pub struct UserStats {
    delivered: AtomicU64,
}

impl UserStats {
    /// Counts `frames` written to one of the user's connections.
    #[inline]
    pub fn add_delivered(&self, frames: u64) {
        self.delivered.fetch_add(frames, Ordering::Relaxed);
    }
}

/// A user's connection, counted until dropped.
#[derive(Debug)]
pub struct Hold {
    users: Arc<Users>,
    user: Arc<str>,
    stats: Arc<UserStats>,
}

impl Hold {
    /// The user's figures, for its connection to count into.
    pub fn stats(&self) -> &Arc<UserStats> {
        &self.stats
    }
}

/// The user already holds `max_conns` connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this user already holds its {0} connections (max_conns)")]
pub struct TooMany(pub u32);

impl Users {
    /// Counts one more connection of `user`, unless it holds `max` already.
    pub fn admit(self: &Arc<Self>, user: &Arc<str>, max: Option<u32>) -> Result<Hold, TooMany> {
        let mut held = self.held.lock();
        let entry = held.entry(user.clone()).or_insert_with(|| Held {
            count: 0,
            stats: Arc::default(),
        });
        if let Some(max) = max {
            if entry.count >= max {
                if entry.count == 0 {
                    held.remove(user);
                }
                return Err(TooMany(max));
            }
        }
        entry.count += 1;
        Ok(Hold {
            users: self.clone(),
            user: user.clone(),
            stats: entry.stats.clone(),
        })
    }

    /// Connections `user` holds now.
    pub fn connections_of(&self, user: &str) -> u32 {
        self.held.lock().get(user).map_or(0, |h| h.count)
    }

    /// The per-user families for `/metrics` (Prometheus text): the
    /// [`TOP_USERS`] with the most deliveries by name, the rest summed.
    pub fn prometheus(&self) -> String {
        let mut rows: Vec<(Arc<str>, u32, u64)> = self
            .held
            .lock()
            .iter()
            .map(|(user, h)| {
                (
                    user.clone(),
                    h.count,
                    h.stats.delivered.load(Ordering::Relaxed),
                )
            })
            .collect();
        rows.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        let mut shown: Vec<(String, u32, u64)> = rows
            .iter()
            .take(TOP_USERS)
            .map(|(u, c, d)| (escape(u), *c, *d))
            .collect();
        if rows.len() > TOP_USERS {
            let rest = &rows[TOP_USERS..];
            shown.push((
                "_other".to_owned(),
                rest.iter().map(|r| r.1).sum(),
                rest.iter().map(|r| r.2).sum(),
            ));
        }
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP tickcast_user_connections WebSocket connections per user \
             (the {TOP_USERS} with the most deliveries; the rest as user=\"_other\")."
        );
        let _ = writeln!(out, "# TYPE tickcast_user_connections gauge");
        for (user, count, _) in &shown {
            let _ = writeln!(out, "tickcast_user_connections{{user=\"{user}\"}} {count}");
        }
        let _ = writeln!(
            out,
            "# HELP tickcast_user_deliveries_total Frames written to each user's connections \
             while it has one open (same users)."
        );
        let _ = writeln!(out, "# TYPE tickcast_user_deliveries_total counter");
        for (user, _, delivered) in &shown {
            let _ = writeln!(
                out,
                "tickcast_user_deliveries_total{{user=\"{user}\"}} {delivered}"
            );
        }
        out
    }
}

/// A label value in the Prometheus text format.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut held = self.users.held.lock();
        if let Some(h) = held.get_mut(&self.user) {
            h.count -= 1;
            if h.count == 0 {
                held.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_held_to_its_limit_until_a_connection_goes() {
        let users = Arc::new(Users::default());
        let alice: Arc<str> = Arc::from("alice");
        let a = users.admit(&alice, Some(2)).unwrap();
        let _b = users.admit(&alice, Some(2)).unwrap();
        assert_eq!(users.admit(&alice, Some(2)).unwrap_err(), TooMany(2));
        assert!(users.admit(&Arc::from("bob"), Some(2)).is_ok());
        drop(a);
        assert!(users.admit(&alice, Some(2)).is_ok());
        assert_eq!(users.connections_of("bob"), 0, "no entry once gone");
        assert_eq!(users.admit(&alice, Some(0)).unwrap_err(), TooMany(0));
    }

    #[test]
    fn metrics_name_the_top_users_and_sum_the_rest() {
        let users = Arc::new(Users::default());
        let holds: Vec<Hold> = (0..TOP_USERS + 5)
            .map(|i| {
                let hold = users.admit(&Arc::from(format!("u{i:02}")), None).unwrap();
                hold.stats().add_delivered(i as u64 * 10);
                hold
            })
            .collect();
        let _quoted = users.admit(&Arc::from("a\"b"), None).unwrap();
        let text = users.prometheus();
        let lines = |family: &str| {
            text.lines()
                .filter(|l| l.starts_with(&format!("{family}{{")))
                .count()
        };
        assert_eq!(lines("tickcast_user_connections"), TOP_USERS + 1);
        assert_eq!(lines("tickcast_user_deliveries_total"), TOP_USERS + 1);
        assert!(
            text.contains("tickcast_user_deliveries_total{user=\"u24\"} 240"),
            "{text}"
        );
        // u00..u04 and a"b (fewest deliveries) are summed.
        assert!(
            text.contains("tickcast_user_connections{user=\"_other\"} 6"),
            "{text}"
        );
        assert!(
            text.contains("tickcast_user_deliveries_total{user=\"_other\"} 100"),
            "{text}"
        );
        drop(holds);
        assert!(users.prometheus().contains("{user=\"a\\\"b\"} 1"));
    }
}
