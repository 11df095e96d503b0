//! `loadgen`: tickcast's end-to-end load generator, as a library so the tests
//! can drive exactly what the binary runs.
//!
//! One publisher sends ticks into the server on an absolute schedule (each
//! tick's `ts` is its *intended* send time, so a stalled server cannot hide its
//! own delay: no coordinated omission), and many WebSocket subscribers measure
//! receive time − `ts`, count deliveries against what was expected, and look for
//! per-symbol sequence gaps. The same run works against tickcast or, for
//! comparison, against nats-server over its WebSocket listener.
//!
//! Module map, in the order data flows:
//! - [`scenario`]: the TOML scenario files (`benches/scenarios/`).
//! - [`universe`]: symbols, their Zipf-skewed activity, who subscribes to what.
//! - [`publisher`]: the paced publisher thread (tickcast ingest or NATS `PUB`),
//!   its ticks drawn from the simulator's `Market` at its own send times.
//! - [`nats`]: the client side of the NATS protocol, hand-parsed because one
//!   loadgen core must consume millions of frames a second (WebSocket frames
//!   are parsed in place by `tickcast-wsframe`, for the same reason).
//! - [`conn`]: one subscriber connection (handshake, subscribe, read events),
//!   over TCP or, with `--tls`, over TLS ([`tls`]).
//! - [`pool`]: the subscriber threads and their per-connection accounting.
//! - [`latency`], [`hgrm`]: latency histograms and their percentile files.
//! - [`target`], [`procstat`], [`http`]: the server under test and its process.
//! - [`runner`], [`idle`]: a traffic run (steps, saturation) and an idle run.
//! - [`report`], [`plots`]: the JSON result, terminal tables and SVG charts;
//!   [`ab`]: medians over rounds of two builds (A/B).
//! - [`floor`]: the cost of loopback sends alone, with no server (the floor
//!   under any server's latency on this machine).
//! - [`handshakes`]: new connections per second (TCP, TLS, upgrade), for
//!   `loadgen handshakes`.
//! - [`soak`]: a long run of churning subscribers, judging whether the
//!   broker's memory, open files and tasks stay flat.
//! - [`storm`]: a reconnect storm: resuming clients cut at once and back
//!   together (`since`), judged gapless, with everyone else's latency.

pub mod ab;
pub mod conn;
pub mod floor;
pub mod handshakes;
pub mod hgrm;
pub mod http;
pub mod idle;
pub mod latency;
pub mod nats;
pub mod plots;
pub mod pool;
pub mod procstat;
pub mod publisher;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod soak;
pub mod storm;
pub mod target;
pub mod tls;
pub mod universe;
