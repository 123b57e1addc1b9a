//! The recording gate: routes capture's frames to the writer threads (a few, shared by
//! the tracks: see [`super::writer`]) while a hearing is open, and drops them otherwise.
//!
//! Frames arrive on GStreamer's streaming threads; the router never blocks them (a
//! bounded channel per writer thread, `try_send`), so a slow disk cannot stall capture, and a
//! dropped frame is counted and raised as an alarm rather than lost silently.

pub use super::router::Router;
use super::segment::{SegmentSettings, SegmentWriter};
use super::writer::{TrackCtx, TrackRun, run_group};
use crate::archive::HearingDir;
use crate::archive::log::HearingLog;
use crate::capture::{Frame, TrackSpec};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Frames per track a writer thread may have queued before new ones are dropped (about
/// 10 s of video).
pub(super) const QUEUE_FRAMES: usize = 512;

/// Writer threads per recording run, the tracks dealt among them in turn. Two, not one:
/// a track's write and hashing can go on while another's fsync waits for the disk.
const WRITER_THREADS: usize = 2;

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

pub(super) enum Msg {
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
    /// The queue of the writer thread this track is dealt to, and the track's place
    /// among that thread's tracks.
    tx: SyncSender<(usize, Msg)>,
    slot: usize,
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
pub(super) struct Progress {
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

    pub(super) fn took(&self) {
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

/// A writer thread, and the names of its tracks.
type WriterThread = (JoinHandle<Vec<TrackEnd>>, Vec<String>);

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
    threads: Mutex<Vec<WriterThread>>,
    names: Vec<String>,
}

impl Session {
    /// Starts the writer threads (recording nothing until [`Self::begin`]). `next_seqs[i]`
    /// continues track i's numbering.
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
        // Deal the tracks in turn: each gets a writer thread (group) and a place in it.
        let groups = WRITER_THREADS.min(specs.len()).max(1);
        let mut runs: Vec<Vec<TrackRun>> = (0..groups).map(|_| Vec::new()).collect();
        let mut group_names: Vec<Vec<String>> = vec![Vec::new(); groups];
        let mut dealt = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let g = i % groups;
            let cut_at = Arc::new(AtomicI64::new(i64::MAX));
            let progress = Arc::new(Progress::new());
            dealt.push((g, runs[g].len(), cut_at.clone(), progress.clone()));
            group_names[g].push(spec.info.name.clone());
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
            runs[g].push(TrackRun::new(ctx, w));
        }
        let (senders, receivers): (Vec<_>, Vec<_>) = runs
            .iter()
            .map(|group| mpsc::sync_channel::<(usize, Msg)>(QUEUE_FRAMES * group.len().max(1)))
            .unzip();
        // The session keeps only the tracks' senders: when it is dropped, the queues
        // disconnect and the threads end.
        let tracks = dealt
            .into_iter()
            .map(|(g, slot, cut_at, progress)| TrackTx {
                tx: senders[g].clone(),
                slot,
                dropped: AtomicU64::new(0),
                cut_at,
                progress,
            })
            .collect();
        drop(senders);
        let names = specs.iter().map(|s| s.info.name.clone()).collect();
        let mut threads = Vec::new();
        for (g, ((group, rx), names)) in
            runs.into_iter().zip(receivers).zip(group_names).enumerate()
        {
            let handle = std::thread::Builder::new()
                .name(format!("rec-writer-{g}"))
                .spawn(move || run_group(group, rx));
            match handle {
                Ok(h) => threads.push((h, names)),
                Err(e) => {
                    let err = crate::err!(Internal, "cannot start a writer thread: {e}");
                    for name in &names {
                        report.track_failed(name, &err);
                    }
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
        // the writer thread is gone (it failed to start, or ended): nothing can write it.
        match t.tx.try_send((t.slot, Msg::Frame(f))) {
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
            // It fails only if the writer thread is gone (it never started), and then
            // there is nothing to stop.
            let _ = t.tx.send((t.slot, Msg::Stop { at_media_ns }));
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
            .flat_map(|(h, names)| {
                h.join().unwrap_or_else(|_| {
                    tracing::error!(tracks = ?names, "writer thread panicked");
                    names
                        .into_iter()
                        .map(|track| TrackEnd { track, next_seq: 0 })
                        .collect()
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
