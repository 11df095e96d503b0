//! Fuzz targets for what tickcast reads from the outside world, written
//! once and run by two drivers.
//!
//! | target | code under test | input |
//! |---|---|---|
//! | [`tick_decode`] | `Tick::decode`, `TickRef::decode`, `TickHeader::peek` | one encoded tick |
//! | [`ingest_frames`] | `framing::parse_record`, `split_record` (the broker's TCP ingest, feed files) | a publisher's byte stream |
//! | [`frame_reader`] | the broker's `client::reader::FrameReader`, against tungstenite | a client's bytes after the upgrade |
//! | [`control_message`] | `ClientRequest::from_json`, `from_msgpack` | one text or binary message |
//! | [`feed_file`] | `feed_simulator::file::FeedReader` | a feed file |
//! | [`csv_import`] | `feed_simulator::import::import_csv` | a CSV file |
//!
//! Each target checks properties, not only the absence of panics: round
//! trips where the format has them, agreement between two readings of the
//! same bytes (borrowed and owned, peek and decode, whole and chunked,
//! ours and tungstenite's, the reader and the format's specification),
//! and a memory budget ([`alloc`]): a length field claiming gigabytes must
//! not make anything allocate them. Each target's doc lists its
//! properties; a failed property panics, which both drivers report as a
//! crash.
//!
//! The drivers:
//! - **libFuzzer** (`fuzz/libfuzzer/`, nightly and `cargo fuzz`; run by
//!   `scripts/fuzz.sh`): coverage-guided, one binary per target, each a
//!   one-line call into this library.
//! - **the stable driver** (`tests/fuzz.rs`, part of `cargo test`):
//!   replays the committed corpus (`fuzz/corpus/<target>/`), then runs a
//!   seeded, bounded mutation loop per target ([`mutate`]). The readers'
//!   chunk plans (and the frame reader's leftover) come from a hash of the
//!   input, so a saved input replays exactly, in either driver. `FUZZ_SECONDS` and `FUZZ_ITERS` bound it
//!   (a few seconds per target by default), `FUZZ_SEED` picks the run.
//!
//! Why a hand-written mutator rather than `bolero`, `arbitrary` or
//! `proptest`: the inputs here are byte streams whose interesting cases
//! are small edits of real ones (a flipped length, a cut record, two
//! sessions spliced), which is what libFuzzer's mutators do and what a
//! hundred lines on the workspace's `rand_pcg` do the same way on stable,
//! replayable from a seed; `arbitrary` and `proptest` build structured
//! values from scratch (and proptest's shrinking would rarely beat the
//! few-hundred-byte corpus entries), and `bolero` would bring its own
//! engine and dependencies for the same loop. No new dependency but
//! tungstenite, the reference for the frame reader.

pub mod alloc;
pub mod io;
pub mod mutate;
pub mod seeds;
mod targets;

pub use targets::control::control_message;
pub use targets::csv_import::csv_import;
pub use targets::feed_file::feed_file;
pub use targets::frame_reader::frame_reader;
pub use targets::ingest::ingest_frames;
pub use targets::tick::tick_decode;

/// The differences from tungstenite the frame reader target allows, with
/// how often each was seen (see its module docs).
pub use targets::frame_reader::differences as frame_reader_differences;

/// A target: its name (its corpus folder and libFuzzer binary) and its
/// function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: [Target; 6] = [
    ("tick_decode", tick_decode),
    ("ingest_frames", ingest_frames),
    ("frame_reader", frame_reader),
    ("control_message", control_message),
    ("feed_file", feed_file),
    ("csv_import", csv_import),
];
