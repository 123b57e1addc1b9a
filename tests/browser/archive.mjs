// Drives the archive server's pages in headless Chromium: a judge finds a hearing of
// two courtrooms by case number, tells them apart by courtroom, plays one from the
// archive; court IT sees the courtrooms on the fleet page. Run by tests/archive_server.rs.
// Env: BASE_URL, SHOTS, CASE_PART, HEARING_ID (qualified), ROOMS (comma-separated).
import { check, openPage } from "./lib.mjs";
import fs from "node:fs";
import path from "node:path";

const { BASE_URL, SHOTS, CASE_PART, HEARING_ID, ROOMS } = process.env;
fs.mkdirSync(SHOTS, { recursive: true });
const { browser, page } = await openPage(20000);

try {
  await page.goto(BASE_URL + "/review");
  await page.fill("#login-user", "judge");
  await page.fill("#login-pass", "demo");
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#search-view:not([hidden])");
  await page.fill("#s-case", CASE_PART);
  await page.click("#search-form button");
  // The list shown at login has the hearing too: wait for the search's own answer
  // (every row of the case searched for) before reading the rows.
  await page.waitForFunction(
    ([id, part]) => {
      const rows = [...document.querySelectorAll("#results tbody tr")];
      return rows.some((r) => r.dataset.id === id) && rows.every((r) => r.cells[0].textContent.includes(part));
    },
    [HEARING_ID, CASE_PART],
    { timeout: 20000 },
  );
  const places = await page.$$eval("#results tbody tr td:nth-child(3)", (tds) => tds.map((t) => t.textContent).sort());
  check(JSON.stringify(places) === JSON.stringify(ROOMS.split(",").sort()), `each is shown with its courtroom: ${places}`);
  await page.screenshot({ path: path.join(SHOTS, "01-search.png") });

  await page.click(`#results tr[data-id="${HEARING_ID}"]`);
  await page.waitForSelector("#hearing-view:not([hidden])");
  await page.waitForFunction(() => window.courtrecReview.fragments.length > 0);
  await page.click("#play");
  await page.waitForFunction(() => document.getElementById("v-composite").currentTime > 1.0, null, { timeout: 30000 });
  const frames = await page.evaluate(() => document.getElementById("v-composite").getVideoPlaybackQuality().totalVideoFrames);
  check(frames > 5, `the composite plays from the archive (${frames} frames decoded)`);
  await page.screenshot({ path: path.join(SHOTS, "02-playing.png") });
  await page.click("#logout");

  await page.goto(BASE_URL + "/fleet");
  await page.fill("#login-user", "admin");
  await page.fill("#login-pass", "demo");
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#fleet tbody tr");
  const rows = await page.$$eval("#fleet tbody tr", (trs) => trs.map((t) => t.textContent));
  check(rows.some((r) => r.includes("Courtroom 7")), `the fleet page lists the courtroom: ${rows.length} row(s)`);
  const summary = await page.textContent("#summary");
  check(/\d/.test(summary), `with a summary: ${summary}`);
  await page.screenshot({ path: path.join(SHOTS, "03-fleet.png") });
  console.log(JSON.stringify({ ok: true }));
} catch (e) {
  await page.screenshot({ path: path.join(SHOTS, "failure.png") }).catch(() => {});
  console.error(e.stack || String(e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
