// Interop test: the broker's dashboard (GET /) in headless Chromium.
//
// Loads the page from a running broker the way a person would, and checks
// that the watchlist fills and moves, that adding and removing a symbol
// subscribes and unsubscribes live (the broker's ack, shown in the footer,
// says so), that the broker holds the watchlist to the page's rate cap
// (feed.js's MAX_RATE a second per symbol: the page's tick rate stays
// within it and its skipped count shows the broker's rate-capped notices),
// that the firehose ranks symbols, that the latency panel shows
// numbers, that the watchlist survives a reload, and that the page logs no
// error. Saves a screenshot for docs/.
//
// Usage: node dashboard.mjs http://127.0.0.1:PORT [screenshot.png]
// Prints `PASS dashboard` or `FAIL dashboard: reason`; exit code 0 or 1.

import { launch } from "./browser.mjs";

const base = process.argv[2];
const shot = process.argv[3] ?? new URL("../../../docs/dashboard.png", import.meta.url).pathname;
const STEP_MS = 10_000; // the longest any one expectation may take
const TOTAL_MS = 60_000; // the whole run, browser start included
const DEFAULTS = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA"];
const MAX_RATE = 10; // feed.js's cap, ticks a second per watched symbol

function fail(msg) {
  console.log(`FAIL dashboard: ${msg}`);
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

/** The symbols of the watchlist rows, in order. */
const rowSyms = (page) => page.$$eval("#watch-body tr", (trs) => trs.map((tr) => tr.dataset.sym));

async function run(page) {
  const known = (await (await fetch(`${base}/symbols`)).json()).map((t) => t.sym);
  if (known.length < 8) throw new Error(`/symbols lists only ${known.length} symbols`);
  const preferred = DEFAULTS.filter((s) => known.includes(s));
  const expected = preferred.length ? preferred : [...known].sort().slice(0, 7);

  await step("load page", () => page.goto(base, { waitUntil: "load", timeout: STEP_MS }));

  await step("watchlist fills", async () => {
    await page.waitForFunction(
      (n) => {
        const trs = [...document.querySelectorAll("#watch-body tr")];
        return trs.length === n && trs.every((tr) => tr.dataset.seq && /\d/.test(tr.querySelector(".last").textContent));
      },
      expected.length,
      { timeout: STEP_MS },
    );
    const got = await rowSyms(page);
    if (got.join() !== expected.join()) throw new Error(`rows ${got} != ${expected}`);
  });

  await step("prices change", async () => {
    const before = await page.$$eval("#watch-body tr", (trs) => trs.map((tr) => tr.dataset.seq));
    await page.waitForFunction(
      (seqs) => [...document.querySelectorAll("#watch-body tr")].some((tr, i) => tr.dataset.seq !== seqs[i]),
      before,
      { timeout: STEP_MS },
    );
  });

  // The interop broker's feed (2,000 ticks/s over 50 symbols) brings the
  // seven default names several hundred ticks a second uncapped: the cap
  // binds, and the broker says so in notices the page counts. The rate
  // bound has half again as much room, for a page whose seconds stretch
  // on a loaded machine; uncapped it would be several times over it.
  await step("the watchlist is rate-capped", async () => {
    await page.waitForFunction(
      () => /rate-capped [1-9]/.test(document.getElementById("gaps").title),
      null,
      { timeout: STEP_MS },
    );
    const bound = expected.length * (MAX_RATE + 1) * 1.5;
    for (let i = 0; i < 3; i++) {
      await page.waitForTimeout(1_000);
      const rate = Number((await page.$eval("#rate", (el) => el.textContent)).replace(/\D/g, ""));
      if (!(rate > 0 && rate <= bound)) throw new Error(`the page got ${rate} ticks/s; its cap allows ${bound}`);
    }
  });

  const added = known.find((s) => !expected.includes(s));
  const removed = expected[1];
  const topicsText = () => page.$eval("#topics", (el) => el.textContent.split(/[\s:]+/));

  await step(`add ${added}`, async () => {
    await page.fill("#add-input", added.toLowerCase());
    await page.press("#add-input", "Enter");
    await page.waitForSelector(`#watch-body tr[data-sym="${added}"][data-seq]`, { timeout: STEP_MS });
    await page.waitForFunction((s) => document.getElementById("topics").textContent.split(/[\s:]+/).includes(s), added, {
      timeout: STEP_MS,
    });
  });

  await step(`remove ${removed}`, async () => {
    await page.click(`#watch-body tr[data-sym="${removed}"] td.x button`);
    await page.waitForSelector(`#watch-body tr[data-sym="${removed}"]`, { state: "detached", timeout: STEP_MS });
    await page.waitForFunction((s) => !document.getElementById("topics").textContent.split(/[\s:]+/).includes(s), removed, {
      timeout: STEP_MS,
    });
    const topics = await topicsText();
    if (!topics.includes(added)) throw new Error(`acknowledged topics lost ${added}: ${topics}`);
  });

  await step("firehose ranks symbols", async () => {
    await page.check("#firehose-toggle");
    await page.waitForFunction(() => document.querySelectorAll("#fire-body tr:not([hidden])").length >= 5, null, {
      timeout: STEP_MS,
    });
  });

  await step("latency panel shows numbers", async () => {
    await page.waitForFunction(
      () =>
        ["lat-p50", "lat-p99", "lat-max", "lat-n"].every((id) => /\d/.test(document.getElementById(id).textContent)) &&
        /\d/.test(document.querySelector('#stages-body tr[data-stage="feed_to_receive"] td.num').textContent) &&
        /\d/.test(document.getElementById("counter-ticks_in").textContent),
      null,
      { timeout: STEP_MS },
    );
  });

  const want = [...expected.filter((s) => s !== removed), added];
  await step("watchlist persists across a reload", async () => {
    await page.reload({ waitUntil: "load", timeout: STEP_MS });
    await page.waitForFunction(
      (n) => [...document.querySelectorAll("#watch-body tr")].filter((tr) => tr.dataset.seq).length === n,
      want.length,
      { timeout: STEP_MS },
    );
    const got = await rowSyms(page);
    if (got.join() !== want.join()) throw new Error(`rows ${got} != ${want}`);
    if (!(await page.isChecked("#firehose-toggle"))) throw new Error("firehose switch not restored");
  });

  // Let the chart and sparklines gather some seconds before the picture,
  // and the 10 s latency window move past the page's own start-up.
  await page.waitForTimeout(11_000);
  await step("live after the wait", () =>
    page.waitForFunction(() => document.getElementById("conn").dataset.state === "live", null, { timeout: STEP_MS }),
  );
  await page.screenshot({ path: shot });
}

async function main() {
  if (!base) fail("usage: node dashboard.mjs http://127.0.0.1:PORT [screenshot.png]");
  const browser = await launch([], STEP_MS * 2);
  const errors = [];
  try {
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    const page = await context.newPage();
    page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
    page.on("console", (m) => m.type() === "error" && errors.push(`console: ${m.text()}`));
    await run(page);
  } finally {
    await browser.close();
  }
  if (errors.length) throw new Error(errors.join("; "));
  clearTimeout(deadline);
  console.log("PASS dashboard");
}

main().catch((e) => fail(e.message));
