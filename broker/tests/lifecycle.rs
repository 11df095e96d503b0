//! A broker's life from start to exit: clean shutdown (library and the real
//! binary on SIGTERM), command-line errors, replaying a recorded feed, the
//! HdrHistogram log, and keep-alive pings that cut off silent clients.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{ingest_broker, Publisher, RawClient, Received, Subscriber, WAIT};
use feed_simulator::file::{FeedHeader, FeedWriter, HEADER_LEN};
use feed_simulator::market::{Market, MarketConfig};
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use tickcast_broker::Limits;
use tickcast_protocol::Tick;

const BINARY: &str = env!("CARGO_BIN_EXE_tickcast-broker");

/// How long the binary may take to exit after SIGTERM.
const EXIT_WITHIN: Duration = Duration::from_secs(5);

/// A loopback port that was free a moment ago (the binary cannot report
/// the port it got for `:0`).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Reads a child's pipe to the end on a thread, so a chatty child never
/// blocks on a full pipe.
fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut out = String::new();
        let _ = pipe.read_to_string(&mut out);
        out
    })
}

/// The broker binary, killed on drop if a test fails before it exits.
struct BrokerProcess {
    child: Child,
    addr: SocketAddr,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

/// How a process ended and what it printed.
struct Exited {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl BrokerProcess {
    /// Starts the binary on a free port with `args`.
    fn spawn(args: &[&str]) -> Self {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut child = Command::new(BINARY)
            .arg("--listen")
            .arg(addr.to_string())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().map(drain);
        let stderr = child.stderr.take().map(drain);
        Self {
            child,
            addr,
            stdout,
            stderr,
        }
    }

    /// Waits until the port accepts connections.
    async fn wait_listening(&mut self) {
        let deadline = Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(self.addr).await.is_err() {
            if let Some(status) = self.child.try_wait().unwrap() {
                let out = self.wait_exit();
                panic!("broker exited early ({status}): {}", out.stderr);
            }
            assert!(
                Instant::now() < deadline,
                "broker never listened on {}",
                self.addr
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGTERM.
    fn terminate(&self) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill only sends a signal to our own child process.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    }

    /// Waits (at most [`EXIT_WITHIN`]) for the process to exit by itself.
    fn wait_exit(&mut self) -> Exited {
        let deadline = Instant::now() + EXIT_WITHIN;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "broker still running after {EXIT_WITHIN:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let join = |h: Option<JoinHandle<String>>| h.map(|h| h.join().unwrap()).unwrap_or_default();
        Exited {
            status,
            stdout: join(self.stdout.take()),
            stderr: join(self.stderr.take()),
        }
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A clean exit: status 0, the latency table on stdout, no panic.
fn assert_clean_exit(out: &Exited) {
    assert!(out.status.success(), "exit {}: {}", out.status, out.stderr);
    assert!(
        out.stdout.contains("enqueue_to_write"),
        "no summary: {}",
        out.stdout
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[tokio::test]
async fn shutdown_sends_queued_ticks_then_1001_and_frees_the_ports() {
    let broker = ingest_broker(common::limits()).await;
    let (addr, ingest) = (broker.local_addr(), broker.ingest_addr().unwrap());
    let mut one = Subscriber::connect(addr, "topics=S1").await;
    assert_eq!(one.expect_ack().await, ["S1"]);
    let mut both = Subscriber::connect(addr, "topics=S1,S2").await;
    assert_eq!(both.expect_ack().await, ["S1", "S2"]);
    let mut publisher = Publisher::connect(&broker).await;
    for _ in 0..100 {
        publisher.publish(&["S1", "S2"]).await;
    }
    common::wait_ticks_in(&broker, 200).await;

    // Nothing has been read yet: the ticks are queued when shutdown starts.
    let stopping = tokio::spawn(broker.shutdown());
    for (sub, want) in [
        (&mut one, HashMap::from([("S1".to_owned(), 100)])),
        (
            &mut both,
            HashMap::from([("S1".to_owned(), 100), ("S2".to_owned(), 100)]),
        ),
    ] {
        let total: u64 = want.values().sum();
        assert_eq!(sub.read_until(&want, true).await as u64, total);
        assert_eq!(
            sub.next().await,
            Received::Close(Some(1001), "broker shutting down".into())
        );
        assert_eq!(sub.next().await, Received::Gone);
    }
    tokio::time::timeout(WAIT, stopping).await.unwrap().unwrap();

    TcpListener::bind(addr).expect("the WebSocket port is still taken");
    TcpListener::bind(ingest).expect("the ingest port is still taken");
    // The publisher's connection is part of "everything" too.
    publisher.expect_disconnect().await;
}

#[tokio::test]
async fn sigterm_closes_clients_with_1001_and_exits_0_with_a_summary() {
    let mut broker = BrokerProcess::spawn(&["--symbols", "20", "--rate", "500"]);
    broker.wait_listening().await;
    let mut sub = Subscriber::connect(broker.addr, "topics=%2A").await;
    assert_eq!(sub.expect_ack().await, ["*"]);
    let mut last: HashMap<String, u64> = HashMap::new();
    for _ in 0..50 {
        let t = sub.expect_tick().await;
        if let Some(prev) = last.insert(t.sym.clone(), t.seq) {
            assert_eq!(t.seq, prev + 1, "{}: gap", t.sym);
        }
    }
    broker.terminate();
    let signalled = Instant::now();
    assert_eq!(sub.expect_close(1001).await, "broker shutting down");
    assert_eq!(sub.next().await, Received::Gone);
    let out = broker.wait_exit();
    assert!(signalled.elapsed() < EXIT_WITHIN);
    assert_clean_exit(&out);
}

#[tokio::test]
async fn bad_command_lines_exit_non_zero_with_an_error() {
    let cases: [(&[&str], &str); 13] = [
        (&["--rate", "-5"], "-5"),
        (&["--listen", "127.0.0.1:0", "--rate=-5"], "--rate"),
        (&["--listen", "127.0.0.1:0", "--symbols", "0"], "--symbols"),
        (&["--listen", "nonsense"], "nonsense"),
        (
            &[
                "--listen",
                "127.0.0.1:0",
                "--replay",
                "/nonexistent/feed.tick",
            ],
            "/nonexistent/feed.tick",
        ),
        (
            &["--listen", "127.0.0.1:0", "--no-such-flag"],
            "--no-such-flag",
        ),
        (&["--listen", "127.0.0.1:0", "--speed", "max"], "--replay"),
        (
            &["--listen", "127.0.0.1:0", "--send-share", "2"],
            "--send-share",
        ),
        (
            &["--listen", "127.0.0.1:0", "--send-share", "NaN"],
            "--send-share",
        ),
        (
            &["--listen", "127.0.0.1:0", "--replay-start", "on-subscribe"],
            "--replay",
        ),
        (
            &[
                "--listen",
                "127.0.0.1:0",
                "--replay",
                "x.tcf",
                "--replay-start",
                "later",
            ],
            "on-subscribe",
        ),
        (
            &["--listen", "127.0.0.1:0", "--record-rotate", "1m"],
            "--record",
        ),
        (
            &["--listen", "127.0.0.1:0", "--record", "/proc/no/such/dir"],
            "/proc/no/such/dir",
        ),
    ];
    for (args, mentions) in cases {
        let mut child = Command::new(BINARY)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = drain(child.stderr.take().unwrap());
        let deadline = Instant::now() + EXIT_WITHIN;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{args:?} was accepted: the broker kept running");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let stderr = stderr.join().unwrap();
        assert!(
            matches!(status.code(), Some(c) if c != 0),
            "{args:?}: {status}"
        );
        assert!(
            stderr.lines().any(|l| l.starts_with("error")),
            "{args:?}: no error line in {stderr:?}"
        );
        assert!(
            stderr.contains(mentions),
            "{args:?}: {stderr:?} does not mention {mentions}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// Records `count` ticks of a small simulated market with `feed_simulator`.
fn record_feed(path: &Path, count: u64) -> Vec<Tick> {
    let cfg = MarketConfig {
        symbols: 8,
        rate: 2_000.0,
        seed: 42,
        open_burst: false,
        session: false,
    };
    let mut market = Market::new(&cfg).unwrap();
    let ticks: Vec<Tick> = (0..count).map(|_| market.next_tick()).collect();
    let header = FeedHeader::simulated(8, cfg.rate, cfg.seed, count, false);
    let mut writer = FeedWriter::new(std::fs::File::create(path).unwrap(), &header).unwrap();
    for t in &ticks {
        writer.write_tick(&t.as_ref()).unwrap();
    }
    writer.finish().unwrap();
    ticks
}

/// At `--speed max` a replay is over within milliseconds of the start, before
/// any client could connect. So the recorded file reaches the broker through
/// a named pipe: the header first (the broker checks it before it serves),
/// the records only once the subscriber is in place.
#[tokio::test]
async fn max_speed_replay_delivers_every_recorded_tick() {
    const COUNT: u64 = 600;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("feed.tick");
    let recorded = record_feed(&file, COUNT);
    let bytes = std::fs::read(&file).unwrap();
    let fifo = dir.path().join("feed.fifo");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);

    let (go, go_rx) = std::sync::mpsc::channel::<()>();
    let pipe_path = fifo.clone();
    let feeder = std::thread::spawn(move || -> std::io::Result<()> {
        // Opening blocks until the broker opens the other end.
        let mut pipe = std::fs::OpenOptions::new().write(true).open(pipe_path)?;
        pipe.write_all(&bytes[..HEADER_LEN])?;
        go_rx
            .recv_timeout(WAIT)
            .map_err(|e| std::io::Error::other(format!("no go: {e}")))?;
        pipe.write_all(&bytes[HEADER_LEN..])
    });

    let mut broker = BrokerProcess::spawn(&["--replay", fifo.to_str().unwrap(), "--speed", "max"]);
    broker.wait_listening().await;
    let mut sub = Subscriber::connect(broker.addr, "topics=%2A").await;
    assert_eq!(sub.expect_ack().await, ["*"]);
    go.send(()).unwrap();

    let mut last: HashMap<String, u64> = HashMap::new();
    for want in &recorded {
        let got = sub.expect_tick().await;
        let prev = last.insert(got.sym.clone(), got.seq).unwrap_or(0);
        assert_eq!(got.seq, prev + 1, "{}: not gap-free", got.sym);
        assert_eq!(got.orig_ts, Some(want.ts), "{} {}", got.sym, got.seq);
        // Same tick as recorded, in the same order, restamped on the way out.
        assert_eq!(
            Tick {
                ts: want.ts,
                orig_ts: None,
                ..got
            },
            *want
        );
    }
    assert_eq!(last.len(), 8);
    assert!(sub.next_within(Duration::from_millis(200)).await.is_none());
    feeder.join().unwrap().unwrap();

    broker.terminate();
    let out = broker.wait_exit();
    assert_clean_exit(&out);
    assert!(
        out.stderr
            .contains(&format!("replay finished: {COUNT} ticks")),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn hdr_log_holds_tagged_interval_histograms() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("latency.hlog");
    let mut broker = BrokerProcess::spawn(&[
        "--symbols",
        "20",
        "--rate",
        "500",
        "--hdr-log",
        log.to_str().unwrap(),
    ]);
    broker.wait_listening().await;
    // A subscriber, so the enqueue → write stage has samples too.
    let mut sub = Subscriber::connect(broker.addr, "topics=%2A").await;
    assert_eq!(sub.expect_ack().await, ["*"]);
    // Read for two seconds, then until every stage has logged two
    // intervals (one a second), reading on meanwhile.
    let started = Instant::now();
    let deadline = started + WAIT;
    for _ in 0..100_000 {
        let logged = read_log(&log).unwrap_or_default();
        if started.elapsed() > Duration::from_secs(2)
            && logged.len() == 3
            && logged.values().all(|list| list.len() >= 2)
        {
            break;
        }
        assert!(Instant::now() < deadline, "log after {WAIT:?}: {logged:?}");
        sub.expect_tick().await;
    }
    broker.terminate();
    let out = broker.wait_exit();
    assert_clean_exit(&out);

    // The finished log: every line parses, every histogram is tagged.
    let intervals = read_log(&log).expect("unparsable log");
    let tags: HashSet<&str> = intervals.keys().map(String::as_str).collect();
    assert_eq!(
        tags,
        HashSet::from(["feed_to_receive", "receive_to_enqueue", "enqueue_to_write"])
    );
    for (tag, list) in &intervals {
        assert!(list.len() >= 2, "{tag}: {} intervals", list.len());
        assert!(
            list.windows(2).all(|w| w[0].0 <= w[1].0),
            "{tag}: out of order"
        );
        assert!(
            list.iter().any(|(_, max)| *max > 0.0),
            "{tag}: never a sample"
        );
    }
}

/// The interval histograms of an HdrHistogram log, by tag: (start, max).
/// `None` if the file is missing or any entry does not parse.
fn read_log(path: &Path) -> Option<HashMap<String, Vec<(Duration, f64)>>> {
    let bytes = std::fs::read(path).ok()?;
    let mut intervals: HashMap<String, Vec<(Duration, f64)>> = HashMap::new();
    for entry in IntervalLogIterator::new(&bytes) {
        if let LogEntry::Interval(h) = entry.ok()? {
            let tag = h.tag()?.as_str().to_owned();
            intervals
                .entry(tag)
                .or_default()
                .push((h.start_timestamp(), h.max()));
        }
    }
    Some(intervals)
}

#[tokio::test]
async fn silent_clients_are_pinged_then_closed_while_answering_ones_stay() {
    let broker = ingest_broker(Limits {
        ping_interval: Duration::from_millis(300),
        pong_timeout: Duration::from_millis(300),
        ..common::limits()
    })
    .await;
    let addr = broker.local_addr();
    let mut silent = RawClient::connect(addr, "topics=P1").await;
    assert_eq!(silent.next_frame().await.unwrap().opcode(), 0x2, "ack");
    let connected = Instant::now();
    let mut answering = Subscriber::connect(addr, "topics=P1").await;
    assert_eq!(answering.expect_ack().await, ["P1"]);
    // tungstenite answers pings while it is being read: read (and expect
    // nothing but pings) for longer than the silent client gets.
    let answering = tokio::spawn(async move {
        assert_eq!(
            answering.next_within(Duration::from_millis(2_500)).await,
            None
        );
        answering
    });

    let first = silent.next_frame().await.expect("connection ended");
    assert_eq!(first.opcode(), 0x9, "expected a ping, got {first:?}");
    assert_eq!(first.payload, b"tickcast");
    assert_eq!(
        silent.expect_close().await,
        (1008, "ping timeout".to_owned())
    );
    assert!(
        connected.elapsed() < Duration::from_secs(2),
        "{:?}",
        connected.elapsed()
    );
    silent.expect_end().await;

    let mut answering = answering.await.unwrap();
    assert_eq!(answering.subscribe(&["P2"]).await, ["P1", "P2"]);
    assert_eq!(broker.metrics().ping_timeouts.get(), 1);
    // The silent client never finishes the close handshake either (its
    // socket stays open): the broker must still let it go.
    let deadline = Instant::now() + WAIT;
    while broker.metrics().connections.get() != 1 {
        assert!(
            Instant::now() < deadline,
            "the silent connection was never cut"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(silent);
}
