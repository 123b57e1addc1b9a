//! Export bundles made by the court's archive server, from the hearing as the archive
//! keeps it: its small files mirrored in a folder (manifest chunks, checkpoints,
//! tokens, key), its segments fetched from the store. The export is recorded in the
//! archive server's own signed export log ([`crate::exportlog`]), never in the box's
//! manifest; the bundle carries that record's proof ([`BundleDesc::issuer`]).

use super::{BundleDesc, ExportRequest, ExportSummary, FORMAT, Fetch};
use crate::doc::{HearingDoc, HearingState};
use crate::error::{Error, ErrorKind, Result};
use crate::exportlog::ExportLog;
use crate::merkle::Levels;
use crate::progress::Progress;
use crate::records::{Record, format_wall};
use std::path::Path;

/// The manifest's bytes: `manifest.jsonl`, or its chunks (`manifest/<a>-<b>.jsonl`)
/// joined; chunks that do not follow on are an error.
pub fn manifest_bytes(dir: &Path) -> Result<Vec<u8>> {
    let max = crate::fsread::MAX_LOG_BYTES;
    match crate::fsread::read_bounded(&dir.join("manifest.jsonl"), max) {
        Ok(b) => return Ok(b),
        Err(crate::fsread::ReadError::NotFound) => {}
        Err(e) => crate::bail!(Invalid, "the manifest {e}"),
    }
    let mut chunks: Vec<(u64, u64, String)> = crate::fsread::walk(&dir.join("manifest"))
        .into_iter()
        .filter_map(|l| {
            let (a, b) = l.rel.strip_suffix(".jsonl")?.split_once('-')?;
            Some((a.parse().ok()?, b.parse().ok()?, l.rel))
        })
        .collect();
    chunks.sort();
    let mut out = Vec::new();
    let mut next = 0;
    for (a, b, rel) in chunks {
        if a != next || b < a {
            crate::bail!(Conflict, "the manifest's chunks stop at line {next}");
        }
        let bytes = crate::fsread::read_bounded(&dir.join("manifest").join(&rel), max)
            .map_err(|e| Error::new(ErrorKind::Invalid, format!("manifest/{rel} {e}")))?;
        out.extend_from_slice(&bytes);
        next = b + 1;
    }
    if out.is_empty() {
        crate::bail!(NotFound, "{} holds no manifest", dir.display());
    }
    Ok(out)
}

/// Exports a sealed hearing kept by the archive to `out` (which must not exist or be
/// empty): `hearing` holds its small files, `fetch` writes its segments, `device_log`
/// is the box's device log (for the line that commits to the final size), and the
/// export is recorded in `log`.
pub fn export_issued(
    hearing: &Path,
    out: &Path,
    req: &ExportRequest,
    log: &ExportLog,
    device_log: Option<&Path>,
    fetch: &Fetch<'_>,
    progress: &dyn Progress,
) -> Result<ExportSummary> {
    if out.exists()
        && std::fs::read_dir(out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        crate::bail!(Conflict, "{} exists and is not empty", out.display());
    }
    let text = manifest_bytes(hearing)?;
    let report: crate::manifest::ReadReport<Record> = crate::manifest::parse(&text, "manifest")?;
    let entries = report.entries;
    let doc = HearingDoc::from_entries(&entries)?;
    if doc.state != HearingState::Closed {
        crate::bail!(
            Conflict,
            "hearing {} is {} in the archive: only sealed hearings are exported",
            doc.id,
            doc.state.as_str()
        );
    }
    let tree_size = entries.len() as u64;
    if crate::checkpoint::sizes_in(&hearing.join("checkpoints")).last() != Some(&tree_size) {
        crate::bail!(
            Conflict,
            "hearing {} is not all signed in the archive yet (its last checkpoint does not cover its last line)",
            doc.id
        );
    }
    let plan = super::plan(&doc, &entries, req)?;
    let recorder = entries
        .first()
        .and_then(|e| match &e.record {
            Record::Event(ev) => Some(ev.device_id.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let exported_at = format_wall(chrono::Utc::now());
    let ev = super::export_event(&doc.id, log.device_id(), req, &plan, &exported_at);
    // Logged (and signed) before the bundle is made, like a box's own export.
    let issuer = log.record(ev)?;
    let raw: Vec<&[u8]> = text
        .split(|&b| b == b'\n')
        .take(tree_size as usize)
        .collect();
    let levels = Levels::new(report.leaves);
    let d = super::describe(hearing, &raw, &entries, &levels, tree_size, &plan, req);
    let device_log = match device_log {
        Some(dir) => crate::devlog::proof_in(dir, &doc.id, tree_size).ok(),
        None => None,
    };
    let desc = BundleDesc {
        format: FORMAT.into(),
        hearing_id: doc.id.clone(),
        device_id: recorder,
        case_number: doc.meta.case_number.clone(),
        exported_at,
        exported_by: req.actor.clone(),
        export_event: tree_size,
        from_ns: req.from_ns,
        to_ns: req.to_ns,
        tracks: plan.tracks.clone(),
        tree_size,
        lines: d.lines,
        leaves: d.leaves,
        consistency: d.consistency,
        device_log,
        issuer: Some(issuer),
    };
    progress.total(d.files.iter().map(|f| f.1).sum(), d.files.len() as u64);
    let bytes = super::write_bundle(
        hearing,
        out,
        &desc,
        &d.files,
        &d.cp_sizes,
        &entries,
        progress,
        Some(fetch),
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
