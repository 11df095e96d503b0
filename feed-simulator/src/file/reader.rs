//! Streaming reader of feed files.
//!
//! Reads one record at a time into a reused buffer, so memory stays flat
//! whatever the file size, and [`FeedReader::read_record`] lends the decoded
//! tick without allocating (the iterator gives owned ticks for convenience).
//! Each record is checked (length, then the full tick validation of the
//! protocol crate); the first damaged one ends the stream with an error that
//! names its byte offset.

use std::fs::File;
use std::io::{self, BufReader, ErrorKind, Read};
use std::path::Path;

use tickcast_protocol::framing::{parse_record, HEADER_LEN as LEN_PREFIX};
use tickcast_protocol::{Tick, TickRef};

use super::header::{FeedHeader, HEADER_LEN, MAGIC};
use super::FeedFileError;

/// Read buffer for files: large enough that a sequential read costs few
/// syscalls, small enough not to matter next to anything else.
const FILE_BUFFER: usize = 256 * 1024;

/// Reads the records of a feed file in order.
#[derive(Debug)]
pub struct FeedReader<R: Read> {
    inner: R,
    header: FeedHeader,
    /// Byte offset of the next record.
    offset: u64,
    /// Records read so far.
    records: u64,
    /// The current record's payload, reused across records.
    payload: Vec<u8>,
    /// Set at the end or after an error: nothing more is read.
    done: bool,
}

impl FeedReader<BufReader<File>> {
    /// Opens a feed file and reads its header.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, FeedFileError> {
        let file = File::open(path)?;
        Self::from_reader(BufReader::with_capacity(FILE_BUFFER, file))
    }
}

impl<R: Read> FeedReader<R> {
    /// Reads the header from `inner`. Records are then read in small pieces,
    /// so `inner` should be buffered (or in memory).
    pub fn from_reader(mut inner: R) -> Result<Self, FeedFileError> {
        let mut bytes = [0u8; HEADER_LEN];
        let got = read_full(&mut inner, &mut bytes)?;
        if got < HEADER_LEN {
            // A short file that starts like a feed file was cut; anything
            // else is not a feed file at all.
            let seen = got.min(MAGIC.len());
            return Err(if bytes[..seen] == MAGIC[..seen] {
                FeedFileError::Truncated { offset: 0 }
            } else {
                FeedFileError::BadMagic
            });
        }
        Ok(Self {
            inner,
            header: FeedHeader::from_bytes(&bytes)?,
            offset: HEADER_LEN as u64,
            records: 0,
            payload: Vec::with_capacity(256),
            done: false,
        })
    }

    /// The file's header.
    pub fn header(&self) -> &FeedHeader {
        &self.header
    }

    /// Byte offset of the next record.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Records read so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Reads the next record: `Ok(None)` at a clean end of file.
    ///
    /// A file whose header announces a record count must hold exactly that
    /// many records, so a cut that happens to fall between two records is
    /// still reported as truncation.
    pub fn read_record(&mut self) -> Result<Option<TickRef<'_>>, FeedFileError> {
        if self.done {
            return Ok(None);
        }
        self.done = true; // Until this record proves good.
        let start = self.offset;
        let mut prefix = [0u8; LEN_PREFIX];
        let got = read_full(&mut self.inner, &mut prefix)?;
        let expected = self.header.count;
        if got == 0 {
            return match expected {
                Some(count) if self.records < count => {
                    Err(FeedFileError::Truncated { offset: start })
                }
                _ => Ok(None),
            };
        }
        if let Some(count) = expected.filter(|&count| self.records >= count) {
            return Err(FeedFileError::Corrupt {
                offset: start,
                reason: format!("data after the last of the {count} records the header announces"),
            });
        }
        if got < LEN_PREFIX {
            return Err(FeedFileError::Truncated { offset: start });
        }
        // The protocol's own framing rules decide what a valid length is.
        if let Err(e) = parse_record(&prefix) {
            return Err(FeedFileError::Corrupt {
                offset: start,
                reason: e.to_string(),
            });
        }
        let len = u32::from_be_bytes(prefix) as usize;
        self.payload.clear();
        self.payload.resize(len, 0);
        if read_full(&mut self.inner, &mut self.payload)? < len {
            return Err(FeedFileError::Truncated { offset: start });
        }
        match TickRef::decode(&self.payload) {
            Ok(tick) => {
                self.offset = start + (LEN_PREFIX + len) as u64;
                self.records += 1;
                self.done = false;
                Ok(Some(tick))
            }
            Err(e) => Err(FeedFileError::Corrupt {
                offset: start,
                reason: e.to_string(),
            }),
        }
    }
}

impl<R: Read> Iterator for FeedReader<R> {
    type Item = Result<Tick, FeedFileError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.read_record()
            .map(|tick| tick.map(|t| t.to_tick()))
            .transpose()
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
