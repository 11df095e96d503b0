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
//!
//! The buffer frames are assembled in belongs to the runtime thread, not to
//! the connection: every writer on a thread copies into the same one and
//! writes it without waiting, so it stays in cache (a buffer per connection
//! means a thousand cold buffers, each copy and each kernel read of it a
//! stream of cache misses). Only what the kernel does not take at once, when
//! a client's socket is full, is copied into the connection's own buffer to
//! wait for the socket.

use std::cell::RefCell;
use std::io::ErrorKind;
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

thread_local! {
    /// The frames of one write, assembled (see the module docs).
    static ASSEMBLY: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

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
    // What the kernel did not take at once, waiting for the socket.
    let mut unsent: Vec<u8> = Vec::new();
    loop {
        let take = outbox.take(&mut batch, MAX_BATCH_BYTES);
        if take == Take::Empty {
            if unsent.capacity() > KEEP_WHEN_IDLE {
                unsent = Vec::new();
                batch = Vec::new();
            }
            tokio::select! {
                _ = outbox.wait() => continue,
                _ = session.cancelled() => return,
            }
        }
        let Some(bytes) = write_batch(&mut socket, &batch, &mut unsent, &session).await else {
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

/// Writes a batch: first without waiting, a lone frame from its own bytes
/// and several from the thread's assembly buffer; whatever the kernel does
/// not take then is copied to `unsent` and written once the socket is
/// writable, unless the session is cancelled first. Returns the byte count,
/// or `None` when the connection is gone.
async fn write_batch(
    socket: &mut OwnedWriteHalf,
    batch: &[Queued],
    unsent: &mut Vec<u8>,
    session: &Session,
) -> Option<usize> {
    let total = if let [single] = batch {
        let data: &[u8] = &single.frame;
        let sent = try_write_all(socket, data)?;
        unsent.extend_from_slice(&data[sent..]);
        data.len()
    } else {
        ASSEMBLY.with_borrow_mut(|buf| {
            assemble(batch, buf);
            let sent = try_write_all(socket, buf)?;
            unsent.extend_from_slice(&buf[sent..]);
            Some(buf.len())
        })?
    };
    if !unsent.is_empty() {
        let written = tokio::select! {
            res = socket.write_all(unsent) => res.is_ok(),
            _ = session.cancelled() => false,
        };
        unsent.clear();
        if !written {
            return None;
        }
    }
    Some(total)
}

/// Writes as much of `data` as the socket takes without waiting; `None` if
/// the connection failed.
fn try_write_all(socket: &OwnedWriteHalf, data: &[u8]) -> Option<usize> {
    let mut sent = 0;
    while sent < data.len() {
        match socket.try_write(&data[sent..]) {
            Ok(0) => return None,
            Ok(n) => sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(sent)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SlowConsumerPolicy;
    use crate::outbox::Outbox;
    use bytes::Bytes;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpSocket};

    /// A batch far larger than the socket buffers: the part the kernel does
    /// not take at once goes through `unsent`, and the reader still gets
    /// every byte, in order.
    #[tokio::test]
    async fn a_batch_the_socket_cannot_take_at_once_arrives_whole_and_in_order() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpSocket::new_v4().unwrap();
        client.set_recv_buffer_size(4096).unwrap();
        let mut client = client.connect(addr).await.unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        let (_read, mut write) = server.into_split();
        let batch: Vec<Queued> = (0..1_000u32)
            .map(|i| Queued {
                frame: Bytes::from(i.to_le_bytes().repeat(1024)),
                enqueued_ns: 1,
            })
            .collect();
        let want: Vec<u8> = batch.iter().flat_map(|q| q.frame.to_vec()).collect();
        let session = Session::new(1, peer, Outbox::new(1024, SlowConsumerPolicy::Conflate), 0);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.map(|_| got)
        });
        let mut unsent = Vec::new();
        let sent = write_batch(&mut write, &batch, &mut unsent, &session).await;
        assert_eq!(sent, Some(want.len()));
        assert!(unsent.is_empty());
        write.shutdown().await.unwrap();
        let got = reader.await.unwrap().unwrap();
        assert!(
            got == want,
            "{} of {} bytes, or out of order",
            got.len(),
            want.len()
        );
    }
}
