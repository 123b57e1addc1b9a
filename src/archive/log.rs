//! A hearing's log: its manifest, the index doc derived from it, and the index, kept
//! in step behind one lock so the index never runs ahead of (or disagrees with) the
//! file; and its signed checkpoints.
//!
//! A checkpoint (`checkpoints/<tree size>.note`) is a C2SP signed note over the
//! RFC 9162 Merkle root of the manifest's first `size` lines:
//!
//! ```text
//! courtrec/<device id>/<hearing id>
//! <tree size>
//! <base64 root hash>
//! time <RFC 3339>
//! closed            (only on the final one, written with the close event)
//!
//! — courtrec/<device id> <base64 signature>
//! ```
//!
//! One is written after every event and at least every `CHECKPOINT_INTERVAL` while
//! segments arrive, so a crash leaves at most that much covered only by hashes.

use super::HearingDir;
use super::index::{HearingDoc, Index};
use super::manifest::Manifest;
use super::records::{Entry, Record};
use super::signing::DeviceKey;
use crate::error::Result;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest time between two checkpoints while a hearing records.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(30);

pub struct HearingLog {
    pub dir: HearingDir,
    manifest: Manifest,
    doc: HearingDoc,
    index: Index,
    signer: Option<Arc<DeviceKey>>,
    last_checkpoint: Option<Instant>,
}

impl HearingLog {
    /// Creates a new hearing folder with its `created` record.
    pub fn create(
        dir: HearingDir,
        index: Index,
        created: Record,
        signer: Option<Arc<DeviceKey>>,
    ) -> Result<HearingLog> {
        std::fs::create_dir_all(&dir.root)
            .map_err(|e| crate::error::Error::io(format!("creating {}", dir.root.display()), e))?;
        if let Some(parent) = dir.root.parent() {
            // The hearing's folder must survive a power cut once we answer "created".
            super::sync_dir(parent)?;
        }
        let (mut manifest, existing, _) = Manifest::open(&dir.manifest())?;
        if !existing.is_empty() {
            crate::bail!(
                Conflict,
                "hearing folder {} already has a manifest",
                dir.root.display()
            );
        }
        let entry = manifest.append(created)?;
        let doc = HearingDoc::from_entries(&[entry])?;
        index.put_hearing(&doc)?;
        let mut log = HearingLog {
            dir,
            manifest,
            doc,
            index,
            signer,
            last_checkpoint: None,
        };
        log.checkpoint(false);
        Ok(log)
    }

    /// Opens an existing hearing's log (cutting a torn last line), re-deriving its doc.
    /// Returns the log and the number of torn bytes removed.
    pub fn open(
        dir: HearingDir,
        index: Index,
        signer: Option<Arc<DeviceKey>>,
    ) -> Result<(HearingLog, Vec<Entry>, u64)> {
        let (manifest, entries, torn) = Manifest::open(&dir.manifest())?;
        let doc = HearingDoc::from_entries(&entries)?;
        index.put_hearing(&doc)?;
        Ok((
            HearingLog {
                dir,
                manifest,
                doc,
                index,
                signer,
                last_checkpoint: None,
            },
            entries,
            torn,
        ))
    }

    /// Appends a record durably, then updates the index.
    pub fn append(&mut self, record: Record) -> Result<Entry> {
        let entry = self.manifest.append(record)?;
        self.doc.apply(&entry.record);
        if let Record::Segment(s) = &entry.record {
            self.index.put_segment(s)?;
        }
        self.index.put_hearing(&self.doc)?;
        match &entry.record {
            Record::Event(ev) => self.checkpoint(ev.kind == super::records::EventKind::Close),
            Record::Segment(_) => {
                if self
                    .last_checkpoint
                    .is_none_or(|t| t.elapsed() >= CHECKPOINT_INTERVAL)
                {
                    self.checkpoint(false);
                }
            }
        }
        Ok(entry)
    }

    /// Signs and writes a checkpoint of the manifest as it is now. A failure (disk full)
    /// is logged, not returned: the line it covers is already durable and hashed in the
    /// chain, and the next checkpoint will cover it.
    fn checkpoint(&mut self, closed: bool) {
        let Some(key) = self.signer.as_ref() else {
            return;
        };
        let leaves = self.manifest.leaves();
        let root = super::merkle::root(leaves);
        let origin = format!(
            "courtrec/{}/{}",
            self.doc
                .events
                .first()
                .map(|e| e.device_id.as_str())
                .unwrap_or(""),
            self.doc.id
        );
        let mut body = format!(
            "{origin}\n{}\n{}\ntime {}\n",
            leaves.len(),
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, root),
            super::records::format_wall(chrono::Utc::now())
        );
        if closed {
            body.push_str("closed\n");
        }
        let res = key.sign_note(&body).and_then(|note| {
            let dir = self.dir.root.join("checkpoints");
            std::fs::create_dir_all(&dir)
                .map_err(|e| crate::error::Error::io(format!("creating {}", dir.display()), e))?;
            super::write_atomic(
                &dir.join(format!("{:08}.note", leaves.len())),
                note.as_bytes(),
            )
        });
        match res {
            Ok(()) => self.last_checkpoint = Some(Instant::now()),
            Err(e) => tracing::error!(hearing = %self.doc.id, "writing checkpoint: {e}"),
        }
    }

    pub fn doc(&self) -> &HearingDoc {
        &self.doc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::records::{EventKind, EventRecord, HearingMeta, Visibility};

    fn event(kind: EventKind) -> Record {
        Record::Event(EventRecord {
            hearing_id: "h1".into(),
            device_id: "dev-1".into(),
            kind,
            wall_time: "2026-01-01T00:00:00.000Z".into(),
            media_time_ns: Some(0),
            actor: None,
            reason: None,
            text: None,
            source: None,
            gap_from_ns: None,
            gap_to_ns: None,
            meta: (kind == EventKind::Created).then(|| HearingMeta {
                case_number: "1".into(),
                title: "t".into(),
                courtroom: "c".into(),
                visibility: Visibility::Public,
                scheduled_start: None,
                tracks: vec![],
            }),
        })
    }

    #[test]
    fn every_event_is_covered_by_a_signed_checkpoint_of_the_manifest_so_far() {
        let tmp = tempfile::tempdir().unwrap();
        let index = Index::open(&tmp.path().join("index")).unwrap();
        let key = Arc::new(
            DeviceKey::load_or_create(&tmp.path().join("device.key"), "courtrec/dev-1").unwrap(),
        );
        let dir = HearingDir {
            root: tmp.path().join("h1"),
        };
        let mut log = HearingLog::create(
            dir.clone(),
            index,
            event(EventKind::Created),
            Some(key.clone()),
        )
        .unwrap();
        for k in [EventKind::Open, EventKind::Mark, EventKind::Close] {
            log.append(event(k)).unwrap();
        }
        let lines: Vec<String> = std::fs::read_to_string(dir.manifest())
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        let leaves: Vec<_> = lines
            .iter()
            .map(|l| super::super::merkle::leaf_hash(l.as_bytes()))
            .collect();
        let verifier = key.verifier();
        for size in 1..=4usize {
            let note =
                std::fs::read_to_string(dir.root.join(format!("checkpoints/{size:08}.note")))
                    .unwrap();
            let body = verifier.verify_note(&note).unwrap();
            let fields: Vec<&str> = body.lines().collect();
            assert_eq!(fields[0], "courtrec/dev-1/h1");
            assert_eq!(fields[1], size.to_string());
            let root = base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                super::super::merkle::root(&leaves[..size]),
            );
            assert_eq!(
                fields[2], root,
                "checkpoint {size} signs the root of the first {size} lines"
            );
            assert_eq!(
                fields.last() == Some(&"closed"),
                size == 4,
                "only the last is marked closed"
            );
        }
        // An edited line no longer matches the signed root.
        let mut forged = leaves.clone();
        forged[2] = super::super::merkle::leaf_hash(b"{\"edited\":true}");
        let note = std::fs::read_to_string(dir.root.join("checkpoints/00000004.note")).unwrap();
        let body = verifier.verify_note(&note).unwrap();
        let root = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            super::super::merkle::root(&forged),
        );
        assert_ne!(body.lines().nth(2).unwrap(), root);
    }
}
