//! A client's byte stream, plain TCP or TLS, and its two halves: the read
//! half its session keeps, the write half its writer shard takes.
//!
//! Plain TCP splits into tokio's owned halves, with no lock between them
//! (the path every benchmark so far measured, unchanged). A TLS stream is
//! one rustls session whose state both directions need (a read can queue
//! an alert or a key update for the write side), so it splits with
//! `tokio::io::split`: a mutex held only inside each poll, never across an
//! await. The reader polls when the client sent something (control
//! messages, a few a second at most) and the writer once per visit, so the
//! two almost never meet on it.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// A TLS connection as the broker holds it.
pub type Tls = TlsStream<TcpStream>;

/// A client connection after the upgrade.
#[derive(Debug)]
pub enum Stream {
    /// Plain TCP (`ws://`).
    Plain(TcpStream),
    /// TLS over TCP (`wss://`).
    Tls(Box<Tls>),
}

/// The half of a [`Stream`] its session reads from.
#[derive(Debug)]
pub enum ReadHalf {
    /// Plain TCP.
    Plain(OwnedReadHalf),
    /// TLS.
    Tls(tokio::io::ReadHalf<Tls>),
}

/// The half of a [`Stream`] its writer shard writes to.
#[derive(Debug)]
pub enum WriteHalf {
    /// Plain TCP.
    Plain(OwnedWriteHalf),
    /// TLS.
    Tls(tokio::io::WriteHalf<Tls>),
}

impl Stream {
    /// The client's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Stream::Plain(s) => s.peer_addr(),
            Stream::Tls(s) => s.get_ref().0.peer_addr(),
        }
    }

    /// Splits the stream into its read and write halves.
    pub fn split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Stream::Plain(s) => {
                let (rd, wr) = s.into_split();
                (ReadHalf::Plain(rd), WriteHalf::Plain(wr))
            }
            Stream::Tls(s) => {
                let (rd, wr) = tokio::io::split(*s);
                (ReadHalf::Tls(rd), WriteHalf::Tls(wr))
            }
        }
    }
}

impl From<OwnedWriteHalf> for WriteHalf {
    fn from(half: OwnedWriteHalf) -> Self {
        WriteHalf::Plain(half)
    }
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadHalf::Plain(rd) => Pin::new(rd).poll_read(cx, buf),
            ReadHalf::Tls(rd) => Pin::new(rd).poll_read(cx, buf),
        }
    }
}
