//! Late start: the JetStream stream an origin keeps of its recent ticks,
//! and an edge's warm-up from it.
//!
//! The origin creates (or updates) a stream over `<prefix>.>` holding the
//! last N messages of each subject (`--nats-stream-history`, default
//! 1,000: `max_msgs_per_subject`), in memory, at most [`MAX_STREAM_BYTES`],
//! oldest first out. JetStream stores the origin's ordinary publishes by
//! itself, so the hot path does not change: no JetStream publish, no ack
//! to wait for.
//!
//! The origin makes the stream again at every reconnection (a memory
//! stream does not outlive its server).
//!
//! An edge, before it takes clients, reads the stream once from the start
//! with an ordered consumer (no acks, one per edge, gone when read) and
//! hands it to its hub in batches: every symbol then has its snapshot and
//! a warm history ring (so resumes work on an edge that just started).
//! Its live subscription was made *before* that read, so nothing falls
//! between the two: what the live one brings again is dropped as stale by
//! the hub (its `seq` is not above the last).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::fanout::hub::Hub;
use crate::feed::nats::connection::NatsError;
use crate::feed::nats::edge::{self, publish_messages};
use crate::feed::nats::wire::every_subject;
use crate::feed::sink::MAX_BATCH;
use crate::observe::metrics::Metrics;

/// The most bytes the stream holds (about 1.7 M ticks of 150 bytes): past
/// it the oldest go first, whatever `--nats-stream-history` says.
pub const MAX_STREAM_BYTES: i64 = 256 << 20;

/// The longest an edge's warm-up may take; it then serves with what it has.
pub const WARM_UP_WITHIN: Duration = Duration::from_secs(30);

/// The stream's name for `prefix`: `tickcast.ticks` → `TICKCAST_TICKS`
/// (stream names cannot hold dots).
pub fn stream_name(prefix: &str) -> String {
    prefix.replace('.', "_").to_ascii_uppercase()
}

/// The origin's part: the stream exists over `prefix`, `per_subject`
/// messages deep.
pub async fn keep_recent(
    client: &async_nats::Client,
    prefix: &str,
    per_subject: usize,
) -> Result<(), NatsError> {
    let name = stream_name(prefix);
    let config = stream::Config {
        name: name.clone(),
        subjects: vec![every_subject(prefix)],
        max_messages_per_subject: i64::try_from(per_subject).unwrap_or(i64::MAX),
        max_bytes: MAX_STREAM_BYTES,
        storage: stream::StorageType::Memory,
        discard: stream::DiscardPolicy::Old,
        ..Default::default()
    };
    jetstream::new(client.clone())
        .create_or_update_stream(config)
        .await
        .map_err(|e| NatsError::Stream {
            name,
            reason: e.to_string(),
        })?;
    Ok(())
}

/// Makes the stream again each time `connected` is notified, until `stop`:
/// a server restarted without its memory streams, or another server of a
/// cluster, gets it back without restarting the origin. Failures are
/// logged (the live path does not need the stream).
pub async fn keep_recent_on_reconnect(
    client: async_nats::Client,
    prefix: String,
    per_subject: usize,
    connected: Arc<Notify>,
    stop: CancellationToken,
) {
    // The first connection's permit: the stream was made at start.
    connected.notified().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = connected.notified() => {}
        }
        match keep_recent(&client, &prefix, per_subject).await {
            Ok(()) => {
                info!(stream = %stream_name(&prefix), "JetStream stream of recent ticks made again after a reconnection")
            }
            Err(e) => warn!("{e}"),
        }
    }
}

/// What an edge's warm-up read.
#[derive(Debug, Clone, Copy, Default)]
pub struct WarmUp {
    /// Messages read from the stream.
    pub messages: u64,
    /// How long it took.
    pub took: Duration,
}

/// An edge taking the whole prefix: its live subscription first, then what
/// the stream holds read into `hub` (so nothing falls between the two; the
/// live one's repeats are stale). The subscription is the caller's to run.
pub async fn take_whole_prefix(
    client: &async_nats::Client,
    prefix: &str,
    hub: &Hub,
    metrics: &Metrics,
) -> Result<(async_nats::Subscriber, WarmUp), NatsError> {
    let ticks = edge::subscribe(client, prefix).await?;
    let warm = warm_up(client, prefix, &every_subject(prefix), hub, metrics).await;
    Ok((ticks, warm))
}

/// The edge's part: reads what the stream for `prefix` holds under
/// `filter` (`<prefix>.>` for everything, or one symbol's subject) into
/// `hub`. No stream (an origin without one, or a server without JetStream)
/// is a cold start, logged, not an error.
pub async fn warm_up(
    client: &async_nats::Client,
    prefix: &str,
    filter: &str,
    hub: &Hub,
    metrics: &Metrics,
) -> WarmUp {
    let started = Instant::now();
    let name = stream_name(prefix);
    let read = tokio::time::timeout(
        WARM_UP_WITHIN,
        read_stream(client, &name, filter, hub, metrics),
    );
    let messages = match read.await {
        Ok(Ok(n)) => n,
        Ok(Err(why)) => {
            info!(stream = %name, filter, "no warm-up from JetStream ({why}); starting cold");
            0
        }
        Err(_) => {
            warn!(stream = %name, filter, within = ?WARM_UP_WITHIN, "warm-up from JetStream took too long; serving with what it read");
            0
        }
    };
    let took = started.elapsed();
    debug!(stream = %name, filter, messages, ?took, "read from JetStream");
    WarmUp { messages, took }
}

async fn read_stream(
    client: &async_nats::Client,
    name: &str,
    filter: &str,
    hub: &Hub,
    metrics: &Metrics,
) -> Result<u64, String> {
    let js = jetstream::new(client.clone());
    let stream = js.get_stream(name).await.map_err(|e| e.to_string())?;
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: filter.to_owned(),
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    // Nothing under the filter: the consumer would wait for the first.
    if consumer.cached_info().num_pending == 0 {
        return Ok(0);
    }
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    let (mut read, mut batch) = (0u64, Vec::with_capacity(MAX_BATCH));
    let mut warned = false;
    while let Some(next) = messages.next().await {
        let msg = next.map_err(|e| e.to_string())?;
        let pending = msg.info().map(|i| i.pending).unwrap_or(0);
        batch.push(msg.message);
        read += 1;
        if batch.len() == MAX_BATCH || pending == 0 {
            // Not recorded: the origin (or an edge) recorded them live.
            publish_messages(&batch, hub, metrics, &mut warned, None);
            batch.clear();
        }
        if pending == 0 {
            break;
        }
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_named_after_its_prefix() {
        assert_eq!(stream_name("tickcast.ticks"), "TICKCAST_TICKS");
        assert_eq!(stream_name("desk-1.ticks"), "DESK-1_TICKS");
    }
}
