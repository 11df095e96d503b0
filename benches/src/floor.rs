//! The loopback floor: what writing to many TCP connections costs this
//! machine's kernel, with no broker in the way.
//!
//! A fan-out server must hand every client its bytes with a send of its own
//! (TCP has no one-to-many send), and on loopback each send also carries the
//! receiver's side of TCP on the sender's core. `loadgen floor` measures
//! exactly that and nothing else: one thread writes `bytes` to each of
//! `connections` sockets once per `period`, on an absolute schedule, while
//! another thread on the other core reads them all (like the loadgen's
//! subscribers). The writer's CPU per send is the cost any broker pays per
//! client write here, so a latency aim that needs more writes per second
//! than one core can issue cannot be met by any design on this machine.
//!
//! With `--uring` the writer hands each round's sends to io_uring in one
//! submission (one system call per round instead of one per client), which
//! is what batching the syscalls could save; the TCP work per send remains.

use std::io::{ErrorKind, Write};
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
    /// Bytes per write.
    pub bytes: usize,
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
    /// One non-blocking `send` system call per connection.
    Syscalls,
    /// All of a round's sends in one io_uring submission.
    Uring,
}

/// What the floor measurement found.
#[derive(Debug, Clone, Serialize)]
pub struct FloorReport {
    /// How the writer issued its sends.
    pub mode: SendMode,
    /// Connections written in each round.
    pub connections: usize,
    /// Bytes per write.
    pub bytes: usize,
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
            "floor ({:?}): {} connections, {} bytes to each every {:.0} µs: {:.0} sends/s \
             ({} of {} rounds, {} refused), writer {:.2} core = {:.2} µs of CPU per send; \
             reader {:.2} core, {} bytes received",
            self.mode,
            self.connections,
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
        // io_uring waits for a full socket itself; the syscall writer must
        // not block.
        writer.set_nonblocking(spec.sends == SendMode::Syscalls)?;
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
    let payload = vec![0x5au8; spec.bytes.max(1)];
    let mut ring = match spec.sends {
        SendMode::Uring => Some(IoUring::new(RING_ENTRIES).context("io_uring")?),
        SendMode::Syscalls => None,
    };
    let (mut sends, mut refused, mut rounds_done) = (0u64, 0u64, 0u64);
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
        let (sent, full) = match &mut ring {
            Some(ring) => send_round_uring(ring, &writers, &payload)?,
            None => send_round(&writers, &payload)?,
        };
        sends += sent;
        refused += full;
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
        bytes: spec.bytes,
        period_us: spec.period.as_secs_f64() * 1e6,
        rounds_due,
        rounds_done,
        sends,
        refused,
        sends_per_s: sends as f64 / wall,
        writer_cpu_cores: writer_cpu / wall,
        cpu_us_per_send: writer_cpu * 1e6 / sends.max(1) as f64,
        reader_cpu_cores: reader_cpu_s / reader_wall.max(1e-9),
        received_bytes,
    })
}

/// Submission queue size for `--uring` (a round larger than this goes in
/// several submissions).
const RING_ENTRIES: u32 = 1024;

/// One `send` per connection; returns (sends that moved bytes, refused).
fn send_round(writers: &[TcpStream], payload: &[u8]) -> Result<(u64, u64)> {
    let (mut sent, mut refused) = (0, 0);
    for mut w in writers {
        match w.write(payload) {
            Ok(_) => sent += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => refused += 1,
            Err(e) => return Err(anyhow::Error::new(e).context("floor write")),
        }
    }
    Ok((sent, refused))
}

/// The same round through io_uring: every send queued, one submission,
/// then every completion reaped (so `payload` outlives them all).
fn send_round_uring(
    ring: &mut IoUring,
    writers: &[TcpStream],
    payload: &[u8],
) -> Result<(u64, u64)> {
    let (mut sent, mut refused) = (0, 0);
    let len = u32::try_from(payload.len()).context("payload too large")?;
    for chunk in writers.chunks(RING_ENTRIES as usize) {
        {
            let mut sq = ring.submission();
            for w in chunk {
                let send =
                    opcode::Send::new(types::Fd(w.as_raw_fd()), payload.as_ptr(), len).build();
                // SAFETY: the buffer lives until this function returns, and
                // it returns only after every send of the chunk completed.
                unsafe { sq.push(&send) }.map_err(|_| anyhow::anyhow!("io_uring queue full"))?;
            }
        }
        let mut done = 0;
        while done < chunk.len() {
            ring.submit_and_wait(chunk.len() - done)
                .context("io_uring submit")?;
            for cqe in ring.completion() {
                done += 1;
                if cqe.result() >= 0 {
                    sent += 1;
                } else {
                    refused += 1;
                }
            }
        }
    }
    Ok((sent, refused))
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
        for sends in [SendMode::Syscalls, SendMode::Uring] {
            let report = run_floor(&FloorSpec {
                connections: 8,
                period: Duration::from_millis(5),
                bytes: 1_000,
                duration: Duration::from_millis(200),
                writer_cpu: None,
                reader_cpu: None,
                sends,
            })
            .unwrap();
            assert_eq!(report.rounds_due, 40);
            assert_eq!(report.rounds_done, 40);
            assert_eq!(report.sends + report.refused, 8 * 40);
            assert_eq!(report.refused, 0, "8 KB in flight fits any socket");
            assert_eq!(report.received_bytes, report.sends * 1_000);
            assert!(report.cpu_us_per_send > 0.0);
        }
    }
}
