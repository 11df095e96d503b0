//! The seed corpus: real inputs made by our own encoders, plus the edge
//! cases each format has (limits, truncations, the hostile lengths).
//!
//! The committed files under `fuzz/corpus/<target>/` are these seeds (the
//! stable driver checks that each one is there, and
//! `FUZZ_WRITE_SEEDS=1 cargo test -p tickcast-fuzz` rewrites them) plus
//! the inputs of crashes found since, named `crash-…` after what they
//! broke. Both drivers start from the committed files.

use std::io::Cursor;

use feed_simulator::file::{FeedHeader, FeedWriter};
use feed_simulator::market::{Market, MarketConfig};
use tickcast_protocol::framing::{put_record, put_tick_record};
use tickcast_protocol::{ClientRequest, ServerMessage, Tick};
use tickcast_wsframe::{close, put_frame};

/// One seed: its target, its file name, its bytes.
pub type Seed = (&'static str, String, Vec<u8>);

fn ticks(n: usize) -> Vec<Tick> {
    let cfg = MarketConfig {
        symbols: 5,
        rate: 1_000.0,
        seed: 7,
        open_burst: false,
        session: false,
    };
    let mut market = Market::new(&cfg).expect("a valid config");
    (0..n).map(|_| market.next_tick()).collect()
}

/// A tick in another library's shape: whole prices as integers, keys in
/// another order, an unknown key holding a nested value.
fn foreign_tick() -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Foreign {
        volume: u64,
        sym: &'static str,
        bid: u64,
        ask: u64,
        last: f32,
        bid_size: u32,
        ask_size: u32,
        last_size: u32,
        venue: (&'static str, [u8; 2], Option<u8>),
        seq: u64,
        ts: u64,
        r#type: &'static str,
    }
    rmp_serde::to_vec_named(&Foreign {
        volume: 10,
        sym: "BRK.B",
        bid: 400,
        ask: 401,
        last: 400.5,
        bid_size: 1,
        ask_size: 2,
        last_size: 3,
        venue: ("XNYS", [1, 2], None),
        seq: 1,
        ts: 1_767_623_400_000_000_000,
        r#type: "tick",
    })
    .expect("serialisable")
}

fn tick_seeds() -> Vec<(String, Vec<u8>)> {
    let example = Tick::example();
    let mut out = vec![
        ("example".to_string(), example.to_vec()),
        (
            "orig_ts".into(),
            Tick {
                orig_ts: Some(1),
                ..Tick::example()
            }
            .to_vec(),
        ),
        (
            "sym32".into(),
            Tick {
                sym: "X".repeat(32),
                seq: u64::MAX,
                ..Tick::example()
            }
            .to_vec(),
        ),
        ("foreign".into(), foreign_tick()),
        (
            "subscribed".into(),
            ServerMessage::subscribed(vec!["AAPL".into()]).to_msgpack(),
        ),
    ];
    for (i, t) in ticks(3).iter().enumerate() {
        out.push((format!("market{i}"), t.to_vec()));
    }
    let mut crossed = Tick {
        bid: 2.0,
        ask: 1.0,
        ..Tick::example()
    }
    .to_vec();
    out.push(("crossed".into(), crossed.clone()));
    crossed.truncate(30);
    out.push(("truncated".into(), crossed));
    // An unknown key holding an ext value, and one nested 17 deep.
    let mut ext = example.to_vec();
    ext[0] += 1;
    ext.extend_from_slice(b"\xa3ext\xd6\x01\x00\x00\x00\x00");
    out.push(("ext".into(), ext));
    let mut deep = example.to_vec();
    deep[0] += 1;
    deep.extend_from_slice(b"\xa4deep");
    deep.extend_from_slice(&[0x91; 17]);
    deep.push(0xc0);
    out.push(("deep".into(), deep));
    out
}

fn ingest_seeds() -> Vec<(String, Vec<u8>)> {
    let mut three = Vec::new();
    for t in ticks(3) {
        put_tick_record(&mut three, &t.as_ref());
    }
    let mut partial = three.clone();
    partial.truncate(three.len() - 20);
    let mut bad_tick = Vec::new();
    put_record(&mut bad_tick, b"\x81\xa4type\xa4tock");
    vec![
        ("three".into(), three.clone()),
        ("partial".into(), partial),
        ("bad_tick".into(), bad_tick),
        ("empty_record".into(), [&three[..], &[0, 0, 0, 0]].concat()),
        ("length_4g".into(), u32::MAX.to_be_bytes().to_vec()),
        (
            "length_limit_plus_1".into(),
            65_537u32.to_be_bytes().to_vec(),
        ),
    ]
}

/// A masked client frame.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_frame(&mut out, first, Some([0x37, 0xfa, 0x21, 0x3d]), payload);
    out
}

fn frame_reader_seeds() -> Vec<(String, Vec<u8>)> {
    let subscribe = ClientRequest::subscribe(vec!["AAPL".into(), "*".into()]);
    let huge = tickcast_wsframe::Header {
        first: 0x82,
        mask: Some([1, 2, 3, 4]),
        payload_len: u64::MAX,
    };
    vec![
        (
            "session".into(),
            [
                frame(0x81, subscribe.to_json().as_bytes()),
                frame(0x82, &subscribe.to_msgpack()),
                frame(0x89, b"ping"),
                frame(0x8a, b""),
                frame(0x88, &close::payload(1000, "bye")),
            ]
            .concat(),
        ),
        (
            "fragments".into(),
            [
                frame(0x01, "h€".as_bytes()),
                frame(0x89, b""),
                frame(0x00, b"ll"),
                frame(0x80, b"o"),
                frame(0x02, &[1; 600]),
                frame(0x80, &[2; 600]),
            ]
            .concat(),
        ),
        ("huge_length".into(), huge.encode().to_vec()),
        ("unmasked".into(), vec![0x81, 0x02, b'h', b'i']),
        ("bad_utf8".into(), frame(0x81, &[0xce, 0xba, 0xff])),
        (
            "bad_utf8_fragment".into(),
            [frame(0x01, &[0xff]), frame(0x89, b"x"), frame(0x80, b"a")].concat(),
        ),
        ("close_1014".into(), frame(0x88, &close::payload(1014, ""))),
        ("close_1005".into(), frame(0x88, &1005u16.to_be_bytes())),
        ("close_short".into(), frame(0x88, &[3])),
        ("rsv1".into(), frame(0xc1, b"x")),
        ("opcode3".into(), frame(0x83, b"")),
        ("ping126".into(), frame(0x89, &[0; 126])),
        (
            "text_in_fragments".into(),
            [frame(0x01, b"a"), frame(0x81, b"b")].concat(),
        ),
        ("max_message".into(), frame(0x82, &[7; 1024])),
    ]
}

fn control_seeds() -> Vec<(String, Vec<u8>)> {
    let sub = ClientRequest::subscribe(vec!["AAPL".into(), "BRK.B".into(), "*".into()]);
    let unsub = ClientRequest::Unsubscribe {
        topics: vec!["MSFT".into()],
    };
    vec![
        ("subscribe_json".into(), sub.to_json().into_bytes()),
        ("subscribe_msgpack".into(), sub.to_msgpack()),
        ("unsubscribe_json".into(), unsub.to_json().into_bytes()),
        ("unsubscribe_msgpack".into(), unsub.to_msgpack()),
        (
            "extra_fields".into(),
            br#"{"id":7,"op":"subscribe","topics":["^GSPC","EUR/USD"],"x":[{"y":null}]}"#.to_vec(),
        ),
        (
            "unknown_op".into(),
            br#"{"op":"publish","topics":[]}"#.to_vec(),
        ),
        (
            "invalid_topic".into(),
            br#"{"op":"subscribe","topics":["A B"]}"#.to_vec(),
        ),
        ("no_topics".into(), br#"{"op":"subscribe"}"#.to_vec()),
        // A MessagePack map whose topics array claims 2³² - 1 entries.
        (
            "array_4g".into(),
            b"\x82\xa2op\xa9subscribe\xa6topics\xdd\xff\xff\xff\xff".to_vec(),
        ),
    ]
}

fn feed(ticks: &[Tick], count: Option<u64>) -> Vec<u8> {
    let header = FeedHeader {
        count,
        ..FeedHeader::simulated(5, 1_000.0, 7, 0, false)
    };
    let mut w = FeedWriter::new(Cursor::new(Vec::new()), &header).expect("in memory");
    for t in ticks {
        w.write_tick(&t.as_ref()).expect("in memory");
    }
    w.finish().expect("in memory").into_inner()
}

fn feed_file_seeds() -> Vec<(String, Vec<u8>)> {
    let ticks = ticks(6);
    let whole = feed(&ticks, Some(6));
    let mut cut = whole.clone();
    cut.truncate(whole.len() - 7);
    let mut extra = whole.clone();
    extra.extend_from_slice(&whole[64..100]);
    let mut flipped = whole.clone();
    flipped[64 + 4 + 10] ^= 0x40;
    vec![
        ("six".into(), whole.clone()),
        ("unknown_count".into(), feed(&ticks[..4], None)),
        ("header_only".into(), feed(&[], Some(0))),
        ("count_too_high".into(), feed(&ticks[..2], Some(3))),
        ("cut".into(), cut),
        ("extra_record".into(), extra),
        ("flipped".into(), flipped),
        ("short_header".into(), whole[..20].to_vec()),
        (
            "length_4g".into(),
            [&feed(&[], None)[..], &u32::MAX.to_be_bytes()].concat(),
        ),
    ]
}

fn csv_seeds() -> Vec<(String, Vec<u8>)> {
    let header = "ts,sym,kind,bid,ask,bid_size,ask_size,price,size\n";
    let rows = |r: &str| format!("{header}{r}").into_bytes();
    vec![
        (
            "quotes_trades".into(),
            include_bytes!("../../feed-simulator/tests/fixtures/quotes_trades.csv").to_vec(),
        ),
        (
            "nanoseconds".into(),
            rows("1767623400000000000,AAPL,quote,1,2,3,4,,\n1767623400000000001,AAPL,trade,,,,,1.5,10\n"),
        ),
        (
            "columns_reordered".into(),
            b"Kind, Sym ,TS,price,size,bid,ask,bid_size,ask_size\nquote,X,2026-01-05T14:30:00+00:00,,,1,1,1,1\n"
                .to_vec(),
        ),
        ("trade_first".into(), rows("1,AAPL,trade,,,,,1,1\n")),
        ("crossed".into(), rows("1,AAPL,quote,2,1,1,1,,\n")),
        ("backwards".into(), rows("5,A,quote,1,2,1,1,,\n4,A,quote,1,2,1,1,,\n")),
        ("missing_column".into(), b"ts,sym\n1,A\n".to_vec()),
    ]
}

/// Every seed of every target.
pub fn all() -> Vec<Seed> {
    let mut out = Vec::new();
    for (target, seeds) in [
        ("tick_decode", tick_seeds()),
        ("ingest_frames", ingest_seeds()),
        ("frame_reader", frame_reader_seeds()),
        ("control_message", control_seeds()),
        ("feed_file", feed_file_seeds()),
        ("csv_import", csv_seeds()),
    ] {
        out.extend(seeds.into_iter().map(|(name, bytes)| (target, name, bytes)));
    }
    out
}
