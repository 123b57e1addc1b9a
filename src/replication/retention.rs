//! Local retention: a box deletes a hearing's files only when all of the following
//! hold, and never otherwise:
//! - the hearing is closed and "replicated and verified" (the store confirmed every
//!   object's checksum and size), and a fresh listing of its prefix in the store shows
//!   every local file with its size and chunks covering every manifest line;
//! - with a TSA configured, its final checkpoint has its token;
//! - it is not under legal hold, not marked altered, and no export is reading it;
//! - it closed more than `local_retention_days` ago, or the disk is below
//!   `keep_free_bytes` (then the oldest such hearings go first).
//!
//! An unreplicated hearing is never deleted: under disk pressure the box raises the
//! `retention_blocked` alarm instead.
//!
//! How: a `released` line in the device log first (signed: the box says where the
//! hearing lives on), then the folder is renamed into `DATA/released/` (atomic: a
//! crash never leaves half a hearing among the hearings) and deleted from there; the
//! index keeps the hearing's record, marked released.

use super::Replicator;
use crate::archive::checkpoint::Checkpoint;
use crate::archive::devlog::{DevRecord, DeviceLog};
use crate::archive::index::{HearingState, Index, ReleasedDoc};
use crate::archive::records::{EventKind, format_wall};
use crate::error::Result;
use crate::store::layout;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// What the last retention pass found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RetentionStatus {
    /// The disk is below `keep_free_bytes` and hearings that must be kept fill it.
    pub blocked: bool,
    /// Hearings kept under disk pressure, and why.
    pub kept: Vec<(String, String)>,
    /// Hearings deleted from the box in the last pass.
    pub released: Vec<String>,
    pub free_bytes: u64,
    pub keep_free_bytes: u64,
    /// Passes run since start (this one included): court IT (and the tests) can tell a
    /// hearing kept by a pass from one no pass has looked at yet.
    pub passes: u64,
}

/// What retention needs from the rest of the daemon.
pub struct Policy {
    pub local_retention_days: Option<u32>,
    pub keep_free_bytes: u64,
    /// A TSA is configured: the final token must be there first.
    pub tsa: bool,
    /// An export or verification is reading the hearing now.
    pub busy: Arc<dyn Fn(&str) -> bool + Send + Sync>,
}

/// A closed hearing that may go, and when it closed (unix s).
struct Candidate {
    id: String,
    closed_unix_s: i64,
}

/// One pass: deletes what may go (oldest first), returns what it found.
pub fn run(
    r: &Replicator,
    index: &Index,
    devlog: &DeviceLog,
    policy: &Policy,
    now_unix_s: i64,
) -> RetentionStatus {
    let root = &r.data().root;
    // Leftovers of a deletion a crash interrupted (already recorded and renamed).
    if let Ok(rd) = std::fs::read_dir(root.join("released")) {
        for e in rd.flatten() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    let free = |_: ()| crate::archive::disk_space(root).map_or(u64::MAX, |(f, _)| f);
    let mut st = RetentionStatus {
        free_bytes: free(()),
        keep_free_bytes: policy.keep_free_bytes,
        ..Default::default()
    };
    let mut candidates: Vec<Candidate> = Vec::new();
    let docs = index.hearings().unwrap_or_default();
    for doc in &docs {
        if index.released(&doc.id).ok().flatten().is_some() {
            continue;
        }
        let why_kept = if doc.state != HearingState::Closed {
            Some("it is not closed".to_string())
        } else if !r.verified(&doc.id) {
            Some("it is not yet all in the archive".to_string())
        } else if let Ok(Some(h)) = index.hold(&doc.id) {
            Some(format!("it is on legal hold (set by {} at {})", h.by, h.at))
        } else if index.tampered_reason(&doc.id).ok().flatten().is_some() {
            Some("the box found it altered".to_string())
        } else if policy.tsa && !final_token(root, &doc.id) {
            Some("its trusted timestamp has not come yet".to_string())
        } else if (policy.busy)(&doc.id) {
            Some("an export is reading it".to_string())
        } else {
            None
        };
        match why_kept {
            Some(why) => {
                if doc.state == HearingState::Closed {
                    st.kept.push((doc.id.clone(), why));
                }
            }
            None => candidates.push(Candidate {
                id: doc.id.clone(),
                closed_unix_s: closed_at(doc).unwrap_or(now_unix_s),
            }),
        }
    }
    candidates.sort_by_key(|c| c.closed_unix_s);
    for c in candidates {
        let old_enough = policy
            .local_retention_days
            .is_some_and(|d| now_unix_s - c.closed_unix_s >= i64::from(d) * 86_400);
        let pressure = free(()) < policy.keep_free_bytes;
        if !(old_enough || pressure) {
            continue;
        }
        match release(r, index, devlog, &c.id) {
            Ok(()) => st.released.push(c.id),
            Err(e) => {
                tracing::error!(hearing = %c.id, "retention: kept: {e}");
                st.kept.push((c.id, e.to_string()));
            }
        }
    }
    st.free_bytes = free(());
    st.blocked = st.free_bytes < policy.keep_free_bytes && !st.kept.is_empty();
    st
}

fn closed_at(doc: &crate::archive::index::HearingDoc) -> Option<i64> {
    doc.events
        .iter()
        .rev()
        .find(|e| e.kind == EventKind::Close)
        .and_then(|e| chrono::DateTime::parse_from_rfc3339(&e.wall_time).ok())
        .map(|t| t.timestamp())
}

fn final_token(root: &std::path::Path, id: &str) -> bool {
    let cps = root.join("hearings").join(id).join("checkpoints");
    crate::archive::checkpoint::sizes_in(&cps)
        .last()
        .is_some_and(|&s| cps.join(Checkpoint::token_name(s)).is_file())
}

/// Checks the hearing in the store once more, records the release, deletes it here.
fn release(r: &Replicator, index: &Index, devlog: &DeviceLog, id: &str) -> Result<()> {
    let root = &r.data().root;
    let dir = root.join("hearings").join(id);
    let prefix = format!("{}{id}/", r.config().prefix);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::err!(Internal, "retention: {e}"))?;
    let listing = rt.block_on(r.store().list(&prefix, None))?;
    let held: HashMap<&str, u64> = listing
        .objects
        .iter()
        .filter_map(|(k, s)| Some((k.strip_prefix(&prefix)?, *s)))
        .collect();
    // Every local file, with its size.
    for l in crate::archive::fsread::walk(&dir) {
        if !l.is_file() || l.rel.ends_with(".tmp") {
            continue;
        }
        if l.rel == "manifest.jsonl" {
            continue;
        }
        let size = std::fs::metadata(dir.join(&l.rel))
            .map(|m| m.len())
            .unwrap_or(0);
        if held.get(l.rel.as_str()) != Some(&size) {
            // Something the queue had confirmed is gone from the store: read the
            // hearing again from the start (what is there is found, what is not sent).
            r.queue().forget_log(&format!("h/{id}"), None);
            crate::bail!(
                Conflict,
                "the archive does not hold {} as the box does; it will be sent again",
                l.rel
            );
        }
    }
    // Chunks covering every line.
    let m = crate::archive::manifest::read::<crate::archive::records::Record>(
        &dir.join("manifest.jsonl"),
    )?;
    let lines = m.entries.len() as u64;
    let mut chunks: Vec<(u64, u64)> = held
        .keys()
        .filter_map(|k| layout::parse_chunk(k.strip_prefix("manifest/")?))
        .collect();
    chunks.sort_unstable();
    let mut next = 0;
    for (a, b) in chunks {
        if a == next {
            next = b + 1;
        }
    }
    if next != lines {
        r.queue().forget_log(&format!("h/{id}"), None);
        crate::bail!(
            Conflict,
            "the archive's manifest chunks cover {next} of {lines} lines; they will be sent again"
        );
    }
    let size = crate::archive::checkpoint::sizes_in(&dir.join("checkpoints"))
        .last()
        .copied()
        .unwrap_or(0);
    let frontier_root = {
        let raw = std::fs::read(dir.join("manifest.jsonl"))
            .map_err(|e| crate::error::Error::io("reading the manifest", e))?;
        let leaves: Vec<_> = raw
            .split(|&b| b == b'\n')
            .take(size as usize)
            .map(crate::archive::merkle::leaf_hash)
            .collect();
        crate::archive::b64(&crate::archive::merkle::Levels::new(leaves).root(size as usize))
    };
    let to = format!("s3://{}/{prefix}", r.config().bucket);
    devlog.record(DevRecord::Released {
        hearing_id: id.to_string(),
        size,
        root: frontier_root,
        to: to.clone(),
        time: format_wall(chrono::Utc::now()),
    })?;
    let gone = root.join("released");
    std::fs::create_dir_all(&gone)
        .map_err(|e| crate::error::Error::io("creating the released folder", e))?;
    std::fs::rename(&dir, gone.join(id))
        .map_err(|e| crate::error::Error::io(format!("moving hearing {id} out"), e))?;
    crate::archive::sync_dir(&root.join("hearings"))?;
    index.put_released(
        id,
        &ReleasedDoc {
            at: format_wall(chrono::Utc::now()),
            to,
        },
    )?;
    r.queue().forget_log(&format!("h/{id}"), Some(id));
    if let Err(e) = std::fs::remove_dir_all(gone.join(id)) {
        tracing::warn!(hearing = %id, "retention: deleting the released folder: {e}");
    }
    tracing::info!(hearing = %id, "retention: deleted the box's copy; the archive keeps it");
    Ok(())
}
