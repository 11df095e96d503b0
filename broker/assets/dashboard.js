// dashboard.js: the tickcast dashboard's behaviour.
//
// One WebSocket to the broker (`/ws`), JSON text frames out, binary
// MessagePack frames in (decoded by our own ./msgpack.js). Ticks only update
// per-symbol state in memory and mark rows dirty; the DOM is repainted once
// per animation frame, so a `*` subscription on a busy feed costs one paint
// per frame however many ticks arrive, and a background tab does no DOM work.
// The connection reconnects with jittered exponential backoff and
// resubscribes. The watchlist and the firehose switch persist in localStorage.

import { decode, toNumber } from "./msgpack.js";

const DEFAULT_WATCHLIST = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA"];
const STORE_WATCHLIST = "tickcast.watchlist";
const STORE_FIREHOSE = "tickcast.firehose";
// The broker's topic rule (protocol crate, validate_topic), checked here so a
// typo is refused at once instead of by an error frame.
const SYMBOL_RE = /^[A-Za-z0-9.\-_/:^]{1,32}$/;
const FIREHOSE_ROWS = 12;
const FLASH_MS = 350;
const SPARK_POINTS = 120;
const SPARK_STEP_MS = 250; // 120 points × 250 ms: the sparkline shows ~30 s
// The sparkline's CSS size (dashboard.css, td.trend canvas). Known here so
// painting a row never reads layout, which would force a reflow per row.
const SPARK_W = 100;
const SPARK_H = 24;
const LAT_WINDOW_S = 10;
const LAT_CHART_S = 60;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10_000;
const SYMBOLS_REFRESH_MS = 30_000;
const STATS_POLL_MS = 1000;
const STAGES = [
  ["feed_to_receive", "feed → receive"],
  ["receive_to_enqueue", "receive → enqueue"],
  ["enqueue_to_write", "enqueue → write"],
];
const COUNTERS = [
  ["connections", "connections"],
  ["ticks_in", "ticks in"],
  ["deliveries", "deliveries"],
  ["conflated", "conflated"],
  ["dropped", "dropped"],
  ["slow_disconnects", "slow disconnects"],
];

const $ = (id) => document.getElementById(id);
// Wall-clock milliseconds with sub-millisecond resolution (Date.now() has
// whole milliseconds only, too coarse for a ~1 ms p50). The origin is read
// once: it is a getter, and this runs for every tick.
const TIME_ORIGIN = performance.timeOrigin;
const wallMs = () => TIME_ORIGIN + performance.now();

// ---------------------------------------------------------------- formatting

const groupFmt = new Intl.NumberFormat("en-US");
const fmtPrice = (p) => (p == null ? "—" : p.toFixed(p < 1 ? 4 : 2));
const fmtInt = (n) => (n == null ? "—" : groupFmt.format(n));
const signed = (s, v) => (v > 0 ? "+" + s : s);
// Rounded before the sign is chosen, so a tiny loss shows as 0.00, not -0.00.
const fmtChange = (v, digits) => {
  const r = Number(v.toFixed(digits)) || 0;
  return signed(r.toFixed(digits), r);
};

function fmtMs(ms) {
  if (ms == null || !Number.isFinite(ms)) return "—";
  if (ms < 1) return ms.toFixed(3) + " ms";
  if (ms < 10) return ms.toFixed(2) + " ms";
  if (ms < 100) return ms.toFixed(1) + " ms";
  if (ms < 1000) return ms.toFixed(0) + " ms";
  return (ms / 1000).toFixed(2) + " s";
}

const fmtUs = (us) => (us == null ? "—" : us < 1000 ? Math.round(us) + " µs" : fmtMs(us / 1000));

function fmtDuration(s) {
  if (s == null) return "—";
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}h ${m}m` : m ? `${m}m ${Math.floor(s % 60)}s` : `${Math.floor(s)}s`;
}

// ------------------------------------------------------------ symbol state

/** The latest known state of one symbol, whatever view shows it. */
class SymbolState {
  constructor(sym) {
    this.sym = sym;
    this.tick = null; // the latest tick applied
    this.firstLast = null; // last price of the first tick this page saw
    this.seq = null; // last seq seen on the current connection
    this.count = 0; // ticks in the current second
    this.rate = 0; // ticks/s over the last whole second
    this.spark = new Float64Array(SPARK_POINTS);
    this.sparkLen = 0;
    this.sparkAt = 0;
  }

  /** Keeps one sparkline point per SPARK_STEP_MS: the newest tick of the step. */
  pushSpark(price, now) {
    if (this.sparkLen > 0 && now - this.sparkAt < SPARK_STEP_MS) {
      this.spark[this.sparkLen - 1] = price;
      return;
    }
    if (this.sparkLen === SPARK_POINTS) {
      this.spark.copyWithin(0, 1);
      this.sparkLen--;
    }
    this.spark[this.sparkLen++] = price;
    this.sparkAt = now;
  }
}

const symbols = new Map(); // sym → SymbolState
const stateOf = (sym) => {
  let s = symbols.get(sym);
  if (!s) symbols.set(sym, (s = new SymbolState(sym)));
  return s;
};

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

const latency = {
  current: new SecondBucket(),
  recent: [], // whole seconds, newest last, LAT_WINDOW_S of them
  chart: [], // {p50, p99, max} per second, LAT_CHART_S of them (null = no ticks)
  window: null, // summary of `recent`
};

function rollLatencySecond() {
  const done = latency.current;
  latency.current = new SecondBucket();
  latency.recent.push(done);
  if (latency.recent.length > LAT_WINDOW_S) latency.recent.shift();
  latency.window = summarize(latency.recent);
  latency.chart.push(summarize([done]));
  if (latency.chart.length > LAT_CHART_S) latency.chart.shift();
}

// -------------------------------------------------------------- page state

const view = {
  watchlist: loadWatchlist(), // null until decided (stored, or defaults)
  firehose: localStorage.getItem(STORE_FIREHOSE) === "on",
  rows: new Map(), // sym → watchlist row {tr, cells, canvas, shown}
  known: new Set(), // symbols from GET /symbols
  dirty: new Set(), // watchlist symbols to repaint
  flashing: new Map(), // td → time its flash ends
  firehoseDirty: false,
  latencyDirty: false,
  framePending: false,
  ticksThisSecond: 0,
  skipped: 0,
};

function loadWatchlist() {
  try {
    const list = JSON.parse(localStorage.getItem(STORE_WATCHLIST));
    if (Array.isArray(list) && list.every((s) => typeof s === "string" && SYMBOL_RE.test(s))) return list;
  } catch {
    // An unreadable stored value falls back to the defaults.
  }
  return null;
}

function saveWatchlist() {
  localStorage.setItem(STORE_WATCHLIST, JSON.stringify(view.watchlist));
}

let noticeTimer = 0;
function notice(text) {
  $("notice").textContent = text;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => ($("notice").textContent = ""), 6000);
}

// -------------------------------------------------------------- connection

const conn = {
  ws: null,
  attempt: 0,
  retryAt: 0,
  retryTimer: 0,
  why: "", // the reason the last connection ended
  topics: new Set(), // the broker's last acknowledged list
  snapshotPending: new Set(), // symbols whose next tick is a snapshot
  wildcardSeen: null, // while `*` is new: symbols whose snapshot has passed
};

function wsUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

function setConn(state, text) {
  $("conn").dataset.state = state;
  $("conn-text").textContent = text;
}

function connect() {
  setConn("connecting", conn.attempt ? `connecting (attempt ${conn.attempt + 1})…` : "connecting…");
  const ws = new WebSocket(wsUrl());
  ws.binaryType = "arraybuffer";
  conn.ws = ws;
  ws.onopen = () => {
    conn.attempt = 0;
    conn.topics = new Set();
    conn.snapshotPending = new Set();
    conn.wildcardSeen = null;
    // A new connection restarts every symbol's seq: a gap across a reconnect
    // is not the broker skipping ticks.
    for (const s of symbols.values()) s.seq = null;
    setConn("live", `live · ${location.host}`);
    send("subscribe", wantedTopics());
  };
  ws.onmessage = onMessage;
  ws.onclose = (ev) => {
    if (conn.ws !== ws) return;
    conn.ws = null;
    const why = ev.reason ? `${ev.reason} (${ev.code})` : `code ${ev.code}`;
    scheduleReconnect(`disconnected: ${why}`);
  };
  // An error is always followed by a close event, which reconnects.
  ws.onerror = () => {};
}

function scheduleReconnect(why) {
  // Full jitter on an exponential step: many pages dropped at once by a
  // broker restart do not all come back in the same instant.
  const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** conn.attempt);
  const delay = cap / 2 + Math.random() * (cap / 2);
  conn.attempt++;
  conn.retryAt = Date.now() + delay;
  clearTimeout(conn.retryTimer);
  conn.retryTimer = setTimeout(connect, delay);
  conn.why = why;
  showRetry();
}

function showRetry() {
  const left = Math.max(0, Math.ceil((conn.retryAt - Date.now()) / 1000));
  setConn("reconnecting", `${conn.why} · retry in ${left}s`);
}

function wantedTopics() {
  return [...(view.watchlist ?? []), ...(view.firehose ? ["*"] : [])];
}

function send(op, topics) {
  // While disconnected there is nothing to do: the next open subscribes to
  // the whole wanted list.
  if (!topics.length || !conn.ws || conn.ws.readyState !== WebSocket.OPEN) return;
  conn.ws.send(JSON.stringify({ op, topics }));
}

function onMessage(ev) {
  const now = wallMs(); // before decoding: the receive time is what we measure
  if (typeof ev.data === "string") return; // the broker only sends binary frames
  let msg;
  try {
    msg = decode(ev.data);
  } catch (e) {
    notice(`undecodable frame: ${e.message}`);
    return;
  }
  if (msg === null || typeof msg !== "object") return;
  if (msg.type === "tick") onTick(msg, now);
  else if (msg.type === "subscribed" && Array.isArray(msg.topics)) onSubscribed(msg.topics);
  else if (msg.type === "error") notice(`broker: ${msg.code}: ${msg.message}`);
}

function onSubscribed(topics) {
  // Right after this ack the broker sends, in one burst, the latest tick of
  // each newly subscribed symbol (none for a symbol `*` already covered;
  // every symbol not held by name for a new `*`). Those are old by design,
  // so they are kept out of latency.
  const hadWildcard = conn.topics.has("*");
  for (const t of topics) {
    if (conn.topics.has(t)) continue;
    if (t === "*") conn.wildcardSeen = new Set(topics.filter((x) => x !== "*" && conn.topics.has(x)));
    else if (!hadWildcard) conn.snapshotPending.add(t);
  }
  if (!topics.includes("*")) conn.wildcardSeen = null;
  conn.topics = new Set(topics);
  $("topics").textContent = `subscribed: ${topics.length ? topics.join(" ") : "nothing"}`;
}

function isSnapshot(sym) {
  if (conn.snapshotPending.delete(sym)) return true;
  const seen = conn.wildcardSeen;
  if (!seen) return false;
  if (seen.has(sym)) {
    // A symbol again, or one held by name: the `*` snapshot burst is over.
    conn.wildcardSeen = null;
    return false;
  }
  seen.add(sym);
  return true;
}

function onTick(t, now) {
  if (typeof t.sym !== "string" || typeof t.last !== "number") return;
  const s = stateOf(t.sym);
  const snapshot = isSnapshot(t.sym);
  const seq = toNumber(t.seq);
  if (s.seq !== null) {
    if (seq <= s.seq) return; // never show an older state over a newer one
    view.skipped += seq - s.seq - 1;
  }
  s.seq = seq;
  const latencyMs = now - toNumber(t.ts) / 1e6;
  if (!snapshot && Number.isFinite(latencyMs)) latency.current.record(latencyMs);
  s.tick = t;
  if (s.firstLast === null) s.firstLast = t.last;
  s.pushSpark(t.last, now);
  s.count++;
  view.ticksThisSecond++;
  if (view.rows.has(t.sym)) {
    view.dirty.add(t.sym);
    requestFrame();
  }
}

// ------------------------------------------------------------- rendering

function requestFrame() {
  if (view.framePending) return;
  view.framePending = true;
  requestAnimationFrame(frame);
}

function frame() {
  view.framePending = false;
  const now = performance.now();
  for (const sym of view.dirty) paintRow(sym, now);
  view.dirty.clear();
  for (const [td, until] of view.flashing) {
    if (until <= now) {
      td.classList.remove("flash-up", "flash-down");
      view.flashing.delete(td);
    }
  }
  if (view.firehoseDirty) paintFirehose();
  if (view.latencyDirty) paintLatency();
  view.firehoseDirty = view.latencyDirty = false;
  if (view.flashing.size) requestFrame();
}

/** Sets a cell's text, flashing it green or red when `dir` says it moved. */
function setCell(td, text, dir, now) {
  if (td.textContent === text) return;
  td.textContent = text;
  if (!dir) return;
  td.classList.remove(dir > 0 ? "flash-down" : "flash-up");
  td.classList.add(dir > 0 ? "flash-up" : "flash-down");
  view.flashing.set(td, now + FLASH_MS);
}

function paintRow(sym, now) {
  const row = view.rows.get(sym);
  const s = symbols.get(sym);
  if (!row || !s || !s.tick) return;
  const t = s.tick;
  const prev = row.shown; // what the row showed before, for the flash direction
  const c = row.cells;
  const dir = (key) => (prev ? Math.sign(t[key] - prev[key]) : 0);
  setCell(c.bid, fmtPrice(t.bid), dir("bid"), now);
  setCell(c.ask, fmtPrice(t.ask), dir("ask"), now);
  setCell(c.last, fmtPrice(t.last), dir("last"), now);
  const chg = t.last - s.firstLast;
  const pct = s.firstLast ? (chg / s.firstLast) * 100 : 0;
  setCell(c.chg, fmtChange(chg, t.last < 1 ? 4 : 2), 0, now);
  setCell(c.pct, fmtChange(pct, 2) + "%", 0, now);
  for (const td of [c.chg, c.pct]) {
    td.classList.toggle("pos", td.textContent.startsWith("+"));
    td.classList.toggle("neg", td.textContent.startsWith("-"));
  }
  setCell(c.vol, fmtInt(toNumber(t.volume)), 0, now);
  c.sym.classList.remove("dim");
  row.tr.dataset.seq = String(t.seq);
  row.shown = t;
  drawSpark(row.canvas, s);
}

/** A 2D context for `canvas` drawn at `w`×`h` CSS pixels, sharp on any screen. */
function fitCanvas(canvas, w, h) {
  const dpr = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return ctx;
}

function drawSpark(canvas, s) {
  const [w, h] = [SPARK_W, SPARK_H];
  const ctx = fitCanvas(canvas, w, h);
  ctx.clearRect(0, 0, w, h);
  const n = s.sparkLen;
  if (n < 2) return;
  const pts = s.spark;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < n; i++) {
    lo = Math.min(lo, pts[i]);
    hi = Math.max(hi, pts[i]);
  }
  const span = hi - lo || 1;
  // Stretched over the width while the history fills, so a new row has a
  // readable line at once.
  const x = (i) => 1 + (i / (n - 1)) * (w - 4);
  const y = (p) => h - 3 - ((p - lo) / span) * (h - 6);
  const up = pts[n - 1] >= pts[0];
  ctx.strokeStyle = up ? "#26c281" : "#f0524f";
  ctx.lineWidth = 1.25;
  ctx.beginPath();
  for (let i = 0; i < n; i++) (i ? ctx.lineTo : ctx.moveTo).call(ctx, x(i), y(pts[i]));
  ctx.stroke();
  ctx.fillStyle = ctx.strokeStyle;
  ctx.beginPath();
  ctx.arc(x(n - 1), y(pts[n - 1]), 1.8, 0, Math.PI * 2);
  ctx.fill();
}

// --------------------------------------------------------------- watchlist

function buildRow(sym) {
  const tr = document.createElement("tr");
  tr.dataset.sym = sym;
  const cells = {};
  for (const key of ["sym", "bid", "ask", "last", "chg", "pct", "vol"]) {
    const td = document.createElement("td");
    td.className = key === "sym" ? "sym dim" : `num ${key}`;
    td.textContent = key === "sym" ? sym : "—";
    tr.append(td);
    cells[key] = td;
  }
  const trend = document.createElement("td");
  trend.className = "trend";
  const canvas = document.createElement("canvas");
  trend.append(canvas);
  const x = document.createElement("td");
  x.className = "x";
  const remove = document.createElement("button");
  remove.type = "button";
  remove.textContent = "×";
  remove.title = `Remove ${sym}`;
  remove.setAttribute("aria-label", `Remove ${sym}`);
  remove.addEventListener("click", () => removeSymbol(sym));
  x.append(remove);
  tr.append(trend, x);
  $("watch-body").append(tr);
  view.rows.set(sym, { tr, cells, canvas, shown: null });
  // A symbol already known (from the firehose) shows at once.
  if (symbols.get(sym)?.tick) {
    view.dirty.add(sym);
    requestFrame();
  }
}

function showWatchEmpty() {
  $("watch-empty").hidden = view.watchlist.length > 0;
}

/** The symbol as the feed spells it, or null if it cannot be a topic. */
function canonical(raw) {
  const text = raw.trim();
  if (view.known.has(text)) return text;
  const upper = text.toUpperCase();
  if (view.known.has(upper)) return upper;
  return SYMBOL_RE.test(upper) ? upper : null;
}

function addSymbol(raw) {
  const sym = canonical(raw);
  if (!sym) {
    notice(`"${raw.trim().slice(0, 40)}" is not a symbol (1-32 of A-Z 0-9 . - _ / : ^)`);
    return false;
  }
  if (view.watchlist.includes(sym)) {
    notice(`${sym} is already in the watchlist`);
    return false;
  }
  if (view.known.size && !view.known.has(sym)) notice(`${sym} has not traded yet; watching for it`);
  view.watchlist.push(sym);
  saveWatchlist();
  buildRow(sym);
  showWatchEmpty();
  send("subscribe", [sym]);
  return true;
}

function removeSymbol(sym) {
  view.watchlist = view.watchlist.filter((s) => s !== sym);
  saveWatchlist();
  view.rows.get(sym)?.tr.remove();
  view.rows.delete(sym);
  view.dirty.delete(sym);
  showWatchEmpty();
  send("unsubscribe", [sym]);
}

// ---------------------------------------------------------------- firehose

const fireRows = [];

function buildFirehoseRows() {
  for (let i = 0; i < FIREHOSE_ROWS; i++) {
    const tr = document.createElement("tr");
    tr.title = "Add to the watchlist";
    const cells = {};
    for (const key of ["sym", "last", "pct", "rate", "bar"]) {
      const td = document.createElement("td");
      td.className = key === "sym" ? "sym" : key === "bar" ? "bar" : `num ${key}`;
      tr.append(td);
      cells[key] = td;
    }
    cells.bar.append(document.createElement("i"));
    tr.addEventListener("click", () => {
      if (tr.dataset.sym && !view.watchlist.includes(tr.dataset.sym)) addSymbol(tr.dataset.sym);
    });
    tr.hidden = true;
    $("fire-body").append(tr);
    fireRows.push({ tr, cells });
  }
}

function paintFirehose() {
  const on = view.firehose;
  $("fire-empty").hidden = on;
  // Rank only symbols that ticked within the last second: a full sort of the
  // universe once a second is cheap, per tick it would not be.
  const top = on
    ? [...symbols.values()].filter((s) => s.rate > 0).sort((a, b) => b.rate - a.rate).slice(0, FIREHOSE_ROWS)
    : [];
  const maxRate = top.length ? top[0].rate : 1;
  fireRows.forEach((row, i) => {
    const s = top[i];
    row.tr.hidden = !s;
    if (!s) return;
    const t = s.tick;
    const pct = s.firstLast ? ((t.last - s.firstLast) / s.firstLast) * 100 : 0;
    row.tr.dataset.sym = s.sym;
    row.cells.sym.textContent = s.sym;
    row.cells.last.textContent = fmtPrice(t.last);
    row.cells.pct.textContent = fmtChange(pct, 2) + "%";
    row.cells.pct.classList.toggle("pos", row.cells.pct.textContent.startsWith("+"));
    row.cells.pct.classList.toggle("neg", row.cells.pct.textContent.startsWith("-"));
    row.cells.rate.textContent = fmtInt(Math.round(s.rate));
    row.cells.bar.firstChild.style.width = `${Math.max(2, (s.rate / maxRate) * 100)}%`;
  });
}

function setFirehose(on) {
  view.firehose = on;
  localStorage.setItem(STORE_FIREHOSE, on ? "on" : "off");
  send(on ? "subscribe" : "unsubscribe", ["*"]);
  view.firehoseDirty = true;
  requestFrame();
}

// ----------------------------------------------------------------- latency

function paintLatency() {
  const w = latency.window;
  $("lat-p50").textContent = fmtMs(w?.p50);
  $("lat-p99").textContent = fmtMs(w?.p99);
  $("lat-max").textContent = fmtMs(w?.max);
  $("lat-n").textContent = w ? fmtInt(w.count) : "—";
  drawLatencyChart();
}

function drawLatencyChart() {
  const canvas = $("lat-chart");
  // Read once a second, in its own phase: the panel's width follows the window.
  const [w, h] = [canvas.clientWidth, canvas.clientHeight];
  const ctx = fitCanvas(canvas, w, h);
  ctx.clearRect(0, 0, w, h);
  const pad = { l: 52, r: 6, t: 6, b: 16 };
  const pts = latency.chart;
  // Scale to the p99s so one outlier does not flatten the chart; a max line
  // above the top is clipped.
  let top = 0;
  for (const p of pts) if (p) top = Math.max(top, p.p99);
  top = niceCeil(top * 1.25 || 1);
  ctx.font = "10px ui-monospace, 'DejaVu Sans Mono', monospace";
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    const y = pad.t + (h - pad.t - pad.b) * (1 - i / 4);
    ctx.strokeStyle = "#1d2531";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(pad.l, Math.round(y) + 0.5);
    ctx.lineTo(w - pad.r, Math.round(y) + 0.5);
    ctx.stroke();
    ctx.fillStyle = "#738092";
    ctx.fillText(fmtAxis(v), pad.l - 6, y);
  }
  ctx.textAlign = "left";
  ctx.fillText("-60 s", pad.l, h - 6);
  ctx.textAlign = "right";
  ctx.fillText("now", w - pad.r, h - 6);
  const x = (i) => pad.l + ((w - pad.l - pad.r) * (LAT_CHART_S - pts.length + i)) / (LAT_CHART_S - 1);
  const y = (v) => pad.t + (h - pad.t - pad.b) * (1 - Math.min(v, top) / top);
  ctx.save();
  ctx.beginPath();
  ctx.rect(pad.l, pad.t - 1, w - pad.l - pad.r, h - pad.t - pad.b + 2);
  ctx.clip();
  const series = [["max", "rgba(240, 82, 79, 0.55)", 1], ["p99", "#f5a623", 1.6], ["p50", "#4aa3ff", 1.6]];
  for (const [key, color, width] of series) {
    ctx.strokeStyle = color;
    ctx.lineWidth = width;
    ctx.beginPath();
    let drawing = false;
    pts.forEach((p, i) => {
      if (!p) {
        drawing = false;
        return;
      }
      (drawing ? ctx.lineTo : ctx.moveTo).call(ctx, x(i), y(p[key]));
      drawing = true;
    });
    ctx.stroke();
  }
  ctx.restore();
}

/** A short axis label for `ms` milliseconds: "0", "250 µs", "1.5 ms". */
function fmtAxis(ms) {
  if (ms === 0) return "0";
  return ms < 1 ? `${+(ms * 1000).toPrecision(3)} µs` : `${+ms.toPrecision(3)} ms`;
}

/** The smallest 1, 2 or 5 × 10^k at or above `v`. */
function niceCeil(v) {
  const mag = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * mag >= v) return m * mag;
  return 10 * mag;
}

// ------------------------------------------------------- broker endpoints

async function fetchJson(path) {
  const res = await fetch(path, { cache: "no-store" });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return res.json();
}

async function refreshSymbols() {
  try {
    const ticks = await fetchJson("/symbols");
    const names = ticks.map((t) => t?.sym).filter((s) => typeof s === "string").sort();
    view.known = new Set(names);
    const list = $("symbol-list");
    list.replaceChildren(
      ...names.map((sym) => {
        const o = document.createElement("option");
        o.value = sym;
        return o;
      }),
    );
    return names;
  } catch {
    return [];
  }
}

function buildStats() {
  for (const [key, label] of STAGES) {
    const tr = document.createElement("tr");
    tr.dataset.stage = key;
    tr.innerHTML = `<td class="sym"></td>${'<td class="num">—</td>'.repeat(5)}`;
    tr.firstChild.textContent = label;
    $("stages-body").append(tr);
  }
  for (const [key, label] of COUNTERS) {
    const div = document.createElement("div");
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = label;
    dd.textContent = "—";
    dd.id = `counter-${key}`;
    div.append(dt, dd);
    $("counters").append(div);
  }
}

async function pollStats() {
  try {
    const st = await fetchJson("/stats");
    for (const [key] of STAGES) {
      const h = st.stages?.[key];
      const cells = document.querySelectorAll(`tr[data-stage="${key}"] td.num`);
      const vals = h && h.count ? [h.p50_us, h.p90_us, h.p99_us, h.p999_us, h.max_us] : [];
      cells.forEach((td, i) => (td.textContent = fmtUs(vals[i])));
    }
    for (const [key] of COUNTERS) $(`counter-${key}`).textContent = fmtInt(st[key]);
    $("uptime").textContent = fmtDuration(st.uptime_s);
  } catch {
    $("uptime").textContent = "—";
  }
  setTimeout(pollStats, STATS_POLL_MS);
}

// ------------------------------------------------------------- every second

let lastSecond = performance.now();
function everySecond() {
  const now = performance.now();
  const secs = Math.max(0.001, (now - lastSecond) / 1000);
  lastSecond = now;
  $("rate").textContent = fmtInt(Math.round(view.ticksThisSecond / secs));
  $("gaps").textContent = fmtInt(view.skipped);
  view.ticksThisSecond = 0;
  for (const s of symbols.values()) {
    s.rate = s.count / secs;
    s.count = 0;
  }
  rollLatencySecond();
  if (!conn.ws && conn.retryAt) showRetry();
  view.firehoseDirty = view.latencyDirty = true;
  requestFrame();
}

// -------------------------------------------------------------------- boot

async function boot() {
  buildStats();
  buildFirehoseRows();
  $("firehose-toggle").checked = view.firehose;
  $("firehose-toggle").addEventListener("change", (e) => setFirehose(e.target.checked));
  $("add-form").addEventListener("submit", (e) => {
    e.preventDefault();
    if (addSymbol($("add-input").value)) $("add-input").value = "";
  });
  $("add-input").addEventListener("focus", refreshSymbols);
  window.addEventListener("resize", () => {
    view.latencyDirty = true;
    requestFrame();
  });

  const names = await refreshSymbols();
  if (!view.watchlist) {
    // The simulator names its first symbols after real US tickers; another
    // feed may not, so fall back to the first symbols it has.
    const defaults = DEFAULT_WATCHLIST.filter((s) => view.known.has(s));
    view.watchlist = defaults.length ? defaults : names.length ? names.slice(0, 7) : [...DEFAULT_WATCHLIST];
  }
  view.watchlist.forEach(buildRow);
  showWatchEmpty();
  paintFirehose();
  paintLatency();
  setInterval(everySecond, 1000);
  setInterval(refreshSymbols, SYMBOLS_REFRESH_MS);
  pollStats();
  connect();
}

boot();
