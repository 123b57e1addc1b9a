//! A hearing's log: its manifest, the index doc derived from it, and the index, kept
//! in step behind one lock so the index never runs ahead of (or disagrees with) the
//! file.

use super::HearingDir;
use super::index::{HearingDoc, Index};
use super::manifest::Manifest;
use super::records::{Entry, Record};
use crate::error::Result;

pub struct HearingLog {
    pub dir: HearingDir,
    manifest: Manifest,
    doc: HearingDoc,
    index: Index,
}

impl HearingLog {
    /// Creates a new hearing folder with its `created` record.
    pub fn create(dir: HearingDir, index: Index, created: Record) -> Result<HearingLog> {
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
        Ok(HearingLog {
            dir,
            manifest,
            doc,
            index,
        })
    }

    /// Opens an existing hearing's log (cutting a torn last line), re-deriving its doc.
    /// Returns the log and the number of torn bytes removed.
    pub fn open(dir: HearingDir, index: Index) -> Result<(HearingLog, Vec<Entry>, u64)> {
        let (manifest, entries, torn) = Manifest::open(&dir.manifest())?;
        let doc = HearingDoc::from_entries(&entries)?;
        index.put_hearing(&doc)?;
        Ok((
            HearingLog {
                dir,
                manifest,
                doc,
                index,
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
        Ok(entry)
    }

    pub fn doc(&self) -> &HearingDoc {
        &self.doc
    }
}
