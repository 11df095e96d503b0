"""Interop client: `websockets` over Python's `ssl` against a broker serving
TLS and requiring tokens, with every token minted by PyJWT (not the broker's
own code).

Checks: users with overlapping entitlements each subscribe to `*` and get
ticks of entitled symbols only; a subscribe outside them gets `not_entitled`
and the connection stays usable; refused before the upgrade with HTTP 401:
no token, a bad signature, `alg: none`, an expired token, a tampered `syms`
claim. Usage:
`python client_wss_jwt.py https://localhost:PORT CA_FILE SECRET_FILE`.
"""

import asyncio
import base64
import json
import ssl
import sys
import time
import urllib.parse

import jwt
import msgpack
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

STEP_S = 4.0
LISTEN_S = 2.0

USERS = {
    "alice": ["AAPL", "MSFT"],
    "bob": ["NV*", "MSFT"],
    "carol": ["*"],
}


class Failure(Exception):
    pass


def check(ok, what):
    if not ok:
        raise Failure(what)


def allowed(patterns, sym):
    return any(p == "*" or p == sym or (p.endswith("*") and sym.startswith(p[:-1])) for p in patterns)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def session(ws_url, ctx, token, topics="*"):
    url = f"{ws_url}?token={urllib.parse.quote(token)}&topics={urllib.parse.quote(topics)}"
    return await connect(url, ssl=ctx, open_timeout=STEP_S, max_size=1 << 20)


async def frames(ws, seconds):
    """Decoded frames for `seconds`."""
    out = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            raw = await asyncio.wait_for(ws.recv(), left)
        except TimeoutError:
            break
        out.append(msgpack.unpackb(raw, raw=False))
    return out


async def refused(ws_url, ctx, token):
    """The HTTP status and body of an upgrade refused for `token`."""
    url = ws_url if token is None else f"{ws_url}?token={urllib.parse.quote(token)}"
    try:
        ws = await connect(url, ssl=ctx, open_timeout=STEP_S)
    except InvalidStatus as e:
        return e.response.status_code, e.response.body.decode(errors="replace")
    await ws.close()
    return 101, ""


async def run(base, ca_file, secret_file):
    host_port = urllib.parse.urlparse(base).netloc
    ws_url = f"wss://{host_port}/ws"
    ctx = ssl.create_default_context(cafile=ca_file)
    with open(secret_file, "rb") as f:
        secret = f.read().rstrip(b"\r\n")

    def mint(sub, syms, ttl=600, key=secret, **extra):
        claims = {"sub": sub, "syms": syms, "exp": int(time.time()) + ttl, **extra}
        return jwt.encode(claims, key, algorithm="HS256")

    # Entitled ticks only, per user, over one TLS connection each.
    for user, syms in USERS.items():
        ws = await session(ws_url, ctx, mint(user, syms))
        got = await frames(ws, LISTEN_S)
        check(got and got[0].get("type") == "subscribed", f"{user}: first frame {got[:1]}")
        ticks = [f for f in got if f.get("type") == "tick"]
        check(ticks, f"{user}: no tick in {LISTEN_S} s")
        outside = sorted({t["sym"] for t in ticks if not allowed(syms, t["sym"])})
        check(not outside, f"{user}: ticks outside {syms}: {outside}")
        if user == "alice":
            await ws.send(json.dumps({"op": "subscribe", "topics": ["NVDA"]}))
            errs = [f for f in await frames(ws, 1.0) if f.get("type") == "error"]
            check(errs and errs[0]["code"] == "not_entitled", f"alice NVDA: {errs}")
            await ws.send(json.dumps({"op": "subscribe", "topics": ["AAPL"]}))
            acks = [f for f in await frames(ws, 1.0) if f.get("type") == "subscribed"]
            check(acks and acks[0]["topics"] == ["*", "AAPL"], f"alice ack {acks}")
        await ws.close()
        print(f"PASS python-wss-jwt {user}: {len(ticks)} ticks of {sorted({t['sym'] for t in ticks})[:6]}…")

    # Refusals before the upgrade.
    good = mint("alice", ["AAPL"])
    header, payload, signature = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["syms"] = ["*"]
    tampered = ".".join([header, b64(json.dumps(claims).encode()), signature])
    alg_none = ".".join([b64(b'{"alg":"none","typ":"JWT"}'), b64(json.dumps(claims).encode()), ""])
    cases = {
        "no token": (None, "a token is required"),
        "bad signature": (mint("alice", ["*"], key=b"not the secret"), "bad token signature"),
        "alg none": (alg_none, "malformed token"),
        "expired": (mint("alice", ["*"], ttl=-10), "token expired"),
        "tampered syms": (tampered, "bad token signature"),
    }
    for what, (token, reason) in cases.items():
        status, body = await refused(ws_url, ctx, token)
        check(status == 401 and reason in body, f"{what}: {status} {body!r}")
    print(f"PASS python-wss-jwt refusals: {', '.join(cases)}")


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        asyncio.run(asyncio.wait_for(run(*sys.argv[1:]), 30))
    except (Failure, OSError, TimeoutError) as e:
        print(f"FAIL python-wss-jwt: {e}")
        sys.exit(1)


if __name__ == "__main__":
    main()
