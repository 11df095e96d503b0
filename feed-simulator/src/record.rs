//! Recording a simulated feed into a feed file, as fast as the output takes it.

use std::io::{self, Write};

use crate::file::{FeedHeader, FeedWriter};
use crate::market::{ConfigError, Market, MarketConfig};

/// How often (in ticks) the progress callback hears from [`record`].
const PROGRESS_EVERY: u64 = 64 * 1024;

/// Why a recording failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The market parameters are invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Writing failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Writes the first `count` ticks of the market `cfg` describes to `out` as
/// a feed file, calling `progress` with the number written now and then.
///
/// Uses the market's borrowing fast path: no allocation per tick.
pub fn record<W: Write>(
    cfg: &MarketConfig,
    count: u64,
    out: W,
    mut progress: impl FnMut(u64),
) -> Result<W, RecordError> {
    let mut market = Market::new(cfg)?;
    let symbols = u32::try_from(cfg.symbols).unwrap_or(u32::MAX);
    let header = FeedHeader {
        session: cfg.session,
        ..FeedHeader::simulated(symbols, cfg.rate, cfg.seed, count, cfg.open_burst)
    };
    let mut writer = FeedWriter::new(out, &header)?;
    for written in 1..=count {
        writer.write_tick(&market.next_tick_ref())?;
        if written % PROGRESS_EVERY == 0 {
            progress(written);
        }
    }
    progress(count);
    Ok(writer.finish()?)
}
