//! The WebSocket (RFC 6455) frame codec tickcast's broker, load generator
//! and tests share: one place that knows the wire layout, so none of them
//! can drift, and the tests build their deliberately broken frames with the
//! same encoder that builds the valid ones.
//!
//! A codec only: bytes in, bytes out. No sockets, no async, no dependencies,
//! and no allocation on the parse path. One file per wire concern:
//!
//! - [`opcode`]: the six opcodes and which are control frames.
//! - [`header`]: parse any header from a slice (`None`: need more bytes),
//!   encode any header, valid or not, into a [`Fixed`] array.
//! - [`mask`]: apply a client's masking key, a word at a time.
//! - [`close`]: close codes, building a code + reason payload that fits,
//!   checking a received one.
//! - [`rules`]: what a server or client reader must refuse, as typed
//!   [`Violation`]s that name their close codes.
//! - [`frame`]: a whole frame parsed in place, or appended to a `Vec`.
//! - [`handshake`]: the client's upgrade request and the check of the
//!   server's `101`, with RFC 6455's sample key.
//! - [`fixed`]: the small stack array encoders return.

pub mod close;
pub mod fixed;
pub mod frame;
pub mod handshake;
pub mod header;
pub mod mask;
pub mod opcode;
pub mod rules;

pub use close::Close;
pub use fixed::Fixed;
pub use frame::{put_frame, Frame};
pub use handshake::HandshakeError;
pub use header::{Header, FIN, RSV, RSV1};
pub use opcode::Opcode;
pub use rules::{Role, Rules, Violation};
