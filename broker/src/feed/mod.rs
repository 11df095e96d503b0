//! Feed sources: where ticks enter the broker.
//!
//! - [`sim`]: the embedded simulator (`feed_simulator::market`), paced in
//!   real time on an absolute schedule;
//! - [`ingest`]: a TCP listener for publishers speaking the ingest framing;
//! - [`replay`]: a recorded feed file, paced by its recorded gaps.
//!
//! Every source validates each tick, stamps its receive time and hands the
//! hub a batch: everything that arrived in one socket read, or everything
//! due at one instant (`feed_simulator::pacing::pace`, the one paced
//! batching loop, shared with the simulator's own sender). Batches are what
//! let the hub wake each writer once per batch rather than once per tick.

pub mod ingest;
pub mod replay;
pub mod sim;
pub mod sink;

pub use ingest::run_ingest;
pub use replay::{run_replay, ReplayError, ReplaySource};
pub use sim::run_sim;
