//! The real binary's settings and logs: a flag wins over its `TICKCAST_*`
//! variable, which wins over the `--config` file; a bad file is one line
//! naming the key; relations hold across layers; and no secret (the JWT
//! key, the TLS key, a client's or a publisher's token) reaches the logs,
//! written as JSON at `trace`, or what /stats, /connections and /symbols
//! answer.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use common::pki::{tls_connect, TestCa};
use common::tokens::{claims, hs256, publisher, sign, token, SECRET};
use common::{Publisher, Subscriber, WAIT};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::MaybeTlsStream;

/// The binary, with no `TICKCAST_*` variable but `env`, logging JSON.
fn broker(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tickcast-broker"));
    for (var, _) in std::env::vars() {
        if var.starts_with("TICKCAST_") {
            cmd.env_remove(var);
        }
    }
    cmd.env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .args(["--log-format", "json"])
        .args(args)
        .stdin(Stdio::null());
    cmd
}

/// A running broker whose log lines (stderr) arrive on a channel.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn start(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self { child, lines }
    }

    /// The fields of the first JSON log line whose message starts with
    /// `message`; every line before it must be JSON too.
    fn wait_for(&self, message: &str, seen: &mut Vec<String>) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let line = self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("no {message:?} in the log: {seen:#?}"));
            let json: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
            seen.push(line);
            let fields = &json["fields"];
            if fields["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(message))
            {
                return fields.clone();
            }
        }
    }

    /// SIGTERM; waits for the exit and returns everything it wrote
    /// (stdout, the summary, and the log lines not yet read).
    fn stop(mut self, seen: &mut Vec<String>) -> String {
        let pid = self.child.id().to_string();
        let term = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(term.success());
        let mut out = String::new();
        std::io::Read::read_to_string(&mut self.child.stdout.take().unwrap(), &mut out).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}");
        seen.extend(self.lines.iter());
        out
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The simulator's symbol count a broker started with `args` and `env`
/// reports.
fn symbols(args: &[&str], env: &[(&str, &str)]) -> u64 {
    let mut all = vec!["--listen", "127.0.0.1:0", "--rate", "50"];
    all.extend_from_slice(args);
    let running = Running::start(broker(&all, env));
    let fields = running.wait_for("simulated feed started", &mut Vec::new());
    fields["symbols"].as_u64().unwrap()
}

#[test]
fn a_flag_wins_over_the_environment_which_wins_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tickcast.toml");
    std::fs::write(&file, "symbols = 11\nrate = 40.5\nopen-burst = true\n").unwrap();
    let file = file.to_str().unwrap();
    assert_eq!(symbols(&[], &[]), 100, "the built-in default");
    assert_eq!(symbols(&["--config", file], &[]), 11);
    // The file's name may come from the environment too.
    assert_eq!(symbols(&[], &[("TICKCAST_CONFIG", file)]), 11);
    let env = [("TICKCAST_SYMBOLS", "12")];
    assert_eq!(symbols(&["--config", file], &env), 12);
    assert_eq!(symbols(&["--config", file, "--symbols", "13"], &env), 13);
    assert_eq!(symbols(&["--symbols", "13"], &env), 13);
}

/// Runs the binary to its (failed) end; its stderr.
fn refused(args: &[&str]) -> String {
    let out = broker(args, &[]).output().unwrap();
    assert!(!out.status.success());
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn a_bad_file_is_one_line_naming_the_key_and_relations_hold_across_layers() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    let name = file.to_str().unwrap();
    let cases = [
        ("max-conections = 5\n", "unknown key `max-conections`"),
        (
            "symbols = \"many\"\n",
            "`symbols`: expected a number, found string",
        ),
        (
            "slow-consumer = \"wait\"\n",
            "`slow-consumer`: invalid value 'wait': expected one of conflate, drop, disconnect",
        ),
        (
            "listen = \"localhost\"\n",
            "`listen`: invalid value 'localhost': ",
        ),
        ("[tls]\ncert = \"a.pem\"\n", "unknown key `tls`"),
        (
            "listen = { port = 1 }\n",
            "`listen`: expected a string, found table",
        ),
    ];
    for (text, want) in cases {
        std::fs::write(&file, text).unwrap();
        let err = refused(&["--config", name]);
        assert!(
            err.starts_with(&format!("error: {name}: {want}")),
            "{text:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{text:?}: {err}");
    }
    // A feed in the file and another on the command line: both are set.
    std::fs::write(&file, "ingest = \"127.0.0.1:0\"\n").unwrap();
    let err = refused(&["--config", name, "--replay", "day.tcf"]);
    assert!(err.contains("different feeds"), "{err}");
    // Half a TLS pair in the environment.
    let out = broker(&[], &[("TICKCAST_TLS_CERT", "cert.pem")])
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--tls-cert needs --tls-key"), "{err}");
}

/// A request over TLS with `headers`; the whole answer.
async fn https(addr: SocketAddr, ca: &TestCa, target: &str, headers: &str) -> String {
    let socket = TcpStream::connect(addr).await.unwrap();
    let mut tls = tls_connect(ca.client_config(), socket).await.unwrap();
    let req =
        format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n");
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, tls.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// A wss upgrade to `target` with `bearer` as Authorization (when given);
/// the subscriber, or the refusal's status.
async fn wss(
    addr: SocketAddr,
    ca: &TestCa,
    target: &str,
    bearer: Option<&str>,
) -> Result<Subscriber, u16> {
    let socket = TcpStream::connect(addr).await.unwrap();
    let tls = tls_connect(ca.client_config(), socket).await.unwrap();
    let mut req = format!("wss://localhost:{}{target}", addr.port())
        .into_client_request()
        .unwrap();
    if let Some(token) = bearer {
        let value = format!("Bearer {token}").parse().unwrap();
        req.headers_mut().insert("authorization", value);
    }
    match tokio_tungstenite::client_async(req, MaybeTlsStream::Rustls(tls)).await {
        Ok((ws, _)) => Ok(Subscriber { ws }),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

/// Everything a broker with a TLS key and a JWT secret logs at `trace`
/// while clients and a publisher use tokens (good, forged, expired, in the
/// query, the header and a cookie), and every answer of /stats,
/// /connections and /symbols: none holds a secret.
#[tokio::test]
async fn no_secret_reaches_the_logs_or_the_routes() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let server = ca.server_cert();
    let (cert, key) = server.write(dir.path());
    let secret_file = dir.path().join("jwt.secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    let (cert, key, secret_file) = (path(&cert), path(&key), path(&secret_file));
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--ingest",
        "127.0.0.1:0",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--jwt-secret-file",
        &secret_file,
    ];
    let mut cmd = broker(&args, &[]);
    cmd.env("RUST_LOG", "trace");
    let running = Running::start(cmd);
    let mut seen = Vec::new();
    let serving = running.wait_for("serving https://", &mut seen);
    let addr: SocketAddr = serving["message"].as_str().unwrap()["serving https://".len()..]
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let ingest = running.wait_for("accepting publishers on ", &mut seen);
    let ingest: SocketAddr = ingest["message"].as_str().unwrap()
        ["accepting publishers on ".len()..]
        .parse()
        .unwrap();

    let alice = token("alice", &["AAPL"]);
    let forged = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"not the broker's secret at all"),
        &claims("mallory", &["*"], 3600),
    );
    let expired = hs256(&claims("bob", &["*"], -120));
    let feeder = publisher("feeder", &["AAPL"]);

    let mut feed = Publisher::over(Box::new(TcpStream::connect(ingest).await.unwrap()));
    feed.authenticate(&feeder).await;
    let mut sub = wss(addr, &ca, &format!("/ws?topics=AAPL&token={alice}"), None)
        .await
        .unwrap();
    sub.expect_ack().await;
    feed.publish(&["AAPL"]).await;
    sub.expect_tick().await;
    let _by_header = wss(addr, &ca, "/ws", Some(&alice)).await.unwrap();
    assert_eq!(wss(addr, &ca, "/ws", Some(&forged)).await.err(), Some(401));
    let target = format!("/ws?token={expired}");
    assert_eq!(wss(addr, &ca, &target, None).await.err(), Some(401));
    let mut answers = Vec::new();
    for route in ["/stats", "/connections"] {
        let bearer = format!("Authorization: Bearer {alice}\r\n");
        answers.push(https(addr, &ca, route, &bearer).await);
    }
    let cookie = format!("Cookie: tickcast_token={alice}\r\n");
    answers.push(https(addr, &ca, "/symbols", &cookie).await);
    answers.push(https(addr, &ca, &format!("/symbols?token={forged}"), "").await);
    assert!(answers[0].starts_with("HTTP/1.1 200"), "{}", answers[0]);
    assert!(answers[1].contains("\"peer\""), "{}", answers[1]);
    assert!(answers[2].contains("AAPL"), "{}", answers[2]);
    drop(sub);

    let summary = running.stop(&mut seen);
    // Every line was JSON (`wait_for` parsed those before the address);
    // the rest are checked here.
    for line in &seen {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    assert!(
        seen.iter().any(|l| l.contains("publisher authenticated")),
        "the trace was read"
    );
    let everything = [seen.join("\n"), summary, answers.join("\n")].join("\n");
    let secret = String::from_utf8_lossy(SECRET).into_owned();
    let mut secrets = vec![secret];
    for jwt in [&alice, &forged, &expired, &feeder] {
        secrets.push(jwt.clone());
        // The signature alone, and the claims alone.
        secrets.extend(jwt.split('.').skip(1).map(str::to_owned));
    }
    secrets.extend(
        server
            .key_pem
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 16)
            .map(str::to_owned),
    );
    for secret in &secrets {
        assert!(
            !everything.contains(secret.as_str()),
            "a secret was written: {secret}"
        );
    }
}
