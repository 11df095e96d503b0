//! Summarising a feed file: counts, symbols, time span, rate, first ticks.
//!
//! One streaming pass with the reader's borrowing fast path; only per-symbol
//! counters and the requested first ticks are kept. A damaged file still
//! gets a summary of everything before the damage.

use std::collections::HashMap;
use std::io::{self, Read, Write};

use serde_json::json;
use tickcast_protocol::Tick;

use crate::file::{FeedFileError, FeedHeader, FeedReader};
use crate::rfc3339;

/// A price as quoted: cents at or above $1, four decimals below.
fn price(p: f64) -> String {
    if p < 1.0 {
        format!("{p:.4}")
    } else {
        format!("{p:.2}")
    }
}

/// Per-symbol counters.
#[derive(Debug, Clone, Copy)]
struct SymbolStats {
    count: u64,
    last_seq: u64,
}

/// What a feed file holds.
#[derive(Debug)]
pub struct Summary {
    /// The file's header.
    pub header: FeedHeader,
    /// Intact records read.
    pub records: u64,
    /// Earliest and latest event time (ns), if there is any record.
    pub time_range: Option<(u64, u64)>,
    /// Records per symbol, most active first (ties by name).
    pub by_symbol: Vec<(String, u64)>,
    /// Records whose `seq` does not follow its symbol's previous one.
    pub seq_gaps: u64,
    /// The first records, as many as asked for.
    pub head: Vec<Tick>,
    /// The damage that ended the read early, if any.
    pub damage: Option<FeedFileError>,
}

/// Reads the whole of `reader`, keeping its first `head` ticks.
pub fn summarize<R: Read>(mut reader: FeedReader<R>, head: usize) -> Summary {
    let mut symbols: HashMap<String, SymbolStats> = HashMap::new();
    let mut time_range: Option<(u64, u64)> = None;
    let mut seq_gaps = 0;
    let mut first = Vec::new();
    let damage = loop {
        let tick = match reader.read_record() {
            Ok(Some(tick)) => tick,
            Ok(None) => break None,
            Err(e) => break Some(e),
        };
        if first.len() < head {
            first.push(tick.to_tick());
        }
        time_range = Some(match time_range {
            Some((lo, hi)) => (lo.min(tick.ts), hi.max(tick.ts)),
            None => (tick.ts, tick.ts),
        });
        // Look up by `&str` first: only a new symbol allocates.
        match symbols.get_mut(tick.sym) {
            Some(stats) => {
                if tick.seq != stats.last_seq.wrapping_add(1) {
                    seq_gaps += 1;
                }
                stats.count += 1;
                stats.last_seq = tick.seq;
            }
            None => {
                symbols.insert(
                    tick.sym.to_owned(),
                    SymbolStats {
                        count: 1,
                        last_seq: tick.seq,
                    },
                );
            }
        }
    };
    let mut by_symbol: Vec<(String, u64)> = symbols
        .into_iter()
        .map(|(sym, stats)| (sym, stats.count))
        .collect();
    by_symbol.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Summary {
        header: reader.header().clone(),
        records: reader.records(),
        time_range,
        by_symbol,
        seq_gaps,
        head: first,
        damage,
    }
}

impl Summary {
    /// Seconds between the first and the last event.
    pub fn span_secs(&self) -> f64 {
        self.time_range
            .map_or(0.0, |(lo, hi)| (hi - lo) as f64 / 1e9)
    }

    /// Average ticks per second over the span (`None` for fewer than two
    /// distinct times).
    pub fn avg_rate(&self) -> Option<f64> {
        let span = self.span_secs();
        (span > 0.0).then(|| (self.records - 1) as f64 / span)
    }

    /// Writes a human-readable report, listing the `top` most active symbols.
    pub fn write_text(&self, out: &mut impl Write, top: usize) -> io::Result<()> {
        let h = &self.header;
        let source = match h.source {
            crate::file::Source::Simulated => format!(
                "simulated: {} symbols at {} ticks/s, seed {}, open burst {}{}",
                h.symbols,
                h.rate,
                h.seed,
                if h.open_burst { "on" } else { "off" },
                if h.session { ", market hours" } else { "" }
            ),
            crate::file::Source::Imported => format!("imported: {} symbols", h.symbols),
        };
        writeln!(out, "source:      {source}")?;
        let announced = h.count.map_or("unknown".to_owned(), |c| c.to_string());
        writeln!(out, "records:     {} (header: {announced})", self.records)?;
        if let Some((lo, hi)) = self.time_range {
            writeln!(
                out,
                "time span:   {} .. {} ({:.3} s)",
                rfc3339::format(lo),
                rfc3339::format(hi),
                self.span_secs()
            )?;
        }
        if let Some(rate) = self.avg_rate() {
            writeln!(out, "avg rate:    {rate:.1} ticks/s")?;
        }
        writeln!(
            out,
            "symbols:     {} distinct, {} seq gaps",
            self.by_symbol.len(),
            self.seq_gaps
        )?;
        for (sym, count) in self.by_symbol.iter().take(top) {
            let share = 100.0 * *count as f64 / self.records.max(1) as f64;
            writeln!(out, "  {sym:<8} {count:>10}  {share:5.1}%")?;
        }
        for t in &self.head {
            writeln!(
                out,
                "{} {} #{} bid {} x {} ask {} x {} last {} x {} vol {}",
                rfc3339::format(t.ts),
                t.sym,
                t.seq,
                price(t.bid),
                t.bid_size,
                price(t.ask),
                t.ask_size,
                price(t.last),
                t.last_size,
                t.volume
            )?;
        }
        Ok(())
    }

    /// Writes JSON lines: one summary object, then one line per head tick.
    pub fn write_json(&self, out: &mut impl Write, top: usize) -> io::Result<()> {
        let top_symbols: Vec<_> = self
            .by_symbol
            .iter()
            .take(top)
            .map(|(sym, count)| json!({ "sym": sym, "count": count }))
            .collect();
        let summary = json!({
            "header": self.header,
            "records": self.records,
            "first_ts": self.time_range.map(|r| r.0),
            "last_ts": self.time_range.map(|r| r.1),
            "span_s": self.span_secs(),
            "avg_rate": self.avg_rate(),
            "symbols": self.by_symbol.len(),
            "seq_gaps": self.seq_gaps,
            "top_symbols": top_symbols,
        });
        serde_json::to_writer(&mut *out, &summary)?;
        writeln!(out)?;
        for t in &self.head {
            serde_json::to_writer(&mut *out, t)?;
            writeln!(out)?;
        }
        Ok(())
    }
}
