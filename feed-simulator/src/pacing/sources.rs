//! Ready-made [`PacedSource`]s: a simulated market, paced by its own event
//! times, and the receiving end of a channel, for a source read on another
//! thread (the broker's replay reads its file on a thread of its own, so
//! blocking file reads never stall the runtime).

use std::convert::Infallible;

use tickcast_protocol::Tick;
use tokio::sync::mpsc;

use crate::market::Market;
use crate::pacing::PacedSource;

/// An endless stream of ticks, each due at its simulated event time.
impl PacedSource for Market {
    type Item = Tick;
    type Error = Infallible;

    async fn next_due(&mut self) -> Result<Option<(u64, Tick)>, Infallible> {
        let tick = self.next_tick();
        Ok(Some((tick.ts, tick)))
    }
}

/// What the sending side produces, in order: `Ok((due_ts, item))` per item,
/// an `Err` to stop with an error. The source ends when every sender is
/// dropped.
impl<T, E> PacedSource for mpsc::Receiver<Result<(u64, T), E>> {
    type Item = T;
    type Error = E;

    async fn next_due(&mut self) -> Result<Option<(u64, T)>, E> {
        self.recv().await.transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::MarketConfig;

    #[tokio::test]
    async fn a_market_is_due_at_its_event_times() {
        let cfg = MarketConfig::default();
        let mut paced = Market::new(&cfg).unwrap();
        let mut plain = Market::new(&cfg).unwrap();
        for _ in 0..100 {
            let (due_ts, tick) = paced.next_due().await.unwrap().unwrap();
            assert_eq!(tick, plain.next_tick());
            assert_eq!(due_ts, tick.ts);
        }
    }

    #[tokio::test]
    async fn a_channel_yields_items_then_its_error_then_ends() {
        let (tx, mut rx) = mpsc::channel(4);
        tx.send(Ok((5, 'a'))).await.unwrap();
        tx.send(Err("damaged")).await.unwrap();
        drop(tx);
        assert_eq!(rx.next_due().await, Ok(Some((5, 'a'))));
        assert_eq!(rx.next_due().await, Err("damaged"));
        assert_eq!(rx.next_due().await, Ok(None));
    }
}
