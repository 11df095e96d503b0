//! The one error type of the SDK.
//!
//! Everything that can go wrong, from a bad URL to a malformed frame, is a
//! [`ClientError`] variant, so a program can match on the cause instead of
//! parsing messages. Errors that happen after the connection is up arrive as
//! [`crate::Event::Error`] in the event stream; only the calls on
//! [`crate::Client`] return them directly.
//!
//! Messages already include their cause (`cannot connect to …: Connection
//! refused`), so printing an error with `{}` says everything; the cause is
//! also available through `source()` for programs that walk the chain.
//! Durations print as `Duration`'s `Debug` writes them (`5s`, `1.5s`,
//! `250ms`): readable, and no formatting crate in every embedding program.

use std::time::Duration;

use tickcast_protocol::control::RequestError;
use tickcast_protocol::{DecodeError, ErrorCode};

/// A boxed error from a lower layer (the WebSocket or HTTP library), kept as
/// a source without tying the public API to those crates' types.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL is not one the client can connect to.
    #[error("invalid URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The TCP connection could not be made.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// `host:port` that was tried.
        addr: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Connecting (TCP plus WebSocket handshake) took longer than allowed.
    #[error("connecting to {addr} timed out after {timeout:?}")]
    ConnectTimeout {
        /// `host:port` that was tried.
        addr: String,
        /// The configured limit.
        timeout: Duration,
    },
    /// TLS could not be set up (a CA file, the system's roots, the
    /// handshake: an untrusted or mismatched certificate).
    #[error("TLS: {0}")]
    Tls(String),
    /// The server answered, but not with a WebSocket upgrade.
    #[error("WebSocket handshake with {addr} failed: {source}")]
    Handshake {
        /// `host:port` of the server.
        addr: String,
        /// What the handshake reported.
        source: BoxError,
    },
    /// The established connection failed (reset, EOF, invalid framing).
    #[error("connection lost: {0}")]
    ConnectionLost(#[source] BoxError),
    /// The server closed the WebSocket (for example 1001 on broker shutdown,
    /// 1008 for a slow consumer).
    #[error("server closed the connection (code {code}{})", if reason.is_empty() { String::new() } else { format!(", {reason}") })]
    ServerClosed {
        /// The close code, or 1005 when the close frame carried none.
        code: u16,
        /// The close reason, possibly empty.
        reason: String,
    },
    /// Nothing, not even a ping, arrived for longer than the idle timeout.
    #[error("no data from the server for {0:?}")]
    Idle(Duration),
    /// A binary frame that is neither a valid tick nor a control message.
    #[error("malformed frame from the server: {0}")]
    Decode(#[from] DecodeError),
    /// A frame the protocol does not allow (text data, fragmented messages).
    #[error("unexpected frame from the server: {0}")]
    Protocol(&'static str),
    /// The broker refused a subscribe or unsubscribe request.
    #[error("the broker refused the request ({}): {message}", wire_name(*.code))]
    Refused {
        /// The broker's error code.
        code: ErrorCode,
        /// The broker's explanation.
        message: String,
    },
    /// A topic was rejected before sending: the broker would refuse it too.
    #[error(transparent)]
    InvalidTopic(#[from] RequestError),
    /// The client's background task has ended (closed, or gave up).
    #[error("the client is closed")]
    Closed,
    /// Reconnecting failed as many times as the policy allows.
    #[error("gave up after {attempts} reconnection attempts: {cause}")]
    GaveUp {
        /// How many attempts were made.
        attempts: u32,
        /// Why the last one failed (or why the connection was lost).
        cause: Box<ClientError>,
    },
}

/// The error code as it appears on the wire (`too_many_topics`), which is
/// what the broker's documentation and logs use.
fn wire_name(code: ErrorCode) -> String {
    match serde_json::to_value(code) {
        Ok(serde_json::Value::String(name)) => name,
        _ => format!("{code:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_wire_code() {
        let e = ClientError::Refused {
            code: ErrorCode::TooManyTopics,
            message: "limit is 2".into(),
        };
        assert_eq!(
            e.to_string(),
            "the broker refused the request (too_many_topics): limit is 2"
        );
    }

    #[test]
    fn durations_read_as_seconds_or_milliseconds() {
        let timeout = ClientError::ConnectTimeout {
            addr: "127.0.0.1:8080".into(),
            timeout: Duration::from_secs(5),
        };
        assert_eq!(
            timeout.to_string(),
            "connecting to 127.0.0.1:8080 timed out after 5s"
        );
        let idle = ClientError::Idle(Duration::from_millis(1_500));
        assert_eq!(idle.to_string(), "no data from the server for 1.5s");
    }
}
