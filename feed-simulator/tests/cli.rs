//! The real `feed-simulator` binary: one-line errors for bad input, and
//! `record`, `inspect`, `import`, `publish` and `replay` doing their job over
//! real files and real sockets on 127.0.0.1.

mod support;

use std::collections::HashMap;
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use feed_simulator::file::FeedReader;
use tickcast_protocol::framing::split_record;
use tickcast_protocol::Tick;

/// Upper bound for any one command; they all finish in well under a second.
const COMMAND_LIMIT: Duration = Duration::from_secs(30);

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_feed-simulator"))
}

/// Runs a command to completion within [`COMMAND_LIMIT`] (killed if not).
fn run_bounded(mut cmd: Command) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish(child)
}

fn finish(mut child: Child) -> Output {
    let deadline = Instant::now() + COMMAND_LIMIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("command did not finish within {COMMAND_LIMIT:?}");
        }
        sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

fn run(args: &[&str]) -> Output {
    let mut cmd = bin();
    cmd.args(args);
    run_bounded(cmd)
}

/// Asserts a failed run that printed exactly one `error:` line.
fn assert_one_line_error(out: &Output, should_mention: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "succeeded; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(should_mention), "{stderr}");
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Accepts one connection within the command limit.
fn accept_one(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + COMMAND_LIMIT;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                stream.set_read_timeout(Some(COMMAND_LIMIT)).unwrap();
                return stream;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("no connection: {e}"),
        }
    }
}

/// Reads the connection to its end and decodes every record.
fn read_ticks(mut stream: TcpStream) -> Vec<Tick> {
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    let mut buf = BytesMut::from(&bytes[..]);
    let mut ticks = Vec::new();
    while let Some(payload) = split_record(&mut buf).unwrap() {
        ticks.push(Tick::decode(&payload).unwrap());
    }
    assert!(
        buf.is_empty(),
        "{} stray bytes after the last record",
        buf.len()
    );
    ticks
}

fn assert_seq_gap_free(ticks: &[Tick]) {
    let mut last: HashMap<&str, u64> = HashMap::new();
    for t in ticks {
        let prev = last.insert(&t.sym, t.seq).unwrap_or(0);
        assert_eq!(t.seq, prev + 1, "{} seq after {prev}", t.sym);
    }
}

/// A local port that was just free: bound, then released.
fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[test]
fn missing_file_is_a_one_line_error() {
    assert_one_line_error(
        &run(&["inspect", "/nonexistent/x.feed"]),
        "/nonexistent/x.feed",
    );
    let out = run(&["replay", "/nonexistent/x.feed", "--to", "127.0.0.1:9"]);
    assert_one_line_error(&out, "cannot open feed file");
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("o.feed");
    let out = run(&[
        "import",
        "--csv",
        "/nonexistent/x.csv",
        "--out",
        path_str(&out_file),
    ]);
    assert_one_line_error(&out, "cannot open CSV file");
}

#[test]
fn unknown_flag_is_a_one_line_error() {
    let out = run(&["record", "--bogus", "--duration", "1s", "--out", "x"]);
    assert_one_line_error(&out, "--bogus");
    assert_eq!(out.status.code(), Some(2));
    assert_one_line_error(&run(&["fly"]), "fly");
    assert_one_line_error(&run(&["record", "--duration", "1s"]), "--out");
}

#[test]
fn bad_numbers_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("o.feed");
    let out = path_str(&out_file);
    let neg = run(&["record", "--rate", "-5", "--duration", "1s", "--out", out]);
    assert_one_line_error(&neg, "rate must be a positive number");
    assert_one_line_error(
        &run(&["record", "--rate", "abc", "--duration", "1s", "--out", out]),
        "rate",
    );
    assert_one_line_error(
        &run(&["record", "--duration", "soon", "--out", out]),
        "soon",
    );
    assert_one_line_error(
        &run(&["record", "--symbols", "0", "--duration", "1s", "--out", out]),
        "symbols must be between 1",
    );
    assert!(!out_file.exists(), "no file for rejected parameters");
    assert_one_line_error(
        &run(&["replay", "f.feed", "--to", "127.0.0.1:9", "--speed", "0"]),
        "speed must be a positive number",
    );
}

#[test]
fn unreachable_broker_is_a_one_line_error() {
    let addr = closed_port().to_string();
    let out = run(&["publish", "--to", &addr, "--rate", "10", "--duration", "1s"]);
    assert_one_line_error(&out, &format!("cannot connect to {addr}"));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.feed");
    let rec = run(&["record", "--duration", "10ms", "--out", path_str(&file)]);
    assert!(rec.status.success());
    let out = run(&["replay", path_str(&file), "--to", &addr]);
    assert_one_line_error(&out, &format!("cannot connect to {addr}"));
}

#[test]
fn help_explains_every_subcommand() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["record", "publish", "replay", "inspect", "import"] {
        assert!(help.contains(cmd), "{cmd} missing from --help");
        let sub = run(&[cmd, "--help"]);
        assert!(sub.status.success(), "{cmd} --help failed");
        assert!(sub.stdout.len() > 200, "{cmd} --help is too thin");
    }
}

#[test]
fn record_then_inspect_reports_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.feed");
    let args = [
        "record",
        "--symbols",
        "50",
        "--rate",
        "3000",
        "--duration",
        "2s",
    ];
    let rec = run(&[&args[..], &["--seed", "9", "--out", path_str(&file)]].concat());
    assert!(
        rec.status.success(),
        "{}",
        String::from_utf8_lossy(&rec.stderr)
    );
    assert!(rec.stderr.is_empty(), "no progress bar off a terminal");
    let ticks: Vec<Tick> = FeedReader::open(&file)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ticks.len(), 6_000, "exactly rate × duration");

    let out = run(&[
        "inspect",
        path_str(&file),
        "--json",
        "--head",
        "3",
        "--top",
        "5",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "summary + 3 ticks");
    assert_eq!(lines[0]["records"], 6_000);
    assert_eq!(lines[0]["symbols"], 50);
    assert_eq!(lines[0]["seq_gaps"], 0);
    assert_eq!(lines[0]["header"]["seed"], 9);
    assert_eq!(lines[0]["top_symbols"][0]["sym"], "AAPL");
    assert_eq!(lines[0]["top_symbols"].as_array().unwrap().len(), 5);
    let rate = lines[0]["avg_rate"].as_f64().unwrap();
    assert!((rate / 3_000.0 - 1.0).abs() < 0.1, "avg rate {rate}");
    let first: Tick = serde_json::from_value(lines[1].clone()).unwrap();
    assert_eq!(first, ticks[0]);

    let text_out = run(&["inspect", path_str(&file), "--head", "2"]);
    let text = String::from_utf8(text_out.stdout).unwrap();
    assert!(text.contains("records:     6000"), "{text}");
    assert!(text.contains("0 seq gaps"), "{text}");
}

#[test]
fn inspect_of_a_damaged_file_summarises_then_names_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.feed");
    assert!(
        run(&["record", "--duration", "100ms", "--out", path_str(&file)])
            .status
            .success()
    );
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.truncate(bytes.len() - 10);
    std::fs::write(&file, &bytes).unwrap();
    let out = run(&["inspect", path_str(&file)]);
    assert_one_line_error(&out, "truncated");
    assert!(String::from_utf8_lossy(&out.stderr).contains("byte offset"));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("records:     499 (header: 500)"), "{text}");
}

#[test]
fn import_writes_a_feed_file_and_rejects_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
    let out_file = dir.path().join("i.feed");
    let good = format!("{fixtures}/quotes_trades.csv");
    let out = run(&["import", "--csv", &good, "--out", path_str(&out_file)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(FeedReader::open(&out_file).unwrap().count(), 8);

    let bad = format!("{fixtures}/bad_row.csv");
    let out = run(&["import", "--csv", &bad, "--out", path_str(&out_file)]);
    assert_one_line_error(&out, "line 4: crossed quote");
    assert!(!out_file.exists(), "the partial output is removed");
}

#[test]
fn publish_delivers_framed_valid_ticks_in_real_time() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let before = tickcast_protocol::clock::now_ns();
    let mut cmd = bin();
    cmd.args([
        "publish",
        "--to",
        &addr,
        "--rate",
        "2000",
        "--duration",
        "500ms",
    ])
    .args(["--symbols", "20", "--seed", "3"])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let ticks = read_ticks(accept_one(&listener));
    let out = finish(child);
    let after = tickcast_protocol::clock::now_ns();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // 2,000/s for 0.5 s: about 1,000 (Poisson, sd ≈ 32).
    assert!((800..1_200).contains(&ticks.len()), "{} ticks", ticks.len());
    assert_seq_gap_free(&ticks);
    for t in &ticks {
        assert!(t.ts >= before && t.ts <= after, "ts is the send time");
        assert_eq!(t.orig_ts, None);
    }
    assert!(ticks.windows(2).all(|w| w[0].ts <= w[1].ts));
    // Paced in real time: the sends spread over about half a second.
    let span = ticks[ticks.len() - 1].ts - ticks[0].ts;
    assert!(span >= 400_000_000, "sent over only {span} ns");
}

/// Records a one-second feed of 2,000 ticks and reads it back.
fn recorded_feed(dir: &Path) -> (std::path::PathBuf, Vec<Tick>) {
    let file = dir.join("r.feed");
    let args = [
        "record",
        "--rate",
        "2000",
        "--duration",
        "1s",
        "--symbols",
        "30",
    ];
    let rec = run(&[&args[..], &["--out", path_str(&file)]].concat());
    assert!(rec.status.success());
    let ticks = FeedReader::open(&file)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    (file, ticks)
}

fn replay_to_listener(file: &Path, speed: &str) -> (Vec<Tick>, u64, u64) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let before = tickcast_protocol::clock::now_ns();
    let mut cmd = bin();
    cmd.args(["replay", path_str(file), "--to", &addr, "--speed", speed])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let got = read_ticks(accept_one(&listener));
    let out = finish(child);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (got, before, tickcast_protocol::clock::now_ns())
}

#[test]
fn replay_delivers_every_record_with_orig_ts() {
    let dir = tempfile::tempdir().unwrap();
    let (file, recorded) = recorded_feed(dir.path());
    let (got, before, after) = replay_to_listener(&file, "max");
    assert_eq!(got.len(), recorded.len());
    for (g, r) in got.iter().zip(&recorded) {
        assert_eq!(g.orig_ts, Some(r.ts), "orig_ts is the recorded time");
        assert!(g.ts >= before && g.ts <= after, "ts is the send time");
        let restamped = Tick {
            ts: r.ts,
            orig_ts: None,
            ..g.clone()
        };
        assert_eq!(&restamped, r, "everything else as recorded");
    }
}

#[test]
fn replay_at_speed_ten_keeps_a_tenth_of_the_recorded_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let (file, recorded) = recorded_feed(dir.path());
    let (got, _, _) = replay_to_listener(&file, "10");
    assert_eq!(got.len(), recorded.len());
    let recorded_span = recorded[recorded.len() - 1].ts - recorded[0].ts;
    let sent_span = got[got.len() - 1].ts - got[0].ts;
    // Never early: the last tick leaves no sooner than a tenth of the span
    // after the first (a little slack for the first tick's own send delay).
    assert!(
        sent_span as f64 >= 0.95 * recorded_span as f64 / 10.0,
        "sent over {sent_span} ns for a recorded {recorded_span} ns"
    );
    // Every tick is sent no earlier than its due time relative to the first.
    for (g, r) in got.iter().zip(&recorded) {
        let due = (r.ts - recorded[0].ts) / 10;
        assert!(g.ts - got[0].ts + 1_000_000 >= due, "tick sent early");
    }
}

#[path = "../../broker/tests/common/pki.rs"]
mod pki;

/// Accepts one TLS connection with `cert` and reads it to its end (the
/// close_notify): the records' payloads.
fn read_tls_records(listener: &TcpListener, cert: &pki::ServerCert) -> Vec<Vec<u8>> {
    let bytes = read_tls(listener, cert).unwrap();
    let mut buf = BytesMut::from(&bytes[..]);
    let mut out = Vec::new();
    while let Some(payload) = split_record(&mut buf).unwrap() {
        out.push(payload.to_vec());
    }
    assert!(buf.is_empty());
    out
}

/// The TLS server side of one connection: everything it received.
fn read_tls(listener: &TcpListener, cert: &pki::ServerCert) -> std::io::Result<Vec<u8>> {
    use rustls::pki_types::pem::PemObject;
    let chain = rustls::pki_types::CertificateDer::pem_slice_iter(cert.chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let conn = rustls::ServerConnection::new(std::sync::Arc::new(config)).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, accept_one(listener));
    let mut bytes = Vec::new();
    tls.read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[test]
fn publish_and_replay_send_the_token_first_over_tls_with_a_given_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::TestCa::new();
    let cert = ca.server_cert();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.root_pem()).unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "a.b.c\n").unwrap();
    let (feed, recorded) = recorded_feed(dir.path());
    let conn = [
        "--token-file",
        path_str(&token_file),
        "--tls",
        "--ca",
        path_str(&ca_file),
        "--server-name",
        "localhost",
    ];
    let publish: Vec<&str> = vec!["publish", "--rate", "500", "--duration", "200ms"];
    let replay: Vec<&str> = vec!["replay", path_str(&feed), "--speed", "max"];
    for (what, args) in [("publish", publish), ("replay", replay)] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let mut cmd = bin();
        cmd.args(&args)
            .args(["--to", &addr])
            .args(conn)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = cmd.spawn().unwrap();
        let records = read_tls_records(&listener, &cert);
        let out = finish(child);
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let first = tickcast_protocol::control::PublisherRecord::parse(&records[0]);
        assert_eq!(
            first,
            Some(tickcast_protocol::control::PublisherRecord::Auth {
                token: "a.b.c".into()
            }),
            "{what}: the token, newline trimmed, comes first"
        );
        let ticks: Vec<Tick> = records[1..]
            .iter()
            .map(|r| Tick::decode(r).unwrap())
            .collect();
        assert!(!ticks.is_empty(), "{what}");
        if what == "replay" {
            assert_eq!(ticks.len(), recorded.len());
        }
    }

    // A CA that did not sign the broker's certificate: a one-line error.
    let stranger = pki::TestCa::new();
    let other_ca = dir.path().join("other.pem");
    std::fs::write(&other_ca, stranger.root_pem()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || read_tls(&listener, &cert).is_err());
    let out = run(&[
        "publish",
        "--rate",
        "500",
        "--duration",
        "200ms",
        "--to",
        &addr,
        "--tls",
        "--ca",
        path_str(&other_ca),
        "--server-name",
        "localhost",
    ]);
    assert_one_line_error(&out, "TLS handshake");
    assert!(server.join().unwrap(), "the handshake must fail");
}

/// A small mbp-1 DBN file from the `dbn` crate's encoder: one symbol
/// mapping, then `n` quotes of AAPL one microsecond apart.
fn dbn_file(path: &Path, n: u64) {
    use dbn::encode::{dbn::Encoder, EncodeRecord};
    use dbn::{rtype, BidAskPair, Mbp1Msg, Metadata, RecordHeader, SType, Schema};
    const DAY: u64 = 1_767_571_200_000_000_000;
    let metadata = Metadata::builder()
        .dataset("XNAS.ITCH")
        .schema(Some(Schema::Mbp1))
        .start(DAY)
        .stype_in(Some(SType::RawSymbol))
        .stype_out(SType::InstrumentId)
        .build();
    let mut enc = Encoder::new(std::fs::File::create(path).unwrap(), &metadata).unwrap();
    let mapping = dbn::SymbolMappingMsg::new(
        7,
        DAY,
        SType::RawSymbol,
        "AAPL",
        SType::InstrumentId,
        "AAPL",
        DAY,
        u64::MAX,
    )
    .unwrap();
    enc.encode_record(&mapping).unwrap();
    for i in 0..n {
        let ts = DAY + 52_200_000_000_000 + i * 1_000;
        enc.encode_record(&Mbp1Msg {
            hd: RecordHeader::new::<Mbp1Msg>(rtype::MBP_1, 2, 7, ts),
            price: 189_500_000_000,
            size: 100,
            action: b'A' as std::ffi::c_char,
            side: b'B' as std::ffi::c_char,
            flags: Default::default(),
            depth: 0,
            ts_recv: ts,
            ts_in_delta: 0,
            sequence: 0,
            levels: [BidAskPair {
                bid_px: 189_500_000_000,
                ask_px: 189_520_000_000,
                bid_sz: 100 + i as u32,
                ask_sz: 200,
                ..Default::default()
            }],
        })
        .unwrap();
    }
}

#[test]
fn import_dbn_reports_counts_and_keeps_what_precedes_damage() {
    let dir = tempfile::tempdir().unwrap();
    let dbn = dir.path().join("day.dbn");
    let out_file = dir.path().join("day.feed");
    dbn_file(&dbn, 3);
    let out = run(&[
        "import",
        "--dbn",
        path_str(&dbn),
        "--out",
        path_str(&out_file),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("imported 3 ticks of 1 symbols")
            && stderr.contains("4 input records read, 1 skipped"),
        "{stderr}"
    );
    assert_eq!(FeedReader::open(&out_file).unwrap().count(), 3);

    // Cut the last record short: two ticks kept, the offset named.
    let bytes = std::fs::read(&dbn).unwrap();
    std::fs::write(&dbn, &bytes[..bytes.len() - 7]).unwrap();
    let offset = bytes.len() - 80;
    let out = run(&[
        "import",
        "--dbn",
        path_str(&dbn),
        "--out",
        path_str(&out_file),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!stderr.contains("panicked"), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: ") && last.contains(&format!("byte offset {offset}")),
        "{stderr}"
    );
    let kept: Vec<Tick> = FeedReader::open(&out_file)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(kept.len(), 2);

    // Neither --csv nor --dbn: a usage error.
    let out = run(&["import", "--out", path_str(&out_file)]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn import_itch_needs_a_date_and_keeps_a_symbol_subset() {
    let dir = tempfile::tempdir().unwrap();
    let itch = dir.path().join("day.itch");
    let out_file = dir.path().join("day.feed");
    let mut s = support::itch::ItchStream::default();
    let open = 34_200_000_000_000;
    s.stock_directory(1, open, "AAPL");
    s.stock_directory(2, open, "MSFT");
    s.add(1, open, 1, true, 100, "AAPL", 1_895_000);
    s.add(1, open + 1, 2, false, 100, "AAPL", 1_895_200);
    s.add(2, open + 2, 3, true, 100, "MSFT", 4_121_000);
    s.add(2, open + 3, 4, false, 100, "MSFT", 4_121_300);
    std::fs::write(&itch, &s.bytes).unwrap();
    let args = |extra: &[&str]| {
        let mut a = vec![
            "import",
            "--itch",
            path_str(&itch),
            "--out",
            path_str(&out_file),
        ];
        a.extend_from_slice(extra);
        a.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let run_args = |a: Vec<String>| run(&a.iter().map(String::as_str).collect::<Vec<_>>());

    let out = run_args(args(&["--date", "2026-01-05", "--symbols", "MSFT"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("imported 1 ticks of 1 symbols")
            && stderr.contains("6 input records read, 5 skipped"),
        "{stderr}"
    );
    let ticks: Vec<Tick> = FeedReader::open(&out_file)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ticks.len(), 1);
    assert_eq!(ticks[0].sym, "MSFT");
    // 09:30:00.000000003 New York = 14:30 UTC in January.
    assert_eq!(ticks[0].ts, 1_767_623_400_000_000_003);

    let out = run_args(args(&[]));
    assert_eq!(out.status.code(), Some(2), "--itch without --date");
    let out = run_args(args(&["--date", "2026-02-30"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("YYYY-MM-DD"));
}
