//! Who a client or publisher is, and what it may see or publish: JSON Web
//! Tokens verified with one key (`jsonwebtoken`).
//!
//! The algorithm is fixed by the key, never taken from the token: a secret
//! (`--jwt-secret-file`) verifies HS256 only; a PEM public key
//! (`--jwt-public-key`) verifies RS256, ES256 or EdDSA, whichever its type
//! is. So `alg: none` (which jsonwebtoken cannot even parse) and HS/RS
//! confusion (an HS256 token "signed" with the public key's bytes) are
//! refused: the token's `alg` must be the one allowed. `exp` and `sub` are
//! required, `nbf` checked when present, `iss` and `aud` when configured;
//! no leeway, so what the broker enforces is what the token says.
//!
//! Claims: `sub` (the user), `syms` (what it may receive,
//! `entitlements.rs`; none without it), `max_conns` (connections it may hold
//! at once, `users.rs`) and, for publishers, `pub` (what it may publish).
//!
//! [`token_from`] finds the token in a request: `Authorization: Bearer`,
//! then `?token=`, then the `tickcast_token` cookie.

pub mod entitlements;
pub mod users;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use hyper::header::{AUTHORIZATION, COOKIE};
use hyper::HeaderMap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::config::{AuthConfig, JwtKey};
use entitlements::Entitlements;

/// Why the configured key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The secret file is empty.
    #[error("{0}: the secret is empty")]
    EmptySecret(PathBuf),
    /// Not a PEM RSA, EC or Ed25519 public key.
    #[error("{0}: not a PEM public key of type RSA, EC (P-256) or Ed25519")]
    NotAPublicKey(PathBuf),
}

/// Why a token was refused; the text is the short reason in a 401 or an
/// error reply (it names no secret and echoes nothing of the token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// No token in the request.
    #[error("a token is required (Authorization: Bearer, ?token= or the tickcast_token cookie)")]
    Missing,
    /// `exp` is past.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// The signature does not verify.
    #[error("bad token signature")]
    BadSignature,
    /// The token's `alg` is not the key's.
    #[error("token algorithm not accepted")]
    WrongAlgorithm,
    /// `iss` is not `--jwt-issuer`.
    #[error("wrong token issuer")]
    WrongIssuer,
    /// `aud` is not `--jwt-audience`.
    #[error("wrong token audience")]
    WrongAudience,
    /// A claim is missing or malformed.
    #[error("bad token claim: {0}")]
    BadClaim(String),
    /// Not a JWT at all.
    #[error("malformed token")]
    Malformed,
}

/// What a verified token grants.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The user (`sub`).
    pub user: Arc<str>,
    /// When it expires, seconds since the Unix epoch (`exp`).
    pub expires: u64,
    /// What it may receive (`syms`).
    pub syms: Arc<Entitlements>,
    /// How many connections the user may hold at once (`max_conns`).
    pub max_conns: Option<u32>,
    /// What it may publish (`pub`); `None` for a client token.
    pub publish: Option<Arc<Entitlements>>,
}

/// The claims we read; others are ignored.
#[derive(Deserialize)]
struct Claims {
    // Options, so that a missing one is named rather than a type error.
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default)]
    syms: Option<Vec<String>>,
    #[serde(default)]
    max_conns: Option<u32>,
    #[serde(default, rename = "pub")]
    publish: Option<Vec<String>>,
}

/// Verifies tokens with the configured key (see the module docs).
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Verifier {
    // The key stays out of every log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

/// The longest user name kept (`sub`), in bytes.
pub const MAX_USER_LEN: usize = 128;

impl Verifier {
    /// Loads the key; the algorithm follows from it.
    pub fn load(config: &AuthConfig) -> Result<Self, KeyError> {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|source| KeyError::Read {
                path: path.clone(),
                source,
            })
        };
        let (key, alg) = match &config.key {
            JwtKey::Secret(path) => {
                let mut secret = read(path)?;
                while matches!(secret.last(), Some(b'\n' | b'\r')) {
                    secret.pop();
                }
                if secret.is_empty() {
                    return Err(KeyError::EmptySecret(path.clone()));
                }
                (DecodingKey::from_secret(&secret), Algorithm::HS256)
            }
            JwtKey::PublicKey(path) => {
                let pem = read(path)?;
                if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
                    (key, Algorithm::RS256)
                } else if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
                    (key, Algorithm::ES256)
                } else if let Ok(key) = DecodingKey::from_ed_pem(&pem) {
                    (key, Algorithm::EdDSA)
                } else {
                    return Err(KeyError::NotAPublicKey(path.clone()));
                }
            }
        };
        let mut validation = Validation::new(alg);
        validation.algorithms = vec![alg];
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.required_spec_claims = HashSet::from(["exp".to_owned(), "sub".to_owned()]);
        // Checked when present unless required: a configured issuer or
        // audience must be there.
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&[issuer]);
            validation.required_spec_claims.insert("iss".to_owned());
        }
        match &config.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                validation.required_spec_claims.insert("aud".to_owned());
            }
            // A token may carry an audience we were not told to check.
            None => validation.validate_aud = false,
        }
        Ok(Self { key, validation })
    }

    /// Verifies a token and reads what it grants.
    pub fn verify(&self, token: &str) -> Result<Grant, Refused> {
        // A header jsonwebtoken cannot read (`alg: none` among them) is a
        // malformed token, not a claim of the wrong type.
        jsonwebtoken::decode_header(token).map_err(|_| Refused::Malformed)?;
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => Refused::Expired,
                ErrorKind::ImmatureSignature => Refused::NotYetValid,
                ErrorKind::InvalidSignature => Refused::BadSignature,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    Refused::WrongAlgorithm
                }
                ErrorKind::InvalidIssuer => Refused::WrongIssuer,
                ErrorKind::InvalidAudience => Refused::WrongAudience,
                ErrorKind::MissingRequiredClaim(claim) => {
                    Refused::BadClaim(format!("`{claim}` is missing"))
                }
                ErrorKind::Json(_) => Refused::BadClaim("claims of the wrong type".to_owned()),
                _ => Refused::Malformed,
            },
        )?;
        let claims = data.claims;
        let missing = |claim: &str| Refused::BadClaim(format!("`{claim}` is missing"));
        let sub = claims.sub.ok_or_else(|| missing("sub"))?;
        let exp = claims.exp.ok_or_else(|| missing("exp"))?;
        if sub.is_empty() || sub.len() > MAX_USER_LEN {
            return Err(Refused::BadClaim(format!(
                "`sub` must be 1-{MAX_USER_LEN} bytes"
            )));
        }
        let patterns = |list: Option<Vec<String>>, name: &str| match list {
            None => Ok(None),
            Some(list) => Entitlements::parse(&list)
                .map(|e| Some(Arc::new(e)))
                .map_err(|e| Refused::BadClaim(format!("`{name}`: {e}"))),
        };
        let syms = patterns(claims.syms, "syms")?.unwrap_or_else(|| Arc::new(Entitlements::none()));
        let publish = patterns(claims.publish, "pub")?;
        Ok(Grant {
            user: Arc::from(sub),
            expires: exp,
            syms,
            max_conns: claims.max_conns,
            publish,
        })
    }
}

/// The name of the cookie a browser page may carry its token in.
pub const COOKIE_NAME: &str = "tickcast_token";

/// The token of a request: `Authorization: Bearer …`, else `?token=…`,
/// else the `tickcast_token` cookie.
pub fn token_from<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let in_query = || {
        query?
            .split('&')
            .find_map(|pair| pair.strip_prefix("token="))
    };
    let in_cookie = || {
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix(COOKIE_NAME)?.strip_prefix('='))
    };
    bearer
        .or_else(in_query)
        .or_else(in_cookie)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn the_token_is_found_in_the_header_the_query_or_the_cookie() {
        let mut h = HeaderMap::new();
        assert_eq!(token_from(&h, Some("topics=A")), None);
        assert_eq!(token_from(&h, Some("topics=A&token=q.q.q")), Some("q.q.q"));
        h.insert(
            COOKIE,
            HeaderValue::from_static("a=1; tickcast_token=c.c.c; b=2"),
        );
        assert_eq!(token_from(&h, None), Some("c.c.c"));
        assert_eq!(token_from(&h, Some("token=q.q.q")), Some("q.q.q"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer h.h.h"));
        assert_eq!(token_from(&h, Some("token=q.q.q")), Some("h.h.h"));
    }
}
