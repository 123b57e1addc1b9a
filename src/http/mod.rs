//! The HTTP API (`/api/v1`, JSON; see `docs/api.md`). Handlers are thin: they check
//! who is calling, translate HTTP to calls on the recording and archive modules, and
//! map errors to statuses in one place ([`ApiError`]).

pub mod access;
pub mod auth;
pub mod exports;
pub mod fleet;
pub mod headers;
pub mod hearings;
pub mod hold;
pub mod live;
pub mod media;
pub mod metrics;
pub mod server;
pub mod status;
pub mod throttle;

use crate::archive::index::Index;
use crate::capture::SourceStatus;
use crate::config::Config;
use crate::error::{Error, ErrorKind};
use crate::monitor::Alarms;
use crate::recording::hearings::HearingService;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::path::PathBuf;
use std::sync::Arc;

/// Largest request body accepted (bodies are small JSON documents).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Everything the handlers need.
#[derive(Clone)]
pub struct AppState {
    pub cfg: Arc<Config>,
    pub data_dir: PathBuf,
    pub index: Index,
    /// The courtroom (a box); `None` on the archive server, which records nothing.
    pub room: Option<Room>,
    /// The court's archive this server reads (`courtrec archive serve`); `None` on a box.
    pub central: Option<Arc<crate::central::Central>>,
    pub catalog: Arc<crate::archive::catalog::Catalog>,
    pub exports: Arc<crate::archive::exports::Exports>,
    pub audit: Arc<crate::archive::audit::AuditLog>,
    pub alarms: Arc<Alarms>,
    /// Replication to the court's archive (`[archive]`), if configured.
    pub replication: Option<Arc<crate::replication::Replicator>>,
    /// Login back-off and the limit on password hashes at once.
    pub login: Arc<auth::LoginGuard>,
    /// Views and searches audited lately (see `access::audit_once`).
    pub recent_audits: Arc<std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>>,
    pub started: chrono::DateTime<chrono::Utc>,
}

/// What only a courtroom box has: the hearings it records, its sources, previews and
/// livestream.
#[derive(Clone)]
pub struct Room {
    pub hearings: Arc<HearingService>,
    pub sources: Arc<SourceStatus>,
    pub previews: Arc<crate::capture::Previews>,
    pub relay: Arc<crate::live::Relay>,
}

impl AppState {
    /// The courtroom, or 404 on the archive server (it records and streams nothing).
    pub fn room(&self) -> Result<&Room, ApiError> {
        self.room.as_ref().ok_or_else(|| {
            ApiError(Error::new(
                ErrorKind::NotFound,
                "this is the court's archive server: hearings are recorded, run and streamed in their courtrooms",
            ))
        })
    }
}

/// An error as the API returns it: a status and `{"error": kind, "message": text}`.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self.0.kind {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
            ErrorKind::ResourceExhausted => StatusCode::INSUFFICIENT_STORAGE,
            ErrorKind::TooMany => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A message as callers see it: no file paths of the box (they stay in its log).
pub fn redact_paths(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find('/') {
        let (before, from) = rest.split_at(i);
        let starts_token = before
            .chars()
            .last()
            .is_none_or(|c| c.is_whitespace() || "\"'(=:".contains(c));
        let mut len = from
            .find(|c: char| c.is_whitespace() || "\"'),;".contains(c))
            .unwrap_or(from.len());
        // "…/manifest.jsonl: what happened": the colon is the message's, not the path's.
        if from[..len].ends_with(':') {
            len -= 1;
        }
        let token = &from[..len];
        out.push_str(before);
        if starts_token
            && token[1..].contains('/')
            && !before.ends_with("http:")
            && !before.ends_with("https:")
        {
            out.push_str("[file]");
        } else {
            out.push_str(token);
        }
        rest = &from[len..];
    }
    out.push_str(rest);
    out
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut message = redact_paths(&self.0.msg);
        if status.is_server_error() {
            // The detail goes to the box's log under a reference the caller can quote.
            let reference = hex::encode(rand::random::<[u8; 4]>());
            tracing::error!(reference = %reference, "{}: {}", status, self.0.msg);
            if status == StatusCode::INTERNAL_SERVER_ERROR {
                message = "internal error".into();
            }
            message =
                format!("{message} (reference {reference}; the details are in the box's log)");
        }
        let mut resp = (
            status,
            axum::Json(serde_json::json!({"error": self.0.kind.as_str(), "message": message})),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

/// A JSON body whose rejections are API errors: 400 for malformed JSON, 422 for wrong
/// types or missing fields, 415 without a JSON content type, 413 when too large.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rej) => {
                let (status, kind) = match &rej {
                    JsonRejection::JsonDataError(_) => {
                        (StatusCode::UNPROCESSABLE_ENTITY, "invalid")
                    }
                    JsonRejection::JsonSyntaxError(_) => (StatusCode::BAD_REQUEST, "bad_request"),
                    JsonRejection::MissingJsonContentType(_) => {
                        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "bad_request")
                    }
                    other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                        (StatusCode::PAYLOAD_TOO_LARGE, "bad_request")
                    }
                    other => (other.status(), "bad_request"),
                };
                Err((
                    status,
                    axum::Json(serde_json::json!({"error": kind, "message": rej.body_text()})),
                )
                    .into_response())
            }
        }
    }
}

/// Runs blocking work (fsyncs, waiting for writers) off the async runtime.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crate::error::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| {
            ApiError(Error::new(
                ErrorKind::Internal,
                format!("worker failed: {e}"),
            ))
        })?
        .map_err(ApiError)
}

async fn not_found() -> ApiError {
    ApiError(Error::new(ErrorKind::NotFound, "no such endpoint"))
}

/// The whole router.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/login", post(auth::login))
        .route("/login/code", post(auth::login_code))
        .route(
            "/hearings/{id}/access-codes",
            post(access::issue_code).get(access::list_codes),
        )
        .route(
            "/hearings/{id}/access-codes/{code_id}",
            axum::routing::delete(access::revoke_code),
        )
        .route("/hearings/{id}/grants", post(access::grant))
        .route(
            "/hearings/{id}/grants/{user}",
            axum::routing::delete(access::revoke_grant),
        )
        .route("/users", get(access::list_users).post(access::put_user))
        .route("/users/{name}", axum::routing::delete(access::delete_user))
        .route("/audit", get(access::read_audit))
        .route("/audit/export", get(access::export_audit))
        .route("/logout", post(auth::logout))
        .route("/status", get(status::status))
        .route("/fleet", get(fleet::list))
        .route("/status/events", get(status::events))
        .route("/previews/{id}", get(status::preview))
        .route("/hearings", post(hearings::create).get(hearings::list))
        .route("/hearings/{id}", get(hearings::get_one))
        .route("/hearings/{id}/open", post(hearings::open))
        .route("/hearings/{id}/recess", post(hearings::recess))
        .route("/hearings/{id}/resume", post(hearings::resume))
        .route("/hearings/{id}/close", post(hearings::close))
        .route("/hearings/{id}/marks", post(hearings::mark))
        .route("/hearings/{id}/exports", post(exports::export))
        .route("/hearings/{id}/verify", post(exports::verify))
        .route("/hearings/{id}/hold", post(hold::set).delete(hold::lift))
        .route(
            "/hearings/{id}/livestream",
            post(live::approve).delete(live::withdraw),
        )
        .route("/hearings/{id}/livestream/cut", post(live::cut))
        .route("/hearings/{id}/livestream/restore", post(live::restore))
        .route("/hearings/{id}/whep", post(live::whep_offer))
        .route(
            "/hearings/{id}/whep/{session}",
            axum::routing::delete(live::whep_delete),
        )
        .route("/public/hearings", get(live::public_hearings))
        .route(
            "/hearings/{id}/tracks/{track}/index.m3u8",
            get(media::playlist),
        )
        .route(
            "/hearings/{id}/tracks/{track}/{segment}",
            get(media::segment),
        )
        .route("/exports/{export_id}", get(exports::download))
        .fallback(not_found);
    Router::new()
        .merge(crate::web::routes())
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics::metrics))
        .nest("/api/v1", api)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(headers::security_headers))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_never_reach_callers() {
        assert_eq!(
            redact_paths("cannot read /var/lib/courtrec/hearings/x/manifest.jsonl: EIO"),
            "cannot read [file]: EIO"
        );
        assert_eq!(
            redact_paths("opening \"/tmp/a/b\" failed"),
            "opening \"[file]\" failed"
        );
        assert_eq!(
            redact_paths("see /api/v1/login, 1/2 done"),
            "see [file], 1/2 done"
        );
        assert_eq!(
            redact_paths("at http://10.0.0.5:3900/bucket/x"),
            "at http://10.0.0.5:3900/bucket/x"
        );
        assert_eq!(
            redact_paths("use clerk, judge or admin"),
            "use clerk, judge or admin"
        );
    }
}
