//! Exports and verifications asked for through the API: queued, run one or two at a
//! time on low-priority threads (`nice 19`), so that a judge exporting an 8-hour
//! hearing never takes the cores the recording needs. Exports have a state and a
//! progress the API and the review page show; quotas per caller keep a party with an
//! access code from filling the disk, and bundles expire.

use super::bundle::{ExportRequest, ExportSummary};
use super::catalog::Catalog;
use super::index::HearingState;
use super::log::HearingLog;
use super::verify::Progress;
use crate::err;
use crate::error::Result;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportState {
    Queued,
    Running,
    Done,
    Failed,
}

/// An export as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ExportJob {
    pub id: String,
    pub hearing_id: String,
    pub state: ExportState,
    /// 0 to 1: bytes copied of the bytes to copy.
    pub progress: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub requested_by: String,
    pub requested_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<ExportSummary>,
    /// When the bundle is deleted (RFC 3339).
    pub expires_at: String,
}

/// How much each caller may export.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Exports one caller may have queued or running at once.
    pub pending_per_caller: usize,
    /// Exports one caller may start per day.
    pub per_caller_per_day: usize,
    /// How long a bundle is kept.
    pub expire_hours: u64,
    /// Free space that must remain after the bundle (the recording's reserve, kept).
    pub keep_free_bytes: u64,
}

struct Tracked {
    job: ExportJob,
    bytes_done: Arc<AtomicU64>,
    bytes_total: Arc<AtomicU64>,
}

type Task = Box<dyn FnOnce() + Send>;

struct Inner {
    jobs: BTreeMap<String, Tracked>,
    tasks: VecDeque<Task>,
    /// Per caller, the start times (unix s) of their exports in the last day.
    started: BTreeMap<String, Vec<i64>>,
    /// Worker threads alive, and how many of them wait for a task.
    workers: usize,
    idle: usize,
    /// Numbers the workers' thread names.
    spawned: usize,
}

/// A worker with nothing to do for this long ends; the next task starts one again.
/// Exports are rare on a courtroom box: a thread waiting all day for one is a thread
/// (and its stack) the recording could have.
const WORKER_IDLE_EXIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Makes the bundle of an export: on a box from the hearing's folder, the export
/// appended to its manifest and signed by the box; on the archive server from the
/// store, recorded in the server's own export log.
pub trait Maker: Send + Sync {
    fn make(
        &self,
        hearing_id: &str,
        out: &std::path::Path,
        req: &ExportRequest,
        progress: &dyn Progress,
    ) -> Result<ExportSummary>;
}

/// A box's exports (see [`Maker`]).
pub struct BoxMaker {
    pub catalog: Arc<Catalog>,
}

impl Maker for BoxMaker {
    fn make(
        &self,
        hearing_id: &str,
        out: &std::path::Path,
        req: &ExportRequest,
        progress: &dyn Progress,
    ) -> Result<ExportSummary> {
        let Some(signer) = self.catalog.signer.clone() else {
            crate::bail!(
                Unavailable,
                "this box has no device key to sign the export with"
            );
        };
        let s = super::bundle::export(
            &self.catalog.data.hearing(hearing_id).root,
            out,
            req,
            signer,
            progress,
        )?;
        // The export event is in the manifest: bring the index's doc up to date.
        HearingLog::open(
            self.catalog.data.hearing(hearing_id),
            Some(Arc::new(self.catalog.index.clone())),
            None,
        )?;
        Ok(s)
    }
}

pub struct Exports {
    catalog: Arc<Catalog>,
    maker: Arc<dyn Maker>,
    limits: Limits,
    /// At most this many workers run at once.
    max_workers: usize,
    /// How long an idle worker waits before it ends ([`WORKER_IDLE_EXIT`]).
    idle_exit: std::time::Duration,
    inner: Mutex<Inner>,
    wake: Condvar,
}

/// Counts bytes copied for an export's progress.
struct Counter {
    done: Arc<AtomicU64>,
    total: Arc<AtomicU64>,
}

impl Progress for Counter {
    fn advance(&self, bytes: u64, _items: u64) {
        self.done.fetch_add(bytes, Ordering::Relaxed);
    }
    fn total(&self, bytes: u64, _items: u64) {
        self.total.store(bytes, Ordering::Relaxed);
    }
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Exports {
    /// Exports and verifications run on at most `workers` low-priority threads (1 or 2
    /// on a courtroom box), started when a task comes and ended after a while idle.
    pub fn start(
        catalog: Arc<Catalog>,
        maker: Arc<dyn Maker>,
        limits: Limits,
        workers: usize,
    ) -> Arc<Exports> {
        Arc::new(Exports {
            catalog,
            maker,
            limits,
            max_workers: workers.clamp(1, 4),
            idle_exit: WORKER_IDLE_EXIT,
            inner: Mutex::new(Inner {
                jobs: BTreeMap::new(),
                tasks: VecDeque::new(),
                started: BTreeMap::new(),
                workers: 0,
                idle: 0,
                spawned: 0,
            }),
            wake: Condvar::new(),
        })
    }

    fn work(&self) {
        // Lowest CPU priority for this thread only: the recording always wins.
        // SAFETY: setpriority on our own thread id has no memory effects.
        unsafe {
            let tid = nix::libc::syscall(nix::libc::SYS_gettid) as nix::libc::id_t;
            nix::libc::setpriority(nix::libc::PRIO_PROCESS, tid, 19);
        }
        loop {
            let task = {
                let Ok(mut g) = self.inner.lock() else { return };
                loop {
                    if let Some(t) = g.tasks.pop_front() {
                        break t;
                    }
                    g.idle += 1;
                    let (back, wait) = match self.wake.wait_timeout(g, self.idle_exit) {
                        Ok(r) => r,
                        Err(_) => return,
                    };
                    g = back;
                    g.idle -= 1;
                    if wait.timed_out() && g.tasks.is_empty() {
                        g.workers -= 1;
                        return;
                    }
                }
            };
            task();
        }
    }

    /// Queues `task`, starting a worker if none waits and fewer than the most run.
    fn push(self: &Arc<Self>, task: Task) -> Result<()> {
        let mut g = self
            .inner
            .lock()
            .map_err(|_| err!(Internal, "export queue lock poisoned"))?;
        g.tasks.push_back(task);
        if g.idle >= g.tasks.len() || g.workers >= self.max_workers {
            self.wake.notify_one();
            return Ok(());
        }
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("export-{}", g.spawned))
            .spawn(move || me.work());
        match spawned {
            Ok(_) => {
                g.workers += 1;
                g.spawned += 1;
                Ok(())
            }
            // The running workers will take the task; with none, refuse it now rather
            // than leave it queued for nobody.
            Err(e) if g.workers == 0 => {
                g.tasks.pop_back();
                Err(err!(Internal, "cannot start an export worker: {e}"))
            }
            Err(e) => {
                tracing::error!("cannot start another export worker: {e}");
                self.wake.notify_one();
                Ok(())
            }
        }
    }

    /// Runs `f` on a low-priority worker, in turn with the exports, and waits for it.
    pub fn run<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.push(Box::new(move || {
            let _ = tx.send(f());
        }))?;
        rx.recv()
            .map_err(|_| err!(Internal, "the worker stopped"))?
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.catalog.data.root.join("exports").join(id)
    }

    /// Queues an export of a closed hearing by `caller`; refused beyond the caller's
    /// quota or when the bundle would eat into the disk kept for recording.
    pub fn submit(self: &Arc<Self>, hearing_id: &str, req: ExportRequest) -> Result<ExportJob> {
        let doc = self.catalog.get(hearing_id)?;
        if doc.state != HearingState::Closed {
            crate::bail!(
                Conflict,
                "hearing {hearing_id} is {}: close it first (exports are made from the sealed record)",
                doc.state.as_str()
            );
        }
        // What the export would refuse later is refused now, with a clear answer.
        for t in &req.tracks {
            if !doc.meta.tracks.iter().any(|x| &x.name == t) {
                crate::bail!(
                    Invalid,
                    "hearing {hearing_id} has no track {t:?} (it has {})",
                    doc.meta
                        .tracks
                        .iter()
                        .map(|x| x.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        if let (Some(a), Some(b)) = (req.from_ns, req.to_ns)
            && a >= b
        {
            crate::bail!(Invalid, "the clip's start is not before its end");
        }
        let mut selected = 0usize;
        for t in doc
            .meta
            .tracks
            .iter()
            .filter(|t| req.tracks.is_empty() || req.tracks.contains(&t.name))
        {
            selected += self
                .catalog
                .index
                .segments(hearing_id, &t.name)?
                .iter()
                .filter(|s| {
                    let end = s.media_start_ns.saturating_add(s.media_duration_ns as i64);
                    req.from_ns.is_none_or(|a| end > a)
                        && req.to_ns.is_none_or(|b| s.media_start_ns < b)
                })
                .count();
        }
        if selected == 0 {
            crate::bail!(
                Invalid,
                "nothing was recorded on those tracks in that range"
            );
        }
        if let Some(t) = self.catalog.index.tampered_reason(hearing_id)? {
            crate::bail!(
                Conflict,
                "hearing {hearing_id} is read-only and is not exported: {t}"
            );
        }
        let estimate: u64 = doc
            .track_stats
            .iter()
            .filter(|(t, _)| req.tracks.is_empty() || req.tracks.contains(t))
            .map(|(_, s)| s.bytes)
            .sum();
        if let Some((free, _)) = super::disk_space(&self.catalog.data.root)
            && free < estimate.saturating_add(self.limits.keep_free_bytes)
        {
            crate::bail!(
                ResourceExhausted,
                "not enough free disk for this export ({} MB needed, {} MB free, {} MB kept for recording)",
                estimate / 1_000_000,
                free / 1_000_000,
                self.limits.keep_free_bytes / 1_000_000
            );
        }
        let id = format!(
            "{}-{}",
            // (An archive server's qualified id has '~': export ids are plain.)
            hearing_id.replace('~', "-"),
            uuid::Uuid::now_v7()
                .simple()
                .to_string()
                .get(20..)
                .unwrap_or("x")
        );
        let now = chrono::Utc::now();
        let job = ExportJob {
            id: id.clone(),
            hearing_id: hearing_id.to_string(),
            state: ExportState::Queued,
            progress: 0.0,
            error: None,
            requested_by: req.actor.clone(),
            requested_at: super::records::format_wall(now),
            summary: None,
            expires_at: super::records::format_wall(
                now + chrono::Duration::hours(self.limits.expire_hours as i64),
            ),
        };
        let done = Arc::new(AtomicU64::new(0));
        let total = Arc::new(AtomicU64::new(0));
        {
            let mut g = self
                .inner
                .lock()
                .map_err(|_| err!(Internal, "export queue lock poisoned"))?;
            let pending = g
                .jobs
                .values()
                .filter(|t| t.job.requested_by == req.actor)
                .filter(|t| matches!(t.job.state, ExportState::Queued | ExportState::Running))
                .count();
            if pending >= self.limits.pending_per_caller {
                crate::bail!(
                    TooMany,
                    "{pending} of your exports are still being made; wait for them to finish"
                );
            }
            let day = g.started.entry(req.actor.clone()).or_default();
            day.retain(|&t| t > now_unix() - 86_400);
            if day.len() >= self.limits.per_caller_per_day {
                crate::bail!(
                    TooMany,
                    "you have made {} exports in the last 24 hours, the most allowed",
                    day.len()
                );
            }
            day.push(now_unix());
            g.jobs.insert(
                id.clone(),
                Tracked {
                    job: job.clone(),
                    bytes_done: done.clone(),
                    bytes_total: total.clone(),
                },
            );
        }
        let me = self.clone();
        let hearing = hearing_id.to_string();
        let queued_id = id.clone();
        let queued = self.push(Box::new(move || {
            me.set_state(&id, ExportState::Running, None, None);
            let out = me.dir(&id);
            let res = me
                .maker
                .make(&hearing, &out, &req, &Counter { done, total });
            match res {
                Ok(s) => me.set_state(&id, ExportState::Done, None, Some(s)),
                Err(e) => {
                    tracing::warn!(export = %id, "export failed: {e}");
                    let _ = std::fs::remove_dir_all(&out);
                    me.set_state(&id, ExportState::Failed, Some(e.to_string()), None);
                }
            }
        }));
        // Not queued (no worker could start): the job says so rather than wait forever.
        if let Err(e) = queued {
            self.set_state(&queued_id, ExportState::Failed, Some(e.to_string()), None);
            return Err(e);
        }
        Ok(job)
    }

    fn set_state(
        &self,
        id: &str,
        state: ExportState,
        error: Option<String>,
        summary: Option<ExportSummary>,
    ) {
        if let Ok(mut g) = self.inner.lock()
            && let Some(t) = g.jobs.get_mut(id)
        {
            t.job.state = state;
            t.job.error = error;
            if summary.is_some() {
                t.job.summary = summary;
            }
        }
    }

    /// An export's state; one made before a restart is found on disk (done if its
    /// bundle is whole, failed if it was cut off).
    pub fn job(&self, id: &str) -> Result<ExportJob> {
        let ok = !id.is_empty()
            && id.len() <= 100
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let not_found = || err!(NotFound, "no export with id '{id}'");
        if !ok {
            return Err(not_found());
        }
        if let Ok(g) = self.inner.lock()
            && let Some(t) = g.jobs.get(id)
        {
            let mut job = t.job.clone();
            let total = t.bytes_total.load(Ordering::Relaxed);
            job.progress = match job.state {
                ExportState::Done => 1.0,
                _ if total == 0 => 0.0,
                _ => (t.bytes_done.load(Ordering::Relaxed) as f64 / total as f64).min(0.99),
            };
            return Ok(job);
        }
        let dir = self.dir(id);
        let desc: super::bundle::BundleDesc = std::fs::read(dir.join("bundle.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(not_found)?;
        Ok(ExportJob {
            id: id.to_string(),
            hearing_id: desc.hearing_id,
            state: ExportState::Done,
            progress: 1.0,
            error: None,
            requested_by: desc.exported_by,
            requested_at: desc.exported_at.clone(),
            summary: None,
            expires_at: chrono::DateTime::parse_from_rfc3339(&desc.exported_at)
                .map(|t| {
                    super::records::format_wall(
                        t.with_timezone(&chrono::Utc)
                            + chrono::Duration::hours(self.limits.expire_hours as i64),
                    )
                })
                .unwrap_or_default(),
        })
    }

    /// Whether an export of the hearing is queued or running (its files are read).
    pub fn busy(&self, hearing_id: &str) -> bool {
        self.inner.lock().is_ok_and(|g| {
            g.jobs.values().any(|t| {
                t.job.hearing_id == hearing_id
                    && matches!(t.job.state, ExportState::Queued | ExportState::Running)
            })
        })
    }

    /// The folder of a finished export.
    pub fn bundle_dir(&self, id: &str) -> Result<PathBuf> {
        let job = self.job(id)?;
        if job.state != ExportState::Done {
            crate::bail!(Conflict, "export {id} is {:?}, not done", job.state);
        }
        Ok(self.dir(id))
    }

    /// Deletes bundles past their expiry (called now and then by the daemon).
    pub fn expire(&self) {
        let Ok(rd) = std::fs::read_dir(self.catalog.data.root.join("exports")) else {
            return;
        };
        let horizon = std::time::Duration::from_secs(self.limits.expire_hours * 3600);
        for e in rd.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > horizon);
            let id = e.file_name().to_string_lossy().to_string();
            let running = self.inner.lock().is_ok_and(|g| {
                g.jobs.get(&id).is_some_and(|t| {
                    t.job.state != ExportState::Done && t.job.state != ExportState::Failed
                })
            });
            if old && !running {
                if let Err(err) = std::fs::remove_dir_all(e.path()) {
                    tracing::warn!(export = %id, "removing an expired export: {err}");
                } else if let Ok(mut g) = self.inner.lock() {
                    g.jobs.remove(&id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoMaker;
    impl Maker for NoMaker {
        fn make(
            &self,
            _: &str,
            _: &std::path::Path,
            _: &ExportRequest,
            _: &dyn Progress,
        ) -> Result<ExportSummary> {
            Err(err!(Internal, "not in this test"))
        }
    }

    fn exports(tmp: &std::path::Path, idle_exit: std::time::Duration) -> Arc<Exports> {
        let data = crate::archive::DataDir::new(tmp);
        let index = crate::archive::index::Index::open(&tmp.join("index")).unwrap();
        let limits = Limits {
            pending_per_caller: 1,
            per_caller_per_day: 1,
            expire_hours: 1,
            keep_free_bytes: 0,
        };
        let e = Exports::start(
            Catalog::new(data, index, None),
            Arc::new(NoMaker),
            limits,
            2,
        );
        let mut e = Arc::try_unwrap(e).ok().unwrap();
        e.idle_exit = idle_exit;
        Arc::new(e)
    }

    fn workers(e: &Exports) -> usize {
        e.inner.lock().unwrap().workers
    }

    #[test]
    fn workers_start_with_a_task_and_end_when_idle() {
        let tmp = tempfile::tempdir().unwrap();
        let e = exports(tmp.path(), std::time::Duration::from_millis(100));
        assert_eq!(workers(&e), 0, "no thread waits before any task");
        let name = e
            .run(|| Ok(std::thread::current().name().map(str::to_string)))
            .unwrap();
        assert_eq!(name.as_deref(), Some("export-0"));
        assert_eq!(workers(&e), 1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while workers(&e) > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the idle worker never ended"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // The next task starts a worker again.
        assert_eq!(e.run(|| Ok(7)).unwrap(), 7);
    }

    #[test]
    fn tasks_run_side_by_side_up_to_the_most_workers() {
        let tmp = tempfile::tempdir().unwrap();
        let e = exports(tmp.path(), std::time::Duration::from_secs(60));
        // Two tasks that each wait for the other: they finish only if both run at once.
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (e, b) = (e.clone(), barrier.clone());
                std::thread::spawn(move || {
                    e.run(move || {
                        b.wait();
                        Ok(())
                    })
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
        assert_eq!(workers(&e), 2);
        // A third task reuses an idle worker rather than starting one beyond the most.
        e.run(|| Ok(())).unwrap();
        assert_eq!(workers(&e), 2);
    }
}
