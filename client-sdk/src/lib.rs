//! Rust client for the tickcast market-data broker.
//!
//! Connect, subscribe to symbols, and read typed ticks. The client
//! reconnects on its own (jittered exponential backoff), subscribes again to
//! everything after a reconnection, checks every symbol's `seq` so that
//! missed ticks are reported as [`Event::Gap`] rather than hidden, and keeps
//! a receive-latency histogram ([`Client::stats`]).
//!
//! Continuity: the resubscribe after a reconnection resumes every symbol
//! from its last tick received (with the broker's epochs), so the broker
//! replays what was missed ([`Event::Recovered`], then exactly those ticks,
//! then live ones) or says why it cannot ([`Event::Reset`], then a
//! snapshot). A [`Event::Gap`] with a `reason` is the broker's own account
//! of ticks it skipped for this client (conflated, dropped, or capped by
//! [`ClientBuilder::max_rate`]).
//!
//! ```no_run
//! use tickcast_client::{Client, Event};
//!
//! # async fn run() -> Result<(), tickcast_client::ClientError> {
//! let mut client = Client::connect("ws://127.0.0.1:8080/ws").await?;
//! client.subscribe(["AAPL", "MSFT"]).await?;
//! while let Some(event) = client.next().await {
//!     match event {
//!         Event::Tick(t) => println!("{} {} last {}", t.tick.sym, t.tick.seq, t.tick.last),
//!         Event::Gap { sym, expected, got, reason } => {
//!             eprintln!("{sym}: missed {expected}..{got} ({reason:?})")
//!         }
//!         Event::Reset { sym, reason } => eprintln!("{sym} starts over: {reason:?}"),
//!         Event::Error(e) => eprintln!("{e}"),
//!         _ => {}
//!     }
//! }
//! let stats = client.stats();
//! println!("p99 {} ns over {} ticks", stats.latency.value_at_quantile(0.99), stats.ticks);
//! # Ok(())
//! # }
//! ```
//!
//! [`Client`] is also a [`futures_core::Stream`] of [`Event`]s. Each tick
//! comes with its raw frame bytes ([`ReceivedTick::raw`]) for programs that
//! forward them without re-encoding.
//!
//! Transport: `ws://` over TCP, or `wss://` over rustls trusting the
//! system's root certificates or a CA file ([`ClientBuilder::ca_file`]). A
//! broker that requires tokens gets one from [`ClientBuilder::token`] on
//! every (re)connection, renewed before expiry by
//! [`ClientBuilder::token_renewal`].

#![deny(missing_docs)]

mod auth;
mod client;
mod endpoint;
mod error;
mod event;
mod reconnect;
mod sequence;
mod session;
mod stats;
mod subscriptions;
mod transport;

pub use auth::Renewal;
pub use client::{Client, ClientBuilder};
pub use error::{BoxError, ClientError};
pub use event::{Event, ReceivedTick};
pub use hdrhistogram::Histogram;
pub use reconnect::ReconnectPolicy;
pub use stats::Stats;
pub use tickcast_protocol::control::{GapReason, ResetReason};
pub use tickcast_protocol::{ErrorCode, Tick};
