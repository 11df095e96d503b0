//! `feed-simulator`: the command line over the `feed_simulator` library.
//!
//! Parses arguments, opens files and sockets, and reports failures as one
//! `error: …` line with a non-zero exit code (never a panic), so scripts and
//! people both get a clear answer. All the work is done by the library;
//! this binary only adds what a person at a shell needs: [`args`] (the
//! flags), [`commands`] (files, sockets, error context) and [`progress`]
//! (bars on a terminal). It is built with the `cli` feature (on by
//! default), which is also what brings in clap, anyhow, indicatif,
//! humantime and mimalloc; the library needs none of them.

mod args;
mod commands;
mod progress;

use std::io::{self, ErrorKind};
use std::process::ExitCode;

use clap::error::ErrorKind as ClapErrorKind;
use clap::Parser;

use args::Cli;

// mimalloc: faster small allocations for the owned ticks of publish/replay.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    match commands::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        // `inspect … | head` closing the pipe early is not a failure.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints help and version as clap does; squeezes any other parse error into
/// one line (clap's own rendering adds usage and tips on further lines).
fn usage_error(e: &clap::Error) -> ExitCode {
    if matches!(
        e.kind(),
        ClapErrorKind::DisplayHelp | ClapErrorKind::DisplayVersion
    ) {
        print!("{e}");
        return ExitCode::SUCCESS;
    }
    let rendered = e.render().to_string();
    let line: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
        .collect();
    eprintln!("{}", line.join(" "));
    ExitCode::from(2)
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == ErrorKind::BrokenPipe)
    })
}
