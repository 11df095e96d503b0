//! `--record DIR`: every accepted tick in feed files, rotated by size and
//! time, readable by the feed tools and replayable by a broker, even after
//! the recording broker was killed outright.

mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{metric, wait_ticks_in, Publisher, Subscriber, SHARDS, WAIT};
use feed_simulator::file::{FeedFileError, FeedReader, Source, HEADER_LEN};
use feed_simulator::inspect::{summarize, Summary};
use feed_simulator::pacing::Speed;
use tickcast_broker::{BrokerConfig, FeedConfig, Limits, RecordConfig, ReplayStart, RunningBroker};
use tickcast_protocol::Tick;

/// The feed files in `dir`, by name (which is by time).
fn recordings(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// What `feed-simulator inspect` reports on `path`.
fn inspect(path: &Path) -> Summary {
    summarize(FeedReader::open(path).unwrap(), 0)
}

/// Every tick of `path`, and the damage that ended it, if any.
fn read_all(path: &Path) -> (Vec<Tick>, Option<FeedFileError>) {
    let mut ticks = Vec::new();
    for item in FeedReader::open(path).unwrap() {
        match item {
            Ok(t) => ticks.push(t),
            Err(e) => return (ticks, Some(e)),
        }
    }
    (ticks, None)
}

/// A broker fed by publishers, recording with `rotate` and `max_bytes`.
async fn recording_broker(dir: &Path, rotate: Duration, max_bytes: u64) -> RunningBroker {
    tickcast_broker::start(BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        feed: FeedConfig::Ingest("127.0.0.1:0".parse().unwrap()),
        limits: Limits {
            writer_shards: SHARDS,
            ..Limits::default()
        },
        record: Some(RecordConfig {
            dir: dir.to_path_buf(),
            rotate,
            max_bytes,
        }),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// Replays `path` at full speed once a `*` subscriber is in, and returns
/// what the subscriber received (everything, until a quiet 300 ms).
async fn replay_through_broker(path: &Path) -> Vec<Tick> {
    let broker = tickcast_broker::start(BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        feed: FeedConfig::Replay {
            path: path.to_path_buf(),
            speed: Speed::Max,
            looping: false,
            start: ReplayStart::OnSubscribe,
        },
        limits: Limits {
            writer_shards: SHARDS,
            ..Limits::default()
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let mut sub = Subscriber::connect(broker.local_addr(), "topics=%2A").await;
    assert_eq!(sub.expect_ack().await, ["*"]);
    let mut got = Vec::new();
    while let Some(received) = sub.next_within(Duration::from_millis(300)).await {
        match received {
            common::Received::Tick(t) => got.push(t),
            other => panic!("expected ticks, got {other:?}"),
        }
    }
    broker.shutdown().await;
    got
}

/// Rotation by size: many files, each a finished feed file (its header
/// holds the count) within the limit, together every published tick in
/// order.
#[tokio::test]
async fn size_rotation_gives_several_complete_readable_files() {
    const TICKS: u64 = 3_000;
    const MAX_BYTES: u64 = 16 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let broker = recording_broker(dir.path(), Duration::from_secs(3600), MAX_BYTES).await;
    let mut publisher = Publisher::connect(&broker).await;
    let syms = ["AAPL", "MSFT", "NVDA"];
    for _ in 0..TICKS / 3 {
        publisher.publish(&syms).await;
    }
    wait_ticks_in(&broker, TICKS).await;
    broker.shutdown().await;

    let files = recordings(dir.path());
    assert!(files.len() >= 10, "only {} files", files.len());
    let mut seqs: HashMap<String, u64> = HashMap::new();
    let mut last_ts = 0;
    for file in &files {
        let size = std::fs::metadata(file).unwrap().len();
        assert!(size <= MAX_BYTES, "{}: {size} bytes", file.display());
        let summary = inspect(file);
        assert!(
            summary.damage.is_none(),
            "{}: {:?}",
            file.display(),
            summary.damage
        );
        assert_eq!(summary.header.source, Source::Imported);
        assert_eq!(
            summary.header.count,
            Some(summary.records),
            "finished header"
        );
        assert_eq!(summary.header.symbols, 3);
        assert!(summary.records > 0);
        let (ticks, damage) = read_all(file);
        assert!(damage.is_none());
        for t in ticks {
            let prev = seqs.insert(t.sym.clone(), t.seq).unwrap_or(0);
            assert_eq!(t.seq, prev + 1, "{} in {}", t.sym, file.display());
            assert!(t.ts >= last_ts, "files sort by time");
            last_ts = t.ts;
        }
    }
    assert_eq!(seqs.values().sum::<u64>(), TICKS, "every tick, once");
}

/// Rotation by time: a batch after the rotation period goes to a new file.
#[tokio::test]
async fn time_rotation_starts_a_new_file_after_the_period() {
    let dir = tempfile::tempdir().unwrap();
    let broker = recording_broker(dir.path(), Duration::from_millis(300), 1 << 30).await;
    let mut publisher = Publisher::connect(&broker).await;
    publisher.publish(&["AAPL", "MSFT"]).await;
    wait_ticks_in(&broker, 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    publisher.publish(&["AAPL"]).await;
    wait_ticks_in(&broker, 3).await;
    assert!(metric(broker.local_addr(), "tickcast_recorded_total").await <= 3.0);
    broker.shutdown().await;
    let files = recordings(dir.path());
    let counts: Vec<u64> = files.iter().map(|f| inspect(f).records).collect();
    assert_eq!(counts, [2, 1], "{files:?}");
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The broker binary under its simulated feed, recording with 64 KiB files,
/// killed with SIGKILL mid-stream: every file reads (the last one up to
/// its last complete record, its header usually never finished), and a broker
/// replays each of them up to there.
#[tokio::test]
async fn a_killed_recording_broker_leaves_files_that_read_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_tickcast-broker"))
        .args(["--listen", &addr.to_string()])
        .args(["--symbols", "20", "--rate", "4000", "--writer-shards", "1"])
        .arg("--record")
        .arg(dir.path())
        .args(["--record-max-bytes", "65536"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(child.try_wait().unwrap().is_none(), "broker exited early");
        assert!(Instant::now() < deadline, "broker never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Enough for a few rotations (~700 ticks a file) and a flush or two.
    while metric(addr, "tickcast_recorded_total").await < 2_500.0 {
        assert!(Instant::now() < deadline, "too little recorded in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap(); // SIGKILL: no shutdown, no final header.
    child.wait().unwrap();

    let files = recordings(dir.path());
    assert!(files.len() >= 2, "{files:?}");
    let (last, finished) = files.split_last().unwrap();
    for file in finished {
        let summary = inspect(file);
        assert!(
            summary.damage.is_none(),
            "{}: {:?}",
            file.display(),
            summary.damage
        );
        assert_eq!(summary.header.count, Some(summary.records));
    }
    // The kill usually lands in an open file (its header never finished);
    // it may land between finishing one file and creating the next (the
    // sync of a finished file takes milliseconds under load, CI saw it),
    // and then the last file is a finished one like the others.
    let summary = inspect(last);
    match &summary.damage {
        None => {}
        Some(FeedFileError::Truncated { offset }) => {
            assert!(*offset >= HEADER_LEN as u64);
            assert_eq!(summary.header.count, None, "a finished file is cut");
        }
        Some(other) => panic!("{}: {other}", last.display()),
    }
    if let Some(count) = summary.header.count {
        assert_eq!(count, summary.records, "{}", last.display());
    }

    // Replays: the cut file up to its damage, a finished one whole.
    for file in [last, &finished[0]] {
        let (recorded, _) = read_all(file);
        let replayed = replay_through_broker(file).await;
        assert_eq!(replayed.len(), recorded.len(), "{}", file.display());
        for (got, want) in replayed.iter().zip(&recorded) {
            assert_eq!((&got.sym, got.seq), (&want.sym, want.seq));
            assert_eq!(got.orig_ts, Some(want.ts));
        }
    }

    // A file cut inside its last record replays everything before it.
    let (whole, _) = read_all(&finished[0]);
    let bytes = std::fs::read(&finished[0]).unwrap();
    let cut = dir.path().join("cut.tcf.bad");
    std::fs::write(&cut, &bytes[..bytes.len() - 3]).unwrap();
    let replayed = replay_through_broker(&cut).await;
    assert_eq!(replayed.len(), whole.len() - 1);
}
