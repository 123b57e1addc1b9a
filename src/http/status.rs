//! `GET /api/v1/status`: what the clerk's console and court IT watch.

use super::auth::Caller;
use super::{ApiError, AppState};
use crate::archive::records::TrackKind;
use axum::Json;
use axum::extract::State;
use serde_json::json;

pub async fn status(
    State(st): State<AppState>,
    _caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
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
    Ok(Json(json!({
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
    })))
}
