//! Token authentication over real sockets: what is refused before the
//! upgrade (and why), the key types and the algorithm confusions, where the
//! token may come from, `max_conns`, the HTTP routes that need a token and
//! the separate metrics port, expiry during a session and renewal with
//! `auth`.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use common::tokens::{self, claims, hs256, now, secret_auth, sign, token};
use common::{limits, Publisher, Received, Subscriber, WAIT};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;
use tickcast_broker::config::{AuthConfig, JwtKey};
use tickcast_broker::{BrokerConfig, FeedConfig, RunningBroker};
use tickcast_protocol::{ErrorCode, ServerMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

async fn broker_with(auth: AuthConfig, metrics_listen: Option<SocketAddr>) -> RunningBroker {
    tickcast_broker::start(BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        feed: FeedConfig::Ingest("127.0.0.1:0".parse().unwrap()),
        limits: limits(),
        auth: Some(auth),
        metrics_listen,
        ..Default::default()
    })
    .await
    .unwrap()
}

async fn hs_broker(dir: &Path) -> RunningBroker {
    broker_with(secret_auth(dir), None).await
}

/// Tries an upgrade with `header` (name, value) set; the HTTP status and
/// body of a refusal, or 101.
async fn upgrade_with(
    addr: SocketAddr,
    query: &str,
    header: Option<(&str, &str)>,
) -> (u16, String) {
    let mut req = format!("ws://{addr}/ws?{query}")
        .into_client_request()
        .unwrap();
    if let Some((name, value)) = header {
        let name: tokio_tungstenite::tungstenite::http::HeaderName = name.parse().unwrap();
        req.headers_mut()
            .insert(name, HeaderValue::from_str(value).unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => (101, String::new()),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => (
            resp.status().as_u16(),
            String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned(),
        ),
        Err(e) => panic!("{e}"),
    }
}

async fn upgrade(addr: SocketAddr, token: &str) -> (u16, String) {
    upgrade_with(addr, &format!("token={token}"), None).await
}

/// A GET with an optional bearer token: status and body.
async fn get(addr: SocketAddr, path: &str, bearer: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let auth = bearer.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn every_bad_token_is_refused_with_401_and_a_reason_before_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker_with(
        AuthConfig {
            issuer: Some("tickcast-idp".into()),
            audience: Some("tickcast".into()),
            ..secret_auth(dir.path())
        },
        None,
    )
    .await;
    let addr = broker.local_addr();
    let good = |extra: serde_json::Value| {
        let mut c = json!({"sub": "alice", "syms": ["AAPL"], "exp": now() + 600,
                           "iss": "tickcast-idp", "aud": "tickcast"});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    assert_eq!(upgrade(addr, &hs256(&good(json!({})))).await.0, 101);

    let other_key = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"another secret entirely"),
        &good(json!({})),
    );
    let header_none = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let alg_none = format!(
        "{header_none}.{}.",
        b64(good(json!({})).to_string().as_bytes())
    );
    // A signed token whose `syms` claim is swapped for `*`, signature kept.
    let signed = hs256(&good(json!({})));
    let mut parts: Vec<&str> = signed.split('.').collect();
    let widened = b64(good(json!({"syms": ["*"]})).to_string().as_bytes());
    parts[1] = &widened;
    let tampered = parts.join(".");
    let cases = [
        ("no token", String::new(), "a token is required"),
        ("bad signature", other_key, "bad token signature"),
        ("alg none", alg_none, "malformed token"),
        ("tampered syms", tampered, "bad token signature"),
        (
            "expired",
            hs256(&good(json!({"exp": now() - 5}))),
            "token expired",
        ),
        (
            "not yet valid",
            hs256(&good(json!({"nbf": now() + 600}))),
            "token not yet valid",
        ),
        (
            "wrong issuer",
            hs256(&good(json!({"iss": "someone"}))),
            "wrong token issuer",
        ),
        (
            "no issuer",
            hs256(&good(json!({"iss": null}))),
            "`iss` is missing",
        ),
        (
            "wrong audience",
            hs256(&good(json!({"aud": "other"}))),
            "wrong token audience",
        ),
        (
            "no audience",
            hs256(&good(json!({"aud": null}))),
            "`aud` is missing",
        ),
        (
            "no exp",
            hs256(&good(json!({"exp": null}))),
            "`exp` is missing",
        ),
        (
            "no sub",
            hs256(&good(json!({"sub": null}))),
            "`sub` is missing",
        ),
        (
            "bad pattern",
            hs256(&good(json!({"syms": ["A B"]}))),
            "bad token claim: `syms`",
        ),
        ("not a JWT", "garbage".to_owned(), "malformed token"),
    ];
    let refusals = cases.len() as u64;
    for (what, token, reason) in cases {
        let (status, body) = upgrade(addr, &token).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert!(body.contains(reason), "{what}: {body:?}");
        assert!(!body.contains(&token) || token.is_empty(), "{what}: echoed");
    }
    assert_eq!(broker.metrics().auth_refused.get(), refusals);
    assert_eq!(broker.metrics().connections_total.get(), 1);
    broker.shutdown().await;
}

#[tokio::test]
async fn the_token_may_come_in_the_header_the_query_or_the_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let broker = hs_broker(dir.path()).await;
    let addr = broker.local_addr();
    let t = token("alice", &["AAPL"]);
    let bearer = format!("Bearer {t}");
    let cookie = format!("theme=dark; tickcast_token={t}");
    assert_eq!(
        upgrade_with(addr, "", Some(("authorization", &bearer)))
            .await
            .0,
        101
    );
    assert_eq!(upgrade_with(addr, &format!("token={t}"), None).await.0, 101);
    assert_eq!(
        upgrade_with(addr, "", Some(("cookie", &cookie))).await.0,
        101
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn the_algorithm_follows_the_key_and_confusions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let claims = claims("alice", &["AAPL"], 600);
    let ec = tokens::rcgen_pair(dir.path(), &rcgen::PKCS_ECDSA_P256_SHA256, "ec");
    let ed = tokens::rcgen_pair(dir.path(), &rcgen::PKCS_ED25519, "ed");
    let rsa = tokens::rsa_pair(dir.path());
    let cases = [
        (
            Algorithm::ES256,
            EncodingKey::from_ec_pem(&ec.private_pem).unwrap(),
            &ec.public,
        ),
        (
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(&ed.private_pem).unwrap(),
            &ed.public,
        ),
        (
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(&rsa.private_pem).unwrap(),
            &rsa.public,
        ),
    ];
    for (alg, private, public) in cases {
        let broker = broker_with(
            AuthConfig {
                key: JwtKey::PublicKey(public.clone()),
                issuer: None,
                audience: None,
            },
            None,
        )
        .await;
        let addr = broker.local_addr();
        assert_eq!(
            upgrade(addr, &sign(alg, &private, &claims)).await.0,
            101,
            "{alg:?}"
        );
        // HS256 "signed" with the public key's own bytes: the classic
        // confusion, refused because the key fixes the algorithm.
        let public_pem = std::fs::read(public).unwrap();
        let confused = sign(
            Algorithm::HS256,
            &EncodingKey::from_secret(&public_pem),
            &claims,
        );
        let (status, body) = upgrade(addr, &confused).await;
        assert_eq!(
            (status, body.trim()),
            (401, "token algorithm not accepted"),
            "{alg:?}"
        );
        // A token of the HS256 secret is refused too.
        assert_eq!(upgrade(addr, &hs256(&claims)).await.0, 401);
        broker.shutdown().await;
    }
    // A file that is no public key is an error at start.
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a key").unwrap();
    let err = tickcast_broker::start(BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        feed: FeedConfig::None,
        auth: Some(AuthConfig {
            key: JwtKey::PublicKey(bad),
            issuer: None,
            audience: None,
        }),
        ..Default::default()
    })
    .await
    .err()
    .unwrap();
    assert!(err.to_string().contains("not a PEM public key"), "{err}");
}

#[tokio::test]
async fn a_user_past_max_conns_gets_429_until_one_of_its_connections_closes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = hs_broker(dir.path()).await;
    let addr = broker.local_addr();
    let limited = hs256(&json!({"sub": "bob", "syms": ["*"], "exp": now() + 600, "max_conns": 2}));
    let first = Subscriber::connect(addr, &format!("token={limited}")).await;
    let _second = Subscriber::connect(addr, &format!("token={limited}")).await;
    let (status, body) = upgrade(addr, &limited).await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("max_conns"), "{body}");
    // Another user is not counted with bob.
    assert_eq!(upgrade(addr, &token("carol", &["*"])).await.0, 101);
    drop(first);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, _) = upgrade(addr, &limited).await;
        if status == 101 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bob's count never fell"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(broker.metrics().user_limit_refused.get(), 1);
    broker.shutdown().await;
}

#[tokio::test]
async fn http_routes_need_a_token_and_the_metrics_port_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker_with(
        secret_auth(dir.path()),
        Some("127.0.0.1:0".parse().unwrap()),
    )
    .await;
    let addr = broker.local_addr();
    let t = token("alice", &["AAPL", "BRK.*"]);
    for path in ["/stats", "/symbols", "/connections", "/metrics"] {
        let (status, body) = get(addr, path, None).await;
        assert_eq!(status, 401, "{path}: {body}");
        assert_eq!(get(addr, path, Some("nope")).await.0, 401, "{path}");
        assert_eq!(get(addr, path, Some(&t)).await.0, 200, "{path}");
    }
    assert_eq!(get(addr, "/healthz", None).await.0, 200);
    let metrics = broker.metrics_addr().unwrap();
    let (status, body) = get(metrics, "/metrics", None).await;
    assert_eq!(status, 200);
    assert!(body.contains("tickcast_auth_refused_total"), "{body}");
    assert_eq!(get(metrics, "/healthz", None).await.0, 200);
    assert_eq!(
        get(metrics, "/stats", None).await.0,
        404,
        "only metrics there"
    );

    // /symbols lists only what the token is entitled to.
    let mut publisher =
        Publisher::connect_with_token(&broker, &tokens::publisher("feed", &["*"])).await;
    publisher.publish(&["AAPL", "MSFT", "BRK.A", "BRKX"]).await;
    common::wait_ticks_in(&broker, 4).await;
    let (_, body) = get(addr, "/symbols", Some(&t)).await;
    let syms: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    let mut names: Vec<&str> = syms.iter().filter_map(|s| s["sym"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["AAPL", "BRK.A"]);

    // Per-user figures on /metrics: alice's connection and its deliveries.
    let mut sub = Subscriber::connect(addr, &format!("token={t}&topics=AAPL")).await;
    sub.expect_ack().await;
    sub.expect_tick().await;
    // The writer counts right after its write, which the client may read
    // first: poll.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, page) = get(metrics, "/metrics", None).await;
        assert!(
            page.contains("tickcast_user_connections{user=\"alice\"} 1"),
            "{page}"
        );
        // The ack and the snapshot.
        if page.contains("tickcast_user_deliveries_total{user=\"alice\"} 2") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{page}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn an_expiring_token_ends_the_session_with_4001_unless_renewed() {
    let dir = tempfile::tempdir().unwrap();
    let broker = hs_broker(dir.path()).await;
    let addr = broker.local_addr();
    let short = hs256(&claims("alice", &["AAPL"], 2));

    // Not renewed: `token_expired`, then 4001.
    let mut lapsing = Subscriber::connect(addr, &format!("token={short}&topics=AAPL")).await;
    assert_eq!(lapsing.expect_ack().await, ["AAPL"]);
    // Renewed in time (same user, new syms): the session goes on.
    let mut renewing = Subscriber::connect(addr, &format!("token={short}&topics=AAPL")).await;
    assert_eq!(renewing.expect_ack().await, ["AAPL"]);
    let wrong_user = token("mallory", &["*"]);
    renewing
        .send_text(&format!(r#"{{"op":"auth","token":"{wrong_user}"}}"#))
        .await;
    match renewing.next().await {
        Received::Control(ServerMessage::Error { code, message }) => {
            assert_eq!(code, ErrorCode::BadToken);
            assert!(message.contains("another user"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let fresh = hs256(&claims("alice", &["AAPL", "MSFT"], 600));
    renewing
        .send_text(&format!(r#"{{"op":"auth","token":"{fresh}"}}"#))
        .await;
    // The entitlements changed: the (unchanged) list, then the renewal.
    assert_eq!(renewing.expect_ack().await, ["AAPL"]);
    match renewing.next().await {
        Received::Control(ServerMessage::Authenticated { sub, exp }) => {
            assert_eq!(sub, "alice");
            assert!(exp >= now() + 500);
        }
        other => panic!("{other:?}"),
    }
    // MSFT is now allowed.
    assert_eq!(renewing.subscribe(&["MSFT"]).await, ["AAPL", "MSFT"]);

    match lapsing.next().await {
        Received::Control(ServerMessage::Error { code, .. }) => {
            assert_eq!(code, ErrorCode::TokenExpired)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        lapsing.next().await,
        Received::Close(Some(4001), "token expired".into())
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut publisher =
        Publisher::connect_with_token(&broker, &tokens::publisher("feed", &["*"])).await;
    publisher.publish(&["AAPL"]).await;
    assert_eq!(renewing.expect_tick().await.sym, "AAPL");
    assert_eq!(broker.metrics().tokens_expired.get(), 1);
    broker.shutdown().await;
}

#[tokio::test]
async fn the_binary_mints_tokens_the_broker_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let auth = secret_auth(dir.path());
    let JwtKey::Secret(secret) = &auth.key else {
        unreachable!()
    };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tickcast-broker"))
        .arg("token")
        .arg("--secret-file")
        .arg(secret)
        .args([
            "--sub",
            "alice",
            "--syms",
            "AAPL,BRK.*",
            "--ttl",
            "10m",
            "--max-conns",
            "3",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let minted = String::from_utf8(out.stdout).unwrap();
    let broker = broker_with(auth, None).await;
    let addr = broker.local_addr();
    let mut sub = Subscriber::connect(addr, &format!("token={}", minted.trim())).await;
    assert_eq!(sub.subscribe(&["BRK.B"]).await, ["BRK.B"]);
    sub.send_text(r#"{"op":"subscribe","topics":["MSFT"]}"#)
        .await;
    assert!(matches!(
        sub.next().await,
        Received::Control(ServerMessage::Error {
            code: ErrorCode::NotEntitled,
            ..
        })
    ));
    broker.shutdown().await;
}
