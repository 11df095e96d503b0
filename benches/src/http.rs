//! A minimal blocking HTTP/1.1 GET, for the broker's `/healthz`, `/stats` and
//! `/symbols` between steps. A few requests per run do not justify an HTTP
//! client dependency; this reads a `Connection: close` response to the end,
//! bounded in size and time, over TCP or (a broker with `--tls-cert`)
//! through a blocking rustls session.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::tls::{server_name, ClientTls};

/// The largest response body accepted.
const MAX_RESPONSE: u64 = 16 * 1024 * 1024;

/// GETs `path` from `addr` (over TLS with `tls`) and returns the body of a
/// 200 response.
pub fn get(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
    tls: Option<&ClientTls>,
) -> Result<Vec<u8>> {
    let stream =
        TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connect {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let response = match tls {
        None => exchange(stream, &request),
        Some(tls) => {
            let session = rustls::ClientConnection::new(tls.config(), server_name())?;
            exchange(rustls::StreamOwned::new(session, stream), &request)
        }
    }
    .with_context(|| format!("GET {path}"))?;
    let head_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("response has no complete head")?;
    let head = String::from_utf8_lossy(&response[..head_end]).to_ascii_lowercase();
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("GET {path}: {status}");
    }
    let body = &response[head_end + 4..];
    if head.contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        Ok(body.to_vec())
    }
}

/// Sends `request` and reads the response to its end.
fn exchange(mut stream: impl Read + Write, request: &str) -> Result<Vec<u8>> {
    // One write: `write!` straight onto a socket may send the request in
    // pieces, and a server that reads once and closes then resets the
    // connection under our read.
    stream.write_all(request.as_bytes())?;
    stream.flush()?;
    let mut response = Vec::new();
    match stream.take(MAX_RESPONSE).read_to_end(&mut response) {
        Ok(_) => Ok(response),
        // A TLS server that closes without close_notify: the response is
        // whole (Connection: close), only the TLS goodbye is missing.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {
            Ok(response)
        }
        Err(e) => Err(e.into()),
    }
}

/// Decodes a chunked body (`<hex len>\r\n<bytes>\r\n` … `0\r\n\r\n`).
fn dechunk(mut body: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("truncated chunk size")?;
        let size_text = std::str::from_utf8(&body[..eol])?;
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16).context("bad chunk size")?;
        if size == 0 {
            return Ok(out);
        }
        let chunk = body
            .get(eol + 2..eol + 2 + size)
            .context("truncated chunk")?;
        out.extend_from_slice(chunk);
        body = body.get(eol + 4 + size..).context("truncated chunk end")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn serve_once(response: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            // Read the whole request head, so closing leaves nothing unread
            // (which would reset the connection under the client).
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            s.write_all(response).unwrap();
        });
        addr
    }

    #[test]
    fn plain_and_chunked_bodies_and_errors() {
        let t = Duration::from_secs(5);
        let plain = serve_once(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}");
        assert_eq!(get(plain, "/stats", t, None).unwrap(), b"{}");
        let chunked = serve_once(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
        assert_eq!(get(chunked, "/", t, None).unwrap(), b"abcde");
        let missing = serve_once(b"HTTP/1.1 404 Not Found\r\n\r\n");
        assert!(get(missing, "/nope", t, None).is_err());
    }
}
