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
    Ok(Json(snapshot(&st)?))
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
        let ev = match snapshot(&st) {
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
    let Some((jpeg, at)) = st.previews.get(&id) else {
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

/// Everything the status endpoints show.
fn snapshot(st: &AppState) -> Result<serde_json::Value, ApiError> {
    let lost_after = std::time::Duration::from_millis(st.cfg.alarms.source_lost_ms);
    let sources: Vec<_> = st
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
    let hearing = match st.hearings.active_id() {
        Some(id) => {
            let doc = st.hearings.get(&id)?;
            json!({
                "id": doc.id,
                "case_number": doc.meta.case_number,
                "state": doc.state,
                "media_time_ms": st.hearings.active_media_ns().map(|t| t / 1_000_000),
            })
        }
        None => serde_json::Value::Null,
    };
    let disk = crate::archive::disk_space(&st.data_dir);
    Ok(json!({
        "courtroom": { "id": st.cfg.courtroom.id, "name": st.cfg.courtroom.name, "court": st.cfg.courtroom.court },
        "device_id": st.hearings.device_id,
        "started_at": crate::archive::records::format_wall(st.started),
        "recording": st.hearings.is_recording(),
        "hearing": hearing,
        "sources": sources,
        "disk": {
            "free_bytes": disk.map(|d| d.0),
            "total_bytes": disk.map(|d| d.1),
            "alarm_below_bytes": st.cfg.alarms.disk_free_min_bytes,
        },
        "alarms": st.alarms.active(),
        // The capture clock against the wall clock, read together: RTP timestamps of
        // the public stream are this running time at 90 kHz / 48 kHz (latency benches).
        "clock": {
            "running_time_ns": st.hearings.running_time_ns(),
            "unix_ns": chrono::Utc::now().timestamp_nanos_opt(),
        },
    }))
}
