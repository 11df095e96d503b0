#!/usr/bin/env bash
# Installs one requirements file into the repo's Python venv (.venv/),
# creating the venv if needed; idempotent (a stamp per requirements file
# skips pip when nothing changed). Used by test.sh (the fixture encoders the
# Rust tests run, e.g. databento-dbn), conformance.sh and interop.sh.
#
# Usage: scripts/venv.sh REQUIREMENTS_FILE STAMP_NAME
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

req="$1"
stamp=".venv/.$2-requirements"
if [[ ! -x .venv/bin/python ]]; then
    printf 'venv: creating .venv\n' >&2
    python3 -m venv .venv
fi
if ! cmp -s "$req" "$stamp"; then
    printf 'venv: installing %s\n' "$req" >&2
    .venv/bin/pip install --quiet --disable-pip-version-check -r "$req" </dev/null
    cp "$req" "$stamp"
fi
