"""MessagePack encodings made by Python's `msgpack` library, for the dashboard decoder test.

`tests/interop/node/msgpack.test.mjs` runs this at test time (no binary
fixtures are committed) and checks that `broker/assets/msgpack.js` decodes
each encoding to the expected value. Prints one JSON object a line:
`{"name": ..., "hex": <encoding>, "expect": <tagged value>}`, where values
JSON cannot carry are tagged: `{"$big": "<decimal>"}` for integers beyond
2^53, `{"$bin": "<hex>"}` for bytes, `{"$float": "nan"|"inf"|"-inf"}`.
"""

import json
import math
import sys

import msgpack

SAFE = 2**53 - 1


def tag(value):
    """The JSON-safe, tagged form of a decoded value."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if -SAFE <= value <= SAFE else {"$big": str(value)}
    if isinstance(value, float):
        if math.isnan(value):
            return {"$float": "nan"}
        if math.isinf(value):
            return {"$float": "inf" if value > 0 else "-inf"}
        return value
    if isinstance(value, bytes):
        return {"$bin": value.hex()}
    if isinstance(value, (list, tuple)):
        return [tag(v) for v in value]
    if isinstance(value, dict):
        return {str(k): tag(v) for k, v in value.items()}
    raise TypeError(f"cannot tag {type(value)}")


def tick(seq, ts):
    return {
        "type": "tick",
        "sym": "AAPL",
        "seq": seq,
        "ts": ts,
        "bid": 189.52,
        "ask": 189.53,
        "last": 189.525,
        "bid_size": 300,
        "ask_size": 100,
        "last_size": 25,
        "volume": 12_345_678,
    }


def cases():
    ints = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, SAFE, SAFE + 1, 2**63, 2**64 - 1]
    ints += [-1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, -SAFE, -SAFE - 1, -(2**63)]
    for i in ints:
        yield f"int {i}", i, {}
    for f in [0.0, -0.0, 0.5, 1.1, -2.25, 1e300, 5e-324, math.inf, -math.inf, math.nan]:
        yield f"float64 {f}", f, {}
    for f in [0.5, -2.25, 0.1, 3.0e38, math.inf]:
        yield f"float32 {f}", f, {"use_single_float": True}
    for n in [0, 1, 31, 32, 255, 256, 65535, 65536]:
        yield f"str of {n}", "x" * n, {}
    yield "utf-8 str", "Zürich €5 ✓ 📈", {}
    yield "long utf-8 str", "Δ" * 40, {}
    for n in [0, 1, 255, 256, 65536]:
        yield f"bin of {n}", bytes(i % 251 for i in range(n)), {}
    for n in [0, 15, 16, 65535, 65536]:
        yield f"array of {n}", list(range(n)), {}
    for n in [0, 15, 16, 65536]:
        yield f"map of {n}", {f"k{i}": i for i in range(n)}, {}
    yield "nil", None, {}
    yield "true", True, {}
    yield "false", False, {}
    yield "nested", {"a": [1, {"b": [None, True, "c", b"\x00\xff"]}], "d": {}}, {}
    yield "tick", tick(1, 1_763_900_000_123_456_789), {}
    yield "tick with orig_ts", {**tick(2**40, 2**63 + 5), "orig_ts": 1_700_000_000_000_000_000}, {}
    yield "subscribed", {"type": "subscribed", "topics": ["*", "AAPL", "MSFT"]}, {}
    yield "error", {"type": "error", "code": "unknown_op", "message": "unknown op `nope`"}, {}


def main():
    for name, value, opts in cases():
        encoded = msgpack.packb(value, use_bin_type=True, **opts)
        # What Python itself reads back is the expectation (float32 rounding included).
        expect = msgpack.unpackb(encoded, raw=False, strict_map_key=False)
        sys.stdout.write(json.dumps({"name": name, "hex": encoded.hex(), "expect": tag(expect)}) + "\n")


if __name__ == "__main__":
    main()
