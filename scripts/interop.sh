#!/usr/bin/env bash
# Interop suite: third-party WebSocket clients against a real tickcast broker.
#
# Builds the broker, starts it on a free 127.0.0.1 port with its embedded
# simulated feed, and runs every client in tests/interop/ against it: Python
# websocket-client, websockets and tornado, Node ws, and the dashboard in
# headless Chromium (which also saves docs/dashboard.png), plus the
# dashboard's MessagePack decoder tests; then a second broker serving TLS and
# requiring tokens, against Python websockets over ssl with PyJWT tokens
# (client_wss_jwt.py), Python websocket-client with an ssl context and Node
# ws with the test certificate as its CA (both: ticks of entitled symbols
# only, 401 without a token), and the dashboard over https in Chromium
# (sign-in box, #token=, not_entitled and expiry banners: dashboard_tls.mjs).
# Installs what it needs, idempotently:
# a venv in .venv/, node_modules in tests/interop/node/, Debian's chromium.
# Ends with `interop: N passed, N failed` and fails if any client failed.
#
# Environment: SCREENSHOT (where to save the dashboard picture),
# INTEROP_PORT (a fixed port instead of a free one).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INTEROP="$ROOT/tests/interop"
SCREENSHOT="${SCREENSHOT:-$ROOT/docs/dashboard.png}"
CLIENT_TIMEOUT=90 # seconds; each client bounds itself well below this
cd "$ROOT"

log() { printf 'interop: %s\n' "$*" >&2; }

install_python() {
    bash scripts/venv.sh "$INTEROP/python/requirements.txt" interop
}

install_node() {
    local dir="$INTEROP/node"
    if [[ ! -f "$dir/node_modules/.package-lock.json" || "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]]; then
        log "installing Node packages"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    fi
}

install_chromium() {
    if [[ ! -x /usr/bin/chromium ]]; then
        log "installing chromium"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    fi
}

# wait_healthz URL [CURL ARGS...]: until a started broker answers (10 s at most).
wait_healthz() {
    local url="$1"
    shift
    for _ in $(seq 1 100); do
        curl -fsS --max-time 1 "$@" "$url" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

install_python </dev/null
install_node </dev/null
install_chromium </dev/null

log "building the broker"
cargo build --quiet -p tickcast-broker </dev/null
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
BROKER="$TARGET_DIR/debug/tickcast-broker"

PORT="${INTEROP_PORT:-$(free_port)}"
BASE="http://127.0.0.1:$PORT"
BROKER_LOG="$(mktemp -t tickcast-interop-broker.XXXXXX.log)"
"$BROKER" --listen "127.0.0.1:$PORT" --feed sim --symbols 50 --rate 2000 </dev/null >"$BROKER_LOG" 2>&1 &
BROKER_PID=$!

stop_broker() {
    if kill -0 "$BROKER_PID" 2>/dev/null; then
        kill "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
    fi
    rm -f "$BROKER_LOG"
}
trap stop_broker EXIT

for _ in $(seq 1 100); do
    if curl -fsS --max-time 1 "$BASE/healthz" >/dev/null 2>&1; then
        break
    fi
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then
        log "the broker exited at start:"
        cat "$BROKER_LOG" >&2
        echo "interop: 0 passed, 1 failed"
        exit 1
    fi
    sleep 0.1
done
curl -fsS --max-time 1 "$BASE/healthz" >/dev/null || {
    log "the broker did not answer /healthz within 10 s"
    echo "interop: 0 passed, 1 failed"
    exit 1
}
log "broker up at $BASE (pid $BROKER_PID)"

passed=0
failed=0

# run NAME COMMAND...: one client, bounded in time, counted by exit code.
run() {
    local name="$1"
    shift
    local out status=0
    out="$(timeout "$CLIENT_TIMEOUT" "$@" </dev/null 2>&1)" || status=$?
    if [[ $status -eq 0 ]]; then
        passed=$((passed + 1))
        printf '%s\n' "$out" | grep -E '^PASS' || echo "PASS $name"
    else
        failed=$((failed + 1))
        printf '%s\n' "$out" | tail -n 40
        [[ $status -eq 124 ]] && echo "FAIL $name: killed after ${CLIENT_TIMEOUT} s"
        echo "FAIL $name (exit $status)"
    fi
}

PY="$ROOT/.venv/bin/python"
run msgpack-decoder env PYTHON="$PY" node --test "$INTEROP/node/msgpack.test.mjs"
run python-websocket-client "$PY" "$INTEROP/python/client_websocket_client.py" "$BASE"
run python-websockets "$PY" "$INTEROP/python/client_websockets.py" "$BASE"
run python-tornado "$PY" "$INTEROP/python/client_tornado.py" "$BASE"
run node-ws node "$INTEROP/node/ws_client.mjs" "$BASE"
mkdir -p "$(dirname "$SCREENSHOT")"
run dashboard node "$INTEROP/node/dashboard.mjs" "$BASE" "$SCREENSHOT"

# A second broker serving TLS and requiring tokens: a certificate for
# localhost made now with openssl, an HS256 secret; the Python client mints
# its tokens with PyJWT.
SECURE_DIR="$(mktemp -d -t tickcast-interop-secure.XXXXXX)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$SECURE_DIR/key.pem" -out "$SECURE_DIR/cert.pem" 2>/dev/null
head -c 32 /dev/urandom | base64 >"$SECURE_DIR/secret"
SECURE_PORT="$(free_port)"
"$BROKER" --listen "127.0.0.1:$SECURE_PORT" --feed sim --symbols 50 --rate 2000 \
    --tls-cert "$SECURE_DIR/cert.pem" --tls-key "$SECURE_DIR/key.pem" \
    --jwt-secret-file "$SECURE_DIR/secret" </dev/null >>"$BROKER_LOG" 2>&1 &
SECURE_PID=$!
stop_secure() {
    if kill -0 "$SECURE_PID" 2>/dev/null; then
        kill "$SECURE_PID" 2>/dev/null || true
        wait "$SECURE_PID" 2>/dev/null || true
    fi
    rm -rf "$SECURE_DIR"
    stop_broker
}
trap stop_secure EXIT
wait_healthz "https://localhost:$SECURE_PORT/healthz" --cacert "$SECURE_DIR/cert.pem"
SECURE_BASE="https://localhost:$SECURE_PORT"
SECURE_FILES=("$SECURE_DIR/cert.pem" "$SECURE_DIR/secret")
run python-wss-jwt "$PY" "$INTEROP/python/client_wss_jwt.py" "$SECURE_BASE" "${SECURE_FILES[@]}"
run python-wss-websocket-client "$PY" "$INTEROP/python/client_wss_websocket_client.py" "$SECURE_BASE" "${SECURE_FILES[@]}"
run node-ws-wss node "$INTEROP/node/wss_client.mjs" "$SECURE_BASE" "${SECURE_FILES[@]}"
# Chromium accepts the test certificate by --ignore-certificate-errors.
run dashboard-https node "$INTEROP/node/dashboard_tls.mjs" "$SECURE_BASE" "$SECURE_DIR/secret"

if kill -0 "$BROKER_PID" 2>/dev/null; then
    passed=$((passed + 1))
    echo "PASS broker-alive"
else
    failed=$((failed + 1))
    echo "FAIL broker-alive: the broker died during the run"
fi
if [[ $failed -gt 0 ]]; then
    log "last lines of the broker's log:"
    tail -n 30 "$BROKER_LOG" >&2
fi

echo "interop: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
