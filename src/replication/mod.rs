//! Replication of a box's archive to the court's object store, as it records.
//!
//! Two low-priority threads (`nice 19`, off the recording's): the **scanner** follows
//! the hearing folders, the device log and the audit log and queues what is new
//! ([`scan`]); the **uploader** sends the queue to the store and takes each object off
//! it only when the store confirmed it ([`upload`]). The queue is persisted
//! ([`queue`]): uploads resume after a restart, a network cut or a store outage, with
//! back-off. [`retention`] deletes local copies the archive holds, when the court's
//! rules allow. Status and lag go to the API, the console and the alarms.

pub mod alarms;
pub mod queue;
pub mod retention;
pub mod scan;
pub mod upload;

use crate::archive::DataDir;
use crate::archive::index::Index;
use crate::config::archive::Archive;
use crate::error::Result;
use crate::store::{Fault, Lock, Store};
use queue::{Item, Queue};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Seconds between two scans of the logs.
const SCAN_INTERVAL: Duration = Duration::from_secs(1);
/// Back-off after a failed upload: doubling from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(8);
/// How often local retention looks for hearings the box may delete.
const RETENTION_INTERVAL: Duration = Duration::from_secs(10);
/// An object that cannot be sent for a reason on the box is tried again after this.
const STUCK_RETRY: Duration = Duration::from_secs(600);

/// The replication as the API and the alarms see it.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// `ok`, `lagging` (the oldest object waiting is older than `lag_alarm_s`),
    /// `failing` (the last attempt failed), `starting`.
    pub state: &'static str,
    /// Age of the oldest object not yet confirmed by the store (0 when none waits).
    pub lag_s: f64,
    pub lag_bytes: u64,
    pub objects_pending: u64,
    /// Objects confirmed since the box started.
    pub objects_confirmed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_confirmed_at: Option<String>,
    /// The last failure, in plain words, then what the store said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
    /// Object Lock: `off` (not asked for), `enforced` (the store keeps COMPLIANCE
    /// retention on what we wrote), `not_enforced` (asked for, the store keeps none),
    /// `unknown` (nothing written yet).
    pub lock: &'static str,
    /// Objects that cannot be sent for a reason on the box or a conflict in the store.
    pub stuck: Vec<Stuck>,
    pub lag_alarm_s: u64,
    pub bucket: String,
    pub prefix: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stuck {
    pub key: String,
    pub reason: String,
}

/// One hearing's replication.
#[derive(Debug, Clone, Serialize)]
pub struct HearingReplication {
    /// `replicating` (objects waiting), `pending` (waiting while the store fails),
    /// `replicated` (everything so far is in the archive; the hearing is not closed),
    /// `verified` (closed, and the store confirmed every object's checksum and size:
    /// "replicated and verified").
    pub state: &'static str,
    pub lag_s: f64,
    pub lag_bytes: u64,
    pub objects_pending: u64,
    pub objects_confirmed: u64,
    pub bytes_confirmed: u64,
}

#[derive(Default)]
struct UpState {
    last_error: Option<(Fault, String)>,
    backoff: Option<Duration>,
    retry_at: Option<Instant>,
    stuck: BTreeMap<u64, (String, String, Instant)>,
    confirmed: u64,
    last_confirmed_at: Option<String>,
    locks_held: u64,
    locks_missing: u64,
    started: bool,
}

pub struct Replicator {
    cfg: Archive,
    data: DataDir,
    queue: Queue,
    store: Store,
    up: Mutex<UpState>,
    /// Each hearing's read state, from the scanner.
    logs: Mutex<HashMap<String, scan::LogState>>,
    wake: Condvar,
    wake_lock: Mutex<bool>,
    heartbeat: Mutex<Option<Vec<u8>>>,
    limiter: upload::Limiter,
    alarms: Arc<crate::monitor::Alarms>,
    retention: Mutex<retention::RetentionStatus>,
}

fn low_priority() {
    // SAFETY: setpriority on our own thread id has no memory effects.
    unsafe {
        let tid = nix::libc::syscall(nix::libc::SYS_gettid) as nix::libc::id_t;
        nix::libc::setpriority(nix::libc::PRIO_PROCESS, tid, 19);
    }
}

impl Replicator {
    /// Opens the queue and starts the scanner and the uploader. The store is not
    /// contacted before the uploader's first attempt: a box records whether or not
    /// its archive answers.
    pub fn start(
        cfg: &Archive,
        data: DataDir,
        index: &Index,
        alarms: Arc<crate::monitor::Alarms>,
    ) -> Result<Arc<Replicator>> {
        let creds = cfg.credentials().map_err(|m| crate::err!(Invalid, "{m}"))?;
        let store = Store::new(cfg, &creds)?;
        let queue = Queue::open(index)?;
        if queue.retarget(&format!("{} {} {}", cfg.endpoint, cfg.bucket, cfg.prefix))? {
            tracing::warn!(
                "replication: the archive's address, bucket or prefix changed: every hearing is checked against the new place"
            );
        }
        let r = Arc::new(Replicator {
            cfg: cfg.clone(),
            data,
            queue,
            store,
            up: Mutex::new(UpState::default()),
            logs: Mutex::new(HashMap::new()),
            wake: Condvar::new(),
            wake_lock: Mutex::new(false),
            heartbeat: Mutex::new(None),
            limiter: upload::Limiter::new(cfg.max_upload_mbit),
            alarms,
            retention: Mutex::new(retention::RetentionStatus::default()),
        });
        let (a, b) = (r.clone(), r.clone());
        std::thread::Builder::new()
            .name("repl-scan".into())
            .spawn(move || a.scan_loop())
            .map_err(|e| crate::err!(Internal, "starting the replication: {e}"))?;
        std::thread::Builder::new()
            .name("repl-upload".into())
            .spawn(move || b.upload_loop())
            .map_err(|e| crate::err!(Internal, "starting the replication: {e}"))?;
        Ok(r)
    }

    pub fn config(&self) -> &Archive {
        &self.cfg
    }

    fn scan_loop(self: Arc<Self>) {
        low_priority();
        let mut scanner = scan::Scanner::new(&self.data.root);
        let mut watch = alarms::Watch::default();
        loop {
            watch.update(&self.status(), &self.alarms);
            let mut any = false;
            let logs = scanner.logs();
            for log in &logs {
                match scanner.scan(log, &self.queue) {
                    Ok(q) => any |= q,
                    Err(e) => tracing::warn!(log = %log.name, "replication: reading the log: {e}"),
                }
            }
            // Hearings whose folders are gone (released) are no longer followed.
            let names: std::collections::HashSet<&str> =
                logs.iter().map(|l| l.name.as_str()).collect();
            scanner.followed.retain(|k, _| names.contains(k.as_str()));
            if let Ok(mut m) = self.logs.lock() {
                m.clear();
                for (name, f) in &scanner.followed {
                    if let Some(id) = name.strip_prefix("h/") {
                        m.insert(id.to_string(), f.state.clone());
                    }
                }
            }
            if any {
                self.notify();
            }
            std::thread::sleep(SCAN_INTERVAL);
        }
    }

    fn notify(&self) {
        if let Ok(mut g) = self.wake_lock.lock() {
            *g = true;
            self.wake.notify_all();
        }
    }

    fn wait(&self, d: Duration) {
        if let Ok(g) = self.wake_lock.lock()
            && let Ok((mut g, _)) = self.wake.wait_timeout_while(g, d, |woken| !*woken)
        {
            *g = false;
        }
    }

    fn upload_loop(self: Arc<Self>) {
        low_priority();
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!("replication: cannot start its runtime: {e}");
                return;
            }
        };
        let mut last_beat: Option<Instant> = None;
        loop {
            if last_beat.is_none_or(|t| t.elapsed() >= Duration::from_secs(self.cfg.heartbeat_s))
                && let Some(body) = self.heartbeat.lock().ok().and_then(|h| h.clone())
            {
                last_beat = Some(Instant::now());
                let key = format!("{}{}", self.cfg.prefix, crate::store::layout::STATUS);
                if let Err(e) = rt.block_on(self.store.put_mutable(&key, body)) {
                    tracing::debug!("replication: heartbeat not written: {e}");
                }
            }
            let retry_at = self.up.lock().ok().and_then(|u| u.retry_at);
            if let Some(at) = retry_at
                && at > Instant::now()
            {
                self.wait(at - Instant::now());
                continue;
            }
            let batch = {
                let stuck: Vec<u64> = self
                    .up
                    .lock()
                    .map(|mut u| {
                        u.stuck.retain(|_, (_, _, t)| t.elapsed() < STUCK_RETRY);
                        u.stuck.keys().copied().collect()
                    })
                    .unwrap_or_default();
                self.queue
                    .peek(self.cfg.parallel_uploads, |s| stuck.contains(&s))
            };
            if batch.is_empty() {
                if let Ok(mut u) = self.up.lock() {
                    u.started = true;
                }
                self.wait(Duration::from_millis(500));
                continue;
            }
            rt.block_on(self.send(batch));
        }
    }

    /// Uploads a batch at once; records what the store confirmed and what failed.
    async fn send(&self, batch: Vec<(u64, Item)>) {
        let until = (self.cfg.retention_days > 0)
            .then(|| chrono::Utc::now().timestamp() + i64::from(self.cfg.retention_days) * 86_400);
        let jobs = batch.iter().map(|(_, it)| {
            let key = format!("{}{}", self.cfg.prefix, it.key);
            async move {
                upload::upload(
                    &self.store,
                    &self.data.root,
                    &self.queue,
                    &self.limiter,
                    &key,
                    it,
                    until,
                )
                .await
            }
        });
        let results = futures_util::future::join_all(jobs).await;
        let Ok(mut up) = self.up.lock() else { return };
        up.started = true;
        let mut failed = false;
        for ((seq, it), res) in batch.iter().zip(results) {
            match res {
                Ok(c) => {
                    if let Err(e) = self.queue.done(*seq, it) {
                        tracing::error!(
                            "replication: the queue could not record a confirmed object: {e}"
                        );
                        continue;
                    }
                    up.confirmed += 1;
                    up.last_confirmed_at =
                        Some(crate::archive::records::format_wall(chrono::Utc::now()));
                    if let Some(until) = until {
                        match c.lock {
                            Lock::Compliance { until_unix_s } if until_unix_s >= until - 86_400 => {
                                up.locks_held += 1
                            }
                            _ => up.locks_missing += 1,
                        }
                    }
                    tracing::debug!(key = %it.key, bytes = c.bytes, already = c.already_there, "replicated");
                }
                Err(upload::UploadError::Store(e)) => {
                    failed = true;
                    tracing::warn!("replication: {}: {e}", e.plain());
                    up.last_error = Some((e.fault, format!("{}: {e}", e.plain())));
                }
                Err(upload::UploadError::Local(why)) => {
                    tracing::error!(key = %it.key, "replication: not sent: {why}");
                    up.stuck.insert(*seq, (it.key.clone(), why, Instant::now()));
                }
                Err(upload::UploadError::Conflict(why)) => {
                    tracing::error!(key = %it.key, "replication: {why}");
                    up.stuck.insert(*seq, (it.key.clone(), why, Instant::now()));
                }
            }
        }
        if failed {
            let next = up
                .backoff
                .map_or(BACKOFF_FIRST, |b| (b * 2).min(BACKOFF_MAX));
            up.backoff = Some(next);
            up.retry_at = Some(Instant::now() + next);
        } else {
            up.backoff = None;
            up.retry_at = None;
            up.last_error = None;
        }
    }

    /// Starts local retention (a pass every `RETENTION_INTERVAL`).
    pub fn start_retention(
        self: &Arc<Self>,
        index: Index,
        devlog: Arc<crate::archive::devlog::DeviceLog>,
        policy: retention::Policy,
    ) {
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("retention".into())
            .spawn(move || {
                low_priority();
                let watch = alarms::Watch::default();
                loop {
                    let st = retention::run(
                        &me,
                        &index,
                        &devlog,
                        &policy,
                        chrono::Utc::now().timestamp(),
                    );
                    watch.retention(&st, &me.alarms);
                    if let Ok(mut r) = me.retention.lock() {
                        let passes = r.passes + 1;
                        *r = retention::RetentionStatus { passes, ..st };
                    }
                    std::thread::sleep(RETENTION_INTERVAL);
                }
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start local retention: {e}");
        }
    }

    pub fn retention_status(&self) -> retention::RetentionStatus {
        self.retention.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The heartbeat to publish (the latest replaces any not yet sent).
    pub fn set_heartbeat(&self, body: Vec<u8>) {
        if let Ok(mut h) = self.heartbeat.lock() {
            *h = Some(body);
        }
    }

    /// Where the box's objects go, as `s3://bucket/prefix`.
    pub fn location(&self) -> String {
        format!("s3://{}/{}", self.cfg.bucket, self.cfg.prefix)
    }

    pub fn status(&self) -> Status {
        let p = self.queue.pending();
        let lag_s = lag_of(p.oldest_ms);
        let up = self.up.lock();
        let (last_error, fault, stuck, confirmed, last_at, held, missing, started) = match &up {
            Ok(u) => (
                u.last_error.as_ref().map(|(_, m)| m.clone()),
                u.last_error.as_ref().map(|(f, _)| *f),
                u.stuck
                    .values()
                    .map(|(k, r, _)| Stuck {
                        key: k.clone(),
                        reason: r.clone(),
                    })
                    .collect(),
                u.confirmed,
                u.last_confirmed_at.clone(),
                u.locks_held,
                u.locks_missing,
                u.started,
            ),
            Err(_) => (None, None, Vec::new(), 0, None, 0, 0, false),
        };
        let state = if !started {
            "starting"
        } else if fault.is_some() {
            "failing"
        } else if lag_s > self.cfg.lag_alarm_s as f64 {
            "lagging"
        } else {
            "ok"
        };
        Status {
            state,
            lag_s,
            lag_bytes: p.bytes,
            objects_pending: p.objects,
            objects_confirmed: confirmed,
            last_confirmed_at: last_at,
            last_error,
            fault,
            lock: match (self.cfg.retention_days, held, missing) {
                (0, _, _) => "off",
                (_, _, m) if m > 0 => "not_enforced",
                (_, h, _) if h > 0 => "enforced",
                _ => "unknown",
            },
            stuck,
            lag_alarm_s: self.cfg.lag_alarm_s,
            bucket: self.cfg.bucket.clone(),
            prefix: self.cfg.prefix.clone(),
        }
    }

    /// One hearing's replication.
    pub fn hearing(&self, id: &str) -> HearingReplication {
        let p = self.queue.pending_for(id);
        let c = self.queue.confirmed_for(id);
        let log = self.logs.lock().ok().and_then(|m| m.get(id).cloned());
        let failing = self
            .up
            .lock()
            .map(|u| u.last_error.is_some())
            .unwrap_or(false);
        let state = match (&log, p.objects) {
            (Some(l), 0) if l.sealed() => "verified",
            (Some(_), 0) => "replicated",
            _ if failing => "pending",
            (None, 0) => "pending",
            _ => "replicating",
        };
        HearingReplication {
            state,
            lag_s: lag_of(p.oldest_ms),
            lag_bytes: p.bytes,
            objects_pending: p.objects,
            objects_confirmed: c.objects,
            bytes_confirmed: c.bytes,
        }
    }

    /// Whether all of a hearing is in the archive, confirmed ("replicated and
    /// verified").
    pub fn verified(&self, id: &str) -> bool {
        self.hearing(id).state == "verified"
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn data(&self) -> &DataDir {
        &self.data
    }

    pub(crate) fn queue(&self) -> &Queue {
        &self.queue
    }
}

fn lag_of(oldest_ms: Option<i64>) -> f64 {
    oldest_ms.map_or(0.0, |t| {
        ((chrono::Utc::now().timestamp_millis() - t).max(0)) as f64 / 1000.0
    })
}
