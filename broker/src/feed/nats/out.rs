//! The origin's side (`--nats-out`): every tick the hub accepts, in
//! order, published to NATS.
//!
//! [`NatsOut`] is the hub's tap ([`Tap`]): it hands each batch of accepted
//! ticks to a queue without waiting (the hub calls it under no lock, but
//! on the feed's task, which must not stall on NATS), and
//! [`NatsOut::run`] publishes them, one message per tick, its payload the
//! frame's own bytes (a slice of the fan-out frame, no copy). The queue
//! is bounded in ticks ([`MAX_QUEUED`]): while NATS is away, async-nats
//! buffers what fits in its own channel, then ours fills and further
//! ticks are dropped and counted (`tickcast_nats_out_dropped_total`);
//! edges see the hole as a jump in `seq`, never a wrong tick.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::{HeaderMap, Subject};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::fanout::hub::{Accepted, Tap};
use crate::feed::nats::wire::{subject, EPOCH_HEADER};
use crate::observe::metrics::Metrics;

/// How long shutdown gives NATS to take what was queued.
pub const DRAIN_WITHIN: Duration = Duration::from_secs(1);

/// The most ticks waiting for NATS: about 10 MB of 150-byte ticks, a
/// second of a 65,000 ticks/s feed.
pub const MAX_QUEUED: usize = 64 * 1024;

/// The hub's tap into NATS (see the module docs).
pub struct NatsOut {
    queue: mpsc::UnboundedSender<Vec<Accepted>>,
    /// Ticks in `queue`: the bound is kept here, in ticks, not in batches.
    queued: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

/// What publishes the tap's queue: run it with [`Publisher::run`].
pub struct Publisher {
    queue: mpsc::UnboundedReceiver<Vec<Accepted>>,
    queued: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
    client: async_nats::Client,
    prefix: String,
}

impl NatsOut {
    /// A tap publishing through `client` under `prefix`, and its publisher.
    pub fn new(
        client: async_nats::Client,
        prefix: String,
        metrics: Arc<Metrics>,
    ) -> (Self, Publisher) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let tap = Self {
            queue: tx,
            queued: queued.clone(),
            metrics: metrics.clone(),
        };
        let publisher = Publisher {
            queue: rx,
            queued,
            metrics,
            client,
            prefix,
        };
        (tap, publisher)
    }
}

impl Tap for NatsOut {
    fn accepted(&self, batch: Vec<Accepted>) {
        let n = batch.len();
        // Only the feed's task adds, so load-then-add cannot overshoot by
        // more than one batch of another feed task (ingest has several).
        if self.queued.load(Ordering::Relaxed) + n > MAX_QUEUED {
            self.metrics.nats_out_dropped.add(n as u64);
            return;
        }
        self.queued.fetch_add(n, Ordering::Relaxed);
        if self.queue.send(batch).is_err() {
            // The publisher has stopped (shutdown).
            self.metrics.nats_out_dropped.add(n as u64);
        }
    }
}

impl Publisher {
    /// Publishes the queue until `stop` (the broker's shutdown, which stops
    /// the feed at the same time), then what was queued before it, for at
    /// most [`DRAIN_WITHIN`] (NATS may be away: shutdown must not wait for
    /// it; what is left is counted as dropped). A symbol that cannot be a
    /// subject (see [`subject`]) is skipped and counted as dropped, with
    /// one warning per symbol.
    pub async fn run(mut self, stop: CancellationToken) {
        // Per symbol its subject (`None`: cannot be one). Bounded by the
        // hub's symbol table: only accepted ticks come here.
        let mut subjects: HashMap<Arc<str>, Option<Subject>> = HashMap::new();
        let publishing = async {
            while let Some(batch) = self.queue.recv().await {
                self.publish(batch, &mut subjects).await;
            }
        };
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = publishing => return,
        }
        let draining = async {
            while let Ok(batch) = self.queue.try_recv() {
                self.publish(batch, &mut subjects).await;
            }
            let _ = self.client.flush().await;
        };
        if tokio::time::timeout(DRAIN_WITHIN, draining).await.is_err() {
            let left = self.queued.swap(0, Ordering::Relaxed);
            self.metrics.nats_out_dropped.add(left as u64);
            warn!(
                left,
                "NATS did not take the last ticks in time; shutting down without them"
            );
        }
    }

    /// Publishes one batch, one message a tick.
    async fn publish(
        &self,
        batch: Vec<Accepted>,
        subjects: &mut HashMap<Arc<str>, Option<Subject>>,
    ) {
        let n = batch.len();
        let (mut published, mut dropped) = (0, 0);
        for tick in batch {
            let subject = subjects.entry(tick.sym.clone()).or_insert_with(|| {
                let s = subject(&self.prefix, &tick.sym);
                if s.is_none() {
                    warn!(sym = %tick.sym, "symbol cannot be a NATS subject; not published");
                }
                s.map(Subject::from)
            });
            let Some(subject) = subject else {
                dropped += 1;
                continue;
            };
            let mut headers = HeaderMap::new();
            headers.insert(EPOCH_HEADER, &*tick.epoch);
            match self
                .client
                .publish_with_headers(subject.clone(), headers, tick.payload)
                .await
            {
                Ok(()) => published += 1,
                Err(e) => {
                    dropped += 1;
                    warn!(error = %e, "NATS publish failed");
                }
            }
        }
        self.queued.fetch_sub(n, Ordering::Relaxed);
        self.metrics.nats_published.add(published);
        self.metrics.nats_out_dropped.add(dropped);
    }
}
