//! `courtrec verify`: checks a hearing folder or an export bundle offline, from the
//! files alone (no daemon, no index, no network), and says precisely what it found.
//!
//! What is checked, and what each check guards against:
//! - every checkpoint's signature (a forged or re-signed manifest; with `--key`/`--ca`
//!   also that the signer is a box the court trusts);
//! - that the checkpoints chain (`prev`) and are consistent with each other and with
//!   the manifest: each signs the Merkle root of a prefix of the same manifest, so no
//!   line was edited, removed, inserted or reordered after it was signed;
//! - the hash chain of the manifest lines (`prev`), which also covers lines written
//!   after the last checkpoint (a crash);
//! - every segment's length and SHA-256 against its line (a flipped byte, a truncated,
//!   replaced or swapped file), that no segment is missing and no stray file was added;
//! - per track, sequence numbers 1..n in order, and media time continuous from the open
//!   to the close except where a signed event explains the gap (recess, device fault,
//!   recovery);
//! - that the hearing is sealed (a `closed` checkpoint after the close event).
//!
//! Nothing here depends on GStreamer or HTTP.

use super::checkpoint::Checkpoint;
use super::merkle::{self, Hash};
use super::records::{Entry, EventKind, EventRecord, Record, SegmentRecord, TrackKind};
use super::signing::NoteVerifier;
use serde::Serialize;
use sha2::Digest;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Largest manifest or bundle description read (a 24-hour hearing with 12 tracks
/// writes about 200 MB of manifest); anything larger is refused as unusable.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 30;
/// Media time between consecutive segments (or a run's edge) that counts as a gap.
pub const GAP_TOLERANCE_NS: i64 = 500_000_000;
/// How long a video track (camera or composite) may wait for a keyframe after a run starts
/// (IP cameras recorded without re-encoding start at their next keyframe).
pub const KEYFRAME_WAIT_NS: i64 = 5_000_000_000;
/// How late a device fault may be logged after the gap it explains began (the alarm
/// monitor notices a failure within a few seconds).
pub const FAULT_LAG_NS: i64 = 5_000_000_000;

/// How much before a recovery's `gap_from` (the end of the last durable segment of any
/// track) a track may have stopped: a crash loses what was still in the encoders (the
/// composite lags the cameras by its mixing latency) and not yet made durable.
pub const CRASH_LAG_NS: i64 = 2_000_000_000;

/// What kind of problem a finding is. The exit code is that of the most serious one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// Listed in order of precedence: the first one found decides the exit code.
    Unusable,
    BadSignature,
    Modified,
    MissingOrReordered,
    UnexplainedGap,
    Unsealed,
}

impl Problem {
    /// The process exit code for this problem (0 is "complete and unmodified").
    pub fn exit_code(self) -> i32 {
        match self {
            Problem::Modified => 10,
            Problem::MissingOrReordered => 11,
            Problem::UnexplainedGap => 12,
            Problem::Unsealed => 13,
            Problem::BadSignature => 14,
            Problem::Unusable => 15,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Problem::Modified => "MODIFIED",
            Problem::MissingOrReordered => "MISSING OR REORDERED",
            Problem::UnexplainedGap => "UNEXPLAINED GAP",
            Problem::Unsealed => "NOT SEALED",
            Problem::BadSignature => "BAD SIGNATURE",
            Problem::Unusable => "UNUSABLE INPUT",
        }
    }
}

/// One thing the verifier found: a problem, or a note (explained gaps, faults,
/// partial segments) that a reader of the report should know.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
    /// The file concerned, relative to the verified folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub message: String,
}

/// What one track holds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TrackSummary {
    pub segments: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub bytes: u64,
    pub media_duration_ns: u64,
}

/// The verifier's report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub path: String,
    /// "hearing" or "bundle".
    pub kind: String,
    pub hearing_id: String,
    pub case_number: String,
    pub device_id: String,
    /// Fingerprint of the key that signed the checkpoints.
    pub signer_fingerprint: Option<String>,
    /// Whether the signer was checked against a trusted key (`--key`/`--ca`).
    pub signer_trusted: bool,
    pub checkpoints: usize,
    /// Manifest lines covered by a valid signature.
    pub signed_lines: u64,
    /// Manifest lines present (in a bundle: lines included).
    pub manifest_lines: u64,
    /// Lines of the whole manifest (the final checkpoint's tree size).
    pub tree_size: u64,
    pub sealed: bool,
    pub segments_checked: u64,
    pub bytes_hashed: u64,
    pub tracks: BTreeMap<String, TrackSummary>,
    /// Trusted timestamps found: (checkpoint tree size, TSA time).
    pub timestamps: Vec<(u64, String)>,
    /// TSA certificates to check tokens against (from `Trust`).
    #[serde(skip)]
    pub tsa_ca: Vec<PathBuf>,
    /// For a clip: the media range it was cut from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip: Option<(i64, i64)>,
    pub findings: Vec<Finding>,
    /// The one-line verdict.
    pub result: String,
    pub exit_code: i32,
}

impl Report {
    pub(crate) fn problem(&mut self, p: Problem, file: Option<&str>, message: impl Into<String>) {
        self.findings.push(Finding {
            problem: Some(p),
            file: file.map(str::to_string),
            message: message.into(),
        });
    }

    pub(crate) fn note(&mut self, file: Option<&str>, message: impl Into<String>) {
        self.findings.push(Finding {
            problem: None,
            file: file.map(str::to_string),
            message: message.into(),
        });
    }

    /// The most serious problem found, if any.
    pub fn worst(&self) -> Option<Problem> {
        self.findings.iter().filter_map(|f| f.problem).min()
    }

    fn finish(&mut self) {
        let what = if self.kind == "bundle" && self.clip.is_some() {
            let segs: Vec<String> = self
                .tracks
                .iter()
                .filter(|(_, t)| t.segments > 0)
                .map(|(n, t)| format!("{n} {}..{}", t.first_seq, t.last_seq))
                .collect();
            format!(
                "clip of hearing {} (segments {})",
                self.hearing_id,
                segs.join(", ")
            )
        } else {
            format!("hearing {}", self.hearing_id)
        };
        match self.worst() {
            None => {
                self.exit_code = 0;
                self.result = format!(
                    "VERIFIED: {what}, all present and unmodified{}",
                    if self.signer_trusted {
                        ", signed by a trusted key"
                    } else {
                        "; the signer was NOT checked against a trusted key (use --key or --ca)"
                    }
                );
            }
            Some(p) => {
                self.exit_code = p.exit_code();
                let n = self.findings.iter().filter(|f| f.problem.is_some()).count();
                self.result = format!("{}: {what}, {n} problem(s) found", p.label());
            }
        }
    }

    /// The human-readable report, ending with the RESULT line.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "courtrec verify {}", self.path);
        let _ = writeln!(
            s,
            "{}: {} (case {}), recorded by device {}",
            self.kind, self.hearing_id, self.case_number, self.device_id
        );
        let _ = writeln!(
            s,
            "signer: {} ({})",
            self.signer_fingerprint.as_deref().unwrap_or("unknown"),
            if self.signer_trusted {
                "a trusted key"
            } else {
                "not checked against a trusted key"
            }
        );
        let _ = writeln!(
            s,
            "checkpoints: {}, covering {} of {} manifest lines; sealed: {}",
            self.checkpoints,
            self.signed_lines,
            self.tree_size.max(self.manifest_lines),
            if self.sealed { "yes" } else { "no" }
        );
        if !self.timestamps.is_empty() {
            let ts: Vec<String> = self
                .timestamps
                .iter()
                .map(|(n, t)| format!("{t} (checkpoint {n})"))
                .collect();
            let _ = writeln!(s, "trusted timestamps: {}", ts.join(", "));
        }
        for (name, t) in &self.tracks {
            let _ = writeln!(
                s,
                "track {name}: {} segment(s){}, {} bytes, {:.1} s",
                t.segments,
                if t.segments > 0 {
                    format!(" {}..{}", t.first_seq, t.last_seq)
                } else {
                    String::new()
                },
                t.bytes,
                t.media_duration_ns as f64 / 1e9
            );
        }
        let _ = writeln!(
            s,
            "hashed {} segment(s), {} bytes",
            self.segments_checked, self.bytes_hashed
        );
        for f in &self.findings {
            let tag = f.problem.map_or("note", |p| p.label());
            match &f.file {
                Some(file) => {
                    let _ = writeln!(s, "[{tag}] {file}: {}", f.message);
                }
                None => {
                    let _ = writeln!(s, "[{tag}] {}", f.message);
                }
            }
        }
        let _ = writeln!(s, "RESULT: {}", self.result);
        s
    }
}

/// Trusted keys for the signer check.
#[derive(Debug, Default, Clone)]
pub struct Trust {
    pub keys: Vec<NoteVerifier>,
    /// Certificates (PEM) of the time-stamping authorities the court trusts, for
    /// `openssl ts -verify`.
    pub tsa_ca: Vec<PathBuf>,
}

impl Trust {
    /// Reads `--key` values (a verifier key, or a file holding one) and `--ca` files
    /// (a court's list: one verifier key per line, `#` comments).
    pub fn load(keys: &[String], lists: &[PathBuf], tsa_ca: &[PathBuf]) -> Result<Trust, String> {
        let mut t = Trust::default();
        for ca in tsa_ca {
            if !ca.is_file() {
                return Err(format!("--tsa-ca {}: no such file", ca.display()));
            }
            t.tsa_ca.push(ca.clone());
        }
        for k in keys {
            let text = if Path::new(k).is_file() {
                std::fs::read_to_string(k).map_err(|e| format!("reading key file {k}: {e}"))?
            } else {
                k.clone()
            };
            t.keys
                .push(NoteVerifier::from_vkey(text.trim()).map_err(|e| format!("--key {k}: {e}"))?);
        }
        for list in lists {
            let text = std::fs::read_to_string(list)
                .map_err(|e| format!("reading trusted key list {}: {e}", list.display()))?;
            for (i, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                t.keys.push(
                    NoteVerifier::from_vkey(line)
                        .map_err(|e| format!("{} line {}: {e}", list.display(), i + 1))?,
                );
            }
        }
        Ok(t)
    }
}

/// Verifies a hearing folder or an export bundle.
pub fn verify(path: &Path, trust: &Trust) -> Report {
    let mut r = Report {
        path: path.display().to_string(),
        tsa_ca: trust.tsa_ca.clone(),
        ..Report::default()
    };
    if !path.exists() {
        r.problem(Problem::Unusable, None, "no such file or folder");
    } else if !path.is_dir() {
        r.problem(
            Problem::Unusable,
            None,
            "this is a file; give the hearing's folder (with manifest.jsonl) or an export bundle's folder (with bundle.json)",
        );
    } else if path.join("bundle.json").is_file() {
        r.kind = "bundle".into();
        super::bundle::verify_bundle(path, trust, &mut r);
    } else if path.join("manifest.jsonl").is_file() {
        r.kind = "hearing".into();
        verify_hearing(path, trust, &mut r);
    } else {
        r.problem(
            Problem::Unusable,
            None,
            "not a hearing folder (no manifest.jsonl) nor an export bundle (no bundle.json)",
        );
    }
    r.finish();
    r
}

/// One parsed manifest line.
pub(crate) struct Line {
    pub leaf: Hash,
    pub entry: Option<Entry>,
}

/// Reads a file of at most `MAX_MANIFEST_BYTES`.
pub(crate) fn read_limited(path: &Path, r: &mut Report, what: &str) -> Option<Vec<u8>> {
    let name = path.file_name().map(|n| n.to_string_lossy().to_string());
    match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_MANIFEST_BYTES => {
            r.problem(
                Problem::Unusable,
                name.as_deref(),
                format!(
                    "{what} is {} bytes, more than any hearing writes ({} bytes at most)",
                    m.len(),
                    MAX_MANIFEST_BYTES
                ),
            );
            return None;
        }
        Err(e) => {
            r.problem(
                Problem::Unusable,
                name.as_deref(),
                format!("cannot read {what}: {e}"),
            );
            return None;
        }
        Ok(_) => {}
    }
    match std::fs::read(path) {
        Ok(b) => Some(b),
        Err(e) => {
            r.problem(
                Problem::Unusable,
                name.as_deref(),
                format!("cannot read {what}: {e}"),
            );
            None
        }
    }
}

fn verify_hearing(dir: &Path, trust: &Trust, r: &mut Report) {
    const MANIFEST: &str = "manifest.jsonl";
    let Some(bytes) = read_limited(&dir.join(MANIFEST), r, "the manifest") else {
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
    let mut lines = Vec::with_capacity(raw.len());
    let mut prev_hash = super::manifest::GENESIS_PREV.to_string();
    let mut parse_failures = 0usize;
    // Lines out of place: the signed roots then differ because of that, not an edit.
    let mut reordered = false;
    let line_hashes: std::collections::HashSet<String> =
        raw.iter().map(|l| super::sha256_hex(l)).collect();
    for (i, l) in raw.iter().enumerate() {
        let entry: Option<Entry> = serde_json::from_slice(l).ok();
        match &entry {
            None => {
                parse_failures += 1;
                r.problem(
                    Problem::Modified,
                    Some(MANIFEST),
                    format!("line {} is not a manifest record", i + 1),
                );
            }
            Some(e) if e.n != i as u64 => {
                reordered = true;
                r.problem(
                    Problem::MissingOrReordered,
                    Some(MANIFEST),
                    format!(
                        "line {} is numbered {}: lines were removed, added or reordered",
                        i + 1,
                        e.n + 1
                    ),
                );
            }
            Some(e) if e.prev != prev_hash => {
                // Chained to a line that is elsewhere in the file: moved, not edited.
                if line_hashes.contains(&e.prev) {
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
        prev_hash = super::sha256_hex(l);
        lines.push(Line {
            leaf: merkle::leaf_hash(l),
            entry,
        });
    }
    if lines.is_empty() || parse_failures == lines.len() {
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

    // Signatures and checkpoints.
    let leaves: Vec<Hash> = lines.iter().map(|l| l.leaf).collect();
    let verifiers = signer_keys(dir, trust, r);
    let cps = load_checkpoints(dir, &verifiers, r);
    r.checkpoints = cps.len();
    let mut last_good = 0u64;
    for cp in &cps {
        check_origin(cp, r);
        let file = format!("checkpoints/{}", Checkpoint::file_name(cp.size));
        if cp.size > leaves.len() as u64 {
            r.problem(
                Problem::MissingOrReordered,
                Some(&file),
                format!(
                    "signs {} manifest lines but the manifest has {}: lines were removed",
                    cp.size,
                    leaves.len()
                ),
            );
            continue;
        }
        if merkle::root(&leaves[..cp.size as usize]) != cp.root {
            r.problem(
                if reordered {
                    Problem::MissingOrReordered
                } else {
                    Problem::Modified
                },
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
    check_checkpoint_chain(&cps, r);
    r.signed_lines = last_good;
    r.tree_size = leaves.len() as u64;
    let entries: Vec<&Entry> = lines.iter().filter_map(|l| l.entry.as_ref()).collect();
    if last_good < leaves.len() as u64 {
        let after: Vec<&Entry> = entries
            .iter()
            .copied()
            .filter(|e| e.n >= last_good)
            .collect();
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
        r.note(
            Some(MANIFEST),
            format!(
                "lines {}..{} ({segs} segment(s){}) are after the last signed checkpoint: they are covered by the hash chain and their segments' hashes only, not by a signature",
                last_good + 1,
                leaves.len(),
                if evs.is_empty() {
                    String::new()
                } else {
                    format!(", events: {}", evs.join(", "))
                }
            ),
        );
    }
    check_sealed(&cps, &entries, last_good, r);
    check_segments(dir, &entries, r, true);
    check_timeline(&entries, None, None, r);
}

/// The `created` record, which must be the first line.
pub(crate) fn created_event(lines: &[Line]) -> Option<&EventRecord> {
    match lines
        .first()
        .and_then(|l| l.entry.as_ref())
        .map(|e| &e.record)
    {
        Some(Record::Event(ev)) if ev.kind == EventKind::Created && ev.meta.is_some() => Some(ev),
        _ => None,
    }
}

/// The keys checkpoints are checked with: the trusted ones if given, else the
/// `device.vkey` the folder carries (which proves the notes are intact, not who made them).
pub(crate) fn signer_keys(dir: &Path, trust: &Trust, r: &mut Report) -> Vec<NoteVerifier> {
    let own = std::fs::read_to_string(dir.join("device.vkey"))
        .ok()
        .and_then(|t| NoteVerifier::from_vkey(t.trim()).ok());
    if let Some(k) = &own {
        r.signer_fingerprint = Some(k.fingerprint());
    }
    if !trust.keys.is_empty() {
        r.signer_trusted = true;
        return trust.keys.clone();
    }
    match own {
        Some(k) => vec![k],
        None => {
            r.problem(
                Problem::BadSignature,
                Some("device.vkey"),
                "missing or unreadable, and no --key or --ca given: the checkpoints' signatures cannot be checked",
            );
            Vec::new()
        }
    }
}

/// Reads and checks every `checkpoints/*.note`, returning those with a valid signature
/// by one of `keys`, by tree size.
pub(crate) fn load_checkpoints(
    dir: &Path,
    keys: &[NoteVerifier],
    r: &mut Report,
) -> Vec<Checkpoint> {
    let cp_dir = dir.join("checkpoints");
    let sizes = super::checkpoint::sizes_in(&cp_dir);
    let mut out = Vec::new();
    let mut trusted_fp: Option<String> = None;
    for size in sizes {
        let name = Checkpoint::file_name(size);
        let file = format!("checkpoints/{name}");
        let note = match std::fs::read(cp_dir.join(&name)) {
            Ok(b) if b.len() <= 64 * 1024 => String::from_utf8_lossy(&b).to_string(),
            Ok(_) => {
                r.problem(
                    Problem::Modified,
                    Some(&file),
                    "far too large to be a checkpoint",
                );
                continue;
            }
            Err(e) => {
                r.problem(Problem::Unusable, Some(&file), format!("cannot read: {e}"));
                continue;
            }
        };
        if keys.is_empty() {
            continue;
        }
        let mut body = None;
        let mut last_err = String::new();
        for k in keys {
            match k.verify_note(&note) {
                Ok(b) => {
                    trusted_fp = Some(k.fingerprint());
                    body = Some(b);
                    break;
                }
                Err(e) => last_err = e.msg,
            }
        }
        let Some(body) = body else {
            r.problem(
                Problem::BadSignature,
                Some(&file),
                format!(
                    "signature does not verify with {}: {last_err}",
                    if r.signer_trusted {
                        "any trusted key"
                    } else {
                        "the folder's device.vkey"
                    }
                ),
            );
            continue;
        };
        match Checkpoint::parse(&body) {
            Ok(cp) if cp.size == size => {
                check_token(&cp_dir, size, note.as_bytes(), r);
                out.push(cp)
            }
            Ok(cp) => r.problem(
                Problem::MissingOrReordered,
                Some(&file),
                format!("is named for tree size {size} but signs size {}", cp.size),
            ),
            Err(e) => r.problem(Problem::Modified, Some(&file), e.msg),
        }
    }
    if r.signer_trusted
        && let Some(fp) = trusted_fp
    {
        r.signer_fingerprint = Some(fp);
    }
    out
}

/// Checks the RFC 3161 token stored beside a checkpoint, if there is one: that it
/// stamps this note's exact bytes, and (with `--tsa-ca`) the TSA's signature.
fn check_token(cp_dir: &Path, size: u64, note: &[u8], r: &mut Report) {
    use super::tsa;
    let name = Checkpoint::token_name(size);
    let path = cp_dir.join(&name);
    let file = format!("checkpoints/{name}");
    let Ok(der) = std::fs::read(&path) else {
        return;
    };
    let info = (der.len() <= 64 * 1024)
        .then(|| {
            tsa::response_status(&der)
                .filter(|s| *s <= 1)
                .and(tsa::token_info(&der))
        })
        .flatten();
    let Some(info) = info else {
        r.problem(
            Problem::Modified,
            Some(&file),
            "is not a granted RFC 3161 timestamp reply",
        );
        return;
    };
    let digest: [u8; 32] = sha2::Sha256::digest(note).into();
    if info.imprint != digest {
        r.problem(
            Problem::Modified,
            Some(&file),
            format!(
                "the trusted timestamp does not match checkpoint {size}: the checkpoint was rewritten after the TSA stamped it"
            ),
        );
        return;
    }
    let time = tsa::gen_time_rfc3339(&info.gen_time);
    r.timestamps.push((size, time.clone()));
    if r.tsa_ca.is_empty() {
        r.note(
            Some(&file),
            format!(
                "trusted timestamp {time} over checkpoint {size}; the TSA's signature was not checked (give --tsa-ca)"
            ),
        );
        return;
    }
    let mut last = String::new();
    for ca in r.tsa_ca.clone() {
        let out = std::process::Command::new("openssl")
            .args(["ts", "-verify", "-in"])
            .arg(&path)
            .arg("-data")
            .arg(cp_dir.join(Checkpoint::file_name(size)))
            .arg("-CAfile")
            .arg(&ca)
            .output();
        match out {
            Ok(o) if o.status.success() => {
                r.note(
                    Some(&file),
                    format!(
                        "trusted timestamp {time} over checkpoint {size}, signed by a TSA certified by {}",
                        ca.display()
                    ),
                );
                return;
            }
            Ok(o) => last = String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => {
                r.problem(
                    Problem::Unusable,
                    Some(&file),
                    format!("cannot run openssl to check the TSA's signature: {e}"),
                );
                return;
            }
        }
    }
    r.problem(
        Problem::BadSignature,
        Some(&file),
        format!("the TSA's signature does not verify against --tsa-ca: {last}"),
    );
}

fn check_origin(cp: &Checkpoint, r: &mut Report) {
    if cp.hearing_id != r.hearing_id || cp.device_id != r.device_id {
        r.problem(
            Problem::Modified,
            Some(&format!("checkpoints/{}", Checkpoint::file_name(cp.size))),
            format!(
                "is for hearing {} on device {}, not this one (copied in from another hearing)",
                cp.hearing_id, cp.device_id
            ),
        );
    }
}

/// Each checkpoint names the one before it: a deleted checkpoint leaves a hole.
pub(crate) fn check_checkpoint_chain(cps: &[Checkpoint], r: &mut Report) {
    let mut prev = 0u64;
    for cp in cps {
        if cp.prev != prev {
            let file = format!("checkpoints/{}", Checkpoint::file_name(cp.size));
            if cp.prev > prev {
                r.problem(
                    Problem::MissingOrReordered,
                    Some(&file),
                    format!(
                        "follows the checkpoint of {} lines, which is missing (a checkpoint was removed)",
                        cp.prev
                    ),
                );
            } else {
                r.problem(
                    Problem::MissingOrReordered,
                    Some(&file),
                    format!(
                        "says the checkpoint before it covers {} lines, but one of {prev} lines exists: checkpoints were added or reordered",
                        cp.prev
                    ),
                );
            }
        }
        prev = cp.size;
    }
    for w in cps.windows(2) {
        if w[1].time < w[0].time {
            r.problem(
                Problem::MissingOrReordered,
                Some(&format!("checkpoints/{}", Checkpoint::file_name(w[1].size))),
                "is dated before the checkpoint before it",
            );
        }
    }
}

/// Sealed: a valid `closed` checkpoint covers the close event, and only `export`
/// events follow the close.
pub(crate) fn check_sealed(cps: &[Checkpoint], entries: &[&Entry], signed: u64, r: &mut Report) {
    let close_n = entries.iter().find_map(|e| match &e.record {
        Record::Event(ev) if ev.kind == EventKind::Close => Some(e.n),
        _ => None,
    });
    let Some(close_n) = close_n else {
        r.problem(
            Problem::Unsealed,
            None,
            "the hearing has no close event: it is still open, or the recorder was cut off (a crash) before it closed",
        );
        return;
    };
    for e in entries.iter().filter(|e| e.n > close_n) {
        if !matches!(&e.record, Record::Event(ev) if ev.kind == EventKind::Export) {
            r.problem(
                Problem::Modified,
                None,
                format!(
                    "manifest line {} comes after the close and is not an export record",
                    e.n + 1
                ),
            );
        }
    }
    let sealed = cps
        .iter()
        .any(|c| c.closed && c.size > close_n && c.size <= signed);
    if sealed {
        r.sealed = true;
    } else {
        r.problem(
            Problem::Unsealed,
            None,
            "no valid closed checkpoint covers the close event",
        );
    }
}

/// Hashes every segment named in the manifest and compares it with its line; reports
/// missing, altered, swapped and (in a whole hearing folder) stray files.
pub(crate) fn check_segments(dir: &Path, entries: &[&Entry], r: &mut Report, whole: bool) {
    let segs: Vec<&SegmentRecord> = entries
        .iter()
        .filter_map(|e| match &e.record {
            Record::Segment(s) => Some(s),
            _ => None,
        })
        .collect();
    let by_hash: HashMap<&str, &SegmentRecord> =
        segs.iter().map(|s| (s.sha256.as_str(), *s)).collect();
    let jobs: Vec<(usize, PathBuf)> = segs
        .iter()
        .enumerate()
        .filter(|(_, s)| safe_rel(&s.file))
        .map(|(i, s)| (i, dir.join(&s.file)))
        .collect();
    for s in segs.iter().filter(|s| !safe_rel(&s.file)) {
        r.problem(
            Problem::Modified,
            None,
            format!(
                "segment {} #{} names the file {:?}, outside the folder",
                s.track, s.seq, s.file
            ),
        );
    }
    let results = hash_parallel(&jobs);
    for ((i, _), res) in jobs.iter().zip(results) {
        let s = segs[*i];
        r.segments_checked += 1;
        match res {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => r.problem(
                Problem::MissingOrReordered,
                Some(&s.file),
                format!("segment {} #{} is missing", s.track, s.seq),
            ),
            Err(e) => r.problem(
                Problem::Unusable,
                Some(&s.file),
                format!("cannot read segment {} #{}: {e}", s.track, s.seq),
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
    if whole {
        let known: std::collections::HashSet<&str> = segs.iter().map(|s| s.file.as_str()).collect();
        for f in stray_files(dir) {
            if known.contains(f.as_str()) {
                continue;
            }
            if r.sealed {
                r.problem(
                    Problem::Modified,
                    Some(&f),
                    "is not in the manifest: added to the folder after the fact",
                );
            } else {
                r.note(
                    Some(&f),
                    "is not in the manifest: a segment being written when the recorder stopped (the daemon adopts it as partial on restart)",
                );
            }
        }
    }
}

/// A relative path inside the folder (no `..`, not absolute).
fn safe_rel(p: &str) -> bool {
    let p = Path::new(p);
    !p.is_absolute()
        && p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// Every file under `tracks/`, relative to `dir`.
fn stray_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(tracks) = std::fs::read_dir(dir.join("tracks")) else {
        return out;
    };
    for t in tracks.flatten() {
        let Ok(files) = std::fs::read_dir(t.path()) else {
            continue;
        };
        for f in files.flatten() {
            if let Ok(rel) = f.path().strip_prefix(dir) {
                out.push(rel.to_string_lossy().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Hex SHA-256 and length of a file, or why it could not be read.
pub type HashResult = std::io::Result<(String, u64)>;

/// Hashes files on every core: verifying a long hearing is bound by SHA-256, and the
/// boxes have two to four cores.
pub fn hash_parallel(jobs: &[(usize, PathBuf)]) -> Vec<HashResult> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<HashResult>>> =
        jobs.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((_, path)) = jobs.get(i) else {
                        break;
                    };
                    let res = hash_one(path, &mut buf);
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(res);
                    }
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .ok()
                .flatten()
                .unwrap_or_else(|| Err(std::io::Error::other("not hashed")))
        })
        .collect()
}

fn hash_one(path: &Path, buf: &mut [u8]) -> std::io::Result<(String, u64)> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut h = sha2::Sha256::new();
    let mut total = 0u64;
    loop {
        let n = f.read(buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex::encode(h.finalize()), total))
}

/// A span of media time in which a track may lack segments, and why.
struct Excuse {
    from_ns: i64,
    to_ns: i64,
    why: String,
    /// Extra time every track may take to come back after `to_ns` (a restarted
    /// pipeline warms up before the first composite frame).
    settle_ns: i64,
}

fn fmt_t(ns: i64) -> String {
    let ms = ns.max(0) / 1_000_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Per track: sequence numbers contiguous in manifest order, and the media timeline
/// covered from each run's start to its end except where an event explains a gap.
/// `clip` limits the check to a clip's range and `only` to its tracks (in a bundle).
pub(crate) fn check_timeline(
    entries: &[&Entry],
    clip: Option<(i64, i64)>,
    only: Option<&[String]>,
    r: &mut Report,
) {
    let Some(meta) = entries.first().and_then(|e| match &e.record {
        Record::Event(ev) => ev.meta.clone(),
        _ => None,
    }) else {
        return;
    };
    let events: Vec<&EventRecord> = entries
        .iter()
        .filter_map(|e| match &e.record {
            Record::Event(ev) => Some(ev),
            _ => None,
        })
        .collect();
    // Why media may be missing: before the open, after the close, during recesses,
    // device faults and crashes.
    let mut excuses: Vec<Excuse> = Vec::new();
    let mut open_at: Option<i64> = None;
    let mut close_at: Option<i64> = None;
    let mut recess_from: Option<(i64, &EventRecord)> = None;
    let mut faults: BTreeMap<String, (i64, &EventRecord)> = BTreeMap::new();
    for ev in &events {
        let Some(t) = ev.media_time_ns else { continue };
        match ev.kind {
            EventKind::Open => open_at = open_at.or(Some(t)),
            EventKind::Recess => recess_from = Some((t, ev)),
            EventKind::Resume | EventKind::Close => {
                if let Some((from, rec)) = recess_from.take() {
                    excuses.push(Excuse {
                        settle_ns: 0,
                        from_ns: from,
                        to_ns: t,
                        why: format!(
                            "the recess at {} ({})",
                            fmt_t(from),
                            rec.reason
                                .map(|r| format!("{r:?}").to_lowercase())
                                .unwrap_or_else(|| "no reason".into())
                        ),
                    });
                }
                if ev.kind == EventKind::Close {
                    close_at = Some(t);
                }
            }
            EventKind::Recovery => {
                if let (Some(a), Some(b)) = (ev.gap_from_ns, ev.gap_to_ns) {
                    excuses.push(Excuse {
                        from_ns: a - CRASH_LAG_NS,
                        to_ns: b,
                        settle_ns: KEYFRAME_WAIT_NS,
                        why: format!(
                            "the recovery event at {} (the recorder was down {} to {})",
                            fmt_t(t),
                            fmt_t(a),
                            fmt_t(b)
                        ),
                    });
                    r.note(
                        None,
                        format!(
                            "recovery at {}: {}",
                            fmt_t(t),
                            ev.text.as_deref().unwrap_or("")
                        ),
                    );
                }
            }
            EventKind::DeviceFault => {
                let src = ev.source.clone().unwrap_or_default();
                faults.entry(src).or_insert((t, ev));
            }
            EventKind::DeviceRestored => {
                let src = ev.source.clone().unwrap_or_default();
                if let Some((from, f)) = faults.remove(&src) {
                    excuses.push(Excuse {
                        settle_ns: 0,
                        from_ns: from - FAULT_LAG_NS,
                        to_ns: t,
                        why: format!(
                            "the device fault of {src} at {} ({})",
                            fmt_t(from),
                            f.text.as_deref().unwrap_or("")
                        ),
                    });
                }
            }
            _ => {}
        }
    }
    for (src, (from, f)) in faults {
        excuses.push(Excuse {
            settle_ns: 0,
            from_ns: from - FAULT_LAG_NS,
            to_ns: i64::MAX,
            why: format!(
                "the device fault of {src} at {} ({}), never restored",
                fmt_t(from),
                f.text.as_deref().unwrap_or("")
            ),
        });
    }
    let Some(open_at) = open_at else {
        // Never opened: nothing may have been recorded.
        if entries
            .iter()
            .any(|e| matches!(e.record, Record::Segment(_)))
        {
            r.problem(
                Problem::Modified,
                None,
                "segments are recorded but the hearing was never opened",
            );
        }
        return;
    };
    // Runs start at the open, each resume and each recovery that resumed.
    let run_starts: Vec<i64> = events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::Open | EventKind::Resume | EventKind::Recovery
            )
        })
        .filter_map(|e| match e.kind {
            EventKind::Recovery => e.gap_to_ns,
            _ => e.media_time_ns,
        })
        .collect();
    let end_at = close_at.unwrap_or(i64::MAX);
    let (lo, hi) = clip.unwrap_or((open_at, end_at));
    let (lo, hi) = (lo.max(open_at), hi.min(end_at));

    for track in meta
        .tracks
        .iter()
        .filter(|t| only.is_none_or(|o| o.contains(&t.name)))
    {
        let segs: Vec<&SegmentRecord> = entries
            .iter()
            .filter_map(|e| match &e.record {
                Record::Segment(s) if s.track == track.name => Some(s),
                _ => None,
            })
            .collect();
        let sum = r.tracks.entry(track.name.clone()).or_default();
        sum.segments = segs.len() as u64;
        sum.first_seq = segs.first().map_or(0, |s| s.seq);
        sum.last_seq = segs.last().map_or(0, |s| s.seq);
        sum.bytes = segs.iter().map(|s| s.bytes).sum();
        sum.media_duration_ns = segs.iter().map(|s| s.media_duration_ns).sum();
        let first_expected = if clip.is_some() { sum.first_seq } else { 1 };
        for (k, s) in segs.iter().enumerate() {
            let want = first_expected + k as u64;
            if s.seq != want {
                r.problem(
                    Problem::MissingOrReordered,
                    Some(&s.file),
                    format!(
                        "track {}: segment #{} where #{want} should be (numbers must run 1, 2, 3... in order)",
                        track.name, s.seq
                    ),
                );
                break;
            }
        }
        let wait = if track.kind != TrackKind::Audio {
            KEYFRAME_WAIT_NS
        } else {
            GAP_TOLERANCE_NS
        };
        // Walk the timeline: each gap longer than the tolerance needs an excuse.
        let mut cursor = lo;
        // What may be missing: every excuse, and the keyframe wait after each run's
        // start. A gap is explained when these together cover it (a recess may run
        // into a device fault, or a run too short to record anything sit between two).
        let mut covers: Vec<(i64, i64, &str)> = excuses
            .iter()
            .map(|x| {
                (
                    x.from_ns,
                    x.to_ns.saturating_add(wait.max(x.settle_ns)),
                    x.why.as_str(),
                )
            })
            .chain(run_starts.iter().map(|&s| {
                (
                    s - GAP_TOLERANCE_NS,
                    s.saturating_add(wait),
                    "the wait for the first keyframe of a run",
                )
            }))
            .collect();
        covers.sort_by_key(|c| c.0);
        let check_gap = |from: i64, to: i64, r: &mut Report| {
            if to - from <= GAP_TOLERANCE_NS {
                return;
            }
            // Walk the covers in order; the longest stretch none covers decides.
            let (mut cur, mut worst, mut why) = (from, (0i64, from, from), Vec::new());
            for &(a, b, w) in &covers {
                if b <= cur || a >= to {
                    continue;
                }
                if a > cur && a - cur > worst.0 {
                    worst = (a - cur, cur, a);
                }
                if !why.contains(&w) && !w.starts_with("the wait") {
                    why.push(w);
                }
                cur = cur.max(b);
                if cur >= to {
                    break;
                }
            }
            if cur < to && to - cur > worst.0 {
                worst = (to - cur, cur, to);
            }
            if worst.0 <= GAP_TOLERANCE_NS {
                if !why.is_empty() {
                    r.note(
                        None,
                        format!(
                            "track {}: no media from {} to {}, explained by {}",
                            track.name,
                            fmt_t(from),
                            fmt_t(to),
                            why.join(" and ")
                        ),
                    );
                }
            } else {
                r.problem(
                    Problem::UnexplainedGap,
                    None,
                    format!(
                        "track {}: no media from {} to {} ({:.1} s), and no event explains it",
                        track.name,
                        fmt_t(worst.1),
                        fmt_t(worst.2),
                        worst.0 as f64 / 1e9
                    ),
                );
            }
        };
        for s in &segs {
            let start = s.media_start_ns;
            let end = start + s.media_duration_ns as i64;
            if end <= lo || start >= hi {
                continue;
            }
            check_gap(cursor, start, r);
            cursor = cursor.max(end);
        }
        if hi != i64::MAX {
            check_gap(cursor, hi, r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct_and_precedence_is_by_severity() {
        let all = [
            Problem::Unusable,
            Problem::BadSignature,
            Problem::Modified,
            Problem::MissingOrReordered,
            Problem::UnexplainedGap,
            Problem::Unsealed,
        ];
        let codes: std::collections::BTreeSet<i32> = all.iter().map(|p| p.exit_code()).collect();
        assert_eq!(codes.len(), all.len());
        assert!(!codes.contains(&0) && !codes.contains(&1) && !codes.contains(&2));
        let mut r = Report::default();
        r.problem(Problem::Unsealed, None, "x");
        r.problem(Problem::Modified, None, "y");
        assert_eq!(r.worst(), Some(Problem::Modified));
    }

    #[test]
    fn bad_inputs_are_unusable_not_panics() {
        let tmp = tempfile::tempdir().unwrap();
        let t = Trust::default();
        let code = |p: &Path| verify(p, &t).exit_code;
        assert_eq!(code(&tmp.path().join("nope")), 15);
        assert_eq!(code(tmp.path()), 15, "empty folder");
        let file = tmp.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(code(&file), 15, "a file");
        let h = tmp.path().join("h");
        std::fs::create_dir(&h).unwrap();
        std::fs::write(h.join("manifest.jsonl"), b"").unwrap();
        assert_eq!(code(&h), 15, "empty manifest");
        let noise: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        std::fs::write(h.join("manifest.jsonl"), &noise).unwrap();
        assert_eq!(code(&h), 15, "random bytes");
        std::fs::write(h.join("manifest.jsonl"), b"{\"n\":0}\n[1,2]\n").unwrap();
        assert_eq!(code(&h), 15, "json that is not a manifest");
        std::fs::write(h.join("bundle.json"), b"\x00\x01garbage").unwrap();
        assert_eq!(code(&h), 15, "a broken bundle description");
    }
}
