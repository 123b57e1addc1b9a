//! `GET /api/v1/status`: what the clerk's console and court IT watch; the same pushed
//! ten times a second (`/status/events`, server-sent events) for the console's meters;
//! and the preview stills of the cameras and the composite.

use super::auth::Caller;
use super::{ApiError, AppState};
use crate::archive::records::TrackKind;
use axum::Json;
use axum::extract::State;
use serde_json::json;

pub async fn status(
    State(st): State<AppState>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    use crate::config::UserRole::{Admin, Clerk, Judge};
    caller.require(&[Clerk, Judge, Admin], "see the courtroom's status")?;
    Ok(Json(snapshot(&st, &caller)?))
}

/// How often `/status/events` pushes the status (the meters move at this rate).
const PUSH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// `GET /api/v1/status/events`: the status as server-sent events (`event: status`),
/// ten a second. A client that reads too slowly only misses updates (each is whole).
pub async fn events(
    State(st): State<AppState>,
    caller: Caller,
) -> Result<
    axum::response::sse::Sse<
        impl tokio_stream::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
    >,
    ApiError,
> {
    use crate::config::UserRole::{Admin, Clerk, Judge};
    caller.require(&[Clerk, Judge, Admin], "see the courtroom's status")?;
    use axum::response::sse::{Event, KeepAlive, Sse};
    use tokio_stream::StreamExt;
    let mut tick = tokio::time::interval(PUSH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let stream = tokio_stream::wrappers::IntervalStream::new(tick).map(move |_| {
        let ev = match snapshot(&st, &caller) {
            Ok(v) => Event::default().event("status").data(v.to_string()),
            Err(e) => Event::default().event("error").data(e.0.msg),
        };
        Ok(ev)
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// `GET /api/v1/previews/{id}`: the latest JPEG still of a camera or of `composite`.
pub async fn preview(
    State(st): State<AppState>,
    caller: Caller,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<axum::response::Response, ApiError> {
    use crate::config::UserRole::{Admin, Clerk, Judge};
    caller.require(&[Clerk, Judge, Admin], "see the camera previews")?;
    // The cameras show the hearing in the room: only to those who may watch it, and
    // to the clerk of this courtroom, who runs it from the room.
    let room = st.room()?;
    if let Some(active) = room.hearings.active_id() {
        let doc = room.hearings.get(&active)?;
        let in_room = caller.role == Clerk && doc.meta.courtroom == st.cfg.courtroom.id;
        if !in_room {
            super::access::may_watch(&st, &caller, &doc)
                .map_err(|_| ApiError(crate::err!(NotFound, "no preview of '{id}' for you now")))?;
        }
    }
    let Some((jpeg, at)) = room.previews.get(&id) else {
        return Err(ApiError(crate::err!(
            NotFound,
            "no preview of '{id}' (yet): the camera ids are in /api/v1/status"
        )));
    };
    axum::response::Response::builder()
        .header("content-type", "image/jpeg")
        .header("cache-control", "no-store")
        .header("x-preview-age-ms", at.elapsed().as_millis().to_string())
        .body(axum::body::Body::from(jpeg.as_ref().clone()))
        .map_err(|e| ApiError(crate::err!(Internal, "building the response: {e}")))
}

/// Alarms `caller` may see: none about a hearing they may not see.
fn visible_alarms(st: &AppState, caller: &super::auth::Caller) -> Vec<crate::monitor::Alarm> {
    st.alarms
        .active()
        .into_iter()
        .filter(|a| {
            a.source
                .as_deref()
                .and_then(|s| st.index.hearing(s).ok().flatten())
                .is_none_or(|doc| super::access::may_see(st, caller, &doc))
        })
        .collect()
}

/// The status while a hearing `caller` may not see is on: that something records,
/// not what.
fn redacted(
    st: &AppState,
    room: &super::Room,
    caller: &super::auth::Caller,
    sources: Vec<serde_json::Value>,
) -> serde_json::Value {
    json!({
        "courtroom": { "id": st.cfg.courtroom.id, "name": st.cfg.courtroom.name, "court": st.cfg.courtroom.court },
        "device_id": room.hearings.device_id,
        "recording": room.hearings.is_recording(),
        "hearing": {"hidden": true},
        "sources": sources,
        "alarms": visible_alarms(st, caller),
    })
}

/// Everything the status endpoints show `caller`: the active hearing only if they may
/// see it (a sealed hearing's case number is never shown to a judge without a grant),
/// and no alarm about a hearing they may not see.
fn snapshot(st: &AppState, caller: &super::auth::Caller) -> Result<serde_json::Value, ApiError> {
    let Some(room) = st.room.as_ref() else {
        return Ok(archive_snapshot(st, caller));
    };
    let lost_after = std::time::Duration::from_millis(st.cfg.alarms.source_lost_ms);
    let sources: Vec<_> = room
        .sources
        .snapshot()
        .into_iter()
        .map(|s| {
            let live = s.last_buffer.is_some_and(|t| t.elapsed() <= lost_after);
            json!({
                "id": s.id,
                "kind": if s.kind == TrackKind::Video { "camera" } else { "microphone" },
                "role": s.role,
                "label": s.label,
                "state": if live { "live" } else if s.reconnecting { "reconnecting" } else { "lost" },
                "peak_dbfs": s.peak_dbfs,
                "rms_dbfs": s.rms_dbfs,
                "error": s.error,
                "restarts": s.restarts,
            })
        })
        .collect();
    let hearing = match room.hearings.active_id() {
        Some(id) => {
            let doc = room.hearings.get(&id)?;
            if !super::access::may_see(st, caller, &doc) {
                return Ok(redacted(st, room, caller, sources));
            }
            json!({
                "id": doc.id,
                "case_number": doc.meta.case_number,
                "state": doc.state,
                "media_time_ms": room.hearings.active_media_ns().map(|t| t / 1_000_000),
            })
        }
        None => serde_json::Value::Null,
    };
    let disk = crate::archive::disk_space(&st.data_dir);
    Ok(json!({
        "courtroom": { "id": st.cfg.courtroom.id, "name": st.cfg.courtroom.name, "court": st.cfg.courtroom.court },
        "device_id": room.hearings.device_id,
        "started_at": crate::archive::records::format_wall(st.started),
        "recording": room.hearings.is_recording(),
        "resting_ms": room.hearings.capture.resting_ms(),
        "hearing": hearing,
        "sources": sources,
        "disk": {
            "free_bytes": disk.map(|d| d.0),
            "total_bytes": disk.map(|d| d.1),
            "alarm_below_bytes": st.cfg.alarms.disk_free_min_bytes,
        },
        "alarms": visible_alarms(st, caller),
        "replication": st.replication.as_ref().map(|r| r.status()),
        "retention": st.replication.as_ref().map(|r| r.retention_status()),
        // The capture clock against the wall clock, read together: RTP timestamps of
        // the public stream are this running time at 90 kHz / 48 kHz (latency benches).
        "clock": {
            "running_time_ns": room.hearings.running_time_ns(),
            "unix_ns": crate::clock::now_unix_ns(),
            // What the burned-in time counts from: a frame at running time t shows
            // this plus t (moved by a clock step).
            "burned_in_epoch_unix_ns": room.hearings.capture.burned_in_epoch_ns(),
        },
    }))
}

/// The archive server's status: what it serves, how its last scan of the bucket went.
fn archive_snapshot(st: &AppState, caller: &super::auth::Caller) -> serde_json::Value {
    let disk = crate::archive::disk_space(&st.data_dir);
    json!({
        "archive_server": true,
        "name": st.cfg.courtroom.name,
        "started_at": crate::archive::records::format_wall(st.started),
        "recording": false,
        "hearing": serde_json::Value::Null,
        "sources": [],
        "archive": st.central.as_ref().map(|c| c.status()),
        "disk": {
            "free_bytes": disk.map(|d| d.0),
            "total_bytes": disk.map(|d| d.1),
        },
        "alarms": visible_alarms(st, caller),
    })
}
