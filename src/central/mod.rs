//! The court's archive server (`courtrec archive serve`): reads every courtroom's
//! hearings from the bucket, keeps a rebuildable index of them, and serves them to
//! judges and parties with the same pages, API, roles and audit as a box, without
//! capture. Segments are streamed from the store through this server (every read is
//! audited; no presigned URLs); exports and verifications fetch them.
//!
//! Several archive servers may serve the same bucket: each only reads it, and keeps
//! its own index, users, grants, audit log and key.

pub mod export;
pub mod fleet;
pub mod sync;

use crate::archive::DataDir;
use crate::archive::index::Index;
use crate::config::archive::Archive;
use crate::error::Result;
use crate::monitor::{Alarm, Alarms, Severity};
use crate::store::{Store, StoreError, layout};
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A sealed hearing is looked at again this often (exports made on the box add chunks).
const RECHECK_SEALED: Duration = Duration::from_secs(600);

/// What the archive server knows of one hearing's mirror.
#[derive(Debug, Clone, Default)]
pub struct MirrorState {
    pub indexed_lines: u64,
    pub sealed: bool,
    pub problem: Option<String>,
    pub checked_at: Option<Instant>,
}

/// The last scan of the bucket.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncStatus {
    pub bucket: String,
    pub prefix: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_scan_at: Option<String>,
    pub last_scan_ms: u64,
    pub courtrooms: usize,
    pub hearings: usize,
    /// Why the last scan failed, in plain words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Objects or folders under the prefix that are neither a courtroom nor a hearing.
    pub not_hearings: Vec<String>,
    /// Hearings whose objects do not read as one, and why.
    pub unreadable: Vec<(String, String)>,
}

pub struct Central {
    pub cfg: Archive,
    pub store: Store,
    pub data: DataDir,
    pub index: Index,
    pub trust: crate::archive::verify::Trust,
    states: Mutex<HashMap<String, MirrorState>>,
    status: Mutex<SyncStatus>,
    fleet: Mutex<Vec<fleet::FleetEntry>>,
    alarms: Arc<Alarms>,
}

impl Central {
    /// Opens the archive (nothing is sent yet) and starts scanning the bucket.
    pub fn start(
        cfg: &Archive,
        data: DataDir,
        index: Index,
        trust: crate::archive::verify::Trust,
        alarms: Arc<Alarms>,
    ) -> Result<Arc<Central>> {
        let creds = cfg.credentials().map_err(|m| crate::err!(Invalid, "{m}"))?;
        let c = Arc::new(Central {
            store: Store::new(cfg, &creds)?,
            cfg: cfg.clone(),
            data,
            index,
            trust,
            states: Mutex::new(HashMap::new()),
            status: Mutex::new(SyncStatus {
                bucket: cfg.bucket.clone(),
                prefix: cfg.prefix.clone(),
                ..Default::default()
            }),
            fleet: Mutex::new(Vec::new()),
            alarms,
        });
        let me = c.clone();
        std::thread::Builder::new()
            .name("archive-scan".into())
            .spawn(move || me.scan_loop())
            .map_err(|e| crate::err!(Internal, "starting the archive scan: {e}"))?;
        Ok(c)
    }

    fn scan_loop(self: Arc<Self>) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!("archive scan: cannot start its runtime: {e}");
                return;
            }
        };
        loop {
            let t0 = Instant::now();
            let res = rt.block_on(self.scan_once());
            let ms = t0.elapsed().as_millis() as u64;
            if let Ok(mut st) = self.status.lock() {
                st.last_scan_at = Some(crate::archive::records::format_wall(chrono::Utc::now()));
                st.last_scan_ms = ms;
                st.error = res.as_ref().err().map(|e| format!("{}: {e}", e.plain()));
            }
            match &res {
                Ok(()) => self.alarms.clear("archive_unreachable"),
                Err(e) => {
                    tracing::warn!("archive scan: {e}");
                    self.alarms.update(Alarm {
                        key: "archive_unreachable".into(),
                        code: "archive_unreachable".into(),
                        severity: Severity::Warning,
                        source: None,
                        message: format!("The archive's store cannot be read: {}", e.plain()),
                        message_zh: "无法读取存档存储".into(),
                        action: "Hearings already found can still be searched; playback and exports wait for the store. Court IT: check the [archive] settings and the store.".into(),
                        action_zh: "已找到的庭审仍可检索；播放和导出需等待存储恢复。技术人员：请检查 [archive] 设置和存储。".into(),
                        since: crate::archive::records::format_wall(chrono::Utc::now()),
                    });
                }
            }
            std::thread::sleep(Duration::from_secs(self.cfg.scan_s));
        }
    }

    /// One pass over the bucket: courtrooms, their heartbeats and device logs, and
    /// every hearing not known to be sealed and unchanged.
    async fn scan_once(&self) -> std::result::Result<(), StoreError> {
        use futures_util::StreamExt;
        let found = sync::discover(self, &self.cfg.prefix).await?;
        let mut fleet = Vec::new();
        let mut hearings = 0;
        for bx in &found.boxes {
            hearings += bx.hearings.len();
            fleet.push(fleet::read(self, bx).await);
            if let Err(e) = sync::device_log(self, bx).await {
                tracing::warn!(room = %bx.room, "archive scan: the device log: {e}");
            }
            let due: Vec<(String, MirrorState)> = {
                let states = self.states.lock().map_err(|_| {
                    StoreError::new(crate::store::Fault::Other, "archive state lock poisoned")
                })?;
                bx.hearings
                    .iter()
                    .filter_map(|id| {
                        let st = states
                            .get(&layout::qualify(&bx.room, id))
                            .cloned()
                            .unwrap_or_default();
                        let fresh = st.sealed
                            && st.checked_at.is_some_and(|t| t.elapsed() < RECHECK_SEALED);
                        (!fresh).then(|| (id.clone(), st))
                    })
                    .collect()
            };
            let done: Vec<(String, MirrorState, std::result::Result<(), StoreError>)> =
                futures_util::stream::iter(due.into_iter().map(|(id, mut st)| async move {
                    let r = sync::hearing(self, bx, &id, &mut st).await;
                    st.checked_at = Some(Instant::now());
                    (id, st, r)
                }))
                .buffer_unordered(8)
                .collect()
                .await;
            let mut states = self.states.lock().map_err(|_| {
                StoreError::new(crate::store::Fault::Other, "archive state lock poisoned")
            })?;
            for (id, st, r) in done {
                let qid = layout::qualify(&bx.room, &id);
                if let Err(e) = r {
                    if !e.transient() {
                        tracing::warn!(hearing = %qid, "archive scan: {e}");
                    } else {
                        return Err(e);
                    }
                }
                states.insert(qid, st);
            }
        }
        if let Ok(mut f) = self.fleet.lock() {
            *f = fleet;
        }
        let unreadable = self
            .states
            .lock()
            .map(|s| {
                let mut v: Vec<(String, String)> = s
                    .iter()
                    .filter_map(|(q, st)| st.problem.clone().map(|p| (q.clone(), p)))
                    .collect();
                v.sort();
                v
            })
            .unwrap_or_default();
        if let Ok(mut st) = self.status.lock() {
            st.courtrooms = found.boxes.len();
            st.hearings = hearings;
            st.not_hearings = found.strays;
            st.unreadable = unreadable;
        }
        Ok(())
    }

    pub fn status(&self) -> SyncStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn fleet(&self) -> Vec<fleet::FleetEntry> {
        self.fleet.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// The prefix of a hearing known by its qualified id.
    pub fn hearing_prefix(&self, qid: &str) -> Option<String> {
        let (room, id) = layout::unqualify(qid)?;
        Some(if room.is_empty() {
            format!("{}{id}/", self.cfg.prefix)
        } else {
            format!("{}{room}/{id}/", self.cfg.prefix)
        })
    }

    /// The key of a file of a hearing (`tracks/cam1/00000001.ts`).
    pub fn key_of(&self, qid: &str, rel: &str) -> Option<String> {
        crate::archive::safe_rel(rel).then_some(())?;
        Some(format!("{}{rel}", self.hearing_prefix(qid)?))
    }

    /// Where a courtroom's device log is mirrored.
    pub fn device_log_dir(&self, room: &str) -> PathBuf {
        let name = if room.is_empty() {
            "_".to_string()
        } else {
            room.replace('/', "~")
        };
        self.data.root.join("device-logs").join(name)
    }

    /// Verifies a hearing where the archive keeps it (blocking: run it off the async
    /// workers): its mirrored files and every segment read from the store.
    pub fn verify(
        &self,
        qid: &str,
        progress: &dyn crate::archive::verify::Progress,
    ) -> Result<crate::archive::verify::Report> {
        let prefix = self
            .hearing_prefix(qid)
            .ok_or_else(|| crate::err!(NotFound, "no hearing with id '{qid}'"))?;
        let (room, _) = layout::unqualify(qid).unwrap_or_default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| crate::err!(Internal, "starting a runtime: {e}"))?;
        let objects = rt
            .block_on(self.store.list(&prefix, None))?
            .objects
            .into_iter()
            .filter_map(|(k, _)| k.strip_prefix(&prefix).map(str::to_string))
            .collect();
        let remote = crate::store::remote::S3Remote {
            store: self.store.clone(),
            prefix,
            objects,
            rt,
        };
        let devlog = self.device_log_dir(&room);
        let mut report = crate::archive::verify::verify_with(
            &self.data.hearing(qid).root,
            &self.trust,
            &crate::archive::verify::Options {
                device_log: devlog.join("manifest.jsonl").is_file().then_some(devlog),
                progress,
                remote: Some(&remote),
            },
        );
        report.path = format!("s3://{}/{}", self.cfg.bucket, remote.prefix);
        let doc = self
            .index
            .hearing(qid)?
            .ok_or_else(|| crate::err!(NotFound, "no hearing with id '{qid}'"))?;
        self.index.put_integrity(
            qid,
            &crate::archive::index::IntegrityDoc {
                status: report.worst().map_or("verified", |p| p.status()).into(),
                exit_code: report.exit_code,
                result: report.result.clone(),
                manifest_entries: doc.manifest_entries,
                checked_at: crate::archive::records::format_wall(chrono::Utc::now()),
            },
        )?;
        Ok(report)
    }
}
