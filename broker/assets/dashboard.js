// dashboard.js: the tickcast dashboard's behaviour.
//
// The WebSocket, decoding and latency measurement run in a worker
// (./feed.js), which hands over the latest tick of each changed symbol every
// few milliseconds and a summary once a second. Those only update state in
// memory and mark rows dirty; the DOM is repainted once per animation frame,
// so a `*` subscription on a busy feed costs one paint per frame however many
// ticks arrive, and a background tab does no DOM work. The watchlist and the
// firehose switch persist in localStorage.
//
// With tokens required (the broker's --jwt-* flags) the page needs one: see
// "token" below for where it comes from and how expiry and refused symbols
// show.

const DEFAULT_WATCHLIST = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA"];
const STORE_WATCHLIST = "tickcast.watchlist";
const STORE_FIREHOSE = "tickcast.firehose";
// This tab's token: sessionStorage, so it ends with the tab and is not
// shared with other tabs or kept on disk.
const STORE_TOKEN = "tickcast.token";
// Warn this long before the token expires (the broker closes at `exp`).
const EXPIRY_WARN_S = 60;
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
const LAT_CHART_S = 60;
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

/** A replay's progress (`/stats`' `replay`): "playing 42% · 14:31:07 · 10x". */
function fmtReplay(r) {
  const done = r.total_bytes ? `${Math.floor((100 * r.bytes) / r.total_bytes)}%` : fmtInt(r.ticks);
  const at = r.last_time ? r.last_time.slice(11, 19) : "—";
  const laps = r.laps ? ` · lap ${r.laps + 1}` : "";
  return `${r.state} ${done} · ${at} · ${r.speed}${laps}`;
}

// ------------------------------------------------------------ symbol state

/** The latest known state of one symbol, whatever view shows it. */
class SymbolState {
  constructor(sym) {
    this.sym = sym;
    this.tick = null; // the latest tick: {sym, seq, bid, ask, last, volume}
    this.firstLast = null; // last price of the first tick this page saw
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

const latency = {
  window: null, // {count, p50, p99, max} over the last 10 s, from the worker
  chart: [], // one such summary per second (null = no ticks), LAT_CHART_S of them
};

// -------------------------------------------------------------- page state

const view = {
  watchlist: loadWatchlist(), // null until decided (stored, or defaults)
  firehose: localStorage.getItem(STORE_FIREHOSE) === "on",
  rows: new Map(), // sym → watchlist row {tr, cells, canvas, shown}
  known: new Set(), // symbols from GET /symbols
  denied: new Set(), // watched symbols the broker refused (not_entitled)
  dirty: new Set(), // watchlist symbols to repaint
  flashing: new Map(), // td → time its flash ends
  firehoseDirty: false,
  latencyDirty: false,
  framePending: false,
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

// ------------------------------------------------------------------ token

// The token comes from the URL fragment (`#token=…`: a fragment is never
// sent to a server, and it is taken out of the address bar at once), from
// this tab's sessionStorage, or from the token box, shown when the broker
// answers 401. It goes to the broker as `Authorization: Bearer` on fetches
// and as `?token=` on the WebSocket (feed.js). Its claims are read here,
// unverified, only to show who is signed in until when, and to leave out of
// the subscription the stored watchlist's symbols that `syms` does not
// cover (one of them would make the broker refuse the whole subscribe:
// they show as "not entitled"). A symbol added by hand goes to the broker,
// which checks everything: one it refuses shows in a banner.
const auth = {
  token: sessionStorage.getItem(STORE_TOKEN) ?? "",
  claims: null,
  needed: false, // the broker answered 401
};
auth.claims = claimsOf(auth.token);

function takeFragmentToken() {
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  if (!token) return;
  history.replaceState(null, "", location.pathname + location.search);
  setToken(token);
}

/** A JWT's claims, unverified; null if it is not one. */
function claimsOf(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(part));
    return claims && typeof claims === "object" ? claims : null;
  } catch {
    return null;
  }
}

function setToken(token) {
  auth.token = token;
  auth.claims = claimsOf(token);
  sessionStorage.setItem(STORE_TOKEN, token);
  showUser();
}

/** Whether the token's `syms` cover `sym` (exact, PREFIX*, or *); true without a token. */
function entitled(sym) {
  const syms = auth.claims?.syms;
  if (!auth.token || !Array.isArray(syms)) return true;
  return syms.some((p) => p === "*" || p === sym || (p.endsWith("*") && sym.startsWith(p.slice(0, -1))));
}

function showUser() {
  const el = $("user");
  const c = auth.claims;
  el.hidden = !c;
  if (!c) return;
  const left = typeof c.exp === "number" ? c.exp - Date.now() / 1000 : Infinity;
  el.replaceChildren();
  const who = document.createElement("b");
  who.textContent = c.sub ?? "?";
  el.append(who, left > 0 ? ` · token ${fmtDuration(Math.floor(left))} left` : " · token expired");
  el.title = `entitled to ${Array.isArray(c.syms) ? c.syms.join(", ") : "?"}`;
}

function showAuth(kind, text) {
  const banner = $("auth-banner");
  banner.dataset.kind = kind;
  $("auth-text").textContent = text;
  banner.hidden = false;
}

function hideAuth() {
  $("auth-banner").hidden = true;
}

/** The broker answered 401 with `reason`: the sign-in box. */
function signedOut(reason) {
  auth.needed = true;
  const why = auth.token ? `The broker refused this token (${reason}).` : "The broker needs an access token.";
  showAuth(auth.token && /expired/.test(reason) ? "expired" : "login", `${why} Paste one to sign in.`);
}

/** Once a second: the time left, and the banner as expiry comes. */
function watchExpiry() {
  showUser();
  const exp = auth.claims?.exp;
  if (typeof exp !== "number") return;
  const left = Math.floor(exp - Date.now() / 1000);
  const kind = $("auth-banner").hidden ? null : $("auth-banner").dataset.kind;
  if (left <= 0) {
    if (kind !== "expired") showAuth("expired", "Your token has expired: paste a new one to continue.");
  } else if (left <= EXPIRY_WARN_S && (kind === null || kind === "expiring")) {
    showAuth("expiring", `Your token expires in ${left} s: paste a fresh one to stay connected.`);
  }
}

function showDenied(topics, text) {
  for (const t of topics) view.denied.add(t);
  for (const t of topics) markRow(t);
  const names = topics.length ? topics.join(", ") : "";
  $("denied-text").textContent = `Not entitled: ${text}${names ? ` (asked for ${names})` : ""}. Your token does not cover it.`;
  $("denied-banner").hidden = false;
}

/** The watchlist's symbols the token does not cover, marked as such. */
function seedDenied() {
  view.denied = new Set((view.watchlist ?? []).filter((s) => !entitled(s)));
  view.rows.forEach((_, sym) => markRow(sym));
}

/** A watchlist row's entitlement mark. */
function markRow(sym) {
  const row = view.rows.get(sym);
  if (!row) return;
  const denied = view.denied.has(sym);
  row.tr.classList.toggle("denied", denied);
  if (denied) row.cells.last.textContent = "not entitled";
}

async function submitToken(e) {
  e.preventDefault();
  const token = $("token-input").value.trim();
  if (!token) return;
  $("token-input").value = "";
  setToken(token);
  auth.needed = false;
  await refreshSymbols();
  if (auth.needed) return; // refused again: the banner says why
  hideAuth();
  seedDenied();
  sendWanted();
  if (started) worker.postMessage({ type: "token", token });
  else startFeed();
}

// ------------------------------------------------------------------- feed

// The WebSocket lives in a worker (feed.js): see there for why. The page
// tells it the topics it wants and gets batches of changed ticks.
const worker = new Worker(new URL("./feed.js", import.meta.url), { type: "module" });

function wantedTopics() {
  const watched = (view.watchlist ?? []).filter((s) => !view.denied.has(s));
  return [...watched, ...(view.firehose ? ["*"] : [])];
}

let started = false;
function startFeed() {
  started = true;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  worker.postMessage({ type: "start", url: `${scheme}//${location.host}/ws`, token: auth.token });
}

function sendWanted() {
  worker.postMessage({ type: "want", topics: wantedTopics() });
}

worker.onerror = (e) => {
  $("conn").dataset.state = "reconnecting";
  $("conn-text").textContent = `feed worker failed: ${e.message ?? "could not load feed.js"}`;
};

worker.onmessage = (ev) => {
  const msg = ev.data;
  if (msg.type === "ticks") onTicks(msg.ticks);
  else if (msg.type === "second") onSecond(msg);
  else if (msg.type === "conn") {
    $("conn").dataset.state = msg.state;
    $("conn-text").textContent = msg.text;
  } else if (msg.type === "ack") {
    $("topics").textContent = `subscribed: ${msg.topics.length ? msg.topics.join(" ") : "nothing"}`;
  } else if (msg.type === "notice") notice(msg.text);
  else if (msg.type === "denied") showDenied(msg.topics, msg.text);
  else if (msg.type === "expired") showAuth("expired", `The broker closed the feed: ${msg.text}. Paste a new token to continue.`);
};

function onTicks(ticks) {
  const now = performance.now();
  for (const t of ticks) {
    const s = stateOf(t.sym);
    s.tick = t;
    if (s.firstLast === null) s.firstLast = t.last;
    s.pushSpark(t.last, now);
    if (view.rows.has(t.sym)) view.dirty.add(t.sym);
  }
  if (view.dirty.size) requestFrame();
}

function onSecond(msg) {
  $("rate").textContent = fmtInt(Math.round(msg.rate));
  // Skipped: what the broker said it skipped (conflated for this page,
  // held back by its rate cap, or never received by an edge) plus any jump
  // no notice explained.
  const told = msg.noticed ?? {};
  const skipped = msg.skipped + (told.conflated ?? 0) + (told.dropped ?? 0) +
    (told.rate_capped ?? 0) + (told.upstream ?? 0);
  $("gaps").textContent = fmtInt(skipped);
  $("gaps").title =
    `conflated ${fmtInt(told.conflated ?? 0)} · rate-capped ${fmtInt(told.rate_capped ?? 0)} · ` +
    `dropped ${fmtInt(told.dropped ?? 0)} · upstream ${fmtInt(told.upstream ?? 0)} · ` +
    `unexplained ${fmtInt(msg.skipped)} · ` +
    `recovered after reconnects ${fmtInt(msg.recovered ?? 0)} · resets ${fmtInt(msg.resets ?? 0)}`;
  for (const s of symbols.values()) s.rate = 0;
  for (const [sym, rate] of msg.rates) stateOf(sym).rate = rate;
  latency.window = msg.window;
  latency.chart.push(msg.point);
  if (latency.chart.length > LAT_CHART_S) latency.chart.shift();
  view.firehoseDirty = view.latencyDirty = true;
  requestFrame();
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
  setCell(c.vol, fmtInt(t.volume), 0, now);
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
  if (!view.watchlist) return false; // still deciding the list at start-up
  const sym = canonical(raw);
  if (!sym) {
    notice(`"${raw.trim().slice(0, 40)}" is not a symbol (1-32 of A-Z 0-9 . - _ / : ^)`);
    return false;
  }
  if (view.watchlist.includes(sym)) {
    notice(`${sym} is already in the watchlist`);
    return false;
  }
  // (/symbols lists only what the token covers: for another symbol the broker's answer tells.)
  if (view.known.size && !view.known.has(sym) && entitled(sym)) notice(`${sym} has not traded yet; watching for it`);
  view.watchlist.push(sym);
  saveWatchlist();
  buildRow(sym);
  showWatchEmpty();
  sendWanted();
  return true;
}

function removeSymbol(sym) {
  view.watchlist = view.watchlist.filter((s) => s !== sym);
  saveWatchlist();
  view.rows.get(sym)?.tr.remove();
  view.rows.delete(sym);
  view.dirty.delete(sym);
  view.denied.delete(sym);
  showWatchEmpty();
  sendWanted();
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
  sendWanted();
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
  const headers = auth.token ? { Authorization: `Bearer ${auth.token}` } : {};
  const res = await fetch(path, { cache: "no-store", headers, signal: AbortSignal.timeout(5000) });
  if (res.status === 401) signedOut((await res.text()).trim());
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
    $("replay-kpi").hidden = !st.replay;
    if (st.replay) $("replay").textContent = fmtReplay(st.replay);
  } catch {
    $("uptime").textContent = "—";
  }
  setTimeout(pollStats, STATS_POLL_MS);
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
  $("token-form").addEventListener("submit", submitToken);
  $("denied-close").addEventListener("click", () => ($("denied-banner").hidden = true));
  takeFragmentToken();
  showUser();
  setInterval(watchExpiry, 1000);
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
  setInterval(refreshSymbols, SYMBOLS_REFRESH_MS);
  seedDenied();
  pollStats();
  sendWanted();
  // Without a token the broker would refuse the WebSocket too: the feed
  // starts once one is given (submitToken).
  if (!auth.needed) startFeed();
}

boot();
