//! A hearing's log: its manifest, the index doc derived from it, and the index, kept
//! in step behind one lock so the index never runs ahead of (or disagrees with) the
//! file; and its signed checkpoints.
//!
//! A checkpoint (`checkpoints/<tree size>.note`, see [`super::checkpoint`]) is a C2SP
//! signed note over the RFC 9162 Merkle root of the manifest's first `size` lines.
//! The hearing folder also holds `device.vkey`, the verifier key of the box, so the
//! folder describes itself (a verifier still needs a trusted copy to prove who signed).
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
    /// None when a tool works on the folders while the daemon holds the index (e.g.
    /// `courtrec export`); the daemon re-derives the doc from the manifest later.
    index: Option<Index>,
    signer: Option<Arc<DeviceKey>>,
    last_checkpoint: Option<Instant>,
    /// Tree size of the last checkpoint on disk (0: none), for the next one's `prev`.
    last_checkpoint_size: u64,
    /// Why the last checkpoint could not be written, until one is written again.
    checkpoint_error: Option<String>,
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
        if let Some(key) = &signer {
            super::write_atomic(
                &dir.root.join("device.vkey"),
                format!("{}\n", key.verifier().to_vkey()).as_bytes(),
            )?;
        }
        let entry = manifest.append(created)?;
        let doc = HearingDoc::from_entries(&[entry])?;
        index.put_hearing(&doc)?;
        let mut log = HearingLog {
            dir,
            manifest,
            doc,
            index: Some(index),
            signer,
            last_checkpoint: None,
            last_checkpoint_size: 0,
            checkpoint_error: None,
        };
        log.checkpoint(false);
        Ok(log)
    }

    /// Opens an existing hearing's log (cutting a torn last line), re-deriving its doc.
    /// Returns the log and the number of torn bytes removed.
    pub fn open(
        dir: HearingDir,
        index: Option<Index>,
        signer: Option<Arc<DeviceKey>>,
    ) -> Result<(HearingLog, Vec<Entry>, u64)> {
        let (manifest, entries, torn) = Manifest::open(&dir.manifest())?;
        let doc = HearingDoc::from_entries(&entries)?;
        if let Some(index) = &index {
            index.put_hearing(&doc)?;
        }
        let last_checkpoint_size = super::checkpoint::sizes_in(&dir.root.join("checkpoints"))
            .into_iter()
            .filter(|&s| s <= entries.len() as u64)
            .max()
            .unwrap_or(0);
        Ok((
            HearingLog {
                dir,
                manifest,
                doc,
                index,
                signer,
                last_checkpoint: None,
                last_checkpoint_size,
                checkpoint_error: None,
            },
            entries,
            torn,
        ))
    }

    /// Appends a record durably, then updates the index.
    pub fn append(&mut self, record: Record) -> Result<Entry> {
        let entry = self.manifest.append(record)?;
        self.doc.apply(&entry.record);
        if let Some(index) = &self.index {
            if let Record::Segment(s) = &entry.record {
                index.put_segment(s)?;
            }
            index.put_hearing(&self.doc)?;
        }
        // Once closed, every checkpoint says so: only `export` events follow the close.
        let closed = self.doc.state == super::index::HearingState::Closed;
        match &entry.record {
            Record::Event(_) => self.checkpoint(closed),
            Record::Segment(_) => {
                if self
                    .last_checkpoint
                    .is_none_or(|t| t.elapsed() >= CHECKPOINT_INTERVAL)
                {
                    self.checkpoint(closed);
                }
            }
        }
        Ok(entry)
    }

    /// Why the last checkpoint failed, while none has been written since (an alarm:
    /// lines not covered by a signature are protected only by the hash chain).
    pub fn checkpoint_error(&self) -> Option<&str> {
        self.checkpoint_error.as_deref()
    }

    /// Merkle leaf hashes of the manifest's lines, for proofs in export bundles.
    pub fn leaves(&self) -> &[super::merkle::Hash] {
        self.manifest.leaves()
    }

    /// Signs and writes a checkpoint of the manifest as it is now. A failure (disk full)
    /// is logged, not returned: the line it covers is already durable and hashed in the
    /// chain, and the next checkpoint will cover it.
    fn checkpoint(&mut self, closed: bool) {
        let Some(key) = self.signer.as_ref() else {
            return;
        };
        let leaves = self.manifest.leaves();
        let size = leaves.len() as u64;
        if size == self.last_checkpoint_size {
            return;
        }
        let cp = super::checkpoint::Checkpoint {
            device_id: self
                .doc
                .events
                .first()
                .map(|e| e.device_id.clone())
                .unwrap_or_default(),
            hearing_id: self.doc.id.clone(),
            size,
            root: super::merkle::root(leaves),
            time: super::records::format_wall(chrono::Utc::now()),
            prev: self.last_checkpoint_size,
            closed,
        };
        let res = key.sign_note(&cp.body()).and_then(|note| {
            let dir = self.dir.root.join("checkpoints");
            std::fs::create_dir_all(&dir)
                .map_err(|e| crate::error::Error::io(format!("creating {}", dir.display()), e))?;
            // Atomic (temp file, fsync, rename, fsync dir): a crash leaves the previous
            // checkpoints and either all of this one or none of it, never a torn note.
            super::write_atomic(
                &dir.join(super::checkpoint::Checkpoint::file_name(size)),
                note.as_bytes(),
            )
        });
        match res {
            Ok(()) => {
                self.last_checkpoint = Some(Instant::now());
                self.last_checkpoint_size = size;
                self.checkpoint_error = None;
            }
            Err(e) => {
                tracing::error!(hearing = %self.doc.id, "writing checkpoint: {e}");
                self.checkpoint_error = Some(e.to_string());
            }
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
            tracks: None,
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
            let cp = super::super::checkpoint::Checkpoint::parse(&body).unwrap();
            assert_eq!(
                (cp.device_id.as_str(), cp.hearing_id.as_str()),
                ("dev-1", "h1")
            );
            assert_eq!(cp.size, size as u64);
            assert_eq!(cp.prev, size as u64 - 1, "chained to the one before");
            assert_eq!(
                cp.root,
                super::super::merkle::root(&leaves[..size]),
                "checkpoint {size} signs the root of the first {size} lines"
            );
            assert_eq!(cp.closed, size == 4, "only the last is marked closed");
        }
        assert_eq!(
            std::fs::read_to_string(dir.root.join("device.vkey"))
                .unwrap()
                .trim(),
            key.verifier().to_vkey()
        );
        // An edited line no longer matches the signed root.
        let mut forged = leaves.clone();
        forged[2] = super::super::merkle::leaf_hash(b"{\"edited\":true}");
        let note = std::fs::read_to_string(dir.root.join("checkpoints/00000004.note")).unwrap();
        let body = verifier.verify_note(&note).unwrap();
        let cp = super::super::checkpoint::Checkpoint::parse(&body).unwrap();
        assert_ne!(cp.root, super::super::merkle::root(&forged));
    }
}
