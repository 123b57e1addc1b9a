//! Exports and verification through the API. Both run in the low-priority queue
//! (`archive::exports`): an export answers 202 at once with its state and progress,
//! and `GET /exports/{id}` returns that state until it is done, then the bundle as a
//! tar (or the state again, with `Accept: application/json`). Judges, admins and parties (within quotas) may export what they may watch.

use super::auth::Caller;
use super::{ApiError, ApiJson, AppState, blocking};
use crate::config::UserRole::{Admin, Clerk, Judge, Party};
use crate::err;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

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

fn job_json(job: &crate::archive::exports::ExportJob) -> serde_json::Value {
    let mut v = serde_json::to_value(job).unwrap_or_default();
    v["export_id"] = serde_json::json!(job.id);
    v["download"] = serde_json::json!(format!("/api/v1/exports/{}", job.id));
    v
}

/// Queues an export bundle of a closed hearing; logged in the hearing once made.
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
    let ex = st.exports.clone();
    let job = blocking(move || {
        use crate::archive::bundle::{ExportRequest, parse_time};
        let time = |t: Option<String>| t.map(|t| parse_time(&t, &doc.events)).transpose();
        let req = ExportRequest {
            from_ns: time(body.from)?,
            to_ns: time(body.to)?,
            tracks: body.tracks,
            actor: caller.user.clone(),
            ..Default::default()
        };
        ex.submit(&id, req)
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(job_json(&job))))
}

/// An export's state (JSON) until it is done, then the bundle as a tar archive (`tar
/// xf` it, then `courtrec verify`).
pub async fn download(
    State(st): State<AppState>,
    caller: Caller,
    Path(export_id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    caller.require(&[Judge, Admin, Party], "download exports")?;
    let job = st.exports.job(&export_id)?;
    let doc = super::access::visible(&st, &caller, &job.hearing_id)
        .map_err(|_| ApiError(err!(NotFound, "no export with id '{export_id}'")))?;
    super::access::may_watch(&st, &caller, &doc)?;
    // The state as JSON until done, or whenever JSON is asked for (`Accept`).
    let wants_json = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"));
    if job.state != crate::archive::exports::ExportState::Done || wants_json {
        return Ok(Json(job_json(&job)).into_response());
    }
    let dir = st.exports.bundle_dir(&export_id)?;
    super::access::audit(
        &st,
        &caller,
        Some(&job.hearing_id),
        "download",
        export_id.clone(),
    )?;
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

/// `POST /api/v1/hearings/{id}/verify`: runs the offline verifier (in its turn in the
/// low-priority queue) and returns its report (the same as `courtrec verify --json`);
/// the badge is updated.
pub async fn verify(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(&[Clerk, Judge, Admin, Party], "verify hearings")?;
    super::access::visible(&st, &caller, &id)?;
    super::access::audit(&st, &caller, Some(&id), "verify", String::new())?;
    let (c, ex, central) = (st.catalog.clone(), st.exports.clone(), st.central.clone());
    let report = blocking(move || {
        ex.run(move || match central {
            // The archive server checks the hearing where the archive keeps it.
            Some(central) => central.verify(&id, &crate::archive::verify::NoProgress),
            None => c.verify(&id, &crate::archive::verify::NoProgress),
        })
    })
    .await?;
    serde_json::to_value(&report)
        .map(Json)
        .map_err(|e| ApiError(err!(Internal, "serialising the report: {e}")))
}
