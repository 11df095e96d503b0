//! Importing real market data into feed files: a CSV of quotes and trades,
//! Databento's DBN (`mbp-1`, `tbbo`, `bbo-1s`/`bbo-1m`, `trades`, the top of
//! `mbp-10`), and NASDAQ TotalView-ITCH 5.0 order messages.
//!
//! Each format has its own reader; all of them feed one [`sink::TickSink`],
//! which keeps every symbol's book and last trade and writes complete ticks,
//! so the rules of what a tick is are written once. The formats and their
//! mapping onto ticks are specified in `docs/FEED_FORMAT.md`.
//!
//! A CSV's bad row is an error (and the CLI removes the partial file: a CSV
//! is usually typed by hand and fixed). A damaged DBN or ITCH file is a
//! download or a capture cut short, so its import keeps every tick before
//! the damage, finishes the file, and reports the damage with its byte offset
//! in [`ImportReport::damage`].

mod csv_rows;
mod dbn_records;
mod itch;
mod sink;

use std::io;

pub use csv_rows::import_csv;
pub use dbn_records::import_dbn;
pub use itch::{import_itch, ItchOptions};

/// How often (in input records) the progress callback hears from an import.
const PROGRESS_EVERY: u64 = 16 * 1024;

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A CSV row has a bad value.
    #[error("line {line}: {reason}")]
    BadRow {
        /// Line number in the CSV file (the header is line 1).
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// The CSV header row lacks a required column.
    #[error("the CSV header has no `{0}` column")]
    MissingColumn(&'static str),
    /// The CSV itself is malformed (the message names the line).
    #[error(transparent)]
    Csv(#[from] ::csv::Error),
    /// The input cannot be imported at all (not the format, or a schema or
    /// version this importer does not read); `offset` is where in the input
    /// the deciding bytes are.
    #[error("at byte offset {offset}: {reason}")]
    Unsupported {
        /// Byte offset of the offending field.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Reading the input or writing the feed file failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Damage found part-way through a DBN or ITCH input: everything before
/// `offset` was imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("input is damaged at byte offset {offset}: {reason} (the ticks before it were kept)")]
pub struct Damage {
    /// Byte offset of the first record that could not be read (for a
    /// compressed input: in the decompressed stream).
    pub offset: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// What an import produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportStats {
    /// Ticks written.
    pub records: u64,
    /// Distinct symbols with at least one tick.
    pub symbols: usize,
    /// Input records read (CSV rows, DBN records, ITCH messages).
    pub read: u64,
    /// Input records that made no tick: message types that do not touch
    /// the book, other symbols, a one-sided or crossed book, unmapped
    /// instruments (see each format's section in `docs/FEED_FORMAT.md`).
    pub skipped: u64,
}

/// The outcome of a DBN or ITCH import that got as far as writing a file.
#[derive(Debug)]
pub struct ImportReport<W> {
    /// The finished feed file (header rewritten with the final counts).
    pub out: W,
    /// What was imported.
    pub stats: ImportStats,
    /// Where the input was damaged, if it was; the file holds every tick
    /// before it.
    pub damage: Option<Damage>,
}
