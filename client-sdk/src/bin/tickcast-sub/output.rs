//! How ticks are printed: aligned text columns, or one JSON object a line.

use std::fmt;
use std::io::{self, Write};

use tickcast_client::Tick;

/// The column titles of the text format, aligned with [`write_text`].
pub fn text_header() -> String {
    format!(
        "{:<15} {:<8} {:>9} {:>11} {:>11} {:>11} {:>8} x {:<7} {:>7} {:>12}",
        "time (UTC)", "sym", "seq", "bid", "ask", "last", "bid_sz", "ask_sz", "last_sz", "volume"
    )
}

/// Writes `tick` as one aligned text line.
pub fn write_text(out: &mut impl Write, tick: &Tick) -> io::Result<()> {
    writeln!(
        out,
        "{} {:<8} {:>9} {:>11.4} {:>11.4} {:>11.4} {:>8} x {:<7} {:>7} {:>12}",
        TimeOfDay(tick.ts),
        tick.sym,
        tick.seq,
        tick.bid,
        tick.ask,
        tick.last,
        tick.bid_size,
        tick.ask_size,
        tick.last_size,
        tick.volume
    )
}

/// Writes `tick` as one JSON object with the wire keys, and a newline.
pub fn write_json(out: &mut impl Write, tick: &Tick) -> io::Result<()> {
    serde_json::to_writer(&mut *out, tick).map_err(io::Error::from)?;
    out.write_all(b"\n")
}

/// A timestamp (ns since the epoch) shown as UTC time of day with
/// microseconds: the date adds nothing to a live stream.
struct TimeOfDay(u64);

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0 / 1_000_000_000;
        let micros = self.0 % 1_000_000_000 / 1_000;
        let (h, m, s) = (secs / 3600 % 24, secs / 60 % 60, secs % 60);
        write!(f, "{h:02}:{m:02}:{s:02}.{micros:06}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick() -> Tick {
        Tick {
            // 2023-11-14 22:13:20.123456789 UTC
            ts: 1_700_000_000_123_456_789,
            bid: 189.5,
            ask_size: 100,
            volume: 1_000_000,
            ..Tick::example()
        }
    }

    #[test]
    fn text_line_is_aligned_with_the_header() {
        let mut out = Vec::new();
        write_text(&mut out, &tick()).unwrap();
        let line = String::from_utf8(out).unwrap();
        assert!(line.starts_with("22:13:20.123456 AAPL            42    189.5000"));
        let header = text_header();
        assert_eq!(line.trim_end().len(), header.len());
        let volume_end = header.find("volume").unwrap() + "volume".len();
        assert_eq!(line.find("1000000").unwrap() + "1000000".len(), volume_end);
    }

    #[test]
    fn json_line_has_the_wire_keys() {
        let mut out = Vec::new();
        write_json(&mut out, &tick()).unwrap();
        assert!(out.ends_with(b"}\n"));
        let back: Tick = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, tick());
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["bid_size"], 300);
        assert_eq!(value["type"], "tick");
    }
}
