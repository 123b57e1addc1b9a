//! The archive server's export log (`DATA/export-log/`): exports made from the court's
//! archive are recorded here, signed by the archive server's own key, and never in the
//! recording box's manifest (which only the box signs). Same format as the device log:
//! a hash-chained `manifest.jsonl` of hearing records (`export` events naming the
//! hearing), with a C2SP checkpoint (origin `courtrec/<server id>/export-log`) after
//! every line.
//!
//! A bundle made there carries its export line, the inclusion proof and the signed
//! checkpoint ([`Issuer`]): the verifier reads the range and tracks from that signed
//! line, as from a box's own export event.

use crate::checkpoint::Checkpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::Manifest;
use crate::records::{EventRecord, Record, format_wall};
use crate::signing::DeviceKey;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The `hearing` part of the export log's checkpoint origin.
pub const LOG_NAME: &str = "export-log";

/// Who made an export that is not in the hearing's own manifest, and the proof of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Issuer {
    /// The archive server's id and verifier key.
    pub device_id: String,
    pub vkey: String,
    /// The export's line in the export log (0-based), its exact text and its RFC 9162
    /// inclusion proof (base64) against the checkpoint of `tree_size` lines.
    pub n: u64,
    pub text: String,
    pub proof: Vec<String>,
    pub tree_size: u64,
    /// That checkpoint: a signed note.
    pub note: String,
}

struct Inner {
    manifest: Manifest<Record>,
    last_checkpoint: u64,
}

pub struct ExportLog {
    dir: PathBuf,
    device_id: String,
    key: Arc<DeviceKey>,
    inner: Mutex<Inner>,
}

impl ExportLog {
    /// Opens (or creates) the export log in `dir`.
    pub fn open(dir: &Path, device_id: &str, key: Arc<DeviceKey>) -> Result<ExportLog> {
        std::fs::create_dir_all(dir.join("checkpoints"))
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let vkey = format!("{}\n", key.verifier().to_vkey());
        if std::fs::read_to_string(dir.join("device.vkey"))
            .ok()
            .as_deref()
            != Some(&vkey)
        {
            crate::write_atomic(&dir.join("device.vkey"), vkey.as_bytes())?;
        }
        let (manifest, _) = Manifest::open_as(&dir.join("manifest.jsonl"), "export log")?;
        let last_checkpoint = crate::checkpoint::sizes_in(&dir.join("checkpoints"))
            .into_iter()
            .filter(|&s| s <= manifest.len())
            .max()
            .unwrap_or(0);
        Ok(ExportLog {
            dir: dir.to_path_buf(),
            device_id: device_id.to_string(),
            key,
            inner: Mutex::new(Inner {
                manifest,
                last_checkpoint,
            }),
        })
    }

    /// Appends an export event (durable when this returns), signs a checkpoint over
    /// the whole log, and returns the proof a bundle carries.
    pub fn record(&self, ev: EventRecord) -> Result<Issuer> {
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| Error::new(ErrorKind::Internal, "export log lock poisoned"))?;
        let entry = inner.manifest.append(Record::Event(ev))?;
        let size = inner.manifest.len();
        let cp = Checkpoint {
            device_id: self.device_id.clone(),
            hearing_id: LOG_NAME.to_string(),
            size,
            root: inner.manifest.root(),
            time: format_wall(chrono::Utc::now()),
            prev: inner.last_checkpoint,
            closed: false,
        };
        let note = self.key.sign_note(&cp.body())?;
        crate::write_atomic(
            &self
                .dir
                .join("checkpoints")
                .join(Checkpoint::file_name(size)),
            note.as_bytes(),
        )?;
        inner.last_checkpoint = size;
        // The proof is over the exact bytes on disk.
        let bytes = std::fs::read(self.dir.join("manifest.jsonl"))
            .map_err(|e| Error::io("reading the export log", e))?;
        let report: crate::manifest::ReadReport<Record> =
            crate::manifest::parse(&bytes, "export log")?;
        let text = bytes
            .split(|&b| b == b'\n')
            .nth(entry.n as usize)
            .map(|l| String::from_utf8_lossy(l).to_string())
            .unwrap_or_default();
        let levels = crate::merkle::Levels::new(report.leaves);
        Ok(Issuer {
            device_id: self.device_id.clone(),
            vkey: self.key.verifier().to_vkey(),
            n: entry.n,
            text,
            proof: levels
                .inclusion_proof(entry.n as usize, size as usize)
                .iter()
                .map(|h| crate::b64(h))
                .collect(),
            tree_size: size,
            note,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The archive server's id (the `device_id` of its export events).
    pub fn device_id(&self) -> &str {
        &self.device_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::EventKind;

    #[test]
    fn each_export_is_signed_and_proven() {
        let tmp = tempfile::tempdir().unwrap();
        let key =
            Arc::new(DeviceKey::load_or_create(&tmp.path().join("k"), "courtrec/arc-1").unwrap());
        let log = ExportLog::open(&tmp.path().join("export-log"), "arc-1", key.clone()).unwrap();
        let ev = |h: &str| {
            EventRecord::new(
                h,
                "arc-1",
                EventKind::Export,
                "2026-12-01T00:00:00.000Z".into(),
            )
        };
        log.record(ev("h1")).unwrap();
        let iss = log.record(ev("h2")).unwrap();
        assert_eq!((iss.n, iss.tree_size), (1, 2));
        let body = key.verifier().verify_note(&iss.note).unwrap();
        let cp = Checkpoint::parse(&body).unwrap();
        assert_eq!((cp.hearing_id.as_str(), cp.prev), (LOG_NAME, 1));
        let proof: Vec<crate::merkle::Hash> = iss
            .proof
            .iter()
            .map(|p| {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(p)
                    .unwrap()
                    .try_into()
                    .unwrap()
            })
            .collect();
        assert!(crate::merkle::verify_inclusion(
            1,
            2,
            &crate::merkle::leaf_hash(iss.text.as_bytes()),
            &proof,
            &cp.root
        ));
        drop(log);
        let log = ExportLog::open(&tmp.path().join("export-log"), "arc-1", key).unwrap();
        assert_eq!(
            log.record(ev("h3")).unwrap().tree_size,
            3,
            "reopened, it goes on"
        );
    }
}
