//! Legal hold: `POST/DELETE /api/v1/hearings/{id}/hold` (admins). A held hearing's
//! files stay on the box whatever its retention says; setting and lifting a hold are
//! audited.

use super::access::{audit, visible};
use super::auth::Caller;
use super::{ApiError, AppState, blocking};
use crate::archive::index::HoldDoc;
use crate::config::UserRole::Admin;
use crate::err;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldBody {
    /// Why (a case on appeal, a court order); shown beside the hold.
    #[serde(default)]
    pub reason: String,
}

/// `POST /api/v1/hearings/{id}/hold` (admin): body `{"reason": "..."}` (optional).
pub async fn set(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<HoldDoc>, ApiError> {
    caller.require(&[Admin], "put hearings on legal hold")?;
    visible(&st, &caller, &id)?;
    // The body is optional: no body, no reason.
    let reason = if body.iter().all(u8::is_ascii_whitespace) {
        String::new()
    } else {
        serde_json::from_slice::<HoldBody>(&body)
            .map_err(|e| {
                ApiError(err!(
                    Invalid,
                    "the body is not {{\"reason\": \"...\"}}: {e}"
                ))
            })?
            .reason
    };
    if reason.chars().count() > 500 {
        return Err(ApiError(err!(
            Invalid,
            "the reason is longer than 500 characters"
        )));
    }
    if let Some(r) = st.index.released(&id)? {
        return Err(ApiError(err!(
            Conflict,
            "hearing {id} is no longer on this box (the archive keeps it since {}); hold it there",
            r.at
        )));
    }
    let hold = HoldDoc {
        by: caller.user.clone(),
        at: crate::archive::records::format_wall(chrono::Utc::now()),
        reason,
    };
    audit(&st, &caller, Some(&id), "hold", hold.reason.clone())?;
    let (index, h, hid) = (st.index.clone(), hold.clone(), id.clone());
    blocking(move || index.put_hold(&hid, &h)).await?;
    Ok(Json(hold))
}

/// `DELETE /api/v1/hearings/{id}/hold` (admin).
pub async fn lift(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(&[Admin], "lift legal holds")?;
    visible(&st, &caller, &id)?;
    if st.index.hold(&id)?.is_none() {
        return Err(ApiError(err!(NotFound, "hearing {id} is not on hold")));
    }
    audit(&st, &caller, Some(&id), "hold_lifted", String::new())?;
    let (index, hid) = (st.index.clone(), id.clone());
    blocking(move || index.remove_hold(&hid).map(|_| ())).await?;
    Ok(StatusCode::NO_CONTENT)
}
