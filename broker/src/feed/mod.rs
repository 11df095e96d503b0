//! Feed sources: where ticks enter the broker.
//!
//! - **sim**: the embedded simulator (`feed_simulator::market`), paced in real
//!   time on an absolute schedule, each tick stamped with its send time;
//! - **ingest**: a TCP listener for publishers speaking the ingest framing
//!   (`u32` length + MessagePack tick), e.g. `feed-simulator publish`;
//! - **replay**: a recorded feed file, paced by its recorded gaps.
//!
//! Every source validates each tick (`TickRef::decode`), stamps its receive
//! time and hands the hub a batch: everything that arrived in one socket read,
//! or everything due at one instant. Batches are what let the hub wake each
//! writer once per batch rather than once per tick.

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use feed_simulator::file::FeedFileError;
use feed_simulator::market::{ConfigError, Market, MarketConfig};
use feed_simulator::pacing::{Pacer, Speed};
use feed_simulator::replay::FileReplay;
use feed_simulator::send::{PacedTick, TickSource};
use tickcast_protocol::framing::parse_record;
use tickcast_protocol::{Tick, TickRef};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::fanout::hub::{Hub, TickIn};
use crate::observe::metrics::Metrics;
use tickcast_protocol::clock::now_ns;

/// The most ticks handed to the hub at once, so one huge burst does not hold
/// the hub lock (and delay subscribes) for long.
const MAX_BATCH: usize = 1024;

/// Read buffer of one publisher connection.
const INGEST_BUFFER: usize = 64 * 1024;

/// Runs the embedded simulator forever.
pub async fn run_sim(cfg: MarketConfig, hub: Arc<Hub>) -> Result<(), ConfigError> {
    let mut market = Market::new(&cfg)?;
    info!(
        symbols = cfg.symbols,
        rate = cfg.rate,
        seed = cfg.seed,
        "simulated feed started"
    );
    let mut pacer = Pacer::new(Speed::Factor(1.0));
    let mut batch: Vec<Tick> = Vec::with_capacity(MAX_BATCH);
    let mut encoded = BytesMut::with_capacity(MAX_BATCH * 160);
    loop {
        let tick = market.next_tick();
        if batch.len() >= MAX_BATCH || !pacer.is_due(tick.ts) {
            publish_owned(&hub, &mut batch, &mut encoded);
            pacer.wait_until_due(tick.ts).await;
        }
        batch.push(tick);
    }
}

/// Restamps `ts` to now (the simulator's and the file's clocks are not the
/// wall clock; what a client measures is the time since the broker sent the
/// tick), encodes and publishes. A replayed tick already carries its
/// recorded time in `orig_ts`.
fn publish_owned(hub: &Hub, batch: &mut Vec<Tick>, encoded: &mut BytesMut) {
    if batch.is_empty() {
        return;
    }
    let now = now_ns();
    encoded.clear();
    let mut ends = Vec::with_capacity(batch.len());
    for tick in batch.iter_mut() {
        tick.ts = now;
        tick.encode(encoded);
        ends.push(encoded.len());
    }
    let mut start = 0;
    let ins: Vec<TickIn<'_>> = batch
        .iter()
        .zip(ends)
        .map(|(tick, end)| {
            let payload = &encoded[start..end];
            start = end;
            TickIn {
                sym: &tick.sym,
                seq: tick.seq,
                ts: tick.ts,
                payload,
                recv_ns: now,
            }
        })
        .collect();
    hub.publish(&ins);
    batch.clear();
}

/// Why a replay cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The file cannot be opened or its header is bad.
    #[error("cannot replay {}: {source}", path.display())]
    Open {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: FeedFileError,
    },
    /// The reader thread cannot be started.
    #[error("cannot start the replay reader thread: {0}")]
    Thread(std::io::Error),
}

/// A feed file opened for replay: a reader thread streams its ticks (the file
/// is never loaded whole) to the pacing task through a small bounded channel.
pub struct ReplaySource {
    ticks: tokio::sync::mpsc::Receiver<Result<PacedTick, String>>,
}

impl ReplaySource {
    /// Opens `path` (checking its header now, so a bad file fails at start)
    /// and starts reading it. With `looping`, the file starts over at its end
    /// with `seq` and event times carried on, so subscribers see one unbroken
    /// stream rather than `seq` going backwards.
    pub fn open(path: &std::path::Path, looping: bool) -> Result<Self, ReplayError> {
        let mut file = FileReplay::open(path, looping).map_err(|source| ReplayError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let (tx, rx) = tokio::sync::mpsc::channel(4 * MAX_BATCH);
        let name = path.display().to_string();
        std::thread::Builder::new()
            .name("replay-reader".into())
            .spawn(move || loop {
                let item = match file.next_tick() {
                    Ok(Some(tick)) => Ok(tick),
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
    let mut batch: Vec<Tick> = Vec::with_capacity(MAX_BATCH);
    let mut encoded = BytesMut::with_capacity(MAX_BATCH * 160);
    let mut sent: u64 = 0;
    while let Some(item) = source.ticks.recv().await {
        let PacedTick { due_ts, tick } = match item {
            Ok(paced) => paced,
            Err(e) => {
                // Everything before the damage has been replayed.
                publish_owned(&hub, &mut batch, &mut encoded);
                error!("replay stopped after {sent} ticks: {e}");
                return;
            }
        };
        if batch.len() >= MAX_BATCH || !pacer.is_due(due_ts) {
            publish_owned(&hub, &mut batch, &mut encoded);
            pacer.wait_until_due(due_ts).await;
        }
        batch.push(tick);
        sent += 1;
    }
    publish_owned(&hub, &mut batch, &mut encoded);
    info!("replay finished: {sent} ticks");
}

/// Accepts publishers forever; each gets its own task. The tasks belong to
/// this one, so stopping the ingest (broker shutdown) also drops every
/// publisher connection rather than leaving them feeding a stopped hub.
pub async fn run_ingest(listener: TcpListener, hub: Arc<Hub>, metrics: Arc<Metrics>) {
    let mut publishers = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            // Reap finished publishers so the set does not grow.
            Some(_) = publishers.join_next() => continue,
        };
        match accepted {
            Ok((stream, peer)) => {
                info!(%peer, "publisher connected");
                let _ = stream.set_nodelay(true);
                publishers.spawn(read_publisher(stream, peer, hub.clone(), metrics.clone()));
            }
            Err(e) => {
                warn!(error = %e, "ingest accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Reads one publisher until it disconnects or sends something malformed.
/// A bad record ends the connection, but every valid tick before it, even in
/// the same read, is published first.
async fn read_publisher(
    mut stream: TcpStream,
    peer: std::net::SocketAddr,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
) {
    let mut buf = BytesMut::with_capacity(INGEST_BUFFER);
    let mut offset: u64 = 0;
    loop {
        if buf.capacity() - buf.len() < INGEST_BUFFER / 4 {
            buf.reserve(INGEST_BUFFER);
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) => {
                if !buf.is_empty() {
                    metrics.ticks_rejected.add(1);
                    warn!(%peer, offset, bytes = buf.len(), "publisher disconnected in the middle of a record");
                } else {
                    info!(%peer, "publisher disconnected");
                }
                return;
            }
            Ok(_) => {}
            Err(e) => {
                warn!(%peer, error = %e, "publisher read failed");
                return;
            }
        }
        let recv_ns = now_ns();
        let mut used = 0;
        let mut failure: Option<String> = None;
        let mut batch: Vec<TickIn<'_>> = Vec::with_capacity(MAX_BATCH.min(buf.len() / 64 + 1));
        loop {
            match parse_record(&buf[used..]) {
                Ok(Some((payload, len))) => match TickRef::decode(payload) {
                    Ok(t) => {
                        batch.push(TickIn {
                            sym: t.sym,
                            seq: t.seq,
                            ts: t.ts,
                            payload,
                            recv_ns,
                        });
                        used += len;
                        if batch.len() == MAX_BATCH {
                            hub.publish(&batch);
                            batch.clear();
                        }
                    }
                    Err(e) => {
                        failure = Some(format!(
                            "invalid tick at stream offset {}: {e}",
                            offset + used as u64
                        ));
                        break;
                    }
                },
                Ok(None) => break,
                Err(e) => {
                    failure = Some(format!(
                        "bad record at stream offset {}: {e}",
                        offset + used as u64
                    ));
                    break;
                }
            }
        }
        hub.publish(&batch);
        drop(batch);
        if let Some(reason) = failure {
            metrics.ticks_rejected.add(1);
            metrics.publishers_dropped.add(1);
            warn!(%peer, "{reason}; disconnecting the publisher");
            return;
        }
        buf.advance(used);
        offset += used as u64;
    }
}
