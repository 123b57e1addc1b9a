//! The hearing lifecycle of one courtroom, as the court rules describe it: recording
//! runs from "open" to "close" and is interrupted only by a recess with a reason; every
//! step is an event in the hearing's manifest with its wall-clock and media time.

use super::recorder::{Router, Session, Timebase, TrackEnd, WriterReport};
use super::segment::SegmentSettings;
use crate::archive::DataDir;
use crate::archive::catalog::Catalog;
use crate::archive::index::{HearingDoc, HearingState, Index};
use crate::archive::log::{DocSink, HearingLog, Signer};
use crate::archive::records::*;
use crate::capture::{CaptureControl, TrackSpec};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::{bail, err};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a new hearing is (the API's body, checked here).
#[derive(Debug, Clone)]
pub struct NewHearing {
    pub case_number: String,
    pub title: String,
    pub visibility: Visibility,
    pub courtroom: Option<String>,
    /// RFC 3339, e.g. `2026-11-27T09:30:00+08:00`.
    pub scheduled_start: Option<String>,
}

/// See [`HearingService::log_health`].
#[derive(Debug, Clone, Default)]
pub struct LogHealth {
    pub hearing_id: Option<String>,
    pub index_error: Option<String>,
    pub append_error: Option<String>,
    pub tampered: Option<String>,
}

/// The hearing currently open or in recess in this courtroom.
pub(super) struct Active {
    pub(super) id: String,
    pub(super) log: Arc<Mutex<HearingLog>>,
    pub(super) timebase: Timebase,
    pub(super) session: Option<Arc<Session>>,
    /// Where the current (or last) run began on the media timeline: nothing the clerk
    /// does afterwards can be logged before it.
    pub(super) run_start_ns: i64,
    pub(super) next_seqs: Vec<u64>,
}

/// How far ahead of "now" a run (open, resume) begins. The encoders are asked for a
/// keyframe at that instant; since no source has captured a frame that late yet, the
/// request is sure to reach every encoder before that frame does, and every video track
/// starts on a keyframe within one frame of the logged time even on a loaded machine.
/// (Asking for a keyframe at "now" raced the frames already queued in the encoders: on
/// a busy box a track could start two frames late.)
pub(super) const GATE_LEAD_NS: i64 = 200_000_000;

/// Runs the hearings of this courtroom.
pub struct HearingService {
    pub cfg: Arc<Config>,
    pub data: DataDir,
    pub index: Index,
    pub device_id: String,
    pub specs: Vec<TrackSpec>,
    pub capture: Arc<dyn CaptureControl>,
    pub router: Arc<Router>,
    pub report: Arc<dyn WriterReport>,
    /// Signs the hearings' checkpoints, and records them in the device log.
    pub(super) signer: Option<Signer>,
    pub catalog: Arc<Catalog>,
    pub(super) active: Mutex<Option<Active>>,
    /// Hearings recovery could not open at start-up (they are skipped, not fatal).
    pub(super) damaged: Mutex<Vec<(String, String)>>,
}

/// Test hook: `COURTREC_TEST_MEDIA_OFFSET_S` starts every new hearing's media timeline
/// that many seconds along, as if it had been open (recesses included) for so long, so
/// tests check a trial over several days (timestamp epochs, no overflow) without
/// waiting three days. Unset (as in production): 0.
fn test_media_offset_ns() -> i64 {
    std::env::var("COURTREC_TEST_MEDIA_OFFSET_S")
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .map_or(0, |s| {
            s.clamp(0, 400 * 24 * 3600).saturating_mul(1_000_000_000)
        })
}

fn now_wall() -> String {
    format_wall(crate::clock::now())
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
        catalog: Arc<Catalog>,
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
            signer: catalog.signer.clone(),
            catalog,
            active: Mutex::new(None),
            damaged: Mutex::new(Vec::new()),
        }
    }

    /// The index as the hearing logs keep it in step.
    pub(super) fn sink(&self) -> Option<Arc<dyn DocSink>> {
        Some(Arc::new(self.index.clone()))
    }

    /// Opens a hearing's log to append to it; a hearing that no longer matches what
    /// this box signed is marked altered and refused.
    pub(super) fn open_log(
        &self,
        id: &str,
    ) -> Result<(HearingLog, crate::archive::manifest::ReadReport)> {
        let (log, report) =
            HearingLog::open(self.data.hearing(id), self.sink(), self.signer.clone())?;
        if let Some(t) = log.tampered() {
            self.catalog.mark_tampered(id, t);
            bail!(Conflict, "hearing {id} is read-only: {t}");
        }
        Ok((log, report))
    }

    /// Hearings skipped at start-up because they could not be opened, with why.
    pub fn damaged(&self) -> Vec<(String, String)> {
        self.damaged.lock().map(|d| d.clone()).unwrap_or_default()
    }

    pub(super) fn lock(&self) -> Result<std::sync::MutexGuard<'_, Option<Active>>> {
        self.active
            .lock()
            .map_err(|_| err!(Internal, "hearing state lock poisoned"))
    }

    pub(super) fn event(&self, hearing_id: &str, kind: EventKind) -> EventRecord {
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
    pub(super) fn now_media(&self, a: &Active) -> Result<i64> {
        Ok(a.timebase
            .media_ns(self.running_time()?)
            .max(a.run_start_ns))
    }

    pub(super) fn running_time(&self) -> Result<i64> {
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
    pub(super) fn flush_index(&self) {
        if let Err(e) = self.index.flush() {
            tracing::error!("flushing the index: {e}");
        }
    }

    /// A hearing by id (see [`Catalog::get`]).
    pub fn get(&self, id: &str) -> Result<HearingDoc> {
        self.catalog.get(id)
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

    pub fn create(&self, req: NewHearing, actor: &str) -> Result<HearingDoc> {
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
            self.sink(),
            Record::Event(ev),
            self.signer.clone(),
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
        // Media time 0 is where recording begins (see `GATE_LEAD_NS`), unless a test
        // starts the timeline far along (a hearing in its third day).
        // Its wall-clock time is the one burned into the picture at that running time.
        let offset_ns = test_media_offset_ns();
        let rt = self.running_time()? + GATE_LEAD_NS;
        let timebase = Timebase {
            base_rt_ns: rt - offset_ns,
            wall_at_base_unix_ns: self.capture.wall_epoch_ns() + rt - offset_ns,
        };
        let (log, _) = self.open_log(id)?;
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
    pub(super) fn start_session(&self, a: &mut Active) -> Result<i64> {
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
        // The encoders rest between runs: they start on the frames from now on, well
        // before the keyframe asked for `GATE_LEAD_NS` ahead reaches them.
        self.capture.set_encoding(true);
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
        // Every frame up to `at` is written: nothing needs the encoders until the next run.
        self.capture.set_encoding(false);
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
        // Cut now: the event's append (fsyncs) must not let later frames in; lifted
        // again if the event cannot be written (the hearing then goes on recording).
        if let Some(sess) = &a.session {
            sess.cut(at);
        }
        let mut ev = self.event(id, EventKind::Recess);
        ev.media_time_ns = Some(at);
        ev.actor = Some(actor.to_string());
        ev.reason = Some(reason);
        ev.text = note.filter(|n| !n.trim().is_empty());
        if let Err(e) = append(&a.log, ev) {
            if let Some(sess) = &a.session {
                sess.uncut();
            }
            return Err(e);
        }
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
}

pub(super) fn append(log: &Arc<Mutex<HearingLog>>, ev: EventRecord) -> Result<HearingDoc> {
    let mut l = log
        .lock()
        .map_err(|_| err!(Internal, "hearing log lock poisoned"))?;
    l.append(Record::Event(ev))?;
    Ok(l.doc().clone())
}
