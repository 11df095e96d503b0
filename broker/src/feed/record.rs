//! `--record DIR`: every tick handed to the hub, written to feed files.
//!
//! The feeds (the paced sink in `sink.rs`, each publisher in `ingest.rs`)
//! offer each published batch, already framed as feed-file records, to a
//! [`Recorder`]: a bounded queue to one writer thread. The feed never waits
//! for the disk: a full queue (more than [`QUEUE_BATCHES`] batches or
//! [`QUEUE_BYTES`] waiting) drops the batch and counts its ticks on
//! `tickcast_record_dropped_total`. Ticks are recorded as handed to the hub,
//! before its duplicate check: a publisher's repeated `seq` is in the file
//! too (a replay skips it again).
//!
//! The thread writes through `feed_simulator::file::FeedWriter`, so the
//! files are ordinary feed files (`inspect`, `replay`, `--replay`). Each
//! starts with a header whose count is "unknown"; when a file is closed
//! (rotation, shutdown) its header is rewritten with the count, the symbols
//! and the rate, and the file synced. A file is closed and the next opened
//! after `rotate` of wall time or before a record would take it past
//! `max_bytes`. Names are the UTC time the file was opened,
//! `2026-12-02T151230.123456789Z.tcf` (fixed width, no colons), so they
//! sort by time. Buffered records reach the file at least every
//! [`FLUSH_EVERY`]: a broker killed outright leaves files that read up to
//! the last complete record (a cut record is reported as truncated there,
//! and a replay stops after everything before it).

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use feed_simulator::file::{FeedHeader, FeedWriter, Source, HEADER_LEN};
use feed_simulator::rfc3339;
use tickcast_protocol::clock::now_ns;
use tickcast_protocol::framing::{parse_record, HEADER_LEN as LEN_PREFIX};
use tickcast_protocol::TickRef;
use tracing::{error, info, warn};

use crate::config::RecordConfig;
use crate::fanout::hub::TickIn;
use crate::observe::metrics::Metrics;

/// Batches the queue holds. A batch is at most `MAX_BATCH` (1,024) ticks;
/// the simulator and replay at a few thousand ticks a second make batches of
/// a few ticks, so this is seconds of disk stall before anything is lost.
pub const QUEUE_BATCHES: usize = 4_096;

/// Bytes the queue holds (ticks are ~100 bytes framed: ~300,000 ticks), so
/// a stalled disk cannot grow the broker by more than this.
pub const QUEUE_BYTES: usize = 32 * 1024 * 1024;

/// The longest a written record stays in the writer's buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// After a failed create or write, records are dropped (and counted) for
/// this long before the next file is tried, so a full disk does not log
/// once per batch.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why recording cannot start.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The directory cannot be created.
    #[error("cannot create the recording directory {}: {source}", dir.display())]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The writer thread cannot be started.
    #[error("cannot start the recording thread: {0}")]
    Thread(io::Error),
}

/// Framed records of one published batch.
struct Batch {
    records: Vec<u8>,
    ticks: u64,
}

/// The feeds' handle on the recording: cheap to clone, never blocks.
#[derive(Clone)]
pub struct Recorder {
    queue: SyncSender<Batch>,
    queued_bytes: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

/// The writer thread, joined at shutdown once every [`Recorder`] is gone.
pub struct RecordThread(std::thread::JoinHandle<()>);

impl RecordThread {
    /// Waits for the thread to close its last file.
    pub fn join(self) {
        if self.0.join().is_err() {
            error!("the recording thread panicked");
        }
    }
}

impl Recorder {
    /// Creates `cfg.dir` if needed and starts the writer thread.
    pub fn start(
        cfg: RecordConfig,
        metrics: Arc<Metrics>,
    ) -> Result<(Recorder, RecordThread), RecordError> {
        std::fs::create_dir_all(&cfg.dir).map_err(|source| RecordError::Dir {
            dir: cfg.dir.clone(),
            source,
        })?;
        let (queue, batches) = mpsc::sync_channel(QUEUE_BATCHES);
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let mut writer = Writer {
            cfg,
            file: None,
            paused_until: None,
            queued_bytes: queued_bytes.clone(),
            metrics: metrics.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || writer.run(&batches))
            .map_err(RecordError::Thread)?;
        Ok((
            Recorder {
                queue,
                queued_bytes,
                metrics,
            },
            RecordThread(thread),
        ))
    }

    /// Frames `ticks` (as the feed file does) and queues them: for the
    /// sources whose ticks are not framed already (simulator, replay, an
    /// edge's NATS messages).
    pub fn offer_ticks(&self, ticks: &[TickIn<'_>]) {
        let bytes = ticks.iter().map(|t| LEN_PREFIX + t.payload.len()).sum();
        let mut records = Vec::with_capacity(bytes);
        for t in ticks {
            records.extend_from_slice(&(t.payload.len() as u32).to_be_bytes());
            records.extend_from_slice(t.payload);
        }
        self.offer(records, ticks.len() as u64);
    }

    /// Queues a batch of framed records (`u32` length + tick, the feed
    /// file's and the ingest's framing), or drops and counts it if the
    /// queue is full.
    pub fn offer(&self, records: Vec<u8>, ticks: u64) {
        if ticks == 0 {
            return;
        }
        let len = records.len();
        if self.queued_bytes.fetch_add(len, Relaxed) + len > QUEUE_BYTES {
            self.queued_bytes.fetch_sub(len, Relaxed);
            self.metrics.record_dropped.add(ticks);
            return;
        }
        match self.queue.try_send(Batch { records, ticks }) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.queued_bytes.fetch_sub(len, Relaxed);
                self.metrics.record_dropped.add(ticks);
            }
        }
    }
}

/// The file being written.
struct Open {
    path: PathBuf,
    writer: FeedWriter<File>,
    opened: Instant,
    bytes: u64,
    symbols: HashSet<String>,
    first_ts: u64,
    last_ts: u64,
}

/// The writer thread's state.
struct Writer {
    cfg: RecordConfig,
    file: Option<Open>,
    /// Set after a failure: drop records until then.
    paused_until: Option<Instant>,
    queued_bytes: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

impl Writer {
    fn run(&mut self, batches: &mpsc::Receiver<Batch>) {
        let mut last_flush = Instant::now();
        loop {
            match batches.recv_timeout(FLUSH_EVERY) {
                Ok(batch) => {
                    self.queued_bytes.fetch_sub(batch.records.len(), Relaxed);
                    self.write_batch(&batch);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if last_flush.elapsed() >= FLUSH_EVERY {
                last_flush = Instant::now();
                self.flush();
            }
        }
        self.close();
    }

    fn write_batch(&mut self, batch: &Batch) {
        if self.paused_until.is_some_and(|t| Instant::now() < t) {
            self.metrics.record_dropped.add(batch.ticks);
            return;
        }
        self.paused_until = None;
        if self
            .file
            .as_ref()
            .is_some_and(|f| f.opened.elapsed() >= self.cfg.rotate)
        {
            self.close();
        }
        let mut rest = &batch.records[..];
        let mut written = 0;
        while let Ok(Some((payload, len))) = parse_record(rest) {
            let record = len as u64;
            rest = &rest[len..];
            let Ok(tick) = TickRef::decode(payload) else {
                // The feeds hand over only ticks they decoded: not reached.
                continue;
            };
            if let Err(e) = self.write_one(&tick, record) {
                error!("recording stopped for {RETRY_AFTER:?}: {e}");
                self.file = None;
                self.paused_until = Some(Instant::now() + RETRY_AFTER);
                self.metrics.record_dropped.add(batch.ticks - written);
                break;
            }
            written += 1;
        }
        self.metrics.recorded.add(written);
    }

    fn write_one(&mut self, tick: &TickRef<'_>, record: u64) -> io::Result<()> {
        let full = self
            .file
            .as_ref()
            .is_some_and(|f| f.bytes + record > self.cfg.max_bytes && f.writer.records() > 0);
        if full {
            self.close();
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(open(&self.cfg.dir)?),
        };
        file.writer.write_tick(tick)?;
        file.bytes += record;
        if !file.symbols.contains(tick.sym) {
            file.symbols.insert(tick.sym.to_owned());
        }
        if file.writer.records() == 1 {
            file.first_ts = tick.ts;
        }
        file.last_ts = file.last_ts.max(tick.ts);
        Ok(())
    }

    fn flush(&mut self) {
        if let Some(file) = &mut self.file {
            if let Err(e) = file.writer.flush() {
                warn!(file = %file.path.display(), "recording flush failed: {e}");
            }
        }
    }

    /// Finishes the current file: the final header, then a sync.
    fn close(&mut self) {
        let Some(file) = self.file.take() else { return };
        let path = file.path.clone();
        let records = file.writer.records();
        match finish(file) {
            Ok(()) => info!(file = %path.display(), records, "recording closed"),
            Err(e) => error!(file = %path.display(), "cannot finish the recording: {e}"),
        }
    }
}

/// Creates the next file in `dir`, named by the time now.
fn open(dir: &Path) -> io::Result<Open> {
    let mut ns = now_ns();
    let (path, out) = loop {
        // `2026-12-02T15:12:30.123456789Z` without its colons.
        let name = format!("{}.tcf", rfc3339::format(ns).replace(':', ""));
        let path = dir.join(name);
        match File::options().write(true).create_new(true).open(&path) {
            Ok(out) => break (path, out),
            // Two files within one nanosecond: the next name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => ns += 1,
            Err(e) => return Err(e),
        }
    };
    let mut writer = FeedWriter::new(out, &recorded_header())?;
    // The header reaches the file at once: a broker killed before the
    // first flush leaves an empty feed file, not a cut header (only a kill
    // between the create and this write leaves an empty file).
    writer.flush()?;
    info!(file = %path.display(), "recording to a new file");
    Ok(Open {
        path,
        writer,
        opened: Instant::now(),
        bytes: HEADER_LEN as u64,
        symbols: HashSet::new(),
        first_ts: 0,
        last_ts: 0,
    })
}

/// A recording's header: real ticks, not generated, so `imported` (there is
/// no third source code, and readers reject unknown ones); the count is
/// unknown until the file is finished.
fn recorded_header() -> FeedHeader {
    FeedHeader {
        source: Source::Imported,
        symbols: 0,
        rate: 0.0,
        seed: 0,
        count: None,
        open_burst: false,
        session: false,
    }
}

fn finish(file: Open) -> io::Result<()> {
    let records = file.writer.records();
    let mut header = recorded_header();
    header.symbols = u32::try_from(file.symbols.len()).unwrap_or(u32::MAX);
    header.count = Some(records);
    let span_s = file.last_ts.saturating_sub(file.first_ts) as f64 / 1e9;
    if records > 1 && span_s > 0.0 {
        header.rate = (records - 1) as f64 / span_s;
    }
    let mut out = file.writer.finish()?;
    out.seek(SeekFrom::Start(0))?;
    out.write_all(&header.to_bytes())?;
    out.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recorder on a queue of `batches` that nothing drains.
    fn stalled(batches: usize) -> (Recorder, mpsc::Receiver<Batch>) {
        let (queue, rx) = mpsc::sync_channel(batches);
        let recorder = Recorder {
            queue,
            queued_bytes: Arc::new(AtomicUsize::new(0)),
            metrics: Arc::new(Metrics::default()),
        };
        (recorder, rx)
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let (recorder, rx) = stalled(2);
        for _ in 0..5 {
            recorder.offer(vec![0; 100], 3);
        }
        assert_eq!(
            recorder.metrics.record_dropped.get(),
            9,
            "three batches of 3"
        );
        assert_eq!(recorder.queued_bytes.load(Relaxed), 200);
        drop(rx);
        recorder.offer(vec![0; 100], 4);
        assert_eq!(
            recorder.metrics.record_dropped.get(),
            13,
            "no writer: dropped"
        );
    }

    #[test]
    fn the_byte_budget_bounds_the_queue_too() {
        let (recorder, _rx) = stalled(QUEUE_BATCHES);
        recorder.offer(vec![0; QUEUE_BYTES - 10], 1);
        recorder.offer(vec![0; 11], 2);
        assert_eq!(recorder.metrics.record_dropped.get(), 2);
        recorder.offer(vec![0; 10], 1);
        assert_eq!(recorder.queued_bytes.load(Relaxed), QUEUE_BYTES);
    }
}
