//! A recorded feed file as a feed, paced by its recorded gaps.
//!
//! A reader thread streams the file's ticks (it is never loaded whole, and
//! blocking reads never stall the runtime) to the pacing task through a
//! small bounded channel. Damage in the file stops the replay after every
//! tick before it has been published.
//!
//! The first tick goes out when [`ReplayStart`] says: as the broker starts,
//! once the first subscribe succeeds (the sessions fire
//! [`FirstSubscribe`]; nothing on the per-tick path looks at it), or at a
//! wall-clock time. Until then the reader thread has filled the channel and
//! waits on it. [`ReplayProgress`] is what `/stats` shows: updated once per
//! published batch with relaxed atomics, read at each request.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use feed_simulator::file::FeedFileError;
use feed_simulator::pacing::{pace, BatchSink, PaceError, Pacer, Speed};
use feed_simulator::replay::FileReplay;
use feed_simulator::rfc3339;
use feed_simulator::send::{PacedTick, TickSource};
use serde::Serialize;
use tickcast_protocol::clock::now_ns;
use tickcast_protocol::Tick;
use tokio::sync::mpsc;
use tracing::{error, info};

use crate::client::first_subscribe::FirstSubscribe;
use crate::config::ReplayStart;
use crate::feed::sink::{HubSink, MAX_BATCH};

/// Why a replay cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The file cannot be opened or its header is bad.
    #[error("cannot replay {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: FeedFileError,
    },
    /// The reader thread cannot be started.
    #[error("cannot start the replay reader thread: {0}")]
    Thread(std::io::Error),
}

/// One tick read from the file, and where the file stood after it.
pub struct Replayed {
    tick: Tick,
    /// Laps completed before this tick (with `--loop`).
    lap: u64,
    /// Byte offset just past the tick's record, in its lap.
    offset: u64,
}

/// A feed file opened for replay, read by its own thread.
pub struct ReplaySource {
    ticks: mpsc::Receiver<Result<(u64, Replayed), String>>,
    progress: Arc<ReplayProgress>,
}

impl ReplaySource {
    /// Opens `path` (checking its header now, so a bad file fails at start)
    /// and starts reading it. With `looping`, the file starts over at its end
    /// with `seq` and event times carried on, so subscribers see one unbroken
    /// stream rather than `seq` going backwards.
    pub fn open(
        path: &Path,
        looping: bool,
        speed: Speed,
        start: ReplayStart,
    ) -> Result<Self, ReplayError> {
        let open_error = |source| ReplayError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut file = FileReplay::open(path, looping).map_err(open_error)?;
        // A named pipe has no length worth reporting.
        let total_bytes = std::fs::metadata(path)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len());
        let progress = Arc::new(ReplayProgress::new(
            speed,
            start,
            file.records_per_lap(),
            total_bytes,
        ));
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        let name = path.display().to_string();
        std::thread::Builder::new()
            .name("replay-reader".into())
            .spawn(move || loop {
                let item = match file.next_tick() {
                    Ok(Some(PacedTick { due_ts, tick })) => Ok((
                        due_ts,
                        Replayed {
                            tick,
                            lap: file.laps(),
                            offset: file.offset(),
                        },
                    )),
                    Ok(None) => return,
                    Err(e) => Err(format!("{name}: {e}")),
                };
                let stop = item.is_err();
                if tx.blocking_send(item).is_err() || stop {
                    return;
                }
            })
            .map_err(ReplayError::Thread)?;
        Ok(Self {
            ticks: rx,
            progress,
        })
    }

    /// The replay's progress, shared with `/stats`.
    pub fn progress(&self) -> &Arc<ReplayProgress> {
        &self.progress
    }
}

/// Where a replay is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum State {
    Waiting = 0,
    Playing = 1,
    Finished = 2,
    Stopped = 3,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Playing => "playing",
            State::Finished => "finished",
            State::Stopped => "stopped",
        }
    }

    fn from_u8(v: u8) -> State {
        match v {
            0 => State::Waiting,
            1 => State::Playing,
            2 => State::Finished,
            _ => State::Stopped,
        }
    }
}

/// A replay's position, written by its task once per batch, read by
/// `/stats`.
#[derive(Debug)]
pub struct ReplayProgress {
    speed: Speed,
    start: ReplayStart,
    total_ticks: Option<u64>,
    total_bytes: Option<u64>,
    state: AtomicU8,
    ticks: AtomicU64,
    bytes: AtomicU64,
    laps: AtomicU64,
    /// Recorded time (ns) of the last tick published; 0 before the first.
    last_ts: AtomicU64,
}

/// The `replay` object of `/stats`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayStatus {
    /// `waiting` (for its start), `playing`, `finished` or `stopped` (by
    /// damage in the file).
    pub state: &'static str,
    /// `now`, `on-subscribe` or `at=` and the RFC 3339 time.
    pub start: String,
    /// The replay speed: `1x`, `10x`, … or `max`.
    pub speed: String,
    /// Ticks published (over every lap).
    pub ticks: u64,
    /// Ticks in one lap, when the file's header says.
    pub total_ticks: Option<u64>,
    /// Bytes of the file behind the last tick published, in its lap.
    pub bytes: u64,
    /// The file's size (none for a pipe).
    pub total_bytes: Option<u64>,
    /// Laps completed (`--loop`).
    pub laps: u64,
    /// The recorded time of the last tick published, ns since the epoch.
    pub last_ts: Option<u64>,
    /// The same, RFC 3339.
    pub last_time: Option<String>,
}

impl ReplayProgress {
    fn new(
        speed: Speed,
        start: ReplayStart,
        total_ticks: Option<u64>,
        total_bytes: Option<u64>,
    ) -> Self {
        Self {
            speed,
            start,
            total_ticks,
            total_bytes,
            state: AtomicU8::new(State::Waiting as u8),
            ticks: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            laps: AtomicU64::new(0),
            last_ts: AtomicU64::new(0),
        }
    }

    fn set_state(&self, state: State) {
        self.state.store(state as u8, Relaxed);
    }

    /// What `/stats` shows.
    pub fn status(&self) -> ReplayStatus {
        let last_ts = Some(self.last_ts.load(Relaxed)).filter(|&ts| ts != 0);
        ReplayStatus {
            state: State::from_u8(self.state.load(Relaxed)).name(),
            start: match self.start {
                ReplayStart::Now => "now".to_owned(),
                ReplayStart::OnSubscribe => "on-subscribe".to_owned(),
                ReplayStart::At(ns) => format!("at={}", rfc3339::format(ns)),
            },
            speed: match self.speed {
                Speed::Factor(f) => format!("{f}x"),
                Speed::Max => "max".to_owned(),
            },
            ticks: self.ticks.load(Relaxed),
            total_ticks: self.total_ticks,
            bytes: self.bytes.load(Relaxed),
            total_bytes: self.total_bytes,
            laps: self.laps.load(Relaxed),
            last_ts,
            last_time: last_ts.map(rfc3339::format),
        }
    }
}

/// The hub sink plus the progress of each published batch.
struct ReplaySink {
    hub: HubSink,
    progress: Arc<ReplayProgress>,
    /// The lap, offset and recorded time of the last tick pushed.
    last: (u64, u64, u64),
}

impl BatchSink<Replayed> for ReplaySink {
    type Error = std::convert::Infallible;

    fn push(&mut self, item: Replayed) {
        self.last = (item.lap, item.offset, item.tick.orig_ts.unwrap_or(0));
        self.hub.push(item.tick);
    }

    fn is_full(&self) -> bool {
        self.hub.is_full()
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        self.hub.flush().await?;
        let (lap, offset, ts) = self.last;
        let p = &self.progress;
        p.ticks.store(self.hub.published, Relaxed);
        p.laps.store(lap, Relaxed);
        p.bytes.store(offset, Relaxed);
        p.last_ts.store(ts, Relaxed);
        Ok(())
    }
}

/// Waits for `start`, then replays the file, paced by its recorded gaps
/// scaled by `speed`, into `hub`.
pub async fn run_replay(
    mut source: ReplaySource,
    speed: Speed,
    start: ReplayStart,
    first_subscribe: Arc<FirstSubscribe>,
    hub: HubSink,
) {
    match start {
        ReplayStart::Now => {}
        ReplayStart::OnSubscribe => {
            if !first_subscribe.has_fired() {
                info!("replay waiting for the first subscription");
            }
            first_subscribe.wait().await;
        }
        ReplayStart::At(at) => {
            let wait = at.saturating_sub(now_ns());
            if wait > 0 {
                info!("replay waiting until {}", rfc3339::format(at));
                tokio::time::sleep(Duration::from_nanos(wait)).await;
            }
        }
    }
    let progress = source.progress.clone();
    progress.set_state(State::Playing);
    let mut pacer = Pacer::new(speed);
    let mut sink = ReplaySink {
        hub,
        progress: progress.clone(),
        last: (0, 0, 0),
    };
    match pace(&mut pacer, &mut source.ticks, &mut sink).await {
        Ok(()) => {
            progress.set_state(State::Finished);
            info!("replay finished: {} ticks", sink.hub.published)
        }
        Err(PaceError::Source(e)) => {
            progress.set_state(State::Stopped);
            error!("replay stopped after {} ticks: {e}", sink.hub.published)
        }
        Err(PaceError::Sink(never)) => match never {},
    }
}
