//! Forward the raw tick frames to stdout, untouched, in the ingest framing
//! (u32 big-endian length + MessagePack tick).
//!
//! The output can be saved as a feed file or piped into another broker's
//! TCP ingest, e.g. with `nc`:
//!
//! ```text
//! cargo run -p tickcast-client --example forward -- ws://127.0.0.1:8080/ws '*' > ticks.bin
//! ```
//!
//! The frames are not re-encoded: [`tickcast_client::ReceivedTick::raw`] is
//! the payload exactly as the broker sent it.

mod common;

use std::io::{self, Write};

use tickcast_client::{Client, Event};
use tickcast_protocol::framing::{put_record, MAX_RECORD_LEN};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (url, mut args) = common::url_and_rest();
    if args.is_empty() {
        args.push("*".into());
    }

    let mut client = Client::connect(&url).await?;
    client.subscribe(&args).await?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    let mut record = Vec::new();
    while let Some(event) = client.next().await {
        match event {
            // A tick that decoded is far below the record limit, but the
            // check keeps a hostile server from reaching put_record's assert.
            Event::Tick(t) if t.raw.len() <= MAX_RECORD_LEN => {
                record.clear();
                put_record(&mut record, &t.raw);
                let flush = client.buffered() == 0;
                match write_record(&mut out, &record, flush) {
                    Ok(()) => {}
                    // `| head -c` and friends: stop quietly.
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
                    Err(e) => return Err(e.into()),
                }
            }
            Event::Gap {
                sym, expected, got, ..
            } => {
                eprintln!("gap in {sym}: {expected}..{got}")
            }
            Event::Error(e) => eprintln!("error: {e}"),
            _ => {}
        }
    }
    Ok(())
}

/// Writes one record; flushes when no more ticks are waiting, so a burst
/// becomes one write.
fn write_record(out: &mut impl Write, record: &[u8], flush: bool) -> io::Result<()> {
    out.write_all(record)?;
    if flush {
        out.flush()?;
    }
    Ok(())
}
