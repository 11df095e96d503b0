//! New connections per second (`loadgen handshakes`): each one a TCP
//! connect, with `--tls` a full TLS handshake (no resumption, `tls.rs`),
//! the WebSocket upgrade, then a close frame and the socket closed. That is
//! what a reconnect storm (a broker restart, a network blip) costs a
//! server, and where TLS costs most: the key exchange is per connection,
//! not per tick.
//!
//! `concurrency` connections are in flight at once on one thread, until
//! `connections` were made or `max_duration` passed, whichever comes first;
//! the report gives their rate, the time each took from connect to the
//! `101` (percentiles), the failures, and both processes' CPU.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::conn::{ConnOptions, Protocol, SubConn};
use crate::procstat::CpuMeter;
use crate::tls::ClientTls;

/// What to measure.
#[derive(Debug, Clone)]
pub struct HandshakeSpec {
    /// The server's WebSocket address.
    pub ws: SocketAddr,
    /// tickcast or NATS.
    pub protocol: Protocol,
    /// wss with this (None: ws).
    pub tls: Option<ClientTls>,
    /// Connections to make (at most).
    pub connections: u64,
    /// Connections in flight at once.
    pub concurrency: usize,
    /// Stop after this long even if fewer were made.
    pub max_duration: Duration,
    /// The server's pid, for its CPU.
    pub server_pid: Option<u32>,
}

/// What was measured.
#[derive(Debug, Clone, Serialize)]
pub struct HandshakeReport {
    /// `wss` or `ws`.
    pub scheme: &'static str,
    /// Connections upgraded.
    pub connections: u64,
    /// Connections that failed (connect, handshake or upgrade).
    pub failed: u64,
    /// Wall time of the run.
    pub seconds: f64,
    /// Upgraded connections per second.
    pub per_second: f64,
    /// Connect to `101`, per connection, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile of the same.
    pub p99_ms: f64,
    /// The slowest.
    pub max_ms: f64,
    /// The load generator's CPU, in cores.
    pub loadgen_cpu: f64,
    /// The server's CPU, in cores (when its pid is known).
    pub server_cpu: Option<f64>,
}

impl HandshakeReport {
    /// One line for the terminal.
    pub fn summary(&self) -> String {
        let server = self
            .server_cpu
            .map_or_else(|| "?".to_owned(), |c| format!("{c:.2}"));
        format!(
            "{}: {} connections in {:.1} s = {:.0}/s ({} failed); connect → 101 p50 {:.2} ms, \
             p99 {:.2} ms, max {:.2} ms; CPU loadgen {:.2}, server {server} cores\n",
            self.scheme,
            self.connections,
            self.seconds,
            self.per_second,
            self.failed,
            self.p50_ms,
            self.p99_ms,
            self.max_ms,
            self.loadgen_cpu
        )
    }
}

/// Counts shared by the connecting tasks (one thread: no atomics).
struct Tally {
    started: u64,
    done: u64,
    failed: u64,
    micros: Histogram<u64>,
}

/// Runs the measurement on this thread.
pub fn run_handshakes(spec: &HandshakeSpec) -> Result<HandshakeReport> {
    anyhow::ensure!(
        spec.concurrency >= 1 && spec.connections >= 1,
        "--concurrency and --connections must be at least 1"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("runtime")?;
    let tally = Rc::new(RefCell::new(Tally {
        started: 0,
        done: 0,
        failed: 0,
        micros: Histogram::new_with_bounds(1, 60_000_000, 3)?,
    }));
    let cpu = CpuMeter::start(spec.server_pid);
    let began = Instant::now();
    let deadline = began + spec.max_duration;
    let local = tokio::task::LocalSet::new();
    for worker in 0..spec.concurrency {
        let (spec, tally) = (spec.clone(), tally.clone());
        local.spawn_local(async move {
            let opts = ConnOptions {
                read_buf: 4096,
                tls: spec.tls.clone(),
                ..ConnOptions::default()
            };
            loop {
                {
                    let mut t = tally.borrow_mut();
                    if t.started >= spec.connections || Instant::now() >= deadline {
                        return;
                    }
                    t.started += 1;
                }
                let t0 = Instant::now();
                let id = worker as u32;
                let left = deadline
                    .saturating_duration_since(t0)
                    .max(Duration::from_secs(1));
                let opened =
                    tokio::time::timeout(left, SubConn::connect(spec.ws, spec.protocol, &opts, id))
                        .await;
                let took = t0.elapsed();
                match opened {
                    Ok(Ok(mut conn)) => {
                        {
                            let mut t = tally.borrow_mut();
                            t.done += 1;
                            t.micros.saturating_record(took.as_micros() as u64);
                        }
                        // A polite goodbye; the server's echo is not awaited.
                        let _ = conn.send_close(1000).await;
                    }
                    _ => tally.borrow_mut().failed += 1,
                }
            }
        });
    }
    runtime.block_on(local);
    let seconds = began.elapsed().as_secs_f64();
    let (loadgen_cpu, server_cpu) = cpu.read();
    let t = tally.borrow();
    let ms = |q: f64| t.micros.value_at_quantile(q) as f64 / 1000.0;
    Ok(HandshakeReport {
        scheme: if spec.tls.is_some() { "wss" } else { "ws" },
        connections: t.done,
        failed: t.failed,
        seconds,
        per_second: t.done as f64 / seconds.max(1e-9),
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        max_ms: t.micros.max() as f64 / 1000.0,
        loadgen_cpu,
        server_cpu,
    })
}
