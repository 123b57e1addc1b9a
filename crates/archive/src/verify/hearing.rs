//! Verifies a hearing folder (`DATA/hearings/<id>`, or a hearing's prefix downloaded
//! from the archive's bucket, whose manifest comes as chunks `manifest/<first>-<last>.jsonl`).

use super::checkpoints;
use super::report::{Problem, Report};
use super::segments::{self, Expected};
use super::{Options, Trust, devlog, timeline, wallclock};
use crate::checkpoint::Checkpoint;
use crate::fsread::{self as files, ReadError};
use crate::merkle::Levels;
use crate::records::{Entry, EventKind, EventRecord, Record};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

const MANIFEST: &str = "manifest.jsonl";

/// One parsed manifest line.
struct Line {
    entry: Option<Entry>,
}

/// The manifest's bytes: `manifest.jsonl`, or its chunks joined (each must start where
/// the one before ended). Also the names of the chunk files.
fn manifest_bytes(dir: &Path, r: &mut Report) -> Option<(Vec<u8>, Vec<String>)> {
    match files::read_bounded(&dir.join(MANIFEST), super::MAX_MANIFEST_BYTES) {
        Ok(b) => return Some((b, Vec::new())),
        Err(ReadError::NotFound) if dir.join("manifest").is_dir() => {}
        Err(e) => {
            r.problem(
                Problem::Unusable,
                Some(MANIFEST),
                format!("the manifest {e}"),
            );
            return None;
        }
    }
    let mut chunks: Vec<(u64, u64, String)> = files::walk(&dir.join("manifest"))
        .into_iter()
        .filter_map(|l| {
            let (a, b) = l.rel.strip_suffix(".jsonl")?.split_once('-')?;
            Some((
                a.parse().ok()?,
                b.parse().ok()?,
                format!("manifest/{}", l.rel),
            ))
        })
        .collect();
    chunks.sort();
    let mut bytes = Vec::new();
    let mut next = 0u64;
    let mut names = Vec::new();
    for (first, last, name) in chunks {
        if first != next || last < first {
            r.problem(
                Problem::MissingOrReordered,
                Some(&name),
                format!(
                    "the manifest's chunks do not follow on: line {} was expected next",
                    next + 1
                ),
            );
            return None;
        }
        let b = match files::read_bounded(&dir.join(&name), super::MAX_MANIFEST_BYTES) {
            Ok(b) => b,
            Err(e) => {
                r.problem(Problem::Unusable, Some(&name), format!("{e}"));
                return None;
            }
        };
        let lines = b.iter().filter(|&&c| c == b'\n').count() as u64;
        if lines != last - first + 1 || !b.ends_with(b"\n") {
            r.problem(
                Problem::Modified,
                Some(&name),
                format!(
                    "holds {lines} whole lines, its name says {}",
                    last - first + 1
                ),
            );
        }
        if bytes.len() as u64 + b.len() as u64 > super::MAX_MANIFEST_BYTES {
            r.problem(
                Problem::Unusable,
                Some(&name),
                "the manifest is larger than any hearing writes",
            );
            return None;
        }
        bytes.extend_from_slice(&b);
        names.push(name);
        next = last + 1;
    }
    if names.is_empty() {
        r.problem(
            Problem::Unusable,
            Some(MANIFEST),
            "missing, and no manifest chunks either",
        );
        return None;
    }
    Some((bytes, names))
}

/// Hearing ids as boxes make them: `YYYYMMDD-HHMMSS-xxxxxx`.
pub fn looks_like_hearing_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 22
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'-'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'-'
        && b[16..].iter().all(u8::is_ascii_hexdigit)
}

pub(crate) fn verify(dir: &Path, trust: &Trust, opts: &Options, r: &mut Report) {
    let Some((bytes, chunks)) = manifest_bytes(dir, r) else {
        return;
    };
    // Split into lines; a last line without its newline is a write cut by a crash.
    let mut raw: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    let tail = raw.pop().unwrap_or_default();
    if !tail.is_empty() {
        r.note(
            Some(MANIFEST),
            format!(
                "ends with an incomplete line of {} bytes (a write cut off by a crash; never acknowledged, so nothing it described was lost)",
                tail.len()
            ),
        );
    }
    let (lines, leaves, reordered) = parse_lines(&raw, r);
    if lines.is_empty() || lines.iter().all(|l| l.entry.is_none()) {
        r.problem(
            Problem::Unusable,
            Some(MANIFEST),
            "holds no manifest record at all",
        );
        return;
    }
    let Some(created) = created_event(&lines) else {
        r.problem(
            Problem::Modified,
            Some(MANIFEST),
            "the first line is not the hearing's `created` record",
        );
        return;
    };
    r.hearing_id = created.hearing_id.clone();
    r.device_id = created.device_id.clone();
    r.case_number = created
        .meta
        .as_ref()
        .map(|m| m.case_number.clone())
        .unwrap_or_default();
    r.manifest_lines = lines.len() as u64;
    let folder = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    if looks_like_hearing_id(&folder) && folder != r.hearing_id {
        r.problem(
            Problem::Unexpected,
            None,
            format!(
                "the folder is named for hearing {folder} but holds hearing {}: it was copied in under another hearing's id",
                r.hearing_id
            ),
        );
    }
    let tracks: Vec<String> = created
        .meta
        .as_ref()
        .map(|m| m.tracks.iter().map(|t| t.name.clone()).collect())
        .unwrap_or_default();

    // Signatures and checkpoints, each against the Merkle root of the lines it covers.
    let levels = Levels::new(leaves);
    let keys = checkpoints::signer_keys(dir, trust, &r.device_id.clone(), r);
    let (device_id, hearing_id) = (r.device_id.clone(), r.hearing_id.clone());
    let cps = checkpoints::load(dir, &keys, &device_id, &hearing_id, r);
    r.checkpoints = cps.len();
    let mut last_good = 0u64;
    for cp in &cps {
        let file = format!("checkpoints/{}", Checkpoint::file_name(cp.size));
        if cp.size > levels.len() as u64 {
            r.problem(
                Problem::MissingOrReordered,
                Some(&file),
                format!(
                    "signs {} manifest lines but the manifest has {}: lines were removed",
                    cp.size,
                    levels.len()
                ),
            );
            continue;
        }
        if levels.root(cp.size as usize) != cp.root {
            r.problem(
                if reordered { Problem::MissingOrReordered } else { Problem::Modified },
                Some(&file),
                format!(
                    "the manifest's first {} lines are not what was signed: a line between {} and {} was edited, removed, inserted or reordered",
                    cp.size,
                    last_good + 1,
                    cp.size
                ),
            );
            continue;
        }
        last_good = cp.size;
    }
    checkpoints::check_chain(&cps, r);
    r.signed_lines = last_good;
    r.tree_size = levels.len() as u64;
    let entries: Vec<&Entry> = lines.iter().filter_map(|l| l.entry.as_ref()).collect();

    // Later signed statements about this hearing, in the device log beside it.
    let mut missing_end = false;
    let devlog_dir = opts
        .device_log
        .clone()
        .or_else(|| crate::devlog::beside(dir));
    if let Some(dl_dir) = devlog_dir {
        let mut dl_report = Report::default();
        match devlog::load(&dl_dir, &keys, &mut dl_report) {
            Some(log) if log.device_id == r.device_id => {
                let sizes: Vec<u64> = cps.iter().map(|c| c.size).collect();
                missing_end = devlog::cross_check(&log, &hearing_id, &levels, &sizes, r);
                r.device_log_checked = true;
                if let Some(p) = dl_report.worst() {
                    r.note(None, format!("the device log itself has problems ({}); only its signed lines were used", p.label()));
                }
            }
            Some(log) => r.note(
                None,
                format!("the device log beside this folder is device {}'s, not the recording device's: not used", log.device_id),
            ),
            None => r.note(None, "the device log beside this folder could not be read: not used"),
        }
    }

    checkpoints::check_sealed(&cps, &entries, last_good, missing_end, r);
    if last_good < levels.len() as u64 {
        unsigned_tail(&entries, last_good, levels.len() as u64, r);
    }
    segments::check(dir, &entries, r, opts.progress, opts.remote);
    let mut known: HashSet<String> = [MANIFEST, "device.vkey", "checkpoints", "tracks", "manifest"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    known.extend(chunks);
    for s in crate::checkpoint::sizes_in(&dir.join("checkpoints")) {
        known.insert(format!("checkpoints/{}", Checkpoint::file_name(s)));
        known.insert(format!("checkpoints/{}", Checkpoint::token_name(s)));
    }
    for t in &tracks {
        known.insert(format!("tracks/{t}"));
    }
    let mut last_seq: BTreeMap<String, u64> = tracks.iter().map(|t| (t.clone(), 0)).collect();
    let mut segment_files = HashSet::new();
    for e in &entries {
        if let Record::Segment(s) = &e.record {
            segment_files.insert(s.file.as_str());
            let l = last_seq.entry(s.track.clone()).or_default();
            *l = (*l).max(s.seq);
        }
    }
    segments::check_unexpected(
        dir,
        &Expected {
            known,
            segments: segment_files,
            last_seq,
            sealed: r.sealed || missing_end,
        },
        r,
        opts.remote,
    );
    timeline::check(&entries, None, None, r);
    wallclock::check(&entries, r);
}

/// Lines after the last valid checkpoint: in a sealed hearing, content nobody signed;
/// otherwise what a crash leaves between a line and its signature.
fn unsigned_tail(entries: &[&Entry], signed: u64, total: u64, r: &mut Report) {
    let after: Vec<&&Entry> = entries.iter().filter(|e| e.n >= signed).collect();
    let segs = after
        .iter()
        .filter(|e| matches!(e.record, Record::Segment(_)))
        .count();
    let evs: Vec<String> = after
        .iter()
        .filter_map(|e| match &e.record {
            Record::Event(ev) => Some(format!("{:?}", ev.kind).to_lowercase()),
            _ => None,
        })
        .collect();
    let what = format!(
        "lines {}..{total} ({segs} segment(s){})",
        signed + 1,
        if evs.is_empty() {
            String::new()
        } else {
            format!(", events: {}", evs.join(", "))
        }
    );
    if r.sealed {
        r.problem(
            Problem::Unexpected,
            Some(MANIFEST),
            format!("{what} follow the hearing's seal and no signature covers them: added after the fact"),
        );
    } else {
        r.note(
            Some(MANIFEST),
            format!("{what} are after the last signed checkpoint: they are covered by the hash chain and their segments' hashes only, not by a signature"),
        );
    }
}

/// Parses every line, reporting what does not chain. Returns the lines, their leaf
/// hashes, and whether lines look reordered (then a root mismatch says "reordered").
fn parse_lines(raw: &[&[u8]], r: &mut Report) -> (Vec<Line>, Vec<crate::merkle::Hash>, bool) {
    let mut lines = Vec::with_capacity(raw.len());
    let mut leaves = Vec::with_capacity(raw.len());
    let mut prev_hash = crate::manifest::GENESIS_PREV.to_string();
    let mut reordered = false;
    let hashes: Vec<String> = raw.iter().map(|l| crate::sha256_hex(l)).collect();
    let line_hashes: HashSet<&str> = hashes.iter().map(String::as_str).collect();
    for (i, l) in raw.iter().enumerate() {
        let entry: Option<Entry> = serde_json::from_slice(l).ok();
        match &entry {
            None => r.problem(
                Problem::Modified,
                Some(MANIFEST),
                format!("line {} is not a manifest record", i + 1),
            ),
            Some(e) if e.n != i as u64 => {
                reordered = true;
                r.problem(
                    Problem::MissingOrReordered,
                    Some(MANIFEST),
                    format!(
                        "line {} is numbered {}: lines were removed, added or reordered",
                        i + 1,
                        e.n.saturating_add(1)
                    ),
                );
            }
            Some(e) if e.prev != prev_hash => {
                // Chained to a line that is elsewhere in the file: moved, not edited.
                if line_hashes.contains(e.prev.as_str()) {
                    reordered = true;
                    r.problem(
                        Problem::MissingOrReordered,
                        Some(MANIFEST),
                        format!(
                            "line {} was written after another line than the one before it: lines were reordered",
                            i + 1
                        ),
                    );
                } else {
                    r.problem(
                        Problem::Modified,
                        Some(MANIFEST),
                        format!(
                            "line {} does not chain to the line before it: that line was edited, or lines were removed or inserted",
                            i + 1
                        ),
                    );
                }
            }
            Some(_) => {}
        }
        prev_hash = hashes[i].clone();
        leaves.push(crate::merkle::leaf_hash(l));
        lines.push(Line { entry });
    }
    (lines, leaves, reordered)
}

/// The `created` record, which must be the first line.
fn created_event(lines: &[Line]) -> Option<&EventRecord> {
    match lines
        .first()
        .and_then(|l| l.entry.as_ref())
        .map(|e| &e.record)
    {
        Some(Record::Event(ev)) if ev.kind == EventKind::Created && ev.meta.is_some() => Some(ev),
        _ => None,
    }
}
