//! Control messages on the WebSocket: what clients ask, what the broker answers.
//!
//! Client → broker: `{"op":"subscribe","topics":["AAPL","MSFT"]}` or
//! `{"op":"unsubscribe","topics":[…]}`, as a text frame holding JSON or a
//! binary frame holding MessagePack with the same schema. A topic is a symbol
//! or `"*"` for every symbol. On a broker with authentication,
//! `{"op":"auth","token":"…"}` renews the connection's token (its expiry and
//! entitlements) before it expires.
//!
//! Broker → client, always a binary frame with one MessagePack map:
//! ticks (see [`crate::tick`]), `{"type":"subscribed","topics":[…]}` after every
//! subscribe/unsubscribe with the full current list, and
//! `{"type":"error","code":…,"message":…}` for a bad request, and
//! `{"type":"authenticated","sub":…,"exp":…}` after an accepted `auth`.
//!
//! These are rare next to ticks, so they go through serde (`serde_json`,
//! `rmp-serde`) rather than the hand-written tick codec.

use serde::{Deserialize, Serialize};

use crate::tick::{DecodeError, TickRef, MAX_SYMBOL_LEN};

/// A request from a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum ClientRequest {
    /// Add topics to the subscription.
    Subscribe {
        /// Symbols, or `"*"`.
        topics: Vec<String>,
    },
    /// Remove topics from the subscription.
    Unsubscribe {
        /// Symbols, or `"*"`.
        topics: Vec<String>,
    },
    /// Renew the connection's token (a JWT): its expiry and entitlements.
    Auth {
        /// The new token.
        token: String,
    },
}

/// Machine-readable reason in an `error` reply. Serialised in snake case,
/// e.g. `"too_many_topics"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not valid JSON/MessagePack, or not an object with the expected fields.
    BadRequest,
    /// `op` is not one the broker knows.
    UnknownOp,
    /// A topic is empty, too long, or has characters a symbol cannot have.
    InvalidTopic,
    /// The subscription would exceed the per-connection topic limit.
    TooManyTopics,
    /// The client sends control messages faster than allowed.
    RateLimited,
    /// The symbol is not one the broker can track (its symbol table is full).
    UnknownSymbol,
    /// A topic is outside the connection's entitlements (its token's `syms`).
    NotEntitled,
    /// The connection's token expired (the broker closes it with 4001).
    TokenExpired,
    /// An `auth` token was refused (bad signature, expired, another user…);
    /// the connection keeps its current token.
    BadToken,
}

/// A message from the broker that is not a tick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerMessage {
    /// Acknowledges a subscribe/unsubscribe with the full current topic list.
    Subscribed {
        /// Every topic the connection is now subscribed to, sorted.
        topics: Vec<String>,
    },
    /// An `auth` renewal was accepted.
    Authenticated {
        /// The token's user.
        sub: String,
        /// When the new token expires, seconds since the Unix epoch.
        exp: u64,
    },
    /// A request was refused; the connection stays open.
    Error {
        /// What kind of error.
        code: ErrorCode,
        /// A human-readable explanation.
        message: String,
    },
}

/// Why a control message was refused, with the code to send back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    /// The error code for the reply.
    pub code: ErrorCode,
    /// The explanation for the reply.
    pub message: String,
}

/// The longest `message` of an error reply, in bytes.
pub const MAX_ERROR_MESSAGE: usize = 256;

impl RequestError {
    /// A refusal with `code` and an explanation, cut to
    /// [`MAX_ERROR_MESSAGE`] bytes: parser errors quote what they could not
    /// read (a string, a number written out in full), and the reply must
    /// not echo a large request back.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > MAX_ERROR_MESSAGE {
            const MORE: &str = "…";
            let mut end = MAX_ERROR_MESSAGE - MORE.len();
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push_str(MORE);
        }
        Self { code, message }
    }

    /// The `error` reply for this refusal.
    pub fn to_message(&self) -> ServerMessage {
        ServerMessage::Error {
            code: self.code,
            message: self.message.clone(),
        }
    }
}

/// The loose shape every request is first read into, so that an unknown `op`
/// and a malformed body get different error codes.
#[derive(Deserialize)]
struct RawRequest {
    op: String,
    #[serde(default, deserialize_with = "topics")]
    topics: Option<Vec<String>>,
    #[serde(default)]
    token: Option<String>,
}

/// The longest token an `auth` request may carry, in bytes (the control
/// message limit, 4 KiB by default, bounds it anyway).
pub const MAX_TOKEN_LEN: usize = 4096;

/// The most topics room is made for before they have been read.
const TOPICS_PREALLOC: usize = 64;

/// Reads the `topics` array without trusting its announced length: serde's
/// `Vec` reserves up to 1 MiB from a MessagePack array header alone, so a
/// 26-byte request claiming 2³² topics made the broker allocate 1 MiB
/// (found by the `control_message` fuzz target). Room for at most
/// [`TOPICS_PREALLOC`] topics is made up front; the rest grows as topics
/// actually arrive.
fn topics<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    struct Topics;
    impl<'de> serde::de::Visitor<'de> for Topics {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array of topics")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let hint = seq.size_hint().unwrap_or(0).min(TOPICS_PREALLOC);
            let mut topics = Vec::with_capacity(hint);
            while let Some(topic) = seq.next_element()? {
                topics.push(topic);
            }
            Ok(topics)
        }
    }
    d.deserialize_seq(Topics).map(Some)
}

impl ClientRequest {
    /// Parses a request from a text frame (JSON).
    pub fn from_json(text: &[u8]) -> Result<Self, RequestError> {
        let raw: RawRequest = serde_json::from_slice(text).map_err(|e| {
            RequestError::new(ErrorCode::BadRequest, format!("invalid JSON request: {e}"))
        })?;
        Self::from_raw(raw)
    }

    /// Parses a request from a binary frame (MessagePack).
    pub fn from_msgpack(bytes: &[u8]) -> Result<Self, RequestError> {
        let raw: RawRequest = rmp_serde::from_slice(bytes).map_err(|e| {
            RequestError::new(
                ErrorCode::BadRequest,
                format!("invalid MessagePack request: {e}"),
            )
        })?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: RawRequest) -> Result<Self, RequestError> {
        let make = match raw.op.as_str() {
            "subscribe" => |topics| ClientRequest::Subscribe { topics },
            "unsubscribe" => |topics| ClientRequest::Unsubscribe { topics },
            "auth" => {
                return match raw.token {
                    Some(token) if !token.is_empty() && token.len() <= MAX_TOKEN_LEN => {
                        Ok(ClientRequest::Auth { token })
                    }
                    _ => Err(RequestError::new(
                        ErrorCode::BadRequest,
                        format!("`auth` needs a `token` string of 1-{MAX_TOKEN_LEN} bytes"),
                    )),
                }
            }
            other => {
                return Err(RequestError::new(
                    ErrorCode::UnknownOp,
                    format!(
                        "unknown op `{}`; expected `subscribe`, `unsubscribe` or `auth`",
                        truncate(other)
                    ),
                ))
            }
        };
        let topics = raw
            .topics
            .ok_or_else(|| RequestError::new(ErrorCode::BadRequest, "missing `topics` array"))?;
        for topic in &topics {
            validate_topic(topic)?;
        }
        Ok(make(topics))
    }

    /// The request as JSON text (what a browser would send).
    pub fn to_json(&self) -> String {
        // A derived Serialize of strings into JSON cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The request as MessagePack bytes.
    pub fn to_msgpack(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }
}

/// Checks that a topic is `*` or could be a symbol: 1 to 32 bytes of ASCII
/// letters, digits, `.`, `-`, `_`, `/`, `:` or `^`.
pub fn validate_topic(topic: &str) -> Result<(), RequestError> {
    let ok = topic == crate::WILDCARD
        || (!topic.is_empty()
            && topic.len() <= MAX_SYMBOL_LEN
            && topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_/:^".contains(&b)));
    if ok {
        Ok(())
    } else {
        Err(RequestError::new(
            ErrorCode::InvalidTopic,
            format!(
                "invalid topic `{}`: use `*` or a symbol of 1-{MAX_SYMBOL_LEN} letters, digits or .-_/:^",
                truncate(topic)
            ),
        ))
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

impl ServerMessage {
    /// Encodes the message as MessagePack (a map with string keys).
    pub fn to_msgpack(&self) -> Vec<u8> {
        // Serialising these plain structs into a Vec cannot fail.
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }
}

/// The first record a publisher sends to a broker that requires tokens, in
/// the ingest framing like the ticks after it: the MessagePack map
/// `{"type":"auth","token":"…"}` (a JSON object is accepted too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum PublisherRecord {
    /// The publisher's token (a JWT with a `pub` claim).
    Auth {
        /// The token.
        token: String,
    },
}

impl PublisherRecord {
    /// The record's payload (MessagePack).
    pub fn to_msgpack(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }

    /// Reads a record's payload: MessagePack, or JSON if it starts with `{`.
    pub fn parse(payload: &[u8]) -> Option<Self> {
        if payload.first() == Some(&b'{') {
            serde_json::from_slice(payload).ok()
        } else {
            rmp_serde::from_slice(payload).ok()
        }
    }
}

/// One decoded broker → client frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming<'a> {
    /// A market-data tick.
    Tick(TickRef<'a>),
    /// An acknowledgement or error.
    Control(ServerMessage),
}

/// Decodes a binary frame from the broker: a tick on the fast path, otherwise
/// a control message.
pub fn decode_server_frame(buf: &[u8]) -> Result<Incoming<'_>, DecodeError> {
    match TickRef::decode(buf) {
        Ok(tick) => Ok(Incoming::Tick(tick)),
        Err(DecodeError::NotATick(kind)) => rmp_serde::from_slice(buf)
            .map(Incoming::Control)
            .map_err(|_| DecodeError::NotATick(kind)),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_parses_from_json_and_msgpack() {
        let want = ClientRequest::Subscribe {
            topics: vec!["AAPL".into(), "*".into()],
        };
        assert_eq!(
            ClientRequest::from_json(br#"{"op":"subscribe","topics":["AAPL","*"]}"#),
            Ok(want.clone())
        );
        assert_eq!(
            ClientRequest::from_msgpack(&want.to_msgpack()),
            Ok(want.clone())
        );
        assert_eq!(
            ClientRequest::from_json(want.to_json().as_bytes()),
            Ok(want)
        );
    }

    #[test]
    fn auth_parses_and_needs_a_token() {
        let want = ClientRequest::Auth {
            token: "a.b.c".into(),
        };
        assert_eq!(
            ClientRequest::from_json(br#"{"op":"auth","token":"a.b.c"}"#),
            Ok(want.clone())
        );
        assert_eq!(ClientRequest::from_msgpack(&want.to_msgpack()), Ok(want));
        let code = |body: &[u8]| ClientRequest::from_json(body).map_err(|e| e.code);
        assert_eq!(code(br#"{"op":"auth"}"#), Err(ErrorCode::BadRequest));
        assert_eq!(
            code(br#"{"op":"auth","token":""}"#),
            Err(ErrorCode::BadRequest)
        );
        assert_eq!(
            code(br#"{"op":"auth","token":7}"#),
            Err(ErrorCode::BadRequest)
        );
        let msg = ServerMessage::Authenticated {
            sub: "alice".into(),
            exp: 9,
        };
        assert_eq!(
            decode_server_frame(&msg.to_msgpack()),
            Ok(Incoming::Control(msg))
        );
        let json = serde_json::to_value(ServerMessage::Error {
            code: ErrorCode::NotEntitled,
            message: String::new(),
        })
        .unwrap();
        assert_eq!(json["code"], "not_entitled");
    }

    #[test]
    fn a_publisher_auth_record_reads_from_msgpack_and_json() {
        let rec = PublisherRecord::Auth {
            token: "t.t.t".into(),
        };
        assert_eq!(PublisherRecord::parse(&rec.to_msgpack()), Some(rec.clone()));
        assert_eq!(
            PublisherRecord::parse(br#"{"type":"auth","token":"t.t.t"}"#),
            Some(rec)
        );
        assert_eq!(PublisherRecord::parse(b"\x81\xa4type\xa4tick"), None);
    }

    #[test]
    fn extra_fields_are_ignored() {
        assert!(ClientRequest::from_json(br#"{"op":"unsubscribe","topics":[],"id":7}"#).is_ok());
    }

    #[test]
    fn each_bad_request_gets_its_code() {
        let code = |body: &[u8]| ClientRequest::from_json(body).map_err(|e| e.code);
        assert_eq!(code(b"{nope"), Err(ErrorCode::BadRequest));
        assert_eq!(code(br#"["subscribe"]"#), Err(ErrorCode::BadRequest));
        assert_eq!(code(br#"{"op":"subscribe"}"#), Err(ErrorCode::BadRequest));
        assert_eq!(
            code(br#"{"op":"subscribe","topics":"AAPL"}"#),
            Err(ErrorCode::BadRequest)
        );
        assert_eq!(
            code(br#"{"op":"subscribe","topics":[1]}"#),
            Err(ErrorCode::BadRequest)
        );
        assert_eq!(
            code(br#"{"op":"publish","topics":[]}"#),
            Err(ErrorCode::UnknownOp)
        );
        assert_eq!(
            code(br#"{"op":"subscribe","topics":[""]}"#),
            Err(ErrorCode::InvalidTopic)
        );
        assert_eq!(
            code(br#"{"op":"subscribe","topics":["A B"]}"#),
            Err(ErrorCode::InvalidTopic)
        );
        let long = format!(r#"{{"op":"subscribe","topics":["{}"]}}"#, "A".repeat(33));
        assert_eq!(code(long.as_bytes()), Err(ErrorCode::InvalidTopic));
        assert_eq!(
            ClientRequest::from_msgpack(&[0xc1]).map_err(|e| e.code),
            Err(ErrorCode::BadRequest)
        );
    }

    #[test]
    fn error_messages_are_short_whatever_the_request() {
        // Found by the control_message fuzz target: a 12-byte MessagePack
        // request with a float64 key got a 348-byte message (the float
        // written out in full), and a long string where the topics belong
        // was echoed whole.
        let float_key = b"\x82\xcb\x75\xa2\x6f\x70\x73\x7c\xa5\xc1\x75\x62";
        let long = format!(r#"{{"op":"subscribe","topics":"{}"}}"#, "é".repeat(2000));
        for e in [
            ClientRequest::from_msgpack(float_key).unwrap_err(),
            ClientRequest::from_json(long.as_bytes()).unwrap_err(),
        ] {
            assert_eq!(e.code, ErrorCode::BadRequest);
            assert!(e.message.len() <= MAX_ERROR_MESSAGE, "{}", e.message);
            assert!(e.message.ends_with('…'), "{}", e.message);
        }
        let short = RequestError::new(ErrorCode::BadRequest, "x".repeat(MAX_ERROR_MESSAGE));
        assert_eq!(short.message.len(), MAX_ERROR_MESSAGE);
    }

    #[test]
    fn an_announced_topic_count_reserves_no_more_than_the_cap() {
        // An array whose header claims a billion topics and holds two.
        struct Lying(std::vec::IntoIter<String>);
        impl Iterator for Lying {
            type Item = String;
            fn next(&mut self) -> Option<String> {
                self.0.next()
            }
            fn size_hint(&self) -> (usize, Option<usize>) {
                (1 << 30, Some(1 << 30))
            }
        }
        let two = Lying(vec!["A".to_string(), "B".to_string()].into_iter());
        let seq = serde::de::value::SeqDeserializer::<_, serde::de::value::Error>::new(two);
        let got = topics(seq).unwrap().unwrap();
        assert_eq!(got, ["A", "B"]);
        assert!(got.capacity() <= TOPICS_PREALLOC, "{}", got.capacity());
        // And through MessagePack: a 2³²-entry array header, then nothing.
        let claim = b"\x82\xa2op\xa9subscribe\xa6topics\xdd\xff\xff\xff\xff";
        assert_eq!(
            ClientRequest::from_msgpack(claim).map_err(|e| e.code),
            Err(ErrorCode::BadRequest)
        );
        // `null` topics is still a bad request.
        assert_eq!(
            ClientRequest::from_json(br#"{"op":"subscribe","topics":null}"#).map_err(|e| e.code),
            Err(ErrorCode::BadRequest)
        );
    }

    #[test]
    fn server_messages_round_trip_and_use_string_keys() {
        let msgs = [
            ServerMessage::Subscribed {
                topics: vec!["AAPL".into()],
            },
            ServerMessage::Error {
                code: ErrorCode::TooManyTopics,
                message: "limit is 2".into(),
            },
        ];
        for msg in msgs {
            let bytes = msg.to_msgpack();
            assert_eq!(
                decode_server_frame(&bytes),
                Ok(Incoming::Control(msg.clone()))
            );
            let generic = rmpv::decode::read_value(&mut &bytes[..]).unwrap();
            let map = generic.as_map().unwrap();
            assert!(map.iter().all(|(k, _)| k.is_str()));
        }
        let err = ServerMessage::Error {
            code: ErrorCode::RateLimited,
            message: String::new(),
        };
        let json = serde_json::to_value(&err).unwrap();
        assert_eq!(json["type"], "error");
        assert_eq!(json["code"], "rate_limited");
    }
}
