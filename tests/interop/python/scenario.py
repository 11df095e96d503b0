"""The interop scenario every Python WebSocket client runs against a live broker.

Each client module (`client_*.py`) only adapts its library to the small
`Transport` interface below; the checks live here once, so the three clients
prove the same things: connect, subscribe ack with the full list, the snapshot
right after the ack, well-typed ticks in strictly increasing seq order per
symbol, unsubscribe stops a symbol, bad control messages get the right error
code and leave the connection usable. Every wait is bounded; the whole run
is capped at `TOTAL_S`.

Frames are decoded with Python's `msgpack` library, independently of the
broker's own codec.
"""

import asyncio
import json
import sys
import time
import urllib.request
from typing import Awaitable, Callable, Optional, Protocol

import msgpack

TOTAL_S = 15.0
STEP_S = 4.0
QUIET_S = 1.0
PREFERRED = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA"]
TICK_KEYS = {"type", "sym", "seq", "ts", "bid", "ask", "last", "bid_size", "ask_size", "last_size", "volume"}
# A tick's ts must be "now" in nanoseconds: catches a feed stamping µs or ms.
CLOCK_SLACK_NS = 60 * 10**9


class Failure(Exception):
    """A check failed; the message says which and why."""


class Transport(Protocol):
    """What a client library must offer the scenario."""

    async def send_text(self, text: str) -> None: ...

    async def recv(self, timeout: float) -> Optional[bytes | str]:
        """The next frame, None if none came within `timeout`; raises on close."""

    async def close(self) -> None: ...


Connect = Callable[[str], Awaitable[Transport]]


def check(ok: bool, what: str) -> None:
    if not ok:
        raise Failure(what)


def check_tick(msg: dict) -> None:
    """Checks the documented keys and their types."""
    keys = set(msg)
    check(TICK_KEYS <= keys <= TICK_KEYS | {"orig_ts"}, f"tick keys {sorted(keys)}")
    check(type(msg["sym"]) is str and msg["sym"], f"sym {msg['sym']!r}")
    for k in ("seq", "ts", "volume", "bid_size", "ask_size", "last_size") + (("orig_ts",) if "orig_ts" in msg else ()):
        check(type(msg[k]) is int and msg[k] >= 0, f"{k} {msg[k]!r} is not an unsigned int")
    for k in ("bid", "ask", "last"):
        check(type(msg[k]) is float and msg[k] >= 0, f"{k} {msg[k]!r} is not a non-negative float")
    check(msg["seq"] >= 1, f"seq {msg['seq']} < 1")
    check(msg["bid"] <= msg["ask"], f"crossed book {msg['bid']} > {msg['ask']}")
    check(abs(msg["ts"] - time.time_ns()) < CLOCK_SLACK_NS, f"ts {msg['ts']} is not now in ns")


class Session:
    """One connection's frames, with every tick checked as it arrives."""

    def __init__(self, transport: Transport):
        self.transport = transport
        self.last_seq: dict[str, int] = {}
        self.banned: Optional[str] = None  # a symbol that must not tick now
        self.ticks = 0

    async def send(self, obj_or_text) -> None:
        text = obj_or_text if isinstance(obj_or_text, str) else json.dumps(obj_or_text)
        await self.transport.send_text(text)

    async def next(self, timeout: float = STEP_S) -> Optional[dict]:
        """The next decoded message, None on timeout."""
        frame = await self.transport.recv(timeout)
        if frame is None:
            return None
        check(isinstance(frame, bytes), f"broker sent a text frame: {frame!r:.80}")
        msg = msgpack.unpackb(frame, raw=False)
        check(isinstance(msg, dict) and isinstance(msg.get("type"), str), f"not a typed map: {msg!r:.80}")
        if msg["type"] == "tick":
            check_tick(msg)
            sym, seq = msg["sym"], msg["seq"]
            check(sym != self.banned, f"tick of {sym} after its unsubscribe was acknowledged")
            prev = self.last_seq.get(sym)
            check(prev is None or seq > prev, f"{sym} seq {seq} after {prev}")
            self.last_seq[sym] = seq
            self.ticks += 1
        return msg

    async def control(self, what: str) -> dict:
        """Skips (checked) ticks until a control message comes."""
        deadline = time.monotonic() + STEP_S
        while (left := deadline - time.monotonic()) > 0:
            msg = await self.next(left)
            if msg is not None and msg["type"] != "tick":
                return msg
        raise Failure(f"no reply to {what} within {STEP_S} s")

    async def expect_ack(self, what: str, topics: list[str]) -> None:
        msg = await self.control(what)
        # The epoch names the broker's seq stream (for a resume); "epochs"
        # only appears for symbols whose feed restarted.
        epoch = msg.get("epoch")
        check(isinstance(epoch, str) and epoch, f"{what}: no epoch in {msg}")
        rest = {k: v for k, v in msg.items() if k not in ("epoch", "epochs")}
        check(rest == {"type": "subscribed", "topics": sorted(topics)}, f"{what}: got {msg}")

    async def expect_error(self, what: str, request, code: str) -> None:
        await self.send(request)
        msg = await self.control(what)
        check(msg.get("type") == "error" and msg.get("code") == code, f"{what}: want error {code}, got {msg}")
        check(isinstance(msg.get("message"), str) and msg["message"], f"{what}: empty error message")

    async def snapshot(self, syms: list[str]) -> None:
        """The frames right after an ack: one tick of each new symbol."""
        got = []
        for _ in syms:
            msg = await self.next()
            check(msg is not None and msg["type"] == "tick", f"snapshot: got {msg}")
            got.append(msg["sym"])
        check(sorted(got) == sorted(syms), f"snapshot symbols {got}, want {syms}")


def pick_symbols(base: str, n: int) -> list[str]:
    with urllib.request.urlopen(f"{base}/symbols", timeout=STEP_S) as resp:
        known = [t["sym"] for t in json.load(resp)]
    check(len(known) >= n, f"/symbols lists {len(known)} symbols")
    preferred = [s for s in PREFERRED if s in known]
    return (preferred + sorted(set(known) - set(preferred)))[:n]


async def scenario(connect: Connect, base: str, topics_in_url: bool) -> str:
    syms = pick_symbols(base, 3)
    ws_url = base.replace("http://", "ws://", 1) + "/ws"
    if topics_in_url:
        s = Session(await connect(f"{ws_url}?topics={','.join(syms)}"))
        await s.expect_ack("?topics= subscribe", syms)
    else:
        s = Session(await connect(ws_url))
        await s.send({"op": "subscribe", "topics": syms})
        await s.expect_ack("subscribe", syms)
    try:
        await s.snapshot(syms)

        # Live ticks of every symbol, each checked by Session.next.
        counts = dict.fromkeys(syms, 0)
        deadline = time.monotonic() + STEP_S
        while min(counts.values()) < 2 and (left := deadline - time.monotonic()) > 0:
            msg = await s.next(left)
            if msg is not None:
                check(msg["type"] == "tick" and msg["sym"] in counts, f"unexpected {msg}")
                counts[msg["sym"]] += 1
        check(min(counts.values()) >= 2, f"too few live ticks in {STEP_S} s: {counts}")

        gone, rest = syms[0], syms[1:]
        await s.send({"op": "unsubscribe", "topics": [gone]})
        await s.expect_ack("unsubscribe", rest)
        s.banned = gone
        s.last_seq.pop(gone, None)
        before = s.ticks
        deadline = time.monotonic() + QUIET_S
        while (left := deadline - time.monotonic()) > 0:
            msg = await s.next(left)
            check(msg is None or msg["type"] == "tick", f"unexpected {msg}")
        check(s.ticks > before, "the other symbols stopped after the unsubscribe")

        await s.expect_error("unknown op", {"op": "nope"}, "unknown_op")
        await s.expect_error("non-JSON text", "this is not JSON {", "bad_request")
        await s.expect_error("missing topics", {"op": "subscribe"}, "bad_request")
        await s.expect_error("invalid topic", {"op": "subscribe", "topics": ["not a symbol!"]}, "invalid_topic")

        # Still usable: a new subscribe is acknowledged and its snapshot follows at once.
        await s.send({"op": "subscribe", "topics": [gone]})
        await s.expect_ack("resubscribe", syms)
        s.banned = None
        await s.snapshot([gone])
        return f"{s.ticks} ticks checked"
    finally:
        await s.transport.close()


def main(name: str, connect: Connect, topics_in_url: bool = False) -> None:
    """Runs the scenario from the command line: `client_x.py http://127.0.0.1:PORT`."""
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} http://127.0.0.1:PORT")

    async def bounded() -> str:
        return await asyncio.wait_for(scenario(connect, sys.argv[1].rstrip("/"), topics_in_url), TOTAL_S)

    try:
        detail = asyncio.run(bounded())
    except Exception as e:  # a Failure, a timeout or a library error: all fail this client
        print(f"FAIL {name}: {type(e).__name__}: {e}")
        sys.exit(1)
    print(f"PASS {name} ({detail})")
