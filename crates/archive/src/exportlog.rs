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

use crate::error::{Error, ErrorKind, Result};
use crate::manifest::Manifest;
use crate::records::{EventRecord, Record};
use crate::signedlog;
use crate::signing::DeviceKey;
use serde::{Deserialize, Serialize};
use std::path::Path;
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
    signer: signedlog::Signer,
    inner: Mutex<Inner>,
}

impl ExportLog {
    /// Opens (or creates) the export log in `dir`.
    pub fn open(dir: &Path, device_id: &str, key: Arc<DeviceKey>) -> Result<ExportLog> {
        signedlog::prepare_dir(dir, &key)?;
        let (manifest, _) = Manifest::open_as(&dir.join("manifest.jsonl"), "export log")?;
        let last_checkpoint = signedlog::last_checkpoint(dir, manifest.len());
        Ok(ExportLog {
            signer: signedlog::Signer::new(dir, device_id, key, LOG_NAME),
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
        let note = self
            .signer
            .sign(size, inner.manifest.root(), inner.last_checkpoint)?;
        inner.last_checkpoint = size;
        let bytes = std::fs::read(self.signer.dir.join("manifest.jsonl"))
            .map_err(|e| Error::io("reading the export log", e))?;
        let report: crate::manifest::ReadReport<Record> =
            crate::manifest::parse(&bytes, "export log")?;
        let (text, proof) = signedlog::line_proof(&bytes, report.leaves, entry.n, size);
        Ok(Issuer {
            device_id: self.signer.device_id.clone(),
            vkey: self.signer.key.verifier().to_vkey(),
            n: entry.n,
            text,
            proof,
            tree_size: size,
            note,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.signer.dir
    }

    /// The archive server's id (the `device_id` of its export events).
    pub fn device_id(&self) -> &str {
        &self.signer.device_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Checkpoint;
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
