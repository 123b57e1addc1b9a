//! The device log (`DATA/device-log/`): one signed, append-only log per box, in the
//! same format as a hearing (a hash-chained `manifest.jsonl` and C2SP checkpoints in
//! `checkpoints/`, origin `courtrec/<device>/device-log`), with a line for every
//! checkpoint of every hearing the box signs.
//!
//! Why: a hearing folder alone cannot tell "the recorder crashed before it closed"
//! from "someone removed the end, with its checkpoints". The device log can: it is a
//! later signed statement that the hearing once had `size` lines with root `root`. So
//! a truncated hearing is reported as *missing* (verify exit 11), not as unsealed; the
//! box refuses to sign (export, resume) a hearing that no longer matches what the log
//! says; and an export bundle carries the device-log line and checkpoint that commit to
//! the hearing's final size.
//!
//! Two processes may append (the daemon, and `courtrec export` run beside it): every
//! append holds an exclusive `flock` on `device-log/lock` and first catches up with
//! lines the other one wrote.

use crate::checkpoint::Checkpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::Manifest;
use crate::merkle::Hash;
use crate::records::{Entry, format_wall};
use crate::signedlog;
use crate::signing::DeviceKey;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The `hearing` part of the device log's checkpoint origin.
pub const LOG_NAME: &str = "device-log";

/// One line of the device log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DevRecord {
    /// The first line: whose log this is.
    Device { device_id: String, time: String },
    /// The box signed checkpoint `size` of a hearing, with this root (base64).
    Checkpoint {
        hearing_id: String,
        size: u64,
        root: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        closed: bool,
        time: String,
    },
    /// At a restart, the box adopted lines `from..to` (0-based, end exclusive) of a
    /// hearing written after its last checkpoint (a crash between a line and its
    /// signature): their chain extends that checkpoint and their segments match.
    Adopted {
        hearing_id: String,
        from: u64,
        to: u64,
        time: String,
    },
    /// The box found a hearing that no longer matches what it signed, and made it
    /// read-only.
    Tampered {
        hearing_id: String,
        reason: String,
        time: String,
    },
    /// The box deleted its own copy of a hearing once the court's archive (`to`)
    /// confirmed every object of it, up to checkpoint `size` with root `root`: the
    /// hearing lives on there, and its absence here is not a loss.
    Released {
        hearing_id: String,
        size: u64,
        root: String,
        to: String,
        time: String,
    },
}

impl DevRecord {
    pub fn hearing_id(&self) -> Option<&str> {
        match self {
            DevRecord::Device { .. } => None,
            DevRecord::Checkpoint { hearing_id, .. }
            | DevRecord::Adopted { hearing_id, .. }
            | DevRecord::Tampered { hearing_id, .. }
            | DevRecord::Released { hearing_id, .. } => Some(hearing_id),
        }
    }
}

/// What the device log last said of a hearing's checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signed {
    pub size: u64,
    pub root: Hash,
    pub closed: bool,
    /// Position of that line in the device log.
    pub line: u64,
}

/// Evidence from the device log for an export bundle: the line that records the
/// hearing's final checkpoint, its inclusion proof, and the device-log checkpoint
/// (a signed note) it is proven against.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevProof {
    pub n: u64,
    pub text: String,
    pub proof: Vec<String>,
    pub tree_size: u64,
    pub note: String,
}

struct Inner {
    manifest: Manifest<DevRecord>,
    last_checkpoint: u64,
    latest: HashMap<String, Signed>,
}

/// The open device log of this box.
pub struct DeviceLog {
    signer: signedlog::Signer,
    inner: Mutex<Inner>,
}

fn decode_root(b64: &str) -> Option<Hash> {
    B64.decode(b64).ok().and_then(|b| b.try_into().ok())
}

/// The latest checkpoint line of each hearing in `entries`.
pub fn latest_by_hearing(entries: &[Entry<DevRecord>]) -> HashMap<String, Signed> {
    let mut latest = HashMap::new();
    for e in entries {
        if let DevRecord::Checkpoint {
            hearing_id,
            size,
            root,
            closed,
            ..
        } = &e.record
            && let Some(root) = decode_root(root)
        {
            latest.insert(
                hearing_id.clone(),
                Signed {
                    size: *size,
                    root,
                    closed: *closed,
                    line: e.n,
                },
            );
        }
    }
    latest
}

impl DeviceLog {
    /// Opens the device log in `dir` (`DATA/device-log`), creating it on first start.
    pub fn open(dir: &Path, device_id: &str, key: Arc<DeviceKey>) -> Result<DeviceLog> {
        signedlog::prepare_dir(dir, &key)?;
        let log = DeviceLog {
            signer: signedlog::Signer::new(dir, device_id, key, LOG_NAME),
            inner: Mutex::new(Self::load(dir)?),
        };
        let empty = log.lock()?.manifest.is_empty();
        if empty {
            log.record(DevRecord::Device {
                device_id: device_id.to_string(),
                time: format_wall(chrono::Utc::now()),
            })?;
        }
        Ok(log)
    }

    fn load(dir: &Path) -> Result<Inner> {
        let (manifest, report) = Manifest::open_as(&dir.join("manifest.jsonl"), "devlog")?;
        let last_checkpoint = signedlog::last_checkpoint(dir, manifest.len());
        Ok(Inner {
            manifest,
            last_checkpoint,
            latest: latest_by_hearing(&report.entries),
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>> {
        self.inner
            .lock()
            .map_err(|_| Error::new(ErrorKind::Internal, "device log lock poisoned"))
    }

    /// Holds the cross-process lock of the device log.
    fn flock(&self) -> Result<nix::fcntl::Flock<std::fs::File>> {
        let path = self.signer.dir.join("lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| {
            Error::new(ErrorKind::Internal, format!("locking the device log: {e}"))
        })
    }

    /// Appends a record and signs a checkpoint over the whole log. The line is durable
    /// when this returns; a checkpoint that cannot be written is an error (the caller
    /// raises `signing_failed`), and the next append's checkpoint covers this line.
    pub fn record(&self, rec: DevRecord) -> Result<()> {
        let _flock = self.flock()?;
        let mut inner = self.lock()?;
        if !inner.manifest.unchanged_on_disk() {
            // Another process (`courtrec export`) appended: catch up before appending.
            *inner = Self::load(&self.signer.dir)?;
        }
        let entry = inner.manifest.append(rec)?;
        if let DevRecord::Checkpoint {
            hearing_id,
            size,
            root,
            closed,
            ..
        } = &entry.record
            && let Some(root) = decode_root(root)
        {
            inner.latest.insert(
                hearing_id.clone(),
                Signed {
                    size: *size,
                    root,
                    closed: *closed,
                    line: entry.n,
                },
            );
        }
        let size = inner.manifest.len();
        self.signer
            .sign(size, inner.manifest.root(), inner.last_checkpoint)?;
        inner.last_checkpoint = size;
        Ok(())
    }

    /// What the log last recorded of a hearing's checkpoints.
    pub fn latest(&self, hearing_id: &str) -> Option<Signed> {
        self.lock().ok()?.latest.get(hearing_id).copied()
    }

    /// Hearings the log has checkpoints of, with the latest of each.
    pub fn hearings(&self) -> HashMap<String, Signed> {
        self.lock().map(|i| i.latest.clone()).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        &self.signer.dir
    }

    /// The device log's line recording checkpoint `size` of `hearing_id`, proven
    /// against the device log's newest checkpoint (for an export bundle).
    pub fn proof(&self, hearing_id: &str, size: u64) -> Result<DevProof> {
        let _flock = self.flock()?;
        proof_in(&self.signer.dir, hearing_id, size)
    }
}

/// [`DeviceLog::proof`] from a device log folder (the archive server's copy of a
/// box's).
pub fn proof_in(dir: &Path, hearing_id: &str, size: u64) -> Result<DevProof> {
    {
        let bytes = std::fs::read(dir.join("manifest.jsonl"))
            .map_err(|e| Error::io("reading the device log", e))?;
        let report: crate::manifest::ReadReport<DevRecord> =
            crate::manifest::parse(&bytes, "device log")?;
        let tree_size = crate::checkpoint::sizes_in(&dir.join("checkpoints"))
            .into_iter()
            .filter(|&s| s <= report.entries.len() as u64)
            .max()
            .unwrap_or(0);
        let n = report.entries[..tree_size as usize]
            .iter()
            .rposition(|e| {
                matches!(&e.record, DevRecord::Checkpoint { hearing_id: h, size: s, .. } if h == hearing_id && *s == size)
            })
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Internal,
                    format!("the device log has no signed line for checkpoint {size} of hearing {hearing_id}"),
                )
            })?;
        let (text, proof) = signedlog::line_proof(&bytes, report.leaves, n as u64, tree_size);
        let note_path = dir
            .join("checkpoints")
            .join(Checkpoint::file_name(tree_size));
        let note = std::fs::read_to_string(&note_path)
            .map_err(|e| Error::io("reading the device log's checkpoint", e))?;
        Ok(DevProof {
            n: n as u64,
            text,
            proof,
            tree_size,
            note,
        })
    }
}

/// Where the device log of a hearing folder is, if the folder sits where a box (or the
/// archive's bucket) keeps it: `DATA/hearings/<id>` beside `DATA/device-log`, or
/// `<prefix><id>` beside `<prefix>device-log`.
pub fn beside(hearing_dir: &Path) -> Option<PathBuf> {
    let parent = hearing_dir.parent()?;
    [parent.join(LOG_NAME), parent.parent()?.join(LOG_NAME)]
        .into_iter()
        .find(|p| p.join("manifest.jsonl").is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_signed_and_two_writers_take_turns() {
        let tmp = tempfile::tempdir().unwrap();
        let key =
            Arc::new(DeviceKey::load_or_create(&tmp.path().join("k"), "courtrec/dev-1").unwrap());
        let dir = tmp.path().join("device-log");
        let a = DeviceLog::open(&dir, "dev-1", key.clone()).unwrap();
        let b = DeviceLog::open(&dir, "dev-1", key.clone()).unwrap();
        let cp = |h: &str, size: u64| DevRecord::Checkpoint {
            hearing_id: h.into(),
            size,
            root: B64.encode([size as u8; 32]),
            closed: false,
            time: "t".into(),
        };
        a.record(cp("h1", 3)).unwrap();
        b.record(cp("h2", 5)).unwrap();
        a.record(cp("h1", 7)).unwrap();
        let r: crate::manifest::ReadReport<DevRecord> =
            crate::manifest::read(&dir.join("manifest.jsonl")).unwrap();
        assert_eq!(
            r.entries.len(),
            4,
            "one chain, no fork between the two writers"
        );
        assert_eq!(a.latest("h1").unwrap().size, 7);
        assert_eq!(
            a.latest("h2").unwrap().size,
            5,
            "caught up with the other writer"
        );
        let v = key.verifier();
        let note = std::fs::read_to_string(dir.join("checkpoints/00000004.note")).unwrap();
        let body = Checkpoint::parse(&v.verify_note(&note).unwrap()).unwrap();
        assert_eq!((body.hearing_id.as_str(), body.prev), (LOG_NAME, 3));
        assert_eq!(body.root, crate::merkle::root(&r.leaves));
        let p = a.proof("h2", 5).unwrap();
        assert_eq!((p.n, p.tree_size), (2, 4));
        assert_eq!(
            beside(&tmp.path().join("hearings").join("h1")),
            Some(dir.clone())
        );
    }
}
