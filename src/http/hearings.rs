//! Hearing endpoints: create, list, get, open, recess, resume, close, marks, exports.

use super::auth::Caller;
use super::{ApiError, ApiJson, AppState, blocking};
use crate::archive::index::HearingDoc;
use crate::archive::records::{EventRecord, RecessReason};
use crate::config::UserRole::{Admin, Clerk, Judge, Party};
use crate::err;
use crate::recording::hearings::CreateHearing;
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
    /// Media recorded on the composite track so far.
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
            recorded_ms: d
                .track_stats
                .get("composite")
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
    v.livestream.viewers = st.relay.viewer_count(Some(&d.id));
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

/// Hearing ids are made by us; anything else cannot name a hearing (and must never
/// reach the filesystem as a path).
pub(crate) fn valid_id(id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError(err!(NotFound, "no hearing with id '{id}'")))
    }
}

pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateHearing>,
) -> Result<(StatusCode, Json<HearingView>), ApiError> {
    caller.require(&[Clerk, Admin], "create hearings")?;
    let h = st.hearings.clone();
    let doc = blocking(move || h.create(body, &caller.user)).await?;
    Ok((StatusCode::CREATED, Json(view(&st, &doc))))
}

/// Hearings per page of a listing unless `limit` says otherwise, and at most.
const DEFAULT_PAGE: usize = 500;
const MAX_PAGE: usize = 5000;

pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    Query(q): Query<crate::recording::hearings::Search>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(&[Clerk, Judge, Admin, Party], "list hearings")?;
    let mut q = q;
    q.limit = Some(q.limit.unwrap_or(DEFAULT_PAGE).min(MAX_PAGE));
    let (docs, total) = st
        .hearings
        .search_page(&q, |s| super::access::may_see_summary(&st, &caller, s))?;
    let views: Vec<HearingView> = docs.iter().map(|d| view(&st, d)).collect();
    Ok(Json(
        serde_json::json!({ "hearings": views, "total": total }),
    ))
}

pub async fn get_one(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<HearingView>, ApiError> {
    caller.require(&[Clerk, Judge, Admin, Party], "view hearings")?;
    let doc = super::access::visible(&st, &caller, &id)?;
    // Looking into the archive is audited; the console following the hearing it runs
    // is not (it polls).
    if doc.state == crate::archive::index::HearingState::Closed {
        super::access::audit(&st, &caller, Some(&id), "view", String::new())?;
    }
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
    valid_id(&id)?;
    let h = st.hearings.clone();
    let doc = blocking(move || f(&h, &id, &caller.user)).await?;
    if doc.state == crate::archive::index::HearingState::Closed {
        // Checked once sealed, in the background, so the badge is ready for review.
        let h = st.hearings.clone();
        let id = doc.id.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = h.verify(&id) {
                tracing::warn!(hearing = %id, "verifying after close: {e}");
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

/// `POST /api/v1/hearings/{id}/exports`: what to export (all fields optional).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportBody {
    /// `HH:MM:SS` from the open, or an RFC 3339 time.
    pub from: Option<String>,
    pub to: Option<String>,
    #[serde(default)]
    pub tracks: Vec<String>,
}

/// Makes an export bundle of a closed hearing (judges, admins); logged in the hearing.
pub async fn export(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ExportBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    caller.require(&[Judge, Admin, Party], "export hearings")?;
    let doc = super::access::visible(&st, &caller, &id)?;
    super::access::may_watch(&st, &caller, &doc)?;
    super::access::audit(
        &st,
        &caller,
        Some(&id),
        "export",
        format!(
            "from {} to {} tracks {}",
            body.from.as_deref().unwrap_or("start"),
            body.to.as_deref().unwrap_or("end"),
            if body.tracks.is_empty() {
                "all".to_string()
            } else {
                body.tracks.join(",")
            }
        ),
    )?;
    let h = st.hearings.clone();
    let (export_id, s) = blocking(move || {
        use crate::archive::bundle::{ExportRequest, parse_time};
        let doc = h.get(&id)?;
        let time = |t: Option<String>| t.map(|t| parse_time(&t, &doc.events)).transpose();
        let req = ExportRequest {
            from_ns: time(body.from)?,
            to_ns: time(body.to)?,
            tracks: body.tracks,
            actor: caller.user.clone(),
        };
        h.export(&id, req)
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "export_id": export_id,
            "hearing_id": s.hearing_id,
            "segments": s.segments,
            "bytes": s.bytes,
            "tracks": s.tracks,
            "download": format!("/api/v1/exports/{export_id}"),
        })),
    ))
}

/// Streams an export bundle as a tar archive (`tar xf` it, then `courtrec verify`).
pub async fn download(
    State(st): State<AppState>,
    caller: Caller,
    Path(export_id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    caller.require(&[Judge, Admin, Party], "download exports")?;
    let (dir, hearing) = st.hearings.export_dir(&export_id)?;
    let doc = super::access::visible(&st, &caller, &hearing)
        .map_err(|_| ApiError(err!(NotFound, "no export with id '{export_id}'")))?;
    super::access::may_watch(&st, &caller, &doc)?;
    super::access::audit(&st, &caller, Some(&hearing), "download", export_id.clone())?;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<axum::body::Bytes>>(8);
    let name = export_id.clone();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let w = std::io::BufWriter::with_capacity(1 << 18, ChannelWriter { tx: tx.clone() });
        let mut b = tar::Builder::new(w);
        let res = b
            .append_dir_all(&name, &dir)
            .and_then(|_| b.into_inner())
            .and_then(|mut w| w.flush());
        if let Err(e) = res {
            tracing::warn!(export = %name, "streaming export failed: {e}");
            let _ = tx.blocking_send(Err(e));
        }
    });
    let body = axum::body::Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    axum::response::Response::builder()
        .header("content-type", "application/x-tar")
        .header(
            "content-disposition",
            format!("attachment; filename=\"{export_id}.tar\""),
        )
        .body(body)
        .map_err(|e| ApiError(err!(Internal, "building the response: {e}")))
}

/// Hands what the tar writer produces to the response body; blocks while the client
/// is slower than the disk (the channel is small), so memory stays bounded.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<axum::body::Bytes>>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Ok(axum::body::Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `POST /api/v1/hearings/{id}/verify`: runs the offline verifier now and returns its
/// report (the same as `courtrec verify --json`); the badge is updated.
pub async fn verify(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(&[Clerk, Judge, Admin, Party], "verify hearings")?;
    super::access::visible(&st, &caller, &id)?;
    super::access::audit(&st, &caller, Some(&id), "verify", String::new())?;
    let h = st.hearings.clone();
    let report = blocking(move || h.verify(&id)).await?;
    serde_json::to_value(&report)
        .map(Json)
        .map_err(|e| ApiError(err!(Internal, "serialising the report: {e}")))
}
