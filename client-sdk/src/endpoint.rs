//! The broker's address, parsed once from the URL the program gives.

use hyper::Uri;

use crate::ClientError;

/// How the WebSocket is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// Plain TCP (`ws://`).
    Ws,
    /// TLS over TCP (`wss://`).
    Wss,
}

/// Where to connect and what to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// The transport.
    pub scheme: Scheme,
    /// Host name or IP address, without IPv6 brackets.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// `host[:port]` as written, for the `Host` header.
    pub authority: String,
    /// Path and query of the upgrade request, e.g. `/ws`.
    pub path: String,
    /// The URL as the program gave it.
    pub url: String,
}

impl Endpoint {
    /// Parses `ws[s]://host[:port][/path][?query]`.
    pub fn parse(url: &str) -> Result<Self, ClientError> {
        let invalid = |reason| ClientError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let uri: Uri = url
            .parse()
            .map_err(|_| invalid("not a URL of the form ws://host:port/path"))?;
        let (scheme, default_port) = match uri.scheme_str() {
            Some("ws") => (Scheme::Ws, 80),
            Some("wss") => (Scheme::Wss, 443),
            _ => return Err(invalid("the scheme must be ws:// or wss://")),
        };
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
        let host = authority.host();
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Ok(Self {
            scheme,
            host: host.to_owned(),
            port: authority.port_u16().unwrap_or(default_port),
            authority: authority.as_str().to_owned(),
            path: uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
            url: url.to_owned(),
        })
    }

    /// `host:port`, for messages.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port_path_and_query() {
        let e = Endpoint::parse("ws://127.0.0.1:8080/ws?topics=AAPL").unwrap();
        assert_eq!(e.host, "127.0.0.1");
        assert_eq!(e.port, 8080);
        assert_eq!(e.authority, "127.0.0.1:8080");
        assert_eq!(e.path, "/ws?topics=AAPL");
        assert_eq!(e.addr(), "127.0.0.1:8080");
    }

    #[test]
    fn defaults_port_and_path_and_unbrackets_ipv6() {
        let e = Endpoint::parse("ws://localhost").unwrap();
        assert_eq!((e.port, e.path.as_str()), (80, "/"));
        let e = Endpoint::parse("ws://[::1]:9000/ws").unwrap();
        assert_eq!(e.host, "::1");
        assert_eq!(e.addr(), "[::1]:9000");
    }

    #[test]
    fn rejects_other_schemes_and_garbage() {
        let e = Endpoint::parse("wss://broker.example/ws").unwrap();
        assert_eq!((e.scheme, e.port), (Scheme::Wss, 443));
        for url in ["http://h/ws", "h:80", "", "ws://", "not a url"] {
            assert!(
                matches!(Endpoint::parse(url), Err(ClientError::InvalidUrl { .. })),
                "{url}"
            );
        }
    }
}
