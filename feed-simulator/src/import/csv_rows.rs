//! Importing a CSV of quotes and trades into a feed file.
//!
//! A quote row updates the symbol's book and keeps its last trade, a trade
//! row updates the last trade and the cumulative volume and keeps the book
//! (the state is [`TickSink`]'s). The columns are specified in
//! `docs/FEED_FORMAT.md`; every bad row is reported with its line number.

use std::collections::VecDeque;
use std::io::{self, Read, Seek, Write};

use csv::StringRecord;
use tickcast_protocol::control::validate_topic;
use tickcast_protocol::WILDCARD;

use super::sink::TickSink;
use super::{ImportError, ImportStats, PROGRESS_EVERY};
use crate::rfc3339;

/// Positions of the columns in the header row.
struct Columns {
    ts: usize,
    sym: usize,
    kind: usize,
    bid: Option<usize>,
    ask: Option<usize>,
    bid_size: Option<usize>,
    ask_size: Option<usize>,
    price: Option<usize>,
    size: Option<usize>,
}

impl Columns {
    fn find(header: &StringRecord) -> Result<Self, ImportError> {
        let find = |name: &'static str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
        let need = |name: &'static str| find(name).ok_or(ImportError::MissingColumn(name));
        Ok(Self {
            ts: need("ts")?,
            sym: need("sym")?,
            kind: need("kind")?,
            bid: find("bid"),
            ask: find("ask"),
            bid_size: find("bid_size"),
            ask_size: find("ask_size"),
            price: find("price"),
            size: find("size"),
        })
    }
}

/// A quote row's book: (price, size) of the bid and of the ask.
type Quote = ((f64, u32), (f64, u32));

/// Converts the CSV on `csv` into a feed file written to `out`, calling
/// `progress` with the CSV bytes consumed now and then. The header is
/// rewritten at the end with the final counts, hence `Seek`.
pub fn import_csv<R: Read, W: Write + Seek>(
    csv: R,
    out: W,
    mut progress: impl FnMut(u64),
) -> Result<(W, ImportStats), ImportError> {
    let mut rows = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(LineEnds::new(csv));
    let cols = Columns::find(rows.headers()?)?;
    let mut sink = TickSink::new(out)?;
    let mut prev_ts: Option<u64> = None;
    let mut row = StringRecord::new();
    let mut rows_read = 0u64;
    while rows.read_record(&mut row)? {
        let line = match row.position() {
            Some(p) => rows.get_mut().line_at(p.byte()),
            None => rows_read + 2,
        };
        let bad = |reason: String| ImportError::BadRow { line, reason };
        let ts = parse_ts(field(&row, Some(cols.ts))).map_err(&bad)?;
        if let Some(prev) = prev_ts.filter(|&prev| ts < prev) {
            return Err(bad(format!(
                "ts {ts} is earlier than the previous row's {prev}; rows must be in time order"
            )));
        }
        prev_ts = Some(ts);
        let sym = field(&row, Some(cols.sym));
        if sym == WILDCARD || validate_topic(sym).is_err() {
            return Err(bad(format!(
                "invalid symbol `{sym}`: use 1-32 letters, digits or .-_/:^"
            )));
        }
        match field(&row, Some(cols.kind)) {
            k if k.eq_ignore_ascii_case("quote") => {
                let (bid, ask) = parse_quote(&row, &cols).map_err(&bad)?;
                let id = sink.intern(sym);
                sink.quote(id, bid, ask);
                sink.emit(id, ts, None)?;
            }
            k if k.eq_ignore_ascii_case("trade") => {
                let price = parse_price(&row, cols.price, "price").map_err(&bad)?;
                let size = parse_size(&row, cols.size, "size").map_err(&bad)?;
                let id = sink.intern(sym);
                if !sink.has_book(id) {
                    return Err(bad(format!(
                        "trade for `{sym}` before its first quote (a tick needs a full book)"
                    )));
                }
                sink.trade(id, price, size, true);
                sink.emit(id, ts, None)?;
            }
            other => {
                return Err(bad(format!(
                    "kind must be `quote` or `trade`, not `{other}`"
                )))
            }
        }
        rows_read += 1;
        if rows_read % PROGRESS_EVERY == 0 {
            progress(rows.position().byte());
        }
    }
    progress(rows.position().byte());
    let (out, records, symbols) = sink.finish()?;
    Ok((
        out,
        ImportStats {
            records,
            symbols,
            read: rows_read,
            skipped: 0,
        },
    ))
}

/// The CSV input, noting where its lines end, so that a bad row's line
/// number is the one an editor shows whatever the line ends. The csv
/// crate ends records at `\r`, `\n` or `\r\n` but counts lines at `\n`
/// only, so in a file with bare `\r` line ends every row was "line 1"
/// (found by the `csv_import` fuzz target).
///
/// Only the line ends past the last row asked about are kept: as many as
/// the CSV reader has read ahead (its buffer), not one per line of the file.
struct LineEnds<R> {
    inner: R,
    /// Bytes read so far.
    read: u64,
    /// Whether the last byte read was `\r` (a `\n` next ends no new line).
    after_cr: bool,
    /// The offsets just past each line end not yet passed by `line_at`.
    ends: VecDeque<u64>,
    /// Line ends already passed.
    passed: u64,
}

impl<R: Read> LineEnds<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            read: 0,
            after_cr: false,
            ends: VecDeque::new(),
            passed: 0,
        }
    }

    /// The line (from 1) that the byte at `offset` is on. Offsets must not
    /// go backwards from one call to the next.
    fn line_at(&mut self, offset: u64) -> u64 {
        while self.ends.front().is_some_and(|&end| end <= offset) {
            self.ends.pop_front();
            self.passed += 1;
        }
        self.passed + 1
    }
}

impl<R: Read> Read for LineEnds<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            self.read += 1;
            match b {
                // `\r\n` is one line end, counted at its `\r`: the csv
                // crate starts the next row at the `\n`.
                b'\n' if self.after_cr => {}
                b'\r' | b'\n' => self.ends.push_back(self.read),
                _ => {}
            }
            self.after_cr = b == b'\r';
        }
        Ok(n)
    }
}

/// The trimmed text of a column (empty if the column is absent).
fn field(row: &StringRecord, col: Option<usize>) -> &str {
    col.and_then(|c| row.get(c)).unwrap_or("")
}

/// A timestamp: integer nanoseconds since the epoch, or RFC 3339 in UTC.
fn parse_ts(text: &str) -> Result<u64, String> {
    if let Ok(ns) = text.parse::<u64>() {
        return Ok(ns);
    }
    let since_epoch = rfc3339::parse(text).map_err(|e| {
        format!("ts `{text}` is neither nanoseconds since the epoch nor an RFC 3339 UTC time ({e})")
    })?;
    u64::try_from(since_epoch.as_nanos()).map_err(|_| format!("ts `{text}` is out of range"))
}

/// The book of a quote row.
fn parse_quote(row: &StringRecord, cols: &Columns) -> Result<Quote, String> {
    let bid = parse_price(row, cols.bid, "bid")?;
    let ask = parse_price(row, cols.ask, "ask")?;
    if bid > ask {
        return Err(format!("crossed quote: bid {bid} > ask {ask}"));
    }
    let bid_size = parse_size(row, cols.bid_size, "bid_size")?;
    let ask_size = parse_size(row, cols.ask_size, "ask_size")?;
    Ok(((bid, bid_size), (ask, ask_size)))
}

fn parse_price(row: &StringRecord, col: Option<usize>, name: &str) -> Result<f64, String> {
    let text = field(row, col);
    match text.parse::<f64>() {
        Ok(p) if p.is_finite() && p >= 0.0 => Ok(p),
        _ => Err(format!(
            "`{name}` must be a non-negative price, not `{text}`"
        )),
    }
}

fn parse_size(row: &StringRecord, col: Option<usize>, name: &str) -> Result<u32, String> {
    let text = field(row, col);
    text.parse::<u32>().map_err(|_| {
        format!(
            "`{name}` must be a whole number of shares up to {}, not `{text}`",
            u32::MAX
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad_line(csv: &str) -> u64 {
        match import_csv(csv.as_bytes(), io::Cursor::new(Vec::new()), |_| {}) {
            Err(ImportError::BadRow { line, .. }) => line,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_rows_are_named_by_line_whatever_the_line_ends() {
        let rows = [
            "ts,sym,kind,bid,ask,bid_size,ask_size,price,size",
            "1,A,quote,1,2,3,4,,",
            "2,A,quote,1,2,3,4,,",
            "3,A,oops,,,,,,",
        ];
        for end in ["\n", "\r\n", "\r"] {
            assert_eq!(bad_line(&rows.join(end)), 4, "line ends {end:?}");
        }
        // Found by the csv_import fuzz target: a bare `\r` inside the
        // header row, then the first row, was reported at line 1.
        assert_eq!(bad_line("ts,sym,kind\r1,A,trade\n"), 2);
        // A quoted field over two lines: the next row starts a line later.
        let quoted = format!("{}\n1,\"A\nB\",quote,1,2,3,4,,\n2,A,oops,,,,,,", rows[0]);
        assert_eq!(bad_line(&quoted), 2, "the quoted symbol is the bad row");
        let quoted = format!("{}\n1,A,quote,1,2,3,4,\"\n\",\n2,A,oops,,,,,,", rows[0]);
        assert_eq!(bad_line(&quoted), 4);
    }

    #[test]
    fn line_ends_split_across_reads_count_once() {
        struct OneByte<'a>(&'a [u8]);
        impl Read for OneByte<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let Some((&b, rest)) = self.0.split_first() else {
                    return Ok(0);
                };
                buf[0] = b;
                self.0 = rest;
                Ok(1)
            }
        }
        let mut ends = LineEnds::new(OneByte(b"a\r\nb\rc\n\nd"));
        io::copy(&mut ends, &mut io::sink()).unwrap();
        let lines: Vec<u64> = [0, 3, 4, 6, 7, 8]
            .iter()
            .map(|&at| ends.line_at(at))
            .collect();
        assert_eq!(lines, [1, 2, 2, 3, 4, 5]);
    }
}
