//! What each subcommand does: open the files and sockets, run the library
//! call, show progress, and give failures the context a person needs
//! (`cannot open feed file …`, `publishing to …`).

use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use feed_simulator::file::FeedReader;
use feed_simulator::import::{
    import_csv, import_dbn, import_itch, ImportReport, ImportStats, ItchOptions,
};
use feed_simulator::inspect::summarize;
use feed_simulator::market::{Market, MarketConfig};
use feed_simulator::pacing::{Pacer, Speed};
use feed_simulator::publish::publish;
use feed_simulator::record::record;
use feed_simulator::replay::FileReplay;
use feed_simulator::send::send_paced;
use tickcast_protocol::control::PublisherRecord;
use tickcast_protocol::framing::put_record;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

use crate::args::{Command, ConnArgs};
use crate::progress;

/// Runs one parsed subcommand.
pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Record {
            market,
            duration,
            out,
            open_burst,
        } => run_record(&market.config(open_burst), duration, &out),
        Command::Publish {
            to,
            conn,
            market,
            duration,
        } => {
            let market = Market::new(&market.config(false))?;
            runtime()?.block_on(async {
                let mut stream = connect(&to, &conn).await?;
                publish(market, duration, &mut stream)
                    .await
                    .with_context(|| format!("publishing to {to}"))?;
                finish(&mut stream, &to).await
            })
        }
        Command::Replay {
            file,
            to,
            conn,
            speed,
            looping,
        } => run_replay(&file, &to, &conn, speed, looping),
        Command::Inspect {
            file,
            head,
            top,
            json,
        } => run_inspect(&file, head, top, json),
        Command::Import {
            csv,
            dbn,
            itch,
            date,
            symbols,
            out,
        } => {
            if let Some(csv) = csv {
                return run_import(&csv, &out);
            }
            if let Some(dbn) = dbn {
                return run_import_records(&dbn, "DBN", &out, |input, output, progress| {
                    import_dbn(input, output, progress)
                });
            }
            let (Some(itch), Some(date)) = (itch, date) else {
                // clap requires one input, and --date with --itch.
                bail!("say what to import: --csv FILE, --dbn FILE or --itch FILE --date DAY");
            };
            let options = ItchOptions {
                day_start: date.new_york_midnight(),
                symbols: symbols.map(|s| s.into_iter().collect()),
            };
            run_import_records(&itch, "ITCH", &out, |input, output, progress| {
                import_itch(input, output, &options, progress)
            })
        }
    }
}

fn run_record(cfg: &MarketConfig, duration: Duration, out: &Path) -> Result<()> {
    let count = (cfg.rate * duration.as_secs_f64()).round();
    if count >= u64::MAX as f64 {
        bail!("rate × duration is too many ticks");
    }
    let count = count as u64;
    // Check the parameters before creating the file.
    Market::new(cfg)?;
    let file = create(out)?;
    let bar = progress::bar(Some(count), "ticks");
    let result = record(cfg, count, file, |n| bar.set_position(n));
    bar.finish_and_clear();
    if let Err(e) = result {
        remove_partial(out);
        return Err(e).with_context(|| format!("cannot write {}", out.display()));
    }
    Ok(())
}

fn run_replay(file: &Path, to: &str, conn: &ConnArgs, speed: Speed, looping: bool) -> Result<()> {
    let mut source = FileReplay::open(file, looping)
        .with_context(|| format!("cannot open feed file {}", file.display()))?;
    runtime()?.block_on(async {
        let mut stream = connect(to, conn).await?;
        // A looped replay has no end to count towards: a spinner then.
        let len = source.records_per_lap().filter(|_| !looping);
        let bar = progress::bar(len, "ticks");
        let mut pacer = Pacer::new(speed);
        let result = send_paced(&mut source, &mut pacer, &mut stream, |n| {
            bar.set_position(n);
        })
        .await;
        bar.finish_and_clear();
        result.with_context(|| format!("replaying {} to {to}", file.display()))?;
        finish(&mut stream, to).await
    })
}

fn run_inspect(file: &Path, head: usize, top: usize, json: bool) -> Result<()> {
    let reader = FeedReader::open(file)
        .with_context(|| format!("cannot open feed file {}", file.display()))?;
    let summary = summarize(reader, head);
    let mut out = io::stdout().lock();
    if json {
        summary.write_json(&mut out, top)?;
    } else {
        writeln!(out, "file:        {}", file.display())?;
        summary.write_text(&mut out, top)?;
    }
    out.flush()?;
    match summary.damage {
        Some(damage) => Err(damage).with_context(|| format!("reading {}", file.display())),
        None => Ok(()),
    }
}

fn run_import(csv: &Path, out: &Path) -> Result<()> {
    let input =
        File::open(csv).with_context(|| format!("cannot open CSV file {}", csv.display()))?;
    let len = input.metadata().map(|m| m.len()).ok();
    let output = create(out)?;
    let bar = progress::bar(len, "bytes");
    let result = import_csv(BufReader::new(input), output, |n| bar.set_position(n));
    bar.finish_and_clear();
    match result {
        Ok((_, stats)) => {
            report_import(&stats, out);
            Ok(())
        }
        Err(e) => {
            remove_partial(out);
            Err(e).with_context(|| format!("cannot import {}", csv.display()))
        }
    }
}

/// Imports a DBN or ITCH file (`kind` names it in messages) with `import`.
/// A damaged input still leaves the file with every tick before the damage
/// and then fails naming the offset; a failure before any record removes
/// the output.
fn run_import_records(
    input: &Path,
    kind: &str,
    out: &Path,
    // The importers buffer their input themselves.
    import: impl FnOnce(
        File,
        File,
        &mut dyn FnMut(u64),
    ) -> Result<ImportReport<File>, feed_simulator::import::ImportError>,
) -> Result<()> {
    let file = File::open(input)
        .with_context(|| format!("cannot open {kind} file {}", input.display()))?;
    let len = file.metadata().map(|m| m.len()).ok();
    let output = create(out)?;
    let bar = progress::bar(len, "bytes");
    let result = import(file, output, &mut |n| bar.set_position(n));
    bar.finish_and_clear();
    match result {
        Ok(report) => {
            report_import(&report.stats, out);
            match report.damage {
                Some(damage) => {
                    Err(damage).with_context(|| format!("importing {}", input.display()))
                }
                None => Ok(()),
            }
        }
        Err(e) => {
            remove_partial(out);
            Err(e).with_context(|| format!("cannot import {}", input.display()))
        }
    }
}

fn report_import(stats: &ImportStats, out: &Path) {
    eprintln!(
        "imported {} ticks of {} symbols into {} ({} input records read, {} skipped)",
        stats.records,
        stats.symbols,
        out.display(),
        stats.read,
        stats.skipped
    );
}

fn create(path: &Path) -> Result<File> {
    File::create(path).with_context(|| format!("cannot create {}", path.display()))
}

/// Deletes a half-written output so no one mistakes it for a good file.
fn remove_partial(path: &Path) {
    // Best effort: the error being reported matters more.
    let _ = std::fs::remove_file(path);
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    // One thread: the sender is a single sequential loop.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A connection to a broker's ingest: plain TCP or TLS.
trait Wire: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Wire for T {}

/// How long closing may wait for the broker to close its side.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Ends the stream (over TLS a close_notify first, saying it is whole),
/// then reads what the broker still sent (a TLS server's session tickets)
/// until it closes: closing with unread bytes would send a reset, which
/// can destroy the last ticks before the broker reads them.
async fn finish(stream: &mut Box<dyn Wire>, to: &str) -> Result<()> {
    stream
        .shutdown()
        .await
        .with_context(|| format!("closing the connection to {to}"))?;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
    Ok(())
}

/// Connects to `to` (with TLS if asked) and, given a token, sends it as the
/// first record.
async fn connect(to: &str, conn: &ConnArgs) -> Result<Box<dyn Wire>> {
    // Read before connecting: a missing file is the clearer error.
    let token = match &conn.token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the token file {}", path.display()))?;
            let token = text.trim().to_owned();
            if token.is_empty() {
                bail!("the token file {} is empty", path.display());
            }
            Some(token)
        }
        None => None,
    };
    let stream = TcpStream::connect(to)
        .await
        .with_context(|| format!("cannot connect to {to}"))?;
    // We batch writes ourselves; Nagle would only delay a lone due tick.
    stream
        .set_nodelay(true)
        .with_context(|| format!("cannot configure the connection to {to}"))?;
    let mut wire: Box<dyn Wire> = if conn.tls {
        let config = tickcast_protocol::tls::client_config(conn.ca.as_deref())?;
        let host = match &conn.server_name {
            Some(name) => name.clone(),
            None => host_of(to).to_owned(),
        };
        let name = ServerName::try_from(host.clone())
            .with_context(|| format!("{host:?} is not a server name"))?;
        let tls = TlsConnector::from(config)
            .connect(name, stream)
            .await
            .with_context(|| format!("TLS handshake with {to}"))?;
        Box::new(tls)
    } else {
        Box::new(stream)
    };
    if let Some(token) = token {
        let record = PublisherRecord::Auth { token }.to_msgpack();
        let mut buf = Vec::with_capacity(record.len() + 4);
        put_record(&mut buf, &record);
        wire.write_all(&buf)
            .await
            .with_context(|| format!("sending the token to {to}"))?;
    }
    Ok(wire)
}

/// The host part of `host:port` (`[::1]:9000` → `::1`).
fn host_of(to: &str) -> &str {
    let host = to.rsplit_once(':').map_or(to, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}
