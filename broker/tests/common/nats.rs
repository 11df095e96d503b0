//! A real `nats-server` (Debian's package, installed by the test command)
//! on a free loopback port, killed when dropped. Only std and tempfile: the
//! client SDK's scale-out tests use it too (by `#[path]`).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nats-server.
pub struct NatsServer {
    child: Child,
    /// Its client port.
    pub addr: SocketAddr,
    /// Its JetStream store, removed with it.
    _store: tempfile::TempDir,
}

/// Where the server binary is: on the PATH, or where Debian puts it.
fn binary() -> PathBuf {
    let debian = Path::new("/usr/sbin/nats-server");
    if debian.exists() {
        debian.to_path_buf()
    } else {
        PathBuf::from("nats-server")
    }
}

/// A loopback port nothing listens on (a moment ago).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl NatsServer {
    /// Starts one on a free port and waits until it takes connections.
    pub fn start() -> Self {
        Self::spawn(free_port(), true)
    }

    /// Starts one on `port` (a restart on the same address).
    pub fn start_on(port: u16) -> Self {
        Self::spawn(port, true)
    }

    /// Starts one without JetStream.
    pub fn start_without_jetstream() -> Self {
        Self::spawn_with(free_port(), false, &[])
    }

    /// Starts one with these further options (`--user`, `--tls`, …).
    pub fn start_with(options: &[&str]) -> Self {
        Self::spawn_with(free_port(), true, options)
    }

    fn spawn(port: u16, jetstream: bool) -> Self {
        Self::spawn_with(port, jetstream, &[])
    }

    fn spawn_with(port: u16, jetstream: bool, options: &[&str]) -> Self {
        let store = tempfile::tempdir().expect("a temporary directory");
        let mut command = Command::new(binary());
        command.args(["-a", "127.0.0.1", "-p", &port.to_string()]);
        if jetstream {
            command.arg("-js").arg("-sd").arg(store.path());
        }
        command.args(options);
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs (the test command installs it)");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not start on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            addr,
            _store: store,
        }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
