//! A WebSocket echo server on the broker's own frame code, for conformance
//! runs: `scripts/conformance.sh` drives Autobahn's test cases against it
//! (with kosoku) to check the code that serves the broker's clients.
//!
//! Everything between the socket and a message is the broker's: the upgrade
//! and hand-over of the raw `TcpStream` (`client::upgrade::take_over`), the
//! strict reader of client frames (`client::reader::FrameReader`) and the
//! server frame builder (`fanout::frame`). The answers are the session's
//! (`client/session.rs`): a pong for a ping, the client's close code echoed
//! (RFC 6455 §5.5.1), a close with the violation's code on a protocol error.
//! Two things differ, as an echo server needs:
//!
//! - text and binary messages are sent back, each as one frame, where the
//!   broker parses them as requests;
//! - messages may be up to 16 MiB (the largest in Autobahn's 9.* cases),
//!   where the broker takes `--max-control-bytes` (4 KiB by default) and
//!   closes with 1009 past that.
//!
//! After a close frame (answered or sent) the server ends the TCP connection
//! first (§7.1.1): a FIN, then it reads and drops whatever the client still
//! sends until the client closes too, for at most the broker's close grace
//! period, so unread bytes cannot turn the close into a reset.
//!
//! ```sh
//! cargo run --release -p tickcast-broker --example echo -- 9001
//! ```
//!
//! The port is the first argument, else `ECHO_PORT`, else 9001; 0 picks a
//! free one. It listens on 127.0.0.1 only and prints
//! `echo: listening on 127.0.0.1:PORT` once bound.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, SERVER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tickcast_broker::client::reader::{close_reply_code, FrameReader, Message};
use tickcast_broker::client::upgrade;
use tickcast_broker::config::DEFAULT_CLOSE_GRACE;
use tickcast_broker::fanout::frame::{self, Opcode};
use tickcast_broker::fanout::stream::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The largest message echoed: Autobahn's largest (9.1.6, 9.2.6).
const MAX_MESSAGE: usize = 16 << 20;

/// The `Server` header of the `101`: the agent name in test reports.
const AGENT: &str = "tickcast-echo";

/// The port when neither the argument nor `ECHO_PORT` gives one.
const DEFAULT_PORT: u16 = 9001;

#[tokio::main]
async fn main() {
    let port = match std::env::args()
        .nth(1)
        .or_else(|| std::env::var("ECHO_PORT").ok())
    {
        None => DEFAULT_PORT,
        Some(arg) => match arg.parse::<u16>() {
            Ok(port) => port,
            Err(_) => {
                eprintln!("echo: not a port: {arg:?} (usage: echo [PORT])");
                std::process::exit(2);
            }
        },
    };
    let listener = match TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("echo: cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("echo: listening on {addr}"),
        Err(e) => {
            eprintln!("echo: no local address: {e}");
            std::process::exit(1);
        }
    }
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::spawn(serve_http(stream, peer));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off, as the
                // broker does, rather than spin.
                eprintln!("echo: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves one connection's HTTP until its upgrade (or its end).
async fn serve_http(stream: TcpStream, peer: SocketAddr) {
    // Echoes are single writes; Nagle would only delay them.
    let _ = stream.set_nodelay(true);
    let service = service_fn(|mut req: Request<Incoming>| async move {
        let response = match upgrade::take_over(&mut req) {
            Ok((mut response, handover)) => {
                // Test reports are named after the server's agent.
                response
                    .headers_mut()
                    .insert(SERVER, HeaderValue::from_static(AGENT));
                tokio::spawn(async move {
                    // It serves plain TCP only, so the stream is plain.
                    if let Some((Stream::Plain(stream), leftover)) = handover.stream().await {
                        echo(stream, leftover).await;
                    }
                });
                response
            }
            Err(refusal) => {
                let mut response = Response::new(Empty::new());
                *response.status_mut() = refusal.status();
                response
            }
        };
        Ok::<_, Infallible>(response)
    });
    let conn = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    if let Err(e) = conn.await {
        eprintln!("echo: {peer}: http connection ended: {e}");
    }
}

/// Echoes messages until a close frame is answered or sent, then ends the
/// TCP connection.
async fn echo(mut stream: TcpStream, leftover: Bytes) {
    let mut reader = FrameReader::new(MAX_MESSAGE, &leftover);
    drop(leftover);
    loop {
        let (reply, last) = match reader.next_message(&mut stream).await {
            Ok(Message::Text(body)) => (frame::build(Opcode::Text, &body), false),
            Ok(Message::Binary(body)) => (frame::binary(&body), false),
            Ok(Message::Ping(payload)) => (frame::pong(&payload), false),
            Ok(Message::Pong) => continue,
            Ok(Message::Close(code)) => (frame::close(close_reply_code(code), ""), true),
            Err(e) => match e.close_code() {
                Some(code) => (frame::close(code, &e.to_string()), true),
                // The client is gone (EOF, a failed read): nobody to answer.
                None => return,
            },
        };
        if stream.write_all(&reply).await.is_err() {
            return;
        }
        if last {
            break;
        }
    }
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(DEFAULT_CLOSE_GRACE, async {
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}
