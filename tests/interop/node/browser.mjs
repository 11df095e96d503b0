// Headless Chromium for the dashboard tests (Debian's chromium through
// playwright-core; CHROMIUM overrides the path).

import { chromium } from "playwright-core";

/** Launches Chromium with `extra` flags besides the usual quiet headless ones. */
export function launch(extra = [], timeout = 20_000) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      ...extra,
    ],
    timeout,
  });
}
