//! Connections per user, for the `max_conns` claim: a user past its limit
//! is refused with HTTP 429 before the upgrade.
//!
//! Locking: one `parking_lot` mutex over the map, held for one update when
//! a connection is admitted and one when it closes, never across an await.
//! A user with no connection has no entry, so the map is bounded by the
//! connections open.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

/// The connections each user holds now.
#[derive(Debug, Default)]
pub struct Users {
    held: Mutex<HashMap<Arc<str>, u32>>,
}

/// A user's connection, counted until dropped.
#[derive(Debug)]
pub struct Hold {
    users: Arc<Users>,
    user: Arc<str>,
}

/// The user already holds `max_conns` connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this user already holds its {0} connections (max_conns)")]
pub struct TooMany(pub u32);

impl Users {
    /// Counts one more connection of `user`, unless it holds `max` already.
    pub fn admit(self: &Arc<Self>, user: &Arc<str>, max: Option<u32>) -> Result<Hold, TooMany> {
        let mut held = self.held.lock();
        let count = held.entry(user.clone()).or_insert(0);
        if let Some(max) = max {
            if *count >= max {
                if *count == 0 {
                    held.remove(user);
                }
                return Err(TooMany(max));
            }
        }
        *count += 1;
        Ok(Hold {
            users: self.clone(),
            user: user.clone(),
        })
    }

    /// Connections `user` holds now.
    pub fn connections_of(&self, user: &str) -> u32 {
        self.held.lock().get(user).copied().unwrap_or(0)
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut held = self.users.held.lock();
        if let Some(count) = held.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
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
}
