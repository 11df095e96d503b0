//! Wire types shared by every tickcast component.
//!
//! The broker, the feed simulator, the client SDK and the load generator all
//! speak through this crate, so none of them can drift from the others:
//!
//! - [`tick`]: the market-data tick, one MessagePack map with string keys
//!   (a public contract: external clients decode it with generic libraries),
//!   with a hand-written encoder and a validating, borrowing decoder that
//!   reads through `rmp` (measured choices, see `tick`).
//! - [`framing`]: the ingest framing (`u32` big-endian length + one encoded
//!   tick) used on the TCP feed into the broker and for records in feed files.
//! - [`control`]: the client ↔ broker control messages on the WebSocket
//!   (`subscribe`, `unsubscribe`, their acknowledgements and errors).
//!
//! - [`tls`] (feature `tls`): the client side of TLS for our own clients.
//!
//! The full specification is `docs/PROTOCOL.md` at the root of the repository.

pub mod clock;
pub mod control;
pub mod framing;
mod msgpack;
pub mod tick;
#[cfg(feature = "tls")]
pub mod tls;

pub use control::{ClientRequest, ErrorCode, ServerMessage};
pub use framing::{FrameError, MAX_RECORD_LEN};
pub use tick::{DecodeError, Tick, TickHeader, TickRef};

/// The topic that subscribes to every symbol.
pub const WILDCARD: &str = "*";
