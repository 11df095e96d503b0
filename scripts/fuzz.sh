#!/usr/bin/env bash
# Fuzzes every tickcast-fuzz target (fuzz/README.md) for SECONDS each.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]    (default 60, all six)
#
# With a nightly toolchain and cargo-fuzz: libFuzzer, one target at a time,
# starting from the committed corpus (fuzz/corpus/<target>/, read only; new
# inputs go to a scratch copy under target/fuzz-scratch/), then a table of
# executions and crashes per target. A crash's input is copied into
# fuzz/corpus/<target>/ as crash-<target>-<hash>, where the stable driver
# (`cargo test -p tickcast-fuzz`) replays it from then on: fix the bug, then
# commit the input with the fix.
#
# Without nightly or cargo-fuzz it says so and runs the stable driver with
# the same budget per target instead (FUZZ_SECONDS; a new FUZZ_SEED each
# run, printed). It installs nothing: cargo-fuzz comes from
# `cargo install cargo-fuzz --locked`, nightly from `rustup toolchain
# install nightly` where the machine can fetch toolchains.
#
# FUZZ_STABLE=1 runs the stable driver even where libFuzzer could run.
# FUZZ_MERGE=1 also merges the new inputs that add coverage into the
# committed corpus (deliberately: review the diff, keep it small).
set -euo pipefail

# All in a function, called on the last line: bash then has read the whole
# file before running any of it, so editing the script during a long run
# cannot change the run.
main() {
    cd "$(dirname "${BASH_SOURCE[0]}")/.."

    seconds="${1:-60}"
    shift || true
    all=(tick_decode ingest_frames frame_reader control_message feed_file csv_import)
    targets=("$@")
    [ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

    # Wait while someone benchmarks on this machine (see the project's notes).
    quiet() { while [ -e /work/QUIET ]; do sleep 15; done; }

    stable() {
        local seed
        seed="${FUZZ_SEED:-$(date +%s)}"
        echo "fuzz.sh: $1; running the stable driver instead: $seconds s per target, FUZZ_SEED=$seed"
        local filter=()
        for t in "${targets[@]}"; do filter+=("fuzz_$t"); done
        quiet
        # One target at a time (the machine is small), and the corpus replay.
        FUZZ_SECONDS="$seconds" FUZZ_ITERS="${FUZZ_ITERS:-1000000000}" FUZZ_SEED="$seed" \
            cargo test -p tickcast-fuzz --test fuzz -- --test-threads 1 \
            every_corpus_entry "${filter[@]}"
    }

    if [ "${FUZZ_STABLE:-0}" = 1 ]; then
        stable "FUZZ_STABLE=1"
        exit
    fi
    if ! cargo +nightly --version >/dev/null 2>&1; then
        stable "no nightly toolchain (libFuzzer needs one; 'rustup toolchain install nightly' where toolchains can be fetched)"
        exit
    fi
    if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
        stable "cargo-fuzz is not installed ('cargo install cargo-fuzz --locked' installs it)"
        exit
    fi

    fuzz_dir=fuzz/libfuzzer
    target_dir=target/libfuzzer
    scratch=target/fuzz-scratch
    quiet
    cargo +nightly fuzz build --fuzz-dir "$fuzz_dir" --target-dir "$target_dir"

    report=()
    crashed=0
    for t in "${targets[@]}"; do
        work="$scratch/$t"
        rm -rf "$work"
        mkdir -p "$work/corpus" "$work/artifacts"
        quiet
        echo "==> $t: libFuzzer for $seconds s"
        log="$work/log"
        # New inputs land in the scratch corpus; the committed one is read only.
        # -malloc_limit_mb: no single allocation over 64 MB (the targets check
        # far tighter budgets themselves, see fuzz/src/alloc.rs).
        set +e
        cargo +nightly fuzz run --fuzz-dir "$fuzz_dir" --target-dir "$target_dir" "$t" \
            "$work/corpus" "fuzz/corpus/$t" -- \
            -max_total_time="$seconds" -malloc_limit_mb=64 -rss_limit_mb=2048 \
            -print_final_stats=1 -artifact_prefix="$work/artifacts/" >"$log" 2>&1
        status=$?
        set -e
        execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
        if [ -z "$execs" ]; then
            # A crash ends the run before the final stats: take the last status line.
            execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
        fi
        crashes=0
        # crash-, oom-, leak-, timeout- (slow-unit- files are not failures).
        for a in "$work"/artifacts/{crash,oom,leak,timeout}-*; do
            [ -e "$a" ] || continue
            crashes=$((crashes + 1))
            name="crash-$t-$(sha1sum "$a" | cut -c1-12)"
            cp "$a" "fuzz/corpus/$t/$name"
            echo "    $(basename "$a") → fuzz/corpus/$t/$name"
        done
        if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
            echo "    libFuzzer exited $status without an artifact; see $log"
            crashes="?"
        fi
        [ "$crashes" = 0 ] || crashed=1
        grep -E 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" | head -5 | sed 's/^/    /' || true
        if [ "${FUZZ_MERGE:-0}" = 1 ]; then
            # Only the new inputs that add coverage over the committed corpus.
            cargo +nightly fuzz run --fuzz-dir "$fuzz_dir" --target-dir "$target_dir" "$t" \
                "fuzz/corpus/$t" "$work/corpus" -- -merge=1 >"$work/merge.log" 2>&1 || true
        fi
        report+=("$(printf '%-16s %12s %8s   %s' "$t" "${execs:-?}" "$crashes" "$log")")
    done

    echo
    printf '%-16s %12s %8s   %s\n' target executions crashes log
    printf '%s\n' "${report[@]}"
    exit "$crashed"
}

main "$@"
