#!/usr/bin/env bash
# The price of the NATS hop: the same loadgen scenario(s) against an origin
# directly and through an edge, in one setup, alternated for ROUNDS rounds
# (default 4; the order flips each round), then per-step medians and ratios
# (edge ÷ direct), and each process's CPU per run.
#
#   benches/scale-out.sh                 # ladder-200
#   ROUNDS=2 benches/scale-out.sh ladder-200 ladder-1000
#   ORIGIN_ARGS="--nats-stream-history 0" benches/scale-out.sh   # no JetStream stream
#
# Setup, all on loopback: nats-server -js, an origin (--ingest, --nats-out)
# and an edge (--nats-in), the three pinned to CPU 0; loadgen on CPU 1. The
# publisher always feeds the origin's ingest port; "direct" subscribers
# connect to the origin, "edge" ones to the edge. Both brokers run in every
# run (the edge takes the whole feed from NATS while the origin's clients
# are measured, and the origin publishes to NATS while the edge's are), so
# the two differ by where the fan-out happens and the hop, not by what runs;
# each run starts all three afresh. Results (JSON, .hgrm, cpu.txt, both
# brokers' NATS counters) go to benches/results/scale-out-<time>/.
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
nats_port=14222 origin_ws=18080 origin_ingest=19000 edge_ws=18081
for p in $nats_port $origin_ws $origin_ingest $edge_ws; do
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
setup() { # out dir
    taskset -c 0 "$nats_bin" -js -sd "$1/jetstream" -a 127.0.0.1 -p $nats_port >"$1/nats.log" 2>&1 &
    nats_pid=$!; pids=($nats_pid)
    wait_port $nats_port
    # shellcheck disable=SC2086 # ORIGIN_ARGS is a list of flags
    taskset -c 0 "$broker" --listen 127.0.0.1:$origin_ws --ingest 127.0.0.1:$origin_ingest \
        --nats-out nats://127.0.0.1:$nats_port ${ORIGIN_ARGS:-} >"$1/origin.log" 2>&1 &
    origin_pid=$!; pids+=($origin_pid)
    wait_port $origin_ws
    taskset -c 0 "$broker" --listen 127.0.0.1:$edge_ws --nats-in nats://127.0.0.1:$nats_port \
        >"$1/edge.log" 2>&1 &
    edge_pid=$!; pids+=($edge_pid)
    wait_port $edge_ws
}
teardown() { # out dir
    curl -s "http://127.0.0.1:$edge_ws/metrics" | grep -E '^tickcast_(nats|upstream)' >"$1/edge-metrics.txt" || true
    curl -s "http://127.0.0.1:$origin_ws/metrics" | grep -E '^tickcast_nats' >"$1/origin-metrics.txt" || true
    cleanup
    pids=()
}

# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

run_one() { # scenario, label (direct|edge), out dir
    mkdir -p "$3"
    setup "$3"
    local ws=$origin_ws pid=$origin_pid
    if [ "$2" = edge ]; then ws=$edge_ws; pid=$edge_pid; fi
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
        if [ $((r % 2)) -eq 1 ]; then order=(direct edge); else order=(edge direct); fi
        for how in "${order[@]}"; do
            run_one "$s" "$how" "$out/$s-$how-r$r"
        done
    done
done
for s in "${scenarios[@]}"; do
    "$loadgen" medians --a-label direct --b-label edge \
        --a "$out/$s"-direct-r*/result.json --b "$out/$s"-edge-r*/result.json | tee "$out/$s-hop.txt"
done
echo "results in $out"
