#!/usr/bin/env bash
# Conformance: the Autobahn|Testsuite's WebSocket cases, run by kosoku (a
# Python 3 runner of Autobahn's own case files), against an echo server built
# on the broker's own upgrade, frame reader and frame builder
# (broker/examples/echo.rs). Each case's result (behavior, close behavior, the
# server's close code) is compared with the committed baseline
# tests/conformance/expected.json; any change, either way, a missing case or
# a new one fails the run. docs/CONFORMANCE.md explains every case that is
# not OK.
#
# Usage: scripts/conformance.sh [--performance | --all | SECTION...] [--update]
#   (none)         sections 1-7 and 10 (framing, pings, reserved bits,
#                  opcodes, fragments, UTF-8, close; about 10 s)
#   --performance  section 9 (large messages and fragments, up to 16 MiB)
#   --all          the whole suite: 1-7, 9, 10, and 12-13 (permessage-deflate,
#                  which neither the broker nor the echo negotiates: all
#                  UNIMPLEMENTED)
#   SECTION...     those sections, e.g. `5 6`
#   --update       write this run's results into the baseline instead of
#                  comparing (for the selected sections only)
#
# Installs what it needs, idempotently: kosoku (pinned in
# tests/conformance/requirements.txt) into the repo's .venv. Builds the echo
# example, starts it on a free 127.0.0.1 port, always stops it on exit.
# Reports (Autobahn's JSON and HTML per case) go to
# target/conformance/reports-SECTIONS/. Ends with `conformance: N passed,
# N failed` (cases matching the baseline, deviations).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONF="$ROOT/tests/conformance"
RUN_TIMEOUT=300  # seconds for the whole kosoku run; 1-7 and 10 take ~10 s
START_TIMEOUT=10 # seconds for the echo server to listen
cd "$ROOT"

log() { printf 'conformance: %s\n' "$*" >&2; }
usage() { sed -n '/^# Usage:/,/^#$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; }

sections=()
update=0
for arg in "$@"; do
    case "$arg" in
    --performance) sections+=(9) ;;
    --all) sections+=(1 2 3 4 5 6 7 9 10 12 13) ;;
    --update) update=1 ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        if [[ "$arg" =~ ^[0-9]+$ ]]; then
            sections+=("$arg")
        else
            log "unknown argument: $arg"
            usage
            exit 2
        fi
        ;;
    esac
done
[[ ${#sections[@]} -gt 0 ]] || sections=(1 2 3 4 5 6 7 10)
mapfile -t sections < <(printf '%s\n' "${sections[@]}" | sort -n -u)
section_list="$(IFS=,; echo "${sections[*]}")"

install_python() {
    bash scripts/venv.sh "$CONF/requirements.txt" conformance
}

install_python </dev/null

log "building the echo example (broker/examples/echo.rs)"
cargo build --quiet --locked -p tickcast-broker --example echo </dev/null
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
ECHO="$TARGET_DIR/debug/examples/echo"
OUT="$TARGET_DIR/conformance"
REPORTS="$OUT/reports-${section_list//,/-}"
mkdir -p "$OUT"
rm -rf "$REPORTS"
ECHO_LOG="$OUT/echo.log"
KOSOKU_LOG="$OUT/kosoku.log"

"$ECHO" 0 </dev/null >"$ECHO_LOG" 2>&1 &
ECHO_PID=$!
stop_echo() {
    if kill -0 "$ECHO_PID" 2>/dev/null; then
        kill "$ECHO_PID" 2>/dev/null || true
        wait "$ECHO_PID" 2>/dev/null || true
    fi
}
trap stop_echo EXIT

addr=""
for _ in $(seq 1 $((START_TIMEOUT * 10))); do
    addr="$(sed -n 's/^echo: listening on \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$ECHO_LOG")"
    [[ -n "$addr" ]] && break
    if ! kill -0 "$ECHO_PID" 2>/dev/null; then
        break
    fi
    sleep 0.1
done
if [[ -z "$addr" ]]; then
    log "the echo server did not start within ${START_TIMEOUT} s:"
    cat "$ECHO_LOG" >&2
    echo "conformance: 0 passed, 1 failed"
    exit 1
fi

includes=()
for s in "${sections[@]}"; do includes+=(-i "$s.*"); done
log "running Autobahn sections $section_list with kosoku against ws://$addr (echo pid $ECHO_PID)"
started=$SECONDS
status=0
timeout --kill-after=10 "$RUN_TIMEOUT" .venv/bin/kosoku -o "$REPORTS" "${includes[@]}" "ws://$addr" \
    </dev/null >"$KOSOKU_LOG" 2>&1 || status=$?
took=$((SECONDS - started))
# kosoku exits 1 when a case FAILED: the baseline decides, not kosoku.
if [[ $status -ne 0 && $status -ne 1 ]]; then
    [[ $status -eq 124 ]] && log "kosoku was stopped after ${RUN_TIMEOUT} s"
    log "kosoku exited with $status; its last lines:"
    tail -n 20 "$KOSOKU_LOG" >&2
fi
if ! kill -0 "$ECHO_PID" 2>/dev/null; then
    log "the echo server died during the run; its last lines:"
    tail -n 20 "$ECHO_LOG" >&2
fi
log "the run took ${took} s; reports in $REPORTS/"

update_flag=()
[[ $update -eq 1 ]] && update_flag=(--update)
.venv/bin/python "$CONF/compare.py" "$REPORTS/index.json" "$CONF/expected.json" "$section_list" "${update_flag[@]}"
