// Hearing review: find a hearing, play the composite with any camera beside it and any
// microphone alone, all in sync; jump to the clerk's marks; see the integrity verdict;
// export the whole hearing or a selection. Players are hls.js over the per-track HLS
// playlists (the token goes in a header, never in a URL).
"use strict";

const $ = (id) => document.getElementById(id);

const rv = {
  hearing: null,
  hls: {}, // element id -> Hls instance
  mics: [], // [{name, label, el}]
  solo: null,
  muted: new Set(),
  separate: false,
  fragments: [], // composite fragments: {start, duration, pdt (ms)}
  selIn: null,
  selOut: null,
};
window.courtrecReview = rv; // for the browser tests

function fmt(s) {
  s = Math.max(0, Math.floor(s));
  const p = (n) => String(n).padStart(2, "0");
  return `${p(Math.floor(s / 3600))}:${p(Math.floor(s / 60) % 60)}:${p(s % 60)}`;
}
function esc(s) {
  return String(s == null ? "" : s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
function showError(e) {
  const el = $("login-error");
  el.textContent = e ? e.message : "";
  el.hidden = !e;
}

// ---------- login ----------

function show(view) {
  for (const v of ["login-view", "search-view", "hearing-view"]) $(v).hidden = v !== view;
  $("logout").hidden = view === "login-view";
  $("who").textContent = api.user ? `${api.user.name} (${api.user.role})` : "";
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    await api.login($("login-user").value.trim(), $("login-pass").value);
    showError(null);
    enter();
  } catch (e) {
    showError(e);
  }
});

$("code-login").addEventListener("click", async () => {
  try {
    const r = await fetch("/api/v1/login/code", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ code: $("login-code").value }),
    });
    const b = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(b.message || "HTTP " + r.status);
    api.token = b.token;
    api.user = { name: b.user, role: b.role };
    sessionStorage.setItem("courtrec.token", api.token);
    sessionStorage.setItem("courtrec.user", JSON.stringify(api.user));
    showError(null);
    enter();
  } catch (e) {
    showError(e);
  }
});

$("logout").addEventListener("click", () => {
  stopPlayers();
  api.logout();
  show("login-view");
});

$("lang").addEventListener("click", () => {
  i18n.set(i18n.lang === "zh" ? "en" : "zh");
  renderAll();
});

async function guarded(fn) {
  try {
    return await fn();
  } catch (e) {
    if (e.status === 401) {
      api.logout();
      show("login-view");
    }
    throw e;
  }
}

// ---------- search ----------

function integrityOf(h) {
  if (!h.integrity) return "unchecked";
  if (h.integrity.stale && h.integrity.status === "verified") return "stale";
  return h.integrity.status;
}

// Where a hearing was recorded: on the archive server, the courtroom folder it was
// found in (its id is `room-7~<id>`); on a box, its courtroom.
function placeOf(h) {
  const i = h.id.lastIndexOf("~");
  return i > 0 ? h.id.slice(0, i).replaceAll("~", "/") : h.courtroom;
}

// "Replicated and verified", on hearings a box sends to the court's archive.
function renderArchive(h) {
  const el = $("h-archive");
  const r = h.replication;
  el.hidden = !r && !h.released && !h.hold;
  if (h.released) {
    el.className = "integrity verified";
    el.textContent = i18n.t("archive_released");
  } else if (r) {
    el.className = "integrity " + (r.state === "verified" ? "verified" : "unsealed");
    el.textContent = i18n.t("replication_" + r.state);
  }
  if (h.hold) el.textContent += " · " + i18n.t("on_hold");
}

// Only the newest search's answer is shown: the list shown at login and a search
// typed right after can answer out of order.
let searchSeq = 0;
async function search() {
  const seq = ++searchSeq;
  const q = new URLSearchParams();
  if ($("s-case").value.trim()) q.set("case_number", $("s-case").value.trim());
  if ($("s-q").value.trim()) q.set("q", $("s-q").value.trim());
  if ($("s-from").value) q.set("from", $("s-from").value);
  if ($("s-to").value) q.set("to", $("s-to").value);
  const r = await guarded(() => api.call("GET", "/hearings?" + q.toString()));
  if (seq !== searchSeq) return;
  const rows = r.hearings.map((h) => {
    // The composite's duration, or (a courtroom without one) the longest track's.
    const dur =
      h.tracks.find((t) => t.name === "composite") ||
      h.tracks.reduce((a, t) => (!a || t.duration_ms > a.duration_ms ? t : a), null);
    const st = i18n.t("state_" + h.state) + (h.interrupted ? i18n.t("state_interrupted") : "");
    const integ = integrityOf(h);
    return `<tr data-id="${esc(h.id)}"><td>${esc(h.case_number)}</td><td>${esc(h.title)}</td>
      <td>${esc(placeOf(h))}</td>
      <td>${esc((h.scheduled_start || h.created_at).slice(0, 10))}</td><td>${esc(st)}</td>
      <td>${fmt((dur ? dur.duration_ms : 0) / 1000)}</td><td>${h.recess_count}</td><td>${h.marks_count}</td>
      <td><span class="integrity ${integ}">${esc(i18n.t("integrity_" + integ))}</span></td></tr>`;
  });
  document.querySelector("#results tbody").innerHTML = rows.join("");
  $("no-results").hidden = rows.length > 0;
}

$("search-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  search().catch(() => {});
});
document.querySelector("#results tbody").addEventListener("click", (ev) => {
  const tr = ev.target.closest("tr");
  if (tr) openHearing(tr.dataset.id);
});
$("back").addEventListener("click", () => {
  stopPlayers();
  show("search-view");
  search().catch(() => {});
});

// ---------- players ----------

function attach(el, url) {
  if (rv.hls[el.id]) rv.hls[el.id].destroy();
  const hls = new Hls({
    xhrSetup: (xhr) => xhr.setRequestHeader("Authorization", "Bearer " + api.token),
    maxBufferLength: 20,
    // A hearing still being recorded plays from its beginning, not its live edge.
    startPosition: 0,
  });
  hls.loadSource(url);
  hls.attachMedia(el);
  rv.hls[el.id] = hls;
  return hls;
}

function stopPlayers() {
  for (const h of Object.values(rv.hls)) h.destroy();
  rv.hls = {};
  document.querySelectorAll("audio.mic-audio").forEach((a) => a.remove());
  rv.mics = [];
}

const master = () => $("v-composite");

function slaves() {
  return [$("v-camera"), ...rv.mics.map((m) => m.el)];
}

// Followers track the composite: same play state, same time (within 0.15 s).
function syncFollowers() {
  const m = master();
  for (const s of slaves()) {
    if (!s.src && !s.currentSrc) continue;
    if (Math.abs(s.currentTime - m.currentTime) > 0.15) s.currentTime = m.currentTime;
    if (!m.paused && s.paused) s.play().catch(() => {});
    if (m.paused && !s.paused) s.pause();
  }
  updatePosition();
}

function applyAudio() {
  const mixed = !rv.solo && !rv.separate;
  master().muted = !mixed;
  for (const m of rv.mics) {
    // The mix is the composite's sound; without a composite, every microphone plays.
    m.el.muted = rv.solo ? m.name !== rv.solo : (mixed && rv.hasMix) || rv.muted.has(m.name);
  }
  const soloMic = rv.mics.find((m) => m.name === rv.solo);
  $("audio-mode").textContent = rv.solo
    ? i18n.t("audio_solo", { name: soloMic ? soloMic.label : rv.solo })
    : i18n.t(mixed ? "audio_mix" : "audio_separate");
  $("mic-list").querySelectorAll(".mic-row").forEach((row) => {
    const solo = row.querySelector(".solo");
    const mute = row.querySelector(".mute");
    solo.textContent = i18n.t("solo");
    mute.textContent = i18n.t("mute");
    solo.classList.toggle("on", rv.solo === row.dataset.name);
    mute.classList.toggle("on", rv.muted.has(row.dataset.name));
  });
}

$("mic-list").addEventListener("click", (ev) => {
  const row = ev.target.closest(".mic-row");
  if (!row) return;
  const name = row.dataset.name;
  if (ev.target.classList.contains("solo")) {
    rv.solo = rv.solo === name ? null : name;
  } else if (ev.target.classList.contains("mute")) {
    rv.solo = null;
    rv.separate = true;
    if (rv.muted.has(name)) rv.muted.delete(name);
    else rv.muted.add(name);
  }
  applyAudio();
  syncFollowers();
});

$("camera-select").addEventListener("change", () => {
  const t = rv.hearing.tracks.find((x) => x.name === $("camera-select").value);
  const cam = $("v-camera");
  const at = master().currentTime;
  const hls = attach(cam, t.playlist_url);
  hls.once(Hls.Events.MANIFEST_PARSED, () => {
    cam.currentTime = at;
    if (!master().paused) cam.play().catch(() => {});
  });
});

function togglePlay() {
  const m = master();
  if (m.paused) m.play().catch(() => {});
  else m.pause();
}
function seekBy(d) {
  const m = master();
  m.currentTime = Math.max(0, Math.min((m.duration || 0) - 0.1, m.currentTime + d));
}
$("play").addEventListener("click", togglePlay);
$("back5").addEventListener("click", () => seekBy(-5));
$("fwd5").addEventListener("click", () => seekBy(5));
document.addEventListener("keydown", (ev) => {
  if ($("hearing-view").hidden || ev.target.tagName === "INPUT" || ev.target.tagName === "SELECT") return;
  if (ev.key === " " || ev.key === "k") {
    ev.preventDefault();
    togglePlay();
  } else if (ev.key === "ArrowLeft" || ev.key === "j") {
    seekBy(-5);
  } else if (ev.key === "ArrowRight" || ev.key === "l") {
    seekBy(5);
  }
});

// ---------- time: playback position <-> wall clock ----------

function wallAt(t) {
  const f = rv.fragments.find((f) => t >= f.start && t < f.start + f.duration) || rv.fragments[rv.fragments.length - 1];
  if (!f) return null;
  return new Date(f.pdt + (t - f.start) * 1000);
}

// The media time (ms from the open) at a playback position, when the playlist says.
function mediaAt(t) {
  const f = rv.fragments.find((f) => t >= f.start && t < f.start + f.duration) || rv.fragments[rv.fragments.length - 1];
  return f && f.media != null ? f.media + (t - f.start) * 1000 : null;
}

// The playback position of an event: by its media time, which never jumps (its
// wall-clock time does when the box's clock was corrected: clock_step); the next media
// after it, in a recess.
function positionOfEvent(e) {
  if (e.media_time_ms == null || rv.fragments.some((f) => f.media == null)) return positionOf(e.wall_time);
  for (const f of rv.fragments) {
    if (e.media_time_ms < f.media) return f.start;
    if (e.media_time_ms < f.media + f.duration * 1000) return f.start + (e.media_time_ms - f.media) / 1000;
  }
  const last = rv.fragments[rv.fragments.length - 1];
  return last ? last.start + last.duration : 0;
}

// The playback position of a wall-clock instant (the next media after it, in a recess).
function positionOf(wallIso) {
  const w = new Date(wallIso).getTime();
  for (const f of rv.fragments) {
    if (w < f.pdt) return f.start;
    if (w < f.pdt + f.duration * 1000) return f.start + (w - f.pdt) / 1000;
  }
  const last = rv.fragments[rv.fragments.length - 1];
  return last ? last.start + last.duration : 0;
}

// `HH:MM:SS.mmm` from the open, as exports take it.
function fmtMedia(ms) {
  const v = Math.max(0, Math.round(ms));
  const p = (n, w) => String(n).padStart(w, "0");
  return `${p(Math.floor(v / 3600000), 2)}:${p(Math.floor(v / 60000) % 60, 2)}:${p(Math.floor(v / 1000) % 60, 2)}.${p(v % 1000, 3)}`;
}

function updatePosition() {
  const t = master().currentTime || 0;
  $("position").textContent = fmt(t);
  const w = wallAt(t);
  $("wall-time").textContent = w ? w.toLocaleString(i18n.lang === "zh" ? "zh-CN" : "en-GB") : "—";
  const d = master().duration;
  if (d) $("playhead").style.left = ((t / d) * 100).toFixed(2) + "%";
  $("play").textContent = i18n.t(master().paused ? "play" : "pause");
}

function renderTimeline() {
  const d = master().duration;
  const tl = $("timeline");
  tl.querySelectorAll(".ev, .cut").forEach((e) => e.remove());
  if (!d || !rv.hearing) return;
  for (const e of rv.hearing.events) {
    if (["created", "export"].includes(e.kind)) continue;
    const x = positionOfEvent(e);
    const div = document.createElement("div");
    div.className = "ev " + e.kind;
    div.style.left = Math.min(99.5, (x / d) * 100).toFixed(2) + "%";
    div.title = `${i18n.t("ev_" + e.kind)} ${i18n.eventText(e)} ${e.reason ? i18n.t("reason_" + e.reason) : ""}`;
    div.dataset.seek = x;
    tl.appendChild(div);
  }
}

$("timeline").addEventListener("click", (ev) => {
  const m = master();
  if (ev.target.dataset.seek) {
    m.currentTime = parseFloat(ev.target.dataset.seek);
  } else if (m.duration) {
    const r = $("timeline").getBoundingClientRect();
    m.currentTime = ((ev.clientX - r.left) / r.width) * m.duration;
  }
  syncFollowers();
});

function renderEvents() {
  const h = rv.hearing;
  $("h-events").innerHTML = h.events
    .filter((e) => e.kind !== "created")
    .map((e) => {
      const extra = [e.reason ? i18n.t("reason_" + e.reason) : "", i18n.eventText(e), e.source ? `(${e.source})` : ""]
        .filter(Boolean)
        .join(" · ");
      const when = new Date(e.wall_time).toLocaleTimeString(i18n.lang === "zh" ? "zh-CN" : "en-GB");
      return `<li data-kind="${esc(e.kind)}" data-wall="${esc(e.wall_time)}" data-media="${e.media_time_ms ?? ""}"><span class="t">${esc(when)}</span><span class="k">${esc(i18n.t("ev_" + e.kind))}</span>${esc(extra)}</li>`;
    })
    .join("");
}

$("h-events").addEventListener("click", (ev) => {
  const li = ev.target.closest("li");
  if (!li || !rv.fragments.length) return;
  master().currentTime = positionOfEvent({ wall_time: li.dataset.wall, media_time_ms: li.dataset.media === "" ? null : Number(li.dataset.media) });
  syncFollowers();
});

// ---------- integrity and export ----------

function renderBadge() {
  const h = rv.hearing;
  const s = integrityOf(h);
  const b = $("badge");
  b.className = "badge-button integrity " + s;
  b.textContent = i18n.t("integrity_" + s);
  b.title = h.integrity ? h.integrity.result : "";
}

$("badge").addEventListener("click", async () => {
  const box = $("integrity-detail");
  box.hidden = false;
  box.textContent = "…";
  try {
    const r = await guarded(() => api.call("POST", `/hearings/${encodeURIComponent(rv.hearing.id)}/verify`));
    box.textContent = [
      r.result,
      `signer: ${r.signer_fingerprint || "?"}`,
      ...r.findings.map((f) => `[${f.problem || "note"}] ${f.file ? f.file + ": " : ""}${f.message}`),
    ].join("\n");
    rv.hearing = await guarded(() => api.call("GET", `/hearings/${encodeURIComponent(rv.hearing.id)}`));
    renderBadge();
  } catch (e) {
    box.textContent = e.message;
  }
});

function renderSelection() {
  const p = (x) => (x == null ? "—" : fmt(x));
  $("selection").textContent = `${p(rv.selIn)} → ${p(rv.selOut)}`;
  $("export-sel").disabled = rv.selIn == null || rv.selOut == null || rv.selOut <= rv.selIn;
}
$("set-in").addEventListener("click", () => {
  rv.selIn = master().currentTime;
  renderSelection();
});
$("set-out").addEventListener("click", () => {
  rv.selOut = master().currentTime;
  renderSelection();
});

// Exports are made in the box's low-priority queue: poll the state and show the
// progress until it is done, then download the bundle.
async function waitExport(job) {
  while (job.state === "queued" || job.state === "running") {
    const pct = Math.round((job.progress || 0) * 100);
    $("export-result").textContent = i18n.t(job.state === "queued" ? "export_queued" : "export_running") + ` ${pct} %`;
    $("export-progress").hidden = false;
    $("export-progress").value = job.progress || 0;
    await new Promise((r) => setTimeout(r, 500));
    job = await api.call("GET", `/exports/${encodeURIComponent(job.id)}`, undefined, { accept: "application/json" });
  }
  $("export-progress").hidden = true;
  if (job.state !== "done") throw new Error(job.error || i18n.t("export_failed"));
  return job;
}

async function doExport(body) {
  $("export-result").textContent = "…";
  try {
    const queued = await guarded(() => api.call("POST", `/hearings/${encodeURIComponent(rv.hearing.id)}/exports`, body));
    const r = await waitExport(queued);
    rv.lastExport = r;
    const blob = await api.blob(r.download.replace("/api/v1", ""));
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = r.export_id + ".tar";
    a.id = "export-link";
    a.textContent = a.download;
    $("export-result").textContent = i18n.t("exported") + " ";
    $("export-result").appendChild(a);
    a.click();
  } catch (e) {
    $("export-result").textContent = e.message;
  }
}
$("export-all").addEventListener("click", () => doExport({}));
$("export-sel").addEventListener("click", () => {
  const tracks = [
    ...new Set(
      [rv.hasMix ? "composite" : null, $("camera-select").value, ...rv.mics.map((m) => m.name)].filter(Boolean),
    ),
  ];
  // Times from the open when the playlist gives media times (a range in wall-clock
  // times is ambiguous across a clock set back).
  const open = rv.hearing.events.find((e) => e.kind === "open");
  const at = (t) => {
    const m = mediaAt(t);
    return m == null || !open ? wallAt(t).toISOString() : fmtMedia(m - open.media_time_ms);
  };
  doExport({
    from: at(rv.selIn),
    to: at(rv.selOut),
    tracks: [...new Set(tracks)],
  });
});

// ---------- a hearing ----------

async function openHearing(id) {
  stopPlayers();
  const h = await guarded(() => api.call("GET", `/hearings/${encodeURIComponent(id)}`));
  rv.hearing = h;
  rv.solo = null;
  rv.muted = new Set();
  rv.separate = false;
  rv.selIn = rv.selOut = null;
  show("hearing-view");
  $("h-case").textContent = h.case_number;
  $("h-title").textContent = h.title;
  renderArchive(h);
  $("integrity-detail").hidden = true;
  $("export-result").textContent = "";
  const cams = h.tracks.filter((t) => t.kind === "video");
  const mics = h.tracks.filter((t) => t.kind === "audio");
  // The main picture: the composite, or (a courtroom recorded without one) the first
  // camera, whose timeline the other tracks follow the same way.
  const comp = h.tracks.find((t) => t.name === "composite");
  rv.hasMix = Boolean(comp);
  const main = comp || cams[0] || mics[0];
  if (!main) return;
  const hls = attach(master(), main.playlist_url);
  hls.on(Hls.Events.LEVEL_LOADED, (_, data) => {
    rv.fragments = data.details.fragments.map((f) => {
      const tag = (f.tagList || []).find((t) => t[0] === "COURTREC-MEDIA-MS");
      return { start: f.start, duration: f.duration, pdt: f.programDateTime, media: tag ? Number(tag[1]) : null };
    });
  });
  $("camera-select").innerHTML = cams
    .map((c) => `<option value="${esc(c.name)}">${esc(c.label || c.name)}</option>`)
    .join("");
  if (cams.length) attach($("v-camera"), cams[0].playlist_url);
  rv.mics = mics.map((m) => {
    const el = document.createElement("audio");
    el.className = "mic-audio";
    el.id = "a-" + m.name;
    el.muted = true;
    document.body.appendChild(el);
    attach(el, m.playlist_url);
    return { name: m.name, label: m.label || m.name, el };
  });
  $("mic-list").innerHTML = rv.mics
    .map(
      (m) =>
        `<div class="mic-row" data-name="${esc(m.name)}"><span class="name">${esc(m.label)}</span><button class="small solo" type="button">${esc(i18n.t("solo"))}</button><button class="small mute" type="button">${esc(i18n.t("mute"))}</button></div>`,
    )
    .join("");
  applyAudio();
  renderBadge();
  renderEvents();
  renderSelection();
  updatePosition();
}

const m0 = $("v-composite");
m0.addEventListener("play", syncFollowers);
m0.addEventListener("pause", syncFollowers);
m0.addEventListener("seeked", syncFollowers);
m0.addEventListener("durationchange", renderTimeline);
m0.addEventListener("timeupdate", updatePosition);
setInterval(() => {
  if (!$("hearing-view").hidden) syncFollowers();
}, 250);

function renderAll() {
  i18n.apply();
  if (!$("hearing-view").hidden && rv.hearing) {
    renderBadge();
    renderEvents();
    renderTimeline();
    applyAudio();
    updatePosition();
  } else if (!$("search-view").hidden) {
    search().catch(() => {});
  }
}

function enter() {
  show("search-view");
  search().catch(() => {});
}

i18n.apply();
if (api.token) enter();
else show("login-view");
