//! Who may see what of the archive, party access codes, grants for sealed hearings,
//! and the audit log's endpoints. Every decision about a hearing goes through
//! [`may_see`] (its metadata) or [`may_watch`] (its recordings), so the policy is in
//! one place:
//!
//! | caller | metadata | recordings |
//! |---|---|---|
//! | admin | every hearing | every hearing but sealed ones |
//! | clerk | their courtroom's hearings | the same, but sealed ones |
//! | judge | every hearing but sealed ones, and sealed ones granted to them | the same |
//! | party (access code) | its hearing | its hearing |
//! | nobody logged in | nothing (401) | nothing |

use super::auth::Caller;
use super::{ApiError, ApiJson, AppState, blocking};
use crate::archive::audit::AuditEvent;
use crate::archive::index::{AccessCodeDoc, HearingDoc};
use crate::archive::records::Visibility;
use crate::config::UserRole::{self, Admin, Clerk, Judge, Party};
use crate::err;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

fn denied(what: &str) -> ApiError {
    ApiError(err!(PermissionDenied, "you may not {what}"))
}

fn granted(st: &AppState, caller: &Caller, doc: &HearingDoc) -> bool {
    st.index.has_grant(&doc.id, &caller.user).unwrap_or(false)
}

/// May `caller` see this hearing's metadata (and find it in searches)?
pub fn may_see(st: &AppState, caller: &Caller, doc: &HearingDoc) -> bool {
    may_see_id(
        st,
        caller,
        &doc.id,
        doc.meta.visibility,
        &doc.meta.courtroom,
    )
}

/// [`may_see`] from a search summary.
pub fn may_see_summary(
    st: &AppState,
    caller: &Caller,
    s: &crate::archive::index::HearingSummary,
) -> bool {
    may_see_id(st, caller, &s.id, s.visibility, &s.courtroom)
}

fn may_see_id(
    st: &AppState,
    caller: &Caller,
    id: &str,
    visibility: Visibility,
    courtroom: &str,
) -> bool {
    match caller.role {
        Admin => true,
        // A box may hold copies of other courtrooms' hearings: a clerk sees their own.
        Clerk => courtroom == st.cfg.courtroom.id,
        Judge => {
            visibility != Visibility::Sealed
                || st.index.has_grant(id, &caller.user).unwrap_or(false)
        }
        Party => caller.hearing.as_deref() == Some(id),
    }
}

/// May `caller` watch, download or export this hearing's recordings?
pub fn may_watch(st: &AppState, caller: &Caller, doc: &HearingDoc) -> Result<(), ApiError> {
    let ok = match caller.role {
        Admin => doc.meta.visibility != Visibility::Sealed,
        Clerk => {
            doc.meta.visibility != Visibility::Sealed && doc.meta.courtroom == st.cfg.courtroom.id
        }
        Judge => doc.meta.visibility != Visibility::Sealed || granted(st, caller, doc),
        Party => caller.hearing.as_deref() == Some(doc.id.as_str()),
    };
    if ok {
        Ok(())
    } else if !may_see(st, caller, doc) {
        // Do not confirm that a hearing one may not see exists.
        Err(ApiError(err!(NotFound, "no hearing with id '{}'", doc.id)))
    } else {
        Err(denied(&format!(
            "watch hearing {}: it is sealed; an admin can grant a judge access",
            doc.id
        )))
    }
}

/// Hearing ids are made by us; anything else cannot name a hearing (and must never
/// reach the filesystem as a path).
pub(crate) fn valid_id(id: &str) -> Result<(), ApiError> {
    // A box's ids, or the archive server's qualified ones (`room-7~<id>`).
    let ok = (!id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        || (id.len() <= 300 && crate::store::layout::unqualify(id).is_some());
    if ok {
        Ok(())
    } else {
        Err(ApiError(err!(NotFound, "no hearing with id '{id}'")))
    }
}

/// The hearing, if `caller` may see it (404 otherwise, like a hearing that does not exist).
pub fn visible(st: &AppState, caller: &Caller, id: &str) -> Result<HearingDoc, ApiError> {
    valid_id(id)?;
    let doc = st.catalog.get(id)?;
    if may_see(st, caller, &doc) {
        Ok(doc)
    } else {
        Err(ApiError(err!(NotFound, "no hearing with id '{id}'")))
    }
}

/// Records an action in the audit log; the action is refused (503) if it cannot be
/// logged, and the `audit_failed` alarm says so until an entry is written again.
pub fn audit(
    st: &AppState,
    caller: &Caller,
    hearing: Option<&str>,
    action: &str,
    detail: String,
) -> Result<(), ApiError> {
    let sign_now =
        caller.role == Admin && !matches!(action, "view" | "playlist" | "segment" | "search");
    record_audit(
        st,
        AuditEvent {
            user: caller.user.clone(),
            role: caller.role.as_str().into(),
            hearing: hearing.map(str::to_string),
            action: action.into(),
            detail,
            remote: caller.remote.clone(),
            sign_now,
        },
    )
}

/// Appends to the audit log (see [`audit`]), for callers with or without a login.
/// The append ends with an fdatasync: on the runtime's worker it runs as blocking
/// work, so other requests go on meanwhile.
pub fn record_audit(st: &AppState, ev: AuditEvent) -> Result<(), ApiError> {
    let on_worker = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    let res = if on_worker {
        tokio::task::block_in_place(|| st.audit.record(ev))
    } else {
        st.audit.record(ev)
    };
    match res {
        Ok(()) => {
            st.alarms.clear("audit_failed");
            Ok(())
        }
        Err(e) => {
            st.alarms.raise(crate::monitor::audit_alarm(&e.msg));
            Err(ApiError(crate::err!(
                Unavailable,
                "the audit log cannot be written, so nothing is served until it can; court IT has been alerted"
            )))
        }
    }
}

/// How long a repeated view or search by the same login is not audited again (the
/// console polls its hearing every few seconds).
const REPEAT_WINDOW: std::time::Duration = std::time::Duration::from_secs(300);

/// [`audit`], but once per login, hearing and action within [`REPEAT_WINDOW`].
pub fn audit_once(
    st: &AppState,
    caller: &Caller,
    hearing: Option<&str>,
    action: &str,
    detail: String,
) -> Result<(), ApiError> {
    let key = format!(
        "{}|{}|{action}|{detail}",
        caller.token_sha256,
        hearing.unwrap_or("")
    );
    let now = std::time::Instant::now();
    let seen = st.recent_audits.lock().is_ok_and(|mut m| {
        if m.len() > 10_000 {
            m.retain(|_, t| now.duration_since(*t) < REPEAT_WINDOW);
        }
        match m.get(&key) {
            Some(t) if now.duration_since(*t) < REPEAT_WINDOW => true,
            _ => {
                m.insert(key.clone(), now);
                false
            }
        }
    });
    if seen {
        return Ok(());
    }
    let res = audit(st, caller, hearing, action, detail);
    if res.is_err()
        && let Ok(mut m) = st.recent_audits.lock()
    {
        m.remove(&key);
    }
    res
}

/// Letters that cannot be mistaken for one another when read out or typed.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";

fn new_code() -> String {
    let raw: Vec<u8> = (0..12)
        .map(|_| CODE_ALPHABET[rand::random_range(0..CODE_ALPHABET.len())])
        .collect();
    let s = String::from_utf8_lossy(&raw).to_string();
    format!("{}-{}-{}", &s[0..4], &s[4..8], &s[8..12])
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueBody {
    /// Who it is for, e.g. "plaintiff's lawyer".
    pub label: String,
    /// How long it works (default 72 h, at most 30 days).
    pub valid_hours: Option<f64>,
}

fn code_view(c: &AccessCodeDoc) -> serde_json::Value {
    serde_json::json!({
        "code_id": c.code_id, "hearing_id": c.hearing_id, "label": c.label,
        "issued_by": c.issued_by, "issued_at": c.issued_at,
        "expires_at": crate::archive::records::format_wall(
            chrono::DateTime::from_timestamp(c.expires_unix, 0).unwrap_or_default()),
        "revoked": c.revoked,
    })
}

/// Judges and clerks (and admins) issue codes for hearings whose recordings they may watch.
fn may_issue(st: &AppState, caller: &Caller, doc: &HearingDoc) -> Result<(), ApiError> {
    caller.require(&[Judge, Clerk, Admin], "issue access codes")?;
    may_watch(st, caller, doc)
}

/// `POST /api/v1/hearings/{id}/access-codes` → 201 with the code (shown only here).
pub async fn issue_code(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<IssueBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let doc = visible(&st, &caller, &id)?;
    may_issue(&st, &caller, &doc)?;
    let label = body.label.trim().to_string();
    if label.is_empty() || label.chars().count() > 100 {
        return Err(ApiError(err!(
            Invalid,
            "field `label`: say who the code is for (1-100 characters)"
        )));
    }
    let hours = body.valid_hours.unwrap_or(72.0);
    if !(hours > 0.0 && hours <= 720.0) {
        return Err(ApiError(err!(
            Invalid,
            "field `valid_hours`: more than 0 and at most 720"
        )));
    }
    let code = new_code();
    let doc = AccessCodeDoc {
        code_id: hex::encode(rand::random::<[u8; 8]>()),
        hearing_id: id.clone(),
        code_sha256: crate::archive::sha256_hex(super::auth::normalize_code(&code).as_bytes()),
        label,
        issued_by: caller.user.clone(),
        issued_at: crate::archive::records::format_wall(chrono::Utc::now()),
        expires_unix: chrono::Utc::now().timestamp() + (hours * 3600.0).round().max(1.0) as i64,
        revoked: false,
    };
    st.index.put_access_code(&doc)?;
    audit(
        &st,
        &caller,
        Some(&id),
        "access_code_issued",
        format!("{} for {}", doc.code_id, doc.label),
    )?;
    let mut v = code_view(&doc);
    v["code"] = serde_json::Value::String(code);
    Ok((StatusCode::CREATED, Json(v)))
}

/// `GET /api/v1/hearings/{id}/access-codes`: the codes (never the codes themselves).
pub async fn list_codes(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let doc = visible(&st, &caller, &id)?;
    may_issue(&st, &caller, &doc)?;
    let codes: Vec<_> = st.index.access_codes(&id)?.iter().map(code_view).collect();
    Ok(Json(serde_json::json!({ "access_codes": codes })))
}

/// `DELETE /api/v1/hearings/{id}/access-codes/{code_id}`: revokes it and ends the
/// tokens made with it.
pub async fn revoke_code(
    State(st): State<AppState>,
    caller: Caller,
    Path((id, code_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let doc = visible(&st, &caller, &id)?;
    may_issue(&st, &caller, &doc)?;
    let mut code = st
        .index
        .access_code(&code_id)?
        .filter(|c| c.hearing_id == id)
        .ok_or_else(|| ApiError(err!(NotFound, "no access code {code_id} for hearing {id}")))?;
    code.revoked = true;
    st.index.put_access_code(&code)?;
    audit(&st, &caller, Some(&id), "access_code_revoked", code_id)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    pub user: String,
}

/// `POST /api/v1/hearings/{id}/grants` (admin): lets a judge view a sealed hearing.
pub async fn grant(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<GrantBody>,
) -> Result<StatusCode, ApiError> {
    caller.require(&[Admin], "grant access to sealed hearings")?;
    visible(&st, &caller, &id)?;
    match st.index.user(&body.user)? {
        Some(u) if u.role == UserRole::Judge => {}
        Some(_) => return Err(ApiError(err!(Invalid, "user {} is not a judge", body.user))),
        None => return Err(ApiError(err!(Invalid, "no user {}", body.user))),
    }
    st.index.put_grant(&id, &body.user, &caller.user)?;
    audit(&st, &caller, Some(&id), "grant", body.user)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/v1/hearings/{id}/grants/{user}` (admin).
pub async fn revoke_grant(
    State(st): State<AppState>,
    caller: Caller,
    Path((id, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require(&[Admin], "revoke access to sealed hearings")?;
    visible(&st, &caller, &id)?;
    if !st.index.remove_grant(&id, &user)? {
        return Err(ApiError(err!(
            NotFound,
            "{user} has no grant for hearing {id}"
        )));
    }
    audit(&st, &caller, Some(&id), "grant_revoked", user)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub hearing: Option<String>,
    /// The last `limit` matching entries (default 1000).
    pub limit: Option<usize>,
}

/// `GET /api/v1/audit` (admin): entries, newest last, and whether the chain is intact.
pub async fn read_audit(
    State(st): State<AppState>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(&[Admin], "read the audit log")?;
    audit(
        &st,
        &caller,
        q.hearing.as_deref(),
        "audit_read",
        String::new(),
    )?;
    let path = st.audit.path().to_path_buf();
    let (entries, broken) = blocking(move || crate::archive::audit::read(&path)).await?;
    let mut v: Vec<_> = entries
        .into_iter()
        .filter(|e| {
            q.hearing
                .as_deref()
                .is_none_or(|h| e.hearing.as_deref() == Some(h))
        })
        .collect();
    let limit = q.limit.unwrap_or(1000);
    if v.len() > limit {
        v.drain(..v.len() - limit);
    }
    Ok(Json(serde_json::json!({
        "entries": v, "chain_intact": broken.is_none(), "chain_problem": broken,
    })))
}

/// `GET /api/v1/audit/export` (admin): the whole log file, to keep elsewhere.
pub async fn export_audit(
    State(st): State<AppState>,
    caller: Caller,
) -> Result<axum::response::Response, ApiError> {
    caller.require(&[Admin], "export the audit log")?;
    audit(&st, &caller, None, "audit_export", String::new())?;
    let bytes = tokio::fs::read(st.audit.path()).await.unwrap_or_default();
    axum::response::Response::builder()
        .header("content-type", "application/jsonl")
        .header(
            "content-disposition",
            "attachment; filename=\"courtrec-audit.jsonl\"",
        )
        .body(axum::body::Body::from(bytes))
        .map_err(|e| ApiError(err!(Internal, "building the response: {e}")))
}

/// `GET /api/v1/users` (admin): the accounts (never their password hashes).
pub async fn list_users(
    State(st): State<AppState>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(&[Admin], "manage users")?;
    let users: Vec<_> = st
        .index
        .users()?
        .into_iter()
        .map(|u| serde_json::json!({"name": u.name, "role": u.role}))
        .collect();
    Ok(Json(serde_json::json!({ "users": users })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserBody {
    pub name: String,
    pub role: UserRole,
    pub password: String,
}

/// `POST /api/v1/users` (admin): creates an account, or sets a new role and password.
pub async fn put_user(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<UserBody>,
) -> Result<StatusCode, ApiError> {
    caller.require(&[Admin], "manage users")?;
    let name = body.name.trim().to_string();
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_alphanumeric() || "-_.".contains(c))
    {
        return Err(ApiError(err!(
            Invalid,
            "field `name`: 1-64 letters, digits, '-', '_' or '.'"
        )));
    }
    if body.role == Party {
        return Err(ApiError(err!(
            Invalid,
            "field `role`: parties log in with access codes (use clerk, judge or admin)"
        )));
    }
    if body.password.chars().count() < 8 {
        return Err(ApiError(err!(
            Invalid,
            "field `password`: at least 8 characters"
        )));
    }
    let index = st.index.clone();
    let role = body.role;
    let password = body.password;
    let n = name.clone();
    // A changed role or password ends the account's logins at once (a demoted admin
    // keeps no admin token); the account's generation makes any stray token stale.
    let (before, grants) = blocking(move || {
        let before = index.user(&n)?;
        let generation = before.as_ref().map_or(0, |u| u.generation + 1);
        index.put_user(&crate::archive::index::UserDoc {
            name: n.clone(),
            role,
            password_hash: super::auth::hash_password(&password)?,
            generation,
        })?;
        index.end_logins(&n)?;
        let grants = index.grants_of(&n)?;
        index.flush()?;
        Ok((before, grants))
    })
    .await?;
    let what = match &before {
        None => format!("{name} created as {}", role.as_str()),
        Some(b) if b.role != role => {
            format!(
                "{name}: role {} -> {}, password reset",
                b.role.as_str(),
                role.as_str()
            )
        }
        Some(_) => format!("{name}: password reset"),
    };
    audit(&st, &caller, None, "user_saved", what.clone())?;
    if before.is_some() && !grants.is_empty() {
        // Whoever resets such a password can watch sealed hearings as that judge.
        audit(
            &st,
            &caller,
            None,
            "sealed_access_account_reset",
            format!("{what}; grants on {}", grants.join(", ")),
        )?;
        st.alarms.raise_for(
            crate::monitor::account_reset_alarm(&name, &caller.user, grants.len()),
            std::time::Duration::from_secs(24 * 3600),
        );
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/v1/users/{name}` (admin): removes the account and ends its logins.
pub async fn delete_user(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(&[Admin], "manage users")?;
    if name == caller.user {
        return Err(ApiError(err!(
            Conflict,
            "an admin cannot remove their own account"
        )));
    }
    if !st.index.remove_user(&name)? {
        return Err(ApiError(err!(NotFound, "no user {name}")));
    }
    audit(&st, &caller, None, "user_removed", name)?;
    Ok(StatusCode::NO_CONTENT)
}
