#!/usr/bin/env bash
# The soak: a release broker fed by its embedded simulator on a free
# 127.0.0.1 port, ~1,000 churning subscribers against it for --duration
# (default 1h), its RSS, open fds and tasks sampled every 10 s and judged
# flat or not (`loadgen soak`, benches/src/soak.rs has the rule). Prints the
# verdict, writes soak.json and soak.svg under --out (default target/soak/),
# stops the broker however it ends, and exits non-zero unless it passed.
#
#   benches/soak.sh                       # one hour
#   benches/soak.sh --duration 2m         # a short one
#   benches/soak.sh --duration 1h --out /tmp/soak -- --subscribers 500
#
# Arguments after `--` go to `loadgen soak` (see `loadgen soak --help`).
# BROKER_ARGS (environment) replaces the broker's feed arguments (default:
# 100 symbols at 1,000 ticks/s, seed 1).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

duration=1h
out=target/soak
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration="$2"; shift 2 ;;
        --duration=*) duration="${1#*=}"; shift ;;
        --out) out="$2"; shift 2 ;;
        --out=*) out="${1#*=}"; shift ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
done
read -r -a broker_args <<<"${BROKER_ARGS:---symbols 100 --rate 1000 --seed 1}"

cargo build --release --locked -p tickcast-broker -p tickcast-benches
bin="${CARGO_TARGET_DIR:-target}/release"
mkdir -p "$out"
log="$out/broker.log"

# Port 0: the broker binds a free one and logs it.
"$bin/tickcast-broker" --listen 127.0.0.1:0 "${broker_args[@]}" >"$log" 2>&1 &
broker_pid=$!
stop_broker() {
    if kill -0 "$broker_pid" 2>/dev/null; then
        kill -TERM "$broker_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$broker_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$broker_pid" 2>/dev/null || true
    fi
    wait "$broker_pid" 2>/dev/null || true
}
trap stop_broker EXIT
trap 'exit 130' INT TERM

addr=
for _ in $(seq 100); do
    addr=$(grep -o 'serving http://127\.0\.0\.1:[0-9]*' "$log" | head -1 | sed 's|serving http://||') || true
    [ -n "$addr" ] && break
    kill -0 "$broker_pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.1
done
[ -n "$addr" ] || { echo "the broker did not start:" >&2; cat "$log" >&2; exit 1; }
symbols=100
prev=
for a in "${broker_args[@]}"; do
    [ "$prev" = --symbols ] && symbols=$a
    prev=$a
done
echo "broker pid $broker_pid on $addr (${broker_args[*]}); soak for $duration, results in $out/"

# Interrupted, the loadgen ends the soak early and still writes its
# (failed) report: pass the signal on, wait for it, then stop the broker.
loadgen_pid=
on_signal() {
    [ -n "$loadgen_pid" ] && kill -TERM "$loadgen_pid" 2>/dev/null && wait "$loadgen_pid" 2>/dev/null
    exit 130
}
trap on_signal INT TERM
status=0
"$bin/loadgen" soak --broker "$addr" --server-pid "$broker_pid" \
    --duration "$duration" --symbols "$symbols" --out "$out" "${extra[@]}" &
loadgen_pid=$!
wait "$loadgen_pid" || status=$?
exit $status
