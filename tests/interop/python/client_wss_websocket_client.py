"""Interop client: `websocket-client` (its synchronous API) with an `ssl`
context, against the broker serving TLS and requiring tokens: the same
broker, test certificate and PyJWT tokens as client_wss_jwt.py, whose users
and helpers it reuses.

Checks: each user receives ticks over wss, of entitled symbols only, with
the token in `?token=` or (alice) in an `Authorization: Bearer` header; a
connection without a token is refused with HTTP 401 before the upgrade.
Usage: `python client_wss_websocket_client.py https://localhost:PORT CA_FILE SECRET_FILE`.
"""

import ssl
import sys
import time
import urllib.parse

import jwt
import msgpack
import websocket

from client_wss_jwt import LISTEN_S, STEP_S, USERS, Failure, allowed, check

NAME = "python-wss-websocket-client"


def frames(ws, seconds):
    """Decoded frames for `seconds`."""
    out = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ws.settimeout(left)
        try:
            raw = ws.recv()
        except websocket.WebSocketTimeoutException:
            break
        out.append(msgpack.unpackb(raw, raw=False))
    return out


def run(base, ca_file, secret_file):
    host_port = urllib.parse.urlparse(base).netloc
    ws_url = f"wss://{host_port}/ws"
    sslopt = {"context": ssl.create_default_context(cafile=ca_file)}
    with open(secret_file, "rb") as f:
        secret = f.read().rstrip(b"\r\n")

    for user, syms in USERS.items():
        token = jwt.encode({"sub": user, "syms": syms, "exp": int(time.time()) + 600}, secret, algorithm="HS256")
        if user == "alice":
            url, header = f"{ws_url}?topics=*", [f"Authorization: Bearer {token}"]
        else:
            url, header = f"{ws_url}?topics=*&token={urllib.parse.quote(token)}", []
        ws = websocket.create_connection(url, sslopt=sslopt, header=header, timeout=STEP_S)
        got = frames(ws, LISTEN_S)
        ws.close()
        check(got and got[0].get("type") == "subscribed", f"{user}: first frame {got[:1]}")
        ticks = [f for f in got if f.get("type") == "tick"]
        check(ticks, f"{user}: no tick in {LISTEN_S} s")
        outside = sorted({t["sym"] for t in ticks if not allowed(syms, t["sym"])})
        check(not outside, f"{user}: ticks outside {syms}: {outside}")
        print(f"PASS {NAME} {user}: {len(ticks)} ticks, none outside {syms}")

    try:
        websocket.create_connection(f"{ws_url}?topics=*", sslopt=sslopt, timeout=STEP_S).close()
        raise Failure("no token: the upgrade was accepted")
    except websocket.WebSocketBadStatusException as e:
        check(e.status_code == 401, f"no token: HTTP {e.status_code}")
    print(f"PASS {NAME} no token: 401")


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        run(*sys.argv[1:])
    except (Failure, OSError, websocket.WebSocketException) as e:
        print(f"FAIL {NAME}: {e!r}")
        sys.exit(1)


if __name__ == "__main__":
    main()
