//! `GET /api/v1/fleet` (admins, on the archive server): every courtroom's last
//! heartbeat and what is wrong with it, in plain words; what `/fleet` shows.

use super::auth::Caller;
use super::{ApiError, AppState};
use crate::config::UserRole::Admin;
use axum::Json;
use axum::extract::State;

pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(&[Admin], "see the courtrooms' status")?;
    let Some(central) = &st.central else {
        return Err(ApiError(crate::err!(
            NotFound,
            "the fleet page is on the court's archive server (courtrec archive serve)"
        )));
    };
    let fleet = central.fleet();
    let attention = fleet.iter().filter(|f| f.state != "ok").count();
    Ok(Json(serde_json::json!({
        "courtrooms": fleet,
        "attention": attention,
        "archive": central.status(),
    })))
}
