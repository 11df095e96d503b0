//! Hostile and broken input, on both sides of the broker: every bad control
//! message, WebSocket protocol violation and malformed ingest stream must get
//! its exact answer (error code, close code, disconnect) and hurt nobody
//! else. A witness client subscribed to `*` for the whole run must receive
//! every tick a well-behaved publisher sends meanwhile, gap-free and
//! without a stall (`common/witness.rs`).

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::witness::Witness;
use common::{client_frame, ingest_broker, tick, Publisher, RawClient, Received, Subscriber};
use futures_util::SinkExt;
use tickcast_broker::{Limits, RunningBroker};
use tickcast_protocol::framing::put_tick_record;
use tickcast_protocol::{ClientRequest, ErrorCode, ServerMessage};
use tokio_tungstenite::tungstenite::Message;

/// A client frame holding a request: text (JSON) or binary (MessagePack).
enum Request {
    Text(String),
    Binary(Vec<u8>),
}

impl Request {
    fn message(&self) -> Message {
        match self {
            Request::Text(t) => Message::text(t.clone()),
            Request::Binary(b) => Message::binary(b.clone()),
        }
    }
}

fn subscribe_json(topics: &[&str]) -> Request {
    let topics = topics.iter().map(|t| (*t).to_owned()).collect();
    Request::Text(ClientRequest::subscribe(topics).to_json())
}

/// A fresh client (subscribed through `query` first, if given) sends `bad`
/// and must get an error with `want`; then a subscribe to `VICTIM` in the
/// same encoding must be acknowledged with exactly `then_holds`, proving the
/// connection is still open and nothing of the bad request was applied.
async fn refused_but_open(
    addr: std::net::SocketAddr,
    label: &str,
    query: &str,
    bad: Request,
    want: ErrorCode,
    then_holds: &[&str],
) {
    let mut victim = Subscriber::connect(addr, query).await;
    if let Some(topics) = query.strip_prefix("topics=") {
        let held: Vec<&str> = topics.split(',').collect();
        assert_eq!(victim.expect_ack().await, held, "{label}");
    }
    victim.ws.send(bad.message()).await.unwrap();
    match victim.next().await {
        Received::Control(ServerMessage::Error { code, message }) => {
            assert_eq!(code, want, "{label}: {message}");
            assert!(!message.is_empty(), "{label}: empty error message");
        }
        other => panic!("{label}: expected a {want:?} error, got {other:?}"),
    }
    let follow_up = ClientRequest::subscribe(vec!["VICTIM".into()]);
    let follow_up = match bad {
        Request::Text(_) => Request::Text(follow_up.to_json()),
        Request::Binary(_) => Request::Binary(follow_up.to_msgpack()),
    };
    victim.ws.send(follow_up.message()).await.unwrap();
    assert_eq!(victim.expect_ack().await, then_holds, "{label}");
}

/// Sends ten subscribes at once to a broker allowing two a second (burst
/// two): at least one must be refused as rate limited, the others acked,
/// and the connection stays open. Returns the refusals. (The refill rate
/// itself is tested on tokio's paused clock, in `client/session.rs`.)
async fn rate_limited(addr: std::net::SocketAddr) -> u64 {
    let mut victim = Subscriber::connect(addr, "").await;
    for _ in 0..10 {
        victim
            .ws
            .send(subscribe_json(&["R1"]).message())
            .await
            .unwrap();
    }
    let (mut acks, mut limited) = (0u64, 0u64);
    for _ in 0..10 {
        match victim.next().await {
            Received::Control(ServerMessage::Subscribed { topics, .. }) => {
                assert_eq!(topics, ["R1"]);
                acks += 1;
            }
            Received::Control(ServerMessage::Error {
                code: ErrorCode::RateLimited,
                ..
            }) => limited += 1,
            other => panic!("rate limit: unexpected {other:?}"),
        }
    }
    assert!(acks >= 2, "the burst of two was not allowed: {acks} acks");
    assert!(limited >= 1, "ten requests at once were all allowed");
    assert!(victim
        .next_within(Duration::from_millis(100))
        .await
        .is_none());
    limited
}

/// A raw client subscribed to `VICTIM` sends `bytes`; the broker must close
/// with `code` (reason containing `reason`) and then end the connection.
async fn closed_with(
    addr: std::net::SocketAddr,
    label: &str,
    bytes: &[u8],
    code: u16,
    reason: &str,
) {
    let mut victim = RawClient::connect(addr, "topics=VICTIM").await;
    let ack = victim.next_frame().await.expect("no ack");
    assert_eq!(ack.opcode(), 0x2, "{label}: ack");
    victim.send(bytes).await;
    let (got, why) = victim.expect_close().await;
    assert_eq!(got, code, "{label}: close reason {why:?}");
    assert!(why.contains(reason), "{label}: close reason {why:?}");
    victim.expect_end().await;
}

/// A publisher sends two good ticks of `sym` and then `bad`, all in one
/// write: the two ticks must reach `watcher`, and the publisher must be
/// disconnected.
async fn publisher_cut_off(
    broker: &RunningBroker,
    watcher: &mut Subscriber,
    sym: &str,
    bad: &[u8],
) {
    let mut publisher = Publisher::connect(broker).await;
    let mut buf = BytesMut::new();
    put_tick_record(&mut buf, &tick(sym, 1).as_ref());
    put_tick_record(&mut buf, &tick(sym, 2).as_ref());
    buf.extend_from_slice(bad);
    publisher.write_raw(&buf).await.unwrap();
    for seq in 1..=2 {
        let t = watcher.expect_tick().await;
        assert_eq!((t.sym.as_str(), t.seq), (sym, seq));
    }
    publisher.expect_disconnect().await;
}

#[tokio::test]
async fn bad_input_gets_exact_answers_and_hurts_nobody_else() {
    let limits = Limits {
        max_topics: 3,
        control_rate: 2,
        control_burst: 2,
        ..common::limits()
    };
    let broker = ingest_broker(limits).await;
    let addr = broker.local_addr();
    let witness = Witness::start(&broker).await;

    // Control messages: refused with a code, connection kept.
    let long_topic = "A".repeat(33);
    let refusals: [(&str, &str, Request, ErrorCode, &[&str]); 8] = [
        (
            "unknown op",
            "",
            Request::Text(r#"{"op":"nope","topics":[]}"#.into()),
            ErrorCode::UnknownOp,
            &["VICTIM"],
        ),
        (
            "malformed JSON",
            "",
            Request::Text("{nope".into()),
            ErrorCode::BadRequest,
            &["VICTIM"],
        ),
        (
            "malformed MessagePack",
            "",
            Request::Binary(vec![0xc1]),
            ErrorCode::BadRequest,
            &["VICTIM"],
        ),
        (
            "missing topics",
            "",
            Request::Text(r#"{"op":"subscribe"}"#.into()),
            ErrorCode::BadRequest,
            &["VICTIM"],
        ),
        (
            "topics not an array",
            "",
            Request::Text(r#"{"op":"subscribe","topics":"AAPL"}"#.into()),
            ErrorCode::BadRequest,
            &["VICTIM"],
        ),
        (
            "topic with a space",
            "",
            subscribe_json(&["A B"]),
            ErrorCode::InvalidTopic,
            &["VICTIM"],
        ),
        (
            "33-byte topic",
            "",
            subscribe_json(&[&long_topic]),
            ErrorCode::InvalidTopic,
            &["VICTIM"],
        ),
        (
            "too many topics",
            "topics=T1,T2",
            subscribe_json(&["T3", "T4"]),
            ErrorCode::TooManyTopics,
            &["T1", "T2", "VICTIM"],
        ),
    ];
    let refused = refusals.len() as u64;
    for (label, query, bad, code, holds) in refusals {
        refused_but_open(addr, label, query, bad, code, holds).await;
    }
    let limited = rate_limited(addr).await;

    // WebSocket protocol violations: closed with the code RFC 6455 names.
    let oversized = client_frame(0x81, &vec![b'x'; 4097], true);
    let fragmented_oversized = [
        client_frame(0x01, &vec![b'x'; 3000], true),
        client_frame(0x80, &vec![b'x'; 3000], true),
    ]
    .concat();
    let violations: [(&str, Vec<u8>, u16, &str); 7] = [
        ("oversized message", oversized, 1009, "larger than 4096"),
        (
            "oversized across fragments",
            fragmented_oversized,
            1009,
            "larger than 4096",
        ),
        (
            "unmasked frame",
            client_frame(0x81, b"{}", false),
            1002,
            "not masked",
        ),
        ("opcode 3", client_frame(0x83, b"x", true), 1002, "opcode"),
        (
            "RSV1 set",
            client_frame(0xC1, b"{}", true),
            1002,
            "reserved bits",
        ),
        (
            "invalid UTF-8",
            client_frame(0x81, &[b'{', 0xff, 0xfe], true),
            1007,
            "UTF-8",
        ),
        (
            "fragmented ping",
            client_frame(0x09, b"p", true),
            1002,
            "control frame",
        ),
    ];
    let closed = violations.len() as u64;
    for (label, bytes, code, reason) in &violations {
        closed_with(addr, label, bytes, *code, reason).await;
    }
    // The same oversized message from an independent client library.
    let mut big = Subscriber::connect(addr, "").await;
    big.send_text(&"x".repeat(4097)).await;
    assert!(big.expect_close(1009).await.contains("larger than 4096"));

    // Ingest: a bad record cuts its publisher off, after the good ticks
    // before it in the same write.
    let mut watcher = Subscriber::connect(addr, "topics=BAD1,BAD2,BAD3").await;
    assert_eq!(watcher.expect_ack().await, ["BAD1", "BAD2", "BAD3"]);
    let garbage = [&8u32.to_be_bytes()[..], &[0xc1; 8]].concat();
    publisher_cut_off(&broker, &mut watcher, "BAD1", &garbage).await;
    assert_eq!(broker.metrics().ticks_rejected.get(), 1);
    assert_eq!(broker.metrics().publishers_dropped.get(), 1);
    let too_long = [&(64 * 1024 + 1u32).to_be_bytes()[..], b"xxxx"].concat();
    publisher_cut_off(&broker, &mut watcher, "BAD2", &too_long).await;
    publisher_cut_off(&broker, &mut watcher, "BAD3", &0u32.to_be_bytes()).await;
    assert!(watcher
        .next_within(Duration::from_millis(100))
        .await
        .is_none());

    // The good publisher kept going through all of it.
    witness.wait_for_more(10).await;
    let delivered = witness.finish().await;
    assert!(delivered >= 20, "only {delivered} witness ticks");

    let m = broker.metrics();
    assert_eq!(m.ticks_rejected.get(), 3);
    assert_eq!(m.publishers_dropped.get(), 3);
    assert_eq!(m.protocol_errors.get(), closed + 1);
    assert_eq!(m.request_errors.get(), refused + limited);
    assert_eq!(m.ticks_in.get(), delivered + 6);
    let text = common::http_get(addr, "/metrics").await;
    assert!(text
        .text()
        .contains("\ntickcast_publishers_dropped_total 3\n"));
    assert!(text.text().contains("\ntickcast_ticks_rejected_total 3\n"));
    let health = common::http_get(addr, "/healthz").await;
    assert_eq!((health.status, health.text()), (200, "ok\n"));
}
