//! The edge's feed (`--nats-in`): the ticks an origin published to NATS,
//! handed to the hub as they come, under the origin's `seq` and epoch.
//!
//! The edge subscribes to the whole prefix (`<prefix>.>`). Each message
//! must be a valid tick (the same decoder as the ingest port's) with a
//! well-formed [`EPOCH_HEADER`]; anything else is refused and counted
//! (`tickcast_nats_rejected_total`), never published. What arrives
//! together (everything async-nats has already read, up to
//! [`MAX_BATCH`]) is one batch, so the writers wake once per batch as for
//! every other feed. The hub does the rest: the epoch is adopted per
//! symbol, a second copy of a `seq` (a second origin of the same feed) is
//! dropped as stale, and a new epoch starts the symbol's stream over with
//! a `reset` to its subscribers. With `--record`, what arrives is
//! recorded as the ingest port's publishers are.

use std::sync::Arc;

use async_nats::Message;
use futures_util::{FutureExt, StreamExt};
use tickcast_protocol::clock::now_ns;
use tickcast_protocol::TickRef;
use tracing::{info, warn};

use crate::fanout::history::valid_epoch;
use crate::fanout::hub::{Hub, TickIn};
use crate::feed::nats::connection::NatsError;
use crate::feed::nats::wire::{every_subject, EPOCH_HEADER};
use crate::feed::record::Recorder;
use crate::feed::sink::MAX_BATCH;
use crate::observe::metrics::Metrics;

/// Publishes every tick of `ticks` (from [`subscribe`], made at start so a
/// refused subscription fails the start) into `hub`, until the
/// connection is closed for good.
pub async fn run_nats_in(
    mut ticks: async_nats::Subscriber,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    recorder: Option<Recorder>,
) {
    let mut batch: Vec<Message> = Vec::with_capacity(MAX_BATCH);
    let mut warned = false;
    while let Some(first) = ticks.next().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match ticks.next().now_or_never() {
                Some(Some(more)) => batch.push(more),
                _ => break,
            }
        }
        publish_messages(&batch, &hub, &metrics, &mut warned, recorder.as_ref());
        batch.clear();
    }
    info!("NATS subscription ended");
}

/// Publishes the ticks of `batch` into `hub` as one batch; refuses and
/// counts the rest, with one warning per feed (`warned`): a stranger
/// publishing on our prefix must not flood the log. With a `recorder`
/// (`--record`), the valid ticks are recorded as the ingest port records:
/// what the feed brought, a second origin's copies included, which a
/// replay drops as stale.
pub fn publish_messages(
    batch: &[Message],
    hub: &Hub,
    metrics: &Metrics,
    warned: &mut bool,
    recorder: Option<&Recorder>,
) {
    let recv_ns = now_ns();
    let mut rejected = 0u64;
    let ins: Vec<TickIn<'_>> = batch
        .iter()
        .filter_map(|m| match tick_of(m, recv_ns) {
            Ok(t) => Some(t),
            Err(why) => {
                rejected += 1;
                if !*warned {
                    *warned = true;
                    warn!(subject = %m.subject, "NATS message refused: {why} (further ones only counted)");
                }
                None
            }
        })
        .collect();
    hub.publish(&ins);
    metrics.nats_received.add(batch.len() as u64);
    metrics.nats_rejected.add(rejected);
    if let Some(recorder) = recorder {
        recorder.offer_ticks(&ins);
    }
}

/// Subscribes to every subject under `prefix`.
pub async fn subscribe(
    client: &async_nats::Client,
    prefix: &str,
) -> Result<async_nats::Subscriber, NatsError> {
    let subject = every_subject(prefix);
    client
        .subscribe(subject.clone())
        .await
        .map_err(|source| NatsError::Subscribe { subject, source })
}

/// The tick a message carries, or why it is refused.
fn tick_of(m: &Message, recv_ns: u64) -> Result<TickIn<'_>, String> {
    let epoch = match m.headers.as_ref().and_then(|h| h.get(EPOCH_HEADER)) {
        Some(value) if valid_epoch(value.as_str()) => Some(value.as_str()),
        Some(value) => return Err(format!("bad {EPOCH_HEADER} header {:?}", value.as_str())),
        None => return Err(format!("no {EPOCH_HEADER} header")),
    };
    let t = TickRef::decode(&m.payload).map_err(|e| format!("not a tick: {e}"))?;
    Ok(TickIn {
        sym: t.sym,
        seq: t.seq,
        ts: t.ts,
        payload: &m.payload,
        recv_ns,
        epoch,
    })
}
