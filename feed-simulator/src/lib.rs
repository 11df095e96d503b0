//! A realistic, deterministic stock-tick feed for tickcast: generate it, store
//! it, send it.
//!
//! The broker embeds [`market::Market`] and [`pacing::Pacer`] for its built-in
//! simulated feed and reads [`file::FeedReader`] for replays; the
//! `feed-simulator` binary (`src/bin/feed-simulator/`) is a thin command line
//! over the same parts. The binary and its dependencies (clap, anyhow,
//! indicatif, humantime, mimalloc) come with the default `cli` feature; the
//! library needs none of them, so embedders depend on it with
//! `default-features = false`.
//!
//! - [`market`]: the generator (per-symbol price paths, skewed activity,
//!   Poisson arrivals), seeded so the same seed gives the same bytes.
//! - [`pacing`]: turns event times into an absolute send schedule, and the
//!   one delivery loop over it that batches what is due together.
//! - [`file`]: the feed file format (header + ingest-framed records).
//! - [`record`], [`publish`], [`replay`], [`inspect`], [`import`]: one
//!   module per command of the binary.
//! - [`new_york`]: New York dates and midnights (ITCH times, the session);
//!   [`rfc3339`]: UTC timestamps both ways.
//! - [`send`]: the paced, batching TCP sender shared by publish and replay
//!   (the pacing loop with a socket as its sink).

mod activity;
mod arrivals;
mod book;
pub mod file;
pub mod import;
pub mod inspect;
pub mod market;
pub mod new_york;
pub mod pacing;
pub mod publish;
pub mod record;
mod reference;
pub mod replay;
pub mod rfc3339;
pub mod send;
mod symbols;
