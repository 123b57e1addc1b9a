//! `courtrec check`: compares the hearing folders (the truth) with the index, and with
//! `--repair` rebuilds the index from the folders. It reads every segment to check its
//! length and SHA-256 against the manifest.

use super::DataDir;
use super::index::{HearingDoc, Index};
use super::manifest;
use super::records::Record;
use crate::error::Result;
use std::collections::BTreeSet;

/// What a check found.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub hearings: usize,
    pub segments: usize,
    pub problems: Vec<String>,
    pub repaired: bool,
}

/// Checks every hearing folder against its manifest and the index. With `repair`, the
/// index's hearings and segments are rebuilt from the manifests (the files are never
/// changed).
pub fn check(data: &DataDir, index: &Index, repair: bool) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let mut rebuilt: Vec<(HearingDoc, Vec<super::records::SegmentRecord>)> = Vec::new();
    let mut on_disk = BTreeSet::new();
    let mut folders: Vec<_> = match std::fs::read_dir(data.hearings()) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect(),
        Err(e) => {
            return Err(crate::error::Error::io(
                format!("reading {}", data.hearings().display()),
                e,
            ));
        }
    };
    folders.sort();
    for path in folders {
        let id = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        on_disk.insert(id.clone());
        report.hearings += 1;
        let dir = data.hearing(&id);
        let m = match manifest::read(&dir.manifest()) {
            Ok(m) => m,
            Err(e) => {
                report.problems.push(format!("hearing {id}: {e}"));
                continue;
            }
        };
        if m.torn_tail_bytes > 0 {
            report.problems.push(format!(
                "hearing {id}: manifest ends with a torn line of {} bytes (a crash while appending; the daemon cuts it at start-up)",
                m.torn_tail_bytes
            ));
        }
        let doc = match HearingDoc::from_entries(&m.entries) {
            Ok(d) => d,
            Err(e) => {
                report.problems.push(format!("hearing {id}: {e}"));
                continue;
            }
        };
        let mut segs = Vec::new();
        let mut listed = BTreeSet::new();
        for e in &m.entries {
            if let Record::Segment(s) = &e.record {
                report.segments += 1;
                listed.insert(s.file.clone());
                let p = dir.root.join(&s.file);
                match super::hash_file(&p) {
                    Ok((sha, len)) if sha == s.sha256 && len == s.bytes => {}
                    Ok((_, len)) if len != s.bytes => report.problems.push(format!(
                        "hearing {id}: {} is {len} bytes, the manifest says {}",
                        s.file, s.bytes
                    )),
                    Ok(_) => report.problems.push(format!(
                        "hearing {id}: {} does not match its SHA-256 in the manifest (modified)",
                        s.file
                    )),
                    Err(e) => report.problems.push(format!(
                        "hearing {id}: {} is missing or unreadable: {e}",
                        s.file
                    )),
                }
                segs.push(s.clone());
            }
        }
        if let Ok(tracks) = std::fs::read_dir(dir.root.join("tracks")) {
            for t in tracks.flatten() {
                if let Ok(files) = std::fs::read_dir(t.path()) {
                    for f in files.flatten() {
                        let rel = format!(
                            "tracks/{}/{}",
                            t.file_name().to_string_lossy(),
                            f.file_name().to_string_lossy()
                        );
                        if !listed.contains(&rel) {
                            report.problems.push(format!(
                                "hearing {id}: {rel} is not in the manifest (cut off by a crash; the daemon records it as partial when it resumes the hearing)"
                            ));
                        }
                    }
                }
            }
        }
        match index.hearing(&id) {
            Ok(Some(indexed)) if indexed == doc => {}
            Ok(Some(_)) => report
                .problems
                .push(format!("hearing {id}: the index differs from the manifest")),
            Ok(None) => report
                .problems
                .push(format!("hearing {id}: not in the index")),
            Err(e) => report.problems.push(format!("hearing {id}: {e}")),
        }
        rebuilt.push((doc, segs));
    }
    for h in index.hearings().unwrap_or_default() {
        if !on_disk.contains(&h.id) {
            report.problems.push(format!(
                "hearing {}: in the index but its folder is missing",
                h.id
            ));
        }
    }
    if repair {
        index.clear_hearings()?;
        for (doc, segs) in &rebuilt {
            index.put_hearing(doc)?;
            for s in segs {
                index.put_segment(s)?;
            }
        }
        index.flush()?;
        report.repaired = true;
    }
    Ok(report)
}
