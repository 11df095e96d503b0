//! ITCH 5.0 import: a stream built from the spec's layouts with every
//! message type the importer reads, and the resulting ticks checked against
//! a book computed by hand (adds with and without MPID, partial executions
//! with and without price, a non-printable execution, cancels, a replace,
//! deletes that take out the best level, a hidden trade, a crossed book).

mod support;

use std::collections::HashSet;
use std::io::Cursor;

use feed_simulator::file::FeedReader;
use feed_simulator::import::{import_itch, ImportStats, ItchOptions};
use feed_simulator::new_york::Date;
use support::itch::ItchStream;
use tickcast_protocol::Tick;

/// 09:30 in nanoseconds since midnight.
const OPEN_NS: u64 = 34_200_000_000_000;

fn day_start() -> u64 {
    Date::parse("2026-01-05").unwrap().new_york_midnight()
}

/// A price in ITCH units (1/10,000 $) from hundredths of a cent.
const fn px(ten_thousandths: u32) -> u32 {
    ten_thousandths
}

/// The day: AAPL (locate 1) and MSFT (locate 2), microseconds after the
/// open. The comment on each line is the book after it.
fn day() -> ItchStream {
    let mut s = ItchStream::default();
    let t = |us: u64| OPEN_NS + us * 1_000;
    s.system_event(t(0), b'Q'); // start of market hours: not a book message
    s.stock_directory(1, t(0), "AAPL");
    s.stock_directory(2, t(0), "MSFT");
    s.add(1, t(1), 1, true, 100, "AAPL", px(1_895_000)); // bid 189.50×100, no ask: no tick
    s.add_mpid(1, t(2), 2, false, 200, "AAPL", px(1_895_200), "GSCO"); // 189.50×100 / 189.52×200: tick 1
    s.add(1, t(3), 3, true, 300, "AAPL", px(1_895_100)); // 189.51×300 / 189.52×200: tick 2
    s.add(1, t(4), 4, true, 50, "AAPL", px(1_894_900)); // a deeper bid: top unchanged, no tick
    s.executed(1, t(5), 3, 100, 9001); // 189.51×200; trade 189.51×100, volume 100: tick 3
    s.executed_with_price(1, t(6), 2, 50, 9002, true, px(1_895_200)); // ask 189.52×150; trade 189.52×50, vol 150: tick 4
    s.executed_with_price(1, t(7), 2, 50, 9003, false, px(1_895_300)); // ask ×100, non-printable: no trade: tick 5
    s.cancel(1, t(8), 2, 40); // ask 189.52×60: tick 6
    s.replace(1, t(9), 1, 5, 250, px(1_895_100)); // #1 (bid 189.50×100) → #5 bid 189.51×250: bid 189.51×450: tick 7
    s.delete(1, t(10), 3); // bid 189.51×250: tick 8
    s.delete(1, t(11), 5); // the best bid level gone: bid 189.49×50: tick 9
    s.trade(1, t(12), true, 500, "AAPL", px(1_895_150), 9004); // hidden trade 189.515×500, vol 650: tick 10
    s.executed(1, t(13), 999, 10, 9005); // an order we never saw: skipped
    s.add(2, t(14), 10, true, 100, "MSFT", px(4_121_000)); // one-sided
    s.add(2, t(15), 11, false, 100, "MSFT", px(4_120_900)); // crossed (412.10 > 412.09): no tick
    s.delete(2, t(16), 10); // one-sided again
    s.add(2, t(17), 12, true, 200, "MSFT", px(4_120_500)); // 412.05×200 / 412.09×100: MSFT tick 1
    s.cancel(1, t(18), 2, 1_000); // more than the order holds: the rest (60) goes; ask side empty: no tick
    s.add(1, t(19), 6, false, 100, "AAPL", px(1_895_300)); // 189.49×50 / 189.53×100: tick 11
    s
}

#[allow(clippy::too_many_arguments)]
fn tick(
    sym: &str,
    seq: u64,
    us: u64,
    bid: (f64, u32),
    ask: (f64, u32),
    last: (f64, u32),
    volume: u64,
) -> Tick {
    let ts = day_start() + OPEN_NS + us * 1_000;
    Tick {
        sym: sym.into(),
        seq,
        ts,
        bid: bid.0,
        ask: ask.0,
        last: last.0,
        bid_size: bid.1,
        ask_size: ask.1,
        last_size: last.1,
        volume,
        orig_ts: Some(ts),
    }
}

fn expected_aapl() -> Vec<Tick> {
    let mid = ((189.50 + 189.52) / 2.0, 0);
    vec![
        tick("AAPL", 1, 2, (189.50, 100), (189.52, 200), mid, 0),
        tick("AAPL", 2, 3, (189.51, 300), (189.52, 200), mid, 0),
        tick(
            "AAPL",
            3,
            5,
            (189.51, 200),
            (189.52, 200),
            (189.51, 100),
            100,
        ),
        tick(
            "AAPL",
            4,
            6,
            (189.51, 200),
            (189.52, 150),
            (189.52, 50),
            150,
        ),
        tick(
            "AAPL",
            5,
            7,
            (189.51, 200),
            (189.52, 100),
            (189.52, 50),
            150,
        ),
        tick("AAPL", 6, 8, (189.51, 200), (189.52, 60), (189.52, 50), 150),
        tick("AAPL", 7, 9, (189.51, 450), (189.52, 60), (189.52, 50), 150),
        tick(
            "AAPL",
            8,
            10,
            (189.51, 250),
            (189.52, 60),
            (189.52, 50),
            150,
        ),
        tick("AAPL", 9, 11, (189.49, 50), (189.52, 60), (189.52, 50), 150),
        tick(
            "AAPL",
            10,
            12,
            (189.49, 50),
            (189.52, 60),
            (189.515, 500),
            650,
        ),
        tick(
            "AAPL",
            11,
            19,
            (189.49, 50),
            (189.53, 100),
            (189.515, 500),
            650,
        ),
    ]
}

fn expected_msft() -> Tick {
    let mid = (412.05 + 412.09) / 2.0;
    tick("MSFT", 1, 17, (412.05, 200), (412.09, 100), (mid, 0), 0)
}

fn import(
    bytes: &[u8],
    symbols: Option<&[&str]>,
) -> (Vec<Tick>, ImportStats, Option<(u64, String)>) {
    let options = ItchOptions {
        day_start: day_start(),
        symbols: symbols.map(|s| s.iter().map(|s| s.to_string()).collect::<HashSet<_>>()),
    };
    let mut progress = Vec::new();
    let report = import_itch(bytes, Cursor::new(Vec::new()), &options, |n| {
        progress.push(n)
    })
    .unwrap();
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1]),
        "progress only grows"
    );
    let reader = FeedReader::from_reader(Cursor::new(report.out.into_inner())).unwrap();
    let ticks = reader.collect::<Result<_, _>>().unwrap();
    let damage = report.damage.map(|d| (d.offset, d.to_string()));
    (ticks, report.stats, damage)
}

#[test]
fn the_book_built_from_every_message_type_matches_the_hand_computed_one() {
    let (ticks, stats, damage) = import(&day().bytes, None);
    assert_eq!(damage, None);
    let mut want = expected_aapl();
    // Time order: MSFT's tick (17 µs) falls between AAPL's 10th and 11th.
    want.insert(10, expected_msft());
    assert_eq!(ticks, want);
    assert_eq!(
        stats,
        ImportStats {
            records: 12,
            symbols: 2,
            read: 22,
            skipped: 10,
        }
    );
}

#[test]
fn symbols_keeps_a_subset() {
    let (ticks, stats, _) = import(&day().bytes, Some(&["MSFT"]));
    assert_eq!(ticks, vec![expected_msft()]);
    assert_eq!((stats.records, stats.read, stats.skipped), (1, 22, 21));
    let (ticks, _, _) = import(&day().bytes, Some(&["AAPL", "NVDA"]));
    assert_eq!(ticks, expected_aapl());
}

#[test]
fn a_day_without_stock_directory_messages_still_imports() {
    // The first add order of a locate names its stock.
    let mut s = ItchStream::default();
    s.add(7, OPEN_NS, 1, true, 100, "NVDA", px(1_400_000));
    s.add(7, OPEN_NS + 1_000, 2, false, 100, "NVDA", px(1_400_100));
    let (ticks, _, _) = import(&s.bytes, None);
    assert_eq!(ticks.len(), 1);
    assert_eq!(
        (ticks[0].sym.as_str(), ticks[0].bid, ticks[0].ask),
        ("NVDA", 140.0, 140.01)
    );
}

#[test]
fn damage_keeps_every_tick_before_it_and_names_its_offset() {
    let whole = day().bytes;
    // The last message (AAPL tick 11) is cut: the rest is kept.
    let last_len = 2 + 36;
    let last_at = (whole.len() - last_len) as u64;
    let (ticks, _, damage) = import(&whole[..whole.len() - 5], None);
    let (offset, text) = damage.expect("damage");
    assert_eq!(offset, last_at);
    assert!(
        text.contains(&format!("byte offset {last_at}")) && text.contains("ends inside"),
        "{text}"
    );
    assert_eq!(ticks.len(), 11);
    assert_eq!(
        ticks[..],
        {
            let mut want = expected_aapl();
            want.insert(10, expected_msft());
            want.truncate(11);
            want
        }[..]
    );

    // A known type at the wrong length.
    let mut s = ItchStream::default();
    s.add(1, OPEN_NS, 1, true, 100, "AAPL", px(1_895_000));
    s.add(1, OPEN_NS, 2, false, 100, "AAPL", px(1_895_100));
    let good = s.bytes.len() as u64;
    s.bytes.extend_from_slice(&[0, 3, b'A', 0, 1]);
    s.add(1, OPEN_NS, 3, false, 100, "AAPL", px(1_895_050));
    let (ticks, stats, damage) = import(&s.bytes, None);
    let (offset, text) = damage.expect("damage");
    assert_eq!(offset, good);
    assert!(text.contains("'A' must be 36 bytes long, not 3"), "{text}");
    assert_eq!((ticks.len(), stats.read), (1, 2));

    // An empty message.
    let (_, _, damage) = import(&[0, 0], None);
    assert_eq!(damage.map(|d| d.0), Some(0));
    // A lone byte of a length prefix.
    let (_, _, damage) = import(&[0], None);
    assert_eq!(damage.map(|d| d.0), Some(0));
    // Nothing at all: an empty, valid feed file.
    let (ticks, stats, damage) = import(&[], None);
    assert_eq!((ticks.len(), stats.read, damage), (0, 0, None));
}

#[test]
fn a_large_stream_reads_across_chunk_boundaries() {
    // More than one 1 MiB read: messages straddle the chunk edges.
    let mut s = ItchStream::default();
    s.add(1, OPEN_NS, 1, false, 100, "AAPL", px(2_000_000));
    let n = 40_000u64;
    for i in 0..n {
        s.add(
            1,
            OPEN_NS + i,
            10 + i,
            true,
            100,
            "AAPL",
            px(1_000_000 + (i % 500) as u32),
        );
        s.delete(1, OPEN_NS + i, 10 + i);
    }
    assert!(s.bytes.len() > 2 * 1024 * 1024);
    let (ticks, stats, damage) = import(&s.bytes, None);
    assert_eq!(damage, None);
    assert_eq!(stats.read, 1 + 2 * n);
    // Every add makes a new best bid and every delete empties the bid side.
    assert_eq!(ticks.len() as u64, n);
    assert!(ticks.iter().enumerate().all(|(i, t)| t.seq == i as u64 + 1));
}
