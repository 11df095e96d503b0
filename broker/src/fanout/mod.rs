//! Fan-out: from one published tick to every subscriber's socket.
pub mod frame;
pub mod hub;
pub mod outbox;
pub mod writer;
