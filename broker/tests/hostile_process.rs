//! Attacks on the broker process itself, against the real `tickcast-broker`
//! binary with its embedded feed: floods of pings from clients that never
//! read must not grow its memory past the reply bounds, nor round after
//! round once they are gone; running out of file descriptors must
//! not stop it accepting once sockets close. In both, a witness subscribed
//! to `*` (tokio-tungstenite) must see every simulated tick of every
//! symbol, one after the other, with no stall.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{client_frame, metric, RawClient, Received, Subscriber, WAIT};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};

/// The longest the witness may go without a tick (the feed sends 500 a
/// second).
const MAX_STALL: Duration = Duration::from_secs(1);

/// A `tickcast-broker` process, killed on drop.
struct BrokerProcess {
    child: Child,
    addr: SocketAddr,
    /// Its log lines (stderr), as they come.
    log: mpsc::Receiver<String>,
    /// The lines read so far.
    seen: std::cell::RefCell<Vec<String>>,
}

impl BrokerProcess {
    /// Starts the binary under `ulimit -n nofile` (soft and hard) with
    /// `args`, and waits for the address it serves.
    fn start(nofile: u32, args: &[&str]) -> Self {
        let bin = env!("CARGO_BIN_EXE_tickcast-broker");
        let script = format!("ulimit -n {nofile} && exec \"$0\" \"$@\"");
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(script)
            .arg(bin)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--symbols",
                "20",
                "--rate",
                "500",
            ])
            .args(["--writer-shards", "2"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let deadline = std::time::Instant::now() + WAIT;
        let mut seen = Vec::new();
        let addr = loop {
            let line = log
                .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
                .expect("the broker did not say where it serves");
            let addr = line
                .split("serving http://")
                .nth(1)
                .map(|rest| rest.split('/').next().unwrap().parse().unwrap());
            seen.push(line);
            if let Some(addr) = addr {
                break addr;
            }
        };
        Self {
            child,
            addr,
            log,
            seen: seen.into(),
        }
    }

    /// Resident memory, in bytes.
    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        kb * 1024
    }

    /// Whether the log has said `what` so far.
    fn logged(&self, what: &str) -> bool {
        let mut seen = self.seen.borrow_mut();
        seen.extend(self.log.try_iter());
        seen.iter().any(|l| l.contains(what))
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Follows `*` until told to stop: every symbol's ticks one after the
/// other, no stall; returns the ticks seen.
fn witness(addr: SocketAddr) -> (tokio::sync::watch::Sender<bool>, JoinHandle<u64>) {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let reader = tokio::spawn(async move {
        let mut sub = Subscriber::connect(addr, "topics=*").await;
        assert_eq!(sub.expect_ack().await, ["*"]);
        let mut last: HashMap<String, u64> = HashMap::new();
        let mut ticks = 0;
        let mut previous = Instant::now();
        while !*stopped.borrow_and_update() {
            tokio::select! {
                got = sub.next_within(WAIT) => match got {
                    Some(Received::Tick(t)) => {
                        // The first of each symbol is its snapshot.
                        if let Some(before) = last.insert(t.sym.clone(), t.seq) {
                            assert_eq!(t.seq, before + 1, "{} gap", t.sym);
                        }
                        let gap = previous.elapsed();
                        assert!(gap < MAX_STALL, "witness stalled {gap:?}");
                        previous = Instant::now();
                        ticks += 1;
                    }
                    other => panic!("witness got {other:?}"),
                },
                _ = stopped.changed() => {}
            }
        }
        ticks
    });
    (stop, reader)
}

/// Four clients that never read, each sending pings for up to 3 s; returns
/// the broker's peak RSS meanwhile, once all four are gone.
async fn flood_round(broker: &BrokerProcess, round: f64) -> u64 {
    let addr = broker.addr;
    let pings = client_frame(0x89, &[b'p'; 125], true).repeat(1_000);
    let mut floods = Vec::new();
    for _ in 0..4 {
        let pings = pings.clone();
        floods.push(tokio::spawn(async move {
            let socket = TcpSocket::new_v4().unwrap();
            socket.set_recv_buffer_size(4096).unwrap();
            let mut attacker = RawClient::connect_with(socket, addr, "").await;
            let until = Instant::now() + Duration::from_secs(3);
            let mut sent = 0u64;
            while Instant::now() < until {
                match timeout(Duration::from_millis(300), attacker.try_send(&pings)).await {
                    Ok(Ok(())) => sent += 1_000,
                    Ok(Err(_)) | Err(_) => break,
                }
            }
            sent
        }));
    }
    let mut peak = 0;
    while floods.iter().any(|f| !f.is_finished()) {
        peak = peak.max(broker.rss());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for f in floods {
        assert!(f.await.unwrap() >= 1_000, "a flood never got going");
    }
    assert_eq!(
        metric(addr, "tickcast_reply_overflows_total").await,
        4.0 * round
    );
    let deadline = Instant::now() + WAIT;
    while metric(addr, "tickcast_connections").await > 1.0 {
        assert!(
            Instant::now() < deadline,
            "the flooders are still connected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    peak
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_floods_do_not_grow_the_broker_and_what_they_took_is_reused() {
    let broker = BrokerProcess::start(4096, &[]);
    let (stop, reader) = witness(broker.addr);
    // Its first seconds grow it anyway (histograms, buffers, stacks).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = broker.rss();
    const MB: u64 = 1 << 20;
    let mut peak = 0;
    let mut after = Vec::new();
    for round in 1..=3 {
        peak = peak.max(flood_round(&broker, f64::from(round)).await);
        tokio::time::sleep(Duration::from_millis(500)).await;
        after.push(broker.rss());
    }
    eprintln!(
        "rss before {} MB, peak {} MB, after each round {:?} MB",
        before / MB,
        peak / MB,
        after.iter().map(|a| a / MB).collect::<Vec<_>>()
    );
    // Unbounded, four such clients took it past 2 GB in 8 s.
    assert!(peak < before + 64 * MB, "peak {peak} from {before}");
    // The allocator keeps what it freed for reuse rather than giving it to
    // the kernel at once: later rounds reuse it instead of growing.
    assert!(
        after[0] < before + 32 * MB,
        "after one round {} from {before}",
        after[0]
    );
    assert!(
        after[2] < after[0] + 8 * MB,
        "grew round after round: {after:?}"
    );

    stop.send(true).unwrap();
    assert!(reader.await.unwrap() > 200, "the witness saw too little");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_descriptors_does_not_stop_the_broker_accepting() {
    // 128 descriptors: the broker's own few dozen, then clients.
    let broker = BrokerProcess::start(128, &["--handshake-timeout", "60s"]);
    let addr = broker.addr;
    let (stop, reader) = witness(addr);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(broker.logged("open-file limit 128"), "capacity not logged");

    // Hogs connect and send nothing: the broker holds each until its
    // handshake deadline (a minute), and runs out of descriptors.
    let mut hogs = Vec::new();
    for _ in 0..200 {
        hogs.push(TcpStream::connect(addr).await.unwrap());
    }
    let deadline = Instant::now() + WAIT;
    while !broker.logged("accept failed") {
        assert!(Instant::now() < deadline, "never ran out of descriptors");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Out of descriptors, a new client waits in the backlog...
    let mut waiting = TcpStream::connect(addr).await.unwrap();
    let mut request = common::upgrade_request(addr, "/ws?topics=AAPL").into_bytes();
    tokio::io::AsyncWriteExt::write_all(&mut waiting, &request)
        .await
        .unwrap();
    let mut head = [0u8; 12];
    let early = timeout(
        Duration::from_millis(300),
        tokio::io::AsyncReadExt::read(&mut waiting, &mut head),
    )
    .await;
    assert!(early.is_err(), "answered while out of descriptors");

    // ...and is served once the hogs go.
    drop(hogs);
    let n = timeout(WAIT, tokio::io::AsyncReadExt::read(&mut waiting, &mut head))
        .await
        .expect("never accepted after the descriptors came back")
        .unwrap();
    assert!(head[..n].starts_with(b"HTTP/1.1 101"), "{:?}", &head[..n]);
    request.clear();
    assert!(metric(addr, "tickcast_accept_errors_total").await >= 1.0);

    stop.send(true).unwrap();
    assert!(reader.await.unwrap() > 200, "the witness saw too little");
}
