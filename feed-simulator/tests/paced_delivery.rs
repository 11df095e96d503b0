//! The shared pacing loop on tokio's paused clock: what is due together
//! leaves together, a not-yet-due item sends the batch before the wait, a
//! full batch leaves at once, a failing source still delivers what came
//! before, and `max` never waits.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::rc::Rc;
use std::time::Duration;

use feed_simulator::market::{Market, MarketConfig};
use feed_simulator::pacing::{pace, BatchSink, PaceError, PacedSource, Pacer, Speed};
use tokio::time::Instant;

const MS: u64 = 1_000_000;

/// What happened, in order: items read from the source, batches flushed.
#[derive(Debug, Clone, PartialEq)]
enum Event {
    Read(u32),
    Flush { at_ms: u64, items: Vec<u32> },
}

type Log = Rc<RefCell<Vec<Event>>>;

/// Items `(due_ms, id)` with an optional error after them, logging reads.
struct Script {
    items: VecDeque<(u64, u32)>,
    error_at_end: Option<&'static str>,
    log: Log,
}

impl PacedSource for Script {
    type Item = u32;
    type Error = &'static str;

    async fn next_due(&mut self) -> Result<Option<(u64, u32)>, &'static str> {
        match self.items.pop_front() {
            Some((due_ms, id)) => {
                self.log.borrow_mut().push(Event::Read(id));
                Ok(Some((due_ms * MS, id)))
            }
            None => self.error_at_end.map_or(Ok(None), Err),
        }
    }
}

/// A batch of at most `capacity` items; logs each flush with its time.
struct Recorder {
    batch: Vec<u32>,
    capacity: usize,
    start: Instant,
    log: Log,
    /// Flushes to accept before failing (`None`: never fails).
    fail_after: Option<usize>,
}

impl BatchSink<u32> for Recorder {
    type Error = &'static str;

    fn push(&mut self, item: u32) {
        self.batch.push(item);
    }

    fn is_full(&self) -> bool {
        self.batch.len() >= self.capacity
    }

    async fn flush(&mut self) -> Result<(), &'static str> {
        assert!(!self.batch.is_empty(), "an empty batch was flushed");
        if let Some(left) = self.fail_after.as_mut() {
            if *left == 0 {
                return Err("connection lost");
            }
            *left -= 1;
        }
        let at_ms = u64::try_from(self.start.elapsed().as_millis()).unwrap();
        let items = std::mem::take(&mut self.batch);
        self.log.borrow_mut().push(Event::Flush { at_ms, items });
        Ok(())
    }
}

/// Runs `items` through [`pace`] at `speed` into a sink of `capacity`.
async fn run(
    speed: Speed,
    items: &[(u64, u32)],
    error_at_end: Option<&'static str>,
    capacity: usize,
    fail_after: Option<usize>,
) -> (
    Result<(), PaceError<&'static str, &'static str>>,
    Vec<Event>,
) {
    let log = Log::default();
    let mut source = Script {
        items: items.iter().copied().collect(),
        error_at_end,
        log: log.clone(),
    };
    let mut sink = Recorder {
        batch: Vec::new(),
        capacity,
        start: Instant::now(),
        log: log.clone(),
        fail_after,
    };
    let result = pace(&mut Pacer::new(speed), &mut source, &mut sink).await;
    let events = log.borrow().clone();
    (result, events)
}

/// Only the flushes of a log.
fn flushes(events: &[Event]) -> Vec<(u64, Vec<u32>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Flush { at_ms, items } => Some((*at_ms, items.clone())),
            Event::Read(_) => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn items_due_together_leave_together_and_a_later_one_sends_them_before_the_wait() {
    let items = [(0, 1), (0, 2), (0, 3), (10, 4), (10, 5), (30, 6)];
    let (result, events) = run(Speed::Factor(1.0), &items, None, 100, None).await;
    assert_eq!(result, Ok(()));
    assert_eq!(
        flushes(&events),
        [(0, vec![1, 2, 3]), (10, vec![4, 5]), (30, vec![6])]
    );
    // The batch due at 0 ms left as soon as item 4 (due at 10 ms) was read:
    // before the pacer slept, not after.
    let read_4 = events.iter().position(|e| *e == Event::Read(4)).unwrap();
    assert_eq!(
        events[read_4 + 1],
        Event::Flush {
            at_ms: 0,
            items: vec![1, 2, 3]
        }
    );
}

#[tokio::test(start_paused = true)]
async fn the_schedule_is_absolute_and_scaled_by_the_speed() {
    // Speed 10: the gaps shrink tenfold, measured from the first item.
    let items = [(100, 1), (200, 2), (700, 3)];
    let (_, events) = run(Speed::Factor(10.0), &items, None, 100, None).await;
    assert_eq!(
        flushes(&events),
        [(0, vec![1]), (10, vec![2]), (60, vec![3])]
    );
}

#[tokio::test(start_paused = true)]
async fn a_full_batch_leaves_at_once_before_the_next_item_is_read() {
    let items: Vec<(u64, u32)> = (1..=5).map(|id| (0, id)).collect();
    let (result, events) = run(Speed::Factor(1.0), &items, None, 2, None).await;
    assert_eq!(result, Ok(()));
    let flush = |items: Vec<u32>| Event::Flush { at_ms: 0, items };
    assert_eq!(
        events,
        [
            Event::Read(1),
            Event::Read(2),
            flush(vec![1, 2]),
            Event::Read(3),
            Event::Read(4),
            flush(vec![3, 4]),
            Event::Read(5),
            flush(vec![5]),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_source_first_delivers_everything_read_before_the_failure() {
    // Items 3 and 4 wait for 5 ms, then the source fails: they still leave,
    // and then the error is returned.
    let items = [(0, 1), (0, 2), (5, 3), (5, 4)];
    let (result, events) = run(Speed::Factor(1.0), &items, Some("damaged"), 100, None).await;
    assert_eq!(result, Err(PaceError::Source("damaged")));
    assert_eq!(flushes(&events), [(0, vec![1, 2]), (5, vec![3, 4])]);
}

#[tokio::test(start_paused = true)]
async fn a_failing_sink_stops_the_loop_with_its_error() {
    let items = [(0, 1), (5, 2), (10, 3)];
    let (result, events) = run(Speed::Factor(1.0), &items, None, 100, Some(1)).await;
    assert_eq!(result, Err(PaceError::Sink("connection lost")));
    // Reading item 3 (not yet due) flushed [2], which failed: the loop
    // stopped there, without waiting for item 3 or reading on.
    assert_eq!(
        events,
        [
            Event::Read(1),
            Event::Read(2),
            Event::Flush {
                at_ms: 0,
                items: vec![1]
            },
            Event::Read(3),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn max_speed_never_waits_and_batches_by_fullness_only() {
    let items = [(0, 1), (3_600_000, 2), (7_200_000, 3), (7_200_001, 4)];
    let start = Instant::now();
    let (result, events) = run(Speed::Max, &items, None, 3, None).await;
    assert_eq!(result, Ok(()));
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(flushes(&events), [(0, vec![1, 2, 3]), (0, vec![4])]);
}

#[tokio::test(start_paused = true)]
async fn an_empty_source_flushes_nothing() {
    let (result, events) = run(Speed::Factor(1.0), &[], None, 10, None).await;
    assert_eq!(result, Ok(()));
    assert!(events.is_empty());
}

/// A sink the broker could spawn: `Send`, synchronous flush.
struct Counter {
    batch: usize,
    flushed: Vec<usize>,
}

impl BatchSink<tickcast_protocol::Tick> for Counter {
    type Error = Infallible;

    fn push(&mut self, _tick: tickcast_protocol::Tick) {
        self.batch += 1;
    }

    fn is_full(&self) -> bool {
        self.batch >= 1024
    }

    async fn flush(&mut self) -> Result<(), Infallible> {
        self.flushed.push(std::mem::take(&mut self.batch));
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_market_paces_on_a_spawned_task_in_real_time() {
    let cfg = MarketConfig {
        rate: 10_000.0,
        ..MarketConfig::default()
    };
    let mut market = Market::new(&cfg).unwrap();
    // `tokio::spawn` needs the loop's future to be `Send`: it is, for a
    // `Send` source and sink, as the broker's tasks require.
    let task = tokio::spawn(async move {
        let mut sink = Counter {
            batch: 0,
            flushed: Vec::new(),
        };
        let mut pacer = Pacer::new(Speed::Factor(1.0));
        let run = pace(&mut pacer, &mut market, &mut sink);
        let stopped = tokio::time::timeout(Duration::from_millis(100), run).await;
        (stopped.is_err(), sink.flushed)
    });
    let (timed_out, flushed) = task.await.unwrap();
    assert!(timed_out, "a market never ends");
    // 100 ms at 10,000 ticks/s: about 1,000 ticks. Tokio's timers fire on a
    // 1 ms wheel, so each wake-up finds the ticks of up to a millisecond due
    // and they leave as one batch: about 100 batches of about 10, none full.
    let ticks: usize = flushed.iter().sum();
    assert!((800..1_200).contains(&ticks), "{ticks} ticks in 100 ms");
    assert!(flushed.len() <= 101, "{} batches", flushed.len());
    assert!(flushed.iter().all(|&n| n < 1024), "{flushed:?}");
}
