//! Replay as a tick source: looping keeps seq and time moving forward, and a
//! damaged file still sends everything before the damage.

use std::collections::HashMap;
use std::path::Path;

use bytes::BytesMut;
use feed_simulator::file::FeedFileError;
use feed_simulator::market::MarketConfig;
use feed_simulator::pacing::{Pacer, Speed};
use feed_simulator::record::record;
use feed_simulator::replay::FileReplay;
use feed_simulator::send::{send_paced, PacedTick, SendError, TickSource};
use tickcast_protocol::framing::split_record;
use tickcast_protocol::Tick;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

const RECORDS: u64 = 300;

fn write_feed(path: &Path) -> Vec<Tick> {
    let cfg = MarketConfig {
        symbols: 12,
        rate: 1_000.0,
        seed: 21,
        open_burst: false,
        session: false,
    };
    let bytes = record(&cfg, RECORDS, Vec::new(), |_| {}).unwrap();
    std::fs::write(path, &bytes).unwrap();
    feed_simulator::file::FeedReader::from_reader(&bytes[..])
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn looping_keeps_seq_gap_free_and_time_increasing_across_laps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loop.feed");
    let recorded = write_feed(&path);
    let mut source = FileReplay::open(&path, true).unwrap();
    let mut last_seq: HashMap<String, u64> = HashMap::new();
    let mut last_due = 0;
    let laps = 3;
    for i in 0..laps * RECORDS as usize {
        let PacedTick { due_ts, tick } = source.next_tick().unwrap().unwrap();
        let original = &recorded[i % recorded.len()];
        assert_eq!(tick.orig_ts, Some(original.ts));
        assert_eq!(tick.sym, original.sym);
        let prev = last_seq.insert(tick.sym.clone(), tick.seq).unwrap_or(0);
        assert_eq!(tick.seq, prev + 1, "{} seq at record {i}", tick.sym);
        assert!(due_ts >= last_due, "time went backwards at record {i}");
        if i > 0 && i % RECORDS as usize == 0 {
            assert!(due_ts > last_due, "a new lap starts after the last one");
        }
        last_due = due_ts;
    }
    assert_eq!(source.laps(), laps as u64 - 1);
    // The next lap starts one mean gap after the last tick of the previous.
    let span = recorded[recorded.len() - 1].ts - recorded[0].ts;
    let lap_ns = span + span / (RECORDS - 1);
    let next = source.next_tick().unwrap().unwrap();
    assert_eq!(next.due_ts, 3 * lap_ns);
}

#[test]
fn without_loop_the_source_ends_after_one_lap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("once.feed");
    let recorded = write_feed(&path);
    let mut source = FileReplay::open(&path, false).unwrap();
    let mut n = 0;
    while let Some(p) = source.next_tick().unwrap() {
        assert_eq!(p.tick.seq, recorded[n].seq);
        n += 1;
    }
    assert_eq!(n, recorded.len());
    assert!(source.next_tick().unwrap().is_none());
}

#[tokio::test]
async fn a_damaged_file_sends_every_record_before_the_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.feed");
    let recorded = write_feed(&path);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(bytes.len() - 3);
    std::fs::write(&path, &bytes).unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let receiver = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        stream.read_to_end(&mut got).await.unwrap();
        got
    });
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut source = FileReplay::open(&path, false).unwrap();
    let mut pacer = Pacer::new(Speed::Max);
    let result = send_paced(&mut source, &mut pacer, &mut stream, |_| {}).await;
    drop(stream);
    let err = result.unwrap_err();
    assert!(
        matches!(err, SendError::Feed(FeedFileError::Truncated { .. })),
        "{err}"
    );

    let got = tokio::time::timeout(std::time::Duration::from_secs(10), receiver)
        .await
        .unwrap()
        .unwrap();
    let mut buf = BytesMut::from(&got[..]);
    let mut n = 0;
    while let Some(payload) = split_record(&mut buf).unwrap() {
        let tick = Tick::decode(&payload).unwrap();
        assert_eq!(tick.orig_ts, Some(recorded[n].ts));
        n += 1;
    }
    assert_eq!(
        n,
        recorded.len() - 1,
        "all records before the cut were sent"
    );
}
