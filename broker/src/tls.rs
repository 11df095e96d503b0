//! TLS for the client port (`https://`, `wss://`) and, with `--ingest-tls`,
//! the ingest port: the certificate chain and key from PEM files, through
//! rustls (the `ring` provider: it builds with the C compiler alone, where
//! aws-lc needs cmake), reloadable while the broker runs.
//!
//! A reload ([`TlsServer::reload`], SIGHUP in the binary) reads both files
//! again and, if they make a matching pair, swaps it in for the handshakes
//! that follow; connections already up keep the session they negotiated
//! and are not touched. A bad pair is refused with the reason and the old
//! one stays.
//!
//! Locking: the current pair sits behind a `parking_lot` read-write lock,
//! read once per handshake (a reference-count bump) and written once per
//! reload; never held across an await or while taking another lock.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;

/// Why a certificate and key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read or is not PEM.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: rustls_pki_types::pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("{0}: no certificate in it")]
    NoCertificate(PathBuf),
    /// rustls refused the key, or it does not match the certificate.
    #[error("the certificate in {cert} and the key in {key} cannot be used together: {source}")]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        source: rustls::Error,
    },
    /// rustls refused the settings.
    #[error("TLS settings refused: {0}")]
    Config(#[from] rustls::Error),
}

/// The largest plaintext rustls may hold for one connection before the
/// socket takes it: a whole writer visit ([`MAX_BATCH_BYTES`]) and some,
/// so one visit is encrypted at once and written with one vectored call
/// (rustls' default, 64 KiB, would cut a full visit into four writes).
///
/// [`MAX_BATCH_BYTES`]: crate::fanout::writer::MAX_BATCH_BYTES
pub const SESSION_BUFFER: usize = crate::fanout::writer::MAX_BATCH_BYTES + 64 * 1024;

/// The TLS side of a listener: the current pair and the acceptor using it.
pub struct TlsServer {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: Arc<Current>,
    acceptor: TlsAcceptor,
    /// The ingest port's: the same pair, no TLS 1.3 session tickets (see
    /// [`TlsServer::accept_publisher`]).
    publishers: TlsAcceptor,
}

/// The pair handshakes use now (see the module docs for its lock).
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().clone())
    }
}

impl TlsServer {
    /// Loads the pair in `files`; serves TLS 1.3 and 1.2, HTTP/1.1 by ALPN.
    pub fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let pair = load_pair(files, &provider)?;
        let current = Arc::new(Current(RwLock::new(Arc::new(pair))));
        let mut config = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut ingest = config.clone();
        ingest.send_tls13_tickets = 0;
        Ok(Self {
            files: files.clone(),
            provider,
            current,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            publishers: TlsAcceptor::from(Arc::new(ingest)),
        })
    }

    /// Reads the files again and uses the new pair for new handshakes; on
    /// an error the old pair stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let pair = load_pair(&self.files, &self.provider)?;
        *self.current.0.write() = Arc::new(pair);
        Ok(())
    }

    /// Runs the server side of a handshake (the caller bounds its time).
    pub async fn accept(&self, stream: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        let mut tls = self.acceptor.accept(stream).await?;
        tls.get_mut().1.set_buffer_limit(Some(SESSION_BUFFER));
        Ok(tls)
    }

    /// The handshake of a publisher (the ingest port), without TLS 1.3
    /// session tickets: a publisher only writes, and tickets it never reads
    /// turn its close into a reset, which can destroy its last ticks before
    /// the broker has read them.
    pub async fn accept_publisher(&self, stream: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        self.publishers.accept(stream).await
    }
}

/// The first byte of every TLS connection: a handshake record. Anything
/// else on a TLS port (`G` of `GET`, say) is not TLS.
pub const HANDSHAKE_RECORD: u8 = 0x16;

fn load_pair(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    fn read(path: &Path) -> impl Fn(rustls_pki_types::pem::Error) -> TlsError + '_ {
        move |source| TlsError::Read {
            path: path.to_owned(),
            source,
        }
    }
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .map_err(read(&files.cert))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read(&files.cert))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(files.cert.clone()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(read(&files.key))?;
    CertifiedKey::from_der(chain, key, provider).map_err(|source| TlsError::Pair {
        cert: files.cert.clone(),
        key: files.key.clone(),
        source,
    })
}

/// How a TLS handshake on an accepted connection ended.
pub enum Handshake {
    /// The TLS session is up.
    Done(Box<TlsStream<TcpStream>>),
    /// The client sent something other than a TLS handshake (plain HTTP,
    /// say); nothing of it was read, so it can be answered in plain text.
    NotTls(TcpStream),
    /// The handshake failed (bad or unsupported hello, unknown CA, …).
    Failed(io::Error),
    /// The client closed before sending anything.
    Gone,
}

/// Waits for the client's first byte (without consuming it), then runs the
/// TLS handshake if it starts one. The caller bounds its time.
pub async fn handshake(tls: &TlsServer, stream: TcpStream) -> Handshake {
    let mut first = [0u8; 1];
    match stream.peek(&mut first).await {
        Ok(0) => return Handshake::Gone,
        Ok(_) if first[0] != HANDSHAKE_RECORD => return Handshake::NotTls(stream),
        Ok(_) => {}
        Err(e) => return Handshake::Failed(e),
    }
    match tls.accept(stream).await {
        Ok(tls) => Handshake::Done(Box::new(tls)),
        Err(e) => Handshake::Failed(e),
    }
}
