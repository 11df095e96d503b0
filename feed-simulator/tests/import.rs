//! CSV import: full-state ticks from separate quotes and trades, per-symbol
//! seq, both timestamp forms, and bad rows named by line number.

use std::io::Cursor;

use feed_simulator::file::{FeedReader, Source};
use feed_simulator::import::{import_csv, ImportError};
use tickcast_protocol::Tick;

const OPEN_NS: u64 = 1_767_623_400_000_000_000;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(path).unwrap()
}

fn import(csv: &[u8]) -> Result<Vec<u8>, ImportError> {
    import_csv(csv, Cursor::new(Vec::new()), |_| {}).map(|(out, _)| out.into_inner())
}

/// The error of importing a CSV made of `rows` under the standard header.
fn import_error(rows: &str) -> String {
    let csv = format!("ts,sym,kind,bid,ask,bid_size,ask_size,price,size\n{rows}");
    import(csv.as_bytes()).unwrap_err().to_string()
}

fn tick(
    sym: &str,
    seq: u64,
    ts_us: u64,
    book: (f64, f64, u32, u32),
    last: (f64, u32),
    volume: u64,
) -> Tick {
    Tick {
        sym: sym.into(),
        seq,
        ts: OPEN_NS + ts_us * 1_000,
        bid: book.0,
        ask: book.1,
        last: last.0,
        bid_size: book.2,
        ask_size: book.3,
        last_size: last.1,
        volume,
        orig_ts: None,
    }
}

#[test]
fn fixture_imports_into_full_state_ticks() {
    let csv = fixture("quotes_trades.csv");
    let (out, stats) = import_csv(&csv[..], Cursor::new(Vec::new()), |_| {}).unwrap();
    assert_eq!(stats.records, 8);
    assert_eq!(stats.symbols, 3);
    let reader = FeedReader::from_reader(Cursor::new(out.into_inner())).unwrap();
    let header = reader.header().clone();
    assert_eq!(header.source, Source::Imported);
    assert_eq!(header.count, Some(8));
    assert_eq!(header.symbols, 3);
    // 7 gaps over 3.9 ms.
    assert!(
        (header.rate - 7.0 / 0.0039).abs() < 1.0,
        "rate {}",
        header.rate
    );
    let got: Vec<Tick> = reader.collect::<Result<_, _>>().unwrap();
    let aapl_1 = (189.50, 189.52, 300, 500);
    let aapl_2 = (189.51, 189.53, 400, 300);
    let msft_1 = (412.10, 412.13, 200, 100);
    let want = vec![
        // The first quote's `last` is its mid, with no trade yet.
        tick("AAPL", 1, 100, aapl_1, (189.51, 0), 0),
        tick("MSFT", 1, 250, msft_1, ((412.10 + 412.13) / 2.0, 0), 0),
        tick("AAPL", 2, 1_000, aapl_1, (189.52, 200), 200),
        tick("AAPL", 3, 1_500, aapl_2, (189.52, 200), 200),
        tick("MSFT", 2, 2_000, msft_1, (412.10, 100), 100),
        tick(
            "BRK.B",
            1,
            2_000,
            (471.05, 471.20, 100, 100),
            ((471.05 + 471.20) / 2.0, 0),
            0,
        ),
        tick("AAPL", 4, 3_000, aapl_2, (189.51, 300), 500),
        tick(
            "MSFT",
            3,
            4_000,
            (412.11, 412.12, 100, 300),
            (412.10, 100),
            100,
        ),
    ];
    assert_eq!(got, want);
}

#[test]
fn bad_row_fixture_names_its_line() {
    let err = import(&fixture("bad_row.csv")).unwrap_err();
    assert!(
        matches!(&err, ImportError::BadRow { line: 4, reason } if reason.contains("crossed")),
        "{err}"
    );
    assert!(err.to_string().starts_with("line 4: "), "{err}");
}

#[test]
fn each_kind_of_bad_row_is_explained() {
    let quote = "1,AAPL,quote,1.00,1.01,100,100,,";
    let cases = [
        ("x,AAPL,quote,1,2,100,100,,", "line 2: ts `x`"),
        ("1,A B,quote,1,2,100,100,,", "invalid symbol `A B`"),
        ("1,*,quote,1,2,100,100,,", "invalid symbol `*`"),
        (
            "1,AAPL,order,1,2,100,100,,",
            "kind must be `quote` or `trade`",
        ),
        (
            "1,AAPL,trade,,,,,1.00,100",
            "trade for `AAPL` before its first quote",
        ),
        (
            "1,AAPL,quote,-1,2,100,100,,",
            "`bid` must be a non-negative price",
        ),
        (
            "1,AAPL,quote,1,NaN,100,100,,",
            "`ask` must be a non-negative price",
        ),
        (
            "1,AAPL,quote,1,2,1.5,100,,",
            "`bid_size` must be a whole number",
        ),
        (
            "1,AAPL,quote,1,2,100,,,",
            "`ask_size` must be a whole number",
        ),
    ];
    for (row, want) in cases {
        let err = import_error(&format!("{row}\n"));
        assert!(err.contains(want), "{row}: {err}");
        assert!(err.starts_with("line 2: "), "{row}: {err}");
    }
    let err = import_error(&format!("{quote}\n5,AAPL,trade,,,,,1.00,x\n"));
    assert!(err.starts_with("line 3: `size` must be"), "{err}");
    let err = import_error(&format!("5,AAPL,quote,1,2,1,1,,\n{quote}\n"));
    assert!(err.starts_with("line 3: ts 1 is earlier"), "{err}");
    // A row with the wrong number of fields: the CSV layer names the line.
    let err = import_error(&format!("{quote}\n1,AAPL\n"));
    assert!(err.contains("line: 3"), "{err}");
}

#[test]
fn missing_columns_are_named() {
    let err = import(b"ts,kind,bid\n").unwrap_err();
    assert!(matches!(err, ImportError::MissingColumn("sym")), "{err}");
    // Trade-only files need no quote columns until a quote appears.
    let csv = b"ts,sym,kind,price,size\n1,AAPL,quote,1,1\n";
    let err = import(csv).unwrap_err().to_string();
    assert!(err.contains("`bid` must be"), "{err}");
}

#[test]
fn empty_csv_gives_an_empty_feed() {
    let out = import(b"ts,sym,kind\n").unwrap();
    let reader = FeedReader::from_reader(Cursor::new(out)).unwrap();
    assert_eq!(reader.header().count, Some(0));
    assert_eq!(reader.count(), 0);
}
