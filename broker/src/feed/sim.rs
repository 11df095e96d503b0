//! The embedded simulator as a feed: `feed_simulator::market::Market`,
//! paced in real time on an absolute schedule.

use feed_simulator::market::{ConfigError, Market, MarketConfig};
use feed_simulator::pacing::{pace, PaceError, Pacer, Speed};
use tracing::info;

use crate::feed::sink::HubSink;

/// Runs the embedded simulator forever, into `sink`.
pub async fn run_sim(cfg: MarketConfig, mut sink: HubSink) -> Result<(), ConfigError> {
    let mut market = Market::new(&cfg)?;
    info!(
        symbols = cfg.symbols,
        rate = cfg.rate,
        seed = cfg.seed,
        "simulated feed started"
    );
    let mut pacer = Pacer::new(Speed::Factor(1.0));
    match pace(&mut pacer, &mut market, &mut sink).await {
        Ok(()) => Ok(()),
        Err(PaceError::Source(never) | PaceError::Sink(never)) => match never {},
    }
}
