//! Replaying a feed file: the recorded gaps, scaled by a speed, optionally
//! looped.
//!
//! Every replayed tick carries its recorded event time in `orig_ts` (the
//! sender restamps `ts` with the send time). When looping, each lap is
//! shifted so that downstream nothing goes backwards: event times continue
//! one mean gap after the previous lap's last tick, and every symbol's `seq`
//! continues where the previous lap ended (offset by the span of its
//! sequence numbers in the file), so a gap detector sees a gap-free stream.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::file::{FeedFileError, FeedReader};
use crate::send::{PacedTick, TickSource};

/// The shortest lap of a looped replay, in event-time ns, so a file whose
/// ticks all share one timestamp does not loop at an unbounded rate.
const MIN_LAP_NS: u64 = 1_000_000;

/// The sequence numbers one symbol uses in the file.
#[derive(Debug, Clone, Copy)]
struct SeqSpan {
    min: u64,
    max: u64,
}

impl SeqSpan {
    /// How far to shift this symbol's `seq` per lap so that the next lap
    /// starts right after this one ends.
    fn len(self) -> u64 {
        self.max - self.min + 1
    }
}

/// A feed file as a tick source, optionally looping forever.
#[derive(Debug)]
pub struct FileReplay {
    path: PathBuf,
    reader: FeedReader<BufReader<File>>,
    looping: bool,
    /// Laps completed.
    lap: u64,
    /// Event time of the file's first tick.
    first_ts: Option<u64>,
    /// Event time of the file's last tick (so far).
    last_ts: u64,
    /// Added to a tick's event-time offset in the current lap.
    lap_offset_ns: u64,
    /// Per symbol, the seq range seen in the first lap.
    spans: HashMap<String, SeqSpan>,
}

impl FileReplay {
    /// Opens `path` for replay.
    pub fn open(path: impl AsRef<Path>, looping: bool) -> Result<Self, FeedFileError> {
        let path = path.as_ref().to_path_buf();
        Ok(Self {
            reader: FeedReader::open(&path)?,
            path,
            looping,
            lap: 0,
            first_ts: None,
            last_ts: 0,
            lap_offset_ns: 0,
            spans: HashMap::new(),
        })
    }

    /// The file's record count from its header, if known.
    pub fn records_per_lap(&self) -> Option<u64> {
        self.reader.header().count
    }

    /// Laps completed so far.
    pub fn laps(&self) -> u64 {
        self.lap
    }

    /// Byte offset, in the current lap's file, just past the last tick read.
    pub fn offset(&self) -> u64 {
        self.reader.offset()
    }

    /// Starts the next lap; `false` if there is nothing to loop.
    fn next_lap(&mut self) -> Result<bool, FeedFileError> {
        let records = self.reader.records();
        let Some(first_ts) = self.first_ts.filter(|_| self.looping && records > 0) else {
            return Ok(false);
        };
        let span = self.last_ts.saturating_sub(first_ts);
        let mean_gap = if records > 1 { span / (records - 1) } else { 0 };
        let lap_ns = (span + mean_gap).max(MIN_LAP_NS);
        self.lap_offset_ns = self.lap_offset_ns.saturating_add(lap_ns);
        self.lap += 1;
        self.reader = FeedReader::open(&self.path)?;
        Ok(true)
    }
}

impl TickSource for FileReplay {
    fn next_tick(&mut self) -> Result<Option<PacedTick>, FeedFileError> {
        loop {
            if let Some(recorded) = self.reader.read_record()? {
                let mut tick = recorded.to_tick();
                let first_ts = *self.first_ts.get_or_insert(tick.ts);
                if self.lap == 0 {
                    self.last_ts = self.last_ts.max(tick.ts);
                    let span = self.spans.entry(tick.sym.clone()).or_insert(SeqSpan {
                        min: tick.seq,
                        max: tick.seq,
                    });
                    span.min = span.min.min(tick.seq);
                    span.max = span.max.max(tick.seq);
                } else {
                    let step = self.spans.get(&tick.sym).map_or(0, |s| s.len());
                    tick.seq = tick.seq.saturating_add(self.lap.saturating_mul(step));
                }
                let due_ts = tick
                    .ts
                    .saturating_sub(first_ts)
                    .saturating_add(self.lap_offset_ns);
                tick.orig_ts = Some(tick.ts);
                return Ok(Some(PacedTick { due_ts, tick }));
            }
            if !self.next_lap()? {
                return Ok(None);
            }
        }
    }
}
