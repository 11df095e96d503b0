// Interop test: the dashboard served over https by a broker requiring
// tokens, in headless Chromium.
//
// The broker's certificate is the suite's test certificate, made at run
// time; Chromium is told to accept it with --ignore-certificate-errors
// (what is under test is the page on https, not the browser's trust store).
// A page on https can only open wss://, so ticks arriving prove the feed
// runs over wss. Checks:
//   1. no token: the sign-in banner and its token box, and no feed;
//   2. a token pasted into the box (alice: AAPL and MSFT): signed in as
//      alice, AAPL and MSFT live, the default watchlist's other symbols
//      marked "not entitled" (not asked for), and a symbol added by hand
//      refused by the broker (not_entitled) in a visible banner;
//   3. a token in the URL fragment (`#token=…`, never sent to a server),
//      taken out of the address bar at once; a short-lived one: the expiry
//      warning, then, when the broker closes the feed (4001), the expired
//      banner and a signed-out feed; a fresh token pasted in brings it back.
// The page must log no error.
//
// Usage: node dashboard_tls.mjs https://localhost:PORT SECRET_FILE [screenshot.png]
// (the screenshot: the signed-in page with the not_entitled banner).
// Prints `PASS dashboard-https ...` or `FAIL dashboard-https: reason`; exit code 0 or 1.

import { launch } from "./browser.mjs";
import { readSecret, userToken } from "./jwt.mjs";

const NAME = "dashboard-https";
const STEP_MS = 10_000;
const TOTAL_MS = 75_000;
const SHORT_TTL_S = 12;

function fail(msg) {
  console.log(`FAIL ${NAME}: ${msg}`);
  process.exit(1);
}

const deadline = setTimeout(() => fail(`did not finish within ${TOTAL_MS / 1000} s`), TOTAL_MS);

async function step(what, fn) {
  try {
    return await fn();
  } catch (e) {
    throw new Error(`${what}: ${e.message.split("\n")[0]}`);
  }
}

const banner = (page, id) =>
  page.$eval(id, (el) => ({ hidden: el.hidden, kind: el.dataset.kind, text: el.textContent.trim() }));

/** Waits until banner `id` shows with `kind`. */
const bannerShows = (page, id, kind, timeout = STEP_MS) =>
  page.waitForFunction(
    ([id, kind]) => {
      const el = document.querySelector(id);
      return !el.hidden && el.dataset.kind === kind;
    },
    [id, kind],
    { timeout },
  );

const live = (page) =>
  page.waitForFunction(() => document.getElementById("conn").dataset.state === "live", null, { timeout: STEP_MS });

/** Waits for a watchlist row of `sym` showing a tick newer than `seq`. */
const rowTicks = (page, sym, seq = 0) =>
  page.waitForFunction(([sym, seq]) => Number(document.querySelector(`#watch-body tr[data-sym="${sym}"]`)?.dataset.seq ?? 0) > seq, [sym, seq], {
    timeout: STEP_MS,
  });

async function signIn(page, base, token, shot) {
  await step("load without a token", () => page.goto(base, { waitUntil: "load", timeout: STEP_MS }));
  await step("sign-in banner", async () => {
    await bannerShows(page, "#auth-banner", "login");
    if (!(await page.isVisible("#token-input"))) throw new Error("no token box");
    const state = await page.$eval("#conn", (el) => el.dataset.state);
    if (state === "live") throw new Error("the feed is live without a token");
  });
  await step("paste alice's token", async () => {
    await page.fill("#token-input", token);
    await page.press("#token-input", "Enter");
    await page.waitForSelector("#auth-banner", { state: "hidden", timeout: STEP_MS });
    await live(page);
    await rowTicks(page, "AAPL");
    await rowTicks(page, "MSFT");
    const user = await page.textContent("#user");
    if (!user.includes("alice")) throw new Error(`user shows ${user}`);
  });
  await step("symbols outside the token marked", async () => {
    const nvda = await page.$eval('#watch-body tr[data-sym="NVDA"]', (tr) => ({
      denied: tr.classList.contains("denied"),
      seq: tr.dataset.seq,
      last: tr.querySelector(".last").textContent,
    }));
    if (!nvda.denied || nvda.seq || nvda.last !== "not entitled") throw new Error(`NVDA row ${JSON.stringify(nvda)}`);
  });
  await step("a symbol added by hand is refused by the broker", async () => {
    await page.fill("#add-input", "JPM");
    await page.press("#add-input", "Enter");
    await bannerShows(page, "#denied-banner", "denied");
    const b = await banner(page, "#denied-banner");
    if (!b.text.includes("not entitled to JPM")) throw new Error(`banner says ${b.text}`);
    await page.waitForSelector('#watch-body tr[data-sym="JPM"].denied', { timeout: STEP_MS });
    await live(page); // the connection stays up
  });
  if (shot) await page.screenshot({ path: shot });
  console.log(`PASS ${NAME} sign-in box, entitled rows live, not_entitled banner`);
}

async function expiry(page, base, short, fresh) {
  await step("load with #token=", () => page.goto(`${base}/#token=${short}`, { waitUntil: "load", timeout: STEP_MS }));
  await step("fragment taken out", async () => {
    await page.waitForFunction(() => location.hash === "", null, { timeout: STEP_MS });
    await live(page);
    await rowTicks(page, "AAPL");
  });
  await step("expiry warning", async () => {
    await bannerShows(page, "#auth-banner", "expiring");
    const b = await banner(page, "#auth-banner");
    if (!/expires in \d+ s/.test(b.text)) throw new Error(`banner says ${b.text}`);
  });
  await step("expired: banner and the feed closed", async () => {
    await bannerShows(page, "#auth-banner", "expired", (SHORT_TTL_S + 5) * 1000);
    await page.waitForFunction(() => document.getElementById("conn").dataset.state === "signed-out", null, {
      timeout: STEP_MS,
    });
  });
  await step("a fresh token brings it back", async () => {
    const seq = await page.$eval('#watch-body tr[data-sym="AAPL"]', (tr) => Number(tr.dataset.seq));
    await page.fill("#token-input", fresh);
    await page.press("#token-input", "Enter");
    await page.waitForSelector("#auth-banner", { state: "hidden", timeout: STEP_MS });
    await live(page);
    await rowTicks(page, "AAPL", seq);
  });
  console.log(`PASS ${NAME} #token= removed from the address bar, expiry warned, 4001 shown, renewed`);
}

async function main() {
  const [base, secretFile, shot] = process.argv.slice(2);
  if (!secretFile) fail("usage: node dashboard_tls.mjs https://localhost:PORT SECRET_FILE");
  if (!base.startsWith("https://")) fail(`${base} is not https`);
  const secret = readSecret(secretFile);
  const browser = await launch(["--ignore-certificate-errors"], STEP_MS * 2);
  const errors = [];
  try {
    for (const run of [
      (page) => signIn(page, base, userToken(secret, "alice", ["AAPL", "MSFT"], 600), shot),
      (page) => expiry(page, base, userToken(secret, "bob", ["*"], SHORT_TTL_S), userToken(secret, "bob", ["*"], 600)),
    ]) {
      // A fresh context each: its own storage, as a new visitor.
      const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
      const page = await context.newPage();
      page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
      // The 401s the page asks for while signed out are expected; anything else is not.
      page.on("console", (m) => m.type() === "error" && !/401/.test(m.text()) && errors.push(`console: ${m.text()}`));
      await run(page);
      await context.close();
    }
  } finally {
    await browser.close();
  }
  if (errors.length) throw new Error(errors.join("; "));
  clearTimeout(deadline);
  console.log(`PASS ${NAME}`);
}

main().catch((e) => fail(e.message));
