#!/usr/bin/env bash
# Everything tickcast checks, on a fresh machine: formatting, lints, every
# Rust test (unit, integration over real sockets, doc tests), then the interop
# suite with third-party clients (Python, Node, headless Chromium), which
# installs what it needs. This is the README's test command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test --workspace"
cargo test --workspace --locked

step "interop: third-party WebSocket clients against a real broker"
SCREENSHOT="${SCREENSHOT:-target/interop/dashboard.png}" bash scripts/interop.sh
