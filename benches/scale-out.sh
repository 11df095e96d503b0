#!/usr/bin/env bash
# The price of the NATS hop: the same loadgen scenario(s) against an origin
# directly and through an edge, in one setup, alternated for ROUNDS rounds
# (default 4; the order flips each round), then per-step medians and ratios
# (edge ÷ direct), and each process's CPU per run.
#
#   benches/scale-out.sh                 # ladder-200
#   ROUNDS=2 benches/scale-out.sh ladder-200 ladder-1000
#   ORIGIN_ARGS="--nats-stream-history 0" benches/scale-out.sh   # no JetStream stream
#   INTEREST=1 benches/scale-out.sh edge-interest   # subscribed ÷ all, both on the edge
#
# With INTEREST=1 both runs are measured on the edge, one with
# `--nats-interest all` and one with `--nats-interest subscribed`, and the
# medians are subscribed ÷ all.
#
# Setup, all on loopback: nats-server -js, an origin (--ingest, --nats-out)
# and an edge (--nats-in), the three pinned to CPU 0; loadgen on CPU 1. The
# publisher always feeds the origin's ingest port; "direct" subscribers
# connect to the origin, "edge" ones to the edge. Both brokers run in every
# run (the edge takes the whole feed from NATS while the origin's clients
# are measured, and the origin publishes to NATS while the edge's are), so
# the two differ by where the fan-out happens and the hop, not by what runs;
# each run starts all three afresh. Results (JSON, .hgrm, cpu.txt, both
# brokers' NATS counters, nats-server's /connz at the end: what it sent
# each connection) go to benches/results/scale-out-<time>/, and a table of
# NATS → edge messages and bytes and each process's CPU per label.
# Run it on a quiet machine.
set -euo pipefail

cd "$(dirname "$0")/.."
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(ladder-200)
for s in "${scenarios[@]}"; do
    [ -f "benches/scenarios/$s.toml" ] || { echo "no scenario benches/scenarios/$s.toml" >&2; exit 2; }
done
nats_bin="$(command -v nats-server || echo /usr/sbin/nats-server)"
[ -x "$nats_bin" ] || { echo "nats-server is needed (apt-get install nats-server)" >&2; exit 2; }

cargo build --release -p tickcast-broker -p tickcast-benches
bin_dir="${CARGO_TARGET_DIR:-target}/release"
loadgen="$bin_dir/loadgen"
broker="$bin_dir/tickcast-broker"
out="benches/results/scale-out-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"

# Ports nothing else on this machine uses.
nats_port=14222 nats_http=18222 origin_ws=18080 origin_ingest=19000 edge_ws=18081
for p in $nats_port $nats_http $origin_ws $origin_ingest $edge_ws; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        echo "port $p is in use" >&2; exit 2
    fi
done

pids=()
cleanup() {
    [ ${#pids[@]} -eq 0 ] && return
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
}
trap cleanup EXIT
wait_port() {
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on $1" >&2; exit 1
}

# A fresh setup for every run, so one run's overload (an origin whose NATS
# queue overflowed leaves the edge's seqs behind, and loadgen numbers the
# next run from the broker it loads) cannot spill into the next.
setup() { # out dir, edge flags
    taskset -c 0 "$nats_bin" -js -sd "$1/jetstream" -a 127.0.0.1 -p $nats_port -m $nats_http \
        >"$1/nats.log" 2>&1 &
    nats_pid=$!; pids=($nats_pid)
    wait_port $nats_port
    # shellcheck disable=SC2086 # ORIGIN_ARGS is a list of flags
    taskset -c 0 "$broker" --listen 127.0.0.1:$origin_ws --ingest 127.0.0.1:$origin_ingest \
        --nats-out nats://127.0.0.1:$nats_port ${ORIGIN_ARGS:-} >"$1/origin.log" 2>&1 &
    origin_pid=$!; pids+=($origin_pid)
    wait_port $origin_ws
    # shellcheck disable=SC2086 # $2 is a list of flags
    taskset -c 0 "$broker" --listen 127.0.0.1:$edge_ws --nats-in nats://127.0.0.1:$nats_port \
        $2 >"$1/edge.log" 2>&1 &
    edge_pid=$!; pids+=($edge_pid)
    wait_port $edge_ws
}
teardown() { # out dir
    curl -s "http://127.0.0.1:$edge_ws/metrics" | grep -E '^tickcast_(nats|upstream)' >"$1/edge-metrics.txt" || true
    curl -s "http://127.0.0.1:$origin_ws/metrics" | grep -E '^tickcast_nats' >"$1/origin-metrics.txt" || true
    curl -s "http://127.0.0.1:$nats_http/connz" >"$1/connz.json" || true
    cleanup
    pids=()
}

# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# The two labels, and for each where its subscribers connect and the
# edge's flags.
if [ -n "${INTEREST:-}" ]; then
    labels=(all subscribed)
else
    labels=(direct edge)
fi
edge_flags() { # label
    case $1 in
        all) echo "--nats-interest all" ;;
        subscribed) echo "--nats-interest subscribed" ;;
        *) echo "${EDGE_ARGS:-}" ;;
    esac
}

run_one() { # scenario, label, out dir
    mkdir -p "$3"
    setup "$3" "$(edge_flags "$2")"
    local ws=$edge_ws pid=$edge_pid
    if [ "$2" = direct ]; then ws=$origin_ws; pid=$origin_pid; fi
    local before=() after=()
    for p in $nats_pid $origin_pid $edge_pid; do before+=("$(cpu_ticks $p)"); done
    local start; start=$(date +%s.%N)
    echo "== $1 $2" >&2
    timeout 1800 taskset -c 1 "$loadgen" run "benches/scenarios/$1.toml" --target tickcast \
        --broker 127.0.0.1:$ws --ingest 127.0.0.1:$origin_ingest --server-pid $pid --out "$3"
    local secs; secs=$(echo "$(date +%s.%N) - $start" | bc)
    for p in $nats_pid $origin_pid $edge_pid; do after+=("$(cpu_ticks $p)"); done
    {
        echo "wall ${secs}s; CPU seconds (share of one core):"
        local i=0
        for name in nats-server origin edge; do
            local used; used=$(echo "scale=2; (${after[$i]} - ${before[$i]}) / $hz" | bc)
            echo "  $name ${used}s ($(echo "scale=2; $used / $secs" | bc))"
            i=$((i + 1))
        done
    } | tee "$3/cpu.txt"
    teardown "$3"
}

rounds="${ROUNDS:-4}"
for r in $(seq 1 "$rounds"); do
    for s in "${scenarios[@]}"; do
        if [ $((r % 2)) -eq 1 ]; then order=("${labels[0]}" "${labels[1]}"); else order=("${labels[1]}" "${labels[0]}"); fi
        for how in "${order[@]}"; do
            run_one "$s" "$how" "$out/$s-$how-r$r"
        done
    done
done
# What NATS sent the edge, per run: the messages and bytes of the
# connection named "tickcast edge" in nats-server's /connz.
nats_to_edge() { # connz.json
    python3 -c '
import json, sys
conns = json.load(open(sys.argv[1])).get("connections", [])
edge = [c for c in conns if c.get("name") == "tickcast edge"]
print(*(f"{edge[0][k]}" if edge else "?" for k in ("out_msgs", "out_bytes")))
' "$1" 2>/dev/null || echo "? ?"
}
for s in "${scenarios[@]}"; do
    "$loadgen" medians --a-label "${labels[0]}" --b-label "${labels[1]}" \
        --a "$out/$s-${labels[0]}"-r*/result.json --b "$out/$s-${labels[1]}"-r*/result.json | tee "$out/$s-medians.txt"
    {
        echo "per run: NATS → edge messages, bytes; CPU seconds of nats-server, origin, edge"
        for how in "${labels[@]}"; do
            for d in "$out/$s-$how"-r*; do
                cpu=$(awk '/nats-server|origin|edge/ { sub("s", "", $2); printf "%s ", $2 }' "$d/cpu.txt")
                echo "  $how $(basename "$d"): $(nats_to_edge "$d/connz.json"); $cpu"
            done
        done
    } | tee "$out/$s-traffic.txt"
done
echo "results in $out"
