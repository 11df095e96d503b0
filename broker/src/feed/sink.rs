//! The batch the paced sources (simulator, replay) fill: owned ticks,
//! restamped, encoded and handed to the hub together, then, with
//! `--record`, offered to the recorder as framed records.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::BytesMut;
use feed_simulator::pacing::BatchSink;
use tickcast_protocol::clock::now_ns;
use tickcast_protocol::Tick;

use crate::fanout::hub::{Hub, TickIn};
use crate::feed::record::Recorder;

/// The most ticks handed to the hub at once, so one huge burst does not hold
/// the hub lock (and delay subscribes) for long.
pub const MAX_BATCH: usize = 1024;

/// Where the paced sources (simulator, replay) put their ticks: a batch of
/// owned ticks that is restamped, encoded and published at once.
///
/// Restamping: the simulator's and the file's clocks are not the wall clock,
/// and what a client measures is the time since the broker sent the tick; a
/// replayed tick already carries its recorded time in `orig_ts`.
pub struct HubSink {
    hub: Arc<Hub>,
    batch: Vec<Tick>,
    encoded: BytesMut,
    /// `--record`: where each published batch is offered.
    recorder: Option<Recorder>,
    /// Ticks published so far.
    pub published: u64,
}

impl HubSink {
    /// An empty batch publishing into `hub` (and recorded, when given).
    pub fn new(hub: Arc<Hub>, recorder: Option<Recorder>) -> Self {
        Self {
            hub,
            batch: Vec::with_capacity(MAX_BATCH),
            encoded: BytesMut::with_capacity(MAX_BATCH * 160),
            recorder,
            published: 0,
        }
    }
}

impl BatchSink<Tick> for HubSink {
    type Error = Infallible;

    fn push(&mut self, tick: Tick) {
        self.batch.push(tick);
    }

    fn is_full(&self) -> bool {
        self.batch.len() >= MAX_BATCH
    }

    async fn flush(&mut self) -> Result<(), Infallible> {
        let now = now_ns();
        self.encoded.clear();
        let mut ends = Vec::with_capacity(self.batch.len());
        for tick in &mut self.batch {
            tick.ts = now;
            tick.encode(&mut self.encoded);
            ends.push(self.encoded.len());
        }
        let mut start = 0;
        let ins: Vec<TickIn<'_>> = self
            .batch
            .iter()
            .zip(ends)
            .map(|(tick, end)| {
                let payload = &self.encoded[start..end];
                start = end;
                TickIn {
                    sym: &tick.sym,
                    seq: tick.seq,
                    ts: tick.ts,
                    payload,
                    recv_ns: now,
                    epoch: None,
                }
            })
            .collect();
        self.hub.publish(&ins);
        if let Some(recorder) = &self.recorder {
            recorder.offer_ticks(&ins);
        }
        self.published += self.batch.len() as u64;
        self.batch.clear();
        Ok(())
    }
}
