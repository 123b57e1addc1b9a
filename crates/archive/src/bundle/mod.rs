//! Export bundles: a whole hearing or a clip of it, in a folder that proves itself.
//!
//! ```text
//! bundle.json            what is in it, the manifest lines it needs, their inclusion
//!                        proofs against the final signed root (for a whole hearing,
//!                        every line's leaf hash instead), consistency proofs
//!                        from every earlier checkpoint to the final one, and the
//!                        device-log line and checkpoint that commit to the final size
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
//! is made, so the bundle carries the record of its own making; that event also counts
//! the events and segments the bundle carries, so none can be dropped unseen.
//!
//! Cost: the Merkle levels are built once, so every proof costs O(log n); a whole
//! 8-hour hearing's export is bound by copying its files.

use crate::checkpoint::Checkpoint;
use crate::devlog::DevProof;
use crate::doc::HearingDoc;
use crate::error::{Error, ErrorKind, Result};
use crate::log::{HearingLog, Signer};
use crate::merkle::Levels;
use crate::progress::Progress;
use crate::records::{Entry, EventKind, EventRecord, Record, format_wall};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const FORMAT: &str = "courtrec-bundle/1";

mod issued;
mod readable;
pub use issued::export_issued;
pub use readable::{default_out, playlists, verify_txt};

/// Writes a segment (relative path) of a hearing kept elsewhere to a file of the
/// bundle, returning its length: the archive server reads it from the store.
pub type Fetch<'a> = dyn Fn(&str, &Path) -> Result<u64> + Sync + 'a;

/// A manifest line carried by a bundle, with its inclusion proof.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleLine {
    /// 0-based position in the manifest (the Merkle leaf index).
    pub n: u64,
    /// The line's exact text (without its newline): its leaf hash is over these bytes.
    pub text: String,
    /// Base64 hashes of the RFC 9162 inclusion proof against the final root. Empty
    /// when the bundle carries [`BundleDesc::leaves`] instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub proof: Vec<String>,
}

/// Consistency proof from an earlier checkpoint to the final one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleConsistency {
    pub size: u64,
    pub proof: Vec<String>,
}

/// `bundle.json`. Only what the signatures and proofs cover is trusted by `verify`;
/// the labels (case number, who exported, when) are checked against the signed
/// records they repeat.
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
    /// A whole hearing's export: base64 of the leaf hash of every line of the signed
    /// tree, in order (32 bytes each). Their root is the final checkpoint's, and each
    /// line carried must hash to its leaf: one hash a line instead of a proof of ~17
    /// (an 8-hour hearing's `bundle.json` is about 100 MB smaller), while an edited or
    /// dropped line is still named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaves: Option<String>,
    pub consistency: Vec<BundleConsistency>,
    /// The device log's signed line recording the final checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_log: Option<DevProof>,
    /// An export made by the court's archive server: its signed record there (the
    /// range and tracks are read from it; `export_event` is then `tree_size`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<crate::exportlog::Issuer>,
}

/// What to export.
#[derive(Debug, Clone, Default)]
pub struct ExportRequest {
    /// Media range in ns (from the hearing's origin); segments overlapping it are
    /// exported whole (clips are cut at segment boundaries, never re-encoded).
    pub from_ns: Option<i64>,
    pub to_ns: Option<i64>,
    /// The range as the user typed it ([`parse_time`]), for a caller that has not read
    /// the hearing's events: [`export`] resolves it from the manifest it reads anyway
    /// (an 8-hour hearing's is 60 MB: reading it twice was a quarter of a clip's time).
    /// Takes the place of `from_ns`/`to_ns` when given.
    pub typed: [Option<String>; 2],
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
/// (placed on the media timeline through the open and any clock step:
/// [`crate::wallclock::media_of_wall`]).
pub fn parse_time(text: &str, events: &[EventRecord]) -> Result<i64> {
    let open = events.iter().find(|e| e.kind == EventKind::Open);
    let open_media = open.and_then(|e| e.media_time_ns).unwrap_or(0);
    if let Some(wall_ns) = crate::wallclock::parse_wall_ns(text) {
        return crate::wallclock::media_of_wall(events, wall_ns).ok_or_else(|| {
            Error::new(
                ErrorKind::Conflict,
                "the hearing was never opened, so it has no media to cut",
            )
        });
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
    if m >= 60 || !(0.0..60.0).contains(&s) || h > 24 * 365 {
        return Err(bad());
    }
    Ok(open_media.saturating_add(((h * 3600 + m * 60) as f64 * 1e9 + s * 1e9) as i64))
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
/// exist or be empty. Appends the export event to the hearing, signed by `signer`
/// (refused if the hearing no longer matches what the box signed).
pub fn export(
    hearing: &Path,
    out: &Path,
    req: &ExportRequest,
    signer: Signer,
    progress: &dyn Progress,
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
    let dir = crate::HearingDir {
        root: hearing.to_path_buf(),
    };
    let devlog = signer.devlog.clone();
    let (mut log, report) = HearingLog::open(dir, None, Some(signer))?;
    if let Some(t) = log.tampered() {
        crate::bail!(
            Conflict,
            "hearing {} is read-only and is not exported: {t}",
            log.doc().id
        );
    }
    let entries = report.entries;
    let doc = log.doc().clone();
    let mut req = req.clone();
    let [from, to] = &req.typed;
    if let Some(t) = from {
        req.from_ns = Some(parse_time(t, &doc.events)?);
    }
    if let Some(t) = to {
        req.to_ns = Some(parse_time(t, &doc.events)?);
    }
    let req = &req;
    if doc.state != crate::doc::HearingState::Closed {
        crate::bail!(
            Conflict,
            "hearing {} is {}: only closed (sealed) hearings are exported",
            doc.id,
            doc.state.as_str()
        );
    }
    let mut plan = plan(&doc, &entries, req)?;
    // This export's own event is among the events the bundle carries.
    *plan.counts.entry("events".into()).or_default() += 1;

    // The export is part of the chain of custody: logged (and signed) first.
    let device_id = doc
        .events
        .first()
        .map(|e| e.device_id.clone())
        .unwrap_or_default();
    let exported_at = format_wall(chrono::Utc::now());
    let ev = export_event(&doc.id, &device_id, req, &plan, &exported_at);
    let export_entry = log.append(Record::Event(ev))?;
    if let Some(e) = log.checkpoint_error() {
        crate::bail!(
            Internal,
            "the export was logged but its checkpoint could not be signed: {e}"
        );
    }
    let tree_size = log.len();
    drop(log);

    // Re-read the lines as bytes: the proofs are over the exact text on disk.
    let text = std::fs::read(hearing.join("manifest.jsonl"))
        .map_err(|e| Error::io(format!("reading {}", hearing.display()), e))?;
    let raw: Vec<&[u8]> = text
        .split(|&b| b == b'\n')
        .take(tree_size as usize)
        .collect();
    // The lines read when the log was opened were hashed then, from these same bytes
    // (the manifest stays locked): only the export's own line is new.
    let mut leaves = report.leaves;
    let known = leaves.len().min(raw.len());
    leaves.truncate(known);
    leaves.extend(raw[known..].iter().map(|l| crate::merkle::leaf_hash(l)));
    let levels = Levels::new(leaves);
    let mut all_entries = entries;
    all_entries.push(export_entry.clone());
    let d = describe(hearing, &raw, &all_entries, &levels, tree_size, &plan, req);
    let device_log = match devlog {
        Some(dl) => Some(dl.proof(&doc.id, tree_size)?),
        None => None,
    };
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
        tracks: plan.tracks.clone(),
        tree_size,
        lines: d.lines,
        leaves: d.leaves,
        consistency: d.consistency,
        device_log,
        issuer: None,
    };
    progress.total(d.files.iter().map(|f| f.1).sum(), d.files.len() as u64);
    let bytes = write_bundle(
        hearing,
        out,
        &desc,
        &d.files,
        &d.cp_sizes,
        &all_entries,
        progress,
        None,
    )?;
    Ok(ExportSummary {
        out: out.display().to_string(),
        hearing_id: doc.id,
        segments: d.files.len(),
        bytes,
        tracks: plan.tracks,
        tree_size,
    })
}

/// What an export takes: its tracks, and how many events and segments of each track
/// it carries (the signed export event states these counts).
pub(crate) struct Plan {
    pub tracks: Vec<String>,
    pub counts: BTreeMap<String, u64>,
    pub n_segments: u64,
}

fn selected(e: &Entry, tracks: &[String], req: &ExportRequest) -> bool {
    match &e.record {
        Record::Event(_) => true,
        Record::Segment(s) => {
            let end = s.media_start_ns.saturating_add(s.media_duration_ns as i64);
            tracks.contains(&s.track)
                && req.from_ns.is_none_or(|a| end > a)
                && req.to_ns.is_none_or(|b| s.media_start_ns < b)
        }
    }
}

/// Checks the request against the hearing and counts what it selects.
pub(crate) fn plan(doc: &HearingDoc, entries: &[Entry], req: &ExportRequest) -> Result<Plan> {
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
    let mut counts: BTreeMap<String, u64> = tracks.iter().map(|t| (t.clone(), 0)).collect();
    for e in entries.iter().filter(|e| selected(e, &tracks, req)) {
        match &e.record {
            Record::Segment(s) => *counts.entry(s.track.clone()).or_default() += 1,
            Record::Event(_) => *counts.entry("events".into()).or_default() += 1,
        }
    }
    let n_segments: u64 = counts
        .iter()
        .filter(|(k, _)| k.as_str() != "events")
        .map(|(_, v)| v)
        .sum();
    if n_segments == 0 {
        crate::bail!(
            Invalid,
            "nothing was recorded on those tracks in that range"
        );
    }
    Ok(Plan {
        tracks,
        counts,
        n_segments,
    })
}

/// The export's own event: who, which tracks, which range, and the counts.
pub(crate) fn export_event(
    hearing_id: &str,
    device_id: &str,
    req: &ExportRequest,
    plan: &Plan,
    exported_at: &str,
) -> EventRecord {
    let mut ev = EventRecord::new(
        hearing_id,
        device_id,
        EventKind::Export,
        exported_at.to_string(),
    );
    ev.actor = Some(req.actor.clone());
    ev.text = Some(format!(
        "exported {} of {} segment(s) of {} to a bundle",
        match (req.from_ns, req.to_ns) {
            (None, None) => "all".to_string(),
            _ => "a clip".to_string(),
        },
        plan.n_segments,
        plan.tracks.join(", ")
    ));
    ev.gap_from_ns = req.from_ns;
    ev.gap_to_ns = req.to_ns;
    ev.tracks = Some(plan.tracks.clone());
    ev.counts = Some(plan.counts.clone());
    ev
}

/// The lines a bundle carries with their proofs, its files, its checkpoints and
/// their consistency proofs to the final one.
pub(crate) struct Described {
    pub lines: Vec<BundleLine>,
    pub leaves: Option<String>,
    pub files: Vec<(String, u64)>,
    pub cp_sizes: Vec<u64>,
    pub consistency: Vec<BundleConsistency>,
}

pub(crate) fn describe(
    hearing: &Path,
    raw: &[&[u8]],
    entries: &[Entry],
    levels: &Levels,
    tree_size: u64,
    plan: &Plan,
    req: &ExportRequest,
) -> Described {
    let mut lines = Vec::new();
    let mut files = Vec::new();
    for (e, line) in entries.iter().zip(raw) {
        if !selected(e, &plan.tracks, req) {
            continue;
        }
        if let Record::Segment(s) = &e.record {
            files.push((s.file.clone(), s.bytes));
        }
        lines.push(BundleLine {
            n: e.n,
            text: String::from_utf8_lossy(line).to_string(),
            proof: Vec::new(),
        });
    }
    // Every line carried (a whole hearing): the leaf hashes prove them all (see
    // `BundleDesc::leaves`); a clip carries a proof for each of its lines.
    let leaves = if lines.len() as u64 == tree_size {
        Some(crate::b64(&levels.leaves().concat()))
    } else {
        for l in &mut lines {
            l.proof = b64s(&levels.inclusion_proof(l.n as usize, tree_size as usize));
        }
        None
    };
    let cp_sizes: Vec<u64> = crate::checkpoint::sizes_in(&hearing.join("checkpoints"))
        .into_iter()
        .filter(|&s| s <= tree_size)
        .collect();
    let consistency = cp_sizes
        .iter()
        .filter(|&&s| s > 0 && s < tree_size)
        .map(|&s| BundleConsistency {
            size: s,
            proof: b64s(&levels.consistency_proof(s as usize, tree_size as usize)),
        })
        .collect();
    Described {
        lines,
        leaves,
        files,
        cp_sizes,
        consistency,
    }
}

fn b64s(hashes: &[crate::merkle::Hash]) -> Vec<String> {
    hashes.iter().map(|h| crate::b64(h)).collect()
}

/// Copies the files and writes the bundle's own, then makes it all durable at once
/// (`syncfs` of the bundle's filesystem, then its folders), so a bundle that `export`
/// reported as done is on the disk (e.g. a USB stick pulled right after). One flush
/// for the whole bundle rather than an fsync per file: an 8-hour hearing has 130,000
/// segment files, and a flush each cost more than copying them.
/// With `fetch`, segments are written by it (from the archive's store) instead of
/// copied from `hearing`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_bundle(
    hearing: &Path,
    out: &Path,
    desc: &BundleDesc,
    files: &[(String, u64)],
    cp_sizes: &[u64],
    entries: &[Entry],
    progress: &dyn Progress,
    fetch: Option<&Fetch<'_>>,
) -> Result<u64> {
    let mkdir = |p: &Path| {
        std::fs::create_dir_all(p).map_err(|e| Error::io(format!("creating {}", p.display()), e))
    };
    mkdir(&out.join("checkpoints"))?;
    let mut dirs = std::collections::BTreeSet::new();
    let mut copy = |rel: &str, remote: bool| -> Result<u64> {
        let src = hearing.join(rel);
        let dst = out.join(rel);
        if let Some(p) = dst.parent()
            && dirs.insert(p.to_path_buf())
        {
            mkdir(p)?;
        }
        let n = match fetch {
            Some(f) if remote => f(rel, &dst)?,
            _ => std::fs::copy(&src, &dst)
                .map_err(|e| Error::io(format!("copying {rel} to the bundle"), e))?,
        };
        Ok(n)
    };
    let mut bytes = 0;
    for (f, _) in files {
        let n = copy(f, true)?;
        bytes += n;
        progress.advance(n, 1);
    }
    copy("device.vkey", false)?;
    for s in cp_sizes {
        copy(&format!("checkpoints/{}", Checkpoint::file_name(*s)), false)?;
        let token = format!("checkpoints/{}", Checkpoint::token_name(*s));
        if hearing.join(&token).is_file() {
            copy(&token, false)?;
        }
    }
    mkdir(&out.join("play"))?;
    for (t, body) in playlists(desc, entries) {
        crate::write_atomic(&out.join(format!("play/{t}.m3u8")), body.as_bytes())?;
    }
    let json = serde_json::to_vec_pretty(desc)
        .map_err(|e| Error::new(ErrorKind::Internal, format!("serialising bundle.json: {e}")))?;
    crate::write_atomic(&out.join("VERIFY.txt"), verify_txt(desc).as_bytes())?;
    crate::write_atomic(&out.join("bundle.json"), &json)?;
    // Every file's data and inode, on the bundle's filesystem (a failed write-back
    // is reported here: syncfs returns the filesystem's write-back error since Linux
    // 5.8), then the folders' entries.
    std::fs::File::open(out)
        .and_then(|f| nix::unistd::syncfs(&f).map_err(std::io::Error::from))
        .map_err(|e| Error::io(format!("flushing the bundle {}", out.display()), e))?;
    for d in dirs.iter().map(PathBuf::as_path).chain([out]) {
        crate::sync_dir(d)?;
    }
    Ok(bytes)
}
