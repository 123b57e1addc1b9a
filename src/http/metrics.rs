//! `GET /metrics`: the box in Prometheus's text format, for court IT only (an admin's
//! login, or the static `[metrics] token` Prometheus sends; 401 to anyone else). The
//! recording's counters live in `crate::metrics`; the rest is read from the daemon's
//! state at scrape time, off the async workers. Each metric: docs/operations.md.

use super::{ApiError, AppState};
use crate::config::UserRole;
use crate::error::{Error, ErrorKind};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

type Labels = Vec<(&'static str, String)>;
type FGauge = Gauge<f64, AtomicU64>;

pub async fn metrics(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let token = super::auth::bearer(&headers).map(str::to_string);
    let st2 = st.clone();
    let text = tokio::task::spawn_blocking(move || {
        authorize(&st2, token.as_deref())?;
        render(&st2)
    })
    .await
    .map_err(|e| ApiError(crate::err!(Internal, "rendering the metrics: {e}")))??;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// The static token (compared in constant time) or an admin's current login.
fn authorize(st: &AppState, token: Option<&str>) -> Result<(), ApiError> {
    let refuse = || {
        ApiError(Error::new(
            ErrorKind::Unauthenticated,
            "the metrics are for court IT: an admin's login or the [metrics] token",
        ))
    };
    let token = token.ok_or_else(refuse)?;
    if let Some(t) = &st.cfg.metrics.token {
        let (a, b) = (
            crate::archive::sha256_hex(t.trim().as_bytes()),
            crate::archive::sha256_hex(token.as_bytes()),
        );
        // Equal-length digests compared without an early exit.
        if a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
        {
            return Ok(());
        }
    }
    match super::auth::lookup(&st.index, token) {
        Ok(c) if c.role == UserRole::Admin => Ok(()),
        _ => Err(refuse()),
    }
}

fn label(k: &'static str, v: &str) -> Labels {
    vec![(k, v.to_string())]
}

fn gauge(reg: &mut Registry, name: &str, help: &str, v: f64) {
    let g = FGauge::default();
    g.set(v);
    reg.register(name, help, g);
}

fn render(st: &AppState) -> Result<String, ApiError> {
    let mut reg = Registry::with_prefix("courtrec");
    let info = Family::<Labels, Gauge>::default();
    info.get_or_create(&label("version", env!("CARGO_PKG_VERSION")))
        .set(1);
    reg.register("build_info", "The running version", info);

    let disk = crate::archive::disk_space(&st.data_dir);
    gauge(
        &mut reg,
        "disk_free_bytes",
        "Free space on the data folder's disk",
        disk.map_or(0.0, |d| d.0 as f64),
    );
    gauge(
        &mut reg,
        "disk_total_bytes",
        "Size of the data folder's disk",
        disk.map_or(0.0, |d| d.1 as f64),
    );
    gauge(
        &mut reg,
        "disk_reserve_bytes",
        "Space the writers never use (no segment starts below it)",
        st.cfg.recording.disk_reserve_bytes as f64,
    );
    gauge(
        &mut reg,
        "disk_alarm_below_bytes",
        "The disk_low alarm sounds below this much free space",
        st.cfg.alarms.disk_free_min_bytes as f64,
    );

    let alarms = Family::<Labels, Gauge>::default();
    for a in st.alarms.active() {
        let sev = serde_json::to_value(a.severity)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        alarms
            .get_or_create(&vec![("code", a.code.clone()), ("severity", sev)])
            .inc();
    }
    reg.register("alarms", "Active alarms by kind and severity", alarms);

    if let Some(room) = &st.room {
        room_metrics(&mut reg, st, room);
    }
    if let Some(r) = &st.replication {
        let s = r.status();
        gauge(
            &mut reg,
            "replication_lag_seconds",
            "Age of the oldest object not yet confirmed by the archive store",
            s.lag_s,
        );
        gauge(
            &mut reg,
            "replication_lag_bytes",
            "Bytes not yet confirmed by the archive store",
            s.lag_bytes as f64,
        );
        gauge(
            &mut reg,
            "replication_objects_pending",
            "Objects waiting to be sent to the archive store",
            s.objects_pending as f64,
        );
        let confirmed = Counter::<u64>::default();
        confirmed.inc_by(s.objects_confirmed);
        reg.register(
            "replication_objects_confirmed",
            "Objects the archive store confirmed since start",
            confirmed,
        );
        let state = Family::<Labels, Gauge>::default();
        state.get_or_create(&label("state", s.state)).set(1);
        reg.register(
            "replication_state",
            "ok, lagging, failing or starting",
            state,
        );
    }
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &reg)
        .map_err(|e| ApiError(crate::err!(Internal, "encoding the metrics: {e}")))?;
    Ok(out)
}

/// A courtroom box's sources, recording and livestream.
fn room_metrics(reg: &mut Registry, st: &AppState, room: &super::Room) {
    let lost_after = std::time::Duration::from_millis(st.cfg.alarms.source_lost_ms);
    let up = Family::<Labels, Gauge>::default();
    let restarts = Family::<Labels, Gauge>::default();
    let peak = Family::<Labels, FGauge>::default();
    let rms = Family::<Labels, FGauge>::default();
    for s in room.sources.snapshot() {
        let kind = match s.kind {
            crate::archive::records::TrackKind::Video => "camera",
            _ => "microphone",
        };
        let l = vec![("source", s.id.clone()), ("kind", kind.to_string())];
        let live = s.last_buffer.is_some_and(|t| t.elapsed() <= lost_after);
        up.get_or_create(&l).set(i64::from(live));
        restarts.get_or_create(&l).set(s.restarts as i64);
        if let Some(p) = s.peak_dbfs {
            peak.get_or_create(&label("source", &s.id)).set(p);
        }
        if let Some(r) = s.rms_dbfs {
            rms.get_or_create(&label("source", &s.id)).set(r);
        }
    }
    reg.register("source_up", "1 while a camera or microphone delivers", up);
    reg.register(
        "source_restarts",
        "Restarts of a failed source since start",
        restarts,
    );
    reg.register("microphone_peak_dbfs", "Peak of the last audio block", peak);
    reg.register(
        "microphone_rms_dbfs",
        "RMS level of the last audio block",
        rms,
    );

    let frames = Family::<Labels, Counter>::default();
    for (track, n) in room.hearings.track_frames() {
        frames.get_or_create(&label("track", &track)).inc_by(n);
    }
    reg.register(
        "track_frames",
        "Frames each track delivered since start",
        frames,
    );
    let m = crate::metrics::recording();
    reg.register(
        "segments_written",
        "Segments sealed and logged since start",
        m.segments_written.clone(),
    );
    reg.register(
        "written_bytes",
        "Bytes of sealed segments since start",
        m.bytes_written.clone(),
    );
    reg.register(
        "frames_dropped",
        "Frames a writer could not take (it fell behind)",
        m.frames_dropped.clone(),
    );
    reg.register(
        "fsync_seconds",
        "Time each fsync of a segment took",
        m.fsync_seconds.clone(),
    );

    let state = Family::<Labels, Gauge>::default();
    let now = match room.hearings.active_id() {
        None => "idle",
        Some(_) if room.hearings.is_recording() => "recording",
        Some(_) => "recess",
    };
    for s in ["idle", "recording", "recess"] {
        state
            .get_or_create(&label("state", s))
            .set(i64::from(s == now));
    }
    reg.register("hearing_state", "What the courtroom does now", state);
    gauge(
        reg,
        "hearings_damaged",
        "Hearings that fail verification (skipped at start, or found altered)",
        {
            let mut ids: std::collections::BTreeSet<String> = room
                .hearings
                .damaged()
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            ids.extend(st.catalog.tampered().into_iter().map(|(id, _)| id));
            ids.len() as f64
        },
    );

    gauge(
        reg,
        "livestream_viewers",
        "Members of the public watching now",
        room.relay.viewer_count(None) as f64,
    );
    let sent = Family::<Labels, Counter>::default();
    for (i, stream) in ["video", "audio"].iter().enumerate() {
        sent.get_or_create(&label("stream", stream))
            .inc_by(room.relay.sent_bytes()[i]);
    }
    reg.register(
        "livestream_sent_bytes",
        "Bytes of the livestream sent (once per packet: rate() is its bitrate)",
        sent,
    );
    let captured = Family::<Labels, Counter>::default();
    for (i, stream) in ["video", "audio"].iter().enumerate() {
        captured
            .get_or_create(&label("stream", stream))
            .inc_by(room.relay.captured_packets()[i]);
    }
    reg.register(
        "livestream_capture_packets",
        "RTP packets of the livestream the capture handed to the relay (sent or not)",
        captured,
    );
}
