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
//! names clients try. (Letting go of a symbol would leave its ring with a
//! hole that a later resume could not see; taking it again would need a
//! second read of its history. Not built: see `docs/SCALE_OUT.md`.)
//!
//! Each preparation runs as its own task, so a session that stops waiting
//! (at [`PREPARE_WITHIN`](crate::fanout::interest::PREPARE_WITHIN)) does
//! not cancel it half-way: a symbol whose subscribe was answered before its
//! history arrived still gets its live ticks, and its history, in order,
//! a moment later. The histories of one request's new symbols are read
//! [`WARM_UPS_AT_ONCE`] at a time.
//!
//! Locking: one Tokio mutex over what is held, because preparing awaits
//! NATS while holding it (two subscribes of the same new symbol must not
//! both subscribe and read its history); preparations take their turn.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use futures_util::StreamExt;
use tickcast_protocol::WILDCARD;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::fanout::hub::Hub;
use crate::fanout::interest::Interest;
use crate::feed::nats::edge::run_nats_in;
use crate::feed::nats::stream;
use crate::feed::nats::wire::subject;
use crate::feed::record::Recorder;
use crate::observe::metrics::Metrics;

/// The most symbols subscribed one by one; past it, the whole prefix.
pub const MAX_SUBJECTS: usize = 10_000;

/// JetStream reads in flight for one preparation. Each is two requests to
/// the server (stream info, an ordered consumer) and then the symbol's
/// messages. Measured with `broker/tests/nats.rs`'s
/// `a_client_naming_random_symbols_…` (requests of 300 new symbols, the
/// test build, 2026-12-03): with this set to 1, 145–170 ms a request
/// (about 0.5 ms a symbol); at 16, 53–60 ms.
pub const WARM_UPS_AT_ONCE: usize = 16;

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
    /// The broker's: live tasks and preparations run in it.
    tasks: TaskTracker,
    /// The broker's stop.
    stop: CancellationToken,
    held: Mutex<Held>,
    /// Itself, for the preparation tasks.
    this: Weak<EdgeInterest>,
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
    ) -> Arc<Self> {
        Arc::new_cyclic(|this| Self {
            client,
            prefix,
            hub,
            metrics,
            recorder,
            tasks,
            stop,
            held: Mutex::new(Held::default()),
            this: this.clone(),
        })
    }

    /// Makes sure the edge brings `topics`.
    async fn take_topics(&self, topics: &[String]) {
        let mut held = self.held.lock().await;
        if held.all {
            return;
        }
        let new: HashSet<&str> = topics
            .iter()
            .map(String::as_str)
            .filter(|t| *t != WILDCARD && !held.symbols.contains_key(*t))
            .collect();
        let wildcard = topics.iter().any(|t| t == WILDCARD);
        if wildcard || held.symbols.len() + new.len() > MAX_SUBJECTS {
            self.take_everything(&mut held).await;
        } else if !new.is_empty() {
            self.take(&mut held, new).await;
        }
        let subjects = if held.all { 1 } else { held.symbols.len() };
        self.metrics.nats_subjects.set(subjects as u64);
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
        let took =
            stream::take_whole_prefix(&self.client, &self.prefix, &self.hub, &self.metrics).await;
        let ticks = match took {
            Ok((ticks, _)) => ticks,
            Err(e) => return warn!("{e}"),
        };
        self.spawn_live(ticks, CancellationToken::new());
        for (_, one) in held.symbols.drain() {
            one.cancel();
        }
        held.all = true;
        info!(prefix = %self.prefix, "taking every symbol from NATS");
    }

    /// Subscribes to each of `symbols` (one SUB line each, no round trip),
    /// then reads their histories, [`WARM_UPS_AT_ONCE`] at a time, then
    /// starts their live tasks. Live ticks that arrive during the reads
    /// wait in their subscriptions; those the reads brought too are
    /// dropped by the hub as stale.
    async fn take(&self, held: &mut Held, symbols: HashSet<&str>) {
        let mut taken = Vec::with_capacity(symbols.len());
        for sym in symbols {
            let Some(subject) = subject(&self.prefix, sym) else {
                continue;
            };
            match self.client.subscribe(subject.clone()).await {
                Ok(ticks) => taken.push((sym, subject, ticks)),
                Err(e) => warn!(%subject, "cannot subscribe on NATS: {e}"),
            }
        }
        futures_util::stream::iter(&taken)
            .for_each_concurrent(WARM_UPS_AT_ONCE, |(_, subject, _)| async move {
                stream::warm_up(
                    &self.client,
                    &self.prefix,
                    subject,
                    &self.hub,
                    &self.metrics,
                )
                .await;
            })
            .await;
        for (sym, _, ticks) in taken {
            let until = CancellationToken::new();
            self.spawn_live(ticks, until.clone());
            held.symbols.insert(sym.to_owned(), until);
        }
    }
}

impl Interest for EdgeInterest {
    fn prepare(&self, topics: Vec<String>) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let Some(me) = self.this.upgrade() else {
            return Box::pin(async {});
        };
        let done = self.tasks.spawn(async move {
            tokio::select! {
                _ = me.stop.cancelled() => {}
                _ = me.take_topics(&topics) => {}
            }
        });
        Box::pin(async move {
            // An error here is the task's panic or the runtime's end:
            // nothing for the subscribe to do but be answered.
            let _ = done.await;
        })
    }
}
