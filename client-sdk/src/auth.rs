//! The client's token (a JWT): sent as `Authorization: Bearer` on every
//! (re)connection, and renewed before it expires through the program's
//! callback ([`crate::ClientBuilder::token_renewal`]), which sends the new
//! one as `{"op":"auth","token":…}` on the live connection.
//!
//! The renewal runs in its own task because the session's frame reads are
//! not cancel-safe (a timer cannot interrupt one). It reads the token's
//! `exp` without verifying it (the broker verifies; the client only needs
//! the time) and asks for a new token when a fifth of the time left remains,
//! at least 1 s and at most 60 s before expiry.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use tickcast_protocol::ClientRequest;
use tracing::debug;

use crate::subscriptions::{request_frame, Subscriptions};

/// The program's way to get a fresh token: `None` when it has none (the
/// connection then ends at expiry with 4001, and reconnections are refused
/// until the program gives the client a valid token again).
pub type Renewal =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Option<String>> + Send>> + Send + Sync>;

/// The current token (one lock, held for a copy or a swap).
#[derive(Debug)]
pub(crate) struct Token(Mutex<String>);

impl Token {
    pub fn new(token: String) -> Self {
        Self(Mutex::new(token))
    }

    pub fn current(&self) -> String {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, token: String) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = token;
    }
}

/// The `exp` claim of a JWT (seconds since the Unix epoch), unverified.
pub(crate) fn expiry(token: &str) -> Option<u64> {
    let payload = token.split('.').nth(1)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&json).ok()?;
    claims.get("exp")?.as_u64()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// How long before `exp` to renew, given the time `left` (see the module
/// docs).
fn margin(left: f64) -> f64 {
    (left / 5.0).clamp(1.0, 60.0)
}

/// Renews `token` before each expiry until the callback has none, or gives
/// one that does not expire later.
pub(crate) async fn renew(token: Arc<Token>, renewal: Renewal, subs: Arc<Subscriptions>) {
    loop {
        let Some(exp) = expiry(&token.current()) else {
            debug!("tickcast token has no readable exp; not renewing it");
            return;
        };
        let left = exp as f64 - unix_now();
        tokio::time::sleep(Duration::from_secs_f64((left - margin(left)).max(0.0))).await;
        let Some(fresh) = renewal().await else {
            debug!("no fresh tickcast token; the connection ends at expiry");
            return;
        };
        if expiry(&fresh).is_none_or(|e| e <= exp) {
            debug!("the renewed tickcast token does not expire later; not renewing again");
            return;
        }
        token.set(fresh.clone());
        if let Some(writer) = subs.writer() {
            // A full queue or a gone connection: the next connection sends
            // the new token in its upgrade anyway.
            let _ = writer.try_send(request_frame(&ClientRequest::Auth { token: fresh }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_read_from_the_payload_and_the_margin_is_bounded() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"exp":1234}"#);
        assert_eq!(expiry(&format!("h.{payload}.s")), Some(1234));
        assert_eq!(expiry("garbage"), None);
        assert_eq!(margin(3.0), 1.0);
        assert_eq!(margin(100.0), 20.0);
        assert_eq!(margin(3600.0), 60.0);
    }
}
