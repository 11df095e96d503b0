//! The stable driver: replays the committed corpus through every target,
//! then runs a seeded, bounded mutation loop per target.
//!
//! - `FUZZ_SECONDS` (default 3) and `FUZZ_ITERS` (default 1,000,000)
//!   bound each target's loop, whichever comes first;
//! - `FUZZ_SEED` (default 1) seeds the mutator: the same seed makes the
//!   same inputs, so a run is reproducible up to where time cut it;
//! - `FUZZ_WRITE_SEEDS=1` rewrites the generated seeds into `corpus/`.
//!
//! A failing input is saved under `target/fuzz-failures/` and named in the
//! panic; the targets derive everything else from the bytes, so copying
//! it into `corpus/<target>/` makes it a regression case.
//!
//! Executions per target are written straight to stderr (past the test
//! harness's capture), so `cargo test` shows them.

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use tickcast_fuzz::alloc::Tracking;
use tickcast_fuzz::{mutate, seeds, TARGETS};

#[global_allocator]
static ALLOC: Tracking = Tracking;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(corpus_dir(target))
        .unwrap_or_else(|e| panic!("corpus/{target}: {e}"))
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).expect("a corpus file"))
        })
        .collect();
    out.sort();
    out
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn target_fn(name: &str) -> fn(&[u8]) {
    TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .expect("a known target")
}

/// Runs `f` on `data`; a panic is saved and returned as a description.
fn run_one(target: &str, f: fn(&[u8]), data: &[u8]) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| f(data))).map_err(|panic| {
        let what = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("(no message)")
            .to_string();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz-failures");
        let _ = std::fs::create_dir_all(&dir);
        let hash = tickcast_fuzz::io::seed_of(data);
        let path = dir.join(format!("{target}-{hash:016x}"));
        let _ = std::fs::write(&path, data);
        format!(
            "{target} failed on {} ({} bytes): {what}",
            path.display(),
            data.len()
        )
    })
}

#[test]
fn the_generated_seeds_are_in_the_corpus() {
    let write = std::env::var_os("FUZZ_WRITE_SEEDS").is_some();
    let mut missing = Vec::new();
    for (target, name, bytes) in seeds::all() {
        let path = corpus_dir(target).join(&name);
        if write {
            std::fs::create_dir_all(corpus_dir(target)).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        } else if std::fs::read(&path).ok().as_ref() != Some(&bytes) {
            missing.push(format!("{target}/{name}"));
        }
    }
    assert!(
        missing.is_empty(),
        "seeds missing or changed in fuzz/corpus (FUZZ_WRITE_SEEDS=1 rewrites them): {missing:?}"
    );
}

#[test]
fn every_corpus_entry_passes_its_target() {
    let mut failures = Vec::new();
    let mut total = 0;
    for (target, f) in TARGETS {
        for (_, data) in corpus(target) {
            total += 1;
            if let Err(e) = run_one(target, f, &data) {
                failures.push(e);
            }
        }
    }
    report(&format!(
        "fuzz corpus: {total} entries replayed, {} failed",
        failures.len()
    ));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The mutation loop for one target.
fn fuzz(target: &str) {
    let f = target_fn(target);
    let seconds: f64 = env_or("FUZZ_SECONDS", 3.0);
    let iters: u64 = env_or("FUZZ_ITERS", 1_000_000);
    let seed: u64 = env_or("FUZZ_SEED", 1);
    let mut rng = Pcg64Mcg::seed_from_u64(seed ^ tickcast_fuzz::io::seed_of(target.as_bytes()));
    let mut pool: Vec<Vec<u8>> = corpus(target).into_iter().map(|(_, d)| d).collect();
    let committed = pool.len();
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let mut execs = 0u64;
    while execs < iters && Instant::now() < deadline {
        // Half the time from the committed entries only, so the pool's
        // mutants (drifting towards garbage without coverage to select
        // them) do not crowd out the real inputs.
        let from = if rng.random_bool(0.5) {
            &pool[..committed]
        } else {
            &pool[..]
        };
        let input = mutate::mutate(&mut rng, from);
        if let Err(e) = run_one(target, f, &input) {
            panic!("{e} (FUZZ_SEED={seed}, execution {execs})");
        }
        execs += 1;
        // Keep some inputs to mutate further: edits compound, the way
        // libFuzzer's corpus grows (here without coverage to choose).
        if execs % 16 == 0 {
            if pool.len() < committed + 512 {
                pool.push(input);
            } else {
                let i = rng.random_range(committed..pool.len());
                pool[i] = input;
            }
        }
    }
    report(&format!(
        "fuzz {target}: {execs} executions in {:.1} s (FUZZ_SEED={seed}), 0 crashes",
        start.elapsed().as_secs_f64()
    ));
    if target == "frame_reader" {
        report(&format!(
            "fuzz frame_reader: allowed differences from tungstenite seen: {:?}",
            tickcast_fuzz::frame_reader_differences()
        ));
    }
}

#[test]
fn fuzz_tick_decode() {
    fuzz("tick_decode");
}

#[test]
fn fuzz_ingest_frames() {
    fuzz("ingest_frames");
}

#[test]
fn fuzz_frame_reader() {
    fuzz("frame_reader");
}

#[test]
fn fuzz_control_message() {
    fuzz("control_message");
}

#[test]
fn fuzz_feed_file() {
    fuzz("feed_file");
}

#[test]
fn fuzz_csv_import() {
    fuzz("csv_import");
}
