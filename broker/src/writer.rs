//! The per-connection writer: drains the outbox into the socket, many frames
//! per system call.
//!
//! A send costs 4–5 µs on loopback whatever its size (see
//! `../shared/design.md`), so batching is what makes fan-out fast. Each time
//! it wakes, the writer takes everything queued (up to [`MAX_BATCH_BYTES`]),
//! copies the frames into one contiguous buffer and writes it with one call.
//! Copying ~130-byte frames costs far less than the syscalls it saves, and we
//! measured it faster than `writev` over the same frames. A lone frame is
//! written straight from its shared buffer, without the copy. The writer only
//! waits on the socket when the kernel's send buffer is full; meanwhile the
//! outbox fills and its slow-consumer policy takes over.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;

use crate::config::WriteCoalesce;
use crate::latency::Stage;
use crate::metrics::Metrics;
use crate::outbox::{Queued, Take};
use crate::session::Session;
use crate::Shared;
use tickcast_protocol::clock::now_ns;

/// The most bytes written in one call. Large enough to amortise the syscall,
/// small enough that the copy stays in cache.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// The granularity of tokio's timer; pauses shorter than this are skipped.
const TIMER_RESOLUTION: Duration = Duration::from_millis(1);

/// Buffers larger than this are released when the writer goes idle, so a
/// connection that once had a burst does not keep its peak memory.
const KEEP_WHEN_IDLE: usize = 16 * 1024;

/// Runs until the close frame is written, the socket fails, or the session is
/// cancelled.
///
/// After each write the writer pauses (`--write-coalesce`). A
/// write costs the same few microseconds of kernel time whether it carries
/// one frame or fifty, and with hundreds of busy connections those fixed
/// costs, not the bytes, fill the CPU. So after each write the writer pauses
/// and then sends everything that gathered meanwhile (with `auto`, the pause
/// grows with the number of busy connections; see `config::WriteCoalesce`). A
/// connection that was quiet for longer than that is written at once, so the
/// pause adds latency only where ticks follow each other closely, which is
/// where it buys throughput; an outbox filling past half its limit ends the
/// pause early, so it never pushes a client into conflation.
pub async fn run(mut socket: OwnedWriteHalf, session: Arc<Session>, shared: Arc<Shared>) {
    let metrics = &shared.metrics;
    let outbox = &session.subscriber.outbox;
    let mut batch: Vec<Queued> = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let take = outbox.take(&mut batch, MAX_BATCH_BYTES);
        if take == Take::Empty {
            if buf.capacity() > KEEP_WHEN_IDLE {
                buf = Vec::new();
                batch = Vec::new();
            }
            tokio::select! {
                _ = outbox.wait() => continue,
                _ = session.cancelled() => return,
            }
        }
        let bytes = if let [single] = batch.as_slice() {
            write(&mut socket, &single.frame, &session).await
        } else {
            assemble(&batch, &mut buf);
            write(&mut socket, &buf, &session).await
        };
        let Some(bytes) = bytes else {
            session.cancel();
            return;
        };
        account(&batch, bytes, metrics, &session);
        batch.clear();
        outbox.wrote();
        if take == Take::Last {
            // The close frame is out: half-close so the client sees the end
            // and answers with its own close; the reader then finishes.
            let _ = socket.shutdown().await;
            return;
        }
        let pause = match shared.limits.write_coalesce {
            WriteCoalesce::Fixed(pause) => pause,
            WriteCoalesce::Auto { .. } => shared.connections.auto_write_pause(),
        };
        // tokio's timer counts whole milliseconds: a shorter pause would
        // still sleep about a millisecond, adding latency the few busy
        // connections it was computed for do not need.
        if pause >= TIMER_RESOLUTION {
            // Let the next frames gather; the outbox cuts this short when it
            // passes half its limit.
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = outbox.wait_urgent() => {}
                _ = session.cancelled() => return,
            }
        }
    }
}

/// Copies a batch of frames into one contiguous buffer for a single write.
pub fn assemble(batch: &[Queued], buf: &mut Vec<u8>) {
    buf.clear();
    buf.reserve(batch.iter().map(|q| q.frame.len()).sum());
    for q in batch {
        buf.extend_from_slice(&q.frame);
    }
}

/// Writes all of `data`, unless the session is cancelled first. Returns the
/// byte count, or `None` when the connection is gone.
async fn write(socket: &mut OwnedWriteHalf, data: &[u8], session: &Session) -> Option<usize> {
    tokio::select! {
        res = socket.write_all(data) => res.ok().map(|()| data.len()),
        _ = session.cancelled() => None,
    }
}

/// Records the enqueue → write latency of every tick in the batch (control
/// frames carry no enqueue time) and the counters, under one lock.
fn account(batch: &[Queued], bytes: usize, metrics: &Metrics, session: &Session) {
    let now = now_ns();
    {
        let mut stages = metrics.stages.lock();
        let mut run: Option<(u64, u64)> = None;
        // Frames of one fan-out share their enqueue time: record runs at once.
        for q in batch.iter().filter(|q| q.enqueued_ns != 0) {
            let latency = now.saturating_sub(q.enqueued_ns);
            match &mut run {
                Some((value, count)) if *value == latency => *count += 1,
                _ => {
                    if let Some((value, count)) = run.take() {
                        stages.record_n(Stage::EnqueueToWrite, value, count);
                    }
                    run = Some((latency, 1));
                }
            }
        }
        if let Some((value, count)) = run {
            stages.record_n(Stage::EnqueueToWrite, value, count);
        }
    }
    let frames = batch.len() as u64;
    metrics.frames_out.add(frames);
    metrics.bytes_out.add(bytes as u64);
    metrics.writes.add(1);
    session
        .subscriber
        .outbox
        .counters
        .delivered
        .fetch_add(frames, std::sync::atomic::Ordering::Relaxed);
}
