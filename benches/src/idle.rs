//! An idle run: open many WebSocket connections that subscribe to nothing,
//! hold them, and measure what they cost the server in memory.
//!
//! Idle connections are most of a real deployment (dashboards left open), so
//! bytes per idle connection bounds how many clients a box can hold. One
//! source address has only ~28k ephemeral ports towards a server, so the
//! connections are spread over 127.0.0.1, 127.0.0.2, … (all loopback).
//! The connections keep answering the server's pings while held, so a
//! server that drops unresponsive clients keeps them.

use std::cell::Cell;
use std::net::Ipv4Addr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::Semaphore;

use crate::conn::{ConnOptions, Event, SubConn};
use crate::latency::now_ns;
use crate::procstat::{rss_kib, CpuMeter};
use crate::report::{IdleReport, RunReport};
use crate::scenario::Scenario;
use crate::target::Endpoints;

/// An idle connection receives only pings and handshake replies.
const IDLE_READ_BUF: usize = 1024;
/// Time for one connection to open (and be acknowledged, for NATS).
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// Time for the server's memory to settle after the last connection opened.
const SETTLE: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Counts {
    connected: Cell<usize>,
    failed: Cell<usize>,
    dropped: Cell<usize>,
}

fn bump(c: &Cell<usize>) {
    c.set(c.get() + 1);
}

/// Runs an idle scenario against a listening server; `server_pid` gives the
/// memory figures.
pub fn run_idle(
    scenario: &Scenario,
    endpoints: Endpoints,
    server_pid: Option<u32>,
) -> Result<RunReport> {
    let idle = scenario.idle.as_ref().context("not an idle scenario")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let rss_before = server_pid.and_then(rss_kib);
    let cpu = CpuMeter::start(None);
    let counts = Rc::new(Counts::default());
    let slots = Rc::new(Semaphore::new(idle.concurrency));
    let started = Instant::now();
    let (open_s, rss_after) = local.block_on(&runtime, async {
        for i in 0..idle.connections {
            let source = Ipv4Addr::new(127, 0, 0, 1 + (i % usize::from(idle.source_addrs)) as u8);
            let (counts, slots) = (counts.clone(), slots.clone());
            tokio::task::spawn_local(async move {
                let open = async {
                    let _slot = slots.acquire().await?;
                    let opts = ConnOptions {
                        source: Some(source),
                        rcvbuf: None,
                        read_buf: IDLE_READ_BUF,
                        tls: None,
                    };
                    let mut conn =
                        SubConn::connect(endpoints.ws, endpoints.kind.protocol(), &opts, i as u32)
                            .await?;
                    conn.hello().await?;
                    if endpoints.kind == crate::target::TargetKind::Nats {
                        wait_ack(&mut conn).await?;
                    }
                    anyhow::Ok(conn)
                };
                let mut conn = match tokio::time::timeout(OPEN_TIMEOUT, open).await {
                    Ok(Ok(conn)) => conn,
                    _ => return bump(&counts.failed),
                };
                bump(&counts.connected);
                // Runs until the server drops it or the run ends (the
                // task is dropped with the runtime, closing the socket).
                while hold(&mut conn).await {}
                bump(&counts.dropped);
            });
        }
        let deadline =
            Instant::now() + OPEN_TIMEOUT + Duration::from_millis(idle.connections as u64 * 5);
        while counts.connected.get() + counts.failed.get() < idle.connections
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let open_s = started.elapsed().as_secs_f64();
        tokio::time::sleep(SETTLE).await;
        let rss_after = server_pid.and_then(rss_kib);
        tokio::time::sleep(Duration::from_secs_f64(idle.hold_s)).await;
        (open_s, rss_after)
    });
    let (loadgen_cpu, _) = cpu.read();
    drop(local);
    let connected = counts.connected.get();
    let per_conn = match (rss_before, rss_after) {
        (Some(b), Some(a)) if connected > 0 => {
            Some(a.saturating_sub(b) as f64 * 1024.0 / connected as f64)
        }
        _ => None,
    };
    Ok(RunReport {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        target: endpoints.kind.name().to_owned(),
        started_unix_s: now_ns() / 1_000_000_000,
        symbols: 0,
        steps: Vec::new(),
        saturation: None,
        idle: Some(IdleReport {
            connections: idle.connections,
            connected,
            failed: counts.failed.get(),
            dropped_during_hold: counts.dropped.get(),
            open_s,
            hold_s: idle.hold_s,
            server_rss_before_kib: rss_before,
            server_rss_after_kib: rss_after,
            server_bytes_per_connection: per_conn,
            loadgen_cpu_cores: loadgen_cpu,
        }),
    })
}

/// Reads until the NATS `PONG` that acknowledges `CONNECT`.
async fn wait_ack(conn: &mut SubConn) -> Result<()> {
    loop {
        anyhow::ensure!(conn.read_some().await? > 0, "closed during CONNECT");
        let mut acked = false;
        conn.process(&mut |e| acked |= matches!(e, Event::Ack(_)))?;
        conn.flush_replies().await?;
        if acked {
            return Ok(());
        }
    }
}

/// Reads once, answering pings; false once the server has closed.
async fn hold(conn: &mut SubConn) -> bool {
    let step = async {
        if conn.read_some().await? == 0 {
            return Ok(false);
        }
        let mut closed = false;
        conn.process(&mut |e| closed |= matches!(e, Event::Closed(_)))?;
        conn.flush_replies().await?;
        anyhow::Ok(!closed)
    };
    step.await.unwrap_or(false)
}
