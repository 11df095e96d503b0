//! DBN import: fixtures written by Databento's Python encoder
//! (`databento-dbn`, installed into `.venv` by `scripts/test.sh`) and by the
//! `dbn` crate's encoder (plain and zstd), one per schema; the imported
//! ticks are checked field by field against what the records say. An
//! unknown schema and a cut record are errors that name their offset, with
//! every tick before a cut kept.

use std::fs::File;
use std::io::{BufReader, Cursor};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use dbn::encode::dbn::Encoder;
use dbn::encode::{DynWriter, EncodeRecord};
use dbn::{
    rtype, BboMsg, BidAskPair, Compression, FlagSet, Mbp10Msg, Mbp1Msg, Metadata, RecordHeader,
    SType, Schema, SymbolMappingMsg, TradeMsg, UNDEF_PRICE,
};
use feed_simulator::file::{FeedReader, Source};
use feed_simulator::import::{import_dbn, ImportError, ImportReport, ImportStats};
use serde::Serialize;
use tickcast_protocol::Tick;

/// 2026-01-05 14:30:00 UTC (09:30 New York), the open.
const OPEN: u64 = 1_767_623_400_000_000_000;
/// 2026-01-05 00:00 UTC.
const DAY: u64 = 1_767_571_200_000_000_000;
const AAPL: u32 = 101;
const MSFT: u32 = 102;

/// A price in DBN's units (1e-9) from cents.
fn px(cents: i64) -> i64 {
    cents * 10_000_000
}

/// One record as both encoders are told it.
#[derive(Debug, Clone, Serialize)]
struct Rec {
    kind: &'static str,
    iid: u32,
    ts: u64,
    price: i64,
    size: u32,
    action: &'static str,
    side: &'static str,
    /// Levels: [bid_px, ask_px, bid_sz, ask_sz].
    levels: Vec<[i64; 4]>,
    symbol: &'static str,
    start_ts: u64,
    end_ts: u64,
}

fn rec(kind: &'static str, iid: u32, us: u64) -> Rec {
    Rec {
        kind,
        iid,
        ts: OPEN + us * 1_000,
        price: UNDEF_PRICE,
        size: 0,
        action: "A",
        side: "N",
        levels: Vec::new(),
        symbol: "",
        start_ts: 0,
        end_ts: 0,
    }
}

/// A book record (mbp-1, bbo, mbp-10) with its top level in cents.
fn book(kind: &'static str, iid: u32, us: u64, bid: (i64, u32), ask: (i64, u32)) -> Rec {
    Rec {
        levels: vec![[px(bid.0), px(ask.0), i64::from(bid.1), i64::from(ask.1)]],
        ..rec(kind, iid, us)
    }
}

/// The same record as a trade of `size` at `cents`.
fn traded(r: Rec, cents: i64, size: u32) -> Rec {
    Rec {
        price: px(cents),
        size,
        action: "T",
        side: "A",
        ..r
    }
}

fn mapping(iid: u32, symbol: &'static str) -> Rec {
    Rec {
        symbol,
        start_ts: DAY,
        end_ts: DAY + 86_400_000_000_000,
        ..rec("symbol-mapping", iid, 0)
    }
}

#[derive(Serialize)]
struct Spec<'a> {
    schema: Option<&'a str>,
    start: u64,
    mappings: Vec<serde_json::Value>,
    records: &'a [Rec],
}

/// The repo's venv Python (scripts/venv.sh, run by scripts/test.sh).
fn python() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: run `bash scripts/venv.sh feed-simulator/tests/python/requirements.txt \
         fixtures` (part of scripts/test.sh) to install the databento-dbn encoder",
        venv.display()
    );
    venv
}

/// A DBN file written by `databento-dbn`, with AAPL and MSFT mapped in the
/// metadata for 2026-01-05.
fn python_dbn(dir: &Path, name: &str, schema: Option<&str>, records: &[Rec]) -> PathBuf {
    let path = dir.join(name);
    let mappings = [("AAPL", AAPL), ("MSFT", MSFT)]
        .iter()
        .map(|(sym, iid)| {
            serde_json::json!({"raw_symbol": sym, "instrument_id": iid,
                               "start_date": "2026-01-05", "end_date": "2026-01-06"})
        })
        .collect();
    let spec = Spec {
        schema,
        start: DAY,
        mappings,
        records,
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/write_dbn.py");
    let mut child = Command::new(python())
        .arg(&script)
        .arg(&path)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), &spec).unwrap();
    assert!(child.wait().unwrap().success(), "write_dbn.py failed");
    path
}

fn level(l: &[i64; 4]) -> BidAskPair {
    BidAskPair {
        bid_px: l[0],
        ask_px: l[1],
        bid_sz: l[2] as u32,
        ask_sz: l[3] as u32,
        ..Default::default()
    }
}

fn c(s: &str) -> std::ffi::c_char {
    s.as_bytes()[0] as std::ffi::c_char
}

/// A DBN file written by the `dbn` crate, symbols given by symbol-mapping
/// records at its start (as a live feed gives them).
fn crate_dbn(dir: &Path, name: &str, schema: Schema, zstd: bool, records: &[Rec]) -> PathBuf {
    let path = dir.join(name);
    let metadata = Metadata::builder()
        .dataset("XNAS.ITCH")
        .schema(Some(schema))
        .start(DAY)
        .stype_in(Some(SType::RawSymbol))
        .stype_out(SType::InstrumentId)
        .build();
    let compression = if zstd {
        Compression::Zstd
    } else {
        Compression::None
    };
    let writer = DynWriter::new(File::create(&path).unwrap(), compression).unwrap();
    let mut enc = Encoder::new(writer, &metadata).unwrap();
    for (iid, sym) in [(AAPL, "AAPL"), (MSFT, "MSFT")] {
        let m = mapping(iid, sym);
        let msg = SymbolMappingMsg::new(
            iid,
            DAY,
            SType::RawSymbol,
            sym,
            SType::InstrumentId,
            sym,
            m.start_ts,
            m.end_ts,
        )
        .unwrap();
        enc.encode_record(&msg).unwrap();
    }
    for r in records {
        let ts_recv = r.ts + 1_000;
        match r.kind {
            "mbp-1" | "tbbo" => enc
                .encode_record(&Mbp1Msg {
                    hd: RecordHeader::new::<Mbp1Msg>(rtype::MBP_1, 2, r.iid, r.ts),
                    price: r.price,
                    size: r.size,
                    action: c(r.action),
                    side: c(r.side),
                    flags: FlagSet::default(),
                    depth: 0,
                    ts_recv,
                    ts_in_delta: 0,
                    sequence: 0,
                    levels: [level(&r.levels[0])],
                })
                .unwrap(),
            "mbp-10" => {
                let mut levels: [BidAskPair; 10] = Default::default();
                for (slot, l) in levels.iter_mut().zip(&r.levels) {
                    *slot = level(l);
                }
                enc.encode_record(&Mbp10Msg {
                    hd: RecordHeader::new::<Mbp10Msg>(rtype::MBP_10, 2, r.iid, r.ts),
                    price: r.price,
                    size: r.size,
                    action: c(r.action),
                    side: c(r.side),
                    flags: FlagSet::default(),
                    depth: 0,
                    ts_recv,
                    ts_in_delta: 0,
                    sequence: 0,
                    levels,
                })
                .unwrap()
            }
            "bbo-1s" | "bbo-1m" => {
                let rt = if r.kind == "bbo-1s" {
                    rtype::BBO_1S
                } else {
                    rtype::BBO_1M
                };
                let schema = if r.kind == "bbo-1s" {
                    Schema::Bbo1S
                } else {
                    Schema::Bbo1M
                };
                enc.encode_record(&BboMsg {
                    hd: RecordHeader::new::<BboMsg>(rt, 2, r.iid, r.ts),
                    price: r.price,
                    size: r.size,
                    side: c(r.side),
                    ts_recv,
                    levels: [level(&r.levels[0])],
                    ..BboMsg::default_for_schema(schema)
                })
                .unwrap()
            }
            "trades" => enc
                .encode_record(&TradeMsg {
                    hd: RecordHeader::new::<TradeMsg>(rtype::MBP_0, 2, r.iid, r.ts),
                    price: r.price,
                    size: r.size,
                    action: c("T"),
                    side: c(r.side),
                    flags: FlagSet::default(),
                    depth: 0,
                    ts_recv,
                    ts_in_delta: 0,
                    sequence: 0,
                })
                .unwrap(),
            other => panic!("no such kind {other}"),
        }
    }
    // Dropping the encoder finishes the zstd frame.
    drop(enc);
    path
}

fn import(path: &Path) -> Result<ImportReport<Cursor<Vec<u8>>>, ImportError> {
    let input = BufReader::new(File::open(path).unwrap());
    import_dbn(input, Cursor::new(Vec::new()), |_| {})
}

/// The ticks of a clean import, and its stats.
fn ticks(path: &Path) -> (Vec<Tick>, ImportStats) {
    let report = import(path).unwrap();
    assert_eq!(report.damage, None);
    (read_feed(report.out.into_inner()), report.stats)
}

fn read_feed(bytes: Vec<u8>) -> Vec<Tick> {
    let reader = FeedReader::from_reader(Cursor::new(bytes)).unwrap();
    assert_eq!(reader.header().source, Source::Imported);
    reader.collect::<Result<_, _>>().unwrap()
}

/// The tick the importer should write: prices in cents.
fn tick(
    sym: &str,
    seq: u64,
    us: u64,
    book: ((i64, u32), (i64, u32)),
    last: (f64, u32),
    volume: u64,
) -> Tick {
    let ts = OPEN + us * 1_000;
    Tick {
        sym: sym.into(),
        seq,
        ts,
        bid: book.0 .0 as f64 / 100.0,
        ask: book.1 .0 as f64 / 100.0,
        last: last.0,
        bid_size: book.0 .1,
        ask_size: book.1 .1,
        last_size: last.1,
        volume,
        orig_ts: Some(ts),
    }
}

const AAPL_1: ((i64, u32), (i64, u32)) = ((18_950, 300), (18_952, 500));
const AAPL_2: ((i64, u32), (i64, u32)) = ((18_950, 300), (18_952, 300));
const AAPL_3: ((i64, u32), (i64, u32)) = ((18_951, 400), (18_953, 200));
const MSFT_1: ((i64, u32), (i64, u32)) = ((41_210, 200), (41_213, 100));

/// An mbp-1 day: quotes, a trade, a one-sided book (no tick), a recovery.
fn mbp1_records(kind: &'static str) -> Vec<Rec> {
    vec![
        book(kind, AAPL, 100, AAPL_1.0, AAPL_1.1),
        book(kind, MSFT, 250, MSFT_1.0, MSFT_1.1),
        traded(book(kind, AAPL, 1_000, AAPL_2.0, AAPL_2.1), 18_952, 200),
        Rec {
            levels: vec![[UNDEF_PRICE, px(18_953), 0, 200]],
            ..rec(kind, AAPL, 1_200)
        },
        book(kind, AAPL, 1_500, AAPL_3.0, AAPL_3.1),
        traded(book(kind, MSFT, 2_000, MSFT_1.0, MSFT_1.1), 41_210, 100),
    ]
}

fn mbp1_expected() -> Vec<Tick> {
    let aapl_mid = (189.50 + 189.52) / 2.0;
    let msft_mid = (412.10 + 412.13) / 2.0;
    vec![
        tick("AAPL", 1, 100, AAPL_1, (aapl_mid, 0), 0),
        tick("MSFT", 1, 250, MSFT_1, (msft_mid, 0), 0),
        tick("AAPL", 2, 1_000, AAPL_2, (189.52, 200), 200),
        // 1,200 µs: no bid, no tick.
        tick("AAPL", 3, 1_500, AAPL_3, (189.52, 200), 200),
        tick("MSFT", 2, 2_000, MSFT_1, (412.10, 100), 100),
    ]
}

#[test]
fn mbp1_from_both_encoders_plain_and_zstd() {
    let dir = tempfile::tempdir().unwrap();
    let records = mbp1_records("mbp-1");
    let py = python_dbn(dir.path(), "py.dbn", Some("mbp-1"), &records);
    let (got, stats) = ticks(&py);
    assert_eq!(got, mbp1_expected());
    assert_eq!(
        stats,
        ImportStats {
            records: 5,
            symbols: 2,
            read: 6,
            skipped: 1
        }
    );
    for zstd in [false, true] {
        let name = if zstd { "rs.dbn.zst" } else { "rs.dbn" };
        let rs = crate_dbn(dir.path(), name, Schema::Mbp1, zstd, &records);
        let (got, stats) = ticks(&rs);
        assert_eq!(got, mbp1_expected(), "{name}");
        // Two symbol-mapping records more read and skipped.
        assert_eq!((stats.read, stats.skipped), (8, 3), "{name}");
    }
    // The header counts what was written.
    let report = import(&py).unwrap();
    let reader = FeedReader::from_reader(Cursor::new(report.out.into_inner())).unwrap();
    assert_eq!(reader.header().count, Some(5));
    assert_eq!(reader.header().symbols, 2);
}

#[test]
fn tbbo_ticks_every_trade_with_its_book() {
    let dir = tempfile::tempdir().unwrap();
    let records = vec![
        traded(book("tbbo", AAPL, 100, AAPL_1.0, AAPL_1.1), 18_952, 100),
        traded(book("tbbo", AAPL, 300, AAPL_2.0, AAPL_2.1), 18_950, 300),
    ];
    let want = vec![
        tick("AAPL", 1, 100, AAPL_1, (189.52, 100), 100),
        tick("AAPL", 2, 300, AAPL_2, (189.50, 300), 400),
    ];
    let py = python_dbn(dir.path(), "py.dbn", Some("tbbo"), &records);
    assert_eq!(ticks(&py).0, want);
    let rs = crate_dbn(dir.path(), "rs.dbn", Schema::Tbbo, false, &records);
    assert_eq!(ticks(&rs).0, want);
}

#[test]
fn bbo_bars_set_last_but_not_volume() {
    let dir = tempfile::tempdir().unwrap();
    for (kind, schema) in [("bbo-1s", Schema::Bbo1S), ("bbo-1m", Schema::Bbo1M)] {
        let records = vec![
            // No trade in the first interval yet.
            book(kind, AAPL, 1_000, AAPL_1.0, AAPL_1.1),
            Rec {
                price: px(18_951),
                size: 100,
                side: "B",
                ..book(kind, AAPL, 2_000, AAPL_3.0, AAPL_3.1)
            },
            // The same last trade repeated by the next bar.
            Rec {
                price: px(18_951),
                size: 100,
                side: "B",
                ..book(kind, AAPL, 3_000, AAPL_2.0, AAPL_2.1)
            },
        ];
        let want = vec![
            tick("AAPL", 1, 1_000, AAPL_1, ((189.50 + 189.52) / 2.0, 0), 0),
            tick("AAPL", 2, 2_000, AAPL_3, (189.51, 100), 0),
            tick("AAPL", 3, 3_000, AAPL_2, (189.51, 100), 0),
        ];
        let py = python_dbn(dir.path(), "py.dbn", Some(kind), &records);
        assert_eq!(ticks(&py).0, want, "{kind} python");
        let rs = crate_dbn(dir.path(), "rs.dbn", schema, false, &records);
        assert_eq!(ticks(&rs).0, want, "{kind} crate");
    }
}

#[test]
fn trades_tick_on_the_current_book_of_a_merged_file() {
    let dir = tempfile::tempdir().unwrap();
    let trade = |iid, us, cents, size| traded(rec("trades", iid, us), cents, size);
    // A trades-only file has no book: nothing to tick, all counted.
    let only = vec![trade(AAPL, 100, 18_952, 100), trade(MSFT, 200, 41_210, 50)];
    let py = python_dbn(dir.path(), "trades.dbn", Some("trades"), &only);
    let (got, stats) = ticks(&py);
    assert!(got.is_empty());
    assert_eq!((stats.read, stats.skipped), (2, 2));
    let rs = crate_dbn(dir.path(), "trades-rs.dbn", Schema::Trades, false, &only);
    assert_eq!(ticks(&rs).1.records, 0);
    // Merged with quotes (no single schema in the metadata).
    let merged = vec![
        trade(AAPL, 50, 18_952, 100), // before any book: no tick
        book("mbp-1", AAPL, 100, AAPL_1.0, AAPL_1.1),
        trade(AAPL, 200, 18_952, 100),
        trade(AAPL, 300, 18_950, 200),
    ];
    let want = vec![
        // The trade before the book already set `last` and `volume`.
        tick("AAPL", 1, 100, AAPL_1, (189.52, 100), 100),
        tick("AAPL", 2, 200, AAPL_1, (189.52, 100), 200),
        tick("AAPL", 3, 300, AAPL_1, (189.50, 200), 400),
    ];
    let py = python_dbn(dir.path(), "merged.dbn", None, &merged);
    assert_eq!(ticks(&py).0, want);
}

#[test]
fn mbp10_ticks_when_its_top_level_changes() {
    let dir = tempfile::tempdir().unwrap();
    let deep = [px(18_900), px(19_000), 900, 900];
    let top = |us, b: ((i64, u32), (i64, u32)), deeper: [i64; 4]| Rec {
        levels: vec![
            [px(b.0 .0), px(b.1 .0), i64::from(b.0 .1), i64::from(b.1 .1)],
            deeper,
        ],
        ..rec("mbp-10", AAPL, us)
    };
    let records = vec![
        top(100, AAPL_1, deep),
        // Only the second level changes: no tick.
        top(200, AAPL_1, [px(18_901), px(19_000), 900, 900]),
        top(300, AAPL_3, deep),
        // A trade ticks even when the top stays.
        traded(top(400, AAPL_3, deep), 18_953, 100),
    ];
    let want = vec![
        tick("AAPL", 1, 100, AAPL_1, ((189.50 + 189.52) / 2.0, 0), 0),
        tick("AAPL", 2, 300, AAPL_3, ((189.50 + 189.52) / 2.0, 0), 0),
        tick("AAPL", 3, 400, AAPL_3, (189.53, 100), 100),
    ];
    let py = python_dbn(dir.path(), "py.dbn", Some("mbp-10"), &records);
    let (got, stats) = ticks(&py);
    assert_eq!(got, want);
    assert_eq!((stats.read, stats.skipped), (4, 1));
    let rs = crate_dbn(dir.path(), "rs.dbn.zst", Schema::Mbp10, true, &records);
    assert_eq!(ticks(&rs).0, want);
}

#[test]
fn symbols_come_from_symbol_mapping_records_and_unmapped_ones_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    // Instrument 103 is in no mapping: its records are skipped, counted.
    let records = vec![
        mapping(103, "NVDA"),
        book("mbp-1", 104, 50, AAPL_1.0, AAPL_1.1),
        book("mbp-1", 103, 100, AAPL_1.0, AAPL_1.1),
    ];
    let py = python_dbn(dir.path(), "py.dbn", Some("mbp-1"), &records);
    let (got, stats) = ticks(&py);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].sym, "NVDA");
    assert_eq!((stats.read, stats.skipped), (3, 2));
}

#[test]
fn an_unknown_schema_is_an_error_naming_the_schema_field() {
    let dir = tempfile::tempdir().unwrap();
    let py = python_dbn(dir.path(), "ohlcv.dbn", Some("ohlcv-1s"), &[]);
    match import(&py) {
        Err(ImportError::Unsupported { offset, reason }) => {
            assert_eq!(offset, 24, "the schema field");
            assert!(reason.contains("ohlcv-1s"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // A schema number no DBN version has.
    let mut bytes = std::fs::read(python_dbn(dir.path(), "x.dbn", Some("mbp-1"), &[])).unwrap();
    bytes[24..26].copy_from_slice(&0xEEEEu16.to_le_bytes());
    let err = import_dbn(&bytes[..], Cursor::new(Vec::new()), |_| {}).unwrap_err();
    assert!(matches!(err, ImportError::Unsupported { .. }), "{err}");
    // Not DBN at all.
    let err = import_dbn(&b"ts,sym\n1,A\n"[..], Cursor::new(Vec::new()), |_| {}).unwrap_err();
    assert!(
        err.to_string().contains("not a readable DBN stream"),
        "{err}"
    );
}

#[test]
fn a_cut_record_keeps_every_tick_before_it_and_names_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let records = mbp1_records("mbp-1");
    let py = python_dbn(dir.path(), "py.dbn", Some("mbp-1"), &records);
    let bytes = std::fs::read(&py).unwrap();
    // The last record (80 bytes) loses its last 10.
    let cut = &bytes[..bytes.len() - 10];
    let last_record = (bytes.len() - 80) as u64;
    let report = import_dbn(cut, Cursor::new(Vec::new()), |_| {}).unwrap();
    let damage = report.damage.expect("damage");
    assert_eq!(damage.offset, last_record);
    assert!(damage
        .to_string()
        .contains(&format!("byte offset {last_record}")));
    let mut want = mbp1_expected();
    want.pop();
    assert_eq!(read_feed(report.out.into_inner()), want);

    // A cut inside a zstd stream (long enough to span several zstd blocks):
    // damage, with what decompressed before it kept.
    let long: Vec<Rec> = (0..8_000u64)
        .map(|i| {
            let b = if i % 2 == 0 { AAPL_1 } else { AAPL_3 };
            book("mbp-1", AAPL, 100 + i, b.0, b.1)
        })
        .collect();
    let zst = crate_dbn(dir.path(), "rs.dbn.zst", Schema::Mbp1, true, &long);
    let whole = ticks(&zst).0;
    assert_eq!(whole.len(), 8_000);
    let bytes = std::fs::read(&zst).unwrap();
    let report = import_dbn(&bytes[..bytes.len() - 10], Cursor::new(Vec::new()), |_| {}).unwrap();
    assert!(report.damage.is_some(), "a cut zstd stream is damage");
    let got = read_feed(report.out.into_inner());
    assert!(!got.is_empty() && got.len() < whole.len(), "{}", got.len());
    assert_eq!(got[..], whole[..got.len()]);

    // A record whose length field is impossible is damage at its offset.
    let mut bad = bytes_of(&py);
    let third = bad.len() - 4 * 80;
    bad[third] = 1; // length 1 × 4 bytes: shorter than any header
    let report = import_dbn(&bad[..], Cursor::new(Vec::new()), |_| {}).unwrap();
    assert_eq!(report.damage.map(|d| d.offset), Some(third as u64));
    assert_eq!(read_feed(report.out.into_inner()), mbp1_expected()[..2]);
}

fn bytes_of(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}
