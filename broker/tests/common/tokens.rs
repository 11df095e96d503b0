//! Tokens for tests: JWTs minted with `jsonwebtoken`'s encoder (the
//! broker only decodes), with keys made at test time, and broker
//! configurations that require them.
#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tickcast_broker::config::{AuthConfig, JwtKey};

/// The HS256 secret the test brokers use.
pub const SECRET: &[u8] = b"tickcast test secret, 32 bytes+!";

/// Seconds since the Unix epoch, now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Writes the secret (with a trailing newline, which the broker trims) and
/// returns the auth settings that use it.
pub fn secret_auth(dir: &Path) -> AuthConfig {
    let path = dir.join("jwt.secret");
    let mut bytes = SECRET.to_vec();
    bytes.push(b'\n');
    std::fs::write(&path, bytes).unwrap();
    AuthConfig {
        key: JwtKey::Secret(path),
        issuer: None,
        audience: None,
    }
}

/// Claims for `sub` entitled to `syms`, valid for `ttl` seconds.
pub fn claims(sub: &str, syms: &[&str], ttl: i64) -> Value {
    json!({ "sub": sub, "syms": syms, "exp": now() as i64 + ttl })
}

/// An HS256 token of `claims` signed with [`SECRET`].
pub fn hs256(claims: &Value) -> String {
    sign(Algorithm::HS256, &EncodingKey::from_secret(SECRET), claims)
}

/// A token of `claims` with `alg`, signed with `key`.
pub fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    encode(&Header::new(alg), claims, key).unwrap()
}

/// A token for `sub` entitled to `syms` for an hour.
pub fn token(sub: &str, syms: &[&str]) -> String {
    hs256(&claims(sub, syms, 3600))
}

/// A key pair on disk: the private key PEM (PKCS#8) and the public key file.
pub struct KeyFiles {
    pub private_pem: Vec<u8>,
    pub public: PathBuf,
}

/// An EC P-256 or Ed25519 key pair made with rcgen.
pub fn rcgen_pair(dir: &Path, alg: &'static rcgen::SignatureAlgorithm, name: &str) -> KeyFiles {
    let pair = rcgen::KeyPair::generate_for(alg).unwrap();
    let public = dir.join(format!("{name}.pub.pem"));
    std::fs::write(&public, pair.public_key_pem()).unwrap();
    KeyFiles {
        private_pem: pair.serialize_pem().into_bytes(),
        public,
    }
}

/// An RSA 2048 key pair made with the `openssl` tool (ring, which rcgen
/// uses here, cannot generate RSA keys).
pub fn rsa_pair(dir: &Path) -> KeyFiles {
    let private = dir.join("rsa.pem");
    let public = dir.join("rsa.pub.pem");
    let run = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "openssl {args:?}");
    };
    let (priv_s, pub_s) = (private.to_str().unwrap(), public.to_str().unwrap());
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        priv_s,
    ]);
    run(&["pkey", "-in", priv_s, "-pubout", "-out", pub_s]);
    KeyFiles {
        private_pem: std::fs::read(&private).unwrap(),
        public,
    }
}

/// A publisher's token: `sub` may publish `symbols` (the `pub` claim).
pub fn publisher(sub: &str, symbols: &[&str]) -> String {
    hs256(&serde_json::json!({ "sub": sub, "pub": symbols, "exp": now() + 3600 }))
}
