//! The paced delivery loop, written once: take `(due_ts, item)` pairs from a
//! source, wait for each on a [`Pacer`]'s absolute schedule, and hand what
//! is due to a sink in batches.
//!
//! The batching rule is what makes a feed cheap to send: an item that is
//! not yet due first sends the batch of everything that already was, then
//! waits; an item that is due joins the batch. So all items due at one
//! instant (high rates, a sender that fell behind, [`Speed::Max`]) leave
//! together: on loopback one write syscall costs about as much as encoding
//! dozens of ticks, and the broker's hub wakes each writer once per batch
//! rather than once per tick. A sink that says it is full is flushed at
//! once, so one burst cannot build an unbounded batch (or hold a hub lock
//! for long). Lateness is never forgiven: the [`Pacer`] keeps the absolute
//! schedule, so a late item is due at once and the loop catches up.
//!
//! [`Speed::Max`]: super::Speed::Max
//!
//! Three loops used to do this: the simulator's `send_paced` (an async
//! socket write per batch, a progress callback after each) and the broker's
//! simulated and replayed feeds (`hub.publish(&batch)`, synchronous). They
//! differ only in their source and their sink, which is what the two traits
//! here describe.
//!
//! # How the broker calls it
//!
//! Its sink restamps, encodes and publishes a batch of owned ticks (a
//! synchronous `flush`); the simulated feed is a [`Market`](crate::market::Market)
//! and the replayed one a channel fed by a reader thread:
//!
//! ```
//! use std::convert::Infallible;
//!
//! use feed_simulator::market::{Market, MarketConfig};
//! use feed_simulator::pacing::{pace, BatchSink, PaceError, Pacer, Speed};
//! use tickcast_protocol::Tick;
//!
//! /// What the broker's hub would get: whole batches of due ticks.
//! struct HubBatch {
//!     ticks: Vec<Tick>,
//!     published: Vec<usize>,
//! }
//!
//! impl BatchSink<Tick> for HubBatch {
//!     type Error = Infallible;
//!     fn push(&mut self, tick: Tick) {
//!         self.ticks.push(tick);
//!     }
//!     fn is_full(&self) -> bool {
//!         self.ticks.len() >= 1024
//!     }
//!     async fn flush(&mut self) -> Result<(), Infallible> {
//!         // The broker: stamp `ts`, encode, `hub.publish(&batch)`.
//!         self.published.push(self.ticks.len());
//!         self.ticks.clear();
//!         Ok(())
//!     }
//! }
//!
//! /// The simulated feed: real time, forever.
//! async fn run_sim(mut market: Market, sink: &mut HubBatch) {
//!     let mut pacer = Pacer::new(Speed::Factor(1.0));
//!     match pace(&mut pacer, &mut market, sink).await {
//!         Ok(()) => unreachable!("a market never ends"),
//!         Err(PaceError::Source(never) | PaceError::Sink(never)) => match never {},
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! // The replayed feed: the reader thread sends `Ok((due_ts, tick))`, or an
//! // `Err` where the file is damaged, then hangs up.
//! let (tx, mut replay) = tokio::sync::mpsc::channel::<Result<(u64, Tick), String>>(4096);
//! let mut market = Market::new(&MarketConfig::default()).unwrap();
//! std::thread::spawn(move || {
//!     for _ in 0..3_000 {
//!         let tick = market.next_tick();
//!         if tx.blocking_send(Ok((tick.ts, tick))).is_err() {
//!             return;
//!         }
//!     }
//!     let _ = tx.blocking_send(Err("day.tcf: truncated record".to_owned()));
//! });
//! let mut sink = HubBatch { ticks: Vec::new(), published: Vec::new() };
//! let mut pacer = Pacer::new(Speed::Max);
//! let result = pace(&mut pacer, &mut replay, &mut sink).await;
//! // Everything before the damage was published, in full batches and a rest.
//! assert_eq!(sink.published, [1024, 1024, 952]);
//! assert!(matches!(result, Err(PaceError::Source(e)) if e.contains("truncated")));
//! # });
//! ```

use std::future::Future;

use crate::pacing::Pacer;

/// Where paced items come from: anything that yields an item with the event
/// time (ns) it is due by, possibly after waiting (a channel) and possibly
/// failing (a damaged file).
pub trait PacedSource {
    /// What is delivered.
    type Item;
    /// Why the source stopped early ([`std::convert::Infallible`] if it
    /// cannot).
    type Error;

    /// The next item and its due event time, or `None` at the end.
    fn next_due(&mut self) -> impl Future<Output = Result<Option<(u64, Self::Item)>, Self::Error>>;
}

/// Where due items go: a batch that fills up and is flushed as a whole.
pub trait BatchSink<T> {
    /// Why a flush failed (a lost connection).
    type Error;

    /// Adds an item that is due to the batch.
    fn push(&mut self, item: T);

    /// Whether the batch must go out now, before any further item is read.
    fn is_full(&self) -> bool;

    /// Delivers the batch and empties it. [`pace`] calls it only for a batch
    /// holding at least one item. A synchronous sink returns a ready future
    /// (an `async fn` that never awaits).
    fn flush(&mut self) -> impl Future<Output = Result<(), Self::Error>>;
}

/// Why [`pace`] stopped before its source ended.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum PaceError<S, K> {
    /// The source failed; every item it yielded before was flushed first.
    #[error(transparent)]
    Source(S),
    /// A flush failed; the items of that batch may not have been delivered.
    #[error(transparent)]
    Sink(K),
}

/// Delivers every item of `source` to `sink` on `pacer`'s schedule, in
/// batches of what is due together; returns when the source ends, with the
/// last batch flushed.
///
/// A source error ends the loop after flushing what was read before it. A
/// sink that needs to know how many items it delivered counts them itself
/// (it sees every one).
pub async fn pace<S, K>(
    pacer: &mut Pacer,
    source: &mut S,
    sink: &mut K,
) -> Result<(), PaceError<S::Error, K::Error>>
where
    S: PacedSource,
    K: BatchSink<S::Item>,
{
    // Whether the sink holds items not yet flushed.
    let mut pending = false;
    loop {
        let next = match source.next_due().await {
            Ok(next) => next,
            Err(e) => {
                // What was read before the failure still goes out.
                flush_pending(sink, &mut pending).await?;
                return Err(PaceError::Source(e));
            }
        };
        let Some((due_ts, item)) = next else {
            break;
        };
        if !pacer.is_due(due_ts) {
            // Everything already due leaves before we sleep.
            flush_pending(sink, &mut pending).await?;
            pacer.wait_until_due(due_ts).await;
        }
        sink.push(item);
        pending = true;
        if sink.is_full() {
            flush_pending(sink, &mut pending).await?;
        }
    }
    flush_pending(sink, &mut pending).await
}

async fn flush_pending<T, K: BatchSink<T>, E>(
    sink: &mut K,
    pending: &mut bool,
) -> Result<(), PaceError<E, K::Error>> {
    if std::mem::take(pending) {
        sink.flush().await.map_err(PaceError::Sink)?;
    }
    Ok(())
}
