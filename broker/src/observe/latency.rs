//! Latency histograms for every stage of a tick's trip through the broker.
//!
//! Stages, all on the wall clock in nanoseconds:
//! - **feed → receive**: the tick's `ts` (set by the feed) to the moment the
//!   broker read it;
//! - **receive → enqueue**: read to published by the hub into its writer
//!   shards' inboxes (once per tick);
//! - **enqueue → write**: published to handed to the kernel (once per
//!   delivery).
//!
//! Recording goes into a one-second *interval* histogram per stage; a ticker
//! folds each interval into the running total once a second and, with
//! `--hdr-log`, writes it to an HdrHistogram interval log that the standard
//! tools (HdrHistogram's `HistogramLogProcessor`, `hdr-plot`) read.
//!
//! This module needs nothing else from the crate: the ticker takes whatever
//! holds the histograms (the broker's `Metrics`) through `AsRef`.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;

/// A stage of the broker's pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Feed event time → broker receive.
    FeedToReceive = 0,
    /// Broker receive → queued for fan-out.
    ReceiveToEnqueue = 1,
    /// Queued → written to the socket.
    EnqueueToWrite = 2,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 3] = [
        Stage::FeedToReceive,
        Stage::ReceiveToEnqueue,
        Stage::EnqueueToWrite,
    ];

    /// The stage's name in metrics, logs and tables.
    pub fn name(self) -> &'static str {
        match self {
            Stage::FeedToReceive => "feed_to_receive",
            Stage::ReceiveToEnqueue => "receive_to_enqueue",
            Stage::EnqueueToWrite => "enqueue_to_write",
        }
    }
}

/// Highest recordable value: one minute. Larger values are clamped to it, so
/// a wildly wrong feed clock shows up as "max = 60 s" rather than vanishing.
const HIGHEST_NS: u64 = 60_000_000_000;

fn histogram() -> Histogram<u64> {
    // Three significant digits over 1 ns .. 60 s: about 90 KiB per histogram.
    Histogram::new_with_bounds(1, HIGHEST_NS, 3)
        .unwrap_or_else(|_| unreachable!("constant bounds are valid"))
}

/// The histograms of all stages: the current interval and the running total.
pub struct StageHistograms {
    interval: [Histogram<u64>; 3],
    total: [Histogram<u64>; 3],
}

impl Default for StageHistograms {
    fn default() -> Self {
        Self {
            interval: [histogram(), histogram(), histogram()],
            total: [histogram(), histogram(), histogram()],
        }
    }
}

/// Percentiles of one stage, in microseconds (what people read).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest sample.
    pub max_us: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Self {
        let [p50_us, p90_us, p99_us, p999_us] =
            [0.5, 0.9, 0.99, 0.999].map(|q| h.value_at_quantile(q) as f64 / 1_000.0);
        Self {
            count: h.len(),
            p50_us,
            p90_us,
            p99_us,
            p999_us,
            max_us: h.max() as f64 / 1_000.0,
        }
    }
}

impl StageHistograms {
    /// Records one sample of `stage`, in nanoseconds.
    pub fn record(&mut self, stage: Stage, ns: u64) {
        self.interval[stage as usize].saturating_record(ns.clamp(1, HIGHEST_NS));
    }

    /// Records `count` samples of the same value.
    pub fn record_n(&mut self, stage: Stage, ns: u64, count: u64) {
        // `record_n` only fails for values out of range, which the clamp prevents.
        let _ = self.interval[stage as usize].record_n(ns.clamp(1, HIGHEST_NS), count);
    }

    /// Ends the current interval: folds it into the total and returns it.
    fn rotate(&mut self) -> [Histogram<u64>; 3] {
        let fresh = [histogram(), histogram(), histogram()];
        let done = std::mem::replace(&mut self.interval, fresh);
        for (total, interval) in self.total.iter_mut().zip(&done) {
            // Same bounds on both sides, so adding cannot fail.
            let _ = total.add(interval);
        }
        done
    }

    /// Percentiles of every stage since start (total plus current interval).
    pub fn percentiles(&self) -> [Percentiles; 3] {
        std::array::from_fn(|i| {
            let mut h = self.total[i].clone();
            let _ = h.add(&self.interval[i]);
            Percentiles::of(&h)
        })
    }
}

/// Once a second: end the interval, and write it to the log if there is one.
/// The log is written straight to the file (a few small writes a second), so
/// it is complete up to the last second even if the broker is killed.
pub async fn run_ticker<M>(owner: Arc<M>, log_path: Option<PathBuf>) -> std::io::Result<()>
where
    M: AsRef<Mutex<StageHistograms>>,
{
    let stages: &Mutex<StageHistograms> = (*owner).as_ref();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let Some(path) = log_path else {
        loop {
            ticker.tick().await;
            stages.lock().rotate();
        }
    };
    let mut file = File::create(&path)?;
    let start = SystemTime::now();
    let mut serializer = V2DeflateSerializer::new();
    let mut log = IntervalLogWriterBuilder::new()
        .add_comment("tickcast broker stage latencies in nanoseconds; tags: feed_to_receive, receive_to_enqueue, enqueue_to_write")
        .with_start_time(start)
        .with_base_time(start)
        .begin_log_with(&mut file, &mut serializer)?;
    let mut interval_start = Duration::ZERO;
    loop {
        ticker.tick().await;
        let done = stages.lock().rotate();
        let now = SystemTime::now().duration_since(start).unwrap_or_default();
        for stage in Stage::ALL {
            log.write_histogram(
                &done[stage as usize],
                interval_start,
                now.saturating_sub(interval_start),
                Tag::new(stage.name()),
            )
            .map_err(|e| std::io::Error::other(format!("writing {}: {e:?}", path.display())))?;
        }
        interval_start = now;
    }
}
