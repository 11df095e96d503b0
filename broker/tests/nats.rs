//! Scale-out over a real `nats-server`: an origin (`--nats-out`) and edges
//! (`--nats-in`) on loopback, with clients on each.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use tickcast_broker::config::{NatsAuth, NatsConfig, NatsInterest};
use tickcast_broker::{BrokerConfig, FeedConfig, RunningBroker};
use tickcast_protocol::control::{decode_server_frame, GapReason, Incoming, ResetReason};
use tickcast_protocol::framing::put_tick_record;
use tickcast_protocol::ServerMessage;
use tokio_tungstenite::tungstenite::Message;

use common::nats::NatsServer;
use common::{limits, subscribe_raw, tick, Publisher, Received, Subscriber, WAIT};

/// An origin: fed by its ingest port, publishing to `nats`.
async fn origin(nats: &NatsServer, epoch: Option<&str>) -> RunningBroker {
    tickcast_broker::start(BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        feed: FeedConfig::Ingest("127.0.0.1:0".parse().unwrap()),
        limits: limits(),
        nats_out: Some(NatsConfig::new(&nats.url())),
        epoch: epoch.map(str::to_owned),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// An edge: fed by `nats`.
async fn edge(nats: &NatsServer) -> RunningBroker {
    tickcast_broker::start(BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        feed: FeedConfig::Nats(NatsConfig::new(&nats.url())),
        limits: limits(),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// Publishes `WARM` ticks through the origin until every edge has taken
/// one: the edges' subscriptions are then live on the server. Returns the
/// last `WARM` seq.
async fn warm_up(publisher: &mut Publisher, edges: &[&RunningBroker]) -> u64 {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut seq = 0;
    while edges.iter().any(|e| e.metrics().ticks_in.get() == 0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no edge took a tick"
        );
        publisher.publish(&["WARM"]).await;
        seq += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    seq
}

/// Waits until the JetStream stream `name` on `nats` holds at least `n`
/// messages.
async fn wait_stored(nats: &NatsServer, name: &str, n: u64) {
    let client = async_nats::connect(nats.url()).await.expect("connects");
    let js = async_nats::jetstream::new(client);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let held = match js.get_stream(name).await {
            Ok(mut s) => s.info().await.map_or(0, |i| i.state.messages),
            Err(_) => 0,
        };
        if held >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} holds {held} of {n}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A subscribe of `sym` resuming after `since` in `epoch`.
fn resume(sym: &str, epoch: &str, since: u64) -> String {
    format!(
        r#"{{"op":"subscribe","topics":["{sym}"],"epoch":"{epoch}","since":{{"{sym}":{since}}}}}"#
    )
}

/// `controls` are one `recovered` notice, of `ticks` ticks up to `to`.
fn assert_one_recovery(controls: &[ServerMessage], ticks: u64, to: u64) {
    assert!(
        matches!(controls, [ServerMessage::Recovered { ticks: t, to: last, .. }] if *t == ticks && *last == to),
        "{controls:?}"
    );
}

/// Reads raw frames until `last` holds each symbol's last seq: the ticks
/// as `(sym, seq, bytes)`, and the control messages.
async fn read_raw(
    client: &mut Subscriber,
    last: &BTreeMap<&str, u64>,
) -> (Vec<(String, u64, Vec<u8>)>, Vec<ServerMessage>) {
    let (mut ticks, mut controls) = (Vec::new(), Vec::new());
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    let done = |seen: &BTreeMap<String, u64>| {
        last.iter()
            .all(|(s, q)| seen.get(*s).copied().unwrap_or(0) >= *q)
    };
    while !done(&seen) {
        let msg = tokio::time::timeout(WAIT, client.ws.next())
            .await
            .unwrap_or_else(|_| panic!("stalled at {seen:?}, want {last:?}"))
            .expect("open")
            .expect("no error");
        let Message::Binary(bytes) = msg else {
            continue;
        };
        match decode_server_frame(&bytes).unwrap() {
            Incoming::Tick(t) => {
                let t = t.to_tick();
                seen.insert(t.sym.clone(), t.seq);
                ticks.push((t.sym, t.seq, bytes.to_vec()));
            }
            Incoming::Control(c) => controls.push(c),
        }
    }
    (ticks, controls)
}

fn seqs(ticks: &[(String, u64, Vec<u8>)], sym: &str) -> Vec<u64> {
    ticks.iter().filter(|t| t.0 == sym).map(|t| t.1).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_the_origin_and_on_two_edges_receive_identical_streams() {
    let nats = NatsServer::start();
    let origin = origin(&nats, None).await;
    let (a, b) = (edge(&nats).await, edge(&nats).await);
    let mut publisher = Publisher::connect(&origin).await;
    warm_up(&mut publisher, &[&a, &b]).await;

    let syms = ["AAPL", "MSFT", "BRK.B"];
    let request = r#"{"op":"subscribe","topics":["AAPL","MSFT","BRK.B"]}"#;
    let mut clients = Vec::new();
    let mut epochs = Vec::new();
    for broker in [&origin, &a, &b] {
        let mut c = Subscriber::connect(broker.local_addr(), "").await;
        epochs.push(subscribe_raw(&mut c, request).await);
        clients.push(c);
    }
    // Every edge names the origin's epoch: a position means the same on each.
    assert_eq!(epochs[1], epochs[0]);
    assert_eq!(epochs[2], epochs[0]);
    for _ in 0..300 {
        publisher.publish(&syms).await;
    }
    let last: BTreeMap<&str, u64> = syms.iter().map(|s| (*s, 300)).collect();
    let mut streams = Vec::new();
    for c in &mut clients {
        let (ticks, controls) = read_raw(c, &last).await;
        assert!(controls.is_empty(), "{controls:?}");
        for sym in syms {
            assert_eq!(seqs(&ticks, sym), (1..=300).collect::<Vec<_>>(), "{sym}");
        }
        streams.push(ticks);
    }
    // The same (sym, seq, bytes), in the same order, on all three.
    assert_eq!(streams[1], streams[0]);
    assert_eq!(streams[2], streams[0]);
    assert!(origin.metrics().nats_published.get() >= 900);
    assert_eq!(origin.metrics().nats_out_dropped.get(), 0);
    assert_eq!(a.metrics().nats_rejected.get(), 0);
    for broker in [a, b, origin] {
        broker.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_position_taken_on_the_origin_resumes_on_an_edge_with_every_tick_once() {
    let nats = NatsServer::start();
    let origin = origin(&nats, None).await;
    let edge = edge(&nats).await;
    let mut publisher = Publisher::connect(&origin).await;
    warm_up(&mut publisher, &[&edge]).await;

    let mut client = Subscriber::connect(origin.local_addr(), "").await;
    let epoch = subscribe_raw(&mut client, r#"{"op":"subscribe","topics":["AAPL"]}"#).await;
    for _ in 0..50 {
        publisher.publish(&["AAPL"]).await;
    }
    let (first, _) = read_raw(&mut client, &BTreeMap::from([("AAPL", 50)])).await;
    assert_eq!(seqs(&first, "AAPL"), (1..=50).collect::<Vec<_>>());
    // The origin goes away from this client; it carries on at the edge.
    drop(client);
    for _ in 0..100 {
        publisher.publish(&["AAPL"]).await;
    }
    common::wait_ticks_in(&edge, 150).await;
    let mut back = Subscriber::connect(edge.local_addr(), "").await;
    let request = resume("AAPL", &epoch, 50);
    assert_eq!(subscribe_raw(&mut back, &request).await, epoch);
    for _ in 0..20 {
        publisher.publish(&["AAPL"]).await;
    }
    let (got, controls) = read_raw(&mut back, &BTreeMap::from([("AAPL", 170)])).await;
    assert_eq!(seqs(&got, "AAPL"), (51..=170).collect::<Vec<_>>());
    assert!(
        controls.iter().any(|c| matches!(
            c,
            ServerMessage::Recovered { sym, ticks: 100, to: 150 } if sym == "AAPL"
        )),
        "{controls:?}"
    );
    assert!(
        !controls
            .iter()
            .any(|c| matches!(c, ServerMessage::Reset { .. })),
        "{controls:?}"
    );
    edge.shutdown().await;
    origin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_origins_of_one_feed_reach_an_edge_once_and_the_first_can_die() {
    two_origins_one_dies(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_origins_of_one_feed_reach_an_edge_once_and_the_second_can_die() {
    two_origins_one_dies(false).await;
}

/// Two origins publish the same feed under one epoch; halfway, the first
/// (or the second) stops; the edge's client gets every seq once.
async fn two_origins_one_dies(first_dies: bool) {
    let nats = NatsServer::start();
    let (first, second) = (
        origin(&nats, Some("desk-feed")).await,
        origin(&nats, Some("desk-feed")).await,
    );
    let edge = edge(&nats).await;
    let mut to_first = Publisher::connect(&first).await;
    let mut to_second = Publisher::connect(&second).await;
    warm_up(&mut to_first, &[&edge]).await;
    let mut client = Subscriber::connect(edge.local_addr(), "").await;
    assert_eq!(
        subscribe_raw(&mut client, r#"{"op":"subscribe","topics":["AAPL"]}"#).await,
        "desk-feed"
    );
    // The same feed into both: the very same bytes, seq 1 to 200.
    let same = |from: u64, to: u64| {
        let mut buf = BytesMut::new();
        for seq in from..=to {
            put_tick_record(&mut buf, &tick("AAPL", seq).as_ref());
        }
        buf
    };
    let part = same(1, 100);
    let warm = first.metrics().nats_published.get();
    to_first.write_raw(&part).await.unwrap();
    to_second.write_raw(&part).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while first.metrics().nats_published.get() < warm + 100
        || second.metrics().nats_published.get() < 100
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "origins did not publish"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // One origin dies; the other carries the feed on.
    let part = same(101, 200);
    let survivor = if first_dies {
        first.shutdown().await;
        to_second.write_raw(&part).await.unwrap();
        second
    } else {
        second.shutdown().await;
        to_first.write_raw(&part).await.unwrap();
        first
    };
    let (got, controls) = read_raw(&mut client, &BTreeMap::from([("AAPL", 200)])).await;
    assert_eq!(seqs(&got, "AAPL"), (1..=200).collect::<Vec<_>>());
    assert!(controls.is_empty(), "{controls:?}");
    // Every second copy was seen and dropped as such.
    assert!(
        edge.metrics().ticks_stale.get() >= 1,
        "no copy arrived twice"
    );
    edge.shutdown().await;
    survivor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_origin_epoch_is_a_reset_with_reason_epoch_on_the_edge() {
    let nats = NatsServer::start();
    let edge = edge(&nats).await;
    let before = origin(&nats, Some("monday")).await;
    let mut publisher = Publisher::connect(&before).await;
    warm_up(&mut publisher, &[&edge]).await;
    let mut client = Subscriber::connect(edge.local_addr(), "").await;
    assert_eq!(
        subscribe_raw(&mut client, r#"{"op":"subscribe","topics":["AAPL"]}"#).await,
        "monday"
    );
    publisher.publish_seqs("AAPL", &[1, 2, 3]).await;
    read_raw(&mut client, &BTreeMap::from([("AAPL", 3)])).await;
    before.shutdown().await;
    // The origin comes back as another stream, its seqs from 1 again.
    let after = origin(&nats, Some("tuesday")).await;
    let mut publisher = Publisher::connect(&after).await;
    publisher.publish_seqs("AAPL", &[1, 2]).await;
    let (got, controls) = read_raw(&mut client, &BTreeMap::from([("AAPL", 2)])).await;
    assert_eq!(seqs(&got, "AAPL"), vec![1, 2]);
    assert!(
        matches!(
            &controls[..],
            [ServerMessage::Reset { sym, reason: ResetReason::Epoch, epoch: Some(e) }]
                if sym == "AAPL" && e == "tuesday"
        ),
        "{controls:?}"
    );
    // A position from Monday is not taken for one of Tuesday.
    let mut late = Subscriber::connect(edge.local_addr(), "").await;
    late.send_text(r#"{"op":"subscribe","topics":["AAPL"],"epoch":"monday","since":{"AAPL":1}}"#)
        .await;
    let mut saw_reset = false;
    for _ in 0..3 {
        if let Received::Control(ServerMessage::Reset { reason, .. }) = late.next().await {
            assert_eq!(reason, ResetReason::Epoch);
            saw_reset = true;
            break;
        }
    }
    assert!(saw_reset);
    edge.shutdown().await;
    after.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_mid_stream_loses_nothing_unannounced_and_repeats_nothing() {
    let nats = NatsServer::start();
    let port = nats.addr.port();
    let origin = origin(&nats, None).await;
    let edge = edge(&nats).await;
    let mut publisher = Publisher::connect(&origin).await;
    warm_up(&mut publisher, &[&edge]).await;
    let mut client = Subscriber::connect(edge.local_addr(), "").await;
    subscribe_raw(&mut client, r#"{"op":"subscribe","topics":["AAPL"]}"#).await;

    // 3,000 ticks, one a millisecond; NATS goes away for 300 ms at 1,000.
    const LAST: u64 = 3_000;
    let feeding = tokio::spawn(async move {
        for seq in 1..=LAST {
            publisher.publish_seqs("AAPL", &[seq]).await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        publisher
    });
    while edge.metrics().ticks_in.get() < 1_000 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(nats);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _nats = NatsServer::start_on(port);
    let (got, controls) = read_raw(&mut client, &BTreeMap::from([("AAPL", LAST)])).await;
    drop(feeding.await.unwrap());

    // In order, never twice, and every seq missed is in a notice: `upstream`
    // for what never reached the edge, `conflated` for what this client
    // (not reading while NATS restarted) was spared.
    let delivered = seqs(&got, "AAPL");
    assert!(
        delivered.windows(2).all(|w| w[0] < w[1]),
        "out of order or repeated"
    );
    let (mut announced, mut upstream) = (Vec::new(), 0);
    for c in &controls {
        match c {
            ServerMessage::Gap {
                sym,
                from,
                to,
                reason,
            } if sym == "AAPL" => {
                announced.extend(*from..=*to);
                if *reason == GapReason::Upstream {
                    upstream += to - from + 1;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let mut account: Vec<u64> = delivered.iter().copied().chain(announced).collect();
    account.sort_unstable();
    assert_eq!(account, (1..=LAST).collect::<Vec<_>>());
    assert_eq!(edge.metrics().upstream_missed.get(), upstream);
    assert!(edge.metrics().nats_disconnects.get() >= 1);
    assert!(origin.metrics().nats_disconnects.get() >= 1);
    eprintln!(
        "delivered {} of {LAST}; {upstream} never reached the edge (announced `upstream`)",
        delivered.len()
    );
    edge.shutdown().await;
    origin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_started_late_serves_full_snapshots_and_resumes_at_once() {
    let nats = NatsServer::start();
    let origin = origin(&nats, None).await;
    let mut publisher = Publisher::connect(&origin).await;
    let syms = ["AAPL", "MSFT", "NVDA"];
    for _ in 0..50 {
        publisher.publish(&syms).await;
    }
    wait_stored(&nats, "TICKCAST_TICKS", 150).await;
    let mut on_origin = Subscriber::connect(origin.local_addr(), "").await;
    let epoch = subscribe_raw(&mut on_origin, r#"{"op":"subscribe","topics":["AAPL"]}"#).await;

    // Started after the ticks, with nothing published since.
    let edge = edge(&nats).await;
    let mut client = Subscriber::connect(edge.local_addr(), "").await;
    assert_eq!(
        subscribe_raw(
            &mut client,
            r#"{"op":"subscribe","topics":["AAPL","MSFT","NVDA"]}"#
        )
        .await,
        epoch
    );
    let mut snapshots = BTreeMap::new();
    for _ in 0..3 {
        let t = client.expect_tick().await;
        snapshots.insert(t.sym, t.seq);
    }
    assert_eq!(
        snapshots,
        syms.iter()
            .map(|s| (s.to_string(), 50))
            .collect::<BTreeMap<_, _>>()
    );
    // Its history is warm: a position from the origin resumes here.
    let mut back = Subscriber::connect(edge.local_addr(), "").await;
    let request = resume("MSFT", &epoch, 10);
    subscribe_raw(&mut back, &request).await;
    let (got, controls) = read_raw(&mut back, &BTreeMap::from([("MSFT", 50)])).await;
    assert_eq!(seqs(&got, "MSFT"), (11..=50).collect::<Vec<_>>());
    assert_one_recovery(&controls, 40, 50);
    edge.shutdown().await;
    origin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_without_jetstream_is_told_so_at_start_unless_it_keeps_no_stream() {
    let nats = NatsServer::start_without_jetstream();
    let config = |history: usize| BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        feed: FeedConfig::None,
        nats_out: Some(NatsConfig {
            stream_history: history,
            ..NatsConfig::new(&nats.url())
        }),
        ..Default::default()
    };
    let err = match tickcast_broker::start(config(1_000)).await {
        Ok(_) => panic!("started without JetStream"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("--nats-stream-history 0"), "{err}");
    let broker = tickcast_broker::start(config(0)).await.unwrap();
    broker.shutdown().await;
    // And an edge there starts cold, without complaint.
    let edge = edge(&nats).await;
    edge.shutdown().await;
}

/// A broker config with `nats` as its NATS settings: an origin (ingest
/// feed) or an edge.
fn with_nats(nats: NatsConfig, is_origin: bool) -> BrokerConfig {
    BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        feed: if is_origin {
            FeedConfig::Ingest("127.0.0.1:0".parse().unwrap())
        } else {
            FeedConfig::Nats(nats.clone())
        },
        nats_out: is_origin.then_some(nats),
        limits: limits(),
        ..Default::default()
    }
}

/// An origin and an edge both on `nats`: ticks published to the origin
/// reach the edge.
async fn ticks_reach_an_edge(nats: NatsConfig) {
    let origin = tickcast_broker::start(with_nats(nats.clone(), true))
        .await
        .unwrap();
    let edge = tickcast_broker::start(with_nats(nats, false))
        .await
        .unwrap();
    let mut publisher = Publisher::connect(&origin).await;
    warm_up(&mut publisher, &[&edge]).await;
    edge.shutdown().await;
    origin.shutdown().await;
}

/// The start error of `config`, as text.
async fn start_error(config: BrokerConfig) -> String {
    match tickcast_broker::start(config).await {
        Ok(_) => panic!("started"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_credentials_and_tls_are_passed_through() {
    // User and password.
    let nats = NatsServer::start_with(&["--user", "tickcast", "--pass", "s3cret"]);
    let plain = NatsConfig::new(&nats.url());
    let err = start_error(with_nats(plain.clone(), false)).await;
    assert!(err.contains("cannot connect to NATS"), "{err}");
    let user = NatsConfig {
        auth: NatsAuth::UserPassword {
            user: "tickcast".into(),
            password: "s3cret".into(),
        },
        ..plain
    };
    ticks_reach_an_edge(user).await;
    drop(nats);

    // TLS, the server's certificate checked against a CA file.
    let dir = tempfile::tempdir().unwrap();
    let ca = common::pki::TestCa::new();
    let (cert, key) = ca.server_cert().write(dir.path());
    let root = dir.path().join("root.pem");
    std::fs::write(&root, ca.root_pem()).unwrap();
    let nats = NatsServer::start_with(&[
        "--tls",
        "--tlscert",
        cert.to_str().unwrap(),
        "--tlskey",
        key.to_str().unwrap(),
    ]);
    let untrusting = NatsConfig {
        require_tls: true,
        ..NatsConfig::new(&nats.url())
    };
    let err = start_error(with_nats(untrusting.clone(), false)).await;
    assert!(err.contains("cannot connect to NATS"), "{err}");
    let trusting = NatsConfig {
        tls_ca: Some(root),
        ..untrusting
    };
    ticks_reach_an_edge(trusting).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_shuts_down_promptly_while_nats_is_away() {
    let nats = NatsServer::start();
    let origin = origin(&nats, None).await;
    let mut publisher = Publisher::connect(&origin).await;
    publisher.publish(&["AAPL"]).await;
    drop(nats);
    // Ticks that can no longer go anywhere wait in the origin's queue.
    for _ in 0..5_000 {
        publisher.publish(&["AAPL", "MSFT"]).await;
    }
    common::wait_ticks_in(&origin, 10_001).await;
    let started = tokio::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(10), origin.shutdown())
        .await
        .expect("shutdown waited for NATS");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_records_what_it_receives() {
    let nats = NatsServer::start();
    let origin = origin(&nats, None).await;
    let dir = tempfile::tempdir().unwrap();
    let edge = tickcast_broker::start(BrokerConfig {
        record: Some(tickcast_broker::RecordConfig {
            dir: dir.path().to_path_buf(),
            rotate: Duration::from_secs(3600),
            max_bytes: 1 << 30,
        }),
        ..with_nats(NatsConfig::new(&nats.url()), false)
    })
    .await
    .unwrap();
    let mut publisher = Publisher::connect(&origin).await;
    let warm = warm_up(&mut publisher, &[&edge]).await;
    for _ in 0..100 {
        publisher.publish(&["AAPL"]).await;
    }
    common::wait_ticks_in(&edge, 100 + warm).await;
    edge.shutdown().await;
    let mut recorded = Vec::new();
    for file in std::fs::read_dir(dir.path()).unwrap() {
        for tick in feed_simulator::file::FeedReader::open(file.unwrap().path()).unwrap() {
            let tick = tick.unwrap();
            if tick.sym == "AAPL" {
                recorded.push(tick.seq);
            }
        }
    }
    assert_eq!(recorded, (1..=100).collect::<Vec<_>>());
    origin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_makes_its_stream_again_on_a_restarted_server() {
    let nats = NatsServer::start();
    let port = nats.addr.port();
    let origin = origin(&nats, None).await;
    let mut publisher = Publisher::connect(&origin).await;
    publisher.publish(&["AAPL"]).await;
    wait_stored(&nats, "TICKCAST_TICKS", 1).await;
    // The server comes back without its memory stream.
    drop(nats);
    let nats = NatsServer::start_on(port);
    let deadline = tokio::time::Instant::now() + WAIT;
    while origin.metrics().nats_disconnects.get() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reconnection seen"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Ticks published from now on are kept again: an edge started late
    // has them at once.
    let mut seq = 1;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        seq += 1;
        publisher.publish(&["AAPL"]).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let edge = edge(&nats).await;
        let mut client = Subscriber::connect(edge.local_addr(), "").await;
        subscribe_raw(&mut client, r#"{"op":"subscribe","topics":["AAPL"]}"#).await;
        let got = client.next_within(Duration::from_millis(500)).await;
        edge.shutdown().await;
        if let Some(Received::Tick(t)) = got {
            assert!(t.seq > 1 && t.seq <= seq, "{}", t.seq);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream was not made again"
        );
    }
    origin.shutdown().await;
}

/// An edge that takes from `nats` only what its clients ask for.
async fn subscribed_edge(nats: &NatsServer) -> RunningBroker {
    let config = with_nats(
        NatsConfig {
            interest: NatsInterest::Subscribed,
            ..NatsConfig::new(&nats.url())
        },
        false,
    );
    tickcast_broker::start(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_taking_only_what_its_clients_want_still_serves_snapshots_and_resumes() {
    let nats = NatsServer::start();
    let origin = origin(&nats, None).await;
    let mut publisher = Publisher::connect(&origin).await;
    for _ in 0..50 {
        publisher.publish(&["AAPL", "MSFT"]).await;
    }
    wait_stored(&nats, "TICKCAST_TICKS", 100).await;
    let mut on_origin = Subscriber::connect(origin.local_addr(), "").await;
    let epoch = subscribe_raw(&mut on_origin, r#"{"op":"subscribe","topics":["AAPL"]}"#).await;

    let edge = subscribed_edge(&nats).await;
    assert_eq!(
        edge.metrics().nats_received.get(),
        0,
        "took ticks nobody asked for"
    );
    // The first subscribe of AAPL: its snapshot at once, from JetStream.
    let mut client = Subscriber::connect(edge.local_addr(), "").await;
    assert_eq!(
        subscribe_raw(&mut client, r#"{"op":"subscribe","topics":["AAPL"]}"#).await,
        epoch
    );
    let snapshot = client.expect_tick().await;
    assert_eq!((snapshot.sym.as_str(), snapshot.seq), ("AAPL", 50));
    // A position from the origin resumes here.
    let mut back = Subscriber::connect(edge.local_addr(), "").await;
    let request = resume("AAPL", &epoch, 10);
    subscribe_raw(&mut back, &request).await;
    for _ in 0..10 {
        publisher.publish(&["AAPL", "MSFT"]).await;
    }
    let (got, controls) = read_raw(&mut back, &BTreeMap::from([("AAPL", 60)])).await;
    assert_eq!(seqs(&got, "AAPL"), (11..=60).collect::<Vec<_>>());
    assert_one_recovery(&controls, 40, 50);
    // MSFT never came: 50 AAPL from the stream and 10 live.
    let deadline = tokio::time::Instant::now() + WAIT;
    while edge.metrics().nats_received.get() < 60 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(edge.metrics().nats_received.get(), 60);
    // A `*` subscriber: everything from now on, with every snapshot.
    let mut all = Subscriber::connect(edge.local_addr(), "").await;
    subscribe_raw(&mut all, r#"{"op":"subscribe","topics":["*"]}"#).await;
    let mut snapshots = BTreeMap::new();
    for _ in 0..2 {
        let t = all.expect_tick().await;
        snapshots.insert(t.sym, t.seq);
    }
    assert_eq!(
        snapshots,
        BTreeMap::from([("AAPL".to_owned(), 60), ("MSFT".to_owned(), 60)])
    );
    publisher.publish(&["AAPL", "MSFT"]).await;
    let (got, _) = read_raw(&mut all, &BTreeMap::from([("AAPL", 61), ("MSFT", 61)])).await;
    assert_eq!(
        got.len(),
        2,
        "each tick once, though AAPL was also subscribed alone"
    );
    edge.shutdown().await;
    origin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_naming_random_symbols_grows_an_edges_interest_only_to_its_bound() {
    use tickcast_broker::feed::nats::interest::MAX_SUBJECTS;
    let nats = NatsServer::start();
    let origin = origin(&nats, None).await;
    let mut publisher = Publisher::connect(&origin).await;
    for _ in 0..20 {
        publisher.publish(&["AAPL"]).await;
    }
    wait_stored(&nats, "TICKCAST_TICKS", 20).await;
    let edge = subscribed_edge(&nats).await;
    // 300 names a request (the 4 KiB control-message limit), let go at
    // once, paced under the control rate: 10,500 names in 35 rounds.
    let mut hostile = Subscriber::connect(edge.local_addr(), "").await;
    let mut honest = None;
    for round in 0..35 {
        let names: Vec<String> = (0..300).map(|i| format!("\"Z{round:02}{i:03}\"")).collect();
        let names = names.join(",");
        hostile
            .send_text(&format!(r#"{{"op":"subscribe","topics":[{names}]}}"#))
            .await;
        if round == 10 {
            // While the edge takes those 300, a real client's first
            // subscribe of a symbol is answered with its snapshot, from
            // JetStream, after them.
            let mut client = Subscriber::connect(edge.local_addr(), "").await;
            let started = tokio::time::Instant::now();
            subscribe_raw(&mut client, r#"{"op":"subscribe","topics":["AAPL"]}"#).await;
            let snapshot = client.expect_tick().await;
            assert_eq!((snapshot.sym.as_str(), snapshot.seq), ("AAPL", 20));
            eprintln!("AAPL's snapshot after {:?}", started.elapsed());
            honest = Some(client);
        }
        let started = tokio::time::Instant::now();
        assert!(matches!(
            hostile.next().await,
            Received::Control(ServerMessage::Subscribed { .. })
        ));
        let subjects = edge.metrics().nats_subjects.get() as usize;
        eprintln!(
            "round {round}: ack after {:?}, {subjects} subjects",
            started.elapsed()
        );
        assert!(subjects <= MAX_SUBJECTS, "{subjects} subjects");
        // Its ack names what the connection still holds.
        subscribe_raw(
            &mut hostile,
            &format!(r#"{{"op":"unsubscribe","topics":[{names}]}}"#),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Past 10,000 names, the whole prefix: one subject.
    assert_eq!(edge.metrics().nats_subjects.get(), 1);
    // And the real client's symbol still flows, each tick once.
    let mut honest = honest.expect("subscribed");
    publisher.publish(&["AAPL"]).await;
    let next = honest.expect_tick().await;
    assert_eq!((next.sym.as_str(), next.seq), ("AAPL", 21));
    edge.shutdown().await;
    origin.shutdown().await;
}
