// The public page: the court's announcements of public hearings, and a player for
// the ones streamed live now (WHEP: one POST of an SDP offer, the answer back).
"use strict";

const $ = (id) => document.getElementById(id);
const pub = { list: [], pc: null, session: null, watching: null };
window.courtrecLive = pub; // for the browser tests

function esc(s) {
  return String(s == null ? "" : s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function refresh() {
  try {
    const r = await fetch("/api/v1/public/hearings");
    pub.list = (await r.json()).hearings;
  } catch (e) {
    return;
  }
  render();
  // The hearing we watch stopped being streamed: say so plainly.
  const w = pub.watching && pub.list.find((h) => h.id === pub.watching);
  if (pub.watching && (!w || !w.live)) {
    stop();
    $("player-state").textContent = i18n.t("not_streamed");
    $("player-box").hidden = false;
  } else if (w) {
    $("player-state").textContent = i18n.t(w.paused ? "stream_paused" : "live_now");
  }
}

function render() {
  i18n.apply();
  const rows = pub.list.map((h) => {
    const when = h.scheduled_start
      ? new Date(h.scheduled_start).toLocaleString(i18n.lang === "zh" ? "zh-CN" : "en-GB", {
          month: "2-digit",
          day: "2-digit",
          hour: "2-digit",
          minute: "2-digit",
        })
      : "";
    const action = h.live
      ? `<button class="primary" type="button" data-watch="${esc(h.id)}">${esc(i18n.t("watch"))}</button>`
      : `<span class="muted">${esc(i18n.t(h.state === "scheduled" ? "not_started" : "not_streamed"))}</span>`;
    return `<tr data-id="${esc(h.id)}"><td>${esc(when)}</td><td>${esc(h.case_number)}</td><td>${esc(h.title)}</td><td>${esc(h.courtroom)}</td><td>${action}</td></tr>`;
  });
  document.querySelector("#schedule tbody").innerHTML = rows.join("");
  $("no-schedule").hidden = rows.length > 0;
}

function stop() {
  if (pub.pc) pub.pc.close();
  if (pub.session) fetch(pub.session, { method: "DELETE" }).catch(() => {});
  pub.pc = null;
  pub.session = null;
  pub.watching = null;
  $("player").srcObject = null;
}

async function watch(id) {
  stop();
  const h = pub.list.find((x) => x.id === id);
  if (!h || !h.whep_url) return;
  $("player-box").hidden = false;
  $("now-case").textContent = `${h.case_number} · ${h.title}`;
  $("player-state").textContent = i18n.t("connecting");
  const pc = new RTCPeerConnection();
  pub.pc = pc;
  pub.watching = id;
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const stream = new MediaStream();
  pc.ontrack = (ev) => {
    stream.addTrack(ev.track);
    $("player").srcObject = stream;
  };
  await pc.setLocalDescription(await pc.createOffer());
  // Gather first: the answer carries the server's candidates, the offer ours.
  await new Promise((res) => {
    if (pc.iceGatheringState === "complete") return res();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && res();
    setTimeout(res, 2000);
  });
  const r = await fetch(h.whep_url, {
    method: "POST",
    headers: { "content-type": "application/sdp" },
    body: pc.localDescription.sdp,
  });
  if (r.status !== 201) {
    $("player-state").textContent = r.status === 503 ? i18n.t("too_many") : i18n.t("not_streamed");
    stop();
    return;
  }
  pub.session = r.headers.get("location");
  await pc.setRemoteDescription({ type: "answer", sdp: await r.text() });
  $("player-state").textContent = i18n.t(h.paused ? "stream_paused" : "live_now");
}

document.querySelector("#schedule").addEventListener("click", (ev) => {
  const id = ev.target.dataset && ev.target.dataset.watch;
  if (id) watch(id);
});
$("lang").addEventListener("click", () => {
  i18n.set(i18n.lang === "zh" ? "en" : "zh");
  render();
});
window.addEventListener("pagehide", stop);
refresh();
setInterval(refresh, 3000);
