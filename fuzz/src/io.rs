//! Readers that hand the same bytes over in chunks of a seeded, random
//! size, with stalls in between: `Pending` for async readers (the target
//! then drops the pending future, as a `select!` would), `WouldBlock` or
//! `Interrupted` for `std::io::Read`. A target's verdict must not depend on
//! the chunking, so each compares a chunked read with a whole one.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// A seeded sequence of chunk sizes and stalls (SplitMix64: tiny, and the
/// same on every machine, so a failing input replays exactly).
#[derive(Debug, Clone)]
pub struct Plan {
    state: u64,
}

/// What the reader does on its next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Hand over at most this many bytes (at least 1).
    Bytes(usize),
    /// Stall: no bytes this time.
    Stall,
}

impl Plan {
    /// The plan for `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The next step: mostly short chunks (1–16 bytes, to cut headers and
    /// length prefixes anywhere), some long ones, a stall one time in eight.
    pub fn step(&mut self) -> Step {
        let r = self.next_u64();
        match r % 8 {
            0 => Step::Stall,
            1 => Step::Bytes(1 + (r >> 8) as usize % 512),
            _ => Step::Bytes(1 + (r >> 8) as usize % 16),
        }
    }
}

/// A cheap hash of an input, for targets that derive their chunk plan from
/// the input itself (FNV-1a).
pub fn seed_of(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `data` in planned chunks, as a blocking or non-blocking `std::io` stream
/// (writes are swallowed, for tungstenite's pongs and close replies).
pub struct ChunkedRead<'a> {
    data: &'a [u8],
    plan: Plan,
    /// The error kind a stall returns.
    stall: io::ErrorKind,
}

impl<'a> ChunkedRead<'a> {
    /// A reader whose stalls are `stall` errors (`WouldBlock` for a
    /// non-blocking socket, `Interrupted` for a signal).
    pub fn new(data: &'a [u8], seed: u64, stall: io::ErrorKind) -> Self {
        Self {
            data,
            plan: Plan::new(seed),
            stall,
        }
    }
}

impl Read for ChunkedRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.data.is_empty() || buf.is_empty() {
            return Ok(0);
        }
        match self.plan.step() {
            Step::Stall => Err(self.stall.into()),
            Step::Bytes(n) => {
                let n = n.min(buf.len()).min(self.data.len());
                let (head, rest) = self.data.split_at(n);
                buf[..n].copy_from_slice(head);
                self.data = rest;
                Ok(n)
            }
        }
    }
}

impl Write for ChunkedRead<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `data` in planned chunks as a tokio `AsyncRead`; a stall is `Pending`.
pub struct ChunkedAsync<'a> {
    data: &'a [u8],
    plan: Plan,
}

impl<'a> ChunkedAsync<'a> {
    /// The async reader of `data` on the plan of `seed`.
    pub fn new(data: &'a [u8], seed: u64) -> Self {
        Self {
            data,
            plan: Plan::new(seed),
        }
    }
}

impl AsyncRead for ChunkedAsync<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.data.is_empty() || buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        match self.plan.step() {
            Step::Stall => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Step::Bytes(n) => {
                let n = n.min(buf.remaining()).min(self.data.len());
                let (head, rest) = self.data.split_at(n);
                buf.put_slice(head);
                self.data = rest;
                Poll::Ready(Ok(()))
            }
        }
    }
}
