#!/usr/bin/env bash
# Runs the same loadgen scenario(s) against tickcast and nats-server and
# prints them side by side with ratios (nats ÷ tickcast).
#
#   benches/compare.sh                      # ladder-200
#   benches/compare.sh ladder-200 saturation slow-consumer idle-10k
#   TICKCAST_ARGS="--write-coalesce=2ms" benches/compare.sh   # extra broker flags
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
for s in "${scenarios[@]}"; do
    for target in tickcast nats; do
        server_bin=("--server-bin" "$bin_dir/tickcast-broker")
        for a in ${TICKCAST_ARGS:-}; do server_bin+=("--server-arg=$a"); done
        [ "$target" = nats ] && server_bin=("--server-bin" "$nats_bin")
        echo "== $s on $target" >&2
        # Every scenario bounds its own steps; this is the backstop.
        timeout 1800 "${loadgen_pin[@]}" "$loadgen" run "benches/scenarios/$s.toml" \
            --target "$target" --spawn "${server_bin[@]}" "${server_pin[@]}" \
            --out "$out/$s-$target"
    done
    "$loadgen" compare "$out/$s-tickcast/result.json" "$out/$s-nats/result.json" | tee "$out/$s-comparison.txt"
done
echo "results in $out"
