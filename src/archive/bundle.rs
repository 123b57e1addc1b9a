//! Export bundles: a whole hearing or a clip of it, in a folder that proves itself.
//!
//! ```text
//! bundle.json            what is in it, the manifest lines it needs, their inclusion
//!                        proofs against the final signed root, and consistency proofs
//!                        from every earlier checkpoint to the final one
//! device.vkey            the recording box's verifier key
//! checkpoints/*.note     every signed checkpoint of the hearing (and *.tsr tokens)
//! tracks/<track>/*.ts    the segments exported, byte for byte
//! play/<track>.m3u8      playlists: `ffplay play/composite.m3u8`, VLC, a browser
//! VERIFY.txt             how to check it, with courtrec or with standard tools
//! ```
//!
//! The manifest lines included are every event (so each gap can be explained and the
//! chain of custody read) and the segment lines of the tracks and range exported. The
//! export itself is an event of the hearing, appended (and signed) before the bundle
//! is made, so the bundle carries the record of its own making.

use super::checkpoint::Checkpoint;
use super::log::HearingLog;
use super::merkle::{self, Hash};
use super::records::{Entry, EventKind, EventRecord, Record, format_wall};
use super::signing::DeviceKey;
use super::verify::{self, Problem, Report, Trust};
use crate::error::{Error, ErrorKind, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const FORMAT: &str = "courtrec-bundle/1";

/// A manifest line carried by a bundle, with its inclusion proof.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleLine {
    /// 0-based position in the manifest (the Merkle leaf index).
    pub n: u64,
    /// The line's exact text (without its newline): its leaf hash is over these bytes.
    pub text: String,
    /// Base64 hashes of the RFC 9162 inclusion proof against the final root.
    pub proof: Vec<String>,
}

/// Consistency proof from an earlier checkpoint to the final one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleConsistency {
    pub size: u64,
    pub proof: Vec<String>,
}

/// `bundle.json`. Only what the signatures and proofs cover is trusted by `verify`;
/// the rest (case number, who exported) is there for people and is repeated, signed, in
/// the export event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleDesc {
    pub format: String,
    pub hearing_id: String,
    pub device_id: String,
    pub case_number: String,
    pub exported_at: String,
    pub exported_by: String,
    /// Manifest position of this export's own event (which holds the signed range).
    pub export_event: u64,
    /// Media range exported, in ns from the hearing's media origin (None: all).
    pub from_ns: Option<i64>,
    pub to_ns: Option<i64>,
    pub tracks: Vec<String>,
    /// Lines of the manifest when exported: the final checkpoint's tree size.
    pub tree_size: u64,
    pub lines: Vec<BundleLine>,
    pub consistency: Vec<BundleConsistency>,
}

/// What to export.
#[derive(Debug, Clone, Default)]
pub struct ExportRequest {
    /// Media range in ns (from the hearing's origin); segments overlapping it are
    /// exported whole (clips are cut at segment boundaries, never re-encoded).
    pub from_ns: Option<i64>,
    pub to_ns: Option<i64>,
    /// Track names; empty: all.
    pub tracks: Vec<String>,
    /// Who exports (user name), logged in the export event.
    pub actor: String,
}

/// What an export produced.
#[derive(Debug, Clone, Serialize)]
pub struct ExportSummary {
    pub out: String,
    pub hearing_id: String,
    pub segments: usize,
    pub bytes: u64,
    pub tracks: Vec<String>,
    pub tree_size: u64,
}

/// Parses an export time: `HH:MM:SS[.mmm]` from the open, or an RFC 3339 wall time
/// (placed on the media timeline through the open event).
pub fn parse_time(text: &str, events: &[EventRecord]) -> Result<i64> {
    let open = events.iter().find(|e| e.kind == EventKind::Open);
    let open_media = open.and_then(|e| e.media_time_ns).unwrap_or(0);
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        let open_wall = open
            .and_then(|e| chrono::DateTime::parse_from_rfc3339(&e.wall_time).ok())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Conflict,
                    "the hearing was never opened, so it has no media to cut",
                )
            })?;
        let delta = t.signed_duration_since(open_wall);
        return Ok(open_media + delta.num_nanoseconds().unwrap_or(i64::MAX / 2));
    }
    let parts: Vec<&str> = text.split(':').collect();
    let bad = || {
        Error::new(
            ErrorKind::Invalid,
            format!(
                "time {text:?} is neither HH:MM:SS (from the open) nor an RFC 3339 date and time"
            ),
        )
    };
    if parts.len() != 3 {
        return Err(bad());
    }
    let h: u64 = parts[0].parse().map_err(|_| bad())?;
    let m: u64 = parts[1].parse().map_err(|_| bad())?;
    let s: f64 = parts[2].parse().map_err(|_| bad())?;
    if m >= 60 || !(0.0..60.0).contains(&s) {
        return Err(bad());
    }
    Ok(open_media + ((h * 3600 + m * 60) as f64 * 1e9 + s * 1e9) as i64)
}

/// Holds an exclusive lock on a hearing's manifest while an export appends to it, so
/// the daemon (API exports) and the CLI never interleave two appends.
fn lock_manifest(dir: &Path) -> Result<nix::fcntl::Flock<std::fs::File>> {
    let path = dir.join("manifest.jsonl");
    let f = std::fs::File::open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| {
        Error::new(
            ErrorKind::Internal,
            format!("locking {}: {e}", path.display()),
        )
    })
}

/// Exports a closed hearing (or a clip of it) from its folder to `out`, which must not
/// exist or be empty. Appends the export event to the hearing, signed with `key`.
pub fn export(
    hearing: &Path,
    out: &Path,
    req: &ExportRequest,
    key: Arc<DeviceKey>,
) -> Result<ExportSummary> {
    if out.exists()
        && std::fs::read_dir(out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        crate::bail!(
            Conflict,
            "{} exists and is not empty; choose a new folder for the bundle",
            out.display()
        );
    }
    if !hearing.join("manifest.jsonl").is_file() {
        crate::bail!(NotFound, "{} is not a hearing folder", hearing.display());
    }
    let _lock = lock_manifest(hearing)?;
    let dir = super::HearingDir {
        root: hearing.to_path_buf(),
    };
    let (mut log, entries, _) = HearingLog::open(dir, None, Some(key))?;
    let doc = log.doc().clone();
    if doc.state != super::index::HearingState::Closed {
        crate::bail!(
            Conflict,
            "hearing {} is {}: only closed (sealed) hearings are exported",
            doc.id,
            doc.state.as_str()
        );
    }
    let all_tracks: Vec<String> = doc.meta.tracks.iter().map(|t| t.name.clone()).collect();
    for t in &req.tracks {
        if !all_tracks.contains(t) {
            crate::bail!(
                Invalid,
                "hearing {} has no track {t:?} (it has {})",
                doc.id,
                all_tracks.join(", ")
            );
        }
    }
    if let (Some(a), Some(b)) = (req.from_ns, req.to_ns)
        && a >= b
    {
        crate::bail!(Invalid, "the clip's start is not before its end");
    }
    let tracks = if req.tracks.is_empty() {
        all_tracks.clone()
    } else {
        req.tracks.clone()
    };
    let selected = |e: &Entry| match &e.record {
        Record::Event(_) => true,
        Record::Segment(s) => {
            let end = s.media_start_ns + s.media_duration_ns as i64;
            tracks.contains(&s.track)
                && req.from_ns.is_none_or(|a| end > a)
                && req.to_ns.is_none_or(|b| s.media_start_ns < b)
        }
    };
    let n_segments = entries
        .iter()
        .filter(|e| matches!(e.record, Record::Segment(_)) && selected(e))
        .count();
    if n_segments == 0 {
        crate::bail!(
            Invalid,
            "nothing was recorded on those tracks in that range"
        );
    }

    // The export is part of the chain of custody: logged (and signed) first.
    let device_id = doc
        .events
        .first()
        .map(|e| e.device_id.clone())
        .unwrap_or_default();
    let exported_at = format_wall(chrono::Utc::now());
    let mut ev = EventRecord::new(&doc.id, &device_id, EventKind::Export, exported_at.clone());
    ev.actor = Some(req.actor.clone());
    ev.text = Some(format!(
        "exported {} of {} segment(s) of {} to a bundle",
        match (req.from_ns, req.to_ns) {
            (None, None) => "all".to_string(),
            _ => "a clip".to_string(),
        },
        n_segments,
        tracks.join(", ")
    ));
    ev.gap_from_ns = req.from_ns;
    ev.gap_to_ns = req.to_ns;
    ev.tracks = Some(tracks.clone());
    let export_entry = log.append(Record::Event(ev))?;
    if let Some(e) = log.checkpoint_error() {
        crate::bail!(
            Internal,
            "the export was logged but its checkpoint could not be signed: {e}"
        );
    }
    let leaves: Vec<Hash> = log.leaves().to_vec();
    let tree_size = leaves.len() as u64;
    drop(log);

    // Re-read the lines as bytes: the proofs are over the exact text on disk.
    let text = std::fs::read(hearing.join("manifest.jsonl"))
        .map_err(|e| Error::io(format!("reading {}", hearing.display()), e))?;
    let raw: Vec<&[u8]> = text
        .split(|&b| b == b'\n')
        .take(tree_size as usize)
        .collect();
    let mut all_entries = entries;
    all_entries.push(export_entry.clone());
    let mut lines = Vec::new();
    let mut files = Vec::new();
    for (e, line) in all_entries.iter().zip(&raw) {
        if !selected(e) {
            continue;
        }
        if let Record::Segment(s) = &e.record {
            files.push(s.file.clone());
        }
        lines.push(BundleLine {
            n: e.n,
            text: String::from_utf8_lossy(line).to_string(),
            proof: merkle::inclusion_proof(e.n as usize, &leaves)
                .iter()
                .map(|h| B64.encode(h))
                .collect(),
        });
    }
    let cp_sizes = super::checkpoint::sizes_in(&hearing.join("checkpoints"));
    let consistency = cp_sizes
        .iter()
        .filter(|&&s| s > 0 && s < tree_size)
        .map(|&s| BundleConsistency {
            size: s,
            proof: merkle::consistency_proof(s as usize, &leaves)
                .iter()
                .map(|h| B64.encode(h))
                .collect(),
        })
        .collect();
    let desc = BundleDesc {
        format: FORMAT.into(),
        hearing_id: doc.id.clone(),
        device_id,
        case_number: doc.meta.case_number.clone(),
        exported_at,
        exported_by: req.actor.clone(),
        export_event: export_entry.n,
        from_ns: req.from_ns,
        to_ns: req.to_ns,
        tracks: tracks.clone(),
        tree_size,
        lines,
        consistency,
    };

    // Write the bundle. Files are copied, then fsynced with the folder, so a bundle
    // that `export` reported as done is on the disk (e.g. a USB stick pulled after).
    let mkdir = |p: &Path| {
        std::fs::create_dir_all(p).map_err(|e| Error::io(format!("creating {}", p.display()), e))
    };
    mkdir(&out.join("checkpoints"))?;
    let copy = |rel: &str| -> Result<u64> {
        let src = hearing.join(rel);
        let dst = out.join(rel);
        if let Some(p) = dst.parent() {
            mkdir(p)?;
        }
        let n = std::fs::copy(&src, &dst)
            .map_err(|e| Error::io(format!("copying {} to the bundle", src.display()), e))?;
        std::fs::File::open(&dst)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(format!("syncing {}", dst.display()), e))?;
        Ok(n)
    };
    let mut bytes = 0;
    for f in &files {
        bytes += copy(f)?;
    }
    copy("device.vkey")?;
    for s in &cp_sizes {
        copy(&format!("checkpoints/{}", Checkpoint::file_name(*s)))?;
        let token = format!("checkpoints/{}", Checkpoint::token_name(*s));
        if hearing.join(&token).is_file() {
            copy(&token)?;
        }
    }
    mkdir(&out.join("play"))?;
    for t in &tracks {
        let segs: Vec<&super::records::SegmentRecord> = all_entries
            .iter()
            .filter(|e| selected(e))
            .filter_map(|e| match &e.record {
                Record::Segment(s) if &s.track == t => Some(s),
                _ => None,
            })
            .collect();
        if segs.is_empty() {
            continue;
        }
        super::write_atomic(
            &out.join(format!("play/{t}.m3u8")),
            playlist(&segs).as_bytes(),
        )?;
    }
    let json = serde_json::to_vec_pretty(&desc)
        .map_err(|e| Error::new(ErrorKind::Internal, format!("serialising bundle.json: {e}")))?;
    super::write_atomic(&out.join("VERIFY.txt"), verify_txt(&desc).as_bytes())?;
    super::write_atomic(&out.join("bundle.json"), &json)?;
    Ok(ExportSummary {
        out: out.display().to_string(),
        hearing_id: doc.id,
        segments: files.len(),
        bytes,
        tracks,
        tree_size,
    })
}

/// An HLS VOD playlist over a track's segments (players read MPEG-TS segments).
fn playlist(segs: &[&super::records::SegmentRecord]) -> String {
    super::playlist::media_playlist(segs, |s| format!("../{}", s.file), true)
}

fn verify_txt(d: &BundleDesc) -> String {
    format!(
        "This folder is an evidence bundle exported by courtrec from hearing {id}
(case {case}), recorded by device {dev}. Exported {at} by {by}.

To check it, run in this folder:

    courtrec verify .

It checks the signature on every checkpoint (checkpoints/*.note, signed notes in
the C2SP format), that every earlier checkpoint is consistent with the final one,
that every manifest line in bundle.json is included in the final signed Merkle
tree (RFC 9162), that every segment file has the length and SHA-256 its line
states, that segment numbers run without a hole, and that every gap in the media
is explained by a signed event (recess, device fault, recovery). It ends with one
RESULT line; exit code 0 means complete and unmodified.

To prove WHO signed, give the court's copy of the recording box's key:

    courtrec verify --key '<verifier key from `courtrec key show`>' .

The key this bundle carries (device.vkey) only proves the files are unchanged
since they were signed, not by whom.

Checking the hashes alone, with standard tools: every segment line in
bundle.json (\"text\" field) names a file and its \"sha256\"; compare with

    sha256sum tracks/*/*.ts

To watch: ffplay play/composite.m3u8 (or open a .m3u8 or .ts file in VLC).
The manifest's Merkle tree covers {n} lines; this bundle carries {k} of them.
",
        id = d.hearing_id,
        case = d.case_number,
        dev = d.device_id,
        at = d.exported_at,
        by = d.exported_by,
        n = d.tree_size,
        k = d.lines.len(),
    )
}

fn decode_hashes(v: &[String]) -> Option<Vec<Hash>> {
    v.iter()
        .map(|s| B64.decode(s).ok().and_then(|b| b.try_into().ok()))
        .collect()
}

/// Verifies a bundle folder (see the module comment for what it holds).
pub(crate) fn verify_bundle(dir: &Path, trust: &Trust, r: &mut Report) {
    let Some(bytes) = verify::read_limited(&dir.join("bundle.json"), r, "bundle.json") else {
        return;
    };
    let desc: BundleDesc = match serde_json::from_slice(&bytes) {
        Ok(d) => d,
        Err(e) => {
            r.problem(
                Problem::Unusable,
                Some("bundle.json"),
                format!("is not a courtrec bundle description: {e}"),
            );
            return;
        }
    };
    if desc.format != FORMAT {
        r.problem(
            Problem::Unusable,
            Some("bundle.json"),
            format!(
                "format {:?} is not {FORMAT:?}; use the courtrec version that made it",
                desc.format
            ),
        );
        return;
    }
    r.hearing_id = desc.hearing_id.clone();
    r.device_id = desc.device_id.clone();
    r.case_number = desc.case_number.clone();
    r.tree_size = desc.tree_size;
    let keys = verify::signer_keys(dir, trust, r);
    let cps = verify::load_checkpoints(dir, &keys, r);
    r.checkpoints = cps.len();
    let Some(last) = cps.last().filter(|c| c.size == desc.tree_size) else {
        r.problem(
            Problem::MissingOrReordered,
            Some("checkpoints"),
            format!(
                "the final checkpoint (of {} lines), against which the proofs are made, is missing or invalid",
                desc.tree_size
            ),
        );
        return;
    };
    let final_root = last.root;
    for cp in &cps {
        if cp.hearing_id != desc.hearing_id || cp.device_id != desc.device_id {
            r.problem(
                Problem::Modified,
                Some(&format!("checkpoints/{}", Checkpoint::file_name(cp.size))),
                format!(
                    "is for hearing {} on device {}, not this one",
                    cp.hearing_id, cp.device_id
                ),
            );
        }
        if cp.size == last.size {
            continue;
        }
        let ok = desc
            .consistency
            .iter()
            .find(|c| c.size == cp.size)
            .and_then(|c| decode_hashes(&c.proof))
            .is_some_and(|proof| {
                merkle::verify_consistency(
                    cp.size as usize,
                    last.size as usize,
                    &cp.root,
                    &final_root,
                    &proof,
                )
            });
        if !ok {
            r.problem(
                Problem::Modified,
                Some(&format!("checkpoints/{}", Checkpoint::file_name(cp.size))),
                "is not consistent with the final checkpoint: the manifest was rewritten after it was signed",
            );
        }
    }
    verify::check_checkpoint_chain(&cps, r);

    // Every line carried must be in the signed tree, at the place it claims.
    let mut entries: Vec<Entry> = Vec::new();
    let mut lines_ok = true;
    for l in &desc.lines {
        let leaf = merkle::leaf_hash(l.text.as_bytes());
        let included = l.n < desc.tree_size
            && decode_hashes(&l.proof).is_some_and(|p| {
                merkle::verify_inclusion(
                    l.n as usize,
                    desc.tree_size as usize,
                    &leaf,
                    &p,
                    &final_root,
                )
            });
        if !included {
            lines_ok = false;
            r.problem(
                Problem::Modified,
                Some("bundle.json"),
                format!(
                    "manifest line {} is not in the signed manifest (edited, or its proof is wrong)",
                    l.n + 1
                ),
            );
            continue;
        }
        match serde_json::from_str::<Entry>(&l.text) {
            Ok(e) if e.n == l.n => entries.push(e),
            _ => r.problem(
                Problem::Modified,
                Some("bundle.json"),
                format!("manifest line {} is not a record at that place", l.n + 1),
            ),
        }
    }
    entries.sort_by_key(|e| e.n);
    entries.dedup_by_key(|e| e.n);
    r.manifest_lines = entries.len() as u64;
    if lines_ok {
        r.signed_lines = desc.tree_size;
    }
    if let Some(Entry {
        record: Record::Event(created),
        ..
    }) = entries.first().filter(|e| e.n == 0)
    {
        if created.hearing_id != desc.hearing_id || created.device_id != desc.device_id {
            r.problem(
                Problem::Modified,
                Some("bundle.json"),
                "names another hearing or device than its signed records",
            );
        }
        r.case_number = created
            .meta
            .as_ref()
            .map(|m| m.case_number.clone())
            .unwrap_or_default();
    } else {
        r.problem(
            Problem::MissingOrReordered,
            Some("bundle.json"),
            "does not carry the hearing's `created` record",
        );
        return;
    }
    // The range and tracks come from the signed export event, not from bundle.json.
    let export = entries.iter().find_map(|e| match &e.record {
        Record::Event(ev) if e.n == desc.export_event && ev.kind == EventKind::Export => Some(ev),
        _ => None,
    });
    let Some(export) = export else {
        r.problem(
            Problem::MissingOrReordered,
            Some("bundle.json"),
            "does not carry the signed record of this export",
        );
        return;
    };
    let clip = match (export.gap_from_ns, export.gap_to_ns) {
        (None, None) => None,
        (a, b) => Some((a.unwrap_or(i64::MIN), b.unwrap_or(i64::MAX))),
    };
    r.clip = clip;
    let tracks = export.tracks.clone().unwrap_or_default();
    r.note(
        None,
        format!(
            "exported {} by {} ({}); tracks {}",
            export.wall_time,
            export.actor.as_deref().unwrap_or("?"),
            if clip.is_some() {
                "a clip"
            } else {
                "the whole hearing"
            },
            tracks.join(", ")
        ),
    );
    let refs: Vec<&Entry> = entries.iter().collect();
    verify::check_sealed(&cps, &refs, desc.tree_size, r);
    verify::check_segments(dir, &refs, r, true);
    verify::check_timeline(&refs, clip, Some(&tracks), r);
}

/// Default bundle folder name for a hearing.
pub fn default_out(hearing_id: &str) -> PathBuf {
    PathBuf::from(format!("export-{hearing_id}"))
}
