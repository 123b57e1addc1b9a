//! `courtrec check`: checks every hearing folder (the truth) with the verifier, against
//! this box's key and device log, checks the device log and the audit log, compares
//! the folders with the index, and with `--repair` rebuilds the index from the
//! folders. A manifest that no longer matches its checkpoints, or what the device log
//! says the box signed, is reported here.

use super::DataDir;
use super::index::{HearingDoc, HearingState, Index};
use super::manifest;
use super::records::Record;
use super::verify::{self, Problem, Progress, Trust};
use crate::error::Result;
use std::collections::BTreeSet;

/// What a check found.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub hearings: usize,
    pub segments: usize,
    /// Problems in the files themselves (evidence: never "repaired").
    pub problems: Vec<String>,
    /// Where the index disagrees with the files (`--repair` rebuilds it).
    pub index_problems: Vec<String>,
    pub repaired: bool,
}

/// The problems of a verifier report, in one line each, prefixed by `what`. An
/// unclosed hearing is not "unsealed" (it is still being recorded, or a crash stopped
/// it and the daemon resumes it).
fn problems(what: &str, r: &verify::Report, unclosed: bool) -> Vec<String> {
    r.findings
        .iter()
        .filter_map(|f| {
            let p = f.problem?;
            if unclosed && p == Problem::Unsealed {
                return None;
            }
            Some(match &f.file {
                Some(file) => format!("{what}: [{}] {file}: {}", p.label(), f.message),
                None => format!("{what}: [{}] {}", p.label(), f.message),
            })
        })
        .collect()
}

/// Checks every hearing folder and the signed logs. With `repair`, the index's
/// hearings and segments are rebuilt from the manifests (the files are never changed).
pub fn check(
    data: &DataDir,
    index: &Index,
    trust: &Trust,
    repair: bool,
    progress: &dyn Progress,
) -> Result<CheckReport> {
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
    let devlog = data.root.join("device-log");
    for (what, dir) in [
        ("device log", devlog.clone()),
        ("audit log", data.root.join("audit")),
    ] {
        if dir.is_dir() {
            let r = verify::verify(&dir, trust);
            report.problems.extend(problems(what, &r, false));
        }
    }
    let opts = verify::Options {
        device_log: devlog.is_dir().then_some(devlog),
        progress,
        remote: None,
    };
    for path in folders {
        let id = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        on_disk.insert(id.clone());
        report.hearings += 1;
        let dir = data.hearing(&id);
        let what = format!("hearing {id}");
        let m: manifest::ReadReport = match manifest::read(&dir.manifest()) {
            Ok(m) => m,
            Err(e) => {
                report.problems.push(format!("{what}: {e}"));
                continue;
            }
        };
        if m.torn_tail_bytes > 0 {
            report.problems.push(format!(
                "{what}: manifest ends with a torn line of {} bytes (a crash while appending; the daemon cuts it at start-up)",
                m.torn_tail_bytes
            ));
        }
        let doc = match HearingDoc::from_entries(&m.entries) {
            Ok(d) => d,
            Err(e) => {
                report.problems.push(format!("{what}: {e}"));
                continue;
            }
        };
        let unclosed = matches!(doc.state, HearingState::Open | HearingState::Recess);
        let r = verify::verify_with(&dir.root, trust, &opts);
        report.segments += r.segments_checked as usize;
        report.problems.extend(problems(&what, &r, unclosed));
        match index.tampered_reason(&id) {
            Ok(Some(why)) => report.problems.push(format!(
                "{what}: the box marked it altered and read-only: {why}"
            )),
            Ok(None) => {}
            Err(e) => report.problems.push(format!("{what}: {e}")),
        }
        let segs = m
            .entries
            .iter()
            .filter_map(|e| match &e.record {
                Record::Segment(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        match index.hearing(&id) {
            Ok(Some(indexed)) if indexed == doc => {}
            Ok(Some(_)) => report
                .index_problems
                .push(format!("{what}: the index differs from the manifest")),
            Ok(None) => report
                .index_problems
                .push(format!("{what}: not in the index")),
            Err(e) => report.index_problems.push(format!("{what}: {e}")),
        }
        rebuilt.push((doc, segs));
    }
    // Hearings the box released to the archive keep their record in the index.
    let mut released = Vec::new();
    for h in index.hearings().unwrap_or_default() {
        if !on_disk.contains(&h.id) && index.released(&h.id).ok().flatten().is_some() {
            released.push(h);
            continue;
        }
        if !on_disk.contains(&h.id) {
            report.index_problems.push(format!(
                "hearing {}: in the index but its folder is missing",
                h.id
            ));
        }
    }
    if repair {
        index.clear_hearings()?;
        for doc in &released {
            index.put_hearing(doc)?;
        }
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
