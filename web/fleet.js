// Court IT's fleet page: every courtroom's last heartbeat, and what is wrong, in
// plain words. Refreshed every 10 seconds.
"use strict";

const $ = (id) => document.getElementById(id);
let timer = null;
let last = null;

function esc(s) {
  return String(s == null ? "" : s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function ago(s) {
  if (s == null) return i18n.t("fleet_never");
  if (s < 120) return i18n.t("fleet_seconds_ago", { n: Math.max(0, Math.round(s)) });
  return i18n.t("fleet_minutes_ago", { n: Math.round(s / 60) });
}

function show(view) {
  for (const v of ["login-view", "fleet-view"]) $(v).hidden = v !== view;
  $("logout").hidden = view === "login-view";
  $("who").textContent = api.user ? `${api.user.name} (${api.user.role})` : "";
}

function render() {
  i18n.apply();
  if (!last) return;
  const rows = last.courtrooms.map((c) => {
    const hb = c.heartbeat || {};
    const gb = (b) => (b / 1e9).toFixed(0) + " GB";
    return `<tr class="fleet-${esc(c.state)}">
      <td>${esc(hb.courtroom_name || c.room)}<br><small>${esc(c.room)}</small></td>
      <td><span class="integrity ${c.state === "ok" ? "verified" : "modified"}">${esc(i18n.t("fleet_" + c.state))}</span></td>
      <td>${esc(ago(c.age_s))}</td>
      <td>${esc(hb.recording ? i18n.t("fleet_rec_" + hb.recording) : "")} ${esc(hb.case_number || "")}</td>
      <td>${hb.replication_state ? esc(hb.replication_state + " · " + Math.round(hb.replication_lag_s) + " s") : ""}</td>
      <td>${hb.disk_total_bytes ? esc(gb(hb.disk_free_bytes) + " / " + gb(hb.disk_total_bytes)) : ""}</td>
      <td>${esc(hb.software_version || "")}</td>
      <td>${c.problems.map((p) => `<div class="error">${esc(p)}</div>`).join("")}</td></tr>`;
  });
  $("fleet").querySelector("tbody").innerHTML = rows.join("");
  $("summary").textContent = i18n.t("fleet_summary", {
    n: last.courtrooms.length,
    bad: last.attention,
  });
  const a = last.archive || {};
  $("archive-state").textContent = a.error
    ? i18n.t("fleet_archive_error", { e: a.error })
    : i18n.t("fleet_archive_ok", { at: a.last_scan_at || "-", n: a.hearings || 0 });
}

async function refresh() {
  try {
    last = await api.call("GET", "/fleet");
    render();
  } catch (e) {
    if (e.status === 401 || e.status === 403) {
      api.logout();
      show("login-view");
      if (e.status === 403) {
        $("login-error").textContent = i18n.t("fleet_admins_only");
        $("login-error").hidden = false;
      }
      return;
    }
    $("summary").textContent = String(e.message || e);
  }
}

function enter() {
  show("fleet-view");
  refresh();
  clearInterval(timer);
  timer = setInterval(refresh, 10000);
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    await api.login($("login-user").value.trim(), $("login-pass").value);
    $("login-error").hidden = true;
    enter();
  } catch (e) {
    $("login-error").textContent = i18n.t("bad_login");
    $("login-error").hidden = false;
  }
});
$("logout").addEventListener("click", () => {
  clearInterval(timer);
  api.logout();
  show("login-view");
});
$("lang").addEventListener("click", () => {
  i18n.set(i18n.lang === "zh" ? "en" : "zh");
  render();
});

i18n.apply();
if (api.token) enter();
else show("login-view");
