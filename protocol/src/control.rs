//! Control messages on the WebSocket: what clients ask, what the broker answers.
//!
//! Client → broker: `{"op":"subscribe","topics":["AAPL","MSFT"]}` or
//! `{"op":"unsubscribe","topics":[…]}`, as a text frame holding JSON or a
//! binary frame holding MessagePack with the same schema. A topic is a symbol
//! or `"*"` for every symbol. A subscribe may also carry positions to resume
//! from (`epoch`, `since`, `from_ts`) and a rate cap (`max_rate`): see
//! [`SubscribeOptions`] and `docs/PROTOCOL.md`. On a broker with authentication,
//! `{"op":"auth","token":"…"}` renews the connection's token (its expiry and
//! entitlements) before it expires.
//!
//! Broker → client, always a binary frame with one MessagePack map:
//! ticks (see [`crate::tick`]), `{"type":"subscribed","topics":[…]}` after every
//! subscribe/unsubscribe with the full current list, and
//! `{"type":"error","code":…,"message":…}` for a bad request, and
//! `{"type":"authenticated","sub":…,"exp":…}` after an accepted `auth`; and
//! the continuity notices `recovered`, `reset` and `gap` (what a resume
//! replayed, why it could not, and exactly which `seq`s the broker skipped).
//!
//! These are rare next to ticks, so they go through serde (`serde_json`,
//! `rmp-serde`) rather than the hand-written tick codec.

use std::collections::BTreeMap;

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
        /// Where to resume from, and a rate cap.
        #[serde(flatten)]
        options: SubscribeOptions,
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

/// What a subscribe may ask for besides its topics. All optional: an empty
/// one is today's subscribe (ack, snapshot of each new symbol, then live).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribeOptions {
    /// The epoch the positions in `since` belong to (from a `subscribed`
    /// ack, or a `reset` with reason `feed_restart`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
    /// Per symbol, an epoch that differs from `epoch` (a symbol whose feed
    /// restarted has its own).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub epochs: BTreeMap<String, String>,
    /// Per symbol, the last `seq` the client holds: the broker sends every
    /// tick after it from its history, then live, or a `reset`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub since: BTreeMap<String, u64>,
    /// For the other new symbols: every tick with `ts` at or after this (ns
    /// since the Unix epoch) still in the history, then live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_ts: Option<u64>,
    /// At most this many ticks a second per symbol of this request
    /// ([`MAX_RATE`] at most), each the latest when sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rate: Option<u32>,
}

/// The highest `max_rate` a subscribe may ask for (ticks per second per
/// symbol); above it, a cap would hardly differ from none.
pub const MAX_RATE: u32 = 1000;

/// Why a resume could not be honoured (in a `reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetReason {
    /// The history no longer holds every tick after the position.
    TooOld,
    /// The position belongs to another stream (another broker run).
    Epoch,
    /// The symbol's feed restarted (`seq` 1 again) since that position.
    FeedRestart,
    /// The broker keeps no history (`--history 0`).
    NoHistory,
}

/// Why the broker skipped ticks for this client (in a `gap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapReason {
    /// Replaced by a later tick of the symbol: the client was slower than
    /// its feed (conflate policy, or `--max-queue-age`).
    Conflated,
    /// Discarded under the drop policy.
    Dropped,
    /// Replaced by a later tick within the subscription's `max_rate`.
    RateCapped,
    /// Never reached this broker: an edge (`--nats-in`) that did not get
    /// these `seq`s of the origin's stream from NATS (an outage, a slow
    /// edge that NATS cut off).
    Upstream,
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
        /// The broker's stream of `seq` numbers (the positions a later
        /// resume gives are in it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<String>,
        /// Newly subscribed symbols whose feed restarted, with their own
        /// epoch (which differs from `epoch`).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        epochs: BTreeMap<String, String>,
    },
    /// A resume was honoured: the next `ticks` ticks of `sym` (up to `seq`
    /// `to`) come from the history, then live ones follow.
    Recovered {
        /// The symbol.
        sym: String,
        /// How many ticks the history replays.
        ticks: u64,
        /// The `seq` of the last of them (the position resumed from when
        /// there are none).
        to: u64,
    },
    /// A resume could not be honoured, or `sym`'s feed restarted: what
    /// follows is a fresh start (a snapshot, or the restarted feed's ticks).
    Reset {
        /// The symbol.
        sym: String,
        /// Why.
        reason: ResetReason,
        /// After a feed restart, the symbol's new epoch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<String>,
    },
    /// The broker did not send `sym`'s ticks `from..=to` to this client;
    /// sent before the next tick of `sym` it does send.
    Gap {
        /// The symbol.
        sym: String,
        /// The first `seq` skipped.
        from: u64,
        /// The last `seq` skipped.
        to: u64,
        /// Why.
        reason: GapReason,
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
    #[serde(default)]
    epoch: Option<String>,
    #[serde(default)]
    epochs: BTreeMap<String, String>,
    #[serde(default)]
    since: BTreeMap<String, u64>,
    #[serde(default)]
    from_ts: Option<u64>,
    #[serde(default)]
    max_rate: Option<u32>,
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
        let subscribe = match raw.op.as_str() {
            "subscribe" => true,
            "unsubscribe" => false,
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
        if !subscribe {
            return Ok(ClientRequest::Unsubscribe { topics });
        }
        let options = SubscribeOptions {
            epoch: raw.epoch,
            epochs: raw.epochs,
            since: raw.since,
            from_ts: raw.from_ts,
            max_rate: raw.max_rate,
        };
        options.validate(&topics)?;
        Ok(ClientRequest::Subscribe { topics, options })
    }

    /// A plain subscribe to `topics` (no resume, no cap).
    pub fn subscribe(topics: Vec<String>) -> Self {
        ClientRequest::Subscribe {
            topics,
            options: SubscribeOptions::default(),
        }
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

impl SubscribeOptions {
    /// Checks what a client sent: every symbol in `since` and `epochs` is a
    /// symbol the request covers (named, or under `*`), epochs are short,
    /// and `max_rate` is 1 to [`MAX_RATE`].
    fn validate(&self, topics: &[String]) -> Result<(), RequestError> {
        let wildcard = topics.iter().any(|t| t == crate::WILDCARD);
        for sym in self.since.keys().chain(self.epochs.keys()) {
            if sym == crate::WILDCARD {
                return Err(RequestError::new(
                    ErrorCode::BadRequest,
                    "a position is per symbol, not for `*`",
                ));
            }
            validate_topic(sym)?;
            if !wildcard && !topics.contains(sym) {
                return Err(RequestError::new(
                    ErrorCode::BadRequest,
                    format!(
                        "`{}` has a position but is not among the topics",
                        truncate(sym)
                    ),
                ));
            }
        }
        let long = self.epoch.iter().chain(self.epochs.values());
        if long.into_iter().any(|e| e.len() > MAX_EPOCH_LEN) {
            return Err(RequestError::new(
                ErrorCode::BadRequest,
                format!("an epoch is at most {MAX_EPOCH_LEN} bytes"),
            ));
        }
        if self.max_rate.is_some_and(|r| r == 0 || r > MAX_RATE) {
            return Err(RequestError::new(
                ErrorCode::BadRequest,
                format!("`max_rate` is 1-{MAX_RATE} ticks a second"),
            ));
        }
        Ok(())
    }

    /// Whether the request asks for positions (a resume or a start time).
    pub fn resumes(&self) -> bool {
        !self.since.is_empty() || self.from_ts.is_some()
    }
}

/// The longest epoch a request may carry (the broker's are 16 hex digits,
/// with `.N` after a feed restart).
pub const MAX_EPOCH_LEN: usize = 64;

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
    /// An ack listing `topics`, with no epoch (what a broker without
    /// history would say; tests and tools build it).
    pub fn subscribed(topics: Vec<String>) -> Self {
        ServerMessage::Subscribed {
            topics,
            epoch: None,
            epochs: BTreeMap::new(),
        }
    }

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
        let want = ClientRequest::subscribe(vec!["AAPL".into(), "*".into()]);
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
            ServerMessage::subscribed(vec!["AAPL".into()]),
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
