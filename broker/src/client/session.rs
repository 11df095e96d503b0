//! One WebSocket client from upgrade to close: its reader loop and its
//! control messages.
//!
//! Each connection runs one task, this one. It owns the socket's read half,
//! reads client frames (`reader.rs`) and answers them: subscribe,
//! unsubscribe, ping, close. Every answer is charged to the connection's
//! reply budget (`fanout/replies.rs`); a client that leaves too many
//! unread is closed with 1008 and read no further. It acts on the fan-out only through its
//! [`Member`] handle; its writes are made by its writer shard, which took
//! the write half when the connection joined. When the client goes, the
//! session drops its subscriptions, lets the writer finish the close
//! handshake (within a grace period), and drops the membership.
//!
//! With authentication the session owns its [`Authorized`] state: the
//! token's grant and its user's connection count. Its entitlements go with
//! every subscribe; its `exp` is a deadline in the same `select!` as the
//! reads: at it, the client gets `token_expired` and a 4001 close, unless an
//! `auth` request brought a fresh token (same `sub`) before, which moves the
//! deadline and, if its `syms` differ, re-resolves the subscription
//! (`Member::regrant`).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tickcast_protocol::control::{ErrorCode, RequestError};
use tickcast_protocol::{ClientRequest, ServerMessage, WILDCARD};
use tokio::time::Instant;
use tracing::debug;

use crate::auth::entitlements::Entitlements;
use crate::auth::users::{Hold, Users};
use crate::auth::{Grant, Verifier};
use crate::client::first_subscribe::FirstSubscribe;
use crate::client::reader::{close_reply_code, FrameReader, Message, ReadError};
use crate::config::Limits;
use crate::fanout::frame;
use crate::fanout::interest::{Interest, PREPARE_WITHIN};
use crate::fanout::stream::Stream;
use crate::fanout::{Fanout, Member};
use crate::observe::metrics::Metrics;

/// What every session needs: the fan-out to join, the counters, the limits.
pub struct SessionEnv {
    /// The fan-out.
    pub fanout: Fanout,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Per-connection limits.
    pub limits: Limits,
    /// Token verification, when the broker requires tokens.
    pub auth: Option<Arc<Verifier>>,
    /// Connections per user (`max_conns`).
    pub users: Arc<Users>,
    /// Fired by the first subscribe that succeeds (a replay may wait for it).
    pub first_subscribe: Arc<FirstSubscribe>,
    /// What the feed must see of a subscribe first (an edge taking only
    /// what its clients want), when it must.
    pub interest: Option<Arc<dyn Interest>>,
}

/// The close code for an expired token (4000-4999: for applications).
pub const TOKEN_EXPIRED_CLOSE: u16 = 4001;

/// A connection's verified token and its place in its user's count.
#[derive(Debug)]
pub struct Authorized {
    /// What the token grants.
    pub grant: Grant,
    /// The user's connection count, released when the session ends.
    pub hold: Hold,
}

/// When a token that expires at `exp` (Unix seconds) stops being valid,
/// as a tokio deadline (now if it already has).
fn deadline(exp: u64) -> Instant {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let left = (exp as f64 - now).max(0.0);
    Instant::now() + Duration::from_secs_f64(left)
}

/// A session's own state besides its socket.
struct State {
    rate: RateLimit,
    /// What it may receive: its token's `syms`, or everything.
    access: Arc<Entitlements>,
    auth: Option<(Authorized, Instant)>,
}

/// A token bucket for control messages: `burst` at once, `rate` a second.
struct RateLimit {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl RateLimit {
    fn new(rate: u32, burst: u32) -> Self {
        Self {
            tokens: f64::from(burst),
            rate: f64::from(rate),
            burst: f64::from(burst),
            last: Instant::now(),
        }
    }

    fn allow(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.saturating_duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Serves one upgraded connection until it closes. `leftover` holds bytes
/// the HTTP layer read past the upgrade request; `topics` come from the
/// `?topics=` query and are subscribed before anything is read.
pub async fn run(
    stream: Stream,
    leftover: Bytes,
    env: Arc<SessionEnv>,
    topics: Vec<String>,
    authorized: Option<Authorized>,
) {
    let Ok(peer) = stream.peer_addr() else { return };
    let limits = &env.limits;
    let (mut rd, wr) = stream.split();
    let user = authorized.as_ref().map(|a| a.hold.stats().clone());
    let member = env.fanout.join_as(peer, wr, user);
    let conn = member.connection().clone();
    env.metrics.connections.add(1);
    env.metrics.connections_total.add(1);
    debug!(id = conn.id, %peer, "connected");
    let mut reader = FrameReader::new(limits.max_control_bytes, &leftover);
    drop(leftover);
    let mut st = State {
        rate: RateLimit::new(limits.control_rate, limits.control_burst),
        access: authorized
            .as_ref()
            .map_or_else(|| Arc::new(Entitlements::All), |a| a.grant.syms.clone()),
        auth: authorized.map(|a| {
            let at = deadline(a.grant.expires);
            (a, at)
        }),
    };

    if !topics.is_empty() {
        let request = ClientRequest::subscribe(topics);
        prepare(&env, &st, &request).await;
        apply(&env, &member, &mut st, request);
    }
    loop {
        let expiry = st.auth.as_ref().map(|(_, at)| *at);
        let msg = tokio::select! {
            msg = reader.next_message(&mut rd) => msg,
            _ = conn.cancelled() => break,
            _ = async {
                match expiry {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                env.metrics.tokens_expired.add(1);
                debug!(id = conn.id, %peer, "token expired");
                let expired = RequestError::new(
                    ErrorCode::TokenExpired,
                    "the token expired; send {\"op\":\"auth\",\"token\":…} before it does",
                );
                reply_error(&env, &member, &expired);
                member.close(TOKEN_EXPIRED_CLOSE, "token expired", false);
                break;
            }
        };
        conn.heard_from();
        match msg {
            Ok(Message::Text(body)) => {
                if let Some(request) =
                    admit(&env, &member, &mut st, ClientRequest::from_json(&body))
                {
                    prepare(&env, &st, &request).await;
                    apply(&env, &member, &mut st, request);
                }
            }
            Ok(Message::Binary(body)) => {
                if let Some(request) =
                    admit(&env, &member, &mut st, ClientRequest::from_msgpack(&body))
                {
                    prepare(&env, &st, &request).await;
                    apply(&env, &member, &mut st, request);
                }
            }
            Ok(Message::Ping(payload)) => member.reply(frame::pong(&payload)),
            Ok(Message::Pong) => {}
            Ok(Message::Close(code)) => {
                member.close(close_reply_code(code), "", true);
                break;
            }
            Err(e) => {
                if let Some(code) = e.close_code() {
                    env.metrics.protocol_errors.add(1);
                    debug!(id = conn.id, %peer, error = %e, "closing on protocol error");
                    member.close(code, &e.to_string(), true);
                } else if !matches!(e, ReadError::Eof) {
                    debug!(id = conn.id, %peer, error = %e, "read failed");
                }
                if matches!(e, ReadError::Eof | ReadError::Io(_)) {
                    conn.cancel();
                }
                break;
            }
        }
        if member.overflowed() {
            // Closed for its unread replies (1008): read no more of it.
            debug!(id = conn.id, %peer, "closing: too many unread replies");
            break;
        }
    }
    // No more ticks for this connection from here on.
    member.leave_subscriptions();
    // Let the writer finish sending the close frame, within the grace period.
    tokio::select! {
        _ = conn.wait_close_sent() => {}
        _ = conn.cancelled() => {}
        _ = tokio::time::sleep(env.limits.close_grace) => conn.cancel(),
    }
    drop(member);
    env.metrics.connections.sub(1);
    debug!(id = conn.id, %peer, "disconnected");
}

/// A request within the control rate and valid, or its error reply.
fn admit(
    env: &SessionEnv,
    member: &Member,
    st: &mut State,
    request: Result<ClientRequest, RequestError>,
) -> Option<ClientRequest> {
    if !st.rate.allow() {
        let limit = env.limits.control_rate;
        let refusal = RequestError::new(
            ErrorCode::RateLimited,
            format!("too many control messages: at most {limit} a second"),
        );
        reply_error(env, member, &refusal);
        return None;
    }
    match request {
        Ok(request) => Some(request),
        Err(e) => {
            reply_error(env, member, &e);
            None
        }
    }
}

/// Lets the feed see a subscribe's topics before it is answered, when it
/// must (an edge taking only what its clients want), for at most
/// [`PREPARE_WITHIN`]. (Not inside [`apply`]: a `&Member` held across an
/// await would need `Member` to be `Sync`.)
///
/// Only what the subscribe may get: the topics the connection is entitled
/// to, and nothing from a request over the per-connection topic limit
/// (which `apply` refuses), so a client cannot make the edge take symbols
/// it will not be sent.
async fn prepare(env: &SessionEnv, st: &State, request: &ClientRequest) {
    let (Some(interest), ClientRequest::Subscribe { topics, .. }) = (&env.interest, request) else {
        return;
    };
    if topics.len() > env.limits.max_topics {
        return;
    }
    let allowed: Vec<String> = topics
        .iter()
        .filter(|t| t.as_str() == WILDCARD || st.access.allows(t))
        .cloned()
        .collect();
    if !allowed.is_empty() {
        let _ = tokio::time::timeout(PREPARE_WITHIN, interest.prepare(allowed)).await;
    }
}

/// Carries out a valid request; the hub sends the ack.
fn apply(env: &SessionEnv, member: &Member, st: &mut State, request: ClientRequest) {
    match request {
        ClientRequest::Subscribe { topics, options } => {
            match member.subscribe(&topics, &options, env.limits.max_topics, &st.access) {
                Ok(()) => env.first_subscribe.fire(),
                Err(e) => {
                    if e.code == ErrorCode::NotEntitled {
                        env.metrics.not_entitled.add(1);
                    }
                    reply_error(env, member, &e);
                }
            }
        }
        ClientRequest::Unsubscribe { topics } => member.unsubscribe(&topics),
        ClientRequest::Auth { token } => {
            if let Err(e) = renew(env, member, st, &token) {
                reply_error(env, member, &e);
            }
        }
    }
}

/// An `auth` request: a fresh token for the same user moves the expiry and
/// brings its entitlements.
fn renew(
    env: &SessionEnv,
    member: &Member,
    st: &mut State,
    token: &str,
) -> Result<(), RequestError> {
    let (Some(verifier), Some((current, at))) = (&env.auth, &mut st.auth) else {
        return Err(RequestError::new(
            ErrorCode::BadRequest,
            "this broker does not use tokens",
        ));
    };
    let bad = |why: String| {
        env.metrics.auth_refused.add(1);
        RequestError::new(ErrorCode::BadToken, why)
    };
    let grant = verifier.verify(token).map_err(|e| bad(e.to_string()))?;
    if grant.user != current.grant.user {
        return Err(bad("the token is for another user".to_owned()));
    }
    *at = deadline(grant.expires);
    if *grant.syms != *st.access {
        member.regrant(&st.access, &grant.syms);
        st.access = grant.syms.clone();
    }
    let reply = ServerMessage::Authenticated {
        sub: grant.user.to_string(),
        exp: grant.expires,
    };
    current.grant = grant;
    member.reply(frame::binary(&reply.to_msgpack()));
    Ok(())
}

fn reply_error(env: &SessionEnv, member: &Member, e: &RequestError) {
    env.metrics.request_errors.add(1);
    member.reply(frame::binary(&e.to_message().to_msgpack()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn the_rate_limit_allows_a_burst_then_refills_at_its_rate() {
        let mut rate = RateLimit::new(2, 4);
        assert_eq!((0..6).filter(|_| rate.allow()).count(), 4, "the burst");
        tokio::time::advance(Duration::from_millis(499)).await;
        assert!(!rate.allow(), "not a whole token back yet");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(rate.allow(), "one token after 500 ms at 2 a second");
        assert!(!rate.allow());
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(
            (0..6).filter(|_| rate.allow()).count(),
            4,
            "capped at the burst"
        );
    }
}
