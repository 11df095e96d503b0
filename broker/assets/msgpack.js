// msgpack.js: a small MessagePack decoder for the tickcast dashboard.
//
// Why our own: the broker sends every message as one binary MessagePack map,
// and the page must read them without a build step or third-party code
// committed to the repository. The protocol uses only a small subset
// (maps, arrays, strings, binaries, integers, floats, nil, booleans), which
// fits in this one plain ES module. Extension types are refused, not guessed.
//
// Integers: a value that fits in a double exactly (|n| <= 2^53 - 1) is a
// Number; a larger uint64/int64 (a tick's nanosecond `ts` is ~1.7e18) is a
// BigInt, so nothing is silently rounded. Use `toNumber()` where a rounded
// Number is good enough (milliseconds of latency).
//
// Hostile or corrupt input never makes this allocate what the buffer cannot
// hold or recurse without bound: every length is checked against the bytes
// left, and nesting is capped.

/** Thrown for bytes that are not a valid (supported) MessagePack value. */
export class DecodeError extends Error {
  constructor(message) {
    super(message);
    this.name = "DecodeError";
  }
}

/** How deep maps and arrays may nest before the input is refused. */
export const MAX_DEPTH = 64;

const utf8 = new TextDecoder("utf-8", { fatal: true });
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);

/**
 * Decodes exactly one MessagePack value filling the whole of `input`
 * (a Uint8Array, ArrayBuffer or DataView).
 */
export function decode(input) {
  const reader = new Reader(toBytes(input));
  const value = reader.value(0);
  if (reader.pos !== reader.bytes.length) {
    throw new DecodeError(`${reader.bytes.length - reader.pos} trailing bytes`);
  }
  return value;
}

/** A Number for a Number or BigInt (rounding a BigInt beyond 2^53). */
export function toNumber(value) {
  return typeof value === "bigint" ? Number(value) : value;
}

function toBytes(input) {
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  // A subclass (Node's Buffer) is viewed as a plain Uint8Array, whose slice()
  // copies: Buffer's slice() would return a view pinning the whole frame.
  if (ArrayBuffer.isView(input)) {
    return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  }
  throw new DecodeError("input must be a Uint8Array, ArrayBuffer or DataView");
}

function utf8Text(bytes, start, end) {
  try {
    return utf8.decode(bytes.subarray(start, end));
  } catch {
    throw new DecodeError(`invalid UTF-8 in string at offset ${start}`);
  }
}

function bigToValue(big) {
  return big >= MIN_SAFE && big <= MAX_SAFE ? Number(big) : big;
}

class Reader {
  constructor(bytes) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 0;
  }

  /** Reserves `n` bytes and returns where they start. */
  take(n) {
    const start = this.pos;
    if (n > this.bytes.length - start) {
      throw new DecodeError(`truncated: need ${n} bytes at offset ${start}`);
    }
    this.pos = start + n;
    return start;
  }

  u8() {
    return this.bytes[this.take(1)];
  }

  u16() {
    return this.view.getUint16(this.take(2));
  }

  u32() {
    return this.view.getUint32(this.take(4));
  }

  value(depth) {
    if (depth > MAX_DEPTH) {
      throw new DecodeError(`nested deeper than ${MAX_DEPTH}`);
    }
    const m = this.u8();
    if (m <= 0x7f) return m;
    if (m >= 0xe0) return m - 0x100;
    if (m <= 0x8f) return this.map(m & 0x0f, depth);
    if (m <= 0x9f) return this.array(m & 0x0f, depth);
    if (m <= 0xbf) return this.str(m & 0x1f);
    const v = this.view;
    switch (m) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return this.bin(this.u8());
      case 0xc5: return this.bin(this.u16());
      case 0xc6: return this.bin(this.u32());
      case 0xca: return v.getFloat32(this.take(4));
      case 0xcb: return v.getFloat64(this.take(8));
      case 0xcc: return this.u8();
      case 0xcd: return this.u16();
      case 0xce: return this.u32();
      case 0xcf: return bigToValue(v.getBigUint64(this.take(8)));
      case 0xd0: return v.getInt8(this.take(1));
      case 0xd1: return v.getInt16(this.take(2));
      case 0xd2: return v.getInt32(this.take(4));
      case 0xd3: return bigToValue(v.getBigInt64(this.take(8)));
      case 0xd9: return this.str(this.u8());
      case 0xda: return this.str(this.u16());
      case 0xdb: return this.str(this.u32());
      case 0xdc: return this.array(this.u16(), depth);
      case 0xdd: return this.array(this.u32(), depth);
      case 0xde: return this.map(this.u16(), depth);
      case 0xdf: return this.map(this.u32(), depth);
      case 0xc1:
        throw new DecodeError("0xc1 is never used in MessagePack");
      default:
        // 0xc7-0xc9 and 0xd4-0xd8: extension types, which the protocol never sends.
        throw new DecodeError(`unsupported extension type marker 0x${m.toString(16)}`);
    }
  }

  str(len) {
    const start = this.take(len);
    const end = start + len;
    const b = this.bytes;
    // Keys and symbols are short ASCII: building them char by char is several
    // times cheaper than a TextDecoder call, which matters on a `*` feed
    // where every tick carries a dozen of them.
    if (len <= 24) {
      let s = "";
      for (let i = start; i < end; i++) {
        const c = b[i];
        if (c >= 0x80) return utf8Text(b, start, end);
        s += String.fromCharCode(c);
      }
      return s;
    }
    return utf8Text(b, start, end);
  }

  bin(len) {
    const start = this.take(len);
    // A copy, so a caller keeping it does not pin the whole frame.
    return this.bytes.slice(start, start + len);
  }

  array(len, depth) {
    // Every element takes at least one byte: refuse a count the input cannot
    // hold before allocating for it.
    if (len > this.bytes.length - this.pos) {
      throw new DecodeError(`truncated: array of ${len} at offset ${this.pos}`);
    }
    const out = new Array(len);
    for (let i = 0; i < len; i++) out[i] = this.value(depth + 1);
    return out;
  }

  map(len, depth) {
    if (len * 2 > this.bytes.length - this.pos) {
      throw new DecodeError(`truncated: map of ${len} at offset ${this.pos}`);
    }
    const out = {};
    for (let i = 0; i < len; i++) {
      const rawKey = this.value(depth + 1);
      if (typeof rawKey === "object" && rawKey !== null) {
        throw new DecodeError("map keys must be strings, numbers, booleans or nil");
      }
      const key = String(rawKey);
      const val = this.value(depth + 1);
      if (key === "__proto__") {
        // A plain assignment would replace the object's prototype.
        Object.defineProperty(out, key, { value: val, enumerable: true, writable: true, configurable: true });
      } else {
        out[key] = val;
      }
    }
    return out;
  }
}
