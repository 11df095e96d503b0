//! Command-line arguments of `tickcast-sub`.

use std::time::Duration;

use anyhow::bail;
use clap::Parser;

/// Broker URL used when none is given.
pub const DEFAULT_URL: &str = "ws://127.0.0.1:8080/ws";

/// Subscribe to a tickcast broker and print its ticks.
#[derive(Debug, Parser)]
#[command(name = "tickcast-sub", version)]
pub struct Args {
    /// Optional broker URL (recognised by `ws://`, default
    /// ws://127.0.0.1:8080/ws), then one or more topics: symbols, or '*'
    /// (quoted) for every symbol.
    #[arg(value_name = "[URL] TOPIC", required = true, num_args = 1..)]
    words: Vec<String>,
    /// Print one JSON object per tick (the wire keys) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Exit after printing this many ticks.
    #[arg(long, short = 'n', value_name = "N")]
    pub count: Option<u64>,
    /// Exit after this long, e.g. `10s`, `1m30s`.
    #[arg(long, short = 'd', value_name = "D", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Print rate, latency percentiles and gaps to stderr once a second.
    #[arg(long)]
    pub stats: bool,
}

impl Args {
    /// The broker URL and the topics.
    pub fn target(&self) -> anyhow::Result<(String, Vec<String>)> {
        let (url, topics) = match self.words.split_first() {
            Some((first, rest)) if first.starts_with("ws://") || first.starts_with("wss://") => {
                (first.clone(), rest.to_vec())
            }
            _ => (DEFAULT_URL.to_owned(), self.words.clone()),
        };
        if topics.is_empty() {
            bail!("no topic given: name at least one symbol, or '*' for all");
        }
        Ok((url, topics))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(words: &[&str]) -> anyhow::Result<(String, Vec<String>)> {
        let mut argv = vec!["tickcast-sub"];
        argv.extend_from_slice(words);
        Args::try_parse_from(argv)?.target()
    }

    #[test]
    fn url_is_optional_and_recognised_by_its_scheme() {
        let (url, topics) = target(&["AAPL", "MSFT"]).unwrap();
        assert_eq!((url.as_str(), topics.len()), (DEFAULT_URL, 2));
        let (url, topics) = target(&["ws://h:1/ws", "*"]).unwrap();
        assert_eq!(
            (url.as_str(), topics),
            ("ws://h:1/ws", vec!["*".to_owned()])
        );
        assert!(target(&["ws://h:1/ws"]).is_err());
        assert!(target(&[]).is_err());
    }

    #[test]
    fn options_parse() {
        let args = Args::try_parse_from([
            "tickcast-sub",
            "--json",
            "--count",
            "5",
            "--duration",
            "1m30s",
            "--stats",
            "AAPL",
        ])
        .unwrap();
        assert!(args.json && args.stats);
        assert_eq!(args.count, Some(5));
        assert_eq!(args.duration, Some(Duration::from_secs(90)));
    }
}
