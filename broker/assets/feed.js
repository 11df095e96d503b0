// feed.js: the dashboard's connection to the broker, run in a Web Worker.
//
// Why a worker: a browser spends tens of microseconds of native work on every
// WebSocket message before any script runs, and the broker sends one message
// per tick. On the page's main thread a `*` feed of some thousands of ticks
// a second would leave no time to paint. Here the messages are received,
// decoded and measured off the main thread, and the page gets, at most every
// FLUSH_MS, only the latest tick of each symbol that changed, plus a summary
// once a second. The page stays smooth however busy the feed; when even the
// worker cannot keep up, the broker conflates and the skipped count shows it.
//
// Continuity: every subscribe asks for at most MAX_RATE ticks a second per
// symbol (a screen paints about that often, and the broker then sends each
// symbol's latest within 1/MAX_RATE instead of a backlog: fresh prices at a
// fraction of the bandwidth). After a reconnect the worker resubscribes with
// the broker's epoch and the last seq of each symbol it shows, so the broker
// replays what was missed ("recovered") or says why not ("reset"). The
// broker's gap notices say exactly what it skipped and why; they are counted
// as skipped here, and only a jump no notice explains counts as lost.
//
// Page → worker: {type: "start", url, token}, {type: "want", topics} (the
// full list the page wants; the worker subscribes and unsubscribes the
// difference), {type: "token", token} (a fresh token: sent as an `auth`
// request on an open connection, used by the next one, and the end of a
// wait for one).
// Worker → page: {type: "conn", state, text}, {type: "ack", topics},
// {type: "notice", text}, {type: "ticks", ticks}, {type: "second", ...},
// {type: "denied", topics, text} (a subscribe refused as not_entitled: those
// topics are no longer wanted), {type: "expired", text} (the broker ended the
// session because the token expired: no reconnection until a new token).
//
// The token goes in `?token=` (a browser cannot set headers on a WebSocket);
// the broker does not log it. Requests are answered in order (an ack, an
// `authenticated` or an error each), so the worker keeps the requests it
// sent in a queue and knows which one an error refuses.

import { decode, toNumber } from "./msgpack.js";

const FLUSH_MS = 16;
const LAT_WINDOW_S = 10;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10_000;
// Ticks a second per symbol the page asks for (0: uncapped).
const MAX_RATE = 10;
// Positions sent with a resume, at most (a request must fit the broker's
// 4 KiB control-message limit: ~25 bytes a symbol).
const MAX_POSITIONS = 100;
// The close code of a session whose token expired (docs/PROTOCOL.md).
const TOKEN_EXPIRED_CLOSE = 4001;

// Wall-clock milliseconds with sub-millisecond resolution (Date.now() has
// whole milliseconds only, too coarse for a ~1 ms p50). The origin is read
// once: it is a getter, and this runs for every tick.
const TIME_ORIGIN = performance.timeOrigin;
const wallMs = () => TIME_ORIGIN + performance.now();

// --------------------------------------------------------- latency window

// Latency is binned in a log-linear histogram (2 % wide bins from 1 µs), one
// per second: recording is O(1) with no allocation whatever the tick rate,
// and the 10 s percentiles merge ten small arrays instead of sorting samples.
const BIN_GROWTH = Math.log(1.02);
const BIN_COUNT = Math.ceil(Math.log(1e8) / BIN_GROWTH) + 1; // 1 µs .. 100 s
const binOf = (us) => (us <= 1 ? 0 : Math.min(BIN_COUNT - 1, Math.ceil(Math.log(us) / BIN_GROWTH)));
const binUpperUs = (bin) => Math.exp(bin * BIN_GROWTH);

class SecondBucket {
  constructor() {
    this.bins = new Uint32Array(BIN_COUNT);
    this.count = 0;
    this.maxMs = -Infinity;
  }
  record(ms) {
    this.bins[binOf(ms * 1000)]++;
    this.count++;
    if (ms > this.maxMs) this.maxMs = ms;
  }
}

/** Percentiles (ms) of the merged buckets, or null when they are empty. */
function summarize(buckets) {
  let count = 0;
  let maxMs = -Infinity;
  const merged = new Uint32Array(BIN_COUNT);
  for (const b of buckets) {
    if (!b.count) continue;
    count += b.count;
    maxMs = Math.max(maxMs, b.maxMs);
    for (let i = 0; i < BIN_COUNT; i++) merged[i] += b.bins[i];
  }
  if (!count) return null;
  const at = (q) => {
    const rank = Math.ceil(q * count);
    let seen = 0;
    for (let i = 0; i < BIN_COUNT; i++) {
      seen += merged[i];
      // A bin's upper bound, capped by the exact max: never above what was seen.
      if (seen >= rank) return Math.min(binUpperUs(i) / 1000, maxMs);
    }
    return maxMs;
  };
  return { count, p50: at(0.5), p99: at(0.99), max: maxMs };
}

// ------------------------------------------------------------------ state

const feed = {
  url: "",
  token: "", // with tokens required; "" otherwise
  waitingForToken: false, // the token expired: connect again only with a new one
  sent: [], // requests not yet answered, oldest first: {op, topics}
  ws: null,
  attempt: 0,
  retryAt: 0,
  why: "", // the reason the last connection ended
  wanted: new Set(), // what the page wants
  topics: new Set(), // the broker's last acknowledged list
  snapshotPending: new Set(), // symbols whose next tick is a snapshot
  wildcardSeen: null, // while a new `*` snapshot burst lasts: symbols seen
  seq: new Map(), // sym → last seq received (kept across reconnects)
  epoch: "", // the broker's epoch, from its last ack
  epochs: new Map(), // sym → its own epoch (its feed restarted)
  noticed: { conflated: 0, dropped: 0, rate_capped: 0, upstream: 0 }, // seqs the broker said it skipped
  recovered: 0, // ticks replayed after reconnects
  resets: 0, // resumes the broker could not honour
  counts: new Map(), // sym → ticks in the current second
  changed: new Map(), // sym → latest tick not yet posted to the page
  flushTimer: 0,
  ticks: 0, // ticks in the current second
  skipped: 0, // seq jumps no gap notice explained, since start
  bucket: new SecondBucket(),
  recent: [], // the last LAT_WINDOW_S whole seconds
  lastSecond: performance.now(),
};

const post = (msg) => self.postMessage(msg);

// ------------------------------------------------------------- connection

function setConn(state, text) {
  post({ type: "conn", state, text });
}

function connect() {
  setConn("connecting", feed.attempt ? `connecting (attempt ${feed.attempt + 1})…` : "connecting…");
  const url = feed.token ? `${feed.url}?token=${encodeURIComponent(feed.token)}` : feed.url;
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  feed.ws = ws;
  ws.onopen = () => {
    feed.attempt = 0;
    feed.retryAt = 0;
    feed.topics = new Set();
    feed.snapshotPending = new Set();
    feed.wildcardSeen = null;
    feed.sent = [];
    setConn("live", `live · ${new URL(feed.url).host}`);
    resubscribe();
  };
  ws.onmessage = onMessage;
  ws.onclose = (ev) => {
    if (feed.ws !== ws) return;
    feed.ws = null;
    const why = ev.reason ? `${ev.reason} (${ev.code})` : `code ${ev.code}`;
    if (ev.code === TOKEN_EXPIRED_CLOSE) {
      feed.waitingForToken = true;
      setConn("signed-out", `token expired (${ev.code})`);
      post({ type: "expired", text: ev.reason || "token expired" });
      return;
    }
    scheduleReconnect(`disconnected: ${why}`);
  };
  // An error is always followed by a close event, which reconnects.
  ws.onerror = () => {};
}

function scheduleReconnect(why) {
  // Full jitter on an exponential step: many pages dropped at once by a
  // broker restart do not all come back in the same instant.
  const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** feed.attempt);
  const delay = cap / 2 + Math.random() * (cap / 2);
  feed.attempt++;
  feed.retryAt = Date.now() + delay;
  feed.why = why;
  setTimeout(connect, delay);
  showRetry();
}

function showRetry() {
  const left = Math.max(0, Math.ceil((feed.retryAt - Date.now()) / 1000));
  setConn("reconnecting", `${feed.why} · retry in ${left}s`);
}

function send(op, topics, resume = null) {
  // While disconnected there is nothing to do: the next open subscribes to
  // the whole wanted list.
  if (!topics.length || !feed.ws || feed.ws.readyState !== WebSocket.OPEN) return;
  if (op !== "subscribe") {
    request({ op, topics });
    return;
  }
  // The watchlist (named symbols) is capped; `*` (the firehose, which ranks
  // symbols by their rate) is not. Each request carries the positions of
  // the symbols it covers.
  const named = topics.filter((t) => t !== "*");
  const positions = (keep) => {
    if (!resume) return {};
    const since = Object.fromEntries(Object.entries(resume.since).filter(([s]) => keep(s)));
    const epochs = Object.fromEntries(Object.entries(resume.epochs).filter(([s]) => keep(s)));
    return { epoch: resume.epoch, epochs, since };
  };
  if (topics.includes("*")) {
    const wanted = new Set(named);
    request({ op, topics: ["*"], ...positions((s) => !wanted.has(s)) });
  }
  if (named.length) {
    const capped = MAX_RATE > 0 ? { max_rate: MAX_RATE } : {};
    const wanted = new Set(named);
    request({ op, topics: named, ...capped, ...positions((s) => wanted.has(s)) });
  }
}

/** The whole wanted list again, resuming from the last seq of each symbol. */
function resubscribe() {
  const topics = [...feed.wanted];
  if (!feed.epoch) {
    // Never connected before: nothing to resume, every seq starts afresh.
    feed.seq.clear();
    send("subscribe", topics);
    return;
  }
  const covered = (s) => feed.wanted.has("*") || feed.wanted.has(s);
  const since = {};
  const epochs = {};
  let n = 0;
  for (const [sym, seq] of feed.seq) {
    if (n >= MAX_POSITIONS || !covered(sym)) continue;
    since[sym] = seq;
    if (feed.epochs.has(sym)) epochs[sym] = feed.epochs.get(sym);
    n++;
  }
  // Symbols without a position start afresh (their snapshot).
  for (const sym of [...feed.seq.keys()]) if (!(sym in since)) feed.seq.delete(sym);
  send("subscribe", topics, { epoch: feed.epoch, epochs, since });
}

/** Sends one request and remembers it: its answer (ack or error) comes in order. */
function request(body) {
  feed.ws.send(JSON.stringify(body));
  feed.sent.push({ op: body.op, topics: body.topics });
}

function useToken(token) {
  feed.token = token;
  if (feed.ws && feed.ws.readyState === WebSocket.OPEN) {
    feed.ws.send(JSON.stringify({ op: "auth", token }));
    feed.sent.push({ op: "auth", topics: [] });
  } else if (feed.waitingForToken) {
    feed.waitingForToken = false;
    connect();
  }
}

function want(topics) {
  const next = new Set(topics);
  send("unsubscribe", [...feed.wanted].filter((t) => !next.has(t)));
  send("subscribe", topics.filter((t) => !feed.wanted.has(t)));
  feed.wanted = next;
}

// --------------------------------------------------------------- messages

function onMessage(ev) {
  const now = wallMs(); // before decoding: the receive time is what we measure
  if (typeof ev.data === "string") return; // the broker only sends binary frames
  let msg;
  try {
    msg = decode(ev.data);
  } catch (e) {
    post({ type: "notice", text: `undecodable frame: ${e.message}` });
    return;
  }
  if (msg === null || typeof msg !== "object") return;
  if (msg.type === "tick") onTick(msg, now);
  else if (msg.type === "subscribed" && Array.isArray(msg.topics)) {
    feed.sent.shift();
    onSubscribed(msg);
  } else if (msg.type === "authenticated") {
    feed.sent.shift();
    post({ type: "notice", text: "token renewed" });
  } else if (msg.type === "gap") onGap(msg);
  else if (msg.type === "recovered") onRecovered(msg);
  else if (msg.type === "reset") onReset(msg);
  else if (msg.type === "error") onError(msg);
}

function onError(msg) {
  // token_expired answers no request: the close (4001) follows it.
  if (msg.code === "token_expired") return;
  const request = feed.sent.shift();
  if (msg.code === "not_entitled") {
    const topics = request?.op === "subscribe" ? request.topics : [];
    for (const t of topics) feed.wanted.delete(t);
    post({ type: "denied", topics, text: msg.message });
  } else {
    post({ type: "notice", text: `broker: ${msg.code}: ${msg.message}` });
  }
}

/** The broker skipped seqs from..to of a symbol: counted, and not lost. */
function onGap(msg) {
  const to = toNumber(msg.to);
  const n = to - toNumber(msg.from) + 1;
  if (msg.reason in feed.noticed && n > 0) feed.noticed[msg.reason] += n;
  if (typeof msg.sym === "string" && to > (feed.seq.get(msg.sym) ?? 0)) feed.seq.set(msg.sym, to);
}

/** A resume was honoured: the next ticks of the symbol are the missed ones. */
function onRecovered(msg) {
  feed.recovered += toNumber(msg.ticks);
  // Not a snapshot: the replayed ticks follow straight on from our seq.
  feed.snapshotPending.delete(msg.sym);
}

/** A resume was not honoured, or the symbol's feed restarted. */
function onReset(msg) {
  if (typeof msg.sym !== "string") return;
  feed.resets++;
  feed.seq.delete(msg.sym); // what follows is the new baseline
  if (msg.reason === "feed_restart" && typeof msg.epoch === "string") feed.epochs.set(msg.sym, msg.epoch);
  else post({ type: "notice", text: `${msg.sym}: could not resume (${msg.reason}); showing its latest` });
}

function onSubscribed(msg) {
  const topics = msg.topics;
  if (typeof msg.epoch === "string") {
    if (feed.epoch && msg.epoch !== feed.epoch) feed.epochs.clear(); // another broker run
    feed.epoch = msg.epoch;
  }
  if (msg.epochs && typeof msg.epochs === "object") {
    for (const [sym, e] of Object.entries(msg.epochs)) feed.epochs.set(sym, e);
  }
  // Right after this ack the broker sends, in one burst, the latest tick of
  // each newly subscribed symbol (none for a symbol `*` already covered;
  // every symbol not held by name for a new `*`). Those are old by design,
  // so they are kept out of latency.
  const hadWildcard = feed.topics.has("*");
  for (const t of topics) {
    if (feed.topics.has(t)) continue;
    if (t === "*") feed.wildcardSeen = new Set(topics.filter((x) => x !== "*" && feed.topics.has(x)));
    else if (!hadWildcard) feed.snapshotPending.add(t);
  }
  if (!topics.includes("*")) feed.wildcardSeen = null;
  feed.topics = new Set(topics);
  post({ type: "ack", topics });
}

function isSnapshot(sym) {
  if (feed.snapshotPending.delete(sym)) return true;
  const seen = feed.wildcardSeen;
  if (!seen) return false;
  if (seen.has(sym)) {
    // A symbol again, or one held by name: the `*` snapshot burst is over.
    feed.wildcardSeen = null;
    return false;
  }
  seen.add(sym);
  return true;
}

function onTick(t, now) {
  const sym = t.sym;
  if (typeof sym !== "string" || typeof t.last !== "number") return;
  const snapshot = isSnapshot(sym);
  const seq = toNumber(t.seq);
  const prev = feed.seq.get(sym);
  if (prev !== undefined) {
    if (seq <= prev) return; // never show an older state over a newer one
    feed.skipped += seq - prev - 1;
  }
  feed.seq.set(sym, seq);
  const latencyMs = now - toNumber(t.ts) / 1e6;
  if (!snapshot && Number.isFinite(latencyMs)) feed.bucket.record(latencyMs);
  feed.counts.set(sym, (feed.counts.get(sym) ?? 0) + 1);
  feed.ticks++;
  // Only what the page shows crosses to it, as plain Numbers.
  feed.changed.set(sym, {
    sym,
    seq,
    bid: t.bid,
    ask: t.ask,
    last: t.last,
    volume: toNumber(t.volume),
  });
  if (!feed.flushTimer) feed.flushTimer = setTimeout(flush, FLUSH_MS);
}

function flush() {
  feed.flushTimer = 0;
  post({ type: "ticks", ticks: [...feed.changed.values()] });
  feed.changed.clear();
}

function everySecond() {
  const now = performance.now();
  const secs = Math.max(0.001, (now - feed.lastSecond) / 1000);
  feed.lastSecond = now;
  const done = feed.bucket;
  feed.bucket = new SecondBucket();
  feed.recent.push(done);
  if (feed.recent.length > LAT_WINDOW_S) feed.recent.shift();
  post({
    type: "second",
    rate: feed.ticks / secs,
    skipped: feed.skipped,
    noticed: feed.noticed,
    recovered: feed.recovered,
    resets: feed.resets,
    window: summarize(feed.recent),
    point: summarize([done]),
    rates: [...feed.counts].map(([sym, n]) => [sym, n / secs]),
  });
  feed.ticks = 0;
  feed.counts.clear();
  if (!feed.ws && feed.retryAt) showRetry();
}

self.onmessage = (ev) => {
  const msg = ev.data;
  if (msg.type === "start" && !feed.url) {
    feed.url = msg.url;
    feed.token = msg.token ?? "";
    setInterval(everySecond, 1000);
    connect();
  } else if (msg.type === "want") {
    want(msg.topics);
  } else if (msg.type === "token") {
    useToken(msg.token);
  }
};
