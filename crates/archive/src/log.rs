//! A hearing's log: its manifest, the doc derived from it (kept in step with an index
//! through [`DocSink`]), and its signed checkpoints.
//!
//! A checkpoint (`checkpoints/<tree size>.note`, see [`crate::checkpoint`]) is a C2SP
//! signed note over the RFC 9162 Merkle root of the manifest's first `size` lines. One
//! is written after every event and at least every [`CHECKPOINT_INTERVAL`] while
//! segments arrive, so a crash leaves at most that much covered only by hashes. Each is
//! also recorded in the device log ([`crate::devlog`]).
//!
//! **The box never signs over lines it cannot vouch for.** A line is vouched for when
//! this process wrote it, or when a checkpoint on disk, signed by this box's key,
//! covers it and its root matches, or when recovery adopted it at a restart (its chain
//! extends the last checkpoint and its segment matches its hash, within one checkpoint
//! interval). On opening, the manifest must extend the newest signed checkpoint on
//! disk and what the device log last recorded of the hearing; otherwise the hearing is
//! *tampered*: read-only, never signed again (see [`HearingLog::tampered`]).

use crate::HearingDir;
use crate::checkpoint::Checkpoint;
use crate::devlog::{DevRecord, DeviceLog};
use crate::doc::{HearingDoc, HearingState};
use crate::error::{Error, Result};
use crate::manifest::{Manifest, ReadReport};
use crate::merkle::Hash;
use crate::records::{Record, SegmentRecord, format_wall};
use crate::signing::DeviceKey;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest time between two checkpoints while a hearing records.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(30);

/// Longest span of media a restart adopts after the last checkpoint: one checkpoint
/// interval plus the segments in flight when it was signed. More is not a crash.
pub const ADOPT_SPAN_NS: i64 = 2 * CHECKPOINT_INTERVAL.as_nanos() as i64;

/// Where a hearing's doc is kept for searches (the daemon's index). The index is
/// derived: a failure here never fails the append (the line is durable), it is
/// remembered and retried, and reported as an alarm meanwhile.
pub trait DocSink: Send + Sync {
    fn put(&self, doc: &HearingDoc, segment: Option<&SegmentRecord>) -> Result<()>;
}

/// What signs: the box's key, and its device log.
#[derive(Clone)]
pub struct Signer {
    pub key: Arc<DeviceKey>,
    pub devlog: Option<Arc<DeviceLog>>,
}

pub struct HearingLog {
    pub dir: HearingDir,
    manifest: Manifest,
    doc: HearingDoc,
    sink: Option<Arc<dyn DocSink>>,
    signer: Option<Signer>,
    last_checkpoint: Option<Instant>,
    /// Tree size of the last checkpoint on disk (0: none), for the next one's `prev`.
    last_checkpoint_size: u64,
    /// Why the last checkpoint could not be written, until one is written again.
    checkpoint_error: Option<String>,
    /// Lines this box vouches for (see the module comment); never signs past them.
    vouched: u64,
    tampered: Option<String>,
    /// Why the index could not be updated, until it is; and what it still lacks.
    index_error: Option<String>,
    unindexed: Vec<SegmentRecord>,
}

impl HearingLog {
    /// Creates a new hearing folder with its `created` record.
    pub fn create(
        dir: HearingDir,
        sink: Option<Arc<dyn DocSink>>,
        created: Record,
        signer: Option<Signer>,
    ) -> Result<HearingLog> {
        std::fs::create_dir_all(&dir.root)
            .map_err(|e| Error::io(format!("creating {}", dir.root.display()), e))?;
        if let Some(parent) = dir.root.parent() {
            // The hearing's folder must survive a power cut once we answer "created".
            crate::sync_dir(parent)?;
        }
        let (manifest, existing) = Manifest::open(&dir.manifest())?;
        if !existing.entries.is_empty() {
            crate::bail!(
                Conflict,
                "hearing folder {} already has a manifest",
                dir.root.display()
            );
        }
        if let Some(s) = &signer {
            crate::write_atomic(
                &dir.root.join("device.vkey"),
                format!("{}\n", s.key.verifier().to_vkey()).as_bytes(),
            )?;
        }
        let Record::Event(ev) = &created else {
            crate::bail!(Invalid, "a hearing begins with its `created` event");
        };
        let mut log = HearingLog {
            doc: HearingDoc::from_created(ev)?,
            dir,
            manifest,
            sink,
            signer,
            last_checkpoint: None,
            last_checkpoint_size: 0,
            checkpoint_error: None,
            vouched: 0,
            tampered: None,
            index_error: None,
            unindexed: Vec::new(),
        };
        log.manifest.append(created)?;
        log.vouched = 1;
        log.index(None);
        log.checkpoint(false);
        Ok(log)
    }

    /// Opens an existing hearing's log (cutting a torn last line), re-deriving its doc
    /// and, with a signer, checking that the manifest extends what this box signed.
    pub fn open(
        dir: HearingDir,
        sink: Option<Arc<dyn DocSink>>,
        signer: Option<Signer>,
    ) -> Result<(HearingLog, ReadReport)> {
        let (manifest, report) = Manifest::open(&dir.manifest())?;
        let doc = HearingDoc::from_entries(&report.entries)?;
        let last_checkpoint_size = crate::checkpoint::sizes_in(&dir.root.join("checkpoints"))
            .into_iter()
            .filter(|&s| s <= report.entries.len() as u64)
            .max()
            .unwrap_or(0);
        let mut log = HearingLog {
            dir,
            manifest,
            doc,
            sink,
            signer,
            last_checkpoint: None,
            last_checkpoint_size,
            checkpoint_error: None,
            vouched: 0,
            tampered: None,
            index_error: None,
            unindexed: Vec::new(),
        };
        log.index(None);
        if log.signer.is_some() {
            log.vouch(&report);
        }
        Ok((log, report))
    }

    /// Finds how much of the manifest this box vouches for: the newest checkpoint on
    /// disk that its key signed and whose root matches, and no less than what the
    /// device log last recorded. Anything else marks the hearing tampered.
    fn vouch(&mut self, report: &ReadReport) {
        let Some(signer) = self.signer.clone() else {
            return;
        };
        let lines = report.leaves.len() as u64;
        let id = self.doc.id.clone();
        if self.dir.id() != Some(id.as_str()) {
            return self.mark_tampered(format!(
                "the folder {} holds hearing {id}: it was copied in under another hearing's id",
                self.dir.id().unwrap_or("?")
            ));
        }
        let verifier = signer.key.verifier();
        let cp_dir = self.dir.root.join("checkpoints");
        let levels = crate::merkle::Levels::new(report.leaves.clone());
        // The newest checkpoint vouches for every line before it (they are in its root).
        let mut vouched = 0;
        if let Some(&size) = crate::checkpoint::sizes_in(&cp_dir).last() {
            if size > lines {
                return self.mark_tampered(format!(
                    "the manifest has {lines} lines but this box signed a checkpoint of {size}: its end was removed"
                ));
            }
            let note = std::fs::read(cp_dir.join(Checkpoint::file_name(size)))
                .ok()
                .filter(|b| b.len() <= 64 * 1024)
                .map(|b| String::from_utf8_lossy(&b).to_string())
                .unwrap_or_default();
            let cp = verifier
                .verify_note(&note)
                .ok()
                .and_then(|b| Checkpoint::parse(&b).ok());
            match cp {
                Some(cp)
                    if cp.size == size
                        && cp.hearing_id == id
                        && cp.root == levels.root(size as usize) =>
                {
                    vouched = size;
                }
                _ => {
                    return self.mark_tampered(format!(
                        "checkpoint {size} is not this box's signature over the manifest's first {size} lines: the manifest or the checkpoint was rewritten"
                    ));
                }
            }
        }
        if let Some(dl) = signer.devlog.as_ref().and_then(|d| d.latest(&id)) {
            if dl.size > lines || levels.root(dl.size as usize) != dl.root {
                return self.mark_tampered(format!(
                    "the device log records checkpoint {} of this hearing, which the manifest ({lines} lines) no longer matches: lines were removed or rewritten",
                    dl.size
                ));
            }
            if dl.size > vouched {
                return self.mark_tampered(format!(
                    "the device log records checkpoint {}, but the newest checkpoint in the folder is {vouched}: checkpoints were removed",
                    dl.size
                ));
            }
        }
        self.vouched = vouched;
    }

    /// Marks the hearing tampered: read-only from now on, and said in the device log.
    fn mark_tampered(&mut self, reason: String) {
        tracing::error!(hearing = %self.doc.id, "hearing tampered: {reason}");
        if let Some(dl) = self.signer.as_ref().and_then(|s| s.devlog.clone()) {
            let rec = DevRecord::Tampered {
                hearing_id: self.doc.id.clone(),
                reason: reason.clone(),
                time: format_wall(chrono::Utc::now()),
            };
            if let Err(e) = dl.record(rec) {
                tracing::error!("recording a tampered hearing in the device log: {e}");
            }
        }
        self.tampered = Some(reason);
    }

    /// Why the hearing is read-only (it does not match what this box signed), if it is.
    pub fn tampered(&self) -> Option<&str> {
        self.tampered.as_deref()
    }

    /// Lines after the last checkpoint that this box has not vouched for yet.
    pub fn unvouched(&self) -> u64 {
        self.manifest.len().saturating_sub(self.vouched)
    }

    /// At a restart: adopts the lines written after the last checkpoint when a crash is
    /// the only explanation (their chain extends it, as [`Self::open`] checked; every
    /// segment among them matches its hash; at most one event, the last line; at most
    /// [`ADOPT_SPAN_NS`] of media), records the adoption in the device log and signs
    /// them. Otherwise marks the hearing tampered. Returns how many were adopted.
    pub fn adopt_tail(&mut self, report: &ReadReport) -> Result<u64> {
        if let Some(t) = &self.tampered {
            crate::bail!(Conflict, "hearing {} is read-only: {t}", self.doc.id);
        }
        let from = self.vouched;
        let tail = &report.entries[from as usize..];
        if tail.is_empty() {
            return Ok(0);
        }
        let events: Vec<usize> = tail
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e.record, Record::Event(_)))
            .map(|(i, _)| i)
            .collect();
        let segs: Vec<&SegmentRecord> = tail
            .iter()
            .filter_map(|e| match &e.record {
                Record::Segment(s) => Some(s),
                _ => None,
            })
            .collect();
        let span = segs
            .iter()
            .map(|s| s.media_start_ns.saturating_add(s.media_duration_ns as i64))
            .max()
            .zip(segs.iter().map(|s| s.media_start_ns).min())
            .map_or(0, |(hi, lo)| hi.saturating_sub(lo));
        let why = if events.len() > 1 || events.first().is_some_and(|&i| i + 1 != tail.len()) {
            Some(format!(
                "{} events follow the last signed checkpoint; a crash leaves at most one, as the last line",
                events.len()
            ))
        } else if span > ADOPT_SPAN_NS {
            Some(format!(
                "{:.0} s of segments follow the last signed checkpoint; a crash leaves at most {} s",
                span as f64 / 1e9,
                ADOPT_SPAN_NS / 1_000_000_000
            ))
        } else {
            segs.iter()
                .find(|s| {
                    !crate::safe_rel(&s.file)
                        || crate::hash_file(&self.dir.root.join(&s.file))
                            .map_or(true, |(sha, len)| sha != s.sha256 || len != s.bytes)
                })
                .map(|s| {
                    format!(
                        "segment {} after the last signed checkpoint does not match its line",
                        s.file
                    )
                })
        };
        if let Some(why) = why {
            self.mark_tampered(format!(
                "lines {}..{} cannot be vouched for: {why}",
                from + 1,
                self.manifest.len()
            ));
            crate::bail!(
                Conflict,
                "hearing {} is read-only: {}",
                self.doc.id,
                self.tampered.as_deref().unwrap_or("")
            );
        }
        let to = self.manifest.len();
        if let Some(dl) = self.signer.as_ref().and_then(|s| s.devlog.clone()) {
            dl.record(DevRecord::Adopted {
                hearing_id: self.doc.id.clone(),
                from,
                to,
                time: format_wall(chrono::Utc::now()),
            })?;
        }
        self.vouched = to;
        let closed = self.doc.state == HearingState::Closed;
        self.checkpoint(closed);
        Ok(to - from)
    }

    /// Appends a record durably, then updates the index and signs as due. Refused on a
    /// tampered hearing, and while lines this box has not vouched for are pending.
    pub fn append(&mut self, record: Record) -> Result<crate::records::Entry> {
        if let Some(t) = &self.tampered {
            crate::bail!(Conflict, "hearing {} is read-only: {t}", self.doc.id);
        }
        if self.signer.is_some() && self.unvouched() > 0 {
            crate::bail!(
                Conflict,
                "hearing {} has {} line(s) after its last signed checkpoint that this box has not checked; start courtrec so that it recovers them (or finds the hearing altered)",
                self.doc.id,
                self.unvouched()
            );
        }
        if self.signer.is_some() && !self.manifest.unchanged_on_disk() {
            self.mark_tampered(
                "the manifest was changed on disk by something other than this box while it was open".into(),
            );
            crate::bail!(
                Conflict,
                "hearing {} is read-only: the manifest was changed on disk",
                self.doc.id
            );
        }
        let entry = self.manifest.append(record)?;
        self.vouched += 1;
        self.doc.apply(&entry.record);
        let seg = match &entry.record {
            Record::Segment(s) => Some(s.clone()),
            _ => None,
        };
        self.index(seg);
        // Once closed, every checkpoint says so: only `export` events follow the close.
        let closed = self.doc.state == HearingState::Closed;
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

    /// Brings the index up to date (with any segment it missed before).
    fn index(&mut self, seg: Option<SegmentRecord>) {
        let Some(sink) = self.sink.clone() else {
            return;
        };
        self.unindexed.extend(seg);
        let res = (|| {
            while let Some(s) = self.unindexed.first() {
                sink.put(&self.doc, Some(s))?;
                self.unindexed.remove(0);
            }
            sink.put(&self.doc, None)
        })();
        match res {
            Ok(()) => self.index_error = None,
            Err(e) => {
                if self.index_error.is_none() {
                    tracing::error!(hearing = %self.doc.id, "updating the index: {e}");
                }
                self.index_error = Some(e.to_string());
            }
        }
    }

    /// Why the index could not be updated (an alarm; it is retried at every append and
    /// rebuilt from the files by `courtrec check --repair`).
    pub fn index_error(&self) -> Option<&str> {
        self.index_error.as_deref()
    }

    /// Why the last checkpoint failed, while none has been written since (an alarm:
    /// lines not covered by a signature are protected only by the hash chain).
    pub fn checkpoint_error(&self) -> Option<&str> {
        self.checkpoint_error.as_deref()
    }

    /// Why appends are refused because one failed half-way, if they are.
    pub fn append_error(&self) -> Option<&str> {
        self.manifest.poisoned()
    }

    /// Number of manifest lines.
    pub fn len(&self) -> u64 {
        self.manifest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.manifest.is_empty()
    }

    /// Signs and writes a checkpoint of the manifest as it is now, and records it in
    /// the device log. A failure (disk full) is kept for the alarm, not returned: the
    /// line it covers is already durable and hashed in the chain, and the next
    /// checkpoint will cover it.
    fn checkpoint(&mut self, closed: bool) {
        let Some(signer) = self.signer.clone() else {
            return;
        };
        let size = self.manifest.len();
        if size == self.last_checkpoint_size || self.tampered.is_some() || self.vouched < size {
            return;
        }
        if !self.manifest.unchanged_on_disk() {
            return self.mark_tampered(
                "the manifest was changed on disk by something other than this box while it was open".into(),
            );
        }
        let root: Hash = self.manifest.root();
        let cp = Checkpoint {
            device_id: self
                .doc
                .events
                .first()
                .map(|e| e.device_id.clone())
                .unwrap_or_default(),
            hearing_id: self.doc.id.clone(),
            size,
            root,
            time: format_wall(chrono::Utc::now()),
            prev: self.last_checkpoint_size,
            closed,
        };
        let res = signer.key.sign_note(&cp.body()).and_then(|note| {
            let dir = self.dir.root.join("checkpoints");
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
            let path = dir.join(Checkpoint::file_name(size));
            crate::fault::hit("checkpoint.write", &path)
                .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
            // Atomic (temp file, fsync, rename, fsync dir): a crash leaves the previous
            // checkpoints and either all of this one or none of it, never a torn note.
            crate::write_atomic(&path, note.as_bytes())?;
            self.last_checkpoint = Some(Instant::now());
            self.last_checkpoint_size = size;
            match &signer.devlog {
                Some(dl) => dl.record(DevRecord::Checkpoint {
                    hearing_id: cp.hearing_id.clone(),
                    size,
                    root: crate::b64(&root),
                    closed,
                    time: cp.time.clone(),
                }),
                None => Ok(()),
            }
        });
        match res {
            Ok(()) => self.checkpoint_error = None,
            Err(e) => {
                tracing::error!(hearing = %self.doc.id, "writing checkpoint: {e}");
                self.checkpoint_error = Some(e.to_string());
            }
        }
    }

    pub fn doc(&self) -> &HearingDoc {
        &self.doc
    }

    /// Tree size of the newest checkpoint written.
    pub fn last_checkpoint_size(&self) -> u64 {
        self.last_checkpoint_size
    }
}

#[cfg(test)]
mod tests;
