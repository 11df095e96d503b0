#!/usr/bin/env bash
# Runs the same loadgen scenario(s) against tickcast and nats-server and
# prints them side by side with ratios (nats ÷ tickcast).
#
#   benches/compare.sh                      # ladder-200
#   benches/compare.sh ladder-200 saturation slow-consumer idle-10k
#   TICKCAST_ARGS="--write-coalesce=2ms" benches/compare.sh   # extra broker flags
#
# A/B mode, for a change to tickcast itself: with BASELINE set to an old
# build's tickcast-broker binary, the scenarios run against that build and
# the current one (no NATS), alternated for ROUNDS rounds (default 4; the
# order flips each round, so drift in the machine's speed falls on both,
# and an even count puts each build second as often as first: in one
# three-round run on 2026-12-01, at 1,000 subscribers the build that ran
# second in its pair had the higher p50 in every round, whichever it was),
# then `loadgen medians` prints per-step medians and ratios (new ÷ old):
#
#   cp target/release/tickcast-broker /tmp/broker-old    # before the change
#   BASELINE=/tmp/broker-old benches/compare.sh ladder-200 ladder-1000 slow-consumer
#
# wss mode, for the price of TLS: with WSS=1 the scenarios run against
# tickcast over plain ws and over wss (loadgen --tls: a self-signed
# certificate made for the run, the publisher still on plain TCP, so the
# difference is the subscribers' TLS alone), alternated for ROUNDS rounds
# as in A/B mode, and `loadgen medians` prints wss ÷ ws; then NATS over wss
# once per scenario beside the last tickcast wss run (nats ÷ tickcast), and
# new connections per second over ws and wss for both servers (`loadgen
# handshakes`, HANDSHAKES connections, default 20000, 64 in flight):
#
#   WSS=1 benches/compare.sh ladder-200
#
# Each server is spawned by loadgen on CPU 0 and loadgen runs on CPU 1, so
# neither competes with the other for a core. Results (JSON, .hgrm, SVG)
# go to benches/results/compare-<time>/. Run it on a quiet machine: the
# figures are only as good as the machine is idle.
set -euo pipefail

cd "$(dirname "$0")/.."
scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then
    scenarios=(ladder-200)
fi
for s in "${scenarios[@]}"; do
    [ -f "benches/scenarios/$s.toml" ] || { echo "no scenario benches/scenarios/$s.toml" >&2; exit 2; }
done

# nats-server (Debian package) for the comparison target.
nats_bin="$(command -v nats-server || true)"
[ -n "$nats_bin" ] || [ ! -x /usr/sbin/nats-server ] || nats_bin=/usr/sbin/nats-server
if [ -z "$nats_bin" ]; then
    echo "installing nats-server (apt-get)" >&2
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq nats-server >/dev/null
    nats_bin="$(command -v nats-server || echo /usr/sbin/nats-server)"
fi
command -v taskset >/dev/null || { echo "taskset (util-linux) is required" >&2; exit 2; }

cargo build --release -p tickcast-broker -p tickcast-benches
bin_dir="${CARGO_TARGET_DIR:-target}/release"
loadgen="$bin_dir/loadgen"

# Two cores: server on 0, loadgen on 1. One core: no pinning (figures then
# measure contention as much as the server).
server_pin=(--server-cpu 0)
loadgen_pin=(taskset -c 1)
if [ "$(nproc)" -lt 2 ]; then
    server_pin=()
    loadgen_pin=()
fi

out="benches/results/compare-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"

# One run of scenario $1 against target $2 (tickcast or nats) served by the
# binary $3, into directory $4; any further arguments go to loadgen (--tls).
run_one() {
    local args=("--server-bin" "$3" "${@:5}")
    if [ "$2" = tickcast ]; then
        for a in ${TICKCAST_ARGS:-}; do args+=("--server-arg=$a"); done
    fi
    echo "== $1 on $2 ($3)" >&2
    # Every scenario bounds its own steps; this is the backstop.
    timeout 1800 "${loadgen_pin[@]}" "$loadgen" run "benches/scenarios/$1.toml" \
        --target "$2" --spawn "${args[@]}" "${server_pin[@]}" --out "$4"
}

if [ -n "${WSS:-}" ]; then
    rounds="${ROUNDS:-4}"
    for r in $(seq 1 "$rounds"); do
        for s in "${scenarios[@]}"; do
            if [ $((r % 2)) -eq 1 ]; then order=(ws wss); else order=(wss ws); fi
            for scheme in "${order[@]}"; do
                tls=()
                [ "$scheme" = wss ] && tls=(--tls)
                run_one "$s" tickcast "$bin_dir/tickcast-broker" "$out/$s-$scheme-r$r" "${tls[@]}"
            done
        done
    done
    for s in "${scenarios[@]}"; do
        "$loadgen" medians --a-label ws --b-label wss \
            --a "$out/$s"-ws-r*/result.json --b "$out/$s"-wss-r*/result.json | tee "$out/$s-wss.txt"
        run_one "$s" nats "$nats_bin" "$out/$s-nats-wss" --tls
        "$loadgen" compare "$out/$s-wss-r$rounds/result.json" "$out/$s-nats-wss/result.json" |
            tee "$out/$s-nats-wss-comparison.txt"
    done
    for target in tickcast nats; do
        bin="$bin_dir/tickcast-broker"
        [ "$target" = nats ] && bin="$nats_bin"
        for tls in "" --tls; do
            echo "== new connections per second, $target ${tls:-(ws)}" >&2
            timeout 300 "${loadgen_pin[@]}" "$loadgen" handshakes --target "$target" --spawn \
                --server-bin "$bin" "${server_pin[@]}" $tls \
                --connections "${HANDSHAKES:-20000}" --concurrency 64 --max-duration 60s |
                tee -a "$out/handshakes.txt"
        done
    done
    echo "results in $out"
    exit 0
fi

if [ -n "${BASELINE:-}" ]; then
    [ -x "$BASELINE" ] || { echo "BASELINE=$BASELINE is not an executable" >&2; exit 2; }
    rounds="${ROUNDS:-4}"
    for r in $(seq 1 "$rounds"); do
        for s in "${scenarios[@]}"; do
            if [ $((r % 2)) -eq 1 ]; then order=(old new); else order=(new old); fi
            for build in "${order[@]}"; do
                bin="$bin_dir/tickcast-broker"
                [ "$build" = old ] && bin="$BASELINE"
                run_one "$s" tickcast "$bin" "$out/$s-$build-r$r"
            done
        done
    done
    for s in "${scenarios[@]}"; do
        "$loadgen" medians --a-label old --b-label new \
            --a "$out/$s"-old-r*/result.json --b "$out/$s"-new-r*/result.json | tee "$out/$s-ab.txt"
    done
    echo "results in $out"
    exit 0
fi

for s in "${scenarios[@]}"; do
    run_one "$s" tickcast "$bin_dir/tickcast-broker" "$out/$s-tickcast"
    run_one "$s" nats "$nats_bin" "$out/$s-nats"
    "$loadgen" compare "$out/$s-tickcast/result.json" "$out/$s-nats/result.json" | tee "$out/$s-comparison.txt"
done
echo "results in $out"
