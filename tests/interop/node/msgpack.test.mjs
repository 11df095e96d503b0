// Tests of the dashboard's own MessagePack decoder (broker/assets/msgpack.js)
// against what two independent encoders produce: Node's @msgpack/msgpack and
// Python's msgpack (run at test time; no binary fixtures are committed).
// Run: `node --test msgpack.test.mjs` (PYTHON may name the interpreter that
// has `msgpack`; scripts/interop.sh points it at the repository's .venv).

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { encode as libEncode } from "@msgpack/msgpack";

import { decode, toNumber, DecodeError, MAX_DEPTH } from "../../../broker/assets/msgpack.js";

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const SAFE = Number.MAX_SAFE_INTEGER;

/** What our decoder promises: BigInt only beyond 2^53, a Number otherwise. */
function normalize(v) {
  if (typeof v === "bigint") {
    return v >= BigInt(-SAFE) && v <= BigInt(SAFE) ? Number(v) : v;
  }
  if (Array.isArray(v)) return v.map(normalize);
  if (v instanceof Uint8Array) return v;
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalize(x)]));
  }
  return v;
}

const range = (n) => Array.from({ length: n }, (_, i) => i);

function nodeCases() {
  const ints = [0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, SAFE];
  const negs = [-1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, -SAFE];
  const bigs = [0n, 5n, BigInt(SAFE), BigInt(SAFE) + 1n, 2n ** 63n, 2n ** 64n - 1n, -1n, -(2n ** 63n)];
  const tick = {
    type: "tick", sym: "NVDA", seq: 42, ts: 1_763_900_000_123_456_789n,
    bid: 131.25, ask: 131.27, last: 131.26, bid_size: 400, ask_size: 200,
    last_size: 10, volume: 9_876_543,
  };
  return [
    ...[...ints, ...negs].map((v) => [`int ${v}`, v, {}]),
    ...bigs.map((v) => [`bigint ${v}`, v, { useBigInt64: true }]),
    ...[0.5, 1.1, -2.25, 1e300, 5e-324, Infinity, -Infinity, NaN].map((v) => [`float64 ${v}`, v, {}]),
    ...[0.5, -2.25, 1.5].map((v) => [`float32 ${v}`, v, { forceFloat32: true }]),
    ...[0, 31, 32, 255, 256, 65535, 65536].map((n) => [`str of ${n}`, "y".repeat(n), {}]),
    ["utf-8 str", "Zürich €5 ✓ 📈", {}],
    ["long utf-8 str", "Δ".repeat(40), {}],
    ...[0, 255, 256, 65536].map((n) => [`bin of ${n}`, Uint8Array.from(range(n), (i) => i % 251), {}]),
    ...[0, 15, 16, 65536].map((n) => [`array of ${n}`, range(n), {}]),
    ...[0, 15, 16, 65536].map((n) => [`map of ${n}`, Object.fromEntries(range(n).map((i) => [`k${i}`, i])), {}]),
    ["nil", null, {}],
    ["booleans", [true, false], {}],
    ["nested", { a: [1, { b: [null, true, "c"] }], d: {} }, {}],
    ["tick", tick, { useBigInt64: true }],
    ["subscribed", { type: "subscribed", topics: ["*", "AAPL"] }, {}],
    ["error", { type: "error", code: "bad_request", message: "invalid JSON request" }, {}],
  ];
}

test("decodes what @msgpack/msgpack encodes", () => {
  for (const [name, value, opts] of nodeCases()) {
    assert.deepStrictEqual(decode(libEncode(value, opts)), normalize(value), name);
  }
});

/** Undoes msgpack_fixtures.py's tagging of values JSON cannot carry. */
function untag(v) {
  if (Array.isArray(v)) return v.map(untag);
  if (v !== null && typeof v === "object") {
    if ("$big" in v) return BigInt(v.$big);
    if ("$bin" in v) return Uint8Array.from(Buffer.from(v.$bin, "hex"));
    if ("$float" in v) return { nan: NaN, inf: Infinity, "-inf": -Infinity }[v.$float];
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, untag(x)]));
  }
  return v;
}

test("decodes what Python msgpack encodes", () => {
  const python = process.env.PYTHON || "python3";
  const run = spawnSync(python, [here("../python/msgpack_fixtures.py")], {
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
    timeout: 60_000,
  });
  assert.equal(run.status, 0, `${python} msgpack_fixtures.py failed (is msgpack installed? set PYTHON): ${run.stderr}`);
  const lines = run.stdout.trim().split("\n");
  assert.ok(lines.length > 50, "too few fixtures");
  for (const line of lines) {
    const { name, hex, expect } = JSON.parse(line);
    assert.deepStrictEqual(decode(Buffer.from(hex, "hex")), untag(expect), name);
  }
});

test("a tick's nanosecond ts stays exact as a BigInt and converts to milliseconds", () => {
  const ts = 1_763_900_000_123_456_789n;
  const got = decode(libEncode({ ts }, { useBigInt64: true }));
  assert.equal(got.ts, ts);
  assert.equal(Math.round(toNumber(got.ts) / 1e6), 1_763_900_000_123);
  assert.equal(toNumber(7), 7);
});

test("accepts Uint8Array views, ArrayBuffers and DataViews", () => {
  const bytes = libEncode({ a: 1 });
  const padded = new Uint8Array(bytes.length + 3);
  padded.set(bytes, 3);
  const view = padded.subarray(3);
  assert.deepStrictEqual(decode(view), { a: 1 });
  assert.deepStrictEqual(decode(view.slice().buffer), { a: 1 });
  assert.deepStrictEqual(decode(new DataView(padded.buffer, 3)), { a: 1 });
});

test("a __proto__ key is data, not a prototype", () => {
  const got = decode(Buffer.from("81a95f5f70726f746f5f5f81a178c3", "hex"));
  assert.equal(Object.getPrototypeOf(got), Object.prototype);
  assert.deepStrictEqual(Object.keys(got), ["__proto__"]);
  assert.equal(got.x, undefined);
});

function assertRefused(bytes, what) {
  assert.throws(() => decode(bytes), DecodeError, what);
}

test("every truncation of a tick is a DecodeError", () => {
  const whole = libEncode(nodeCases().find(([n]) => n === "tick")[1], { useBigInt64: true });
  for (let cut = 0; cut < whole.length; cut++) assertRefused(whole.subarray(0, cut), `cut at ${cut}`);
});

test("malformed input is a DecodeError, never another exception", () => {
  assertRefused(Uint8Array.of(0xc1), "never-used marker");
  assertRefused(Uint8Array.of(0xd4, 0x01, 0x00), "fixext");
  assertRefused(Uint8Array.of(0xc7, 0x00, 0x01), "ext8");
  assertRefused(Uint8Array.of(0x01, 0x02), "trailing bytes");
  assertRefused(Uint8Array.of(0xa2, 0xc3, 0x28), "invalid UTF-8");
  assertRefused(Uint8Array.of(0xdd, 0xff, 0xff, 0xff, 0xff), "array count beyond input");
  assertRefused(Uint8Array.of(0xdf, 0x7f, 0xff, 0xff, 0xff), "map count beyond input");
  assertRefused(Uint8Array.of(0xdb, 0xff, 0xff, 0xff, 0xff, 0x41), "string length beyond input");
  assertRefused(Uint8Array.of(0x81, 0x90, 0x01), "array as map key");
  const deep = new Uint8Array(MAX_DEPTH + 2).fill(0x91);
  deep[deep.length - 1] = 0xc0;
  assertRefused(deep, "nesting beyond MAX_DEPTH");
  assert.throws(() => decode("not bytes"), DecodeError);
});

test("random bytes either decode or raise DecodeError", () => {
  // A fixed-seed xorshift generator, so a failure reproduces.
  let s = 0x9e3779b9;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
  const seedFrames = nodeCases().slice(0, 40).map(([, v, o]) => libEncode(v, o));
  for (let i = 0; i < 3000; i++) {
    const base = seedFrames[i % seedFrames.length];
    const bytes = Uint8Array.from(base.length ? base : [0]);
    for (let k = 0; k < 1 + (next() % 4); k++) bytes[next() % bytes.length] = next() & 0xff;
    try {
      decode(bytes);
    } catch (e) {
      assert.ok(e instanceof DecodeError, `iteration ${i}: ${e}`);
    }
  }
});
