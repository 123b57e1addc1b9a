//! The public livestream: policy endpoints (judges approve or withdraw streaming of a
//! public hearing and leave sources out of it; clerks cut and restore it; each is an
//! event of the hearing's record), WHEP for viewers (no login), and the public list of
//! hearings. A hearing that is not public is never streamed.

use super::auth::Caller;
use super::{ApiError, AppState, blocking};
use crate::archive::records::EventKind;
use crate::config::UserRole::{Admin, Clerk, Judge};
use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    /// Cameras and microphones left out of the public picture and sound.
    #[serde(default)]
    pub exclude: Vec<String>,
}

async fn act(
    st: AppState,
    caller: Caller,
    id: String,
    kind: EventKind,
    excluded: Option<Vec<String>>,
) -> Result<Json<super::hearings::HearingView>, ApiError> {
    super::access::visible(&st, &caller, &id)?;
    let h = st.room()?.hearings.clone();
    let who = caller.user.clone();
    let doc = blocking(move || h.livestream(&id, kind, &who, excluded)).await?;
    Ok(Json(super::hearings::view(&st, &doc)))
}

/// `POST /api/v1/hearings/{id}/livestream` (judge, admin): approve streaming.
pub async fn approve(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<super::hearings::HearingView>, ApiError> {
    caller.require(&[Judge, Admin], "approve livestreams")?;
    // Refused before the event is written: an approval the box cannot carry out would
    // stand in the hearing's record as if the public had watched.
    if !st.cfg.livestream.enabled {
        return Err(ApiError(crate::err!(
            Conflict,
            "this courtroom does not livestream: its config says `[livestream] enabled = false` (court IT can switch it on)"
        )));
    }
    // The body is optional: no exclusions without one.
    let body: ApproveBody = if body.iter().all(u8::is_ascii_whitespace) {
        ApproveBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError(crate::err!(Invalid, "livestream approval: {e}")))?
    };
    act(
        st,
        caller,
        id,
        EventKind::LivestreamApproved,
        Some(body.exclude),
    )
    .await
}

/// `DELETE /api/v1/hearings/{id}/livestream` (judge, admin): withdraw the approval.
pub async fn withdraw(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<super::hearings::HearingView>, ApiError> {
    caller.require(&[Judge, Admin], "withdraw livestreams")?;
    act(st, caller, id, EventKind::LivestreamWithdrawn, None).await
}

/// `POST /api/v1/hearings/{id}/livestream/cut` (clerk, judge, admin).
pub async fn cut(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<super::hearings::HearingView>, ApiError> {
    caller.require(&[Clerk, Judge, Admin], "cut the livestream")?;
    act(st, caller, id, EventKind::LivestreamCut, None).await
}

/// `POST /api/v1/hearings/{id}/livestream/restore` (clerk, judge, admin).
pub async fn restore(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<super::hearings::HearingView>, ApiError> {
    caller.require(&[Clerk, Judge, Admin], "restore the livestream")?;
    act(st, caller, id, EventKind::LivestreamRestored, None).await
}

fn plain(status: axum::http::StatusCode, msg: &str) -> axum::response::Response {
    axum::response::Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(axum::body::Body::from(format!("{msg}\n")))
        .unwrap_or_default()
}

/// `POST /api/v1/hearings/{id}/whep` (anyone): an `application/sdp` offer → 201 with
/// the answer and the session's `Location`. 403 when the hearing may not be streamed
/// now, 404 unknown, 415 not SDP, 400 a bad offer, 503 + `Retry-After` when full.
pub async fn whep_offer(
    State(st): State<AppState>,
    super::auth::Remote(remote): super::auth::Remote,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::http::StatusCode;
    let ct = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct
        .trim()
        .to_ascii_lowercase()
        .starts_with("application/sdp")
    {
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the offer as application/sdp",
        );
    }
    let Ok(offer) = String::from_utf8(body.to_vec()) else {
        return plain(StatusCode::BAD_REQUEST, "the offer is not text");
    };
    if !offer.trim_start().starts_with("v=0") || !offer.contains("m=") {
        return plain(StatusCode::BAD_REQUEST, "not an SDP offer");
    }
    if super::access::valid_id(&id).is_err() {
        return plain(StatusCode::NOT_FOUND, "no such hearing");
    }
    let Some(room) = st.room.as_ref() else {
        return plain(StatusCode::NOT_FOUND, "no such hearing");
    };
    // A hearing approved before the livestream was switched off has no stream to join.
    if !st.cfg.livestream.enabled {
        return plain(StatusCode::FORBIDDEN, "this courtroom does not livestream");
    }
    let doc = match st.catalog.get(&id) {
        Ok(d) => d,
        Err(_) => return plain(StatusCode::NOT_FOUND, "no such hearing"),
    };
    // The public is never told that a non-public or sealed hearing exists.
    if doc.meta.visibility != crate::archive::records::Visibility::Public {
        return plain(StatusCode::NOT_FOUND, "no such hearing");
    }
    if !doc.streaming() {
        return plain(StatusCode::FORBIDDEN, "this hearing is not being streamed");
    }
    match room.relay.add_viewer(&id, offer, &remote).await {
        Ok((session, answer)) => {
            let mut b = axum::response::Response::builder()
                .status(StatusCode::CREATED)
                .header("content-type", "application/sdp")
                .header("location", format!("/api/v1/hearings/{id}/whep/{session}"));
            for url in room.relay.ice_servers() {
                b = b.header("link", format!("<{url}>; rel=\"ice-server\""));
            }
            b.body(axum::body::Body::from(answer)).unwrap_or_default()
        }
        Err(e) if e.kind == crate::error::ErrorKind::ResourceExhausted => {
            let mut r = plain(StatusCode::SERVICE_UNAVAILABLE, &e.msg);
            r.headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("30"));
            r
        }
        Err(e) if e.kind == crate::error::ErrorKind::TooMany => {
            let mut r = plain(StatusCode::TOO_MANY_REQUESTS, &e.msg);
            r.headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("5"));
            r
        }
        Err(e) if e.kind == crate::error::ErrorKind::BadRequest => {
            plain(StatusCode::BAD_REQUEST, &e.msg)
        }
        Err(e) => {
            tracing::warn!(hearing = %id, "WHEP offer failed: {e}");
            plain(StatusCode::INTERNAL_SERVER_ERROR, &e.msg)
        }
    }
}

/// `DELETE /api/v1/hearings/{id}/whep/{session}`: the viewer leaves.
pub async fn whep_delete(
    State(st): State<AppState>,
    Path((id, session)): Path<(String, String)>,
) -> axum::http::StatusCode {
    let Some(room) = st.room.as_ref() else {
        return axum::http::StatusCode::NOT_FOUND;
    };
    if room.relay.session_hearing(&session).as_deref() != Some(id.as_str()) {
        return axum::http::StatusCode::NOT_FOUND;
    }
    if room.relay.remove(&session).await {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::NOT_FOUND
    }
}

/// `GET /api/v1/public/hearings` (anyone): the court's announcements: public hearings
/// of today and later, and which are live now. Nothing else of the archive.
pub async fn public_hearings(
    State(st): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let today = chrono::Utc::now().date_naive();
    let q = crate::archive::catalog::Search {
        from: Some(today),
        ..Default::default()
    };
    let (docs, _) = st.catalog.search_page(&q, |s| {
        s.visibility == crate::archive::records::Visibility::Public
    })?;
    let mut list: Vec<serde_json::Value> = docs
        .iter()
        .filter(|d| d.state != crate::archive::index::HearingState::Closed || d.streaming())
        .map(|d| {
            serde_json::json!({
                "id": d.id, "case_number": d.meta.case_number, "title": d.meta.title,
                "courtroom": d.meta.courtroom, "scheduled_start": d.meta.scheduled_start,
                "state": d.state, "live": d.streaming(), "paused": d.streaming() && d.stream_paused(),
                "whep_url": d.streaming().then(|| format!("/api/v1/hearings/{}/whep", d.id)),
            })
        })
        .collect();
    list.sort_by(|a, b| {
        a["scheduled_start"]
            .as_str()
            .unwrap_or("")
            .cmp(b["scheduled_start"].as_str().unwrap_or(""))
    });
    Ok(Json(serde_json::json!({ "hearings": list })))
}
