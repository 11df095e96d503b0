//! Where the broker's settings come from: the command line, then
//! `TICKCAST_*` environment variables, then a TOML file (`--config FILE`),
//! each winning over the next, and the built-in defaults last.
//!
//! There is one list of settings, clap's: the flag `--max-connections` is
//! also the variable `TICKCAST_MAX_CONNECTIONS` ([`with_env`]) and the
//! file's key `max-connections` ([`apply_file`]). The file's values become
//! the flags' defaults, so clap's own order (command line, environment,
//! default) is the precedence, and nothing is listed twice. Each file value
//! is first checked against its flag's kind and parsed by the flag's own
//! parser, so a bad one is a one-line error naming the file and the key,
//! before anything starts.
//!
//! A layer sets values, it never unsets another layer's: relations between
//! settings (a certificate needs a key, one feed only) are checked on the
//! merged result, in `Args::into_config`, since clap's `requires` and
//! `conflicts_with` only see the command line.

use std::any::TypeId;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, Command};

/// The environment variables' prefix.
pub const ENV_PREFIX: &str = "TICKCAST_";

/// The file setting that names the file; it cannot appear in one.
pub const CONFIG_KEY: &str = "config";

/// A `--config` file that cannot be used; each names the file and, when
/// there is one, the key.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file cannot be read.
    #[error("{}: cannot read it: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("{}:{line}: not TOML: {message}", file.display())]
    Syntax {
        file: PathBuf,
        line: usize,
        message: String,
    },
    /// A key that is no flag's name.
    #[error("{}: unknown key `{key}` (the keys are the flags' long names, e.g. `max-connections = 10000`)", file.display())]
    UnknownKey { file: PathBuf, key: String },
    /// A value of the wrong TOML type for its flag.
    #[error("{}: `{key}`: expected {expected}, found {found}", file.display())]
    WrongType {
        file: PathBuf,
        key: String,
        expected: &'static str,
        found: &'static str,
    },
    /// A value of the right type that its flag's parser refuses.
    #[error("{}: `{key}`: {reason}", file.display())]
    BadValue {
        file: PathBuf,
        key: String,
        reason: String,
    },
}

/// `--max-connections` → `TICKCAST_MAX_CONNECTIONS`.
pub fn env_name(long: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        long.replace('-', "_").to_ascii_uppercase()
    )
}

/// Gives every flag of `cmd` (not its subcommands') its environment
/// variable.
pub fn with_env(cmd: Command) -> Command {
    cmd.mut_args(|arg| match arg.get_long().map(env_name) {
        Some(var) => arg.env(var),
        None => arg,
    })
}

/// The settings in the TOML file at `path`, as defaults of `cmd`'s flags.
pub fn apply_file(cmd: Command, path: &Path) -> Result<Command, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        file: path.to_owned(),
        source,
    })?;
    let defaults = read_file(&cmd, path, &text)?;
    Ok(defaults.into_iter().fold(cmd, |cmd, (id, value)| {
        cmd.mut_arg(id, |arg| arg.default_value(value))
    }))
}

/// Each key of `text` (the file at `path`) with its flag's id and its
/// value as the flag's text.
pub fn read_file(
    cmd: &Command,
    path: &Path,
    text: &str,
) -> Result<Vec<(String, String)>, FileError> {
    let file = || path.to_owned();
    let table: toml::Table = toml::from_str(text).map_err(|e| FileError::Syntax {
        file: file(),
        line: e
            .span()
            .map_or(1, |span| text[..span.start].matches('\n').count() + 1),
        message: e.message().trim().to_owned(),
    })?;
    let mut defaults = Vec::with_capacity(table.len());
    for (key, value) in &table {
        let arg = cmd
            .get_arguments()
            .find(|arg| key != CONFIG_KEY && arg.get_long() == Some(key.as_str()))
            .ok_or_else(|| FileError::UnknownKey {
                file: file(),
                key: key.clone(),
            })?;
        let text = as_text(arg, value).map_err(|(expected, found)| FileError::WrongType {
            file: file(),
            key: key.clone(),
            expected,
            found,
        })?;
        check(arg, &text).map_err(|reason| FileError::BadValue {
            file: file(),
            key: key.clone(),
            reason,
        })?;
        defaults.push((arg.get_id().to_string(), text));
    }
    Ok(defaults)
}

/// A flag's value as the text its parser takes, if the TOML type fits the
/// flag: `true`/`false` for a switch, a number (or a string) for a number,
/// a string or a number otherwise (`speed = 10`, `speed = "max"`), and an
/// array of those joined by commas for a list (`allowed-origins`). Or what
/// was expected and what was found.
fn as_text(arg: &Arg, value: &toml::Value) -> Result<String, (&'static str, &'static str)> {
    use toml::Value;
    let switch = matches!(arg.get_action(), ArgAction::SetTrue);
    let number = is_number(arg);
    let expected = if switch {
        "true or false"
    } else if number {
        "a number"
    } else {
        "a string"
    };
    let found = value.type_str();
    match value {
        Value::Boolean(b) if switch => Ok(b.to_string()),
        _ if switch => Err((expected, found)),
        Value::Integer(i) => Ok(i.to_string()),
        Value::Float(f) => Ok(f.to_string()),
        Value::String(s) if !number => Ok(s.clone()),
        Value::Array(items) if !number => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(("a string or an array of strings", other.type_str())),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|items| items.join(",")),
        _ => Err((expected, found)),
    }
}

/// Whether `arg` parses into a number (so a TOML string is a mistake).
fn is_number(arg: &Arg) -> bool {
    let id = arg.get_value_parser().type_id();
    [
        TypeId::of::<u16>(),
        TypeId::of::<u32>(),
        TypeId::of::<u64>(),
        TypeId::of::<usize>(),
        TypeId::of::<f64>(),
    ]
    .iter()
    .any(|number| id == *number)
}

/// Runs `arg`'s own parser over `value` (on a one-flag command, so no other
/// flag's rules apply); the parser's reason when it refuses.
fn check(arg: &Arg, value: &str) -> Result<(), String> {
    let long = arg.get_long().unwrap_or_default().to_owned();
    let probe = Command::new("config").no_binary_name(true).arg(
        Arg::new("value")
            .long(long.clone())
            .action(ArgAction::Set)
            .value_parser(arg.get_value_parser().clone()),
    );
    let Err(e) = probe.try_get_matches_from([format!("--{long}={value}")]) else {
        return Ok(());
    };
    if let Some(reason) = std::error::Error::source(&e) {
        return Err(format!("invalid value '{value}': {reason}"));
    }
    if let Some(values) = arg.get_value_parser().possible_values() {
        let names: Vec<String> = values.map(|v| v.get_name().to_owned()).collect();
        return Err(format!(
            "invalid value '{value}': expected one of {}",
            names.join(", ")
        ));
    }
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    Err(first.trim_start_matches("error: ").to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command() -> Command {
        Command::new("t")
            .arg(
                Arg::new("listen")
                    .long("listen")
                    .value_parser(clap::value_parser!(std::net::SocketAddr)),
            )
            .arg(
                Arg::new("max_connections")
                    .long("max-connections")
                    .value_parser(clap::value_parser!(usize)),
            )
            .arg(
                Arg::new("open_burst")
                    .long("open-burst")
                    .action(ArgAction::SetTrue),
            )
            .arg(
                Arg::new("policy")
                    .long("policy")
                    .value_parser(["conflate", "drop"]),
            )
            .arg(Arg::new("origins").long("allowed-origins"))
    }

    fn read(text: &str) -> Result<Vec<(String, String)>, String> {
        read_file(&command(), Path::new("b.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn values_become_their_flag_s_text() {
        let got = read(
            "listen = \"127.0.0.1:9\"\nmax-connections = 7\nopen-burst = true\npolicy = \"drop\"\n\
             allowed-origins = [\"https://a.example\", \"https://b.example\"]\n",
        )
        .unwrap();
        let got: Vec<(&str, &str)> = got.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("origins", "https://a.example,https://b.example"),
                ("listen", "127.0.0.1:9"),
                ("max_connections", "7"),
                ("open_burst", "true"),
                ("policy", "drop"),
            ]
        );
    }

    #[test]
    fn each_mistake_is_one_line_naming_the_key() {
        let cases = [
            ("colour = 1", "b.toml: unknown key `colour`"),
            ("config = \"x.toml\"", "b.toml: unknown key `config`"),
            (
                "max-connections = \"lots\"",
                "b.toml: `max-connections`: expected a number, found string",
            ),
            (
                "max-connections = -1",
                "b.toml: `max-connections`: invalid value '-1': ",
            ),
            (
                "open-burst = \"yes\"",
                "b.toml: `open-burst`: expected true or false, found string",
            ),
            (
                "listen = 8080",
                "b.toml: `listen`: invalid value '8080': invalid socket address syntax",
            ),
            (
                "policy = \"fast\"",
                "b.toml: `policy`: invalid value 'fast': expected one of conflate, drop",
            ),
            (
                "listen = { host = \"a\" }",
                "b.toml: `listen`: expected a string, found table",
            ),
            ("\n\nlisten = ", "b.toml:3: not TOML: "),
        ];
        for (text, want) in cases {
            let got = read(text).unwrap_err();
            assert!(got.starts_with(want), "{text:?}: {got:?}");
            assert!(!got.contains('\n'), "{text:?}: {got:?}");
        }
    }

    #[test]
    fn env_names_follow_the_flags() {
        assert_eq!(env_name("max-connections"), "TICKCAST_MAX_CONNECTIONS");
        let cmd = with_env(command());
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_id() == "listen")
            .unwrap();
        assert_eq!(arg.get_env().unwrap(), "TICKCAST_LISTEN");
    }
}
