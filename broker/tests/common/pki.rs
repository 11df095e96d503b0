//! A test PKI made at test time with rcgen: a root CA, an intermediate, and
//! server certificates for `localhost` and 127.0.0.1 signed by the
//! intermediate, written as PEM files the broker loads (the chain file
//! holds the leaf and then the intermediate, as a real deployment's does).
//! The client SDK's tests use it too (`#[path]`), so it names no broker type.
#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::CertificateDer;

/// A root CA and an intermediate under it.
pub struct TestCa {
    root: CertifiedIssuer<'static, KeyPair>,
    intermediate: CertifiedIssuer<'static, KeyPair>,
}

/// A server certificate (and its chain) with its key, as PEM.
pub struct ServerCert {
    /// The leaf, then the intermediate.
    pub chain_pem: String,
    /// The leaf's private key (PKCS#8).
    pub key_pem: String,
    /// The leaf alone, DER (to tell which certificate a server presented).
    pub leaf_der: CertificateDer<'static>,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params
}

impl TestCa {
    /// A fresh CA (new keys every time).
    pub fn new() -> Self {
        let root = CertifiedIssuer::self_signed(
            ca_params("tickcast test root"),
            KeyPair::generate().unwrap(),
        )
        .unwrap();
        let intermediate = CertifiedIssuer::signed_by(
            ca_params("tickcast test intermediate"),
            KeyPair::generate().unwrap(),
            &root,
        )
        .unwrap();
        Self { root, intermediate }
    }

    /// The root certificate, PEM (what a client trusts).
    pub fn root_pem(&self) -> String {
        self.root.pem()
    }

    /// A new server certificate for `localhost` and 127.0.0.1, with a new key.
    pub fn server_cert(&self) -> ServerCert {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "tickcast test server");
        let leaf = params.signed_by(&key, &self.intermediate).unwrap();
        ServerCert {
            chain_pem: format!("{}{}", leaf.pem(), self.intermediate.pem()),
            key_pem: key.serialize_pem(),
            leaf_der: leaf.der().clone(),
        }
    }

    /// A rustls client configuration trusting this CA's root only.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.root.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }
}

impl ServerCert {
    /// Writes `cert.pem` and `key.pem` into `dir` (replacing any), returns
    /// their paths.
    pub fn write(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, &self.chain_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert, key)
    }
}

/// A TLS connection on `socket` to `localhost`, trusting `config`'s roots.
pub async fn tls_connect(
    config: Arc<rustls::ClientConfig>,
    socket: tokio::net::TcpStream,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(config)
        .connect(name, socket)
        .await
}
