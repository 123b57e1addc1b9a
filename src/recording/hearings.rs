//! The hearing lifecycle of one courtroom, as the court rules describe it: recording
//! runs from "open" to "close" and is interrupted only by a recess with a reason; every
//! step is an event in the hearing's manifest with its wall-clock and media time.

use super::recorder::{Router, Session, Timebase, TrackEnd, WriterReport};
use super::segment::SegmentSettings;
use crate::archive::index::{HearingDoc, HearingState, Index};
use crate::archive::log::HearingLog;
use crate::archive::records::*;
use crate::archive::{self, DataDir, HearingDir, ts};
use crate::capture::{CaptureControl, TrackSpec};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::{bail, err};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Body of `POST /api/v1/hearings`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateHearing {
    pub case_number: String,
    pub title: String,
    pub visibility: Visibility,
    #[serde(default)]
    pub courtroom: Option<String>,
    /// RFC 3339, e.g. `2026-11-27T09:30:00+08:00`.
    #[serde(default)]
    pub scheduled_start: Option<String>,
}

/// What to search hearings by (every field optional; all given must match).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Search {
    /// Part of the case number.
    pub case_number: Option<String>,
    /// Courtroom id, exactly.
    pub courtroom: Option<String>,
    /// Part of the title, any case.
    #[serde(rename = "q")]
    pub text: Option<String>,
    /// First and last day (UTC) of the hearing's scheduled start (or creation).
    pub from: Option<chrono::NaiveDate>,
    pub to: Option<chrono::NaiveDate>,
    /// Paging: skip `offset` results, return at most `limit`.
    pub offset: Option<usize>,
    pub limit: Option<usize>,
}

/// The hearing currently open or in recess in this courtroom.
struct Active {
    id: String,
    log: Arc<Mutex<HearingLog>>,
    timebase: Timebase,
    session: Option<Arc<Session>>,
    /// Where the current (or last) run began on the media timeline: nothing the clerk
    /// does afterwards can be logged before it.
    run_start_ns: i64,
    next_seqs: Vec<u64>,
}

/// How far ahead of "now" a run (open, resume) begins. The encoders are asked for a
/// keyframe at that instant; since no source has captured a frame that late yet, the
/// request is sure to reach every encoder before that frame does, and every video track
/// starts on a keyframe within one frame of the logged time even on a loaded machine.
/// (Asking for a keyframe at "now" raced the frames already queued in the encoders: on
/// a busy box a track could start two frames late.)
const GATE_LEAD_NS: i64 = 200_000_000;

/// Runs the hearings of this courtroom.
pub struct HearingService {
    pub cfg: Arc<Config>,
    pub data: DataDir,
    pub index: Index,
    pub device_id: String,
    pub specs: Vec<TrackSpec>,
    capture: Arc<dyn CaptureControl>,
    router: Arc<Router>,
    report: Arc<dyn WriterReport>,
    /// Signs the hearings' checkpoints.
    key: Option<Arc<crate::archive::signing::DeviceKey>>,
    active: Mutex<Option<Active>>,
}

fn now_wall() -> String {
    format_wall(chrono::Utc::now())
}

fn unix_ns(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(0)
}

fn check_text(field: &str, s: &str, max_chars: usize) -> Result<()> {
    if s.trim().is_empty() {
        bail!(Invalid, "field `{field}` must not be empty");
    }
    if s.chars().count() > max_chars {
        bail!(
            Invalid,
            "field `{field}` is longer than {max_chars} characters"
        );
    }
    if s.chars().any(|c| c.is_control()) {
        bail!(Invalid, "field `{field}` contains control characters");
    }
    Ok(())
}

impl HearingService {
    #[allow(clippy::too_many_arguments)] // the service's collaborators, wired once in serve
    pub fn new(
        cfg: Arc<Config>,
        data: DataDir,
        index: Index,
        device_id: String,
        capture: Arc<dyn CaptureControl>,
        router: Arc<Router>,
        report: Arc<dyn WriterReport>,
        key: Option<Arc<crate::archive::signing::DeviceKey>>,
    ) -> HearingService {
        let specs = crate::capture::track_specs(&cfg);
        HearingService {
            cfg,
            data,
            index,
            device_id,
            specs,
            capture,
            router,
            report,
            key,
            active: Mutex::new(None),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Option<Active>>> {
        self.active
            .lock()
            .map_err(|_| err!(Internal, "hearing state lock poisoned"))
    }

    fn event(&self, hearing_id: &str, kind: EventKind) -> EventRecord {
        EventRecord::new(hearing_id, &self.device_id, kind, now_wall())
    }

    fn settings(&self) -> SegmentSettings {
        SegmentSettings {
            segment_target_ns: self.cfg.recording.segment_target_ms as i64 * 1_000_000,
            fsync_interval_ns: self.cfg.recording.fsync_interval_ms as i64 * 1_000_000,
            disk_reserve_bytes: self.cfg.recording.disk_reserve_bytes,
        }
    }

    /// "Now" on the hearing's media timeline, never before the current run began (an
    /// action within `GATE_LEAD_NS` of an open or resume is logged at its start).
    fn now_media(&self, a: &Active) -> Result<i64> {
        Ok(a.timebase
            .media_ns(self.running_time()?)
            .max(a.run_start_ns))
    }

    fn running_time(&self) -> Result<i64> {
        self.capture.running_time_ns().ok_or_else(|| {
            err!(
                Unavailable,
                "capture is not running yet; try again in a moment"
            )
        })
    }

    /// Makes durable what the index knows about lifecycle changes, so recovery after a
    /// crash finds every hearing that was open (segment rows may lag; they are rebuilt
    /// from the manifest).
    fn flush_index(&self) {
        if let Err(e) = self.index.flush() {
            tracing::error!("flushing the index: {e}");
        }
    }

    pub fn get(&self, id: &str) -> Result<HearingDoc> {
        let doc = self
            .index
            .hearing(id)?
            .ok_or_else(|| err!(NotFound, "no hearing with id '{id}'"))?;
        // `courtrec export` run on the box appends to a closed hearing's manifest
        // without the index (the daemon holds it); its signed checkpoint tells us.
        if doc.state == HearingState::Closed {
            let dir = self.data.hearing(id);
            let signed = crate::archive::checkpoint::sizes_in(&dir.root.join("checkpoints"))
                .last()
                .copied()
                .unwrap_or(0);
            if signed > doc.manifest_entries {
                let (log, _, _) = HearingLog::open(dir, Some(self.index.clone()), None)?;
                return Ok(log.doc().clone());
            }
        }
        Ok(doc)
    }

    /// Exports a closed hearing (or a clip) to `DATA/exports/<export id>/` as a bundle
    /// (see `archive::bundle`); the export is logged in the hearing as `actor`'s.
    pub fn export(
        &self,
        id: &str,
        req: crate::archive::bundle::ExportRequest,
    ) -> Result<(String, crate::archive::bundle::ExportSummary)> {
        let doc = self.get(id)?;
        if doc.state != HearingState::Closed {
            bail!(
                Conflict,
                "hearing {id} is {}: close it first (exports are made from the sealed record)",
                doc.state.as_str()
            );
        }
        let Some(key) = self.key.clone() else {
            bail!(
                Unavailable,
                "this box has no device key to sign the export with"
            );
        };
        let export_id = format!(
            "{}-{}",
            id,
            uuid::Uuid::now_v7()
                .simple()
                .to_string()
                .get(20..)
                .unwrap_or("x")
        );
        let out = self.data.root.join("exports").join(&export_id);
        let summary = crate::archive::bundle::export(&self.data.hearing(id).root, &out, &req, key)?;
        // The export event is in the manifest: bring the index's doc up to date.
        HearingLog::open(self.data.hearing(id), Some(self.index.clone()), None)?;
        self.flush_index();
        Ok((export_id, summary))
    }

    /// The folder of an export made by [`Self::export`] and its hearing, if it exists.
    pub fn export_dir(&self, export_id: &str) -> Result<(std::path::PathBuf, String)> {
        let ok = !export_id.is_empty()
            && export_id.len() <= 100
            && export_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let dir = self.data.root.join("exports").join(export_id);
        let not_found = || err!(NotFound, "no export with id '{export_id}'");
        if !ok {
            return Err(not_found());
        }
        let desc: crate::archive::bundle::BundleDesc = std::fs::read(dir.join("bundle.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(not_found)?;
        Ok((dir, desc.hearing_id))
    }

    /// Hearings, newest first, optionally only those whose case number contains `case`.
    pub fn list(&self, case: Option<&str>) -> Result<Vec<HearingDoc>> {
        self.search(&Search {
            case_number: case.map(str::to_string),
            ..Search::default()
        })
    }

    /// Hearings matching every given criterion, newest first: filtered on the small
    /// summaries, then only the page asked for (`offset`, `limit`) is read in full.
    /// Returns the page and how many matched.
    pub fn search_page(
        &self,
        q: &Search,
        visible: impl Fn(&crate::archive::index::HearingSummary) -> bool,
    ) -> Result<(Vec<HearingDoc>, usize)> {
        let lower = |s: &str| s.to_lowercase();
        let text = q.text.as_deref().map(lower);
        let mut v: Vec<crate::archive::index::HearingSummary> = self
            .index
            .summaries()?
            .into_iter()
            .filter(|h| {
                visible(h)
                    && q.case_number
                        .as_deref()
                        .is_none_or(|c| h.case_number.contains(c.trim()))
                    && q.courtroom.as_deref().is_none_or(|c| h.courtroom == c)
                    && text.as_deref().is_none_or(|t| lower(&h.title).contains(t))
                    && {
                        let day = chrono::DateTime::parse_from_rfc3339(&h.when)
                            .map(|t| t.with_timezone(&chrono::Utc).date_naive())
                            .ok();
                        q.from.is_none_or(|f| day.is_some_and(|d| d >= f))
                            && q.to.is_none_or(|t| day.is_some_and(|d| d <= t))
                    }
            })
            .collect();
        v.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        let total = v.len();
        let docs = v
            .iter()
            .skip(q.offset.unwrap_or(0))
            .take(q.limit.unwrap_or(usize::MAX))
            .filter_map(|s| self.index.hearing(&s.id).transpose())
            .collect::<Result<Vec<_>>>()?;
        Ok((docs, total))
    }

    /// Every hearing matching `q`, newest first.
    pub fn search(&self, q: &Search) -> Result<Vec<HearingDoc>> {
        Ok(self.search_page(q, |_| true)?.0)
    }

    /// Runs the offline verifier on a hearing's folder (trusting this box's own key)
    /// and keeps the outcome for badges and searches.
    pub fn verify(&self, id: &str) -> Result<crate::archive::verify::Report> {
        use crate::archive::verify;
        let doc = self.get(id)?;
        let mut trust = verify::Trust::default();
        if let Some(k) = &self.key {
            trust.keys.push(k.verifier());
        }
        let report = verify::verify(&self.data.hearing(id).root, &trust);
        let status = match report.worst() {
            None => "verified",
            Some(verify::Problem::Unsealed) => "unsealed",
            Some(verify::Problem::Modified) => "modified",
            Some(verify::Problem::MissingOrReordered) => "missing",
            Some(verify::Problem::UnexplainedGap) => "gap",
            Some(verify::Problem::BadSignature) => "bad_signature",
            Some(verify::Problem::Unusable) => "unusable",
        };
        self.index.put_integrity(
            id,
            &crate::archive::index::IntegrityDoc {
                status: status.into(),
                exit_code: report.exit_code,
                result: report.result.clone(),
                manifest_entries: doc.manifest_entries,
                checked_at: format_wall(chrono::Utc::now()),
            },
        )?;
        Ok(report)
    }

    /// The id of the hearing open or in recess, if any.
    pub fn active_id(&self) -> Option<String> {
        self.active
            .lock()
            .ok()
            .and_then(|a| a.as_ref().map(|a| a.id.clone()))
    }

    /// Media time now of the active hearing.
    pub fn active_media_ns(&self) -> Option<i64> {
        let rt = self.capture.running_time_ns()?;
        self.active
            .lock()
            .ok()
            .and_then(|a| a.as_ref().map(|a| a.timebase.media_ns(rt)))
    }

    pub fn create(&self, req: CreateHearing, actor: &str) -> Result<HearingDoc> {
        check_text("case_number", &req.case_number, 100)?;
        check_text("title", &req.title, 300)?;
        let courtroom = req
            .courtroom
            .clone()
            .unwrap_or_else(|| self.cfg.courtroom.id.clone());
        if courtroom != self.cfg.courtroom.id {
            bail!(
                Invalid,
                "field `courtroom`: this box records courtroom '{}', not '{courtroom}'",
                self.cfg.courtroom.id
            );
        }
        let scheduled = match &req.scheduled_start {
            None => None,
            Some(s) => Some(format_wall(
                chrono::DateTime::parse_from_rfc3339(s)
                    .map_err(|e| {
                        err!(
                            Invalid,
                            "field `scheduled_start`: not an RFC 3339 time ({e})"
                        )
                    })?
                    .with_timezone(&chrono::Utc),
            )),
        };
        let id = format!(
            "{}-{}",
            chrono::Utc::now().format("%Y%m%d-%H%M%S"),
            hex::encode(rand::random::<[u8; 3]>())
        );
        let mut ev = self.event(&id, EventKind::Created);
        ev.actor = Some(actor.to_string());
        ev.meta = Some(HearingMeta {
            case_number: req.case_number.trim().to_string(),
            title: req.title.trim().to_string(),
            courtroom,
            visibility: req.visibility,
            scheduled_start: scheduled,
            tracks: self.specs.iter().map(|s| s.info.clone()).collect(),
        });
        let log = HearingLog::create(
            self.data.hearing(&id),
            self.index.clone(),
            Record::Event(ev),
            self.key.clone(),
        )?;
        self.flush_index();
        Ok(log.doc().clone())
    }

    fn transition_error(doc: &HearingDoc, action: &str) -> Error {
        let why = match doc.state {
            HearingState::Scheduled => "it has not been opened yet",
            HearingState::Open => "it is open and recording",
            HearingState::Recess => "it is in recess",
            HearingState::Closed => {
                "it is closed (a closed hearing cannot be reopened; create a new one)"
            }
        };
        err!(Conflict, "cannot {action} hearing {}: {why}", doc.id)
    }

    /// Opens a hearing: recording starts at the next keyframe on every track.
    pub fn open(&self, id: &str, actor: &str) -> Result<HearingDoc> {
        let mut active = self.lock()?;
        let doc = self.get(id)?;
        if doc.state != HearingState::Scheduled {
            return Err(Self::transition_error(&doc, "open"));
        }
        if let Some(a) = active.as_ref() {
            bail!(
                Conflict,
                "cannot open hearing {id}: hearing {} is still open in this courtroom; close it first",
                a.id
            );
        }
        // Media time 0 is where recording begins (see `GATE_LEAD_NS`).
        let rt = self.running_time()? + GATE_LEAD_NS;
        let timebase = Timebase {
            base_rt_ns: rt,
            wall_at_base_unix_ns: unix_ns(chrono::Utc::now()) + GATE_LEAD_NS,
        };
        let (log, _, _) = HearingLog::open(
            self.data.hearing(id),
            Some(self.index.clone()),
            self.key.clone(),
        )?;
        let log = Arc::new(Mutex::new(log));
        self.capture.set_caption(&doc.meta.case_number);
        let mut a = Active {
            id: id.to_string(),
            log,
            timebase,
            session: None,
            run_start_ns: 0,
            next_seqs: vec![1; self.specs.len()],
        };
        let start = self.start_session(&mut a)?;
        let mut ev = self.event(id, EventKind::Open);
        ev.wall_time = format_wall(a.timebase.wall(start));
        ev.media_time_ns = Some(start);
        ev.actor = Some(actor.to_string());
        let doc = match append(&a.log, ev) {
            Ok(doc) => doc,
            Err(e) => {
                // Not logged, so not open: stop again rather than record unexplained media.
                self.stop_session(&mut a, start);
                self.capture.set_caption(&self.cfg.courtroom.name);
                return Err(e);
            }
        };
        *active = Some(a);
        self.flush_index();
        Ok(doc)
    }

    /// Starts recording every track `GATE_LEAD_NS` from now and returns that instant on
    /// the media timeline, which the caller logs as the event's time. The session gets
    /// every frame stamped at or after it; the encoders are asked for a keyframe there.
    fn start_session(&self, a: &mut Active) -> Result<i64> {
        let s = Arc::new(Session::start(
            &a.id,
            self.data.hearing(&a.id),
            &self.specs,
            &a.next_seqs,
            self.settings(),
            Duration::from_millis(self.cfg.recording.drain_timeout_ms),
            a.timebase,
            a.log.clone(),
            &self.device_id,
            self.report.clone(),
        ));
        let recent = self.router.install(s.clone());
        a.session = Some(s.clone());
        let rt = self.running_time()? + GATE_LEAD_NS;
        let start = a.timebase.media_ns(rt);
        s.begin(start, recent);
        self.capture.request_keyframes(rt);
        a.run_start_ns = start;
        Ok(start)
    }

    /// Stops the running session at media time `at` and waits for its last segments.
    fn stop_session(&self, a: &mut Active, at: i64) -> Vec<TrackEnd> {
        let Some(s) = a.session.take() else {
            return Vec::new();
        };
        let ends = s.stop(at, self.report.as_ref());
        self.router.clear();
        for (i, spec) in self.specs.iter().enumerate() {
            if let Some(e) = ends.iter().find(|e| e.track == spec.info.name)
                && e.next_seq > 0
            {
                a.next_seqs[i] = a.next_seqs[i].max(e.next_seq);
            }
        }
        ends
    }

    fn active_for<'a>(
        &self,
        active: &'a mut Option<Active>,
        id: &str,
        doc: &HearingDoc,
        action: &str,
    ) -> Result<&'a mut Active> {
        match active.as_mut() {
            Some(a) if a.id == id => Ok(a),
            _ => Err(Self::transition_error(doc, action)),
        }
    }

    pub fn recess(
        &self,
        id: &str,
        reason: RecessReason,
        note: Option<String>,
        actor: &str,
    ) -> Result<HearingDoc> {
        if let Some(n) = &note
            && n.chars().count() > 1000
        {
            bail!(Invalid, "field `note` is longer than 1000 characters");
        }
        let mut active = self.lock()?;
        let doc = self.get(id)?;
        if doc.state != HearingState::Open {
            return Err(Self::transition_error(&doc, "recess"));
        }
        let a = self.active_for(&mut active, id, &doc, "recess")?;
        let at = self.now_media(a)?;
        let mut ev = self.event(id, EventKind::Recess);
        ev.media_time_ns = Some(at);
        ev.actor = Some(actor.to_string());
        ev.reason = Some(reason);
        ev.text = note.filter(|n| !n.trim().is_empty());
        append(&a.log, ev)?;
        self.stop_session(a, at);
        self.flush_index();
        self.get(id)
    }

    pub fn resume(&self, id: &str, actor: &str) -> Result<HearingDoc> {
        let mut active = self.lock()?;
        let doc = self.get(id)?;
        if doc.state != HearingState::Recess {
            return Err(Self::transition_error(&doc, "resume"));
        }
        let a = self.active_for(&mut active, id, &doc, "resume")?;
        let start = self.start_session(a)?;
        let mut ev = self.event(id, EventKind::Resume);
        ev.wall_time = format_wall(a.timebase.wall(start));
        ev.media_time_ns = Some(start);
        ev.actor = Some(actor.to_string());
        if let Err(e) = append(&a.log, ev) {
            self.stop_session(a, start);
            return Err(e);
        }
        self.flush_index();
        self.get(id)
    }

    pub fn close(&self, id: &str, actor: &str) -> Result<HearingDoc> {
        let mut active = self.lock()?;
        let doc = self.get(id)?;
        if !matches!(doc.state, HearingState::Open | HearingState::Recess) {
            return Err(Self::transition_error(&doc, "close"));
        }
        let a = self.active_for(&mut active, id, &doc, "close")?;
        let at = self.now_media(a)?;
        let mut ev = self.event(id, EventKind::Close);
        ev.media_time_ns = Some(at);
        ev.actor = Some(actor.to_string());
        // The close event is written after the last segments, so the manifest ends with it.
        self.stop_session(a, at);
        append(&a.log, ev)?;
        *active = None;
        self.capture.set_caption(&self.cfg.courtroom.name);
        self.flush_index();
        self.get(id)
    }

    pub fn mark(&self, id: &str, text: &str, actor: &str) -> Result<HearingDoc> {
        check_text("text", text, 500)?;
        let mut active = self.lock()?;
        let doc = self.get(id)?;
        if !matches!(doc.state, HearingState::Open | HearingState::Recess) {
            bail!(
                Conflict,
                "cannot add a mark to hearing {id}: marks are taken while a hearing is open or in recess (it is {})",
                doc.state.as_str()
            );
        }
        let a = self.active_for(&mut active, id, &doc, "mark")?;
        let mut ev = self.event(id, EventKind::Mark);
        ev.media_time_ns = Some(self.now_media(a)?);
        ev.actor = Some(actor.to_string());
        ev.text = Some(text.trim().to_string());
        append(&a.log, ev)
    }

    /// Approves, withdraws, cuts or restores the public livestream of a hearing, as an
    /// event of its record. `excluded` (for an approval): cameras and microphones left
    /// out of the public picture and sound. Only public hearings are ever approved.
    pub fn livestream(
        &self,
        id: &str,
        kind: EventKind,
        actor: &str,
        excluded: Option<Vec<String>>,
    ) -> Result<HearingDoc> {
        let mut active = self.lock()?;
        let doc = self.get(id)?;
        match kind {
            EventKind::LivestreamApproved => {
                if doc.meta.visibility != Visibility::Public {
                    bail!(
                        PermissionDenied,
                        "hearing {id} is not public: it is never streamed"
                    );
                }
                if doc.state == HearingState::Closed {
                    bail!(
                        Conflict,
                        "hearing {id} is closed: there is nothing to stream"
                    );
                }
                for x in excluded.iter().flatten() {
                    let ok = doc
                        .meta
                        .tracks
                        .iter()
                        .any(|t| &t.name == x && t.kind != TrackKind::Composite);
                    if !ok {
                        bail!(
                            Invalid,
                            "field `exclude`: {x:?} is not a camera or microphone of hearing {id}"
                        );
                    }
                }
            }
            EventKind::LivestreamWithdrawn if !doc.livestream.approved => {
                bail!(Conflict, "streaming of hearing {id} is not approved")
            }
            EventKind::LivestreamCut if !doc.streaming() => {
                bail!(Conflict, "hearing {id} is not being streamed")
            }
            EventKind::LivestreamCut if doc.livestream.cut => {
                bail!(Conflict, "the stream of hearing {id} is already cut")
            }
            EventKind::LivestreamRestored if !doc.livestream.cut => {
                bail!(Conflict, "the stream of hearing {id} is not cut")
            }
            _ => {}
        }
        let mut ev = self.event(id, kind);
        ev.actor = Some(actor.to_string());
        ev.tracks = excluded.filter(|x| !x.is_empty());
        match active.as_mut().filter(|a| a.id == id) {
            Some(a) => {
                ev.media_time_ns = Some(self.now_media(a)?);
                append(&a.log, ev)
            }
            None => {
                let (mut log, _, _) = HearingLog::open(
                    self.data.hearing(id),
                    Some(self.index.clone()),
                    self.key.clone(),
                )?;
                log.append(Record::Event(ev))?;
                Ok(log.doc().clone())
            }
        }
    }

    /// Logs a device fault or restoration in the active hearing, if there is one.
    pub fn device_event(&self, kind: EventKind, source: &str, text: &str) -> Result<()> {
        let active = self.lock()?;
        let Some(a) = active.as_ref() else {
            return Ok(());
        };
        let mut ev = self.event(&a.id, kind);
        ev.media_time_ns = self
            .capture
            .running_time_ns()
            .map(|rt| a.timebase.media_ns(rt).max(a.run_start_ns));
        ev.source = Some(source.to_string());
        ev.text = Some(text.to_string());
        append(&a.log, ev).map(|_| ())
    }

    /// Why the active hearing's last checkpoint could not be signed and written, while
    /// that lasts (an alarm: new segments are then covered by their hashes only).
    pub fn checkpoint_error(&self) -> Option<String> {
        let active = self.active.lock().ok()?;
        let a = active.as_ref()?;
        let log = a.log.lock().ok()?;
        log.checkpoint_error().map(str::to_string)
    }

    /// The capture pipeline's running time now (the clock every timestamp is on).
    pub fn running_time_ns(&self) -> Option<i64> {
        self.capture.running_time_ns()
    }

    /// Each track's name and how long it has delivered no frame (None: not one yet).
    pub fn track_silences(&self) -> Vec<(String, Option<std::time::Duration>)> {
        self.specs
            .iter()
            .map(|s| s.info.name.clone())
            .zip(self.router.silences())
            .collect()
    }

    /// True while a hearing is open and recording (not in recess).
    pub fn is_recording(&self) -> bool {
        self.active
            .lock()
            .ok()
            .is_some_and(|a| a.as_ref().is_some_and(|a| a.session.is_some()))
    }

    /// Stops recording cleanly on shutdown (SIGTERM): seals the open segments. The
    /// hearing stays open; the next start resumes it with a recovery event.
    pub fn shutdown(&self) {
        if let Ok(mut active) = self.active.lock()
            && let Some(a) = active.as_mut()
            && let Some(rt) = self.capture.running_time_ns()
        {
            let at = a.timebase.media_ns(rt);
            self.stop_session(a, at);
        }
        self.flush_index();
    }

    /// At start-up: finds hearings left open by a crash or a stop, records the segments
    /// the crash cut off, logs a `recovery` event covering the gap, and resumes
    /// recording if the hearing was open (it stays in recess if it was in recess).
    pub fn recover(&self) -> Result<Vec<String>> {
        let mut recovered = Vec::new();
        let mut unclosed: Vec<HearingDoc> = self
            .index
            .hearings()?
            .into_iter()
            .filter(|h| matches!(h.state, HearingState::Open | HearingState::Recess))
            .collect();
        unclosed.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        let mut active = self.lock()?;
        let n = unclosed.len();
        for (i, h) in unclosed.into_iter().enumerate() {
            let dir = self.data.hearing(&h.id);
            let (mut log, entries, torn) =
                HearingLog::open(dir.clone(), Some(self.index.clone()), self.key.clone())?;
            for e in &entries {
                if let Record::Segment(s) = &e.record {
                    self.index.put_segment(s)?;
                }
            }
            let adopted = adopt_orphans(&dir, &mut log, &entries, &self.device_id)?;
            let doc = log.doc().clone();
            let last_end = doc
                .track_stats
                .values()
                .map(|t| t.media_end_ns)
                .max()
                .unwrap_or(0);
            // Media time keeps pace with the wall clock across the restart, so the gap
            // on the timeline is the time the box was not recording.
            let open_ev = doc.events.iter().find(|e| e.kind == EventKind::Open);
            let wall_at_base = open_ev
                .and_then(|e| chrono::DateTime::parse_from_rfc3339(&e.wall_time).ok())
                .map(|t| {
                    unix_ns(t.with_timezone(&chrono::Utc))
                        - open_ev.and_then(|e| e.media_time_ns).unwrap_or(0)
                })
                .unwrap_or_else(|| unix_ns(chrono::Utc::now()));
            let rt = self.running_time()?;
            let now_media = unix_ns(chrono::Utc::now()) - wall_at_base;
            let timebase = Timebase {
                base_rt_ns: rt - now_media,
                wall_at_base_unix_ns: wall_at_base,
            };
            let was_open = doc.state == HearingState::Open;
            let resumed = was_open && i + 1 == n;
            let mut ev = self.event(&h.id, EventKind::Recovery);
            ev.media_time_ns = Some(now_media);
            if was_open {
                ev.gap_from_ns = Some(last_end);
                // A resumed run begins `GATE_LEAD_NS` after now (within milliseconds:
                // `start_session` reads the clock again just after this is logged).
                let resume_at = if resumed {
                    now_media + GATE_LEAD_NS
                } else {
                    now_media
                };
                ev.gap_to_ns = Some(resume_at.max(last_end));
            }
            ev.text = Some(format!(
                "courtrec restarted after an unclean stop; {adopted} segment(s) cut off by it were recorded as partial{}{}",
                if torn > 0 {
                    format!("; a torn manifest line of {torn} bytes was dropped")
                } else {
                    String::new()
                },
                if resumed {
                    "; recording resumed"
                } else if was_open {
                    "; another hearing is newer, this one stays unrecorded until closed"
                } else {
                    "; the hearing stays in recess"
                }
            ));
            log.append(Record::Event(ev))?;
            let next_seqs = self
                .specs
                .iter()
                .map(|s| {
                    log.doc()
                        .track_stats
                        .get(&s.info.name)
                        .map_or(1, |t| t.last_seq + 1)
                })
                .collect();
            recovered.push(h.id.clone());
            if i + 1 == n {
                let mut a = Active {
                    run_start_ns: 0,
                    id: h.id.clone(),
                    log: Arc::new(Mutex::new(log)),
                    timebase,
                    session: None,
                    next_seqs,
                };
                self.capture.set_caption(&doc.meta.case_number);
                if resumed {
                    self.start_session(&mut a)?;
                }
                *active = Some(a);
            }
        }
        self.flush_index();
        Ok(recovered)
    }
}

fn append(log: &Arc<Mutex<HearingLog>>, ev: EventRecord) -> Result<HearingDoc> {
    let mut l = log
        .lock()
        .map_err(|_| err!(Internal, "hearing log lock poisoned"))?;
    l.append(Record::Event(ev))?;
    Ok(l.doc().clone())
}

/// Records segment files that exist on disk but not in the manifest (cut off by a crash
/// or a write error). A torn last TS packet is cut first: it cannot be decoded, and the
/// recorded hash must describe the file as it stays. Returns how many were adopted.
pub fn adopt_orphans(
    dir: &HearingDir,
    log: &mut HearingLog,
    entries: &[Entry],
    device_id: &str,
) -> Result<usize> {
    let hearing_id = dir.id().unwrap_or_default().to_string();
    let mut known: BTreeMap<String, ()> = BTreeMap::new();
    for e in entries {
        if let Record::Segment(s) = &e.record {
            known.insert(s.file.clone(), ());
        }
    }
    let wall_at_base = entries.iter().find_map(|e| match &e.record {
        Record::Event(ev) if ev.kind == EventKind::Open => {
            chrono::DateTime::parse_from_rfc3339(&ev.wall_time)
                .ok()
                .map(|t| unix_ns(t.with_timezone(&chrono::Utc)) - ev.media_time_ns.unwrap_or(0))
        }
        _ => None,
    });
    let tracks_dir = dir.root.join("tracks");
    let Ok(tracks) = std::fs::read_dir(&tracks_dir) else {
        return Ok(0);
    };
    let mut orphans = Vec::new();
    for t in tracks.flatten() {
        let track = t.file_name().to_string_lossy().to_string();
        let Ok(files) = std::fs::read_dir(t.path()) else {
            continue;
        };
        for f in files.flatten() {
            let name = f.file_name().to_string_lossy().to_string();
            let Some(seq) = name.strip_suffix(".ts").and_then(|s| s.parse::<u64>().ok()) else {
                continue;
            };
            let rel = HearingDir::segment_rel(&track, seq);
            if !known.contains_key(&rel) {
                orphans.push((track.clone(), seq, rel));
            }
        }
    }
    orphans.sort();
    for (track, seq, rel) in &orphans {
        let sealed = archive::seal_file(&dir.root.join(rel))?;
        let (start, dur) = match sealed.summary.main_pid() {
            Some((_, p)) => {
                let to_ns = |t: i64| {
                    (t - crate::recording::tsmux::PTS_OFFSET_90K) * 1_000_000_000 / ts::CLOCK_HZ
                };
                (
                    to_ns(p.min_pts_90k),
                    (to_ns(p.max_pts_90k) - to_ns(p.min_pts_90k)).max(0) as u64,
                )
            }
            None => (0, 0),
        };
        let rec = SegmentRecord {
            hearing_id: hearing_id.clone(),
            device_id: device_id.to_string(),
            track: track.clone(),
            seq: *seq,
            file: rel.clone(),
            bytes: sealed.bytes,
            sha256: sealed.sha256,
            media_start_ns: start,
            media_duration_ns: dur,
            wall_start: format_wall(chrono::DateTime::from_timestamp_nanos(
                wall_at_base.unwrap_or(0) + start,
            )),
            partial: true,
        };
        log.append(Record::Segment(rec))?;
    }
    Ok(orphans.len())
}
