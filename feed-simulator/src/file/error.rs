//! What can be wrong with a feed file, with the byte offset of the damage.

use std::io;

/// Why a feed file cannot be read (further).
#[derive(Debug, thiserror::Error)]
pub enum FeedFileError {
    /// The underlying read failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The file does not start with the feed magic bytes.
    #[error("not a tickcast feed file (bad magic bytes)")]
    BadMagic,
    /// The file is from a format version this build cannot read.
    #[error("unsupported feed format version {0} (this build reads version 1)")]
    UnsupportedVersion(u16),
    /// The header is present but holds an impossible value.
    #[error("invalid feed header: {reason}")]
    BadHeader {
        /// What is wrong.
        reason: String,
    },
    /// The file ends inside the header or record starting at `offset`, or
    /// before all the records its header announces.
    #[error("feed file is truncated: data ends in or before the record at byte offset {offset}")]
    Truncated {
        /// Byte offset of the incomplete (or missing) record.
        offset: u64,
    },
    /// The record starting at `offset` is not a valid framed tick.
    #[error("feed file is corrupt at byte offset {offset}: {reason}")]
    Corrupt {
        /// Byte offset of the bad record.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
}

impl FeedFileError {
    /// The byte offset of the damage, when the error is about one place.
    pub fn offset(&self) -> Option<u64> {
        match self {
            FeedFileError::Truncated { offset } | FeedFileError::Corrupt { offset, .. } => {
                Some(*offset)
            }
            _ => None,
        }
    }
}
