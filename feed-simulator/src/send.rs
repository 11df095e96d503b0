//! Sending a paced tick stream over a connection, in the ingest framing.
//!
//! The loop is the shared [`pace`]: each tick waits for its due time on the
//! [`Pacer`]'s absolute schedule and joins a batch, and the batch is written
//! when the next tick is not yet due or it holds 64 KiB, so ticks
//! due together (high rates, a late sender, `--speed max`) share one write
//! syscall. What is particular to a connection is the sink: each tick is
//! restamped with the real send time as it joins the batch, and the batch is
//! one buffer in the ingest framing.

use std::io;

use tickcast_protocol::clock::now_ns;
use tickcast_protocol::framing::put_tick_record;
use tickcast_protocol::Tick;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::file::FeedFileError;
use crate::pacing::{pace, BatchSink, PaceError, PacedSource, Pacer};

/// Write once this many bytes are batched, even if more ticks are due.
const BATCH_BYTES: usize = 64 * 1024;

/// A tick and the event time it is paced by.
#[derive(Debug, Clone, PartialEq)]
pub struct PacedTick {
    /// Event time the pacer schedules the tick by (ns).
    pub due_ts: u64,
    /// The tick; its `ts` is overwritten with the send time.
    pub tick: Tick,
}

/// Where paced ticks come from.
pub trait TickSource {
    /// The next tick, or `None` at the end of the stream.
    fn next_tick(&mut self) -> Result<Option<PacedTick>, FeedFileError>;
}

/// Why sending stopped early.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The source (a feed file) is damaged; everything before the damage
    /// was sent.
    #[error(transparent)]
    Feed(#[from] FeedFileError),
    /// Writing to the connection failed.
    #[error("connection lost: {0}")]
    Io(#[from] io::Error),
}

/// Sends every tick of `source` to `out` on `pacer`'s schedule and returns
/// how many were sent. `progress` hears the running total after each write.
pub async fn send_paced<S, W>(
    source: &mut S,
    pacer: &mut Pacer,
    out: &mut W,
    progress: impl FnMut(u64),
) -> Result<u64, SendError>
where
    S: TickSource,
    W: AsyncWrite + Unpin,
{
    let mut sink = Wire {
        out,
        batch: Vec::with_capacity(BATCH_BYTES + 1024),
        sent: 0,
        progress,
    };
    pace(pacer, &mut Ticks(source), &mut sink)
        .await
        .map_err(|e| match e {
            PaceError::Source(e) => SendError::Feed(e),
            PaceError::Sink(e) => SendError::Io(e),
        })?;
    sink.out.flush().await?;
    Ok(sink.sent)
}

/// A [`TickSource`] as the pacing loop sees it.
struct Ticks<'a, S>(&'a mut S);

impl<S: TickSource> PacedSource for Ticks<'_, S> {
    type Item = Tick;
    type Error = FeedFileError;

    async fn next_due(&mut self) -> Result<Option<(u64, Tick)>, FeedFileError> {
        Ok(self.0.next_tick()?.map(|p| (p.due_ts, p.tick)))
    }
}

/// The connection side: ticks restamped with their send time and framed
/// into one buffer, written whole.
struct Wire<'a, W, P> {
    out: &'a mut W,
    batch: Vec<u8>,
    /// Ticks batched so far, written or not.
    sent: u64,
    progress: P,
}

impl<W: AsyncWrite + Unpin, P: FnMut(u64)> BatchSink<Tick> for Wire<'_, W, P> {
    type Error = io::Error;

    fn push(&mut self, mut tick: Tick) {
        tick.ts = now_ns();
        put_tick_record(&mut self.batch, &tick.as_ref());
        self.sent += 1;
    }

    fn is_full(&self) -> bool {
        self.batch.len() >= BATCH_BYTES
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.out.write_all(&self.batch).await?;
        self.batch.clear();
        (self.progress)(self.sent);
        Ok(())
    }
}
