//! Sending a paced tick stream over a connection, in the ingest framing.
//!
//! Each tick waits for its due time on the [`Pacer`]'s absolute schedule, is
//! restamped with the real send time and appended to a batch. The batch is
//! written only when the next tick is not yet due (or it is full), so when
//! many ticks are due at once (high rates, a late sender, `--speed max`)
//! they share one write syscall: on loopback a syscall costs about as much
//! as encoding dozens of ticks.

use std::io;

use tickcast_protocol::clock::now_ns;
use tickcast_protocol::framing::put_tick_record;
use tickcast_protocol::Tick;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::file::FeedFileError;
use crate::pacing::Pacer;

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
    mut progress: impl FnMut(u64),
) -> Result<u64, SendError>
where
    S: TickSource,
    W: AsyncWrite + Unpin,
{
    let mut batch = Vec::with_capacity(BATCH_BYTES + 1024);
    let mut sent = 0u64;
    loop {
        let next = match source.next_tick() {
            Ok(next) => next,
            Err(e) => {
                // What was read before the damage still goes out.
                write_batch(out, &mut batch).await?;
                return Err(e.into());
            }
        };
        let Some(PacedTick { due_ts, mut tick }) = next else {
            break;
        };
        if !pacer.is_due(due_ts) {
            // Everything already due leaves before we sleep.
            if !batch.is_empty() {
                write_batch(out, &mut batch).await?;
                progress(sent);
            }
            pacer.wait_until_due(due_ts).await;
        }
        tick.ts = now_ns();
        put_tick_record(&mut batch, &tick.as_ref());
        sent += 1;
        if batch.len() >= BATCH_BYTES {
            write_batch(out, &mut batch).await?;
            progress(sent);
        }
    }
    write_batch(out, &mut batch).await?;
    out.flush().await?;
    progress(sent);
    Ok(sent)
}

async fn write_batch<W: AsyncWrite + Unpin>(out: &mut W, batch: &mut Vec<u8>) -> io::Result<()> {
    if !batch.is_empty() {
        out.write_all(batch).await?;
        batch.clear();
    }
    Ok(())
}
