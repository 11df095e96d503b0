#!/usr/bin/env bash
# Memory of the history rings (issue "Continuity"): runs the release broker
# with its simulator (SYMBOLS symbols, RATE ticks/s) until every ring is
# full (--history HISTORY ticks per symbol), with the history on and off,
# and prints what `/metrics` counts (tickcast_history_bytes/_ticks), what
# the process's resident set grew by, per tick and per symbol, and the
# broker's CPU over the run (the rings' work per tick: no clients, so the
# feed and the history are all it does).
#
#   benches/history-memory.sh                      # 1,000 symbols × 1,000 ticks
#   SYMBOLS=2000 HISTORY=500 benches/history-memory.sh
#   BROKER=/tmp/broker-old benches/history-memory.sh   # an older build
#
# Bounded: each run lasts FILL_S seconds (default: long enough to fill every
# ring twice at RATE), the broker on 127.0.0.1 only, no clients.
set -euo pipefail
cd "$(dirname "$0")/.."

SYMBOLS="${SYMBOLS:-1000}"
HISTORY="${HISTORY:-1000}"
RATE="${RATE:-100000}"
FILL_S="${FILL_S:-$(( 2 * SYMBOLS * HISTORY / RATE + 5 ))}"
# BROKER=<binary> measures another build (an A/B of the rings' cost).
if [ -z "${BROKER:-}" ]; then
    cargo build --release -q -p tickcast-broker
fi
broker="${BROKER:-${CARGO_TARGET_DIR:-target}/release/tickcast-broker}"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

metric() { curl -fsS --max-time 2 "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# run HISTORY: prints "rss_kib history_ticks history_bytes cpu_cores" after FILL_S s.
run() {
    "$broker" --listen "127.0.0.1:$port" --feed sim --symbols "$SYMBOLS" --rate "$RATE" \
        --history "$1" >/dev/null 2>&1 &
    local pid=$!
    trap 'kill $pid 2>/dev/null || true' EXIT
    for _ in $(seq 1 100); do
        curl -fsS --max-time 1 "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    local t0
    t0=$(cpu_ticks $pid)
    sleep "$FILL_S"
    local cores
    cores=$(awk -v a="$t0" -v b="$(cpu_ticks $pid)" -v s="$FILL_S" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.3f", (b - a) / hz / s }')
    echo "$(rss_kib $pid) $(metric tickcast_history_ticks) $(metric tickcast_history_bytes) $cores"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    trap - EXIT
}

echo "history memory: $SYMBOLS symbols, --history $HISTORY, $RATE ticks/s, ${FILL_S} s each ($(date -u +%FT%TZ))"
read -r off_rss _ _ off_cpu < <(run 0)
read -r on_rss ticks bytes on_cpu < <(run "$HISTORY")
python3 - "$SYMBOLS" "$off_rss" "$on_rss" "${ticks:-0}" "${bytes:-0}" "$off_cpu" "$on_cpu" "$RATE" <<'EOF'
import sys
symbols, off, on, ticks, counted = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
off_cpu, on_cpu, rate = float(sys.argv[6]), float(sys.argv[7]), float(sys.argv[8])
print(f"CPU: {off_cpu:.3f} cores without history, {on_cpu:.3f} with it: {(on_cpu - off_cpu) / rate * 1e9:.0f} ns per tick")
grown = (on - off) * 1024
print(f"RSS: {off / 1024:.1f} MiB without history, {on / 1024:.1f} MiB with it (+{grown / 2**20:.1f} MiB)")
print(f"history: {ticks:,.0f} ticks held, {counted / 2**20:.1f} MiB counted by /metrics")
if ticks:
    print(f"per tick: {counted / ticks:.0f} B counted, {grown / ticks:.0f} B resident")
    print(f"per symbol: {counted / symbols / 1024:.1f} KiB counted, {grown / symbols / 1024:.1f} KiB resident")
EOF
