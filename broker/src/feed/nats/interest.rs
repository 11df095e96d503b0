//! An edge that takes from NATS only what its clients want
//! (`--nats-interest subscribed`).
//!
//! The first subscribe of a symbol makes the edge subscribe to its subject
//! and read its recent ticks from the origin's JetStream stream into the
//! hub, before the hub answers (the session waits for [`Interest::prepare`]):
//! the client gets its snapshot at once and a resume is answered from a
//! ring that holds what the origin kept, as on an edge that takes
//! everything. The first `*` (or more than [`MAX_SUBJECTS`] symbols) makes
//! it take the whole prefix instead, read the whole stream, and drop its
//! per-symbol subscriptions. Interest only grows: a symbol stays subscribed
//! once asked for, so the set is bounded by [`MAX_SUBJECTS`], whatever
//! names clients try.
//!
//! Locking: one Tokio mutex over what is held, because preparing awaits
//! NATS while holding it (two subscribes of the same new symbol must not
//! both subscribe and read its history); preparations take their turn.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tickcast_protocol::WILDCARD;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::fanout::hub::Hub;
use crate::fanout::interest::Interest;
use crate::feed::nats::edge::{self, run_nats_in};
use crate::feed::nats::stream;
use crate::feed::nats::wire::subject;
use crate::feed::record::Recorder;
use crate::observe::metrics::Metrics;

/// The most symbols subscribed one by one; past it, the whole prefix.
pub const MAX_SUBJECTS: usize = 10_000;

/// What the edge takes from NATS.
#[derive(Default)]
struct Held {
    /// Subscribed one by one, each with its live task's stop.
    symbols: HashMap<String, CancellationToken>,
    /// The whole prefix.
    all: bool,
}

/// The edge's side of [`Interest`].
pub struct EdgeInterest {
    client: async_nats::Client,
    prefix: String,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    recorder: Option<Recorder>,
    /// The broker's: live tasks run in it and stop with it.
    tasks: TaskTracker,
    stop: CancellationToken,
    held: Mutex<Held>,
}

impl EdgeInterest {
    /// An edge taking nothing yet.
    pub fn new(
        client: async_nats::Client,
        prefix: String,
        hub: Arc<Hub>,
        metrics: Arc<Metrics>,
        recorder: Option<Recorder>,
        tasks: TaskTracker,
        stop: CancellationToken,
    ) -> Self {
        Self {
            client,
            prefix,
            hub,
            metrics,
            recorder,
            tasks,
            stop,
            held: Mutex::new(Held::default()),
        }
    }

    /// Runs a subscription's live ticks into the hub until `until` or the
    /// broker stops.
    fn spawn_live(&self, ticks: async_nats::Subscriber, until: CancellationToken) {
        let (hub, metrics, recorder) = (
            self.hub.clone(),
            self.metrics.clone(),
            self.recorder.clone(),
        );
        let stop = self.stop.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = until.cancelled() => {}
                _ = stop.cancelled() => {}
                _ = run_nats_in(ticks, hub, metrics, recorder) => {}
            }
        });
    }

    async fn take_everything(&self, held: &mut Held) {
        let ticks = match edge::subscribe(&self.client, &self.prefix).await {
            Ok(ticks) => ticks,
            Err(e) => return warn!("{e}"),
        };
        let whole = format!("{}.>", self.prefix);
        stream::warm_up(&self.client, &self.prefix, &whole, &self.hub, &self.metrics).await;
        self.spawn_live(ticks, CancellationToken::new());
        for (_, one) in held.symbols.drain() {
            one.cancel();
        }
        held.all = true;
        info!(prefix = %self.prefix, "taking every symbol from NATS");
    }

    async fn take(&self, held: &mut Held, sym: &str) {
        let Some(subject) = subject(&self.prefix, sym) else {
            return;
        };
        let ticks = match self.client.subscribe(subject.clone()).await {
            Ok(ticks) => ticks,
            Err(e) => return warn!(%subject, "cannot subscribe on NATS: {e}"),
        };
        stream::warm_up(
            &self.client,
            &self.prefix,
            &subject,
            &self.hub,
            &self.metrics,
        )
        .await;
        let until = CancellationToken::new();
        self.spawn_live(ticks, until.clone());
        held.symbols.insert(sym.to_owned(), until);
    }
}

impl Interest for EdgeInterest {
    fn prepare<'a>(
        &'a self,
        topics: &'a [String],
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let mut held = self.held.lock().await;
            if held.all {
                return;
            }
            let new: Vec<&String> = topics
                .iter()
                .filter(|t| t.as_str() != WILDCARD && !held.symbols.contains_key(t.as_str()))
                .collect();
            let wildcard = topics.iter().any(|t| t == WILDCARD);
            if wildcard || held.symbols.len() + new.len() > MAX_SUBJECTS {
                self.take_everything(&mut held).await;
                return;
            }
            for sym in new {
                self.take(&mut held, sym).await;
            }
        })
    }
}
