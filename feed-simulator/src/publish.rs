//! Publishing a live simulated feed: the market's ticks at real-time speed.

use std::time::Duration;

use tokio::io::AsyncWrite;

use crate::file::FeedFileError;
use crate::market::{Market, MARKET_OPEN_NS};
use crate::pacing::{Pacer, Speed};
use crate::send::{send_paced, PacedTick, SendError, TickSource};

/// A market played in real time, optionally for a limited duration.
#[derive(Debug)]
pub struct LiveMarket {
    market: Market,
    /// Simulated time at which the stream ends.
    end_ts: Option<u64>,
}

impl LiveMarket {
    /// Plays `market` for `duration` of simulated time from the open (which
    /// is real time at speed 1), or forever.
    pub fn new(market: Market, duration: Option<Duration>) -> Self {
        let end_ts = duration.map(|d| {
            let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            MARKET_OPEN_NS.saturating_add(nanos)
        });
        Self { market, end_ts }
    }
}

impl TickSource for LiveMarket {
    fn next_tick(&mut self) -> Result<Option<PacedTick>, FeedFileError> {
        let tick = self.market.next_tick();
        if self.end_ts.is_some_and(|end| tick.ts >= end) {
            return Ok(None);
        }
        Ok(Some(PacedTick {
            due_ts: tick.ts,
            tick,
        }))
    }
}

/// Streams `market` to `out` at real-time speed, each tick stamped with its
/// send time; returns the number of ticks sent.
pub async fn publish<W: AsyncWrite + Unpin>(
    market: Market,
    duration: Option<Duration>,
    out: &mut W,
) -> Result<u64, SendError> {
    let mut source = LiveMarket::new(market, duration);
    let mut pacer = Pacer::new(Speed::Factor(1.0));
    send_paced(&mut source, &mut pacer, out, |_| {}).await
}
