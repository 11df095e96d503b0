// Interop client: Node's `ws` with `@msgpack/msgpack`, against a live broker.
//
// The same checks as the Python clients (tests/interop/python/scenario.py):
// subscribe ack with the full list, the snapshot right after it, well-typed
// ticks in strictly increasing seq order per symbol, unsubscribe stops a
// symbol, bad control messages get the right error code and leave the
// connection usable. Unlike them it sends its control messages as binary
// MessagePack frames (the broker takes JSON text or MessagePack), so that
// path is covered too, and it ends by checking that a control message over
// the broker's size limit closes the connection with 1009. Every wait is
// bounded; the run is capped at TOTAL_MS.
//
// Usage: node ws_client.mjs http://127.0.0.1:PORT
// Prints `PASS node-ws ...` or `FAIL node-ws: reason`; exit code 0 or 1.

import WebSocket from "ws";
import { decode, encode } from "@msgpack/msgpack";

const NAME = "node-ws";
const TOTAL_MS = 15_000;
const STEP_MS = 4_000;
const QUIET_MS = 1_000;
const PREFERRED = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA"];
const TICK_KEYS = ["type", "sym", "seq", "ts", "bid", "ask", "last", "bid_size", "ask_size", "last_size", "volume"];
const CLOCK_SLACK_NS = 60n * 10n ** 9n;

class Failure extends Error {}

function check(ok, what) {
  if (!ok) throw new Failure(what);
}

/** JSON for messages that may hold BigInts. */
const show = (v) => JSON.stringify(v, (k, x) => (typeof x === "bigint" ? String(x) : x));

const isUint = (v) => (typeof v === "bigint" ? v >= 0n : Number.isSafeInteger(v) && v >= 0);

function checkTick(t) {
  const keys = Object.keys(t);
  const extra = keys.filter((k) => !TICK_KEYS.includes(k) && k !== "orig_ts");
  check(TICK_KEYS.every((k) => keys.includes(k)) && !extra.length, `tick keys ${keys}`);
  check(typeof t.sym === "string" && t.sym.length > 0, `sym ${t.sym}`);
  for (const k of ["seq", "ts", "volume", "bid_size", "ask_size", "last_size", ...("orig_ts" in t ? ["orig_ts"] : [])]) {
    check(isUint(t[k]), `${k} ${t[k]} is not an unsigned integer`);
  }
  for (const k of ["bid", "ask", "last"]) check(typeof t[k] === "number" && t[k] >= 0, `${k} ${t[k]} is not a price`);
  check(BigInt(t.seq) >= 1n, `seq ${t.seq} < 1`);
  check(t.bid <= t.ask, `crossed book ${t.bid} > ${t.ask}`);
  const skew = BigInt(t.ts) - BigInt(Date.now()) * 1_000_000n;
  check(skew < CLOCK_SLACK_NS && skew > -CLOCK_SLACK_NS, `ts ${t.ts} is not now in ns`);
}

/** One connection: frames queue up as they arrive; ticks are checked as they are taken. */
class Session {
  constructor(ws) {
    this.ws = ws;
    this.frames = [];
    this.waiter = null;
    this.closed = null;
    this.closeCode = null;
    this.lastSeq = new Map();
    this.banned = null; // a symbol that must not tick now
    this.ticks = 0;
    ws.on("message", (data, isBinary) => this.push({ data, isBinary }));
    ws.on("close", (code, reason) => {
      this.closed = `closed ${code} ${reason}`;
      this.closeCode = code;
      this.push(null);
    });
    ws.on("error", (e) => {
      this.closed = `error ${e.message}`;
      this.push(null);
    });
  }

  push(frame) {
    if (frame) this.frames.push(frame);
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** Sends a control message as a binary MessagePack frame, or a string as text. */
  send(msg) {
    if (typeof msg === "string") this.ws.send(msg);
    else this.ws.send(encode(msg));
  }

  /** The next decoded message, or null after `timeoutMs`. */
  async next(timeoutMs = STEP_MS) {
    if (!this.frames.length) {
      check(!this.closed, `connection ${this.closed}`);
      let timer;
      await new Promise((resolve) => {
        this.waiter = resolve;
        timer = setTimeout(resolve, Math.max(0, timeoutMs));
      });
      clearTimeout(timer);
      if (!this.frames.length) {
        check(!this.closed, `connection ${this.closed}`);
        return null;
      }
    }
    const { data, isBinary } = this.frames.shift();
    check(isBinary, `broker sent a text frame: ${String(data).slice(0, 80)}`);
    const msg = decode(data, { useBigInt64: true });
    check(msg && typeof msg === "object" && typeof msg.type === "string", `not a typed map: ${show(msg)}`);
    if (msg.type === "tick") {
      checkTick(msg);
      check(msg.sym !== this.banned, `tick of ${msg.sym} after its unsubscribe was acknowledged`);
      const seq = BigInt(msg.seq);
      const prev = this.lastSeq.get(msg.sym);
      check(prev === undefined || seq > prev, `${msg.sym} seq ${seq} after ${prev}`);
      this.lastSeq.set(msg.sym, seq);
      this.ticks++;
    }
    return msg;
  }

  /** Skips (checked) ticks until a control message comes. */
  async control(what) {
    const deadline = Date.now() + STEP_MS;
    while (Date.now() < deadline) {
      const msg = await this.next(deadline - Date.now());
      if (msg && msg.type !== "tick") return msg;
    }
    throw new Failure(`no reply to ${what} within ${STEP_MS} ms`);
  }

  async expectAck(what, topics) {
    const msg = await this.control(what);
    // The epoch names the broker's seq stream (for a resume); "epochs" only
    // appears for symbols whose feed restarted.
    const { epoch, epochs, ...rest } = msg;
    check(typeof epoch === "string" && epoch.length > 0, `${what}: no epoch in ${show(msg)}`);
    check(epochs === undefined || typeof epochs === "object", `${what}: epochs ${show(epochs)}`);
    const want = show({ type: "subscribed", topics: [...topics].sort() });
    check(show(rest) === want, `${what}: got ${show(msg)}, want ${want} with an epoch`);
  }

  async expectError(what, request, code) {
    this.send(request);
    const msg = await this.control(what);
    check(msg.type === "error" && msg.code === code, `${what}: want error ${code}, got ${show(msg)}`);
    check(typeof msg.message === "string" && msg.message.length > 0, `${what}: empty error message`);
  }

  /** Reads (checked) ticks until the broker closes the connection with `code`. */
  async expectClose(what, code) {
    const deadline = Date.now() + STEP_MS;
    while (this.closeCode === null && Date.now() < deadline) {
      try {
        const msg = await this.next(deadline - Date.now());
        check(!msg || msg.type === "tick", `${what}: got ${show(msg)} instead of a close`);
      } catch (e) {
        if (this.closeCode === null) throw e;
      }
    }
    check(this.closeCode === code, `${what}: want close ${code}, got ${this.closed ?? "no close"}`);
  }

  /** The frames right after an ack: one tick of each new symbol. */
  async snapshot(syms) {
    const got = [];
    for (let i = 0; i < syms.length; i++) {
      const msg = await this.next();
      check(msg && msg.type === "tick", `snapshot: got ${show(msg)}`);
      got.push(msg.sym);
    }
    check(got.sort().join() === [...syms].sort().join(), `snapshot symbols ${got}, want ${syms}`);
  }
}

async function pickSymbols(base, n) {
  const res = await fetch(`${base}/symbols`, { signal: AbortSignal.timeout(STEP_MS) });
  const known = (await res.json()).map((t) => t.sym);
  check(known.length >= n, `/symbols lists ${known.length} symbols`);
  const preferred = PREFERRED.filter((s) => known.includes(s));
  return [...preferred, ...known.filter((s) => !preferred.includes(s)).sort()].slice(0, n);
}

function open(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { handshakeTimeout: STEP_MS, maxPayload: 1 << 20 });
    const session = new Session(ws);
    ws.once("open", () => resolve(session));
    ws.once("error", reject);
  });
}

async function scenario(base) {
  // A different triple from the Python clients' where the feed has enough symbols.
  const syms = (await pickSymbols(base, 6)).slice(3);
  const s = await open(`${base.replace(/^http:/, "ws:")}/ws`);
  try {
    s.send({ op: "subscribe", topics: syms });
    await s.expectAck("subscribe", syms);
    await s.snapshot(syms);

    const counts = new Map(syms.map((x) => [x, 0]));
    const deadline = Date.now() + STEP_MS;
    while (Math.min(...counts.values()) < 2 && Date.now() < deadline) {
      const msg = await s.next(deadline - Date.now());
      if (!msg) continue;
      check(msg.type === "tick" && counts.has(msg.sym), `unexpected ${msg.type} ${msg.sym}`);
      counts.set(msg.sym, counts.get(msg.sym) + 1);
    }
    check(Math.min(...counts.values()) >= 2, `too few live ticks: ${[...counts]}`);

    const [gone, ...rest] = syms;
    s.send({ op: "unsubscribe", topics: [gone] });
    await s.expectAck("unsubscribe", rest);
    s.banned = gone;
    s.lastSeq.delete(gone);
    const before = s.ticks;
    const quietEnd = Date.now() + QUIET_MS;
    while (Date.now() < quietEnd) {
      const msg = await s.next(quietEnd - Date.now());
      check(!msg || msg.type === "tick", `unexpected ${msg?.type}`);
    }
    check(s.ticks > before, "the other symbols stopped after the unsubscribe");

    await s.expectError("unknown op", { op: "nope" }, "unknown_op");
    await s.expectError("non-JSON text", "this is not JSON {", "bad_request");
    await s.expectError("invalid MessagePack", Uint8Array.of(0xc1), "bad_request");
    await s.expectError("invalid topic", { op: "subscribe", topics: ["not a symbol!"] }, "invalid_topic");

    s.send({ op: "subscribe", topics: [gone] });
    await s.expectAck("resubscribe", syms);
    s.banned = null;
    await s.snapshot([gone]);

    // Last, as it ends the connection: a control message over the broker's
    // limit (4 KiB by default) is answered by closing with 1009 (too big).
    s.send(JSON.stringify({ op: "subscribe", topics: Array(1000).fill("AAPL") }));
    await s.expectClose("oversized control message", 1009);
    return `${s.ticks} ticks checked`;
  } finally {
    s.ws.close(1000);
  }
}

async function main() {
  const base = process.argv[2]?.replace(/\/$/, "");
  if (!base) throw new Failure("usage: node ws_client.mjs http://127.0.0.1:PORT");
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Failure(`did not finish within ${TOTAL_MS} ms`)), TOTAL_MS);
  });
  const detail = await Promise.race([scenario(base), limit]);
  clearTimeout(timer);
  console.log(`PASS ${NAME} (${detail})`);
}

main().catch((e) => {
  console.log(`FAIL ${NAME}: ${e.message}`);
  process.exit(1);
});
