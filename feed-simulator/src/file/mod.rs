//! Feed files: a small fixed header, then ticks in the ingest framing.
//!
//! Records are stored exactly as the broker's TCP ingest expects them
//! (`u32` big-endian length + one MessagePack tick), so a replay can send
//! what it reads with no conversion beyond restamping. The layout is
//! specified in `docs/FEED_FORMAT.md`. Reading streams through a buffer and
//! never loads a whole file; damage is reported with its byte offset after
//! every intact record before it has been yielded.

mod error;
mod header;
mod reader;
mod writer;

pub use error::FeedFileError;
pub use header::{FeedHeader, Source, FORMAT_VERSION, HEADER_LEN, MAGIC};
pub use reader::FeedReader;
pub use writer::FeedWriter;
