//! TCP ingest: publishers speaking the ingest framing (`u32` length +
//! MessagePack tick), e.g. `feed-simulator publish`.
//!
//! Each publisher gets its own task. Every valid tick of one socket read is
//! published as one batch (at most [`MAX_BATCH`] at a time); a malformed
//! record ends that publisher, after every valid tick before it, even in the
//! same read, has been published.
//!
//! With a JWT key configured, a publisher's first record must be
//! `{"type":"auth","token":"…"}` (`PublisherRecord`) within
//! [`AUTH_WITHIN`], its token verified like a client's and carrying a `pub`
//! claim; anything else drops the publisher. Its ticks for symbols outside
//! `pub` are skipped and counted (`tickcast_ticks_unauthorized_total`), the
//! rest published; once its token expires it is dropped. With
//! `--ingest-tls` the port speaks TLS with the client port's certificate,
//! under the same handshake deadline. With `--record`, each published
//! batch's records are copied as they came (they are already in the feed
//! file's framing) and offered to the recorder.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tickcast_protocol::clock::now_ns;
use tickcast_protocol::control::PublisherRecord;
use tickcast_protocol::framing::parse_record;
use tickcast_protocol::TickRef;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::auth::entitlements::Entitlements;
use crate::auth::Verifier;
use crate::fanout::hub::{Hub, TickIn};
use crate::feed::record::Recorder;
use crate::feed::sink::MAX_BATCH;
use crate::observe::metrics::Metrics;
use crate::tls::TlsServer;

/// How long a publisher has to finish its TLS handshake and send its auth
/// record.
pub const AUTH_WITHIN: Duration = Duration::from_secs(10);

/// What the ingest port requires of publishers.
#[derive(Clone, Default)]
pub struct IngestSecurity {
    /// Tokens, when configured.
    pub auth: Option<Arc<Verifier>>,
    /// TLS (`--ingest-tls`).
    pub tls: Option<Arc<TlsServer>>,
}

/// What an authenticated publisher may do.
struct Publishing {
    allowed: Arc<Entitlements>,
    /// Unix seconds.
    expires: u64,
}

/// Read buffer of one publisher connection.
const INGEST_BUFFER: usize = 64 * 1024;

/// Accepts publishers forever, at most `max_publishers` at once (more are
/// closed at once and counted: each costs a descriptor and a 64 KiB
/// buffer); each gets its own task. The tasks belong to this one, so
/// stopping the ingest (broker shutdown) also drops every publisher
/// connection rather than leaving them feeding a stopped hub.
pub async fn run_ingest(
    listener: TcpListener,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    max_publishers: usize,
    security: IngestSecurity,
    recorder: Option<Recorder>,
) {
    let mut publishers = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            // Reap finished publishers so the set does not grow.
            Some(_) = publishers.join_next() => continue,
        };
        match accepted {
            Ok((stream, peer)) if publishers.len() >= max_publishers => {
                metrics.publishers_refused.add(1);
                warn!(%peer, max_publishers, "publisher refused: too many publishers");
                drop(stream);
            }
            Ok((stream, peer)) => {
                info!(%peer, "publisher connected");
                let _ = stream.set_nodelay(true);
                publishers.spawn(serve_publisher(
                    stream,
                    peer,
                    hub.clone(),
                    metrics.clone(),
                    security.clone(),
                    recorder.clone(),
                ));
            }
            Err(e) => {
                warn!(error = %e, "ingest accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// One publisher: its TLS handshake and its authentication when required,
/// then its ticks.
async fn serve_publisher(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    security: IngestSecurity,
    recorder: Option<Recorder>,
) {
    let Some(tls) = &security.tls else {
        return read_publisher(stream, peer, hub, metrics, security.auth, recorder).await;
    };
    match tokio::time::timeout(AUTH_WITHIN, tls.accept_publisher(stream)).await {
        Ok(Ok(stream)) => read_publisher(stream, peer, hub, metrics, security.auth, recorder).await,
        Ok(Err(e)) => {
            metrics.tls_handshake_failures.add(1);
            warn!(%peer, error = %e, "publisher TLS handshake failed");
        }
        Err(_) => {
            metrics.tls_handshake_failures.add(1);
            warn!(%peer, "publisher TLS handshake timed out");
        }
    }
}

/// Reads a publisher's first record, which must be a valid token with a
/// `pub` claim; `None` (logged, counted) if it is not.
async fn authenticate<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    peer: std::net::SocketAddr,
    verifier: &Verifier,
    metrics: &Metrics,
) -> Option<(Publishing, usize)> {
    let read = async {
        loop {
            match parse_record(buf) {
                Ok(Some((payload, len))) => {
                    return Ok(Some((PublisherRecord::parse(payload), len)))
                }
                Ok(None) => {}
                Err(e) => return Err(e.to_string()),
            }
            match stream.read_buf(buf).await {
                Ok(0) | Err(_) => return Ok(None),
                Ok(_) => {}
            }
        }
    };
    let refused = |why: &str| {
        metrics.auth_refused.add(1);
        metrics.publishers_dropped.add(1);
        warn!(%peer, "publisher refused: {why}");
        None
    };
    let (record, len) = match tokio::time::timeout(AUTH_WITHIN, read).await {
        Err(_) => return refused("no auth record in time"),
        Ok(Err(e)) => return refused(&format!("bad first record: {e}")),
        Ok(Ok(None)) => return refused("gone before authenticating"),
        Ok(Ok(Some(got))) => got,
    };
    let Some(PublisherRecord::Auth { token }) = record else {
        return refused("the first record must be {\"type\":\"auth\",\"token\":…}");
    };
    match verifier.verify(&token) {
        Err(e) => refused(&e.to_string()),
        Ok(grant) => match grant.publish {
            None => refused("the token has no `pub` claim"),
            Some(allowed) => {
                info!(%peer, user = %grant.user, "publisher authenticated");
                Some((
                    Publishing {
                        allowed,
                        expires: grant.expires,
                    },
                    len,
                ))
            }
        },
    }
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Reads one publisher until it disconnects or sends something malformed.
/// A bad record ends the connection, but every valid tick before it, even in
/// the same read, is published first.
async fn read_publisher<S: AsyncRead + Unpin>(
    mut stream: S,
    peer: std::net::SocketAddr,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    auth: Option<Arc<Verifier>>,
    recorder: Option<Recorder>,
) {
    let mut buf = BytesMut::with_capacity(INGEST_BUFFER);
    let mut offset: u64 = 0;
    let publishing = match &auth {
        None => None,
        Some(verifier) => {
            match authenticate(&mut stream, &mut buf, peer, verifier, &metrics).await {
                Some((publishing, len)) => {
                    buf.advance(len);
                    offset = len as u64;
                    Some(publishing)
                }
                None => return,
            }
        }
    };
    // `None`: everything (no tokens, or a `pub` of `*`).
    let allowed = publishing
        .as_ref()
        .map(|p| p.allowed.clone())
        .filter(|a| !a.is_all());
    loop {
        // What the last read brought (on the first pass, whatever came in
        // with the auth record).
        if !publish_buffered(
            &mut buf,
            &mut offset,
            peer,
            &hub,
            &metrics,
            allowed.as_deref(),
            recorder.as_ref(),
        ) {
            return;
        }
        if publishing.as_ref().is_some_and(|p| unix_now() > p.expires) {
            metrics.publishers_dropped.add(1);
            warn!(%peer, "publisher token expired; disconnecting");
            return;
        }
        if buf.capacity() - buf.len() < INGEST_BUFFER / 4 {
            buf.reserve(INGEST_BUFFER);
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) => {
                if !buf.is_empty() {
                    metrics.ticks_rejected.add(1);
                    warn!(%peer, offset, bytes = buf.len(), "publisher disconnected in the middle of a record");
                } else {
                    info!(%peer, "publisher disconnected");
                }
                return;
            }
            Ok(_) => {}
            Err(e) => {
                warn!(%peer, error = %e, "publisher read failed");
                return;
            }
        }
    }
}

/// Publishes every whole record in `buf` (ticks outside `allowed`, when
/// given, are skipped and counted) and drops them from it; false if a
/// record was malformed (the publisher is dropped).
fn publish_buffered(
    buf: &mut BytesMut,
    offset: &mut u64,
    peer: std::net::SocketAddr,
    hub: &Hub,
    metrics: &Metrics,
    allowed: Option<&Entitlements>,
    recorder: Option<&Recorder>,
) -> bool {
    let recv_ns = now_ns();
    // With a recorder: the framed records of the batch, as they came.
    let mut records = Vec::new();
    let publish = |batch: &mut Vec<TickIn<'_>>, records: &mut Vec<u8>| {
        hub.publish(batch);
        if let Some(recorder) = recorder {
            recorder.offer(std::mem::take(records), batch.len() as u64);
        }
        batch.clear();
    };
    let mut used = 0;
    let mut failure: Option<String> = None;
    let mut unauthorized = 0;
    let mut batch: Vec<TickIn<'_>> = Vec::with_capacity(MAX_BATCH.min(buf.len() / 64 + 1));
    loop {
        match parse_record(&buf[used..]) {
            Ok(Some((payload, len))) => match TickRef::decode(payload) {
                Ok(t) if allowed.is_some_and(|a| !a.allows(t.sym)) => {
                    unauthorized += 1;
                    used += len;
                }
                Ok(t) => {
                    if recorder.is_some() {
                        records.extend_from_slice(&buf[used..used + len]);
                    }
                    batch.push(TickIn {
                        sym: t.sym,
                        seq: t.seq,
                        ts: t.ts,
                        payload,
                        recv_ns,
                        epoch: None,
                    });
                    used += len;
                    if batch.len() == MAX_BATCH {
                        publish(&mut batch, &mut records);
                    }
                }
                Err(e) => {
                    failure = Some(format!(
                        "invalid tick at stream offset {}: {e}",
                        *offset + used as u64
                    ));
                    break;
                }
            },
            Ok(None) => break,
            Err(e) => {
                failure = Some(format!(
                    "bad record at stream offset {}: {e}",
                    *offset + used as u64
                ));
                break;
            }
        }
    }
    publish(&mut batch, &mut records);
    drop(batch);
    if unauthorized > 0 {
        metrics.ticks_unauthorized.add(unauthorized);
        warn!(%peer, unauthorized, "ticks outside the publisher's `pub` claim skipped");
    }
    if let Some(reason) = failure {
        metrics.ticks_rejected.add(1);
        metrics.publishers_dropped.add(1);
        warn!(%peer, "{reason}; disconnecting the publisher");
        return false;
    }
    buf.advance(used);
    *offset += used as u64;
    true
}
