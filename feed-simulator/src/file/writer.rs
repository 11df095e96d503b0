//! Writer of feed files.
//!
//! Each tick is encoded straight into its framed record in a reused scratch
//! buffer and appended to a large write buffer, so recording costs one
//! syscall per few thousand ticks.

use std::io::{self, BufWriter, Write};

use tickcast_protocol::framing::put_tick_record;
use tickcast_protocol::tick::MAX_SYMBOL_LEN;
use tickcast_protocol::TickRef;

use super::header::FeedHeader;

/// Write buffer: big sequential writes are what disks are fast at.
const WRITE_BUFFER: usize = 256 * 1024;

/// Writes a header, then one record per tick.
#[derive(Debug)]
pub struct FeedWriter<W: Write> {
    out: BufWriter<W>,
    scratch: Vec<u8>,
    records: u64,
}

impl<W: Write> FeedWriter<W> {
    /// Starts a feed file on `w` with `header`.
    pub fn new(w: W, header: &FeedHeader) -> io::Result<Self> {
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, w);
        out.write_all(&header.to_bytes())?;
        Ok(Self {
            out,
            scratch: Vec::with_capacity(256),
            records: 0,
        })
    }

    /// Appends one tick.
    pub fn write_tick(&mut self, tick: &TickRef<'_>) -> io::Result<()> {
        // Readers reject longer symbols; refuse to write what cannot be read.
        if tick.sym.is_empty() || tick.sym.len() > MAX_SYMBOL_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("symbol must be 1 to {MAX_SYMBOL_LEN} bytes"),
            ));
        }
        self.scratch.clear();
        put_tick_record(&mut self.scratch, tick);
        self.out.write_all(&self.scratch)?;
        self.records += 1;
        Ok(())
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Hands everything buffered so far to the underlying writer, so it
    /// survives the process (a live recording calls this every so often).
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes everything and gives the underlying writer back.
    pub fn finish(self) -> io::Result<W> {
        let mut w = self.out.into_inner().map_err(|e| e.into_error())?;
        w.flush()?;
        Ok(w)
    }
}
