//! The recording gate: routes capture's frames to one writer thread per track while a
//! hearing is open, and drops them otherwise.
//!
//! Frames arrive on GStreamer's streaming threads; the router never blocks them (a
//! bounded channel per track, `try_send`), so a slow disk cannot stall capture, and a
//! dropped frame is counted and raised as an alarm rather than lost silently.

use super::interleave::Interleaver;
pub use super::router::Router;
use super::segment::{FinishedSegment, SegmentSettings, SegmentWriter};
use crate::archive::HearingDir;
use crate::archive::log::HearingLog;
use crate::archive::records::{Record, SegmentRecord, format_wall};
use crate::capture::{Frame, TrackSpec};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Frames a track may have queued before new ones are dropped (about 10 s of video).
const QUEUE_FRAMES: usize = 512;

/// Maps the pipeline's running time to the hearing's media time and wall clock.
#[derive(Debug, Clone, Copy)]
pub struct Timebase {
    /// Running time that is media time 0.
    pub base_rt_ns: i64,
    /// Wall clock (Unix ns) at media time 0.
    pub wall_at_base_unix_ns: i64,
}

impl Timebase {
    pub fn media_ns(&self, rt_ns: i64) -> i64 {
        rt_ns - self.base_rt_ns
    }

    pub fn wall(&self, media_ns: i64) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_nanos(self.wall_at_base_unix_ns + media_ns)
    }
}

enum Msg {
    Frame(Frame),
    /// Finish at the first frame of every stream at or after `at_media_ns`.
    Stop {
        at_media_ns: i64,
    },
}

/// Where a track ended, reported when its writer thread finishes.
#[derive(Debug, Clone)]
pub struct TrackEnd {
    pub track: String,
    pub next_seq: u64,
}

/// Problems a writer reports to the rest of the daemon (alarms, fault events).
pub trait WriterReport: Send + Sync {
    fn track_failed(&self, track: &str, error: &crate::error::Error);
    fn track_ok(&self, track: &str);
    fn frames_dropped(&self, track: &str, count: u64);
}

struct TrackTx {
    tx: SyncSender<Msg>,
    dropped: AtomicU64,
    /// Where the run is cut (`i64::MAX` until [`Session::cut`]): the writer holds back
    /// frames at or after it even if they reached its queue before the stop message (a
    /// writer behind its queue, or a stop sent after a slow event append, must not let
    /// frames past the cut into the recording); the stop discards them, a lifted cut
    /// ([`Session::uncut`]) writes them after all.
    cut_at: Arc<AtomicI64>,
    progress: Arc<Progress>,
}

/// How far a writer has got, for the service watchdog: a writer with frames waiting
/// that has taken none for a while is wedged (a hung disk, a deadlock), and only a
/// restart of the process (the hearing resumes with a recovery event) gets the
/// recording going again.
struct Progress {
    sent: AtomicU64,
    taken: AtomicU64,
    /// When the writer last took a frame (or started), in ms since `EPOCH`.
    taken_at_ms: AtomicU64,
}

static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn now_ms() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

impl Progress {
    fn new() -> Progress {
        Progress {
            sent: AtomicU64::new(0),
            taken: AtomicU64::new(0),
            taken_at_ms: AtomicU64::new(now_ms()),
        }
    }

    fn took(&self) {
        self.taken.fetch_add(1, Ordering::Relaxed);
        self.taken_at_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Frames wait and none was taken for longer than `after`.
    fn stuck(&self, after: Duration) -> bool {
        self.sent.load(Ordering::Relaxed) > self.taken.load(Ordering::Relaxed)
            && now_ms().saturating_sub(self.taken_at_ms.load(Ordering::Relaxed))
                > after.as_millis() as u64
    }
}

/// One recording run of a hearing (from open or resume to recess or close).
pub struct Session {
    pub hearing_id: String,
    pub timebase: Timebase,
    /// Frames before this media time are not recorded; `i64::MAX` until [`Self::begin`].
    start_media_ns: AtomicI64,
    /// Frames that reached the session before [`Self::begin`] (held, not judged: a frame
    /// can arrive a little before the clock reads its timestamp). `None` once begun.
    early: Mutex<Option<Vec<(usize, Frame)>>>,
    tracks: Vec<TrackTx>,
    threads: Mutex<Vec<JoinHandle<TrackEnd>>>,
    names: Vec<String>,
}

impl Session {
    /// Starts writer threads for every track (recording nothing until [`Self::begin`]).
    /// `next_seqs[i]` continues track i's numbering.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        hearing_id: &str,
        dir: HearingDir,
        specs: &[TrackSpec],
        next_seqs: &[u64],
        settings: SegmentSettings,
        drain_timeout: Duration,
        timebase: Timebase,
        log: Arc<Mutex<HearingLog>>,
        device_id: &str,
        report: Arc<dyn WriterReport>,
    ) -> Session {
        let mut tracks = Vec::new();
        let mut threads = Vec::new();
        let mut names = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let (tx, rx) = mpsc::sync_channel(QUEUE_FRAMES);
            let cut_at = Arc::new(AtomicI64::new(i64::MAX));
            let progress = Arc::new(Progress::new());
            tracks.push(TrackTx {
                tx,
                dropped: AtomicU64::new(0),
                cut_at: cut_at.clone(),
                progress: progress.clone(),
            });
            names.push(spec.info.name.clone());
            let w = SegmentWriter::new(
                dir.clone(),
                &spec.info.name,
                &spec.streams,
                settings.clone(),
                next_seqs.get(i).copied().unwrap_or(1),
            );
            let ctx = TrackCtx {
                hearing_id: hearing_id.to_string(),
                device_id: device_id.to_string(),
                track: spec.info.name.clone(),
                streams: spec.streams.len(),
                drain_timeout,
                timebase,
                log: log.clone(),
                report: report.clone(),
                cut_at,
                progress,
            };
            let handle = std::thread::Builder::new()
                .name(format!("rec-{}", spec.info.name))
                .spawn(move || run_track(ctx, w, rx));
            match handle {
                Ok(h) => threads.push(h),
                Err(e) => {
                    let err = crate::err!(Internal, "cannot start writer thread: {e}");
                    report.track_failed(&spec.info.name, &err);
                }
            }
        }
        Session {
            hearing_id: hearing_id.to_string(),
            timebase,
            start_media_ns: AtomicI64::new(i64::MAX),
            early: Mutex::new(Some(Vec::new())),
            tracks,
            threads: Mutex::new(threads),
            names,
        }
    }

    /// Opens the gate: frames from `start_media_ns` on are recorded: those the router
    /// kept from before (`recent`, see [`Router`]), those that reached the session since
    /// it was installed, and all that follow.
    pub fn begin(&self, start_media_ns: i64, recent: Vec<(usize, Frame)>) {
        let Ok(mut early) = self.early.lock() else {
            return;
        };
        self.start_media_ns.store(start_media_ns, Ordering::Release);
        let recent = recent.into_iter().map(|(t, f)| (t, self.rebase(f)));
        for (track, f) in recent.chain(early.take().unwrap_or_default()) {
            if f.pts_ns >= start_media_ns {
                self.send(track, f);
            }
        }
    }

    /// Frame timestamps from the pipeline's running time to the hearing's media time.
    fn rebase(&self, mut f: Frame) -> Frame {
        f.pts_ns = self.timebase.media_ns(f.pts_ns);
        f.dts_ns = f.dts_ns.map(|d| self.timebase.media_ns(d));
        f
    }

    pub(super) fn route(&self, track: usize, f: Frame) {
        let f = self.rebase(f);
        let start = self.start_media_ns.load(Ordering::Acquire);
        if start == i64::MAX {
            // Not begun: hold the frame (under the lock `begin` takes, so none slips
            // between the two). At most a moment's worth: begin follows at once.
            if let Ok(mut early) = self.early.lock()
                && let Some(held) = early.as_mut()
            {
                if held.len() < QUEUE_FRAMES {
                    held.push((track, f));
                }
                return;
            }
            let start = self.start_media_ns.load(Ordering::Acquire);
            if f.pts_ns >= start {
                self.send(track, f);
            }
            return;
        }
        if f.pts_ns >= start {
            self.send(track, f);
        }
    }

    fn send(&self, track: usize, f: Frame) {
        let Some(t) = self.tracks.get(track) else {
            return;
        };
        // Full means the writer cannot keep up: count it (an alarm). Disconnected means
        // the writer already finished at a stop: those frames are past the cut.
        match t.tx.try_send(Msg::Frame(f)) {
            Ok(()) => {
                t.progress.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::TrySendError::Full(_)) => {
                t.dropped.fetch_add(1, Ordering::Relaxed);
                if let Some(name) = self.names.get(track) {
                    crate::metrics::recording()
                        .frames_dropped
                        .get_or_create(&crate::metrics::track(name))
                        .inc();
                }
            }
            Err(mpsc::TrySendError::Disconnected(_)) => {}
        }
    }

    /// The tracks whose writer has had frames waiting and taken none for `after`.
    pub fn stuck_writers(&self, after: Duration) -> Vec<String> {
        self.tracks
            .iter()
            .zip(&self.names)
            .filter(|(t, _)| t.progress.stuck(after))
            .map(|(_, n)| n.clone())
            .collect()
    }

    /// Cuts every track at `at_media_ns` at once: from now on no frame at or after it is
    /// written, whatever is still queued (they are held). [`Self::stop`] then seals the
    /// tracks; [`Self::uncut`] lets them go on (the event that was to stop them failed).
    pub fn cut(&self, at_media_ns: i64) {
        for t in &self.tracks {
            t.cut_at.fetch_min(at_media_ns, Ordering::AcqRel);
        }
    }

    /// Lifts a [`Self::cut`]: the held frames are written, nothing is lost.
    pub fn uncut(&self) {
        for t in &self.tracks {
            t.cut_at.store(i64::MAX, Ordering::Release);
        }
    }

    /// Stops every track at `at_media_ns` and waits for their writers to seal their last
    /// segment. Frames must keep flowing to the session meanwhile (frames captured before
    /// the cut are still in the encoders), so the caller removes it from the router only
    /// after this returns. Returns where each track ended.
    pub fn stop(&self, at_media_ns: i64, report: &dyn WriterReport) -> Vec<TrackEnd> {
        self.cut(at_media_ns);
        for (t, name) in self.tracks.iter().zip(&self.names) {
            // Blocking send: the stop must reach the writer even if its queue is full.
            // It fails only if the writer already ended, which is what we want anyway.
            let _ = t.tx.send(Msg::Stop { at_media_ns });
            let dropped = t.dropped.load(Ordering::Relaxed);
            if dropped > 0 {
                report.frames_dropped(name, dropped);
            }
        }
        let threads = match self.threads.lock() {
            Ok(mut g) => std::mem::take(&mut *g),
            Err(_) => Vec::new(),
        };
        threads
            .into_iter()
            .zip(self.names.iter())
            .map(|(h, name)| {
                h.join().unwrap_or_else(|_| {
                    tracing::error!(track = %name, "writer thread panicked");
                    TrackEnd {
                        track: name.clone(),
                        next_seq: 0,
                    }
                })
            })
            .collect()
    }
}

struct TrackCtx {
    hearing_id: String,
    device_id: String,
    track: String,
    streams: usize,
    drain_timeout: Duration,
    timebase: Timebase,
    log: Arc<Mutex<HearingLog>>,
    report: Arc<dyn WriterReport>,
    /// See [`TrackTx::cut_at`].
    cut_at: Arc<AtomicI64>,
    progress: Arc<Progress>,
}

impl TrackCtx {
    /// Records a finished (durable) segment in the manifest, then the index.
    fn record(&self, s: FinishedSegment) -> crate::error::Result<()> {
        let m = crate::metrics::recording();
        let label = crate::metrics::track(&self.track);
        m.segments_written.get_or_create(&label).inc();
        m.bytes_written.get_or_create(&label).inc_by(s.bytes);
        let rec = SegmentRecord {
            hearing_id: self.hearing_id.clone(),
            device_id: self.device_id.clone(),
            track: self.track.clone(),
            seq: s.seq,
            file: s.rel_path,
            bytes: s.bytes,
            sha256: s.sha256,
            media_start_ns: s.media_start_ns,
            media_duration_ns: s.media_duration_ns,
            wall_start: String::new(),
            partial: s.partial,
        };
        let mut log = self
            .log
            .lock()
            .map_err(|_| crate::err!(Internal, "hearing log lock poisoned"))?;
        // The wall-clock time follows the hearing's logged anchor (a `clock_step` logged
        // while this run records moves it), the rule the verifier checks.
        let anchor_ns = crate::archive::wallclock::anchor_ns(&log.doc().events, rec.media_start_ns)
            .unwrap_or(self.timebase.wall_at_base_unix_ns);
        let rec = SegmentRecord {
            wall_start: format_wall(chrono::DateTime::from_timestamp_nanos(
                anchor_ns.saturating_add(rec.media_start_ns),
            )),
            ..rec
        };
        log.append(Record::Segment(rec))?;
        Ok(())
    }
}

/// After a write error, wait this long before trying a new segment.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// How far (media time) the interleaver may hold one stream's frames waiting for another.
const INTERLEAVE_SPAN_NS: i64 = 1_000_000_000;

/// The writer side of a track: records what it seals, and handles failures. A failed
/// segment *write* (the disk) stops writing for `RETRY_AFTER`; a failed manifest
/// *append* does not stop the media: the sealed segments wait, in order, and are
/// listed as soon as an append succeeds (or adopted at the next start). Either raises
/// the track's alarm until it clears.
struct TrackOut {
    w: SegmentWriter,
    /// When the last segment write failed, for the back-off.
    write_failed_at: Option<Instant>,
    /// Sealed, durable segments whose manifest line could not be written yet (the
    /// append failed and was undone): retried in order before any later one, so the
    /// track's lines stay in sequence and no recorded second is left out.
    unrecorded: std::collections::VecDeque<FinishedSegment>,
    /// When listing a segment last failed: retried after `RETRY_AFTER`, not at every
    /// frame (a failing disk would flood the log).
    record_failed_at: Option<Instant>,
    /// The track's alarm is up.
    alarmed: bool,
}

impl TrackOut {
    /// Records `segs` after the segments still waiting, in order.
    fn record(
        &mut self,
        ctx: &TrackCtx,
        segs: impl IntoIterator<Item = FinishedSegment>,
    ) -> crate::error::Result<()> {
        self.unrecorded.extend(segs);
        if self
            .record_failed_at
            .is_some_and(|t| t.elapsed() < RETRY_AFTER / 2)
        {
            return Ok(());
        }
        while let Some(s) = self.unrecorded.front() {
            if let Err(e) = ctx.record(s.clone()) {
                self.record_failed_at = Some(Instant::now());
                return Err(e);
            }
            self.unrecorded.pop_front();
        }
        self.record_failed_at = None;
        Ok(())
    }

    /// Raises or clears the track's alarm from what just happened.
    fn report(&mut self, ctx: &TrackCtx, err: Option<crate::error::Error>) {
        match err {
            Some(e) => {
                tracing::error!(track = %ctx.track, "recording failed: {e}");
                ctx.report.track_failed(&ctx.track, &e);
                self.alarmed = true;
            }
            None if self.alarmed
                && self.unrecorded.is_empty()
                && self.write_failed_at.is_none() =>
            {
                ctx.report.track_ok(&ctx.track);
                self.alarmed = false;
            }
            None => {}
        }
    }

    /// Seals the open segment at the end of a run and records everything waiting.
    fn finish(&mut self, ctx: &TrackCtx) {
        self.record_failed_at = None;
        let res = self.w.finish(None);
        let err = match res {
            Ok(s) => self.record(ctx, s).err(),
            Err(e) => Some(e),
        };
        self.report(ctx, err);
    }

    fn write(&mut self, ctx: &TrackCtx, f: Frame) {
        if let Some(t) = self.write_failed_at {
            if t.elapsed() < RETRY_AFTER {
                return;
            }
            self.write_failed_at = None;
        }
        let res = self.w.push(&f);
        // Segments sealed by this push are recorded whatever became of the push itself.
        let done = self.w.take_done();
        let mut err = self.record(ctx, done).err();
        if let Err(e) = res {
            // Seal what reached the disk (recorded, or waiting to be), then back off.
            match self.w.abandon() {
                Ok(s) => {
                    if let Err(e2) = self.record(ctx, s) {
                        tracing::error!(track = %ctx.track, "listing the interrupted segment: {e2}");
                    }
                }
                // Left on disk unlisted: the next start adopts it as partial.
                Err(e2) => {
                    tracing::error!(track = %ctx.track, "sealing the interrupted segment: {e2}")
                }
            }
            self.write_failed_at = Some(Instant::now());
            err = Some(e);
        }
        self.report(ctx, err);
    }
}

fn run_track(ctx: TrackCtx, w: SegmentWriter, rx: Receiver<Msg>) -> TrackEnd {
    let mut stop: Option<(i64, Instant)> = None;
    let mut held: Vec<Frame> = Vec::new();
    let mut passed = vec![false; ctx.streams];
    let mut il = Interleaver::new(ctx.streams, INTERLEAVE_SPAN_NS);
    let mut out = TrackOut {
        w,
        write_failed_at: None,
        unrecorded: Default::default(),
        record_failed_at: None,
        alarmed: false,
    };
    loop {
        let timeout = match stop {
            Some((_, deadline)) => deadline.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(3600),
        };
        match rx.recv_timeout(timeout) {
            Ok(Msg::Frame(f)) => {
                ctx.progress.took();
                if f.stream >= ctx.streams {
                    continue;
                }
                if let Some((at, _)) = stop
                    && f.pts_ns >= at
                {
                    passed[f.stream] = true;
                    if passed.iter().all(|p| *p) {
                        break;
                    }
                    continue;
                }
                if stop.is_none() {
                    let cut = ctx.cut_at.load(Ordering::Acquire);
                    if f.pts_ns >= cut {
                        // Past a cut whose stop has not come yet: held, not written.
                        if held.len() < QUEUE_FRAMES {
                            held.push(f);
                        }
                        continue;
                    }
                    if cut == i64::MAX && !held.is_empty() {
                        // The cut was lifted: what was held goes in, in order.
                        for h in held.drain(..) {
                            il.push(h);
                        }
                    }
                }
                il.push(f);
                while let Some(f) = il.pop_ready() {
                    out.write(&ctx, f);
                }
            }
            Ok(Msg::Stop { at_media_ns }) => {
                stop = Some((at_media_ns, Instant::now() + ctx.drain_timeout));
            }
            Err(RecvTimeoutError::Timeout) => {
                if stop.is_some() {
                    break; // drained as long as we may: seal with what we have
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    while let Some(f) = il.pop_any() {
        out.write(&ctx, f);
    }
    out.finish(&ctx);
    TrackEnd {
        track: ctx.track.clone(),
        next_seq: out.w.next_seq(),
    }
}

#[cfg(test)]
mod tests;
