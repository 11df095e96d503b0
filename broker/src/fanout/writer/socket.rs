//! A connection's socket as its writer shard sees it: the write half and
//! whatever the kernel did not take yet.
//!
//! Writes never wait. What a full socket refuses is kept here (`unsent`)
//! and goes first on the next visit; meanwhile the connection's outbox
//! queues and its slow-consumer policy takes over. The shard learns that
//! the socket drained by polling its write readiness (tokio remembers the
//! readiness, so a visit to a still-full socket costs no system call).

use std::io::ErrorKind;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::tcp::OwnedWriteHalf;

/// A leftover buffer larger than this is released once it is written, so a
/// connection that once had a burst does not keep its peak memory.
const KEEP_WHEN_IDLE: usize = 16 * 1024;

/// The socket failed (reset, broken pipe): the connection is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failed;

/// The write side of one connection.
#[derive(Debug)]
pub struct WriteSide {
    /// `None` once the connection is finished (the close frame is out or the
    /// socket failed); dropping the write half sends the FIN.
    socket: Option<OwnedWriteHalf>,
    /// Bytes the kernel refused, written before anything else.
    unsent: Vec<u8>,
    /// The close frame is in `unsent`: finish once it is out.
    last: bool,
}

impl WriteSide {
    /// The write side of a new connection.
    pub fn new(socket: OwnedWriteHalf) -> Self {
        Self {
            socket: Some(socket),
            unsent: Vec::new(),
            last: false,
        }
    }

    /// Whether the socket is still there to write to.
    pub fn is_open(&self) -> bool {
        self.socket.is_some()
    }

    /// Whether bytes wait for the kernel.
    pub fn is_blocked(&self) -> bool {
        !self.unsent.is_empty()
    }

    /// Writes what the kernel refused before; `Ok(true)` when that was the
    /// close frame and it is now all out.
    pub fn flush_unsent(&mut self, sending: &mut Duration) -> Result<bool, Failed> {
        if self.unsent.is_empty() {
            return Ok(false);
        }
        let socket = self.socket.as_ref().ok_or(Failed)?;
        let sent = timed(sending, || try_write_all(socket, &self.unsent))?;
        self.unsent.drain(..sent);
        self.release_if_idle();
        Ok(self.unsent.is_empty() && self.last)
    }

    /// Writes `bytes` without waiting, keeping what the kernel refuses;
    /// `last` says they end with the close frame. `Ok(true)` when the close
    /// frame is out.
    pub fn write(
        &mut self,
        bytes: &[u8],
        last: bool,
        sending: &mut Duration,
    ) -> Result<bool, Failed> {
        let socket = self.socket.as_ref().ok_or(Failed)?;
        let sent = timed(sending, || try_write_all(socket, bytes))?;
        self.unsent.extend_from_slice(&bytes[sent..]);
        self.last = last;
        Ok(last && self.unsent.is_empty())
    }

    /// Drops the socket (the FIN goes out) and any unsent bytes.
    pub fn shut(&mut self) {
        self.socket = None;
        self.unsent = Vec::new();
    }

    /// Whether a blocked socket can take bytes again (registers `cx` to be
    /// woken when it can).
    pub fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<()> {
        match &self.socket {
            // An error shows up on the next write.
            Some(socket) => socket.as_ref().poll_write_ready(cx).map(|_| ()),
            None => Poll::Ready(()),
        }
    }

    fn release_if_idle(&mut self) {
        if self.unsent.is_empty() && self.unsent.capacity() > KEEP_WHEN_IDLE {
            self.unsent = Vec::new();
        }
    }
}

/// Runs `send`, adding the time it took to `sending`.
fn timed<T>(sending: &mut Duration, send: impl FnOnce() -> T) -> T {
    let start = std::time::Instant::now();
    let out = send();
    *sending += start.elapsed();
    out
}

/// Writes as much of `data` as the socket takes without waiting.
fn try_write_all(socket: &OwnedWriteHalf, data: &[u8]) -> Result<usize, Failed> {
    let mut sent = 0;
    while sent < data.len() {
        match socket.try_write(&data[sent..]) {
            Ok(0) => return Err(Failed),
            Ok(n) => sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Err(Failed),
        }
    }
    Ok(sent)
}
