#!/usr/bin/env bash
# Everything tickcast checks, on a fresh machine: formatting, lints, every
# Rust test (unit, integration over real sockets, doc tests), the Autobahn
# conformance cases against the broker's frame code (kosoku, ~15 s), then the
# interop suite with third-party clients (Python, Node, headless Chromium);
# the last two install what they need, as does the venv step for the fixture
# encoders some Rust tests run (databento-dbn). This is the README's test command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

# Debian packages the suites use: nats-server (loadgen's comparison target)
# and chromium (the dashboard test). One `apt-get update`, only if needed.
need=()
command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || need+=(nats-server)
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
    step "installing ${need[*]}"
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq </dev/null
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need[@]}" </dev/null >/dev/null
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "Python fixture encoders for the Rust tests (feed-simulator/tests/python) into .venv"
bash scripts/venv.sh feed-simulator/tests/python/requirements.txt fixtures

step "cargo test --workspace"
cargo test --workspace --locked

step "conformance: Autobahn cases 1–7, 10 (kosoku) against the broker's frame reader and writer"
bash scripts/conformance.sh

step "interop: third-party WebSocket clients against a real broker"
SCREENSHOT="${SCREENSHOT:-target/interop/dashboard.png}" bash scripts/interop.sh
