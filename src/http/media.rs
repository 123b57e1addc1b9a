//! Recorded media over HTTP for review: per track, an HLS playlist over its segments
//! and the segments themselves (with byte ranges). Only files the manifest lists are
//! served, by paths built here from validated names, never from the request.

use super::auth::Caller;
use super::{ApiError, AppState};
use crate::archive::HearingDir;
use crate::archive::index::HearingState;
use crate::config::UserRole::{Admin, Clerk, Judge, Party};
use crate::err;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;

/// The hearing's track named `track`, if `caller` may watch it; 404 otherwise.
fn track_of(
    st: &AppState,
    caller: &Caller,
    id: &str,
    track: &str,
) -> Result<crate::archive::index::HearingDoc, ApiError> {
    let doc = super::access::visible(st, caller, id)?;
    super::access::may_watch(st, caller, &doc)?;
    if let Some(r) = st.index.released(id)? {
        return Err(ApiError(err!(
            NotFound,
            "hearing {id} is no longer kept on this box: the court's archive has it (since {}){}",
            r.at,
            st.cfg
                .archive
                .as_ref()
                .and_then(|a| a.review_url.as_deref())
                .map(|u| format!("; review it at {u}"))
                .unwrap_or_default()
        )));
    }
    if !doc.meta.tracks.iter().any(|t| t.name == track) {
        return Err(ApiError(err!(
            NotFound,
            "hearing {id} has no track '{track}'"
        )));
    }
    Ok(doc)
}

/// `GET /api/v1/hearings/{id}/tracks/{track}/index.m3u8`
pub async fn playlist(
    State(st): State<AppState>,
    caller: Caller,
    Path((id, track)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    caller.require(&[Clerk, Judge, Admin, Party], "watch recordings")?;
    let doc = track_of(&st, &caller, &id, &track)?;
    super::access::audit(&st, &caller, Some(&id), "playlist", track.clone())?;
    let segs = st.index.segments(&id, &track)?;
    let refs: Vec<_> = segs.iter().collect();
    let ended = doc.state == HearingState::Closed;
    let text =
        crate::archive::playlist::media_playlist(&refs, |s| format!("{:08}.ts", s.seq), ended);
    Response::builder()
        .header(header::CONTENT_TYPE, "application/vnd.apple.mpegurl")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from(text))
        .map_err(|e| ApiError(err!(Internal, "building the response: {e}")))
}

/// `GET /api/v1/hearings/{id}/tracks/{track}/{seq}.ts`, with `Range` support.
pub async fn segment(
    State(st): State<AppState>,
    caller: Caller,
    Path((id, track, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.require(&[Clerk, Judge, Admin, Party], "watch recordings")?;
    track_of(&st, &caller, &id, &track)?;
    let seq: u64 = name
        .strip_suffix(".ts")
        .filter(|n| n.len() == 8 && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| ApiError(err!(NotFound, "no segment '{name}'")))?;
    let Some(listed) = st.index.segment(&id, &track, seq)? else {
        return Err(ApiError(err!(
            NotFound,
            "no segment {seq} in track {track}"
        )));
    };
    super::access::audit(&st, &caller, Some(&id), "segment", format!("{track}/{seq}"))?;
    if let Some(central) = &st.central {
        return from_store(central, &id, &listed, &headers).await;
    }
    let path = st
        .catalog
        .data
        .hearing(&id)
        .root
        .join(HearingDir::segment_rel(&track, seq));
    // A symlink planted in the data folder must not lead out of it.
    let meta = tokio::fs::symlink_metadata(&path)
        .await
        .map_err(|e| ApiError(crate::error::Error::io(format!("segment {seq}"), e)))?;
    if !meta.file_type().is_file() {
        return Err(ApiError(err!(
            NotFound,
            "segment {seq} is not a regular file"
        )));
    }
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| ApiError(crate::error::Error::io(format!("reading segment {seq}"), e)))?;
    let total = bytes.len() as u64;
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|r| parse_range(r, total));
    let b = Response::builder()
        .header(header::CONTENT_TYPE, "video/mp2t")
        .header(header::ACCEPT_RANGES, "bytes")
        // Evidence stays on the box: nothing of a recording in a review PC's cache.
        .header(header::CACHE_CONTROL, "no-store");
    let resp = match range {
        None => b.body(Body::from(bytes)),
        Some(Some((start, end))) => b
            .status(StatusCode::PARTIAL_CONTENT)
            .header(
                header::CONTENT_RANGE,
                format!("bytes {start}-{end}/{total}"),
            )
            .body(Body::from(bytes[start as usize..=end as usize].to_vec())),
        Some(None) => b
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .header(header::CONTENT_RANGE, format!("bytes */{total}"))
            .body(Body::empty()),
    };
    resp.map_err(|e| ApiError(err!(Internal, "building the response: {e}")))
}

/// A segment the archive keeps, streamed from the store through this server (so the
/// read is audited and the headers apply; no presigned URL leaves it).
async fn from_store(
    central: &crate::central::Central,
    id: &str,
    seg: &crate::archive::records::SegmentRecord,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let key = central
        .key_of(id, &seg.file)
        .ok_or_else(|| ApiError(err!(NotFound, "no segment {}", seg.seq)))?;
    let total = seg.bytes;
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|r| parse_range(r, total));
    let b = Response::builder()
        .header(header::CONTENT_TYPE, "video/mp2t")
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "no-store");
    let (b, want) = match range {
        None => (b, None),
        Some(Some((start, end))) => (
            b.status(StatusCode::PARTIAL_CONTENT).header(
                header::CONTENT_RANGE,
                format!("bytes {start}-{end}/{total}"),
            ),
            Some((start, Some(end))),
        ),
        Some(None) => {
            return b
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{total}"))
                .body(Body::empty())
                .map_err(|e| ApiError(err!(Internal, "building the response: {e}")));
        }
    };
    let r = central
        .store
        .get(&key, want)
        .await
        .map_err(|e| ApiError(crate::error::Error::from(e)))?;
    let stream = futures_util::stream::unfold(r.body, |mut body| async move {
        body.next().await.map(|chunk| {
            (
                chunk.map_err(|e| std::io::Error::other(e.to_string())),
                body,
            )
        })
    });
    b.header(header::CONTENT_LENGTH, r.len_bytes)
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError(err!(Internal, "building the response: {e}")))
}

/// One `bytes=` range (RFC 9110 14.1.2) as inclusive offsets; None if unsatisfiable.
/// Several ranges are answered with the first only (allowed, and all players ask one).
fn parse_range(header: &str, total: u64) -> Option<(u64, u64)> {
    let spec = header
        .trim()
        .strip_prefix("bytes=")?
        .split(',')
        .next()?
        .trim();
    let (a, b) = spec.split_once('-')?;
    if total == 0 {
        return None;
    }
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 {
            return None;
        }
        (total.saturating_sub(n), total - 1)
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() {
            total - 1
        } else {
            b.parse::<u64>().ok()?.min(total - 1)
        };
        (start, end)
    };
    (start <= end && start < total).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Some((0, 99)));
        assert_eq!(parse_range("bytes=900-", 1000), Some((900, 999)));
        assert_eq!(parse_range("bytes=-100", 1000), Some((900, 999)));
        assert_eq!(parse_range("bytes=990-2000", 1000), Some((990, 999)));
        assert_eq!(parse_range("bytes=1000-", 1000), None);
        assert_eq!(parse_range("bytes=5-1", 1000), None);
        assert_eq!(parse_range("items=0-1", 1000), None);
        assert_eq!(parse_range("bytes=0-1,5-9", 1000), Some((0, 1)));
    }
}
