//! The publisher: ticks into the server at a constant rate on an absolute
//! schedule.
//!
//! Tick `i` is due at `start + i/rate` and carries that *intended* time as its
//! `ts`, whether or not the publisher managed to send it then. If the server
//! pushes back (a full socket), the ticks go out late but keep their
//! intended stamps, so the delay shows up in the measured latency instead of
//! silently lowering the rate: the coordinated-omission correction of wrk2.
//! Everything due is sent in one write, then the thread sleeps until the
//! next tick is due, but at least the schedule's batch interval: one write
//! and one wake-up per tick would cost the publisher (and, through the
//! loopback, the server) a syscall and a context switch each, which at tens
//! of thousands of ticks per second is a good part of a core that the
//! subscribers' side of the load generator needs.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tickcast_protocol::framing::put_tick_record;

use feed_simulator::market::Market;

use crate::nats;
use crate::target::{Endpoints, TargetKind};

/// The most ticks encoded into one write when the publisher is behind, so a
/// stall cannot make it build one enormous buffer.
const MAX_BATCH: u64 = 4096;
/// The longest one write may block on a server that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a NATS publisher checks for the server's `PING`s.
const PING_CHECK: Duration = Duration::from_secs(1);

/// The publisher's connection.
#[derive(Debug)]
pub struct PubConn {
    stream: TcpStream,
    kind: TargetKind,
    scratch: Vec<u8>,
}

impl PubConn {
    /// Connects to the server's publish port (and, for NATS, says `CONNECT`
    /// and waits for the `PONG` that proves the server accepted it).
    pub fn connect(endpoints: &Endpoints) -> Result<Self> {
        let stream = TcpStream::connect_timeout(&endpoints.publish, Duration::from_secs(5))
            .with_context(|| format!("connect publisher to {}", endpoints.publish))?;
        stream.set_nodelay(true)?;
        // A server that stops reading must not hang the run: the write
        // fails instead and the step reports it.
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        let mut conn = PubConn {
            stream,
            kind: endpoints.kind,
            scratch: Vec::with_capacity(256),
        };
        if conn.kind == TargetKind::Nats {
            conn.stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            conn.stream.write_all(nats::CONNECT)?;
            conn.stream.write_all(b"PING\r\n")?;
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while !seen.windows(6).any(|w| w == b"PONG\r\n") {
                let n = conn.stream.read(&mut buf).context("NATS handshake")?;
                if n == 0 || seen.len() > 64 * 1024 {
                    bail!("NATS server closed or misbehaved during the handshake");
                }
                seen.extend_from_slice(&buf[..n]);
            }
            conn.stream.set_read_timeout(None)?;
        }
        Ok(conn)
    }

    fn append(&mut self, out: &mut Vec<u8>, tick: &tickcast_protocol::TickRef<'_>) {
        match self.kind {
            TargetKind::Tickcast => put_tick_record(out, tick),
            TargetKind::Nats => {
                self.scratch.clear();
                tick.encode(&mut self.scratch);
                nats::put_pub(out, tick.sym, &self.scratch);
            }
        }
    }

    /// NATS disconnects a client that leaves its `PING`s unanswered: answer
    /// any waiting ones without blocking.
    fn answer_pings(&mut self) -> Result<()> {
        if self.kind != TargetKind::Nats {
            return Ok(());
        }
        self.stream.set_nonblocking(true)?;
        let mut buf = [0u8; 4096];
        let mut pings = 0;
        let result = loop {
            match self.stream.read(&mut buf) {
                Ok(0) => break Err(anyhow::anyhow!("NATS server closed the publisher")),
                Ok(n) => {
                    let got = &buf[..n];
                    if let Some(at) = got.windows(4).position(|w| w == b"-ERR") {
                        let line = String::from_utf8_lossy(&got[at..])
                            .lines()
                            .next()
                            .unwrap_or_default()
                            .to_owned();
                        break Err(anyhow::anyhow!("NATS refused a publish: {line}"));
                    }
                    pings += got.windows(4).filter(|w| w == b"PING").count();
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break Ok(()),
                Err(e) => break Err(e.into()),
            }
        };
        self.stream.set_nonblocking(false)?;
        result?;
        for _ in 0..pings {
            self.stream.write_all(b"PONG\r\n")?;
        }
        Ok(())
    }
}

/// One step's publishing plan.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Ticks per second.
    pub rate: f64,
    /// How many ticks in all.
    pub total: u64,
    /// When tick 0 is due.
    pub start: Instant,
    /// The same moment on the wall clock, ns since the epoch.
    pub start_wall_ns: u64,
    /// The shortest time between two writes.
    pub batch: Duration,
}

impl Schedule {
    /// The intended send time of tick `i`, relative to `start`.
    fn due(&self, i: u64) -> Duration {
        Duration::from_secs_f64(i as f64 / self.rate)
    }
}

/// What a step's publisher did.
#[derive(Debug, Clone)]
pub struct Published {
    /// Ticks sent per symbol.
    pub per_symbol: Vec<u64>,
    /// Ticks sent.
    pub sent: u64,
    /// From the first due time to the last write.
    pub elapsed: Duration,
    /// How far behind schedule the publisher fell at worst.
    pub max_lag: Duration,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
    /// Whether it ran at real-time priority (see [`publish`]).
    pub realtime: bool,
}

/// Publishes `schedule.total` ticks on schedule (or until `stop`), storing
/// the count sent so far in `progress`.
///
/// The thread asks for real-time priority first: it shares its core with
/// the subscriber threads, and at normal priority a busy subscriber thread
/// made it wake up to 8 ms late, which the absolute schedule then (rightly)
/// counted as the server's latency. Where the kernel refuses (no
/// `CAP_SYS_NICE`), it runs as before and the step reports it.
pub fn publish(
    conn: &mut PubConn,
    market: &mut Market,
    schedule: Schedule,
    progress: &AtomicU64,
    stop: &AtomicBool,
) -> Published {
    crate::procstat::precise_timers();
    let realtime = crate::procstat::realtime_priority();
    let mut per_symbol = vec![0u64; market.symbols().len()];
    let mut buf = Vec::with_capacity(256 * 1024);
    let mut sent = 0u64;
    let mut max_lag = Duration::ZERO;
    let mut next_ping_check = schedule.start + PING_CHECK;
    let mut error = None;
    let mut next_write = schedule.start;
    while sent < schedule.total && !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(schedule.start);
        let due = ((elapsed.as_secs_f64() * schedule.rate) as u64 + 1).min(schedule.total);
        if due <= sent || now < next_write {
            // Nothing due, or the last write was too recent: sleep until the
            // next tick is due and a write is allowed.
            let next = (schedule.start + schedule.due(sent)).max(next_write);
            std::thread::sleep(next.saturating_duration_since(now));
            continue;
        }
        max_lag = max_lag.max(elapsed.saturating_sub(schedule.due(sent)));
        let batch_end = due.min(sent + MAX_BATCH);
        for i in sent..batch_end {
            let ts = schedule.start_wall_ns + schedule.due(i).as_nanos() as u64;
            let (sym, tick) = market.next_tick_at(ts);
            per_symbol[sym] += 1;
            conn.append(&mut buf, &tick);
        }
        if let Err(e) = conn.stream.write_all(&buf) {
            error = Some(format!("publisher write failed: {e}"));
            break;
        }
        buf.clear();
        sent = batch_end;
        next_write = now + schedule.batch;
        progress.store(sent, Ordering::Relaxed);
        if now >= next_ping_check {
            next_ping_check = now + PING_CHECK;
            if let Err(e) = conn.answer_pings() {
                error = Some(e.to_string());
                break;
            }
        }
    }
    Published {
        per_symbol,
        sent,
        elapsed: schedule.start.elapsed(),
        max_lag,
        error,
        realtime,
    }
}
