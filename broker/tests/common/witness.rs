//! The witness of the hostile-input tests: a client subscribed to `*` for
//! a whole test, and a well-behaved publisher sending it a [`WITNESS`] tick
//! every millisecond meanwhile. At the end it must have received every
//! witness tick, each exactly one after the previous, never more than
//! [`MAX_STALL`] after the previous one, and every other symbol's ticks
//! in order: whatever the test did to the broker hurt nobody else.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tickcast_broker::RunningBroker;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{Publisher, Received, Subscriber, WAIT};

/// The symbol the witness's publisher sends.
pub const WITNESS: &str = "WIT";

/// The longest the witness may wait between two of its ticks (published a
/// millisecond apart). Generous, for a loaded two-core CI machine; a stalled
/// broker (a blocked writer, an exhausted runtime) misses it by far.
pub const MAX_STALL: Duration = Duration::from_secs(1);

/// The publisher's bound: at one tick per millisecond or slower this
/// outlasts any test many times over.
const MAX_WITNESS_TICKS: u64 = 60_000;

/// A client on `*` from start to end, and a publisher feeding it.
pub struct Witness {
    stop: watch::Sender<bool>,
    published: Arc<AtomicU64>,
    publisher: JoinHandle<u64>,
    last_seq: watch::Sender<Option<u64>>,
    reader: JoinHandle<u64>,
}

impl Witness {
    /// Subscribes to `*` and starts publishing; returns once ten witness
    /// ticks are out.
    pub async fn start(broker: &RunningBroker) -> Self {
        let mut sub = Subscriber::connect(broker.local_addr(), "topics=*").await;
        assert_eq!(sub.expect_ack().await, ["*"]);
        let (last_seq, last_rx) = watch::channel(None);
        let reader = tokio::spawn(read_every_tick(sub, last_rx));

        let mut publisher = Publisher::connect(broker).await;
        let (stop, mut stop_rx) = watch::channel(false);
        let published = Arc::new(AtomicU64::new(0));
        let count = published.clone();
        let publisher = tokio::spawn(async move {
            for _ in 0..MAX_WITNESS_TICKS {
                if *stop_rx.borrow_and_update() {
                    break;
                }
                publisher.publish(&[WITNESS]).await;
                count.store(publisher.last_seq(WITNESS), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            publisher.last_seq(WITNESS)
        });
        let witness = Self {
            stop,
            published,
            publisher,
            last_seq,
            reader,
        };
        witness.wait_for_more(10).await;
        witness
    }

    /// Waits until `n` more witness ticks have been published.
    pub async fn wait_for_more(&self, n: u64) {
        let target = self.published.load(Ordering::Relaxed) + n;
        let deadline = Instant::now() + WAIT;
        while self.published.load(Ordering::Relaxed) < target {
            assert!(Instant::now() < deadline, "publisher stalled");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Stops publishing and checks the witness got every tick; returns the
    /// count.
    pub async fn finish(self) -> u64 {
        self.stop.send(true).unwrap();
        let last = self.publisher.await.unwrap();
        self.last_seq.send(Some(last)).unwrap();
        let received = tokio::time::timeout(WAIT, self.reader)
            .await
            .expect("witness did not catch up")
            .unwrap();
        assert_eq!(received, last, "witness count");
        received
    }
}

/// Reads ticks until the last published witness seq (once known) has
/// arrived; returns it. Witness ticks must come one after the other with no
/// stall; any other symbol's in order.
async fn read_every_tick(mut sub: Subscriber, mut last: watch::Receiver<Option<u64>>) -> u64 {
    let mut seq = 0;
    let mut others: HashMap<String, u64> = HashMap::new();
    let mut previous = Instant::now();
    loop {
        if *last.borrow_and_update() == Some(seq) {
            return seq;
        }
        tokio::select! {
            got = sub.next_within(WAIT) => match got {
                Some(Received::Tick(t)) if t.sym == WITNESS => {
                    assert_eq!(t.seq, seq + 1, "witness gap");
                    let gap = previous.elapsed();
                    assert!(gap < MAX_STALL, "witness stalled {gap:?} before seq {}", t.seq);
                    previous = Instant::now();
                    seq = t.seq;
                }
                Some(Received::Tick(t)) => {
                    let before = others.insert(t.sym.clone(), t.seq).unwrap_or(0);
                    assert!(t.seq > before, "{} out of order: {} after {before}", t.sym, t.seq);
                }
                other => panic!("witness got {other:?} after seq {seq}"),
            },
            changed = last.changed() => changed.unwrap(),
        }
    }
}
