// Drives hearing review in headless Chromium: anonymous (nothing), a judge (search,
// play, seek to a mark, switch camera, solo a microphone, export a selection), a
// party with an access code (that hearing only). Run by tests/review.rs.
// Env: BASE_URL, SHOTS, CASE_PART, HEARING_ID, MARK_AT_S (the mark's position from the
// start of the recording), CODE.
import { check, openPage } from "./lib.mjs";
import fs from "node:fs";
import path from "node:path";

const { BASE_URL, SHOTS, CASE_PART, HEARING_ID, MARK_AT_S, CODE } = process.env;
fs.mkdirSync(SHOTS, { recursive: true });

const { browser, page } = await openPage(20000, { acceptDownloads: true });

async function shots(name) {
  for (const lang of ["zh", "en"]) {
    await page.evaluate((l) => {
      i18n.set(l);
      renderAll();
    }, lang);
    await page.screenshot({ path: path.join(SHOTS, `${name}-${lang}.png`) });
  }
  await page.evaluate(() => {
    i18n.set("zh");
    renderAll();
  });
}

const media = (id) =>
  page.evaluate((id) => {
    const v = document.getElementById(id);
    const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : null;
    return {
      t: v.currentTime,
      frames: q ? q.totalVideoFrames : 0,
      audioBytes: v.webkitAudioDecodedByteCount || 0,
      muted: v.muted,
      paused: v.paused,
    };
  }, id);

try {
  // Anonymous: nothing of the archive.
  await page.goto(BASE_URL + "/review");
  check(await page.isVisible("#login-form"), "anonymous visitors see only the login");
  const anon = await page.evaluate(async () => (await fetch("/api/v1/hearings")).status);
  check(anon === 401, "and the API gives them nothing");
  await shots("01-anonymous");

  // A judge finds the hearing by part of its case number.
  await page.fill("#login-user", "judge");
  await page.fill("#login-pass", "demo");
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#search-view:not([hidden])");
  await page.fill("#s-case", CASE_PART);
  await page.click("#search-form button");
  await page.waitForSelector(`#results tr[data-id="${HEARING_ID}"]`);
  // The list shown at login holds that hearing too: wait for the search's own answer.
  await page
    .waitForFunction(() => document.querySelectorAll("#results tbody tr").length === 1, null, { timeout: 15000 })
    .catch(() => {});
  check((await page.$$("#results tbody tr")).length === 1, "one hearing matches the partial case number");
  check(
    await page.evaluate(() => document.querySelector("#results .integrity").classList.contains("verified")),
    "the results show the integrity verdict",
  );
  await shots("02-search");

  // Play the composite.
  await page.click(`#results tr[data-id="${HEARING_ID}"]`);
  await page.waitForSelector("#hearing-view:not([hidden])");
  await page.waitForFunction(() => window.courtrecReview.fragments.length > 0);
  await page.click("#play");
  await page.waitForFunction(() => document.getElementById("v-composite").currentTime > 1.0, null, { timeout: 30000 });
  let c = await media("v-composite");
  check(c.frames > 5, `the composite plays (${c.frames} frames decoded)`);
  check(!(await page.textContent("#wall-time")).includes("—"), "the wall-clock time of the frame is shown");

  // The clock step is told in plain words, in the page's language.
  const stepText = await page.evaluate(() => {
    const li = document.querySelector("#h-events li[data-kind=clock_step]");
    return li ? [li.textContent, i18n.t("ev_clock_step"), i18n.t("clock_step_text", { s: "-10 min 0.0 s" })] : null;
  });
  check(
    stepText && stepText[0].includes(stepText[1]) && stepText[0].includes(stepText[2]),
    `the clock step is in the hearing's log (${stepText && stepText[0]})`,
  );

  // Seek to the clerk's mark (after the clock was set back: placed by media time).
  await page.click("#h-events li[data-kind=mark]");
  await page.waitForTimeout(300);
  c = await media("v-composite");
  const want = parseFloat(MARK_AT_S);
  check(Math.abs(c.t - want) < 0.6, `seeking to the mark lands at ${c.t.toFixed(2)} s (mark at ${want.toFixed(2)} s)`);
  const before = c.frames;
  await page.waitForTimeout(1500);
  c = await media("v-composite");
  check(c.frames > before && !c.paused, "and plays on from there");

  // Another camera beside it keeps the time.
  await page.selectOption("#camera-select", "cam2");
  await page.waitForTimeout(2500);
  const cam = await media("v-camera");
  c = await media("v-composite");
  check(cam.frames > 0, `the second camera plays (${cam.frames} frames)`);
  check(Math.abs(cam.t - c.t) < 0.5, `switching camera keeps the time (${cam.t.toFixed(2)} vs ${c.t.toFixed(2)})`);

  // One microphone alone.
  await page.click('.mic-row[data-name="mic2"] .solo');
  await page.waitForTimeout(1500);
  const m2 = await media("a-mic2");
  const m1 = await media("a-mic1");
  c = await media("v-composite");
  check(!m2.muted && m1.muted && c.muted, "solo: only that microphone is heard");
  check(m2.audioBytes > 0 && Math.abs(m2.t - c.t) < 0.5, "and it plays in sync");
  await shots("03-playing-solo");

  // Keyboard: pause and step back.
  await page.keyboard.press("Space");
  await page.waitForTimeout(200);
  c = await media("v-composite");
  check(c.paused, "space pauses");
  await page.keyboard.press("ArrowLeft");
  await page.waitForTimeout(300);
  const back = await media("v-composite");
  check(Math.abs(c.t - 5 - back.t) < 0.6 || back.t < 0.6, "arrow left steps back 5 s");

  // Export a selection.
  await page.click("#set-in");
  await page.keyboard.press("ArrowRight");
  await page.waitForTimeout(300);
  await page.click("#set-out");
  // The page saves the bundle as a download (a blob link it clicks): the file that
  // reaches the judge's disk is what is checked.
  const downloaded = page.waitForEvent("download", { timeout: 60000 });
  await page.click("#export-sel");
  await page.waitForSelector("#export-link", { timeout: 30000 });
  const size = fs.statSync(await (await downloaded).path()).size;
  check(size > 10000, `a selection is exported and downloaded (${size} bytes of tar)`);

  // A party with an access code sees that hearing alone.
  await page.click("#logout");
  await page.fill("#login-code", CODE);
  await page.click("#code-login");
  await page.waitForSelector("#search-view:not([hidden])");
  await page.waitForSelector(`#results tr[data-id="${HEARING_ID}"]`);
  check((await page.$$("#results tbody tr")).length === 1, "a party sees only its hearing");
  await shots("04-party");
  console.log(JSON.stringify({ ok: true }));
} catch (e) {
  await page.screenshot({ path: path.join(SHOTS, "failure.png") }).catch(() => {});
  console.error(e.stack || String(e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
