//! One subscriber connection: connect, upgrade, subscribe, then turn bytes
//! into events.
//!
//! The same connection type serves tickcast (`/ws`, JSON subscribe, ticks as
//! binary frames) and NATS (WebSocket carrying the NATS text protocol), so
//! every run measures both targets through identical client code. One
//! syscall's worth of frames is handled in one go: under load,
//! [`SubConn::try_read`] fills a buffer that all connections of a thread
//! share and [`SubConn::feed`] parses every complete frame in it, handing out
//! borrowed [`Event`]s; only a partial frame at the end is copied into the
//! connection's own (small) buffer. A large buffer per connection would cost
//! a thousand connections 64 MiB, and the kernel's copy into it a cache miss
//! per line; the shared one stays in cache. Frames are parsed in place by
//! `tickcast-wsframe` (a header parse, the checks, a slice: no copy).
//!
//! Over TLS (`--tls`) the bytes come out of rustls, which reads the socket
//! into its own buffer and decrypts a record at a time, so a connection
//! cannot be polled for readiness and read without waiting: a TLS
//! connection reads into its own buffer ([`SubConn::read_some`], sized by
//! the caller to a TLS record, 16 KiB) and is parsed there
//! ([`SubConn::process`]).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;

use anyhow::{bail, Context, Result};
use tickcast_protocol::control::{decode_server_frame, Incoming, SubscribeOptions};
use tickcast_protocol::{ClientRequest, ServerMessage, TickHeader, TickRef};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

use tickcast_wsframe::{close, handshake, put_frame, Frame, Opcode, Rules, FIN};

use crate::nats::{self, ServerOp};
use crate::tls::ClientTls;

/// Which server the connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// tickcast's own WebSocket protocol.
    Tickcast,
    /// The NATS protocol over nats-server's WebSocket listener.
    Nats,
}

/// The largest frame (or NATS message) accepted; ticks are ~130 bytes, a
/// subscription acknowledgement of a few thousand topics some tens of KiB.
const MAX_FRAME: usize = 1 << 20;

/// A client's rules for the server's frames, with that limit.
const RULES: Rules = Rules::client(MAX_FRAME as u64);

/// How a connection is opened.
#[derive(Debug, Clone, Default)]
pub struct ConnOptions {
    /// Source address to bind before connecting (None: the kernel picks).
    pub source: Option<Ipv4Addr>,
    /// `SO_RCVBUF` to set, to make a stalled reader back up quickly.
    pub rcvbuf: Option<u32>,
    /// Initial read buffer size (grows to fit a large frame).
    pub read_buf: usize,
    /// Connect over TLS (wss) with this configuration.
    pub tls: Option<ClientTls>,
}

/// Something the server said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A tick (only its routing fields).
    Tick(TickHeader<'a>),
    /// The subscription request was acknowledged; the `subscribed` ack's
    /// payload, for a resuming client to read the `epoch` from (decoded
    /// again there: one per subscribe, rare next to ticks).
    Ack(&'a [u8]),
    /// A continuity notice (`recovered`, `reset` or `gap`), its payload to
    /// decode with `decode_server_frame` (one per symbol of a resume, or per
    /// skipped run of ticks).
    Continuity(&'a [u8]),
    /// A request was refused (error reply).
    Refused(&'a [u8]),
    /// The server sent a close frame (with its status code, if any).
    Closed(Option<u16>),
    /// A message that is neither a tick nor an expected control message.
    Other,
}

/// The byte-level half of a connection: turns bytes into [`Event`]s, keeping
/// a partial frame for the next read, and queues replies. Separate from the
/// socket so it can be tested (and measured) on bytes alone.
#[derive(Debug)]
pub struct Decoder {
    /// Bytes not yet parsed: the upgrade response, or a partial frame.
    buf: Vec<u8>,
    /// `buf`'s size when it was created, to shrink back to.
    initial_len: usize,
    start: usize,
    end: usize,
    /// Everything else parsing needs, apart from the bytes, so bytes read
    /// into a buffer shared with other connections parse the same way.
    parser: FrameParser,
}

/// The connection state frames are parsed with.
#[derive(Debug)]
struct FrameParser {
    protocol: Protocol,
    /// A fragmented WebSocket message being reassembled (rare).
    fragments: Vec<u8>,
    /// NATS bytes left over from previous frames (a line split across frames).
    nats_stream: Vec<u8>,
    /// Frames to send back (pongs, close echo).
    replies: Vec<u8>,
    mask: [u8; 4],
}

impl Decoder {
    /// A decoder with a `read_buf`-byte buffer, masking replies with `mask`.
    pub fn new(protocol: Protocol, read_buf: usize, mask: [u8; 4]) -> Self {
        let initial_len = read_buf.clamp(256, MAX_FRAME);
        Self {
            buf: vec![0; initial_len],
            initial_len,
            start: 0,
            end: 0,
            parser: FrameParser {
                protocol,
                fragments: Vec::new(),
                nats_stream: Vec::new(),
                replies: Vec::new(),
                mask,
            },
        }
    }

    /// Free space to read into, after moving a partial frame to the front
    /// and growing the buffer if one frame does not fit (up to the limit).
    pub fn spare(&mut self) -> Result<&mut [u8]> {
        if self.start > 0 {
            // Move the partial frame (a few bytes) to the front to make room.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            if self.buf.len() >= MAX_FRAME + 16 {
                bail!("frame larger than {MAX_FRAME} bytes");
            }
            let grown = (self.buf.len() * 2).min(MAX_FRAME + 16);
            self.buf.resize(grown, 0);
        }
        Ok(&mut self.buf[self.end..])
    }

    /// Marks `n` bytes of [`Decoder::spare`] as filled.
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Copies `bytes` in (for tests and benchmarks without a socket).
    pub fn push(&mut self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            let spare = self.spare()?;
            let n = spare.len().min(bytes.len());
            spare[..n].copy_from_slice(&bytes[..n]);
            self.filled(n);
            bytes = &bytes[n..];
        }
        Ok(())
    }

    /// Checks for a complete `101` upgrade response; consumes it if there.
    fn take_upgrade_response(&mut self) -> Result<bool> {
        match handshake::parse_upgrade_response(&self.buf[self.start..self.end])? {
            Some(head) => {
                self.start += head;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Handles every complete frame buffered, calling `on` for each event.
    /// Replies (pongs, close echo) are queued for [`Decoder::replies`].
    pub fn process(&mut self, on: &mut impl FnMut(Event<'_>)) -> Result<()> {
        self.start += self.parser.frames(&self.buf[self.start..self.end], on)?;
        Ok(())
    }

    /// Handles `input`, just read, calling `on` for each event: parsed where
    /// it lies unless a partial frame is waiting, and whatever partial frame
    /// it ends with is kept for the next call.
    pub fn feed(&mut self, input: &[u8], on: &mut impl FnMut(Event<'_>)) -> Result<()> {
        if self.start < self.end {
            self.push(input)?;
            self.process(on)?;
            if self.start == self.end && self.buf.len() > self.initial_len {
                // A burst made it grow: give the memory back.
                self.buf = vec![0; self.initial_len];
                (self.start, self.end) = (0, 0);
            }
            return Ok(());
        }
        self.start = 0;
        self.end = 0;
        let used = self.parser.frames(input, on)?;
        self.push(&input[used..])
    }

    /// Replies waiting to be sent.
    pub fn replies(&self) -> &[u8] {
        &self.parser.replies
    }
}

impl FrameParser {
    /// Parses the complete frames at the start of `bytes`; returns how many
    /// bytes they took.
    fn frames(&mut self, bytes: &[u8], on: &mut impl FnMut(Event<'_>)) -> Result<usize> {
        let Self {
            protocol,
            fragments,
            nats_stream,
            replies,
            mask,
        } = self;
        let mut start = 0;
        while let Some((frame, used)) = Frame::parse(&bytes[start..], &RULES)? {
            start += used;
            let (opcode, payload) = (frame.opcode, frame.payload);
            match opcode {
                Opcode::Continuation | Opcode::Text | Opcode::Binary => {
                    let fin = frame.header.fin();
                    // A fragmented message is rare: copy it together first.
                    let whole: &[u8] = if fin && fragments.is_empty() {
                        payload
                    } else {
                        if fragments.len() + payload.len() > MAX_FRAME {
                            bail!("fragmented message larger than {MAX_FRAME} bytes");
                        }
                        fragments.extend_from_slice(payload);
                        if !fin {
                            continue;
                        }
                        fragments
                    };
                    match protocol {
                        Protocol::Tickcast if opcode == Opcode::Text => on(Event::Other),
                        Protocol::Tickcast => on(tickcast_event(whole)),
                        Protocol::Nats => nats_events(whole, nats_stream, replies, *mask, on)?,
                    }
                    fragments.clear();
                }
                Opcode::Ping => put_frame(replies, FIN | Opcode::Pong as u8, Some(*mask), payload),
                Opcode::Pong => {}
                Opcode::Close => {
                    let code = close::parse(payload)?.map(|c| c.code);
                    let echo = code.map(|c| close::payload(c, ""));
                    put_frame(
                        replies,
                        FIN | Opcode::Close as u8,
                        Some(*mask),
                        echo.as_deref().unwrap_or_default(),
                    );
                    on(Event::Closed(code));
                }
            }
        }
        Ok(start)
    }
}

/// A connection's byte stream.
#[derive(Debug)]
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(bytes).await,
            // rustls keeps what the socket did not take until a flush.
            Stream::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
        }
    }

    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf).await,
            Stream::Tls(s) => match s.read(buf).await {
                // A server that closes without close_notify (it cut us):
                // the end of the stream, as over TCP.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
        }
    }
}

/// A subscriber connection after the WebSocket upgrade.
#[derive(Debug)]
pub struct SubConn {
    stream: Stream,
    decoder: Decoder,
}

impl SubConn {
    /// Connects to `addr` and completes the WebSocket upgrade.
    pub async fn connect(
        addr: SocketAddr,
        protocol: Protocol,
        opts: &ConnOptions,
        id: u32,
    ) -> Result<Self> {
        let socket = TcpSocket::new_v4().context("socket")?;
        if let Some(rcvbuf) = opts.rcvbuf {
            socket.set_recv_buffer_size(rcvbuf).context("SO_RCVBUF")?;
        }
        if let Some(ip) = opts.source {
            bind_without_port(&socket, ip)?;
        }
        let stream = socket
            .connect(addr)
            .await
            .with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true).context("TCP_NODELAY")?;
        let stream = match &opts.tls {
            Some(tls) => Stream::Tls(Box::new(tls.connect(stream).await?)),
            None => Stream::Plain(stream),
        };
        // Any mask value is valid; varying it per connection is enough.
        let mask = id.wrapping_mul(0x9e37_79b9).to_be_bytes();
        let mut conn = SubConn {
            stream,
            decoder: Decoder::new(protocol, opts.read_buf, mask),
        };
        let path = match protocol {
            Protocol::Tickcast => "/ws",
            Protocol::Nats => "/",
        };
        let request = handshake::upgrade_request(&addr.to_string(), path);
        conn.stream
            .write_all(request.as_bytes())
            .await
            .context("send upgrade")?;
        loop {
            if conn.read_some().await? == 0 {
                bail!("server closed during the upgrade");
            }
            if conn.decoder.take_upgrade_response()? {
                return Ok(conn);
            }
        }
    }

    /// Sends the subscription request for `topics`; the acknowledgement
    /// arrives later as [`Event::Ack`].
    pub async fn subscribe(&mut self, topics: &[String]) -> Result<()> {
        match self.decoder.parser.protocol {
            Protocol::Tickcast => {
                let request = ClientRequest::subscribe(topics.to_vec());
                self.send_request(&request).await
            }
            Protocol::Nats => {
                let commands = nats::subscribe_commands(topics);
                self.send_frame(Opcode::Binary, &commands, "send subscribe")
                    .await
            }
        }
    }

    /// Sends a tickcast subscribe for `topics` that resumes from `options`
    /// (`epoch`, and `since`: the last seq held per symbol); the ack arrives
    /// as [`Event::Ack`], then a `recovered` or `reset` per position as
    /// [`Event::Continuity`].
    pub async fn resume(&mut self, topics: &[String], options: SubscribeOptions) -> Result<()> {
        anyhow::ensure!(
            self.decoder.parser.protocol == Protocol::Tickcast,
            "a resume is tickcast's request"
        );
        let request = ClientRequest::Subscribe {
            topics: topics.to_vec(),
            options,
        };
        self.send_request(&request).await
    }

    /// Sends a tickcast unsubscribe request for `topics` (acknowledged, like
    /// a subscribe, by [`Event::Ack`]).
    pub async fn unsubscribe(&mut self, topics: &[String]) -> Result<()> {
        anyhow::ensure!(
            self.decoder.parser.protocol == Protocol::Tickcast,
            "unsubscribe is tickcast's request"
        );
        let request = ClientRequest::Unsubscribe {
            topics: topics.to_vec(),
        };
        self.send_request(&request).await
    }

    /// Sends a tickcast control request as a JSON text frame.
    async fn send_request(&mut self, request: &ClientRequest) -> Result<()> {
        let json = request.to_json();
        self.send_frame(Opcode::Text, json.as_bytes(), "send request")
            .await
    }

    /// Starts the closing handshake: sends a close frame with `code`. The
    /// server's echo arrives as [`Event::Closed`], then the end of stream.
    pub async fn send_close(&mut self, code: u16) -> Result<()> {
        let payload = close::payload(code, "");
        self.send_frame(Opcode::Close, &payload, "send close").await
    }

    /// Sends a ping (a client's keepalive); the pong arrives in order
    /// behind whatever the server queued before it.
    pub async fn send_ping(&mut self, payload: &[u8]) -> Result<()> {
        self.send_frame(Opcode::Ping, payload, "send ping").await
    }

    /// Sends one masked, unfragmented frame.
    async fn send_frame(&mut self, opcode: Opcode, payload: &[u8], what: &str) -> Result<()> {
        let mut frame = Vec::new();
        let mask = Some(self.decoder.parser.mask);
        put_frame(&mut frame, FIN | opcode as u8, mask, payload);
        self.stream.write_all(&frame).await.context(what.to_owned())
    }

    /// Drops the connection abruptly: `SO_LINGER` 0 makes the close send a
    /// TCP reset instead of a FIN, with no close frame, as a crashed client
    /// or a dropped network path does.
    pub fn reset(self) -> Result<()> {
        self.stream.tcp().set_zero_linger().context("SO_LINGER 0")?;
        drop(self);
        Ok(())
    }

    /// For NATS: `CONNECT` then `PING`, so an idle connection is fully set up
    /// (and acknowledged by `PONG`) without subscribing to anything.
    pub async fn hello(&mut self) -> Result<()> {
        if self.decoder.parser.protocol == Protocol::Nats {
            self.subscribe(&[]).await?;
        }
        Ok(())
    }

    /// Whether the connection is TLS (read it with [`SubConn::read_some`]).
    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// Waits until there is something to read (or the connection ended).
    /// Plain TCP only: a TLS connection may hold decrypted bytes while its
    /// socket has none.
    pub async fn readable(&self) -> Result<()> {
        let Stream::Plain(stream) = &self.stream else {
            bail!("readable() is for plain connections; read TLS with read_some()");
        };
        stream.readable().await.context("wait for data")
    }

    /// Reads what is there into `buf` without waiting: `None` if nothing
    /// was (a spurious wake-up), `Some(0)` if the server closed. Plain TCP
    /// only, as [`SubConn::readable`].
    pub fn try_read(&mut self, buf: &mut [u8]) -> Result<Option<usize>> {
        let Stream::Plain(stream) = &self.stream else {
            bail!("try_read() is for plain connections; read TLS with read_some()");
        };
        match stream.try_read(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(anyhow::Error::new(e).context("read")),
        }
    }

    /// See [`Decoder::feed`].
    pub fn feed(&mut self, input: &[u8], on: &mut impl FnMut(Event<'_>)) -> Result<()> {
        self.decoder.feed(input, on)
    }

    /// Reads once into the connection's own buffer and returns the bytes
    /// read; 0 means the server closed the connection. For set-up and idle
    /// connections; under load use [`SubConn::try_read`].
    pub async fn read_some(&mut self) -> Result<usize> {
        let spare = self.decoder.spare()?;
        let n = self.stream.read(spare).await.context("read")?;
        self.decoder.filled(n);
        Ok(n)
    }

    /// See [`Decoder::process`].
    pub fn process(&mut self, on: &mut impl FnMut(Event<'_>)) -> Result<()> {
        self.decoder.process(on)
    }

    /// Sends any queued replies.
    pub async fn flush_replies(&mut self) -> Result<()> {
        if !self.decoder.parser.replies.is_empty() {
            self.stream
                .write_all(&self.decoder.parser.replies)
                .await
                .context("send reply")?;
            self.decoder.parser.replies.clear();
        }
        Ok(())
    }
}

/// The routing fields of a tick: the fast canonical-order peek, else a full
/// decode (a tick from another encoder).
fn tick_header(payload: &[u8]) -> Option<TickHeader<'_>> {
    TickHeader::peek(payload).or_else(|| {
        TickRef::decode(payload).ok().map(|t| TickHeader {
            sym: t.sym.as_bytes(),
            seq: t.seq,
            ts: t.ts,
        })
    })
}

/// Classifies one tickcast binary message: a tick, or a control message.
fn tickcast_event(payload: &[u8]) -> Event<'_> {
    if let Some(header) = tick_header(payload) {
        return Event::Tick(header);
    }
    match decode_server_frame(payload) {
        Ok(Incoming::Control(ServerMessage::Subscribed { .. })) => Event::Ack(payload),
        Ok(Incoming::Control(ServerMessage::Error { .. })) => Event::Refused(payload),
        Ok(Incoming::Control(
            ServerMessage::Recovered { .. }
            | ServerMessage::Reset { .. }
            | ServerMessage::Gap { .. },
        )) => Event::Continuity(payload),
        _ => Event::Other,
    }
}

/// Feeds one WebSocket payload into the NATS byte stream and emits the
/// operations it completes. Parses straight from the frame when nothing is
/// carried over (the common case) and copies only a split tail.
fn nats_events(
    payload: &[u8],
    carry: &mut Vec<u8>,
    replies: &mut Vec<u8>,
    mask: [u8; 4],
    on: &mut impl FnMut(Event<'_>),
) -> Result<()> {
    let mut handle = |bytes: &[u8]| -> Result<usize> {
        let mut pos = 0;
        while let Some((op, used)) = nats::parse_op(&bytes[pos..])? {
            pos += used;
            match op {
                ServerOp::Msg { payload, .. } => {
                    on(tick_header(payload).map_or(Event::Other, Event::Tick))
                }
                ServerOp::Ping => {
                    put_frame(replies, FIN | Opcode::Binary as u8, Some(mask), b"PONG\r\n")
                }
                ServerOp::Pong => on(Event::Ack(&[])),
                ServerOp::Err(msg) => on(Event::Refused(msg)),
                ServerOp::Info | ServerOp::Ok => {}
            }
        }
        Ok(pos)
    };
    if carry.is_empty() {
        let used = handle(payload)?;
        carry.extend_from_slice(&payload[used..]);
    } else {
        carry.extend_from_slice(payload);
        let used = handle(carry)?;
        carry.drain(..used);
    }
    Ok(())
}

/// Binds `socket` to `ip` and lets the kernel choose the port only at
/// `connect`, by (address, port) 4-tuple, instead of reserving one at
/// `bind`: without `IP_BIND_ADDRESS_NO_PORT` every bound socket would use up
/// one of the ~28k ephemeral ports for good, capping the idle run.
fn bind_without_port(socket: &TcpSocket, ip: Ipv4Addr) -> Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: a valid socket fd, a pointer to a live c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("IP_BIND_ADDRESS_NO_PORT");
    }
    socket
        .bind(SocketAddr::V4(SocketAddrV4::new(ip, 0)))
        .with_context(|| format!("bind {ip}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickcast_protocol::{ErrorCode, Tick};
    use tickcast_wsframe::Header;

    fn server_frame(opcode: Opcode, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        put_frame(
            &mut out,
            if fin { FIN } else { 0 } | opcode as u8,
            None,
            payload,
        );
        out
    }

    /// A masked, unfragmented frame, as the decoder queues its replies.
    fn reply(opcode: Opcode, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut out = Vec::new();
        put_frame(&mut out, FIN | opcode as u8, Some(mask), payload);
        out
    }

    fn tick(seq: u64) -> Vec<u8> {
        Tick {
            sym: "AAPL".into(),
            seq,
            ts: 1_763_900_000_000_000_000 + seq,
            bid: 1.0,
            ask: 1.01,
            last: 1.0,
            bid_size: 1,
            ask_size: 1,
            last_size: 1,
            volume: seq,
            orig_ts: None,
        }
        .to_vec()
    }

    fn events(dec: &mut Decoder) -> Vec<String> {
        let mut out = Vec::new();
        dec.process(&mut |e| {
            out.push(match e {
                Event::Tick(h) => format!("tick {} {}", String::from_utf8_lossy(h.sym), h.seq),
                Event::Ack(_) => "Ack".to_owned(),
                Event::Continuity(_) => "Continuity".to_owned(),
                other => format!("{other:?}"),
            })
        })
        .unwrap();
        out
    }

    #[test]
    fn tickcast_frames_become_events_even_fed_byte_by_byte() {
        let mut stream = Vec::new();
        let ack = ServerMessage::subscribed(vec!["AAPL".into()]);
        stream.extend(server_frame(Opcode::Binary, true, &ack.to_msgpack()));
        stream.extend(server_frame(Opcode::Binary, true, &tick(1)));
        let two = tick(2);
        stream.extend(server_frame(Opcode::Binary, false, &two[..50]));
        stream.extend(server_frame(Opcode::Ping, true, b"hb"));
        stream.extend(server_frame(Opcode::Continuation, true, &two[50..]));
        let refusal = ServerMessage::Error {
            code: ErrorCode::InvalidTopic,
            message: "no".into(),
        };
        stream.extend(server_frame(Opcode::Binary, true, &refusal.to_msgpack()));
        let recovered = ServerMessage::Recovered {
            sym: "AAPL".into(),
            ticks: 3,
            to: 5,
        };
        stream.extend(server_frame(Opcode::Binary, true, &recovered.to_msgpack()));
        stream.extend(server_frame(Opcode::Text, true, b"hello"));
        stream.extend(server_frame(Opcode::Close, true, &1008u16.to_be_bytes()));
        let mut dec = Decoder::new(Protocol::Tickcast, 256, [9, 8, 7, 6]);
        let mut seen = Vec::new();
        for b in &stream {
            dec.push(std::slice::from_ref(b)).unwrap();
            seen.extend(events(&mut dec));
        }
        assert_eq!(seen[..3], ["Ack", "tick AAPL 1", "tick AAPL 2"]);
        assert!(seen[3].starts_with("Refused"));
        assert_eq!(seen[4..], ["Continuity", "Other", "Closed(Some(1008))"]);
        let want = [
            reply(Opcode::Pong, b"hb", [9, 8, 7, 6]),
            reply(Opcode::Close, &1008u16.to_be_bytes(), [9, 8, 7, 6]),
        ]
        .concat();
        assert_eq!(dec.replies(), &want[..]);
    }

    #[test]
    fn feeding_reads_split_anywhere_gives_the_same_events() {
        let mut stream = Vec::new();
        for seq in 1..=40 {
            stream.extend(server_frame(Opcode::Binary, true, &tick(seq)));
        }
        let want: Vec<String> = (1..=40).map(|seq| format!("tick AAPL {seq}")).collect();
        for chunk in [1, 7, 130, 131, 1000, stream.len()] {
            let mut dec = Decoder::new(Protocol::Tickcast, 256, [0; 4]);
            let mut seen = Vec::new();
            for part in stream.chunks(chunk) {
                dec.feed(part, &mut |e| {
                    if let Event::Tick(h) = e {
                        seen.push(format!("tick {} {}", String::from_utf8_lossy(h.sym), h.seq));
                    }
                })
                .unwrap();
            }
            assert_eq!(seen, want, "reads of {chunk} bytes");
            assert_eq!(dec.start, dec.end, "nothing left over");
            assert_eq!(dec.buf.len(), 256, "the buffer shrank back");
        }
    }

    #[test]
    fn nats_lines_split_across_frames_are_joined() {
        let payload = tick(5);
        let mut nats_bytes = b"INFO {}\r\nPONG\r\nPING\r\n".to_vec();
        nats_bytes.extend_from_slice(format!("MSG ticks.AAPL 1 {}\r\n", payload.len()).as_bytes());
        nats_bytes.extend_from_slice(&payload);
        nats_bytes.extend_from_slice(b"\r\n-ERR 'Slow Consumer'\r\n");
        let mut dec = Decoder::new(Protocol::Nats, 4096, [1, 2, 3, 4]);
        for (i, chunk) in nats_bytes.chunks(7).enumerate() {
            let op = if i == 0 { Opcode::Text } else { Opcode::Binary };
            dec.push(&server_frame(op, true, chunk)).unwrap();
        }
        let seen = events(&mut dec);
        assert_eq!(seen[..2], ["Ack", "tick AAPL 5"]);
        assert!(seen[2].starts_with("Refused"));
        let pong = reply(Opcode::Binary, b"PONG\r\n", [1, 2, 3, 4]);
        assert_eq!(dec.replies(), &pong[..]);
    }

    #[test]
    fn a_frame_larger_than_the_buffer_grows_it_and_garbage_is_an_error() {
        let big =
            ServerMessage::subscribed((0..200).map(|i| format!("SYM{i}")).collect()).to_msgpack();
        let mut dec = Decoder::new(Protocol::Tickcast, 256, [0; 4]);
        dec.push(&server_frame(Opcode::Binary, true, &big)).unwrap();
        assert_eq!(events(&mut dec), ["Ack"]);
        let masked = Header {
            first: FIN | Opcode::Binary as u8,
            mask: Some([0; 4]),
            payload_len: 0,
        };
        dec.push(&masked.encode()).unwrap();
        assert!(dec.process(&mut |_| {}).is_err(), "masked server frame");
    }
}
