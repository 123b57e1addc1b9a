//! Hearing endpoints: create, list, get, open, recess, resume, close, marks, exports.

use super::auth::Caller;
use super::{ApiError, ApiJson, AppState, blocking};
use crate::archive::index::HearingDoc;
use crate::archive::records::{EventRecord, RecessReason};
use crate::config::UserRole::{Admin, Clerk, Judge, Party};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

/// A hearing as the API shows it.
#[derive(Debug, Serialize)]
pub struct HearingView {
    pub id: String,
    pub case_number: String,
    pub title: String,
    pub courtroom: String,
    pub visibility: crate::archive::records::Visibility,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_start: Option<String>,
    pub created_at: String,
    pub state: crate::archive::index::HearingState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opened_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<String>,
    /// Media recorded on the composite track (or, without one, the longest) so far.
    pub recorded_ms: u64,
    pub recess_count: usize,
    pub marks_count: usize,
    pub tracks: Vec<TrackView>,
    pub events: Vec<EventView>,
    /// True when a crash interrupted it (it has a `recovery` event).
    pub interrupted: bool,
    /// The last offline verification (`null`: not checked yet).
    pub integrity: Option<IntegrityView>,
    /// The public livestream: approval, exclusions, cut, paused.
    pub livestream: LivestreamView,
    /// Why the box holds this hearing read-only: it no longer matches what the box
    /// signed (absent when it does).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tampered: Option<String>,
    /// Its replication to the court's archive (absent when the box has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication: Option<crate::replication::HearingReplication>,
    /// A legal hold: the box keeps its files whatever the retention.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold: Option<crate::archive::index::HoldDoc>,
    /// The box no longer keeps its files: the archive does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released: Option<crate::archive::index::ReleasedDoc>,
}

/// The livestream as the API shows it.
#[derive(Debug, Serialize)]
pub struct LivestreamView {
    pub approved: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    pub excluded: Vec<String>,
    pub cut: bool,
    /// The public may watch now (approved, public, open or in recess).
    pub streaming: bool,
    /// Viewers see the "stream paused" picture (cut, or a non-public recess).
    pub paused: bool,
    /// Where viewers connect (WHEP), while streaming.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub whep_url: Option<String>,
    /// How many watch now.
    pub viewers: usize,
}

/// The integrity badge: the verifier's verdict on the hearing's folder.
#[derive(Debug, Serialize)]
pub struct IntegrityView {
    /// `verified`, `unsealed`, `modified`, `missing`, `gap`, `bad_signature`, `unusable`.
    pub status: String,
    pub result: String,
    pub checked_at: String,
    /// The hearing changed since (still recording, or exported): check again.
    pub stale: bool,
}

#[derive(Debug, Serialize)]
pub struct TrackView {
    pub name: String,
    pub kind: crate::archive::records::TrackKind,
    pub role: String,
    pub label: String,
    pub segments: u64,
    pub duration_ms: u64,
    pub bytes: u64,
    /// HLS playlist of the track's segments (VOD once closed, EVENT while recorded).
    pub playlist_url: String,
}

#[derive(Debug, Serialize)]
pub struct EventView {
    pub kind: crate::archive::records::EventKind,
    pub wall_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_time_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<RecessReason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap_from_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap_to_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_ms: Option<i64>,
}

impl From<&EventRecord> for EventView {
    fn from(e: &EventRecord) -> Self {
        EventView {
            kind: e.kind,
            wall_time: e.wall_time.clone(),
            media_time_ms: e.media_time_ns.map(|t| t / 1_000_000),
            actor: e.actor.clone(),
            reason: e.reason,
            text: e.text.clone(),
            source: e.source.clone(),
            gap_from_ms: e.gap_from_ns.map(|t| t / 1_000_000),
            gap_to_ms: e.gap_to_ns.map(|t| t / 1_000_000),
            step_ms: e.step_ms,
        }
    }
}

impl From<&HearingDoc> for HearingView {
    fn from(d: &HearingDoc) -> Self {
        use crate::archive::records::EventKind as K;
        let first = |k: K| {
            d.events
                .iter()
                .find(|e| e.kind == k)
                .map(|e| e.wall_time.clone())
        };
        HearingView {
            id: d.id.clone(),
            case_number: d.meta.case_number.clone(),
            title: d.meta.title.clone(),
            courtroom: d.meta.courtroom.clone(),
            visibility: d.meta.visibility,
            scheduled_start: d.meta.scheduled_start.clone(),
            created_at: d.created_at.clone(),
            state: d.state,
            opened_at: first(K::Open),
            closed_at: first(K::Close),
            // The composite's, or (a courtroom without one) the longest track's.
            recorded_ms: d
                .track_stats
                .get("composite")
                .or_else(|| d.track_stats.values().max_by_key(|t| t.duration_ns))
                .map_or(0, |t| t.duration_ns / 1_000_000),
            recess_count: d.events.iter().filter(|e| e.kind == K::Recess).count(),
            marks_count: d.events.iter().filter(|e| e.kind == K::Mark).count(),
            tracks: d
                .meta
                .tracks
                .iter()
                .map(|t| {
                    let s = d.track_stats.get(&t.name).cloned().unwrap_or_default();
                    TrackView {
                        name: t.name.clone(),
                        kind: t.kind,
                        role: t.role.clone(),
                        label: t.label.clone(),
                        segments: s.segments,
                        duration_ms: s.duration_ns / 1_000_000,
                        bytes: s.bytes,
                        playlist_url: format!(
                            "/api/v1/hearings/{}/tracks/{}/index.m3u8",
                            d.id, t.name
                        ),
                    }
                })
                .collect(),
            events: d
                .events
                .iter()
                .filter(|e| e.kind != K::Created)
                .map(EventView::from)
                .collect(),
            interrupted: d.events.iter().any(|e| e.kind == K::Recovery),
            integrity: None,
            tampered: None,
            replication: None,
            hold: None,
            released: None,
            livestream: LivestreamView {
                approved: d.livestream.approved,
                approved_by: d.livestream.approved_by.clone(),
                excluded: d.livestream.excluded.clone(),
                cut: d.livestream.cut,
                streaming: d.streaming(),
                paused: d.streaming() && d.stream_paused(),
                whep_url: d
                    .streaming()
                    .then(|| format!("/api/v1/hearings/{}/whep", d.id)),
                viewers: 0,
            },
        }
    }
}

/// The API's view of a hearing, with its integrity badge.
pub(crate) fn view(st: &AppState, d: &HearingDoc) -> HearingView {
    let mut v = HearingView::from(d);
    if let Some(room) = &st.room {
        v.livestream.viewers = room.relay.viewer_count(Some(&d.id));
    }
    v.tampered = st.index.tampered_reason(&d.id).ok().flatten();
    v.hold = st.index.hold(&d.id).ok().flatten();
    v.released = st.index.released(&d.id).ok().flatten();
    v.replication = st
        .replication
        .as_ref()
        .filter(|_| v.released.is_none())
        .map(|r| r.hearing(&d.id));
    v.integrity = st
        .index
        .integrity(&d.id)
        .ok()
        .flatten()
        .map(|i| IntegrityView {
            stale: i.manifest_entries != d.manifest_entries,
            status: i.status,
            result: i.result,
            checked_at: i.checked_at,
        });
    v
}

/// Body of `POST /api/v1/hearings`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    pub case_number: String,
    pub title: String,
    pub visibility: crate::archive::records::Visibility,
    #[serde(default)]
    pub courtroom: Option<String>,
    /// RFC 3339, e.g. `2026-11-27T09:30:00+08:00`.
    #[serde(default)]
    pub scheduled_start: Option<String>,
}

pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<(StatusCode, Json<HearingView>), ApiError> {
    caller.require(&[Clerk, Admin], "create hearings")?;
    let h = st.room()?.hearings.clone();
    let req = crate::recording::hearings::NewHearing {
        case_number: body.case_number,
        title: body.title,
        visibility: body.visibility,
        courtroom: body.courtroom,
        scheduled_start: body.scheduled_start,
    };
    let doc = blocking(move || h.create(req, &caller.user)).await?;
    Ok((StatusCode::CREATED, Json(view(&st, &doc))))
}

/// Hearings per page of a listing unless `limit` says otherwise, and at most.
const DEFAULT_PAGE: usize = 500;
const MAX_PAGE: usize = 5000;

pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    Query(q): Query<crate::archive::catalog::Search>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(&[Clerk, Judge, Admin, Party], "list hearings")?;
    let mut q = q;
    q.limit = Some(q.limit.unwrap_or(DEFAULT_PAGE).min(MAX_PAGE));
    super::access::audit_once(&st, &caller, None, "search", describe_search(&q))?;
    let (docs, total) = st
        .catalog
        .search_page(&q, |s| super::access::may_see_summary(&st, &caller, s))?;
    let views: Vec<HearingView> = docs.iter().map(|d| view(&st, d)).collect();
    Ok(Json(
        serde_json::json!({ "hearings": views, "total": total }),
    ))
}

/// A search, as the audit log records it.
fn describe_search(q: &crate::archive::catalog::Search) -> String {
    let mut parts = Vec::new();
    for (k, v) in [
        ("case_number", q.case_number.clone()),
        ("courtroom", q.courtroom.clone()),
        ("court", q.court.clone()),
        ("q", q.text.clone()),
        ("from", q.from.map(|d| d.to_string())),
        ("to", q.to.map(|d| d.to_string())),
    ] {
        if let Some(v) = v {
            parts.push(format!("{k}={}", v.chars().take(100).collect::<String>()));
        }
    }
    parts.join(" ")
}

pub async fn get_one(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<HearingView>, ApiError> {
    caller.require(&[Clerk, Judge, Admin, Party], "view hearings")?;
    let doc = super::access::visible(&st, &caller, &id)?;
    // Every look at a hearing is audited, once per login and hearing in five minutes
    // (the console polls the hearing it runs).
    let detail = if doc.state == crate::archive::index::HearingState::Closed {
        String::new()
    } else {
        "while open".to_string()
    };
    super::access::audit_once(&st, &caller, Some(&id), "view", detail)?;
    Ok(Json(view(&st, &doc)))
}

/// Shared shape of the lifecycle endpoints.
async fn lifecycle(
    st: AppState,
    caller: Caller,
    id: String,
    action: &'static str,
    f: impl FnOnce(
        &crate::recording::hearings::HearingService,
        &str,
        &str,
    ) -> crate::error::Result<HearingDoc>
    + Send
    + 'static,
) -> Result<Json<HearingView>, ApiError> {
    caller.require(&[Clerk, Admin], action)?;
    super::access::valid_id(&id)?;
    let h = st.room()?.hearings.clone();
    let doc = blocking(move || f(&h, &id, &caller.user)).await?;
    if doc.state == crate::archive::index::HearingState::Closed {
        // Checked once sealed, in the background at low priority, so the badge is
        // ready for review.
        let (c, ex) = (st.catalog.clone(), st.exports.clone());
        let id = doc.id.clone();
        tokio::task::spawn_blocking(move || {
            let res = ex.run(move || {
                c.verify(&id, &crate::archive::verify::NoProgress)
                    .map(|_| ())
            });
            if let Err(e) = res {
                tracing::warn!("verifying after close: {e}");
            }
        });
    }
    Ok(Json(view(&st, &doc)))
}

pub async fn open(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<HearingView>, ApiError> {
    lifecycle(st, caller, id, "open hearings", |h, id, who| {
        h.open(id, who)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecessBody {
    pub reason: RecessReason,
    #[serde(default)]
    pub note: Option<String>,
}

pub async fn recess(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RecessBody>,
) -> Result<Json<HearingView>, ApiError> {
    lifecycle(st, caller, id, "recess hearings", move |h, id, who| {
        h.recess(id, body.reason, body.note, who)
    })
    .await
}

pub async fn resume(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<HearingView>, ApiError> {
    lifecycle(st, caller, id, "resume hearings", |h, id, who| {
        h.resume(id, who)
    })
    .await
}

pub async fn close(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<HearingView>, ApiError> {
    lifecycle(st, caller, id, "close hearings", |h, id, who| {
        h.close(id, who)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkBody {
    pub text: String,
}

pub async fn mark(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MarkBody>,
) -> Result<(StatusCode, Json<HearingView>), ApiError> {
    let v = lifecycle(st, caller, id, "add marks", move |h, id, who| {
        h.mark(id, &body.text, who)
    })
    .await?;
    Ok((StatusCode::CREATED, v))
}
