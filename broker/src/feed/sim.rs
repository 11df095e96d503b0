//! The embedded simulator as a feed: `feed_simulator::market::Market`,
//! paced in real time on an absolute schedule.

use std::sync::Arc;

use feed_simulator::market::{ConfigError, Market, MarketConfig};
use feed_simulator::pacing::{pace, PaceError, Pacer, Speed};
use tracing::info;

use crate::fanout::hub::Hub;
use crate::feed::sink::HubSink;

/// Runs the embedded simulator forever.
pub async fn run_sim(cfg: MarketConfig, hub: Arc<Hub>) -> Result<(), ConfigError> {
    let mut market = Market::new(&cfg)?;
    info!(
        symbols = cfg.symbols,
        rate = cfg.rate,
        seed = cfg.seed,
        "simulated feed started"
    );
    let mut pacer = Pacer::new(Speed::Factor(1.0));
    let mut sink = HubSink::new(hub);
    match pace(&mut pacer, &mut market, &mut sink).await {
        Ok(()) => Ok(()),
        Err(PaceError::Source(never) | PaceError::Sink(never)) => match never {},
    }
}
