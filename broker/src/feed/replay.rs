//! A recorded feed file as a feed, paced by its recorded gaps.
//!
//! A reader thread streams the file's ticks (it is never loaded whole, and
//! blocking reads never stall the runtime) to the pacing task through a
//! small bounded channel. Damage in the file stops the replay after every
//! tick before it has been published.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use feed_simulator::file::FeedFileError;
use feed_simulator::pacing::{pace, PaceError, Pacer, Speed};
use feed_simulator::replay::FileReplay;
use feed_simulator::send::{PacedTick, TickSource};
use tickcast_protocol::Tick;
use tokio::sync::mpsc;
use tracing::{error, info};

use crate::fanout::hub::Hub;
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

/// A feed file opened for replay, read by its own thread.
pub struct ReplaySource {
    ticks: mpsc::Receiver<Result<(u64, Tick), String>>,
}

impl ReplaySource {
    /// Opens `path` (checking its header now, so a bad file fails at start)
    /// and starts reading it. With `looping`, the file starts over at its end
    /// with `seq` and event times carried on, so subscribers see one unbroken
    /// stream rather than `seq` going backwards.
    pub fn open(path: &Path, looping: bool) -> Result<Self, ReplayError> {
        let mut file = FileReplay::open(path, looping).map_err(|source| ReplayError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        let name = path.display().to_string();
        std::thread::Builder::new()
            .name("replay-reader".into())
            .spawn(move || loop {
                let item = match file.next_tick() {
                    Ok(Some(PacedTick { due_ts, tick })) => Ok((due_ts, tick)),
                    Ok(None) => return,
                    Err(e) => Err(format!("{name}: {e}")),
                };
                let stop = item.is_err();
                if tx.blocking_send(item).is_err() || stop {
                    return;
                }
            })
            .map_err(ReplayError::Thread)?;
        Ok(Self { ticks: rx })
    }
}

/// Replays a feed file, paced by its recorded gaps scaled by `speed`.
pub async fn run_replay(mut source: ReplaySource, speed: Speed, hub: Arc<Hub>) {
    let mut pacer = Pacer::new(speed);
    let mut sink = HubSink::new(hub);
    match pace(&mut pacer, &mut source.ticks, &mut sink).await {
        Ok(()) => info!("replay finished: {} ticks", sink.published),
        Err(PaceError::Source(e)) => {
            error!("replay stopped after {} ticks: {e}", sink.published)
        }
        Err(PaceError::Sink(never)) => match never {},
    }
}
