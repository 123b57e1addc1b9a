// What every browser test shares: Debian's Chromium started headless with the flags
// this closed network needs, a 1366x768 page whose script errors and CSP violations
// fail the test, and
// `check`, which prints each passed step and throws on the first failed one.
import { chromium } from "playwright-core";

export function check(cond, what) {
  if (!cond) throw new Error("FAILED: " + what);
  console.error("ok - " + what);
}

export async function openPage(timeoutMs, pageOptions = {}) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
      "--autoplay-policy=no-user-gesture-required",
    ],
  });
  const page = await browser.newPage({ viewport: { width: 1366, height: 768 }, ...pageOptions });
  page.on("pageerror", (e) => {
    console.error("page error: " + e.message);
    process.exitCode = 1;
  });
  // The pages run under a strict Content-Security-Policy: anything it blocks (an
  // inline style or script, a resource from elsewhere) fails the test.
  page.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy/i.test(m.text())) {
      console.error("CSP violation: " + m.text());
      process.exitCode = 1;
    }
  });
  page.setDefaultTimeout(timeoutMs);
  return { browser, page };
}

// Polls `fn` (async) every `everyMs` until it returns a truthy value or `timeoutMs`
// passes; returns its last value. For conditions a page's own waits cannot watch.
export async function until(fn, timeoutMs, everyMs = 250) {
  const end = Date.now() + timeoutMs;
  let v = await fn();
  while (!v && Date.now() < end) {
    await new Promise((r) => setTimeout(r, everyMs));
    v = await fn();
  }
  return v;
}
