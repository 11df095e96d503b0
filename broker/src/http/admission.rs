//! Who may hold a socket on the client port, checked at accept before a
//! byte is read.
//!
//! Every socket costs a file descriptor, and the process has a fixed number
//! (20,000 on the machines we test on). Without limits, a few thousand
//! connections that send nothing, or dribble header lines, lock every real
//! client out. So:
//! - **per address** (`--max-connections-per-ip`): connections from one IP
//!   are counted from accept to close, through the upgrade (the session
//!   keeps its connection's [`Ticket`]);
//! - **unfinished handshakes** (`--max-handshakes`): connections that have
//!   not upgraded are counted until they do or close (the HTTP task keeps
//!   the [`Handshake`]);
//! - the **deadline** for the request head (`--handshake-timeout`) is
//!   hyper's header-read timeout, set where the connection is served.
//!
//! A refused connection gets a canned `503` and is closed by [`refuse`],
//! which takes at most [`REFUSE_WITHIN`] and runs for at most
//! [`MAX_REFUSING`] sockets at once (past that they are just closed), so
//! refusing cannot itself pile up.
//!
//! Locking: one `parking_lot` mutex over the per-address counts, held for
//! one map update at accept and one at close, never across an await. The
//! handshake count is an atomic.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a refusal may take: write the 503, then read what the client
/// sent until it closes, so our close is a FIN and not a reset that could
/// destroy the answer before the client reads it.
pub const REFUSE_WITHIN: Duration = Duration::from_secs(1);

/// Sockets being refused at once, at most.
pub const MAX_REFUSING: usize = 256;

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Its address holds `--max-connections-per-ip` connections.
    PerIp,
    /// `--max-handshakes` connections have not upgraded yet.
    Handshakes,
}

impl Refused {
    fn reason(self) -> &'static str {
        match self {
            Refused::PerIp => "too many connections from this address",
            Refused::Handshakes => "too many connections in their handshake",
        }
    }
}

/// The counts and limits (one per broker, shared by the accept loop and
/// every connection's guards).
#[derive(Debug)]
pub struct Admission {
    max_per_ip: usize,
    max_handshakes: usize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    handshakes: AtomicUsize,
    refusing: AtomicUsize,
}

/// A connection's place in its address's count, held until it closes.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    /// None when addresses are not counted.
    ip: Option<IpAddr>,
}

/// A connection's place among the unfinished handshakes, held by its HTTP
/// task until it upgrades or closes.
#[derive(Debug)]
pub struct Handshake(Arc<Admission>);

impl Admission {
    /// Limits of `max_per_ip` connections per address (0: none) and
    /// `max_handshakes` unfinished handshakes.
    pub fn new(max_per_ip: usize, max_handshakes: usize) -> Arc<Self> {
        Arc::new(Self {
            max_per_ip,
            max_handshakes,
            per_ip: Mutex::new(HashMap::new()),
            handshakes: AtomicUsize::new(0),
            refusing: AtomicUsize::new(0),
        })
    }

    /// Admits a connection from `ip`, or says why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<(Ticket, Handshake), Refused> {
        let pending = self.handshakes.fetch_add(1, Ordering::Relaxed);
        let handshake = Handshake(self.clone());
        if pending >= self.max_handshakes {
            return Err(Refused::Handshakes);
        }
        if self.max_per_ip == 0 {
            let ticket = Ticket {
                admission: self.clone(),
                ip: None,
            };
            return Ok((ticket, handshake));
        }
        // An IPv4 client of a dual-stack socket is one address, however written.
        let ip = ip.to_canonical();
        {
            let mut counts = self.per_ip.lock();
            let count = counts.entry(ip).or_insert(0);
            if *count >= self.max_per_ip {
                return Err(Refused::PerIp);
            }
            *count += 1;
        }
        let ticket = Ticket {
            admission: self.clone(),
            ip: Some(ip),
        };
        Ok((ticket, handshake))
    }

    /// Connections from `ip` now.
    pub fn connections_from(&self, ip: IpAddr) -> usize {
        self.per_ip
            .lock()
            .get(&ip.to_canonical())
            .copied()
            .unwrap_or(0)
    }

    /// Connections that have not upgraded yet.
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::Relaxed)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let Some(ip) = self.ip else { return };
        let mut counts = self.admission.per_ip.lock();
        if let Some(count) = counts.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&ip);
            }
        }
    }
}

impl Drop for Handshake {
    fn drop(&mut self) {
        self.0.handshakes.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Answers a refused connection `503` with the reason and closes it,
/// within [`REFUSE_WITHIN`]; at once, with no answer, when
/// [`MAX_REFUSING`] are already being refused.
pub async fn refuse(admission: Arc<Admission>, stream: TcpStream, why: Refused) {
    if admission.refusing.fetch_add(1, Ordering::Relaxed) >= MAX_REFUSING {
        admission.refusing.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    answer_and_close(stream, "503 Service Unavailable", why.reason()).await;
    admission.refusing.fetch_sub(1, Ordering::Relaxed);
}

/// Writes a canned HTTP answer with a one-line `reason`, closes our side,
/// then reads what the client still sends until it closes, so our close is
/// a FIN and not a reset that could destroy the answer before the client
/// reads it; within [`REFUSE_WITHIN`].
pub async fn answer_and_close(mut stream: TcpStream, status: &str, reason: &str) {
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{reason}\n",
        reason.len() + 1
    );
    let _ = tokio::time::timeout(REFUSE_WITHIN, async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn addresses_are_counted_until_their_tickets_drop() {
        let a = Admission::new(2, 100);
        let first = a.admit(ip(1)).unwrap();
        let second = a.admit(ip(1)).unwrap();
        assert_eq!(a.admit(ip(1)).unwrap_err(), Refused::PerIp);
        assert!(a.admit(ip(2)).is_ok(), "another address has its own count");
        // The upgrade ends the handshake, not the connection's count.
        drop(first.1);
        assert_eq!(a.admit(ip(1)).unwrap_err(), Refused::PerIp);
        drop(first.0);
        let third = a.admit(ip(1)).unwrap();
        assert_eq!(a.connections_from(ip(1)), 2);
        drop((second, third));
        assert_eq!(a.connections_from(ip(1)), 0);
        assert!(
            a.per_ip.lock().is_empty(),
            "no entry kept for a gone address"
        );
        assert_eq!(a.handshakes(), 0);
    }

    #[test]
    fn unfinished_handshakes_are_bounded_and_ipv4_mapped_is_one_address() {
        let a = Admission::new(0, 2);
        let held = [a.admit(ip(1)).unwrap(), a.admit(ip(1)).unwrap()];
        assert_eq!(a.admit(ip(3)).unwrap_err(), Refused::Handshakes);
        assert_eq!(a.handshakes(), 2, "a refusal leaves the count as it was");
        drop(held);
        assert!(a.admit(ip(3)).is_ok());

        let b = Admission::new(1, 10);
        let _v4 = b.admit(ip(9)).unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.9".parse().unwrap();
        assert_eq!(b.admit(mapped).unwrap_err(), Refused::PerIp);
    }
}
