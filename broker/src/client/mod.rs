//! One WebSocket client, from the HTTP upgrade to its close.
//!
//! - [`upgrade`]: the `/ws` upgrade and the checks before it;
//! - [`origin`]: which web pages may open a socket (the `Origin` check);
//! - [`session`]: the task that reads the client and acts on its requests,
//!   through its one handle on the fan-out ([`crate::fanout::Member`]);
//! - [`reader`]: strict parsing of the client's WebSocket frames;
//! - [`first_subscribe`]: the signal a replay waits on to start with the
//!   first subscription (`--replay-start on-subscribe`).
//!
//! Writing to the client is not here: the connection's writer shard owns
//! its socket's write half (`fanout::writer`).

pub mod first_subscribe;
pub mod origin;
pub mod reader;
pub mod session;
pub mod upgrade;
