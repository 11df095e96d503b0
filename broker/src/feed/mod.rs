//! Feed sources: where ticks enter the broker.
//!
//! - [`sim`]: the embedded simulator (`feed_simulator::market`), paced in
//!   real time on an absolute schedule;
//! - [`ingest`]: a TCP listener for publishers speaking the ingest framing;
//! - [`replay`]: a recorded feed file, paced by its recorded gaps, started
//!   at once, with the first subscription, or at a set time;
//! - [`nats`]: an origin's ticks from NATS (an edge, `--nats-in`), and the
//!   origin's side of it, the hub's tap that publishes to NATS
//!   (`--nats-out`).
//!
//! [`record`] (`--record DIR`) taps every source after its batch is handed
//! to the hub and writes feed files on a thread of its own.
//!
//! Every source validates each tick, stamps its receive time and hands the
//! hub a batch: everything that arrived in one socket read, or everything
//! due at one instant (`feed_simulator::pacing::pace`, the one paced
//! batching loop, shared with the simulator's own sender). Batches are what
//! let the hub wake each writer once per batch rather than once per tick.

pub mod ingest;
pub mod nats;
pub mod record;
pub mod replay;
pub mod sim;
pub mod sink;

pub use ingest::run_ingest;
pub use record::{RecordError, Recorder};
pub use replay::{run_replay, ReplayError, ReplayProgress, ReplaySource};
pub use sim::run_sim;
