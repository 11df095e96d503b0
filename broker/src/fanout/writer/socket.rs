//! A connection's socket as its writer shard sees it: the write half and
//! whatever the kernel did not take yet.
//!
//! Writes never wait. What a full socket refuses is kept here (`unsent`)
//! and goes first on the next visit; meanwhile the connection's outbox
//! queues and its slow-consumer policy takes over. The shard learns that
//! the socket drained by polling its write readiness (tokio remembers the
//! readiness, so a visit to a still-full socket costs no system call).
//!
//! Over TLS the same visit makes one `poll_write` of the whole batch into
//! the connection's rustls session, which encrypts it into records (16 KiB
//! of plaintext each at most, so a visit of a few frames is one record)
//! and writes them with one vectored system call: its buffer limit is set
//! above [`MAX_BATCH_BYTES`](super::MAX_BATCH_BYTES) at accept, so a whole
//! batch fits. Encryption happens per connection (it cannot be shared the
//! way a plain frame is), inside the timed send, so the writers' pacing
//! counts it. What the socket refuses stays encrypted inside rustls
//! (`backlog`) and the plaintext rustls refused stays in `unsent`; a flush
//! drains the former before the latter is written. The plain path is the
//! code it was before TLS, behind one `match` per call.

use std::io::ErrorKind;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio::net::tcp::OwnedWriteHalf;

use crate::fanout::stream::{Tls, WriteHalf};

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
    socket: Option<WriteHalf>,
    /// Bytes the kernel (or, over TLS, rustls) refused, written before
    /// anything else.
    unsent: Vec<u8>,
    /// TLS only: rustls holds encrypted records the kernel has not taken.
    backlog: bool,
    /// The close frame is in `unsent`: finish once it is out.
    last: bool,
    /// The last write did not all go: the peer reads slower than it is fed
    /// (the writer keeps its batches small then).
    slow: bool,
}

impl WriteSide {
    /// The write side of a new connection.
    pub fn new(socket: WriteHalf) -> Self {
        Self {
            socket: Some(socket),
            unsent: Vec::new(),
            backlog: false,
            last: false,
            slow: false,
        }
    }

    /// Whether the socket is still there to write to.
    pub fn is_open(&self) -> bool {
        self.socket.is_some()
    }

    /// Whether the last write did not all go.
    pub fn is_slow(&self) -> bool {
        self.slow
    }

    /// Whether bytes wait for the kernel.
    pub fn is_blocked(&self) -> bool {
        !self.unsent.is_empty() || self.backlog
    }

    /// Writes what the kernel refused before; `Ok(true)` when that was the
    /// close frame and it is now all out.
    pub fn flush_unsent(&mut self, sending: &mut Duration) -> Result<bool, Failed> {
        if !self.is_blocked() {
            return Ok(false);
        }
        let sent = match self.socket.as_mut().ok_or(Failed)? {
            WriteHalf::Plain(socket) => timed(sending, || try_write_all(socket, &self.unsent))?,
            WriteHalf::Tls(tls) => {
                let (sent, backlog) = timed(sending, || tls_flush_then_write(tls, &self.unsent))?;
                self.backlog = backlog;
                sent
            }
        };
        self.unsent.drain(..sent);
        self.release_if_idle();
        Ok(!self.is_blocked() && self.last)
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
        let sent = match self.socket.as_mut().ok_or(Failed)? {
            WriteHalf::Plain(socket) => timed(sending, || try_write_all(socket, bytes))?,
            WriteHalf::Tls(tls) => {
                let (sent, backlog) = timed(sending, || tls_write_all(tls, bytes))?;
                self.backlog = backlog;
                sent
            }
        };
        self.unsent.extend_from_slice(&bytes[sent..]);
        self.slow = self.is_blocked();
        self.last = last;
        Ok(last && !self.is_blocked())
    }

    /// Drops the socket (the FIN goes out; over TLS a `close_notify` first,
    /// if the socket takes it now) and any unsent bytes.
    pub fn shut(&mut self) {
        if let Some(WriteHalf::Tls(tls)) = &mut self.socket {
            // Best effort: the TCP connection closes when both halves are
            // dropped anyway.
            let _ = Pin::new(tls).poll_shutdown(&mut Context::from_waker(Waker::noop()));
        }
        self.socket = None;
        self.unsent = Vec::new();
        self.backlog = false;
    }

    /// Whether a blocked socket can take bytes again (registers `cx` to be
    /// woken when it can). Over TLS this flushes the encrypted backlog
    /// (which is what "can take bytes" means there).
    pub fn poll_writable(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.socket {
            // An error shows up on the next write.
            Some(WriteHalf::Plain(socket)) => socket.as_ref().poll_write_ready(cx).map(|_| ()),
            Some(WriteHalf::Tls(tls)) => match Pin::new(tls).poll_flush(cx) {
                Poll::Ready(_) => {
                    self.backlog = false;
                    Poll::Ready(())
                }
                Poll::Pending => Poll::Pending,
            },
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

/// Hands `data` to a TLS session without waiting: rustls encrypts what its
/// buffer takes and writes the records; returns the plaintext bytes it
/// took and whether encrypted bytes are still waiting for the kernel.
fn tls_write_all(
    tls: &mut tokio::io::WriteHalf<Tls>,
    data: &[u8],
) -> Result<(usize, bool), Failed> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut sent = 0;
    while sent < data.len() {
        match Pin::new(&mut *tls).poll_write(&mut cx, &data[sent..]) {
            Poll::Ready(Ok(0)) => return Err(Failed),
            Poll::Ready(Ok(n)) => sent += n,
            Poll::Ready(Err(e)) if e.kind() == ErrorKind::Interrupted => {}
            Poll::Ready(Err(_)) => return Err(Failed),
            Poll::Pending => break,
        }
    }
    // rustls may have taken everything and still hold records the socket
    // refused: a flush says (and costs nothing when nothing waits).
    match Pin::new(&mut *tls).poll_flush(&mut cx) {
        Poll::Ready(Ok(())) => Ok((sent, false)),
        Poll::Ready(Err(_)) => Err(Failed),
        Poll::Pending => Ok((sent, true)),
    }
}

/// Drains a TLS session's encrypted backlog, then writes `data`, without
/// waiting (as [`tls_write_all`]).
fn tls_flush_then_write(
    tls: &mut tokio::io::WriteHalf<Tls>,
    data: &[u8],
) -> Result<(usize, bool), Failed> {
    match Pin::new(&mut *tls).poll_flush(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(Ok(())) if data.is_empty() => Ok((0, false)),
        Poll::Ready(Ok(())) => tls_write_all(tls, data),
        Poll::Ready(Err(_)) => Err(Failed),
        Poll::Pending => Ok((0, true)),
    }
}
