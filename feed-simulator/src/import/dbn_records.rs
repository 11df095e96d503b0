//! Importing Databento Binary Encoding (DBN) files, plain or zstd-compressed,
//! through the `dbn` crate.
//!
//! Schemas: `mbp-1` and `tbbo` (one tick per record; a record whose action
//! is a trade also sets `last`, `last_size` and adds to `volume`),
//! `bbo-1s`/`bbo-1m` (one tick per record; the bar's last trade sets `last`
//! but not `volume`, since consecutive bars repeat it), `trades` (sets the
//! last trade and volume and ticks on the symbol's current book, so it
//! ticks only in a file that also has quotes) and the top level of `mbp-10`
//! (a tick when the top level changes or on a trade). A file without one
//! schema (a merged stream) is read record by record by type.
//!
//! Symbols come from the metadata's mappings and from symbol-mapping
//! records (instrument id → symbol for a time range, `dbn::TsSymbolMap`).
//! `ts_event` is the tick's event time and its `orig_ts`; prices (fixed
//! point, 1e-9) become the nearest `f64`, as a CSV's decimal text does.
//!
//! Offsets: the `dbn` decoder takes a file that ends inside a record for a
//! clean end, so the bytes it was given and the records it returned are
//! counted here, and a difference is reported as the damage it is. For a
//! zstd file, offsets are in the decompressed stream.

use std::io::{self, BufReader, ErrorKind, Read, Seek, Write};

use dbn::decode::dbn::Decoder;
use dbn::decode::{DbnMetadata, DynReader};
use dbn::{
    rtype, BboMsg, BidAskPair, Mbp10Msg, Mbp1Msg, Record, RecordRef, Schema, TradeMsg, TsSymbolMap,
    VersionUpgradePolicy, UNDEF_PRICE, UNDEF_TIMESTAMP,
};
use rustc_hash::FxHashMap;
use tickcast_protocol::control::validate_topic;
use tickcast_protocol::WILDCARD;

use super::sink::{fixed_price, SymbolId, TickSink};
use super::{Damage, ImportError, ImportReport, ImportStats, PROGRESS_EVERY};

/// DBN's fixed-point price scale: units of 1e-9.
const PRICE_SCALE: f64 = 1e9;

/// Offset of the schema field in the metadata (after "DBN", the version,
/// the length and the 16-byte dataset).
const SCHEMA_OFFSET: u64 = 24;

/// The compressed or plain input, buffered: large sequential reads.
const INPUT_BUFFER: usize = 256 * 1024;

/// Counts the bytes a reader hands out (and keeps the first eight, the
/// DBN prefix that holds the metadata length); notes an early end of a
/// compressed stream, which the decoder would otherwise take for a clean
/// end.
struct Counted<R> {
    inner: R,
    count: u64,
    prefix: [u8; 8],
    cut: bool,
}

impl<R> Counted<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            count: 0,
            prefix: [0; 8],
            cut: false,
        }
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) => {
                self.cut |= e.kind() == ErrorKind::UnexpectedEof;
                return Err(e);
            }
        };
        let seen = self.count.min(8) as usize;
        let take = (8 - seen).min(n);
        self.prefix[seen..seen + take].copy_from_slice(&buf[..take]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Which record types the file's schema lets through.
#[derive(Clone, Copy)]
struct Accepts {
    mbp1: bool,
    mbp10: bool,
    bbo: bool,
    trades: bool,
}

impl Accepts {
    fn for_schema(schema: Option<Schema>) -> Option<Self> {
        let only = |mbp1, mbp10, bbo, trades| Accepts {
            mbp1,
            mbp10,
            bbo,
            trades,
        };
        Some(match schema {
            None => only(true, true, true, true),
            Some(Schema::Mbp1 | Schema::Tbbo) => only(true, false, false, false),
            Some(Schema::Mbp10) => only(false, true, false, false),
            Some(Schema::Bbo1S | Schema::Bbo1M) => only(false, false, true, false),
            Some(Schema::Trades) => only(false, false, false, true),
            Some(_) => return None,
        })
    }
}

/// Converts the DBN stream on `input` (plain or zstd, detected) into a feed
/// file written to `out`, calling `progress` with the input bytes consumed
/// now and then. Damage part-way is reported in the result's `damage`,
/// with every tick before it written.
pub fn import_dbn<R: Read, W: Write + Seek>(
    input: R,
    out: W,
    mut progress: impl FnMut(u64),
) -> Result<ImportReport<W>, ImportError> {
    let raw = BufReader::with_capacity(INPUT_BUFFER, Counted::new(input));
    let stream = DynReader::inferred_with_buffer(raw).map_err(|e| unreadable(0, e))?;
    // As is: records keep their size in the file, so offsets add up. The
    // record types read here have one layout in every DBN version.
    let mut decoder =
        Decoder::with_upgrade_policy(Counted::new(stream), VersionUpgradePolicy::AsIs)
            .map_err(|e| unreadable(0, e))?;
    let metadata = decoder.metadata().clone();
    let accepts = Accepts::for_schema(metadata.schema).ok_or_else(|| ImportError::Unsupported {
        offset: SCHEMA_OFFSET,
        reason: format!(
            "DBN schema `{}` is not importable (mbp-1, tbbo, bbo-1s, bbo-1m, trades, mbp-10 are)",
            metadata.schema.map_or("mixed", |s| s.as_str())
        ),
    })?;
    let mut symbols = TsSymbolMap::from_metadata(&metadata).map_err(|e| unreadable(0, e))?;
    let prefix = decoder.get_ref().prefix;
    let mut offset = 8 + u64::from(u32::from_le_bytes([
        prefix[4], prefix[5], prefix[6], prefix[7],
    ]));

    let mut sink = TickSink::new(out)?;
    let mut state = Records {
        accepts,
        ids: FxHashMap::default(),
        read: 0,
        skipped: 0,
    };
    let damage = loop {
        let record = match decoder.decode_ref() {
            Ok(Some(record)) => record,
            Ok(None) => {
                let counted = decoder.get_ref();
                break if counted.count > offset {
                    Some(Damage {
                        offset,
                        reason: format!(
                            "the input ends inside a record ({} of its bytes present)",
                            counted.count - offset
                        ),
                    })
                } else if counted.cut {
                    Some(Damage {
                        offset,
                        reason: "the compressed stream ends early".to_owned(),
                    })
                } else {
                    None
                };
            }
            Err(e) => {
                break Some(Damage {
                    offset,
                    reason: e.to_string(),
                })
            }
        };
        let size = record.record_size() as u64;
        if let Err(reason) = state.apply(&record, &mut symbols, &mut sink)? {
            break Some(Damage { offset, reason });
        }
        offset += size;
        if state.read % PROGRESS_EVERY == 0 {
            progress(decoder.get_ref().inner.get_ref().get_ref().count);
        }
    };
    progress(decoder.get_ref().inner.get_ref().get_ref().count);
    let (out, records, symbol_count) = sink.finish()?;
    Ok(ImportReport {
        out,
        stats: ImportStats {
            records,
            symbols: symbol_count,
            read: state.read,
            skipped: state.skipped,
        },
        damage,
    })
}

/// A DBN error before any record: the input is not something we can read.
fn unreadable(offset: u64, e: dbn::Error) -> ImportError {
    match e {
        dbn::Error::Io { source, .. } if source.kind() != ErrorKind::UnexpectedEof => {
            ImportError::Io(source)
        }
        other => ImportError::Unsupported {
            offset,
            reason: format!("not a readable DBN stream: {other}"),
        },
    }
}

/// The per-record state of an import.
struct Records {
    accepts: Accepts,
    /// Instrument id → the sink's id of its symbol and the time range
    /// that mapping holds for. Cleared when a symbol-mapping record arrives.
    ids: FxHashMap<u32, (SymbolId, u64, u64)>,
    read: u64,
    skipped: u64,
}

/// One side of a book from a DBN level (`None`: undefined).
fn sides(level: &BidAskPair) -> Option<((f64, u32), (f64, u32))> {
    if level.bid_px == UNDEF_PRICE || level.ask_px == UNDEF_PRICE {
        return None;
    }
    Some((
        (fixed_price(level.bid_px, PRICE_SCALE), level.bid_sz),
        (fixed_price(level.ask_px, PRICE_SCALE), level.ask_sz),
    ))
}

/// What a record asks of the sink.
struct Event<'a> {
    level: Option<&'a BidAskPair>,
    /// A trade: price, size, whether it adds to `volume`.
    trade: Option<(i64, u32, bool)>,
    /// Tick only when the top level changed (or on a trade): `mbp-10`.
    only_on_change: bool,
    /// The receive time, for a record without an event time.
    ts_recv: u64,
}

impl Records {
    /// Applies one record; `Ok(Err(reason))` is damage in the record.
    fn apply<W: Write + Seek>(
        &mut self,
        record: &RecordRef<'_>,
        symbols: &mut TsSymbolMap,
        sink: &mut TickSink<W>,
    ) -> io::Result<Result<(), String>> {
        self.read += 1;
        let hd = record.header();
        let event = match hd.rtype {
            rtype::SYMBOL_MAPPING => {
                if let Err(e) = symbols.on_record(*record) {
                    return Ok(Err(format!("bad symbol mapping record: {e}")));
                }
                self.ids.clear();
                self.skipped += 1;
                return Ok(Ok(()));
            }
            rtype::MBP_1 if self.accepts.mbp1 => match record.try_get::<Mbp1Msg>() {
                Ok(m) => Event {
                    level: Some(&m.levels[0]),
                    trade: (m.action as u8 == b'T').then_some((m.price, m.size, true)),
                    only_on_change: false,
                    ts_recv: m.ts_recv,
                },
                Err(e) => return Ok(Err(e.to_string())),
            },
            rtype::MBP_10 if self.accepts.mbp10 => match record.try_get::<Mbp10Msg>() {
                Ok(m) => Event {
                    level: Some(&m.levels[0]),
                    trade: (m.action as u8 == b'T').then_some((m.price, m.size, true)),
                    only_on_change: true,
                    ts_recv: m.ts_recv,
                },
                Err(e) => return Ok(Err(e.to_string())),
            },
            rtype::BBO_1S | rtype::BBO_1M if self.accepts.bbo => match record.try_get::<BboMsg>() {
                Ok(m) => Event {
                    level: Some(&m.levels[0]),
                    trade: (m.price != UNDEF_PRICE).then_some((m.price, m.size, false)),
                    only_on_change: false,
                    ts_recv: m.ts_recv,
                },
                Err(e) => return Ok(Err(e.to_string())),
            },
            rtype::MBP_0 if self.accepts.trades => match record.try_get::<TradeMsg>() {
                Ok(m) => Event {
                    level: None,
                    trade: Some((m.price, m.size, true)),
                    only_on_change: false,
                    ts_recv: m.ts_recv,
                },
                Err(e) => return Ok(Err(e.to_string())),
            },
            // Status, statistics, system and error messages, definitions,
            // and records of other schemas in a merged file.
            _ => {
                self.skipped += 1;
                return Ok(Ok(()));
            }
        };
        let ts_event = if hd.ts_event == UNDEF_TIMESTAMP {
            event.ts_recv
        } else {
            hd.ts_event
        };
        let Some(id) = self.symbol(hd.instrument_id, ts_event, symbols, sink) else {
            self.skipped += 1;
            return Ok(Ok(()));
        };
        let mut changed = false;
        if let Some(level) = event.level {
            match sides(level) {
                Some((bid, ask)) => changed = sink.quote(id, bid, ask),
                None => sink.clear_book(id),
            }
        }
        if let Some((price, size, counts)) = event.trade.filter(|t| t.0 != UNDEF_PRICE) {
            sink.trade(id, fixed_price(price, PRICE_SCALE), size, counts);
            changed = true;
        }
        if (event.only_on_change && !changed) || !sink.emit(id, ts_event, Some(ts_event))? {
            self.skipped += 1;
        }
        Ok(Ok(()))
    }

    /// The sink's id for the instrument's symbol at `ts`, if it has a
    /// usable one (mapped, and a valid tickcast symbol).
    fn symbol<W: Write + Seek>(
        &mut self,
        instrument_id: u32,
        ts: u64,
        symbols: &TsSymbolMap,
        sink: &mut TickSink<W>,
    ) -> Option<SymbolId> {
        // A cached answer holds for the mapping interval it came from.
        if let Some(&(id, start, end)) = self.ids.get(&instrument_id) {
            if (start..end).contains(&ts) {
                return Some(id);
            }
        }
        let resolved = symbols
            .inner()
            .get(&instrument_id)
            .and_then(|intervals| {
                intervals
                    .intervals()
                    .iter()
                    .find(|i| (i.start_ts..i.end_ts).contains(&ts))
            })
            .filter(|i| i.symbol != WILDCARD && validate_topic(&i.symbol).is_ok())
            .map(|i| (sink.intern(&i.symbol), i.start_ts, i.end_ts));
        // Only a hit is kept: an instrument with no mapping now may have
        // one later (a later interval, or a symbol-mapping record).
        let (id, start, end) = resolved?;
        self.ids.insert(instrument_id, (id, start, end));
        Some(id)
    }
}
