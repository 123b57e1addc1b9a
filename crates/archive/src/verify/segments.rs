//! Segment files against their manifest lines: length and SHA-256 of each (a flipped
//! byte, a truncated, replaced or swapped file), and the files a folder holds that no
//! line names.

use super::report::{Problem, Report};
use crate::fsread::{self as files, ReadError};
use crate::progress::Progress;
use crate::records::{Entry, Record, SegmentRecord};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Hashes every segment named in `entries` and compares it with its line.
pub(crate) fn check(
    dir: &Path,
    entries: &[&Entry],
    r: &mut Report,
    progress: &dyn Progress,
    remote: Option<&dyn super::Remote>,
) {
    let segs: Vec<&SegmentRecord> = entries
        .iter()
        .filter_map(|e| match &e.record {
            Record::Segment(s) => Some(s),
            _ => None,
        })
        .collect();
    let by_hash: HashMap<&str, &SegmentRecord> =
        segs.iter().map(|s| (s.sha256.as_str(), *s)).collect();
    for s in segs.iter().filter(|s| !crate::safe_rel(&s.file)) {
        r.problem(
            Problem::Modified,
            None,
            format!(
                "segment {} #{} names the file {:?}, outside the folder",
                s.track, s.seq, s.file
            ),
        );
    }
    let safe: Vec<&SegmentRecord> = segs
        .iter()
        .copied()
        .filter(|s| crate::safe_rel(&s.file))
        .collect();
    progress.total(safe.iter().map(|s| s.bytes).sum(), safe.len() as u64);
    let results = match remote {
        Some(remote) => {
            let rels: Vec<String> = safe.iter().map(|s| s.file.clone()).collect();
            remote.hash_all(&rels, progress)
        }
        None => {
            let paths: Vec<PathBuf> = safe.iter().map(|s| dir.join(&s.file)).collect();
            files::hash_parallel(&paths, progress)
        }
    };
    for (s, res) in safe.iter().zip(results) {
        r.segments_checked += 1;
        match res {
            Err(ReadError::NotFound) => r.problem(
                Problem::MissingOrReordered,
                Some(&s.file),
                format!("segment {} #{} is missing", s.track, s.seq),
            ),
            Err(e @ ReadError::NotRegular(_)) => r.problem(
                Problem::Unexpected,
                Some(&s.file),
                format!("segment {} #{} {e}", s.track, s.seq),
            ),
            Err(e) => r.problem(
                Problem::Unusable,
                Some(&s.file),
                format!("segment {} #{} {e}", s.track, s.seq),
            ),
            Ok((sha, len)) => {
                r.bytes_hashed += len;
                if sha == s.sha256 && len == s.bytes {
                    continue;
                }
                if let Some(other) = by_hash.get(sha.as_str()) {
                    r.problem(
                        Problem::MissingOrReordered,
                        Some(&s.file),
                        format!(
                            "holds the content of segment {} #{} ({}), not of {} #{}: segments were swapped or moved",
                            other.track, other.seq, other.file, s.track, s.seq
                        ),
                    );
                } else if len != s.bytes {
                    r.problem(
                        Problem::Modified,
                        Some(&s.file),
                        format!(
                            "is {len} bytes, the manifest says {} (truncated, extended or replaced)",
                            s.bytes
                        ),
                    );
                } else {
                    r.problem(
                        Problem::Modified,
                        Some(&s.file),
                        format!(
                            "SHA-256 is {sha}, the manifest says {} (altered or replaced)",
                            s.sha256
                        ),
                    );
                }
            }
        }
    }
    for s in &segs {
        if s.partial {
            r.note(
                Some(&s.file),
                format!(
                    "segment {} #{} was cut off by a crash and recorded as partial on restart",
                    s.track, s.seq
                ),
            );
        }
    }
}

/// What a folder may hold besides its segments, and what may be left by a crash.
pub(crate) struct Expected<'a> {
    /// Files and folders that belong (relative paths).
    pub known: HashSet<String>,
    /// The segments the manifest names.
    pub segments: HashSet<&'a str>,
    /// The last sequence number of each track, and whether the hearing is sealed: a
    /// crash while recording leaves at most two unlisted segments per track, right
    /// after its last listed one (the one being written, and one sealed but not yet
    /// listed). More than that is an end removed from the manifest, or appends that
    /// failed for a while (the daemon then adopts them at its next start).
    pub last_seq: BTreeMap<String, u64>,
    pub sealed: bool,
}

/// Reports every file in `dir` that does not belong: segments no line names (beyond
/// the one a crash may leave per track in an unsealed hearing), second manifests,
/// junk in `checkpoints/`, links, FIFOs.
pub(crate) fn check_unexpected(
    dir: &Path,
    ex: &Expected,
    r: &mut Report,
    remote: Option<&dyn super::Remote>,
) {
    let mut crash_next: BTreeMap<&str, u64> = ex
        .last_seq
        .iter()
        .map(|(t, l)| (t.as_str(), l + 1))
        .collect();
    let mut listed = files::walk(dir);
    if let Some(remote) = remote {
        // Objects in the store that were not downloaded (segments, and anything else).
        let local: HashSet<String> = listed.iter().map(|l| l.rel.clone()).collect();
        listed.extend(
            remote
                .list()
                .into_iter()
                .filter(|rel| !local.contains(rel))
                .map(|rel| files::Listed { rel, kind: "file" }),
        );
    }
    for l in listed {
        if ex.known.contains(&l.rel) || ex.segments.contains(l.rel.as_str()) {
            continue;
        }
        if !l.is_file() && l.kind != "folder" {
            r.problem(
                Problem::Unexpected,
                Some(&l.rel),
                format!("is {}: nothing of a hearing is one", l.kind),
            );
            continue;
        }
        if l.kind == "folder" {
            if ex
                .known
                .iter()
                .any(|k| k.starts_with(&format!("{}/", l.rel)))
            {
                continue;
            }
            let empty = std::fs::read_dir(dir.join(&l.rel)).is_ok_and(|mut d| d.next().is_none());
            if empty {
                r.problem(
                    Problem::Unexpected,
                    Some(&l.rel),
                    "is a folder that does not belong here",
                );
            }
            continue;
        }
        if let Some(stem) = l.rel.strip_suffix(".tmp")
            && (ex.known.contains(stem) || stem.starts_with("checkpoints/"))
        {
            r.note(
                Some(&l.rel),
                "a file being replaced when the recorder stopped (harmless; not part of the record)",
            );
            continue;
        }
        if let Some((track, seq)) = segment_name(&l.rel)
            && !ex.sealed
            && let Some(next) = crash_next.get_mut(track)
            && seq == *next
            && ex.last_seq.get(track).is_some_and(|last| seq <= last + 2)
        {
            *next += 1;
            r.note(
                Some(&l.rel),
                "is not in the manifest: a segment being written when the recorder stopped (the daemon adopts it as partial on restart)",
            );
            continue;
        }
        r.problem(
            Problem::Unexpected,
            Some(&l.rel),
            if segment_name(&l.rel).is_some() {
                "is not in the manifest: a segment added, or left from an end that was removed"
            } else {
                "is not part of the record: nothing signed names it"
            },
        );
    }
}

/// `tracks/<track>/<seq>.ts` → (track, seq).
fn segment_name(rel: &str) -> Option<(&str, u64)> {
    let rest = rel.strip_prefix("tracks/")?;
    let (track, file) = rest.split_once('/')?;
    let seq = file.strip_suffix(".ts")?;
    (seq.len() == 8 && !file.contains('/'))
        .then(|| seq.parse().ok().map(|s| (track, s)))
        .flatten()
}
