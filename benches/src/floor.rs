//! The loopback floor: what writing to many TCP connections costs this
//! machine's kernel, with no broker in the way.
//!
//! A fan-out server must hand every client its bytes with a send of its own
//! (TCP has no one-to-many send), and on loopback each send also carries the
//! receiver's side of TCP on the sender's core. `loadgen floor` measures
//! exactly that and nothing else: one thread writes `frames` × `bytes` to
//! each of `connections` sockets once per `period`, on an absolute schedule, while
//! another thread on the other core reads them all (like the loadgen's
//! subscribers). The writer's CPU per send is the cost any broker pays per
//! client write here, so a latency aim that needs more writes per second
//! than one core can issue cannot be met by any design on this machine.
//!
//! Each write carries `frames` frames of `bytes` each, the same frames to
//! every connection (a broker's outbox holds one shared buffer per tick).
//! By default the writer copies them into one buffer and writes that, as the
//! broker's writer does; the copy is timed with the send, since it is part of
//! what that way of writing costs. With `--writev` it hands the kernel the
//! frames as separate iovecs (`write_vectored`, one `writev` per connection)
//! and copies nothing, the alternative the copy has to beat.
//!
//! With `--uring` the writer hands each round's sends to io_uring in one
//! submission (one system call per round instead of one per client), which
//! is what batching the syscalls could save; the TCP work per send remains.

use std::io::{ErrorKind, IoSlice, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use io_uring::{opcode, types, IoUring};
use serde::Serialize;
use tokio::io::AsyncReadExt;

use crate::procstat::{pin_to_cpu, thread_cpu_seconds};

/// One floor measurement.
#[derive(Debug, Clone)]
pub struct FloorSpec {
    /// Connections written in each round.
    pub connections: usize,
    /// Time between the starts of two rounds.
    pub period: Duration,
    /// Bytes per frame.
    pub bytes: usize,
    /// Frames per write (each connection gets all of them every round).
    pub frames: usize,
    /// How long to write.
    pub duration: Duration,
    /// CPU for the writing thread.
    pub writer_cpu: Option<usize>,
    /// CPU for the reading thread.
    pub reader_cpu: Option<usize>,
    /// How the writer issues its sends.
    pub sends: SendMode,
}

/// How the floor's writer issues a round of sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SendMode {
    /// The frames copied into one buffer, then one non-blocking `send`
    /// system call per connection.
    Syscalls,
    /// The frames as separate iovecs, one non-blocking `writev` per
    /// connection, nothing copied.
    Writev,
    /// The frames copied into one buffer per connection, then all of a
    /// round's sends in one io_uring submission.
    Uring,
}

/// The most iovecs one `writev` takes (Linux's `IOV_MAX`).
pub const MAX_FRAMES: usize = 1024;

/// What the floor measurement found.
#[derive(Debug, Clone, Serialize)]
pub struct FloorReport {
    /// How the writer issued its sends.
    pub mode: SendMode,
    /// Connections written in each round.
    pub connections: usize,
    /// Bytes per frame.
    pub bytes: usize,
    /// Frames per write.
    pub frames: usize,
    /// Time between rounds asked for (µs).
    pub period_us: f64,
    /// Rounds the schedule called for.
    pub rounds_due: u64,
    /// Rounds written (fewer than due: the writer could not keep up).
    pub rounds_done: u64,
    /// Writes that moved bytes.
    pub sends: u64,
    /// Writes the kernel refused (full socket).
    pub refused: u64,
    /// Bytes the writes moved (a write to a nearly full socket may move
    /// only part of its frames).
    pub sent_bytes: u64,
    /// Writes per second achieved.
    pub sends_per_s: f64,
    /// The writing thread's CPU use, in cores.
    pub writer_cpu_cores: f64,
    /// Writer CPU time per send (µs).
    pub cpu_us_per_send: f64,
    /// The reading thread's CPU use, in cores.
    pub reader_cpu_cores: f64,
    /// Bytes the reader received.
    pub received_bytes: u64,
}

impl FloorReport {
    /// One paragraph for the terminal.
    pub fn summary(&self) -> String {
        format!(
            "floor ({:?}): {} connections, {} × {} bytes to each every {:.0} µs: {:.0} sends/s \
             ({} of {} rounds, {} refused), writer {:.2} core = {:.2} µs of CPU per send; \
             reader {:.2} core, {} bytes received",
            self.mode,
            self.connections,
            self.frames,
            self.bytes,
            self.period_us,
            self.sends_per_s,
            self.rounds_done,
            self.rounds_due,
            self.refused,
            self.writer_cpu_cores,
            self.cpu_us_per_send,
            self.reader_cpu_cores,
            self.received_bytes,
        )
    }
}

/// Runs one floor measurement on loopback.
pub fn run_floor(spec: &FloorSpec) -> Result<FloorReport> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind")?;
    let addr = listener.local_addr()?;
    let mut readers = Vec::with_capacity(spec.connections);
    let mut writers = Vec::with_capacity(spec.connections);
    for _ in 0..spec.connections {
        readers.push(TcpStream::connect(addr).context("connect")?);
        let (writer, _) = listener.accept().context("accept")?;
        writer.set_nodelay(true)?;
        // io_uring waits for a full socket itself; the syscall writers must
        // not block.
        writer.set_nonblocking(spec.sends != SendMode::Uring)?;
        writers.push(writer);
    }
    for r in &readers {
        r.set_nonblocking(true)?;
    }
    let reader_cpu = spec.reader_cpu;
    let reader = std::thread::Builder::new()
        .name("floor-reader".into())
        .spawn(move || read_all(readers, reader_cpu))
        .context("spawn reader")?;

    if let Some(cpu) = spec.writer_cpu {
        pin_to_cpu(cpu)?;
    }
    let frames: Vec<Vec<u8>> = (0..spec.frames.clamp(1, MAX_FRAMES))
        .map(|i| vec![i as u8; spec.bytes.max(1)])
        .collect();
    let iovecs: Vec<IoSlice<'_>> = frames.iter().map(|f| IoSlice::new(f)).collect();
    let write_len = frames.iter().map(Vec::len).sum();
    // Copy targets, allocated before the clock starts: one for the syscall
    // writer (its sends complete one by one), one per connection for io_uring
    // (a round's sends are all in flight together).
    let mut copies = vec![
        Vec::with_capacity(write_len);
        match spec.sends {
            SendMode::Uring => writers.len(),
            SendMode::Syscalls => 1,
            SendMode::Writev => 0,
        }
    ];
    let mut ring = match spec.sends {
        SendMode::Uring => Some(IoUring::new(RING_ENTRIES).context("io_uring")?),
        SendMode::Syscalls | SendMode::Writev => None,
    };
    let (mut total, mut rounds_done) = (Tally::default(), 0u64);
    let cpu_before = thread_cpu_seconds();
    let start = Instant::now();
    let rounds_due = (spec.duration.as_secs_f64() / spec.period.as_secs_f64()).ceil() as u64;
    for round in 0..rounds_due {
        let due = start + spec.period.mul_f64(round as f64);
        let now = Instant::now();
        if now < due {
            std::thread::sleep(due - now);
        } else if now > start + spec.duration + spec.period {
            break;
        }
        let tally = match &mut ring {
            Some(ring) => send_round_uring(ring, &writers, &frames, &mut copies)?,
            None if spec.sends == SendMode::Writev => send_round_writev(&writers, &iovecs)?,
            None => send_round_copy(&writers, &frames, &mut copies[0])?,
        };
        total.add(tally);
        rounds_done += 1;
    }
    let wall = start.elapsed().as_secs_f64();
    let writer_cpu = thread_cpu_seconds() - cpu_before;
    drop(writers);
    let (reader_cpu_s, reader_wall, received_bytes) = reader
        .join()
        .map_err(|_| anyhow::anyhow!("floor reader panicked"))??;
    Ok(FloorReport {
        mode: spec.sends,
        connections: spec.connections,
        bytes: spec.bytes.max(1),
        frames: frames.len(),
        period_us: spec.period.as_secs_f64() * 1e6,
        rounds_due,
        rounds_done,
        sends: total.sent,
        refused: total.refused,
        sent_bytes: total.bytes,
        sends_per_s: total.sent as f64 / wall,
        writer_cpu_cores: writer_cpu / wall,
        cpu_us_per_send: writer_cpu * 1e6 / total.sent.max(1) as f64,
        reader_cpu_cores: reader_cpu_s / reader_wall.max(1e-9),
        received_bytes,
    })
}

/// Submission queue size for `--uring` (a round larger than this goes in
/// several submissions).
const RING_ENTRIES: u32 = 1024;

/// What one round of sends did.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    /// Writes that moved bytes.
    sent: u64,
    /// Writes refused (full socket).
    refused: u64,
    /// Bytes moved.
    bytes: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.sent += other.sent;
        self.refused += other.refused;
        self.bytes += other.bytes;
    }

    /// Counts one non-blocking write's outcome.
    fn count(&mut self, result: std::io::Result<usize>) -> Result<()> {
        match result {
            Ok(n) => {
                self.sent += 1;
                self.bytes += n as u64;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => self.refused += 1,
            Err(e) => return Err(anyhow::Error::new(e).context("floor write")),
        }
        Ok(())
    }
}

/// Copies the frames into `buf` and sends it, once per connection: the
/// copy is redone for each, as a writer copies each client's own frames.
fn send_round_copy(writers: &[TcpStream], frames: &[Vec<u8>], buf: &mut Vec<u8>) -> Result<Tally> {
    let mut tally = Tally::default();
    for mut w in writers {
        buf.clear();
        for f in frames {
            buf.extend_from_slice(f);
        }
        tally.count(w.write(buf))?;
    }
    Ok(tally)
}

/// One `writev` of the frames as they are per connection.
fn send_round_writev(writers: &[TcpStream], iovecs: &[IoSlice<'_>]) -> Result<Tally> {
    let mut tally = Tally::default();
    for mut w in writers {
        tally.count(w.write_vectored(iovecs))?;
    }
    Ok(tally)
}

/// The copy round through io_uring: every connection's copy made and its
/// send queued, one submission, then every completion reaped (so the copies
/// outlive them all).
fn send_round_uring(
    ring: &mut IoUring,
    writers: &[TcpStream],
    frames: &[Vec<u8>],
    copies: &mut [Vec<u8>],
) -> Result<Tally> {
    let mut tally = Tally::default();
    let chunk = RING_ENTRIES as usize;
    for (writers, copies) in writers.chunks(chunk).zip(copies.chunks_mut(chunk)) {
        {
            let mut sq = ring.submission();
            for (w, buf) in writers.iter().zip(copies.iter_mut()) {
                buf.clear();
                for f in frames {
                    buf.extend_from_slice(f);
                }
                let len = u32::try_from(buf.len()).context("write too large")?;
                let send = opcode::Send::new(types::Fd(w.as_raw_fd()), buf.as_ptr(), len).build();
                // SAFETY: the buffer lives until this function returns, and
                // it returns only after every send of the chunk completed.
                unsafe { sq.push(&send) }.map_err(|_| anyhow::anyhow!("io_uring queue full"))?;
            }
        }
        let mut done = 0;
        while done < writers.len() {
            ring.submit_and_wait(writers.len() - done)
                .context("io_uring submit")?;
            for cqe in ring.completion() {
                done += 1;
                match u64::try_from(cqe.result()) {
                    Ok(n) => {
                        tally.sent += 1;
                        tally.bytes += n;
                    }
                    Err(_) => tally.refused += 1,
                }
            }
        }
    }
    Ok(tally)
}

/// Reads every connection until the writer closes them all; returns the
/// thread's CPU seconds, its wall seconds and the bytes read.
fn read_all(readers: Vec<TcpStream>, cpu: Option<usize>) -> Result<(f64, f64, u64)> {
    if let Some(cpu) = cpu {
        pin_to_cpu(cpu)?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("reader runtime")?;
    let cpu_before = thread_cpu_seconds();
    let start = Instant::now();
    let total = runtime.block_on(async move {
        let mut tasks = tokio::task::JoinSet::new();
        for std_stream in readers {
            let mut stream = tokio::net::TcpStream::from_std(std_stream)?;
            tasks.spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut got = 0u64;
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    got += n as u64;
                }
                got
            });
        }
        let mut total = 0;
        while let Some(got) = tasks.join_next().await {
            total += got.unwrap_or(0);
        }
        anyhow::Ok(total)
    })?;
    Ok((
        thread_cpu_seconds() - cpu_before,
        start.elapsed().as_secs_f64(),
        total,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_written_is_read_and_the_cost_is_counted() {
        // One 1,000-byte frame, and four of 250 bytes (copied, or as iovecs).
        for (frames, bytes) in [(1, 1_000), (4, 250)] {
            for sends in [SendMode::Syscalls, SendMode::Writev, SendMode::Uring] {
                let report = run_floor(&FloorSpec {
                    connections: 8,
                    period: Duration::from_millis(5),
                    bytes,
                    frames,
                    duration: Duration::from_millis(200),
                    writer_cpu: None,
                    reader_cpu: None,
                    sends,
                })
                .unwrap();
                let case = format!("{sends:?}, {frames} × {bytes}");
                assert_eq!(report.rounds_due, 40, "{case}");
                assert_eq!(report.rounds_done, 40, "{case}");
                assert_eq!(report.sends + report.refused, 8 * 40, "{case}");
                assert_eq!(report.refused, 0, "8 KB in flight fits any socket");
                assert_eq!(report.sent_bytes, report.sends * 1_000, "{case}");
                assert_eq!(report.received_bytes, report.sent_bytes, "{case}");
                assert!(report.cpu_us_per_send > 0.0, "{case}");
            }
        }
    }
}
