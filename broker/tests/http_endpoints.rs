//! The broker's HTTP endpoints, read over a raw socket the way `curl` or a
//! Prometheus scraper would: each must report exactly what the feed and the
//! clients did, in the documented shape, and refuse what it does not serve
//! with the right status.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::{http_get, http_request, ingest_broker, tick, Publisher, Subscriber};
use serde_json::Value;
use tickcast_protocol::Tick;

const STAGES: [&str; 3] = ["feed_to_receive", "receive_to_enqueue", "enqueue_to_write"];

/// One sample line of the Prometheus text format.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses `name{k="v",...} value` strictly; `None` if the line is not that.
fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(body) = rest.strip_prefix('{') {
        let close = body.find('}')?;
        for pair in body[..close].split(',').filter(|p| !p.is_empty()) {
            let (key, quoted) = pair.split_once('=')?;
            let value = quoted.strip_prefix('"')?.strip_suffix('"')?;
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return None;
            }
            labels.insert(key.to_owned(), value.to_owned());
        }
        rest = &body[close + 1..];
    }
    let value = rest.strip_prefix(' ')?;
    if value.contains(' ') {
        return None;
    }
    Some(Sample {
        name: name.to_owned(),
        labels,
        value: value.parse().ok()?,
    })
}

/// Parses a whole `/metrics` page: every line is a `# HELP`/`# TYPE`
/// comment or a sample of a family whose `# TYPE` came first.
fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut families: HashMap<String, String> = HashMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.splitn(3, ' ');
            let (kind, name, rest) = (words.next(), words.next(), words.next());
            match (kind, name, rest) {
                (Some("HELP"), Some(_), Some(_)) => {}
                (Some("TYPE"), Some(name), Some(t)) => {
                    assert!(
                        ["counter", "gauge", "summary"].contains(&t),
                        "type of {name}: {t}"
                    );
                    families.insert(name.to_owned(), t.to_owned());
                }
                _ => panic!("bad comment line: {line:?}"),
            }
            continue;
        }
        let sample = parse_sample(line).unwrap_or_else(|| panic!("bad sample line: {line:?}"));
        let family = sample
            .name
            .strip_suffix("_count")
            .filter(|f| families.get(*f).is_some_and(|t| t == "summary"))
            .unwrap_or(&sample.name);
        assert!(families.contains_key(family), "no # TYPE before {line:?}");
        samples.push(sample);
    }
    samples
}

/// The value of the sample `name` with exactly `labels`.
fn sample(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name && s.labels == want)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{name}{labels:?} appears {} times",
        found.len()
    );
    found[0].value
}

/// Publishes AAA ×3, BBB ×2, CCC ×1 to a broker with one client subscribed
/// to AAA, then checks every read-only endpoint against those numbers.
#[tokio::test]
async fn endpoints_report_exactly_what_the_feed_and_clients_did() {
    let broker = ingest_broker(common::limits()).await;
    let addr = broker.local_addr();
    let mut sub = Subscriber::connect(addr, "topics=AAA").await;
    assert_eq!(sub.expect_ack().await, ["AAA"]);
    let mut publisher = Publisher::connect(&broker).await;
    publisher.publish(&["AAA", "BBB", "CCC"]).await;
    publisher.publish(&["AAA", "BBB"]).await;
    publisher.publish(&["AAA"]).await;
    for seq in 1..=3 {
        let t = sub.expect_tick().await;
        assert_eq!((t.sym.as_str(), t.seq), ("AAA", seq));
    }
    common::wait_ticks_in(&broker, 6).await;
    // Counters and stage samples are recorded just after the work they count
    // (the writer's after the write, the hub's after the wake-ups): wait for
    // them to land before reading any endpoint.
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let counts = broker
            .metrics()
            .stages
            .lock()
            .percentiles()
            .map(|p| p.count);
        if broker.metrics().frames_out.get() >= 4 && counts == [6, 6, 3] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "counts stuck at {counts:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }

    let health = http_get(addr, "/healthz").await;
    assert_eq!((health.status, health.text()), (200, "ok\n"));

    let metrics = http_get(addr, "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        metrics.header("content-type")
    );
    let samples = parse_prometheus(metrics.text());
    assert_eq!(sample(&samples, "tickcast_ticks_in_total", &[]), 6.0);
    assert_eq!(sample(&samples, "tickcast_frames_out_total", &[]), 4.0);
    assert_eq!(sample(&samples, "tickcast_connections", &[]), 1.0);
    assert_eq!(sample(&samples, "tickcast_connections_total", &[]), 1.0);
    assert_eq!(sample(&samples, "tickcast_symbols", &[]), 3.0);
    assert_eq!(sample(&samples, "tickcast_ticks_rejected_total", &[]), 0.0);
    let name = "tickcast_stage_latency_seconds";
    for (stage, count) in [
        ("feed_to_receive", 6.0),
        ("receive_to_enqueue", 6.0),
        ("enqueue_to_write", 3.0),
    ] {
        assert_eq!(
            sample(&samples, &format!("{name}_count"), &[("stage", stage)]),
            count,
            "{stage}"
        );
        let mut previous = 0.0;
        for q in ["0.5", "0.9", "0.99", "0.999", "1"] {
            let v = sample(&samples, name, &[("stage", stage), ("quantile", q)]);
            assert!(v >= previous && v < 60.0, "{stage} q{q} = {v}");
            previous = v;
        }
        assert!(previous > 0.0, "{stage} has no latency at all");
    }

    let stats = http_get(addr, "/stats").await;
    assert_eq!(stats.status, 200);
    assert_eq!(stats.header("content-type"), Some("application/json"));
    let stats: Value = serde_json::from_slice(&stats.body).unwrap();
    for (field, want) in [
        ("connections", 1),
        ("symbols", 3),
        ("ticks_in", 6),
        ("deliveries", 4),
        ("conflated", 0),
        ("dropped", 0),
        ("slow_disconnects", 0),
    ] {
        assert_eq!(stats[field], want, "/stats {field}: {stats}");
    }
    assert!(
        stats["uptime_s"].as_f64().is_some_and(|u| u > 0.0),
        "{stats}"
    );
    let stages = stats["stages"].as_object().unwrap();
    assert_eq!(stages.len(), 3, "{stats}");
    for stage in STAGES {
        let p = &stages[stage];
        for field in ["p50_us", "p90_us", "p99_us", "p999_us", "max_us"] {
            assert!(p[field].is_f64(), "/stats stages.{stage}.{field}: {p}");
        }
        let want = if stage == "enqueue_to_write" { 3 } else { 6 };
        assert_eq!(p["count"], want, "{stage}");
    }

    let symbols = http_get(addr, "/symbols").await;
    assert_eq!(symbols.status, 200);
    let latest: Vec<Tick> = serde_json::from_slice(&symbols.body).unwrap();
    let got: Vec<(&str, u64)> = latest.iter().map(|t| (t.sym.as_str(), t.seq)).collect();
    assert_eq!(got, [("AAA", 3), ("BBB", 2), ("CCC", 1)]);
    for t in &latest {
        assert_eq!(publisher.last_seq(&t.sym), t.seq);
        // Everything but the publish time is a function of (sym, seq).
        let want = Tick {
            ts: t.ts,
            ..tick(&t.sym, t.seq)
        };
        assert_eq!(*t, want);
        assert!(t.ts > 0);
    }

    let conns = http_get(addr, "/connections").await;
    assert_eq!(conns.status, 200);
    let conns: Value = serde_json::from_slice(&conns.body).unwrap();
    let rows = conns.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{conns}");
    let local = match sub.ws.get_ref() {
        tokio_tungstenite::MaybeTlsStream::Plain(s) => s.local_addr().unwrap(),
        _ => unreachable!("plain ws:// connection"),
    };
    let row = &rows[0];
    assert_eq!(row["peer"], local.to_string(), "{row}");
    assert_eq!(row["delivered"], 4, "{row}");
    assert_eq!(row["queued_bytes"], 0, "{row}");
    assert_eq!(row["conflated"], 0, "{row}");
    assert_eq!(row["dropped"], 0, "{row}");
    assert!(row["id"].is_u64(), "{row}");
}

#[tokio::test]
async fn dashboard_files_are_served_with_their_types() {
    let broker = ingest_broker(common::limits()).await;
    let addr = broker.local_addr();
    for (path, content_type, body) in [
        (
            "/",
            "text/html",
            &include_bytes!("../assets/index.html")[..],
        ),
        (
            "/dashboard.js",
            "text/javascript",
            &include_bytes!("../assets/dashboard.js")[..],
        ),
        (
            "/msgpack.js",
            "text/javascript",
            &include_bytes!("../assets/msgpack.js")[..],
        ),
        (
            "/feed.js",
            "text/javascript",
            &include_bytes!("../assets/feed.js")[..],
        ),
        (
            "/dashboard.css",
            "text/css",
            &include_bytes!("../assets/dashboard.css")[..],
        ),
    ] {
        let resp = http_get(addr, path).await;
        assert_eq!(resp.status, 200, "{path}");
        assert!(
            resp.header("content-type")
                .is_some_and(|t| t.starts_with(content_type)),
            "{path}: {:?}",
            resp.header("content-type")
        );
        assert!(
            resp.body == body,
            "{path}: body differs from the asset file"
        );
    }
    assert!(http_get(addr, "/")
        .await
        .text()
        .to_ascii_lowercase()
        .contains("<html"));
}

#[tokio::test]
async fn what_is_not_served_gets_the_right_status() {
    let broker = ingest_broker(common::limits()).await;
    let addr = broker.local_addr();

    let missing = http_get(addr, "/nope").await;
    assert_eq!(missing.status, 404, "{}", missing.text());

    let post = http_request(
        addr,
        &format!("POST /healthz HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"),
    )
    .await;
    assert_eq!(post.status, 405, "{}", post.text());

    let plain = http_get(addr, "/ws").await;
    assert_eq!(plain.status, 426, "{}", plain.text());

    // A real upgrade request, refused for its topic before switching
    // (`close` too, so the socket ends after the answer).
    let bad_topic = common::upgrade_request(addr, "/ws?topics=A%20B")
        .replace("Connection: Upgrade\r\n", "Connection: Upgrade, close\r\n");
    let bad_topic = http_request(addr, &bad_topic).await;
    assert_eq!(bad_topic.status, 400, "{}", bad_topic.text());
    assert!(
        bad_topic.text().contains("invalid topic"),
        "{}",
        bad_topic.text()
    );

    // The same request with a valid topic is upgraded: the 400 was the topic.
    let mut ok = common::RawClient::connect(addr, "topics=AAPL").await;
    let ack = ok.next_frame().await.unwrap();
    assert_eq!(ack.opcode(), 0x2);
    match tickcast_protocol::control::decode_server_frame(&ack.payload).unwrap() {
        tickcast_protocol::control::Incoming::Control(
            tickcast_protocol::ServerMessage::Subscribed { topics, epoch, .. },
        ) => {
            assert_eq!(topics, ["AAPL"]);
            assert!(epoch.is_some_and(|e| e.len() == 16), "the broker's epoch");
        }
        other => panic!("expected the ack, got {other:?}"),
    }
    assert_eq!(broker.metrics().connections_total.get(), 1);
}

/// `tickcast_tasks` and `/stats` `tasks` count the runtime's live tasks:
/// each session adds one, and closing the sessions gives them back (what the
/// soak in `benches/` relies on to see a task leak).
#[tokio::test]
async fn the_task_gauge_follows_the_sessions() {
    let broker = ingest_broker(common::limits()).await;
    let addr = broker.local_addr();
    let tasks = |stats: Value| stats["tasks"].as_u64().expect("/stats tasks");
    let before = tasks(common::stats(addr).await);
    assert!(before > 0, "the broker's own tasks are counted");
    let mut subs = Vec::new();
    for _ in 0..5 {
        let mut sub = Subscriber::connect(addr, "topics=AAA").await;
        assert_eq!(sub.expect_ack().await, ["AAA"]);
        subs.push(sub);
    }
    let during = tasks(common::stats(addr).await);
    assert!(during >= before + 5, "{before} → {during} with 5 sessions");
    let metrics = http_get(addr, "/metrics").await;
    let samples = parse_prometheus(metrics.text());
    let gauge = sample(&samples, "tickcast_tasks", &[]);
    assert!(
        gauge >= (before + 5) as f64,
        "{before} → {gauge} on /metrics"
    );
    drop(subs);
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let after = tasks(common::stats(addr).await);
        if after <= before {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sessions closed but {after} tasks alive (was {before})"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
