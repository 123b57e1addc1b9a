// The clerk's console: one hearing at a time, one large control, live previews and
// meters, loud alarms. Everything it offers is derived from the hearing's state, so
// it never offers what the server would refuse (the server refuses it anyway).
"use strict";

const $ = (id) => document.getElementById(id);

const ui = {
  status: null, // latest /status push
  hearing: null, // the current hearing's JSON
  hearings: [], // today's hearings
  selectedId: sessionStorage.getItem("courtrec.selected"),
  acked: new Set(), // alarm keys the clerk silenced
  alarmSounding: false,
  busy: false,
  stopStream: null,
  previewUrls: {},
};
window.courtrecConsole = ui; // for the browser tests

function canAct() {
  return api.user && (api.user.role === "clerk" || api.user.role === "admin");
}

function fmtDuration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const p = (n) => String(n).padStart(2, "0");
  return `${p(Math.floor(s / 3600))}:${p(Math.floor(s / 60) % 60)}:${p(s % 60)}`;
}

function isToday(iso) {
  if (!iso) return false;
  const d = new Date(iso);
  const n = new Date();
  return d.getFullYear() === n.getFullYear() && d.getMonth() === n.getMonth() && d.getDate() === n.getDate();
}

function localTime(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleTimeString(i18n.lang === "zh" ? "zh-CN" : "en-GB", {
    hour: "2-digit",
    minute: "2-digit",
  });
}

function showError(el, e) {
  el.textContent = e ? e.message || String(e) : "";
  el.hidden = !e;
}

// ---------- login ----------

function showLogin() {
  if (ui.stopStream) ui.stopStream();
  ui.stopStream = null;
  $("console-view").hidden = true;
  $("login-view").hidden = false;
  $("logout").hidden = true;
  $("alarms").hidden = true;
  stopAlarmSound();
  $("login-user").focus();
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    await api.login($("login-user").value.trim(), $("login-pass").value);
    $("login-pass").value = "";
    showError($("login-error"), null);
    start();
  } catch (e) {
    showError($("login-error"), e.status === 401 ? new Error(i18n.t("bad_login")) : e);
  }
});

$("logout").addEventListener("click", () => {
  api.logout();
  showLogin();
});

$("lang").addEventListener("click", () => {
  i18n.set(i18n.lang === "zh" ? "en" : "zh");
  render();
});

// Any 401 means the token expired: back to the login.
async function guarded(fn) {
  try {
    return await fn();
  } catch (e) {
    if (e.status === 401) showLogin();
    throw e;
  }
}

// ---------- data ----------

function startStream() {
  if (ui.stopStream) ui.stopStream();
  ui.stopStream = api.stream(
    "/status/events",
    (name, data) => {
      if (name !== "status") return;
      const prev = ui.status;
      ui.status = JSON.parse(data);
      const ph = prev && prev.hearing;
      const nh = ui.status.hearing;
      // The active hearing changed state (another console, a recovery): refresh.
      if ((ph && ph.id) !== (nh && nh.id) || (ph && ph.state) !== (nh && nh.state)) {
        refreshHearing();
        refreshList();
      }
      renderLive();
    },
    (e) => {
      if (e.status === 401) return showLogin();
      setTimeout(() => api.token && startStream(), 1000);
    },
  );
}

async function refreshList() {
  try {
    const r = await guarded(() => api.call("GET", "/hearings"));
    const room = ui.status && ui.status.courtroom.id;
    ui.hearings = r.hearings
      .filter((h) => !room || h.courtroom === room)
      .filter(
        (h) =>
          h.state === "open" ||
          h.state === "recess" ||
          isToday(h.scheduled_start) ||
          isToday(h.created_at) ||
          isToday(h.closed_at),
      )
      .sort((a, b) => (a.scheduled_start || a.created_at).localeCompare(b.scheduled_start || b.created_at));
    renderList();
  } catch (e) {
    /* shown by the next successful refresh */
  }
}

function currentId() {
  const active = ui.status && ui.status.hearing;
  return active ? active.id : ui.selectedId;
}

async function refreshHearing() {
  const id = currentId();
  if (!id) {
    ui.hearing = null;
    render();
    return;
  }
  try {
    ui.hearing = await guarded(() => api.call("GET", "/hearings/" + encodeURIComponent(id)));
  } catch (e) {
    if (e.status === 404) {
      ui.selectedId = null;
      sessionStorage.removeItem("courtrec.selected");
      ui.hearing = null;
    }
  }
  render();
}

function select(id) {
  ui.selectedId = id;
  sessionStorage.setItem("courtrec.selected", id);
  refreshHearing();
  renderList();
}

// ---------- actions ----------

async function act(path, body) {
  if (ui.busy) return;
  ui.busy = true;
  render();
  try {
    ui.hearing = await guarded(() => api.call("POST", `/hearings/${encodeURIComponent(ui.hearing.id)}/${path}`, body));
    showError($("action-error"), null);
  } catch (e) {
    showError($("action-error"), e);
    await refreshHearing();
  } finally {
    ui.busy = false;
    render();
    refreshList();
  }
}

$("main-action").addEventListener("click", () => {
  const h = ui.hearing;
  if (!h) return;
  if (h.state === "scheduled") act("open");
  else if (h.state === "open") {
    $("recess-note").value = "";
    $("recess-dialog").showModal();
  } else if (h.state === "recess") act("resume");
});

$("recess-dialog").addEventListener("close", () => {
  if ($("recess-dialog").returnValue !== "ok") return;
  const reason = new FormData($("recess-form")).get("reason");
  const note = $("recess-note").value.trim();
  act("recess", note ? { reason, note } : { reason });
});

$("live-cut").addEventListener("click", () => act("livestream/cut"));
$("live-restore").addEventListener("click", () => act("livestream/restore"));

$("close-action").addEventListener("click", () => $("close-dialog").showModal());
$("close-dialog").addEventListener("close", () => {
  if ($("close-dialog").returnValue === "ok") act("close");
});

$("mark-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const text = $("mark-text").value.trim();
  if (!text || !ui.hearing) return;
  try {
    ui.hearing = await guarded(() =>
      api.call("POST", `/hearings/${encodeURIComponent(ui.hearing.id)}/marks`, { text }),
    );
    $("mark-text").value = "";
    showError($("action-error"), null);
  } catch (e) {
    showError($("action-error"), e);
  }
  render();
});

$("create-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const case_number = $("new-case").value.trim();
  const title = $("new-title").value.trim();
  if (!case_number || !title) return showError($("create-error"), new Error(i18n.t("required")));
  const body = { case_number, title, visibility: $("new-visibility").value };
  if ($("new-start").value) body.scheduled_start = new Date($("new-start").value).toISOString();
  try {
    const h = await guarded(() => api.call("POST", "/hearings", body));
    $("new-case").value = "";
    $("new-title").value = "";
    showError($("create-error"), null);
    $("new-hearing").open = false;
    await refreshList();
    select(h.id);
  } catch (e) {
    showError($("create-error"), e);
  }
});

// ---------- alarms and their sound ----------

let audioCtx = null;
let beepTimer = null;

function beep() {
  try {
    audioCtx = audioCtx || new AudioContext();
    const o = audioCtx.createOscillator();
    const g = audioCtx.createGain();
    o.frequency.value = 880;
    g.gain.value = 0.25;
    o.connect(g).connect(audioCtx.destination);
    o.start();
    o.stop(audioCtx.currentTime + 0.25);
  } catch (e) {
    /* no audio device: the banner still shows */
  }
}

function startAlarmSound() {
  if (beepTimer) return;
  beep();
  beepTimer = setInterval(beep, 1500);
  ui.alarmSounding = true;
}

function stopAlarmSound() {
  clearInterval(beepTimer);
  beepTimer = null;
  ui.alarmSounding = false;
}

$("alarm-ack").addEventListener("click", () => {
  for (const a of (ui.status && ui.status.alarms) || []) ui.acked.add(a.key);
  stopAlarmSound();
});

function renderAlarms() {
  const alarms = (ui.status && ui.status.alarms) || [];
  const box = $("alarms");
  box.hidden = alarms.length === 0;
  box.classList.toggle("warning", alarms.length > 0 && alarms.every((a) => a.severity !== "critical"));
  const list = $("alarm-list");
  const html = alarms.map((a) => {
    const msg = i18n.lang === "zh" ? a.message_zh : a.message;
    const action = i18n.lang === "zh" ? a.action_zh : a.action;
    return `<li data-key="${esc(a.key)}"><span class="msg">${esc(msg)}</span><span class="action">${esc(action)}</span></li>`;
  });
  if (list.innerHTML !== html.join("")) list.innerHTML = html.join("");
  const unacked = alarms.some((a) => a.severity === "critical" && !ui.acked.has(a.key));
  if (unacked) startAlarmSound();
  else stopAlarmSound();
  // Forget silenced alarms that cleared, so they sound again if they come back.
  for (const k of [...ui.acked]) if (!alarms.some((a) => a.key === k)) ui.acked.delete(k);
}

function esc(s) {
  return String(s == null ? "" : s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// ---------- rendering ----------

function render() {
  i18n.apply();
  const h = ui.hearing;
  const st = ui.status;
  const active = st && st.hearing;
  if (st) $("courtroom-name").textContent = st.courtroom.name;
  const state = h ? h.state : "none";
  $("state-word").textContent = i18n.t("state_" + state);
  $("state-word").dataset.state = state;
  $("hearing-title").textContent = h ? `${h.case_number} · ${h.title}` : "";

  const main = $("main-action");
  const otherOpen = active && h && active.id !== h.id;
  const label = { scheduled: "open_action", open: "recess_action", recess: "resume_action" }[state];
  main.hidden = !label || !canAct();
  if (label) main.textContent = i18n.t(label);
  main.dataset.action = label || "";
  main.classList.toggle("go", state === "scheduled" || state === "recess");
  main.disabled = ui.busy || !!otherOpen;
  if (otherOpen) showError($("action-error"), new Error(i18n.t("other_open", { id: active.id })));
  $("close-action").hidden = !canAct() || !(state === "open" || state === "recess");
  $("close-action").disabled = ui.busy;
  $("mark-form").hidden = !canAct() || !(state === "open" || state === "recess");
  $("new-hearing").hidden = !canAct();
  // Livestream controls appear only for hearings a judge approved for streaming.
  const live = h && h.livestream;
  $("livestream").hidden = !(live && live.approved);
  if (live && live.approved) {
    const word = !live.streaming ? "live_waiting" : live.paused ? "live_paused" : "live_on";
    let text = i18n.t(word);
    if (live.viewers != null && live.streaming) text += " · " + i18n.t("live_viewers", { n: live.viewers });
    $("live-state").textContent = text;
    $("live-state").dataset.state = word;
    $("live-cut").hidden = !live.streaming || live.cut;
    $("live-restore").hidden = !live.cut;
  }

  const ev = $("events");
  const items = ((h && h.events) || []).slice().reverse().map((e) => {
    const t = e.media_time_ms != null ? fmtDuration(e.media_time_ms) : localTime(e.wall_time);
    const extra = [e.reason ? i18n.t("reason_" + e.reason) : "", i18n.eventText(e), e.source ? `(${e.source})` : ""]
      .filter(Boolean)
      .join(" · ");
    return `<li data-kind="${esc(e.kind)}"><span class="t">${esc(t)}</span><span class="k">${esc(i18n.t("ev_" + e.kind))}</span>${esc(extra)}</li>`;
  });
  ev.innerHTML = items.join("");
  renderList();
  renderLive();
}

function renderList() {
  const cur = currentId();
  const active = ui.status && ui.status.hearing;
  $("hearing-list").innerHTML = ui.hearings
    .map((h) => {
      const isCur = h.id === cur;
      const when = localTime(h.scheduled_start || h.created_at);
      const btn =
        isCur || (active && active.id !== h.id)
          ? `<span class="badge">${esc(isCur ? i18n.t("current") : "")}</span>`
          : `<button class="small" type="button" data-select="${esc(h.id)}">${esc(i18n.t("select"))}</button>`;
      return `<li class="${isCur ? "current" : ""}" data-id="${esc(h.id)}"><div><div class="case">${esc(h.case_number)}</div><div class="sub">${esc(when)} · ${esc(h.title)} · ${esc(i18n.t("state_" + h.state))}</div></div>${btn}</li>`;
    })
    .join("");
  $("no-hearings").hidden = ui.hearings.length > 0;
}

$("hearing-list").addEventListener("click", (ev) => {
  const id = ev.target.dataset && ev.target.dataset.select;
  if (id) select(id);
});

function renderLive() {
  const st = ui.status;
  if (!st) return;
  renderAlarms();
  const h = ui.hearing;
  const active = st.hearing;
  // "Recording" only while the live status and the hearing's own latest state (what
  // the server answered the clerk's last action) both say so: it goes off at the
  // moment a recess is answered, not at the next status tick.
  const recording = !!(
    st.recording && active && h && active.id === h.id && active.state === "open" && h.state === "open"
  );
  $("rec-indicator").classList.toggle("on", recording);
  $("rec-indicator").classList.toggle("off", !recording);
  $("rec-word").textContent = i18n.t(recording ? "rec" : "not_recording");
  $("elapsed").textContent = active && h && active.id === h.id ? fmtDuration(active.media_time_ms || 0) : "00:00:00";
  if (st.disk && st.disk.free_bytes != null) {
    $("disk").textContent = `${i18n.t("disk")} ${(st.disk.free_bytes / 1e9).toFixed(1)} GB`;
  }
  // The court's archive: "up to date", or how far behind, in words.
  const rep = st.replication;
  $("archive").hidden = !rep;
  if (rep) {
    $("archive").textContent =
      rep.objects_pending === 0
        ? i18n.t("archive_up_to_date")
        : i18n.t("archive_behind", { s: Math.round(rep.lag_s), n: rep.objects_pending });
    $("archive").classList.toggle("warn", rep.state !== "ok");
  }
  const cams = st.sources.filter((s) => s.kind === "camera");
  const mics = st.sources.filter((s) => s.kind === "microphone");
  const camBox = $("cameras");
  if (camBox.children.length !== cams.length) {
    camBox.innerHTML = cams
      .map(
        (c) =>
          `<div class="cam" data-id="${esc(c.id)}"><img alt="" data-preview="${esc(c.id)}"><div class="label"><span>${esc(c.label || c.id)}</span><span class="badge"></span></div></div>`,
      )
      .join("");
  }
  for (const c of cams) {
    const b = camBox.querySelector(`[data-id="${CSS.escape(c.id)}"] .badge`);
    if (b) {
      b.textContent = i18n.t("source_" + c.state);
      b.className = "badge " + c.state;
    }
  }
  const micBox = $("mics");
  if (micBox.children.length !== mics.length) {
    micBox.innerHTML = mics
      .map(
        (m) =>
          `<div class="mic" data-id="${esc(m.id)}"><div class="label"><span>${esc(m.label || m.id)}</span><span class="badge"></span></div><div class="meter"><div class="rms"></div><div class="peak"></div></div></div>`,
      )
      .join("");
  }
  const pct = (db) => (db == null ? 0 : Math.max(0, Math.min(100, ((db + 60) / 60) * 100)));
  for (const m of mics) {
    const el = micBox.querySelector(`[data-id="${CSS.escape(m.id)}"]`);
    if (!el) continue;
    el.querySelector(".rms").style.width = pct(m.rms_dbfs).toFixed(1) + "%";
    el.querySelector(".peak").style.left = pct(m.peak_dbfs).toFixed(1) + "%";
    el.dataset.peak = m.peak_dbfs == null ? "" : m.peak_dbfs.toFixed(1);
    const b = el.querySelector(".badge");
    b.textContent = i18n.t("source_" + m.state);
    b.className = "badge " + m.state;
  }
}

// Preview stills: fetched with the token, twice a second.
async function refreshPreviews() {
  if (!api.token || $("console-view").hidden) return;
  const imgs = document.querySelectorAll("img[data-preview]");
  await Promise.all(
    [...imgs].map(async (img) => {
      const id = img.dataset.preview;
      try {
        const blob = await api.blob("/previews/" + encodeURIComponent(id));
        const url = URL.createObjectURL(blob);
        img.src = url;
        if (ui.previewUrls[id]) URL.revokeObjectURL(ui.previewUrls[id]);
        ui.previewUrls[id] = url;
      } catch (e) {
        /* not yet available */
      }
    }),
  );
}

function tickClock() {
  $("clock").textContent = new Date().toLocaleTimeString(i18n.lang === "zh" ? "zh-CN" : "en-GB");
}

// ---------- start ----------

function prefillStart() {
  const d = new Date(Date.now() + 15 * 60000);
  d.setSeconds(0, 0);
  const p = (n) => String(n).padStart(2, "0");
  $("new-start").value = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

async function start() {
  $("login-view").hidden = true;
  $("console-view").hidden = false;
  $("logout").hidden = false;
  prefillStart();
  try {
    ui.status = await guarded(() => api.call("GET", "/status"));
  } catch (e) {
    return;
  }
  startStream();
  await refreshList();
  await refreshHearing();
}

i18n.apply();
tickClock();
setInterval(tickClock, 1000);
setInterval(refreshPreviews, 500);
setInterval(() => api.token && !$("console-view").hidden && refreshList(), 10000);
setInterval(() => api.token && !$("console-view").hidden && !ui.busy && refreshHearing(), 3000);
if (api.token) start();
else showLogin();
