//! The public livestream's policy endpoints: judges approve or withdraw streaming of a
//! public hearing (and leave sources out of it); clerks cut and restore it. Each is an
//! event of the hearing's record. A hearing that is not public is never streamed.

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
    let h = st.hearings.clone();
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
