//! Scale-out over NATS: an origin publishes every tick it accepts
//! (`--nats-out`, [`out`]), and edges take NATS as their feed
//! (`--nats-in`, [`edge`]).
//!
//! On the wire: a tick of SYM is one NATS message on `<prefix>.SYM`, its
//! payload the tick's MessagePack bytes as the origin published them (no
//! re-encoding anywhere), with the symbol's epoch in the [`EPOCH_HEADER`]
//! header. `seq` is the origin's, so a client's position (`epoch`, `seq`)
//! means the same on the origin and on every edge. `docs/SCALE_OUT.md` has
//! the topology.
//!
//! - [`connection`]: the connection both ends share (credentials, TLS,
//!   reconnects and their counting);
//! - [`wire`]: a symbol's subject and the epoch header;
//! - [`out`]: the origin's tap; [`edge`]: the edge's feed;
//! - [`interest`]: an edge that takes only what its clients want;
//! - [`stream`]: the JetStream stream of recent ticks an origin keeps and
//!   an edge that starts late warms up from.

pub mod connection;
pub mod edge;
pub mod interest;
pub mod out;
pub mod stream;
pub mod wire;

pub use connection::{connect, NatsError};
pub use edge::run_nats_in;
pub use out::NatsOut;
