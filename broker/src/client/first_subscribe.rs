//! A one-shot signal, "a client has subscribed": fired by a session the
//! first time one of its subscribes succeeds, awaited by a replay started
//! with `--replay-start on-subscribe` (`feed/replay.rs`).
//!
//! It lives beside the sessions, not in the hub, so the per-tick path never
//! sees it: a subscribe checks one flag (a read lock on a `watch` value,
//! uncontended once set) and only the very first one takes the write lock.

use tokio::sync::watch;

/// Whether any subscribe has succeeded yet.
#[derive(Debug)]
pub struct FirstSubscribe {
    fired: watch::Sender<bool>,
}

impl Default for FirstSubscribe {
    fn default() -> Self {
        Self {
            fired: watch::Sender::new(false),
        }
    }
}

impl FirstSubscribe {
    /// Records that a subscribe succeeded; wakes the waiters the first time.
    pub fn fire(&self) {
        if !*self.fired.borrow() {
            self.fired
                .send_if_modified(|fired| !std::mem::replace(fired, true));
        }
    }

    /// Whether [`fire`](Self::fire) has been called.
    pub fn has_fired(&self) -> bool {
        *self.fired.borrow()
    }

    /// Returns once a subscribe has succeeded (at once if one already has).
    pub async fn wait(&self) {
        let mut seen = self.fired.subscribe();
        // The sender is `self`, alive for the whole wait: this cannot fail.
        let _ = seen.wait_for(|fired| *fired).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn waiters_wake_on_the_first_fire_and_later_waits_return_at_once() {
        let signal = Arc::new(FirstSubscribe::default());
        let waiter = tokio::spawn({
            let signal = signal.clone();
            async move { signal.wait().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "woke before any subscribe");
        signal.fire();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter woke")
            .unwrap();
        signal.fire();
        assert!(signal.has_fired());
        tokio::time::timeout(Duration::from_secs(5), signal.wait())
            .await
            .expect("a wait after the fire returns at once");
    }
}
