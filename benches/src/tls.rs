//! wss and https for the load generator (`--tls`): the client side trusts
//! one CA file (the protocol crate's configuration, as the SDK's), and a
//! spawned server gets a self-signed certificate for `localhost` made at
//! run time, which the client then trusts.
//!
//! Every connection does a full handshake (no session resumption: each
//! [`connect`] makes a fresh rustls client session with the shared
//! configuration, whose resumption cache is disabled), so a connection-rate
//! figure is the cost of new handshakes, the worst case of a reconnect storm.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The name every connection asks for and the certificate is made for.
pub const SERVER_NAME: &str = "localhost";

/// How the load generator's clients speak TLS.
#[derive(Debug, Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
}

impl ClientTls {
    /// Trusting the certificates in `ca` (PEM).
    pub fn trusting(ca: &Path) -> Result<Self> {
        let config = tickcast_protocol::tls::client_config(Some(ca))?;
        let mut config = Arc::unwrap_or_clone(config);
        config.resumption = rustls::client::Resumption::disabled();
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// The configuration, for a blocking connection (`http.rs`).
    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// A TLS session on `socket`, handshake done.
    pub async fn connect(&self, socket: TcpStream) -> Result<TlsStream<TcpStream>> {
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(server_name(), socket)
            .await
            .context("TLS handshake")
    }
}

/// [`SERVER_NAME`] as rustls takes it.
pub fn server_name() -> ServerName<'static> {
    ServerName::try_from(SERVER_NAME).expect("a valid DNS name")
}

/// A self-signed certificate for `localhost` and 127.0.0.1 (ECDSA P-256,
/// rcgen's default, as the README's `openssl` line makes), written into
/// `dir` as `tls-cert.pem` and `tls-key.pem`; their paths.
pub fn self_signed(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let made =
        rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_owned(), "127.0.0.1".to_owned()])
            .context("make a test certificate")?;
    let (cert, key) = (dir.join("tls-cert.pem"), dir.join("tls-key.pem"));
    std::fs::write(&cert, made.cert.pem()).with_context(|| format!("write {}", cert.display()))?;
    std::fs::write(&key, made.signing_key.serialize_pem())
        .with_context(|| format!("write {}", key.display()))?;
    Ok((cert, key))
}
