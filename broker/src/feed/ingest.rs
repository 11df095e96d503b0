//! TCP ingest: publishers speaking the ingest framing (`u32` length +
//! MessagePack tick), e.g. `feed-simulator publish`.
//!
//! Each publisher gets its own task. Every valid tick of one socket read is
//! published as one batch (at most [`MAX_BATCH`] at a time); a malformed
//! record ends that publisher, after every valid tick before it, even in the
//! same read, has been published.

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tickcast_protocol::clock::now_ns;
use tickcast_protocol::framing::parse_record;
use tickcast_protocol::TickRef;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::fanout::hub::{Hub, TickIn};
use crate::feed::sink::MAX_BATCH;
use crate::observe::metrics::Metrics;

/// Read buffer of one publisher connection.
const INGEST_BUFFER: usize = 64 * 1024;

/// Accepts publishers forever, at most `max_publishers` at once (more are
/// closed at once and counted: each costs a descriptor and a 64 KiB
/// buffer); each gets its own task. The tasks belong to this one, so
/// stopping the ingest (broker shutdown) also drops every publisher
/// connection rather than leaving them feeding a stopped hub.
pub async fn run_ingest(
    listener: TcpListener,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    max_publishers: usize,
) {
    let mut publishers = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            // Reap finished publishers so the set does not grow.
            Some(_) = publishers.join_next() => continue,
        };
        match accepted {
            Ok((stream, peer)) if publishers.len() >= max_publishers => {
                metrics.publishers_refused.add(1);
                warn!(%peer, max_publishers, "publisher refused: too many publishers");
                drop(stream);
            }
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
