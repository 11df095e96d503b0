//! The `Origin` check before an upgrade.
//!
//! A browser lets any page open a WebSocket to any address, and sends the
//! page's origin with it; WebSocket has no same-origin rule of its own. A
//! broker that accepted every origin could be read from any site a trader
//! visits, through the trader's own browser (cross-site WebSocket
//! hijacking). So an upgrade that names an origin is accepted only if that
//! origin is the broker's own address, the one its dashboard is served
//! from (the request's `Host`, with the scheme the broker serves), or one
//! the operator listed. A request with no `Origin` is not from a browser
//! and is accepted: anything else can send any header it likes, so this
//! check is for browsers only (tokens are what authenticate).
//!
//! Scheme and host compare case-insensitively, the port exactly (80 or 443
//! when the scheme implies it), as RFC 6454 compares origins.

use hyper::header::{HOST, ORIGIN};
use hyper::HeaderMap;

use crate::config::{split_host_port, AllowedOrigins, Origin};

/// Why an origin was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginRefusal {
    /// Not a parseable origin (including `null`, sent by sandboxed pages).
    #[error("origin {0:?} is not allowed")]
    Unreadable(String),
    /// A real origin, not the broker's own nor a listed one.
    #[error("origin {0} is not allowed")]
    NotAllowed(String),
}

/// Checks the request's `Origin` against `policy`; `scheme` is the one the
/// broker serves on this port (`http`, or `https` with TLS).
pub fn check(
    headers: &HeaderMap,
    scheme: &str,
    policy: &AllowedOrigins,
) -> Result<(), OriginRefusal> {
    let Some(value) = headers.get(ORIGIN) else {
        return Ok(());
    };
    if *policy == AllowedOrigins::Any {
        return Ok(());
    }
    let text = String::from_utf8_lossy(value.as_bytes());
    let origin: Origin = text
        .parse()
        .map_err(|_| OriginRefusal::Unreadable(text.chars().take(100).collect()))?;
    let own = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| own_origin(h, scheme));
    let listed = match policy {
        AllowedOrigins::List(list) => list.contains(&origin),
        AllowedOrigins::SameHost | AllowedOrigins::Any => false,
    };
    if own.as_ref() == Some(&origin) || listed {
        Ok(())
    } else {
        Err(OriginRefusal::NotAllowed(origin.to_string()))
    }
}

/// The origin a page served by this broker has: its `Host` with `scheme`.
fn own_origin(host: &str, scheme: &str) -> Option<Origin> {
    let (name, port) = split_host_port(host)?;
    let default_port = if scheme == "https" { 443 } else { 80 };
    Some(Origin {
        scheme: scheme.to_owned(),
        host: name.to_ascii_lowercase(),
        port: port.unwrap_or(default_port),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            h.insert(ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    fn allowed(host: &str, origin: Option<&str>, policy: &AllowedOrigins) -> bool {
        check(&headers(host, origin), "http", policy).is_ok()
    }

    #[test]
    fn the_origin_matrix() {
        let same = AllowedOrigins::SameHost;
        let host = "127.0.0.1:8080";
        assert!(allowed(host, None, &same), "absent: not a browser");
        assert!(allowed(host, Some("http://127.0.0.1:8080"), &same), "own");
        assert!(
            allowed("LocalHost:8080", Some("HTTP://localHOST:8080"), &same),
            "case"
        );
        assert!(
            allowed("example.com", Some("http://example.com:80"), &same),
            "port 80 implied"
        );
        assert!(!allowed(host, Some("https://evil.example"), &same), "evil");
        assert!(
            !allowed(host, Some("http://127.0.0.1:8081"), &same),
            "wrong port"
        );
        assert!(
            !allowed(host, Some("https://127.0.0.1:8080"), &same),
            "wrong scheme"
        );
        assert!(!allowed(host, Some("null"), &same), "sandboxed page");
        assert!(
            !allowed(host, Some("http://127.0.0.1"), &same),
            "port 80 is not 8080"
        );

        let list = AllowedOrigins::List(vec!["https://dash.example.com".parse().unwrap()]);
        assert!(
            allowed(host, Some("https://DASH.example.com:443"), &list),
            "listed"
        );
        assert!(
            allowed(host, Some("http://127.0.0.1:8080"), &list),
            "own, still"
        );
        assert!(
            !allowed(host, Some("https://dash.example.com:8443"), &list),
            "listed host, other port"
        );
        assert!(
            !allowed(host, Some("http://dash.example.com"), &list),
            "listed host, other scheme"
        );

        assert!(
            allowed(host, Some("https://evil.example"), &AllowedOrigins::Any),
            "*"
        );
        assert!(
            allowed(host, Some("null"), &AllowedOrigins::Any),
            "* takes even null"
        );
    }
}
