//! Pacing on tokio's paused clock: due times follow the absolute schedule
//! exactly, `max` never waits, and a late consumer is not given extra time.

use std::time::Duration;

use feed_simulator::pacing::{Pacer, Speed};
use tokio::time::Instant;

const MS: u64 = 1_000_000;

/// Base event time: arbitrary, only differences matter.
const T0: u64 = 1_767_623_400_000_000_000;

#[tokio::test(start_paused = true)]
async fn speed_ten_divides_the_recorded_gaps() {
    let mut pacer = Pacer::new(Speed::Factor(10.0));
    let start = Instant::now();
    for (event_ms, due_ms) in [(0, 0), (10, 1), (30, 3)] {
        pacer.wait_until_due(T0 + event_ms * MS).await;
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(due_ms),
            "event at {event_ms} ms"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn max_speed_never_waits() {
    let mut pacer = Pacer::new(Speed::Max);
    let start = Instant::now();
    for event_s in [0, 10, 3_600] {
        pacer.wait_until_due(T0 + event_s * 1_000 * MS).await;
        assert!(pacer.is_due(T0 + event_s * 1_000 * MS));
    }
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_late_consumer_catches_up_instead_of_shifting_the_schedule() {
    let mut pacer = Pacer::new(Speed::Factor(1.0));
    let start = Instant::now();
    pacer.wait_until_due(T0).await;
    // The consumer is busy for 50 ms after the first event.
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Events at 10 and 40 ms are overdue: no waiting at all.
    assert!(pacer.is_due(T0 + 10 * MS));
    pacer.wait_until_due(T0 + 10 * MS).await;
    pacer.wait_until_due(T0 + 40 * MS).await;
    assert_eq!(start.elapsed(), Duration::from_millis(50));
    // The event at 60 ms is due 60 ms after the start, not 60 ms after the
    // late point, and not 10 ms after the overdue ones.
    assert!(!pacer.is_due(T0 + 60 * MS));
    pacer.wait_until_due(T0 + 60 * MS).await;
    assert_eq!(start.elapsed(), Duration::from_millis(60));
}

#[tokio::test(start_paused = true)]
async fn the_schedule_does_not_drift_over_many_events() {
    // 1,000 events 1.5 ms apart at speed 0.5: each is due 3 ms after the
    // previous, and the last exactly 2,997 ms after the first.
    let mut pacer = Pacer::new(Speed::Factor(0.5));
    let start = Instant::now();
    for k in 0..1_000u64 {
        pacer.wait_until_due(T0 + k * 1_500_000).await;
        assert_eq!(start.elapsed(), Duration::from_millis(3 * k), "event {k}");
    }
}

#[tokio::test(start_paused = true)]
async fn events_before_the_first_and_absurdly_far_ones_do_not_panic() {
    let mut pacer = Pacer::new(Speed::Factor(1e-9));
    pacer.wait_until_due(T0).await;
    let start = Instant::now();
    pacer.wait_until_due(T0 - 5 * MS).await;
    assert_eq!(start.elapsed(), Duration::ZERO);
    // Due far beyond what an Instant can hold: it waits, without panicking.
    let far = tokio::time::timeout(Duration::from_secs(1), pacer.wait_until_due(u64::MAX));
    assert!(far.await.is_err());
}
