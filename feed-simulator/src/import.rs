//! Importing a CSV of quotes and trades into a feed file.
//!
//! Real data comes as separate quote and trade events; a tick carries the
//! whole top of book and last trade. The importer keeps that state per
//! symbol, so every output tick is complete: a quote row updates the book
//! and keeps the last trade, a trade row updates the last trade and the
//! cumulative volume and keeps the book. Each symbol's `seq` counts from 1.
//! The columns are specified in `docs/FEED_FORMAT.md`; every bad row is
//! reported with its line number.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Seek, SeekFrom, Write};

use csv::StringRecord;
use tickcast_protocol::control::validate_topic;
use tickcast_protocol::{TickRef, WILDCARD};

use crate::file::{FeedHeader, FeedWriter, Source};
use crate::rfc3339;

/// How often (in rows) the progress callback hears from [`import_csv`].
const PROGRESS_EVERY: u64 = 16 * 1024;

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A row has a bad value.
    #[error("line {line}: {reason}")]
    BadRow {
        /// Line number in the CSV file (the header is line 1).
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// The header row lacks a required column.
    #[error("the CSV header has no `{0}` column")]
    MissingColumn(&'static str),
    /// The CSV itself is malformed (the message names the line).
    #[error(transparent)]
    Csv(#[from] csv::Error),
    /// Writing the feed file failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// What an import produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportStats {
    /// Ticks written.
    pub records: u64,
    /// Distinct symbols.
    pub symbols: usize,
}

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

/// The running state of one symbol; prices are as given (not rounded).
#[derive(Debug, Clone, Copy)]
struct SymbolState {
    bid: f64,
    ask: f64,
    bid_size: u32,
    ask_size: u32,
    last: f64,
    last_size: u32,
    volume: u64,
    seq: u64,
}

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
    let mut header = FeedHeader {
        source: Source::Imported,
        symbols: 0,
        rate: 0.0,
        seed: 0,
        count: None,
        open_burst: false,
    };
    let mut writer = FeedWriter::new(out, &header)?;
    let mut books: HashMap<String, SymbolState> = HashMap::new();
    let mut time_range: Option<(u64, u64)> = None;
    let mut row = StringRecord::new();
    let mut rows_read = 0u64;
    while rows.read_record(&mut row)? {
        let line = match row.position() {
            Some(p) => rows.get_mut().line_at(p.byte()),
            None => rows_read + 2,
        };
        let bad = |reason: String| ImportError::BadRow { line, reason };
        let ts = parse_ts(field(&row, Some(cols.ts))).map_err(&bad)?;
        if let Some((_, prev)) = time_range.filter(|&(_, prev)| ts < prev) {
            return Err(bad(format!(
                "ts {ts} is earlier than the previous row's {prev}; rows must be in time order"
            )));
        }
        time_range = Some((time_range.map_or(ts, |r| r.0), ts));
        let sym = field(&row, Some(cols.sym));
        if sym == WILDCARD || validate_topic(sym).is_err() {
            return Err(bad(format!(
                "invalid symbol `{sym}`: use 1-32 letters, digits or .-_/:^"
            )));
        }
        let state = match field(&row, Some(cols.kind)) {
            k if k.eq_ignore_ascii_case("quote") => {
                let quote = parse_quote(&row, &cols).map_err(&bad)?;
                let state = books.entry(sym.to_owned()).or_insert(SymbolState {
                    last: (quote.bid + quote.ask) / 2.0,
                    ..quote
                });
                state.bid = quote.bid;
                state.ask = quote.ask;
                state.bid_size = quote.bid_size;
                state.ask_size = quote.ask_size;
                state
            }
            k if k.eq_ignore_ascii_case("trade") => {
                let price = parse_price(&row, cols.price, "price").map_err(&bad)?;
                let size = parse_size(&row, cols.size, "size").map_err(&bad)?;
                let state = books.get_mut(sym).ok_or_else(|| {
                    bad(format!(
                        "trade for `{sym}` before its first quote (a tick needs a full book)"
                    ))
                })?;
                state.last = price;
                state.last_size = size;
                state.volume = state.volume.saturating_add(u64::from(size));
                state
            }
            other => {
                return Err(bad(format!(
                    "kind must be `quote` or `trade`, not `{other}`"
                )))
            }
        };
        state.seq += 1;
        writer.write_tick(&TickRef {
            sym,
            seq: state.seq,
            ts,
            bid: state.bid,
            ask: state.ask,
            last: state.last,
            bid_size: state.bid_size,
            ask_size: state.ask_size,
            last_size: state.last_size,
            volume: state.volume,
            orig_ts: None,
        })?;
        rows_read += 1;
        if rows_read % PROGRESS_EVERY == 0 {
            progress(rows.position().byte());
        }
    }
    progress(rows.position().byte());
    let records = writer.records();
    let mut out = writer.finish()?;
    header.symbols = u32::try_from(books.len()).unwrap_or(u32::MAX);
    header.count = Some(records);
    if let Some((first, last)) = time_range.filter(|_| records > 1) {
        let span_s = (last - first) as f64 / 1e9;
        if span_s > 0.0 {
            header.rate = (records - 1) as f64 / span_s;
        }
    }
    out.seek(SeekFrom::Start(0))?;
    out.write_all(&header.to_bytes())?;
    out.flush()?;
    Ok((
        out,
        ImportStats {
            records,
            symbols: books.len(),
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

/// The book of a quote row (last-trade fields zero).
fn parse_quote(row: &StringRecord, cols: &Columns) -> Result<SymbolState, String> {
    let bid = parse_price(row, cols.bid, "bid")?;
    let ask = parse_price(row, cols.ask, "ask")?;
    if bid > ask {
        return Err(format!("crossed quote: bid {bid} > ask {ask}"));
    }
    Ok(SymbolState {
        bid,
        ask,
        bid_size: parse_size(row, cols.bid_size, "bid_size")?,
        ask_size: parse_size(row, cols.ask_size, "ask_size")?,
        last: 0.0,
        last_size: 0,
        volume: 0,
        seq: 0,
    })
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
