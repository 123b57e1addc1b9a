// The public page in headless Chromium: a live hearing plays over WHEP (H.264 frames
// decoded and audio packets received, from getStats), several viewers at once, the
// clerk's cut shows the paused picture, and a withdrawn approval drops the viewers.
// Run by tests/live.rs. Env: BASE_URL, SHOTS, HEARING_ID. Prints {"ok": true}.
import { check, openPage, until } from "./lib.mjs";
import fs from "node:fs";
import path from "node:path";

const { BASE_URL, SHOTS, HEARING_ID } = process.env;
fs.mkdirSync(SHOTS, { recursive: true });
const { browser, page } = await openPage(20000);

// Calls the API as a staff member (the page itself never logs in).
async function staff(user, method, p) {
  return page.evaluate(
    async ([user, method, p]) => {
      const r = await fetch("/api/v1/login", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ username: user, password: "demo" }),
      });
      const t = (await r.json()).token;
      const x = await fetch("/api/v1" + p, { method, headers: { authorization: "Bearer " + t } });
      return { status: x.status, body: await x.json().catch(() => null) };
    },
    [user, method, p],
  );
}

const stats = () =>
  page.evaluate(async () => {
    const out = { frames: 0, audioPackets: 0, codec: "" };
    if (!window.courtrecLive.pc) return out;
    const s = await window.courtrecLive.pc.getStats();
    const codecs = {};
    s.forEach((r) => r.type === "codec" && (codecs[r.id] = r.mimeType));
    s.forEach((r) => {
      if (r.type === "inbound-rtp" && r.kind === "video") {
        out.frames = r.framesDecoded || 0;
        out.codec = codecs[r.codecId] || "";
      }
      if (r.type === "inbound-rtp" && r.kind === "audio") out.audioPackets = r.packetsReceived || 0;
    });
    return out;
  });

// Mean brightness of the current video frame (0-255).
const brightness = () =>
  page.evaluate(() => {
    const v = document.getElementById("player");
    if (!v.videoWidth) return -1;
    const c = document.createElement("canvas");
    c.width = 160;
    c.height = 90;
    const g = c.getContext("2d");
    g.drawImage(v, 0, 0, 160, 90);
    const d = g.getImageData(0, 0, 160, 90).data;
    let sum = 0;
    for (let i = 0; i < d.length; i += 4) sum += (d[i] + d[i + 1] + d[i + 2]) / 3;
    return sum / (d.length / 4);
  });

try {
  await page.goto(BASE_URL + "/live");
  await page.waitForSelector(`#schedule tr[data-id="${HEARING_ID}"] button[data-watch]`);
  check((await page.textContent("#schedule")).includes("民初"), "the schedule lists the public hearing");
  await page.click(`button[data-watch="${HEARING_ID}"]`);
  await page.waitForFunction(() => document.getElementById("player").currentTime > 0.5, null, { timeout: 30000 });
  await page.waitForTimeout(2000);
  let s = await stats();
  check(s.frames > 10 && /h264/i.test(s.codec), `H.264 frames are decoded (${s.frames}, ${s.codec})`);
  let audioDetail = "";
  if (!(s.audioPackets > 10)) {
    // Say whether the capture handed the relay audio, whether the relay sent it, and
    // whether it came later (this once failed when the public mix ran ahead of its
    // clock at start-up: see capture::clocking).
    const sentAudio = () =>
      page.evaluate(async () => {
        const r = await fetch("/api/v1/login", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ username: "admin", password: "demo" }),
        });
        const t = (await r.json()).token;
        const m = await (await fetch("/metrics", { headers: { authorization: "Bearer " + t } })).text();
        const value = (name) => {
          const line = m.split("\n").find((l) => l.includes(name) && l.includes('stream="audio"'));
          return line ? line.trim().split(/\s+/).pop() : "none";
        };
        return `${value("livestream_sent_bytes")} bytes sent of ${value("livestream_capture_packets")} packets from the capture`;
      });
    const before = await sentAudio();
    // Waits up to 8 s for audio to start after all.
    const later = await until(async () => {
      const n = (await stats()).audioPackets;
      return n > 10 && n;
    }, 8000);
    audioDetail = `; within 8 s more: ${later}; the relay's audio: ${before} -> ${await sentAudio()}`;
  }
  check(s.audioPackets > 10, `audio packets arrive (${s.audioPackets}${audioDetail})`);
  const live = await brightness();
  check(live > 40, `the live picture shows the courtroom (brightness ${live.toFixed(0)})`);
  await page.screenshot({ path: path.join(SHOTS, "01-live-zh.png") });

  // Several viewers at once, each with its own session; DELETE ends one, twice is 404.
  const extra = await page.evaluate(async (id) => {
    const out = [];
    for (let i = 0; i < 3; i++) {
      const pc = new RTCPeerConnection();
      pc.addTransceiver("video", { direction: "recvonly" });
      pc.addTransceiver("audio", { direction: "recvonly" });
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise((r) => setTimeout(r, 300));
      const r = await fetch(`/api/v1/hearings/${id}/whep`, {
        method: "POST",
        headers: { "content-type": "application/sdp" },
        body: pc.localDescription.sdp,
      });
      out.push({ status: r.status, location: r.headers.get("location"), type: r.headers.get("content-type") });
      await pc.setRemoteDescription({ type: "answer", sdp: await r.text() });
      (window.extraPcs = window.extraPcs || []).push(pc);
    }
    return out;
  }, HEARING_ID);
  check(extra.every((x) => x.status === 201 && x.location && x.type.startsWith("application/sdp")), "three more viewers get 201, a Location and an SDP answer");
  // Viewers are counted once their connection is up (ICE and DTLS take a moment
  // after the answer, longer on a loaded machine): wait for the browser's side first.
  await page.waitForFunction(
    () => window.extraPcs.every((pc) => pc.connectionState === "connected"),
    null,
    { timeout: 20000 },
  );
  let h = await staff("judge", "GET", `/hearings/${HEARING_ID}`);
  for (let i = 0; i < 20 && h.body.livestream.viewers !== 4; i++) {
    await page.waitForTimeout(250);
    h = await staff("judge", "GET", `/hearings/${HEARING_ID}`);
  }
  check(h.body.livestream.viewers === 4, `four viewers counted (${h.body.livestream.viewers})`);
  const del1 = await page.evaluate(async (l) => (await fetch(l, { method: "DELETE" })).status, extra[0].location);
  const del2 = await page.evaluate(async (l) => (await fetch(l, { method: "DELETE" })).status, extra[0].location);
  check(del1 === 200 && del2 === 404, `DELETE ends a session (${del1}), twice is 404 (${del2})`);
  const patch = await page.evaluate(async (l) => (await fetch(l, { method: "PATCH", headers: { "content-type": "application/trickle-ice-sdpfrag" }, body: "a=end-of-candidates" })).status, extra[1].location);
  check(patch === 405, `trickle PATCH is answered 405 (${patch})`);

  // The clerk cuts: viewers get the paused picture; restore brings the courtroom back.
  check((await staff("clerk", "POST", `/hearings/${HEARING_ID}/livestream/cut`)).status === 200, "clerk cuts");
  await page.waitForFunction(async () => true);
  await page.waitForTimeout(2500);
  const paused = await brightness();
  check(paused < live / 2, `the paused picture replaces the courtroom (brightness ${paused.toFixed(0)})`);
  await page.waitForFunction(() => document.getElementById("player-state").textContent.length > 0);
  await page.screenshot({ path: path.join(SHOTS, "02-paused-zh.png") });
  await staff("clerk", "POST", `/hearings/${HEARING_ID}/livestream/restore`);
  await page.waitForTimeout(2500);
  check((await brightness()) > live / 2, "restored");

  // Approval withdrawn: viewers are dropped and new ones refused.
  check((await staff("judge", "DELETE", `/hearings/${HEARING_ID}/livestream`)).status === 200, "judge withdraws");
  await page.waitForFunction(
    () => !window.courtrecLive.pc && document.getElementById("player-state").textContent.length > 0,
    null,
    { timeout: 15000 },
  );
  const said = await page.evaluate(() => [document.getElementById("player-state").textContent, i18n.t("not_streamed")]);
  check(said[0] === said[1], `the page says the hearing is no longer streamed (${said[0]})`);
  // Dropped: no more media reaches the other viewers (a browser notices the closed
  // connection itself only after its consent checks time out).
  const received = () =>
    page.evaluate(async () => {
      let n = 0;
      for (const pc of window.extraPcs) {
        (await pc.getStats()).forEach((r) => r.type === "inbound-rtp" && (n += r.packetsReceived || 0));
      }
      return n;
    });
  await page.waitForTimeout(1000);
  const n1 = await received();
  await page.waitForTimeout(2000);
  const n2 = await received();
  check(n1 === n2, `the other viewers are dropped: no more packets (${n1} then ${n2})`);
  h = await staff("judge", "GET", `/hearings/${HEARING_ID}`);
  check(h.body.livestream.viewers === 0, "no viewer is counted");
  const again = await page.evaluate(async (id) => {
    const pc = new RTCPeerConnection();
    pc.addTransceiver("video", { direction: "recvonly" });
    await pc.setLocalDescription(await pc.createOffer());
    return (await fetch(`/api/v1/hearings/${id}/whep`, { method: "POST", headers: { "content-type": "application/sdp" }, body: pc.localDescription.sdp })).status;
  }, HEARING_ID);
  check(again === 403, `a new viewer is refused (${again})`);
  await page.screenshot({ path: path.join(SHOTS, "03-withdrawn-zh.png") });
  await page.click("#lang");
  await page.screenshot({ path: path.join(SHOTS, "03-withdrawn-en.png") });
  console.log(JSON.stringify({ ok: true }));
} catch (e) {
  await page.screenshot({ path: path.join(SHOTS, "failure.png") }).catch(() => {});
  console.error(e.stack || String(e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
