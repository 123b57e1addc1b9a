// Drives the clerk's console in headless Chromium through a whole hearing.
// Run by tests/console.rs, which starts the daemon; prints {"hearing_id": ...}.
// Env: BASE_URL, SHOTS (screenshot folder), CAMERA_FILE (a file camera's video, moved
// away to "pull the cable"), CASE_NUMBER.
import { check, openPage } from "./lib.mjs";
import fs from "node:fs";
import path from "node:path";

const BASE = process.env.BASE_URL;
const SHOTS = process.env.SHOTS;
const CAMERA_FILE = process.env.CAMERA_FILE;
const CASE = process.env.CASE_NUMBER;
fs.mkdirSync(SHOTS, { recursive: true });


const { browser, page } = await openPage(15000);

// A screenshot of the current state in Chinese and in English (switched in script, so
// it works with a dialog open too).
async function shots(name) {
  for (const lang of ["zh", "en"]) {
    await page.evaluate((l) => {
      i18n.set(l);
      render();
    }, lang);
    await page.screenshot({ path: path.join(SHOTS, `${name}-${lang}.png`) });
  }
  await page.evaluate(() => {
    i18n.set("zh");
    render();
  });
}

// What the console offers: the main action, and whether close and marks are shown.
async function offered() {
  return page.evaluate(() => ({
    main: document.getElementById("main-action").hidden ? null : document.getElementById("main-action").dataset.action,
    close: !document.getElementById("close-action").hidden,
    mark: !document.getElementById("mark-form").hidden,
    state: document.getElementById("state-word").dataset.state,
  }));
}

async function waitState(state) {
  await page.waitForFunction((s) => document.getElementById("state-word").dataset.state === s, state);
}

async function meterValues(ms) {
  const seen = new Set();
  const end = Date.now() + ms;
  while (Date.now() < end) {
    seen.add(await page.evaluate(() => [...document.querySelectorAll(".mic")].map((m) => m.dataset.peak).join("|")));
    await page.waitForTimeout(100);
  }
  return seen.size;
}

try {
  await page.goto(BASE + "/console");
  check(await page.isVisible("#login-form"), "login form first");
  check((await page.textContent("#login-form button")).includes("登录"), "Chinese by default");
  await shots("01-login");

  // A judge may look but is offered no clerk's action.
  await page.fill("#login-user", "judge");
  await page.fill("#login-pass", "demo");
  await page.click("#login-form button");
  await page.waitForSelector("#console-view:not([hidden])");
  check(await page.isHidden("#new-hearing"), "no create form for a judge");
  await page.click("#logout");

  await page.fill("#login-user", "clerk");
  await page.fill("#login-pass", "wrong");
  await page.click("#login-form button");
  await page.waitForSelector("#login-error:not([hidden])");
  const refusal = await page.evaluate(() => [document.getElementById("login-error").textContent, i18n.t("bad_login")]);
  check(refusal[0].includes(refusal[1]), `a wrong password is refused in plain words (${refusal[0]})`);
  await page.fill("#login-pass", "demo");
  await page.click("#login-form button");
  await page.waitForSelector("#console-view:not([hidden])");

  // Previews and meters are live before any hearing opens.
  await page.waitForFunction(() => document.querySelectorAll("#cameras img").length >= 2);
  // Resolves to how many previews there are once every one has a picture.
  const loaded = await (
    await page.waitForFunction(
      () => {
        const imgs = [...document.querySelectorAll("img[data-preview]")];
        return imgs.every((i) => i.complete && i.naturalWidth > 0) && imgs.length;
      },
      null,
      { timeout: 20000 },
    )
  ).jsonValue();
  check(loaded >= 3, `camera and composite previews load (${loaded} pictures)`);
  check((await meterValues(1500)) >= 4, "microphone meters move (10 updates a second)");
  check((await offered()).main === null, "nothing to do before a hearing is chosen");

  // Create a hearing and select it.
  await page.click("#new-hearing summary");
  await page.fill("#new-case", CASE);
  await page.fill("#new-title", "Li v. Wang (loan dispute)");
  await shots("02-create");
  await page.click("#create-form button[type=submit]");
  await waitState("scheduled");
  check((await page.textContent("#hearing-list")).includes(CASE), "the new hearing is in today's list");
  let o = await offered();
  check(o.main === "open_action" && !o.close && !o.mark, "scheduled: only 'open' is offered");
  check((await page.textContent("#main-action")).includes("开庭并开始录制"), "the control says what will happen");
  await shots("03-scheduled");

  // Open: recording indicator and elapsed time.
  await page.click("#main-action");
  await waitState("open");
  await page.waitForSelector("#rec-indicator.on");
  const t1 = await page.textContent("#elapsed");
  await page.waitForTimeout(2200);
  const t2 = await page.textContent("#elapsed");
  check(t1 !== t2, `elapsed time runs (${t1} -> ${t2})`);
  o = await offered();
  check(o.main === "recess_action" && o.close && o.mark, "open: recess, close and marks are offered");
  check((await meterValues(1000)) >= 3, "meters move while recording");
  await shots("04-recording");

  // Livestream controls appear once a judge approves streaming; the clerk cuts and
  // restores it.
  check(await page.isHidden("#livestream"), "no livestream controls before approval");
  await page.evaluate(async () => {
    const r = await fetch("/api/v1/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "judge", password: "demo" }),
    });
    const t = (await r.json()).token;
    const id = window.courtrecConsole.hearing.id;
    await fetch(`/api/v1/hearings/${id}/livestream`, { method: "POST", headers: { authorization: "Bearer " + t } });
  });
  await page.waitForSelector("#livestream:not([hidden])");
  await page.waitForFunction(() => document.getElementById("live-state").dataset.state === "live_on");
  await page.click("#live-cut");
  await page.waitForFunction(() => document.getElementById("live-state").dataset.state === "live_paused");
  check(await page.isVisible("#live-restore"), "cut: the stream is paused and can be restored");
  await shots("04b-livestream-cut");
  await page.click("#live-restore");
  await page.waitForFunction(() => document.getElementById("live-state").dataset.state === "live_on");
  check(await page.isVisible("#live-cut"), "restored");

  // A mark: type and press Enter.
  await page.fill("#mark-text", "Exhibit 3 shown");
  await page.press("#mark-text", "Enter");
  await page.waitForFunction(() => document.getElementById("events").textContent.includes("Exhibit 3 shown"));
  check((await page.textContent("#events")).includes("Exhibit 3 shown"), "the mark is in the hearing log");

  // Recess with a reason from the rules.
  await page.click("#main-action");
  await page.waitForSelector("#recess-dialog[open]");
  await page.check("input[name=reason][value=non_public_evidence]");
  await page.fill("#recess-note", "trade secret exhibit");
  await shots("05-recess-dialog");
  await page.click("#recess-ok");
  await waitState("recess");
  check(await page.isVisible("#rec-indicator.off"), "not recording in recess");
  o = await offered();
  check(o.main === "resume_action" && o.close, "recess: resume and close are offered, not recess");
  await shots("06-recess");

  await page.click("#main-action");
  await waitState("open");
  await page.waitForSelector("#rec-indicator.on");

  // Pull a camera's cable: a loud alarm that says what to do.
  fs.renameSync(CAMERA_FILE, CAMERA_FILE + ".away");
  await page.waitForFunction(
    () => !document.getElementById("alarms").hidden && document.getElementById("alarm-list").textContent.includes("摄像机"),
    null,
    { timeout: 30000 },
  );
  check(await page.evaluate(() => window.courtrecConsole.alarmSounding), "the alarm sounds");
  check((await page.textContent("#alarm-list")).includes("线缆"), "the alarm says what to do");
  await shots("07-camera-lost");
  await page.click("#alarm-ack");
  check(!(await page.evaluate(() => window.courtrecConsole.alarmSounding)), "the clerk can silence it");
  fs.renameSync(CAMERA_FILE + ".away", CAMERA_FILE);

  // Close, confirmed.
  await page.click("#close-action");
  await page.waitForSelector("#close-dialog[open]");
  await shots("08-close-confirm");
  await page.click("#close-ok");
  await waitState("closed");
  o = await offered();
  check(o.main === null && !o.close && !o.mark, "closed: nothing more is offered");
  await shots("09-closed");

  const id = await page.evaluate(() => window.courtrecConsole.hearing.id);
  console.log(JSON.stringify({ hearing_id: id }));
} catch (e) {
  await page.screenshot({ path: path.join(SHOTS, "failure.png") }).catch(() => {});
  console.error(e.stack || String(e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
