//! The state every importer keeps, and the feed file its ticks go to.
//!
//! Real data arrives as separate quote, trade and order events; a tick carries
//! the whole top of book and last trade of its symbol. [`TickSink`] keeps that
//! state per symbol, so each importer (CSV, DBN, ITCH) only turns its input
//! into `quote` / `trade` / `emit` calls: the rules about what a complete tick
//! is, the per-symbol `seq`, the cumulative `volume`, time order and the final
//! header live here once.
//!
//! Symbols are interned to dense ids once ([`TickSink::intern`]), so an
//! importer's hot path (ITCH: millions of messages a second) indexes a vector
//! instead of hashing a name per event.

use std::collections::HashMap;
use std::io::{self, Seek, SeekFrom, Write};

use tickcast_protocol::TickRef;

use crate::file::{FeedHeader, FeedWriter, Source};

/// A symbol's index in the sink, from [`TickSink::intern`].
pub(crate) type SymbolId = u32;

/// The running state of one symbol.
#[derive(Debug)]
struct SymbolState {
    name: Box<str>,
    bid: f64,
    ask: f64,
    bid_size: u32,
    ask_size: u32,
    /// Whether both sides of the book are known (a tick needs both).
    has_book: bool,
    last: f64,
    last_size: u32,
    /// Whether `last` is a real trade (until then it is the first quote's
    /// mid).
    traded: bool,
    /// Whether the symbol has had an uncrossed quote.
    quoted: bool,
    volume: u64,
    /// The `seq` of the last tick written (0: none yet).
    seq: u64,
}

/// Per-symbol state plus the feed file being written.
pub(crate) struct TickSink<W: Write> {
    writer: FeedWriter<W>,
    ids: HashMap<Box<str>, SymbolId>,
    symbols: Vec<SymbolState>,
    /// The event time of the first and the latest tick written.
    time_range: Option<(u64, u64)>,
    /// The header as it will be rewritten at the end.
    header: FeedHeader,
}

impl<W: Write + Seek> TickSink<W> {
    /// Starts an imported feed file on `out` (its header is rewritten by
    /// [`finish`](Self::finish) with the final counts, hence `Seek`).
    pub(crate) fn new(out: W) -> io::Result<Self> {
        let header = FeedHeader {
            source: Source::Imported,
            symbols: 0,
            rate: 0.0,
            seed: 0,
            count: None,
            open_burst: false,
            session: false,
        };
        Ok(Self {
            writer: FeedWriter::new(out, &header)?,
            ids: HashMap::new(),
            symbols: Vec::new(),
            time_range: None,
            header,
        })
    }

    /// The id of `name`, adding it on first sight. The caller has checked
    /// the name (`validate_topic`).
    pub(crate) fn intern(&mut self, name: &str) -> SymbolId {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        // More than 4 G symbols cannot be reached: each needs a record.
        let id = SymbolId::try_from(self.symbols.len()).unwrap_or(SymbolId::MAX);
        self.ids.insert(name.into(), id);
        self.symbols.push(SymbolState {
            name: name.into(),
            bid: 0.0,
            ask: 0.0,
            bid_size: 0,
            ask_size: 0,
            has_book: false,
            last: 0.0,
            last_size: 0,
            traded: false,
            quoted: false,
            volume: 0,
            seq: 0,
        });
        id
    }

    /// Whether the symbol has a two-sided book.
    pub(crate) fn has_book(&self, id: SymbolId) -> bool {
        self.symbols[id as usize].has_book
    }

    /// Sets the symbol's top of book. Until its first trade, `last` is the
    /// mid of its first quote (as in the simulator, where it is the opening
    /// mid: a tick always has a `last`). Returns whether the book changed.
    pub(crate) fn quote(&mut self, id: SymbolId, bid: (f64, u32), ask: (f64, u32)) -> bool {
        let s = &mut self.symbols[id as usize];
        let changed = !s.has_book || (s.bid, s.bid_size) != bid || (s.ask, s.ask_size) != ask;
        (s.bid, s.bid_size) = bid;
        (s.ask, s.ask_size) = ask;
        s.has_book = true;
        // The first quote that can be a tick's (a crossed one cannot).
        if !s.traded && !s.quoted && bid.0 <= ask.0 {
            s.last = (bid.0 + ask.0) / 2.0;
            s.quoted = true;
        }
        changed
    }

    /// Marks the book one-sided or empty: no tick until it has both sides.
    pub(crate) fn clear_book(&mut self, id: SymbolId) {
        self.symbols[id as usize].has_book = false;
    }

    /// Records a trade: `last`, `last_size`, and `size` more shares of
    /// `volume` when `counts_volume` (a bar's repeated last trade does not).
    pub(crate) fn trade(&mut self, id: SymbolId, price: f64, size: u32, counts_volume: bool) {
        let s = &mut self.symbols[id as usize];
        s.last = price;
        s.last_size = size;
        s.traded = true;
        if counts_volume {
            s.volume = s.volume.saturating_add(u64::from(size));
        }
    }

    /// Writes the symbol's current state as its next tick, at event time
    /// `ts` (raised to the previous tick's, so the file stays in time order
    /// when a source's timestamps step back a little; the source's own time
    /// then goes in `orig_ts`). Returns `false`, writing nothing, when the
    /// book is one-sided or crossed or a price is negative (futures spreads can
    /// be): a tick must hold a valid book.
    pub(crate) fn emit(&mut self, id: SymbolId, ts: u64, orig_ts: Option<u64>) -> io::Result<bool> {
        let s = &mut self.symbols[id as usize];
        let priced = [s.bid, s.ask, s.last]
            .iter()
            .all(|p| p.is_finite() && *p >= 0.0);
        if !s.has_book || s.bid > s.ask || !priced {
            return Ok(false);
        }
        let ts = match self.time_range {
            Some((first, prev)) => {
                let ts = ts.max(prev);
                self.time_range = Some((first, ts));
                ts
            }
            None => {
                self.time_range = Some((ts, ts));
                ts
            }
        };
        s.seq += 1;
        self.writer.write_tick(&TickRef {
            sym: &s.name,
            seq: s.seq,
            ts,
            bid: s.bid,
            ask: s.ask,
            last: s.last,
            bid_size: s.bid_size,
            ask_size: s.ask_size,
            last_size: s.last_size,
            volume: s.volume,
            orig_ts,
        })?;
        Ok(true)
    }

    /// Flushes the file and rewrites its header with the record count, the
    /// symbols that got a tick and the measured rate.
    pub(crate) fn finish(mut self) -> io::Result<(W, u64, usize)> {
        let records = self.writer.records();
        let symbols = self.symbols.iter().filter(|s| s.seq > 0).count();
        let mut out = self.writer.finish()?;
        self.header.symbols = u32::try_from(symbols).unwrap_or(u32::MAX);
        self.header.count = Some(records);
        if let Some((first, last)) = self.time_range.filter(|_| records > 1) {
            let span_s = (last - first) as f64 / 1e9;
            if span_s > 0.0 {
                self.header.rate = (records - 1) as f64 / span_s;
            }
        }
        out.seek(SeekFrom::Start(0))?;
        out.write_all(&self.header.to_bytes())?;
        out.flush()?;
        Ok((out, records, symbols))
    }
}

/// A fixed-point price (`units` of `1 / scale`) as the tick's `f64`: the
/// double nearest the decimal value (one correctly rounded division), so
/// `189_520_000_000` at 1e9 is exactly what parsing "189.52" gives.
pub(crate) fn fixed_price(units: i64, scale: f64) -> f64 {
    units as f64 / scale
}
