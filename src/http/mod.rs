//! The HTTP API (`/api/v1`, JSON; see `docs/api.md`). Handlers are thin: they check
//! who is calling, translate HTTP to calls on the recording and archive modules, and
//! map errors to statuses in one place ([`ApiError`]).

pub mod access;
pub mod auth;
pub mod hearings;
pub mod live;
pub mod media;
pub mod status;

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
    pub hearings: Arc<HearingService>,
    pub sources: Arc<SourceStatus>,
    pub previews: Arc<crate::capture::Previews>,
    pub audit: Arc<crate::archive::audit::AuditLog>,
    pub relay: Arc<crate::live::Relay>,
    pub alarms: Arc<Alarms>,
    pub started: chrono::DateTime<chrono::Utc>,
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
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!("{}: {}", status, self.0.msg);
        }
        let mut resp = (
            status,
            axum::Json(serde_json::json!({"error": self.0.kind.as_str(), "message": self.0.msg})),
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
        .route("/status/events", get(status::events))
        .route("/previews/{id}", get(status::preview))
        .route("/hearings", post(hearings::create).get(hearings::list))
        .route("/hearings/{id}", get(hearings::get_one))
        .route("/hearings/{id}/open", post(hearings::open))
        .route("/hearings/{id}/recess", post(hearings::recess))
        .route("/hearings/{id}/resume", post(hearings::resume))
        .route("/hearings/{id}/close", post(hearings::close))
        .route("/hearings/{id}/marks", post(hearings::mark))
        .route("/hearings/{id}/exports", post(hearings::export))
        .route("/hearings/{id}/verify", post(hearings::verify))
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
        .route("/exports/{export_id}", get(hearings::download))
        .fallback(not_found);
    Router::new()
        .merge(crate::web::routes())
        .route("/healthz", get(|| async { "ok" }))
        .nest("/api/v1", api)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
