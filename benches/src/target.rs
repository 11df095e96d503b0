//! The server under test: where it listens, and (with `--spawn`) starting
//! and stopping it.
//!
//! tickcast takes ticks on its TCP ingest port and serves WebSocket on its
//! HTTP port; nats-server takes `PUB`s on its client port and serves
//! WebSocket on a listener its config enables. A spawned server can be
//! pinned to its own core with `taskset`, so server and loadgen never share
//! one and each result reflects the server, not the contention.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::conn::Protocol;

/// Which kind of server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// tickcast-broker.
    Tickcast,
    /// nats-server with a WebSocket listener.
    Nats,
}

impl TargetKind {
    /// The subscriber protocol for this server.
    pub fn protocol(self) -> Protocol {
        match self {
            TargetKind::Tickcast => Protocol::Tickcast,
            TargetKind::Nats => Protocol::Nats,
        }
    }

    /// The name used in reports and file names.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Tickcast => "tickcast",
            TargetKind::Nats => "nats",
        }
    }
}

/// Where a server listens.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Endpoints {
    /// Which server.
    pub kind: TargetKind,
    /// WebSocket (subscribers); for tickcast also `/stats` and `/symbols`.
    pub ws: SocketAddr,
    /// Where the publisher connects (tickcast ingest or NATS client port).
    pub publish: SocketAddr,
}

/// How to start a server.
#[derive(Debug, Clone)]
pub struct SpawnOptions {
    /// Which server.
    pub kind: TargetKind,
    /// Its executable (None: `tickcast-broker` beside this program, or
    /// `nats-server` on the PATH).
    pub program: Option<PathBuf>,
    /// Pin it to this CPU with `taskset -c`.
    pub cpu: Option<usize>,
    /// Directory for its log (and NATS config).
    pub dir: PathBuf,
    /// Extra arguments for the server (tickcast only), e.g. `--write-coalesce 2ms`.
    pub extra_args: Vec<String>,
    /// Serve its WebSocket over TLS with this certificate and key (PEM
    /// files): tickcast's `--tls-cert`/`--tls-key`, NATS's websocket `tls`
    /// block. The publisher's port stays plain.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// A server this process started; stopped (SIGTERM, then SIGKILL) on drop.
#[derive(Debug)]
pub struct SpawnedServer {
    child: Child,
    /// Where it listens.
    pub endpoints: Endpoints,
}

impl SpawnedServer {
    /// Starts the server on free loopback ports and waits until both ports
    /// accept connections.
    pub fn start(opts: &SpawnOptions) -> Result<Self> {
        std::fs::create_dir_all(&opts.dir)?;
        let ws = free_port()?;
        let publish = free_port()?;
        let (program, args) = match opts.kind {
            TargetKind::Tickcast => {
                let program = match &opts.program {
                    Some(p) => p.clone(),
                    None => sibling_binary("tickcast-broker")?,
                };
                let mut args = vec![
                    "--listen".to_owned(),
                    ws.to_string(),
                    "--ingest".to_owned(),
                    publish.to_string(),
                ];
                if let Some((cert, key)) = &opts.tls {
                    args.extend([
                        "--tls-cert".to_owned(),
                        cert.display().to_string(),
                        "--tls-key".to_owned(),
                        key.display().to_string(),
                    ]);
                }
                args.extend(opts.extra_args.iter().cloned());
                (program, args)
            }
            TargetKind::Nats => {
                let conf = opts.dir.join("nats-server.conf");
                std::fs::write(&conf, nats_config(ws, publish, opts.tls.as_ref()))?;
                let program = opts.program.clone().unwrap_or_else(|| "nats-server".into());
                (program, vec!["-c".to_owned(), conf.display().to_string()])
            }
        };
        let log_path = opts.dir.join(format!("{}-server.log", opts.kind.name()));
        let log = File::create(&log_path)?;
        let mut command = match opts.cpu {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpu.to_string()).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        let mut server = SpawnedServer {
            child,
            endpoints: Endpoints {
                kind: opts.kind,
                ws,
                publish,
            },
        };
        server.wait_listening(Duration::from_secs(20), &log_path)?;
        Ok(server)
    }

    /// The server's process id (taskset execs the server, keeping its pid).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_listening(&mut self, timeout: Duration, log: &Path) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                let tail = std::fs::read_to_string(log).unwrap_or_default();
                bail!("server exited with {status} before listening:\n{tail}");
            }
            let up = |addr| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok();
            if up(self.endpoints.ws) && up(self.endpoints.publish) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "server not listening on {} and {} after {timeout:?}",
                    self.endpoints.ws,
                    self.endpoints.publish
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SpawnedServer {
    fn drop(&mut self) {
        // SIGTERM first so the server can close its clients cleanly.
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: signalling our own child process.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nats-server's config: client port for the publisher, a WebSocket
/// listener for subscribers (plain, or TLS with `tls`'s certificate and
/// key), both on loopback only.
fn nats_config(ws: SocketAddr, client: SocketAddr, tls: Option<&(PathBuf, PathBuf)>) -> String {
    let security = match tls {
        Some((cert, key)) => format!(
            "tls {{\n    cert_file: \"{}\"\n    key_file: \"{}\"\n  }}",
            cert.display(),
            key.display()
        ),
        None => "no_tls: true".to_owned(),
    };
    format!(
        "# Written by loadgen for one comparison run.\n\
         listen: \"{client}\"\n\
         max_connections: 100000\n\
         websocket {{\n  listen: \"{ws}\"\n  {security}\n}}\n"
    )
}

/// A loopback port that was free a moment ago (the small race with other
/// programs is acceptable on a benchmark machine).
fn free_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// A binary in the same target directory as this program (`target/release/`
/// for `target/release/loadgen`, and the parent of `deps/` for tests).
pub fn sibling_binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let mut dir = exe
        .parent()
        .context("executable has no directory")?
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} not found: build it first (cargo build --release -p tickcast-broker)",
            path.display()
        );
    }
    Ok(path)
}
