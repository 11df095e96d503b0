//! Command-line arguments of `tickcast-sub`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;

/// Broker URL used when none is given.
pub const DEFAULT_URL: &str = "ws://127.0.0.1:8080/ws";

/// Subscribe to a tickcast broker and print its ticks.
#[derive(Debug, Parser)]
#[command(name = "tickcast-sub", version)]
pub struct Args {
    /// Optional broker URLs (recognised by `ws://` or `wss://`, default
    /// ws://127.0.0.1:8080/ws; several edges of one feed: the next is used
    /// when one is lost, resuming without a gap), then one or more topics:
    /// symbols, or '*' (quoted) for every symbol.
    #[arg(value_name = "[URL...] TOPIC", required = true, num_args = 1..)]
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
    /// Print rate, latency percentiles, gaps, recovered and reset ticks to
    /// stderr once a second.
    #[arg(long)]
    pub stats: bool,
    /// Ask the broker for at most R ticks a second per symbol (1-1000),
    /// each the latest: what a screen needs, not every tick.
    #[arg(long, value_name = "R", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_rate: Option<u32>,
    /// The token (a JWT) for a broker that requires one. Visible to other
    /// users in the process list: prefer --token-file.
    #[arg(long, value_name = "JWT", conflicts_with = "token_file")]
    pub token: Option<String>,
    /// Read the token from this file (trailing newline trimmed).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// For wss://: trust the CA certificates in this PEM file instead of
    /// the system's roots.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

impl Args {
    /// The token, from --token or --token-file.
    pub fn token(&self) -> anyhow::Result<Option<String>> {
        if let Some(token) = &self.token {
            return Ok(Some(token.clone()));
        }
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the token file {}", path.display()))?;
        let token = text.trim();
        if token.is_empty() {
            bail!("the token file {} is empty", path.display());
        }
        Ok(Some(token.to_owned()))
    }

    /// The broker URLs (at least one) and the topics.
    pub fn target(&self) -> anyhow::Result<(Vec<String>, Vec<String>)> {
        let is_url = |w: &String| w.starts_with("ws://") || w.starts_with("wss://");
        let given = self.words.iter().take_while(|w| is_url(w)).count();
        let (urls, topics) = self.words.split_at(given);
        let urls = if urls.is_empty() {
            vec![DEFAULT_URL.to_owned()]
        } else {
            urls.to_vec()
        };
        if topics.is_empty() {
            bail!("no topic given: name at least one symbol, or '*' for all");
        }
        Ok((urls, topics.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(words: &[&str]) -> anyhow::Result<(Vec<String>, Vec<String>)> {
        let mut argv = vec!["tickcast-sub"];
        argv.extend_from_slice(words);
        Args::try_parse_from(argv)?.target()
    }

    #[test]
    fn url_is_optional_and_recognised_by_its_scheme() {
        let (urls, topics) = target(&["AAPL", "MSFT"]).unwrap();
        assert_eq!((urls, topics.len()), (vec![DEFAULT_URL.to_owned()], 2));
        let (urls, topics) = target(&["ws://h:1/ws", "*"]).unwrap();
        assert_eq!(
            (urls, topics),
            (vec!["ws://h:1/ws".to_owned()], vec!["*".to_owned()])
        );
        let (urls, topics) = target(&["ws://a:1/ws", "wss://b:2/ws", "AAPL"]).unwrap();
        assert_eq!((urls.len(), topics), (2, vec!["AAPL".to_owned()]));
        assert!(target(&["ws://h:1/ws"]).is_err());
        assert!(target(&["ws://a:1/ws", "ws://b:1/ws"]).is_err());
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
            "--max-rate",
            "4",
            "AAPL",
        ])
        .unwrap();
        assert!(args.json && args.stats);
        assert_eq!(args.max_rate, Some(4));
        for bad in ["0", "1001"] {
            assert!(Args::try_parse_from(["tickcast-sub", "--max-rate", bad, "A"]).is_err());
        }
        assert_eq!(args.count, Some(5));
        assert_eq!(args.duration, Some(Duration::from_secs(90)));
    }
}
