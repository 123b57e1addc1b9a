//! The recording gate: routes capture's frames to one writer thread per track while a
//! hearing is open, and drops them otherwise.
//!
//! Frames arrive on GStreamer's streaming threads; the router never blocks them (a
//! bounded channel per track, `try_send`), so a slow disk cannot stall capture, and a
//! dropped frame is counted and raised as an alarm rather than lost silently.

use super::interleave::Interleaver;
use super::segment::{FinishedSegment, SegmentSettings, SegmentWriter};
use crate::archive::HearingDir;
use crate::archive::log::HearingLog;
use crate::archive::records::{Record, SegmentRecord, format_wall};
use crate::capture::{Frame, FrameSink, TrackSpec};
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
            tracks.push(TrackTx {
                tx,
                dropped: AtomicU64::new(0),
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

    fn route(&self, track: usize, f: Frame) {
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
        if let Err(mpsc::TrySendError::Full(_)) = t.tx.try_send(Msg::Frame(f)) {
            t.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Stops every track at `at_media_ns` and waits for their writers to seal their last
    /// segment. Frames must keep flowing to the session meanwhile (frames captured before
    /// the cut are still in the encoders), so the caller removes it from the router only
    /// after this returns. Returns where each track ended.
    pub fn stop(&self, at_media_ns: i64, report: &dyn WriterReport) -> Vec<TrackEnd> {
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
}

impl TrackCtx {
    /// Records a finished (durable) segment in the manifest, then the index.
    fn record(&self, s: FinishedSegment) -> crate::error::Result<()> {
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
            wall_start: format_wall(self.timebase.wall(s.media_start_ns)),
            partial: s.partial,
        };
        let mut log = self
            .log
            .lock()
            .map_err(|_| crate::err!(Internal, "hearing log lock poisoned"))?;
        log.append(Record::Segment(rec))?;
        Ok(())
    }
}

/// After a write error, wait this long before trying a new segment.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// How far (media time) the interleaver may hold one stream's frames waiting for another.
const INTERLEAVE_SPAN_NS: i64 = 1_000_000_000;

/// The writer side of a track: records what it seals, and handles write errors
/// (alarm, retry after `RETRY_AFTER`).
struct TrackOut {
    w: SegmentWriter,
    failed_at: Option<Instant>,
}

impl TrackOut {
    fn handle(&mut self, ctx: &TrackCtx, res: crate::error::Result<Option<FinishedSegment>>) {
        let res = res.and_then(|s| match s {
            Some(s) => ctx.record(s),
            None => Ok(()),
        });
        match res {
            Ok(()) => {
                if self.failed_at.take().is_some() {
                    ctx.report.track_ok(&ctx.track);
                }
            }
            Err(e) => {
                tracing::error!(track = %ctx.track, "recording failed: {e}");
                ctx.report.track_failed(&ctx.track, &e);
                self.failed_at = Some(Instant::now());
            }
        }
    }

    fn write(&mut self, ctx: &TrackCtx, f: Frame) {
        if let Some(t) = self.failed_at
            && t.elapsed() < RETRY_AFTER
        {
            return;
        }
        let res = self.w.push(&f);
        // Segments sealed by this push are recorded whatever became of the push itself;
        // only the push's own outcome clears or raises the track's failure.
        let mut failed_now = false;
        for s in self.w.take_done() {
            if let Err(e) = ctx.record(s) {
                self.handle(ctx, Err(e));
                failed_now = true;
            }
        }
        match res {
            Ok(()) if failed_now => {}
            Ok(()) => self.handle(ctx, Ok(None)),
            Err(e) => {
                // Seal what reached the disk, then report the failure (alarm, retry).
                match self
                    .w
                    .abandon()
                    .and_then(|s| s.map_or(Ok(()), |s| ctx.record(s)))
                {
                    Ok(()) => {}
                    // Left on disk unrecorded: the next start adopts it as partial.
                    Err(e2) => {
                        tracing::error!(track = %ctx.track, "sealing the interrupted segment: {e2}")
                    }
                }
                self.handle(ctx, Err(e));
            }
        }
    }
}

fn run_track(ctx: TrackCtx, w: SegmentWriter, rx: Receiver<Msg>) -> TrackEnd {
    let mut stop: Option<(i64, Instant)> = None;
    let mut passed = vec![false; ctx.streams];
    let mut il = Interleaver::new(ctx.streams, INTERLEAVE_SPAN_NS);
    let mut out = TrackOut { w, failed_at: None };
    loop {
        let timeout = match stop {
            Some((_, deadline)) => deadline.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(3600),
        };
        match rx.recv_timeout(timeout) {
            Ok(Msg::Frame(f)) => {
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
    let res = out.w.finish(None);
    out.handle(&ctx, res);
    TrackEnd {
        track: ctx.track.clone(),
        next_seq: out.w.next_seq(),
    }
}

/// How much media per track the router keeps while no session runs (see [`Router`]).
const RECENT_NS: i64 = 1_000_000_000;

/// The frame sink capture pushes to: forwards to the open session, if any.
///
/// Frames can reach the router a little before the clock reads their timestamps, so a
/// session cannot simply start with "frames from now on": a keyframe stamped just after
/// the start may already have gone by (and the encoder, having just made one, will not
/// force another, so the track would start a whole keyframe interval late). While no
/// session runs, the router therefore keeps the last second of each track;
/// [`Router::install`] hands it to the new session, whose [`Session::begin`] keeps
/// what is at or after the start.
pub struct Router {
    state: Mutex<RouterState>,
    /// Frames seen per track since start, recording or not.
    seen: Vec<AtomicU64>,
    /// When each track last delivered a frame, in ms since `epoch` (0: never).
    last_frame_ms: Vec<AtomicU64>,
    epoch: Instant,
}

struct RouterState {
    session: Option<Arc<Session>>,
    recent: Vec<std::collections::VecDeque<Frame>>,
}

impl Router {
    pub fn new(tracks: usize) -> Router {
        Router {
            state: Mutex::new(RouterState {
                session: None,
                recent: (0..tracks)
                    .map(|_| std::collections::VecDeque::new())
                    .collect(),
            }),
            seen: (0..tracks).map(|_| AtomicU64::new(0)).collect(),
            last_frame_ms: (0..tracks).map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
        }
    }

    /// How long each track has delivered no frame (None: not one yet). A recorded
    /// track can stall while its sources are fine (a compositor or an encoder that
    /// stops): the source alarms would not see it, so the monitor watches this.
    pub fn silences(&self) -> Vec<Option<Duration>> {
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        self.last_frame_ms
            .iter()
            .map(|t| match t.load(Ordering::Relaxed) {
                0 => None,
                at => Some(Duration::from_millis(now_ms.saturating_sub(at))),
            })
            .collect()
    }

    /// Makes `s` receive every frame from now on, and returns the frames of the last
    /// second (per track, oldest first) for its [`Session::begin`].
    pub fn install(&self, s: Arc<Session>) -> Vec<(usize, Frame)> {
        let Ok(mut st) = self.state.lock() else {
            return Vec::new();
        };
        st.session = Some(s);
        let mut out = Vec::new();
        for (track, q) in st.recent.iter_mut().enumerate() {
            out.extend(q.drain(..).map(|f| (track, f)));
        }
        out
    }

    /// Stops forwarding frames (after a session has stopped).
    pub fn clear(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.session = None;
        }
    }

    /// Waits until every track has delivered a frame (so its encoder runs and will
    /// honour a keyframe request), or the timeout passes. Returns the silent tracks.
    pub fn wait_all_flowing(&self, timeout: Duration) -> Vec<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            let silent: Vec<usize> = (0..self.seen.len())
                .filter(|&i| self.seen[i].load(Ordering::Relaxed) == 0)
                .collect();
            if silent.is_empty() || Instant::now() >= deadline {
                return silent;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl FrameSink for Router {
    fn push(&self, track: usize, frame: Frame) {
        if let Some(c) = self.seen.get(track) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(t) = self.last_frame_ms.get(track) {
            // Never 0, which means "no frame yet".
            t.store(
                self.epoch.elapsed().as_millis() as u64 + 1,
                Ordering::Relaxed,
            );
        }
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        if let Some(s) = st.session.as_ref() {
            s.route(track, frame);
        } else if let Some(q) = st.recent.get_mut(track) {
            let newest = frame.pts_ns;
            q.push_back(frame);
            while q.front().is_some_and(|f| f.pts_ns < newest - RECENT_NS) {
                q.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::index::Index;
    use crate::archive::records::{
        EventKind, EventRecord, HearingMeta, TrackInfo, TrackKind, Visibility,
    };
    use crate::recording::tsmux::StreamType;

    struct NoReport;
    impl WriterReport for NoReport {
        fn track_failed(&self, _: &str, _: &crate::error::Error) {}
        fn track_ok(&self, _: &str) {}
        fn frames_dropped(&self, _: &str, _: u64) {}
    }

    #[test]
    fn router_knows_how_long_each_track_has_been_silent() {
        let r = Router::new(2);
        assert_eq!(r.silences(), vec![None, None], "no frame yet");
        r.push(1, key(0));
        std::thread::sleep(Duration::from_millis(30));
        let s = r.silences();
        assert_eq!(s[0], None);
        assert!(
            s[1].is_some_and(|d| d >= Duration::from_millis(25)),
            "{s:?}"
        );
        r.push(1, key(40));
        assert!(r.silences()[1].is_some_and(|d| d < Duration::from_millis(25)));
    }

    fn key(pts_ms: i64) -> Frame {
        Frame {
            stream: 0,
            pts_ns: pts_ms * 1_000_000,
            dts_ns: None,
            duration_ns: 66_666_667,
            keyframe: true,
            discont: false,
            data: Box::new(vec![0u8; 100]),
        }
    }

    /// A one-track session (cam1) writing into a temporary hearing folder.
    fn session(tmp: &std::path::Path) -> (Session, Index) {
        let index = Index::open(&tmp.join("index")).unwrap();
        let dir = HearingDir {
            root: tmp.join("h1"),
        };
        let info = TrackInfo {
            name: "cam1".into(),
            kind: TrackKind::Video,
            role: "judge".into(),
            label: String::new(),
        };
        let created = Record::Event(EventRecord {
            hearing_id: "h1".into(),
            device_id: "d".into(),
            kind: EventKind::Created,
            wall_time: "2026-01-01T00:00:00.000Z".into(),
            media_time_ns: None,
            actor: None,
            reason: None,
            text: None,
            source: None,
            gap_from_ns: None,
            gap_to_ns: None,
            tracks: None,
            meta: Some(HearingMeta {
                case_number: "1".into(),
                title: "t".into(),
                courtroom: "c".into(),
                visibility: Visibility::Public,
                scheduled_start: None,
                tracks: vec![info.clone()],
            }),
        });
        let log = Arc::new(Mutex::new(
            HearingLog::create(dir.clone(), index.clone(), created, None).unwrap(),
        ));
        let spec = TrackSpec {
            info,
            streams: vec![StreamType::H264],
        };
        let session = Session::start(
            "h1",
            dir,
            &[spec],
            &[1],
            SegmentSettings {
                segment_target_ns: 2_000_000_000,
                fsync_interval_ns: 500_000_000,
                disk_reserve_bytes: 0,
            },
            Duration::from_millis(300),
            Timebase {
                base_rt_ns: 0,
                wall_at_base_unix_ns: 0,
            },
            log,
            "d",
            Arc::new(NoReport),
        );
        (session, index)
    }

    #[test]
    fn a_frame_that_arrives_before_begin_is_kept_if_it_is_at_or_after_the_start() {
        let tmp = tempfile::tempdir().unwrap();
        let (session, index) = session(tmp.path());
        // Frames reach the session before begin(): one before the start, one after it.
        session.route(0, key(900));
        session.route(0, key(1000));
        session.begin(950_000_000, Vec::new());
        session.route(0, key(1066));
        session.stop(2_000_000_000, &NoReport);
        let segs = index.segments("h1", "cam1").unwrap();
        assert_eq!(segs.len(), 1);
        assert_eq!(
            segs[0].media_start_ns, 1_000_000_000,
            "recording starts at the early keyframe at 1.000 s, not before the start"
        );
    }

    #[test]
    fn a_keyframe_that_went_by_before_the_session_existed_is_recorded() {
        // Frames can reach the router before the clock reads their timestamp: the
        // session must still get a keyframe stamped at or after its start.
        let tmp = tempfile::tempdir().unwrap();
        let (session, index) = session(tmp.path());
        let session = Arc::new(session);
        let router = Router::new(1);
        router.push(0, key(500));
        router.push(0, key(1000));
        let recent = router.install(session.clone());
        router.push(
            0,
            Frame {
                keyframe: false,
                ..key(1066)
            },
        );
        session.begin(950_000_000, recent);
        router.push(
            0,
            Frame {
                keyframe: false,
                ..key(1133)
            },
        );
        session.stop(2_000_000_000, &NoReport);
        router.clear();
        let segs = index.segments("h1", "cam1").unwrap();
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].media_start_ns, 1_000_000_000);
        assert_eq!(
            segs[0].media_duration_ns,
            1_133_000_000 + 66_666_667 - 1_000_000_000
        );
    }
}
