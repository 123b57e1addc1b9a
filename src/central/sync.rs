//! Reads the court's bucket into the archive server's index: finds every courtroom
//! under the served prefix (a "folder" that holds hearing ids, a `device-log/` or a
//! `status.json`), mirrors each hearing's small files (manifest chunks, checkpoints,
//! tokens, key) under `DATA/mirror/<courtroom path>/<id>/`, and derives its record in
//! the index from the chunks, as a box derives it from its manifest. Segments stay in
//! the bucket: they are streamed when played, fetched when exported or verified.
//!
//! Everything here is rebuilt from the bucket at any time: delete `DATA/mirror` and
//! `DATA/index` and the next scan makes them again. What is in the bucket is not
//! trusted: sizes are bounded, names checked, and a hearing whose chunks do not follow
//! on or do not parse is reported (and shown as far as it reads), never a panic.

use super::{Central, MirrorState};
use crate::archive::index::HearingDoc;
use crate::archive::records::{Entry, Record};
use crate::store::layout;
use crate::store::{Fault, StoreError};
use std::path::Path;

/// Largest small object mirrored.
const MAX_SMALL_BYTES: u64 = 256 << 20;
/// How deep courtrooms are looked for under the served prefix (court/room/…).
const MAX_DEPTH: usize = 4;

/// A courtroom found in the bucket.
#[derive(Debug, Clone)]
pub struct BoxPrefix {
    /// Its full key prefix (`court-a/room-7/`).
    pub prefix: String,
    /// Relative to the served prefix (`room-7`; empty when they are the same).
    pub room: String,
    pub hearings: Vec<String>,
}

/// What one scan found besides hearings.
#[derive(Debug, Default)]
pub struct Found {
    pub boxes: Vec<BoxPrefix>,
    /// Prefixes or objects that are neither a courtroom nor a hearing.
    pub strays: Vec<String>,
}

fn last_part(p: &str) -> &str {
    p.trim_end_matches('/').rsplit('/').next().unwrap_or("")
}

/// Finds the courtrooms under `prefix`, breadth first.
pub async fn discover(c: &Central, served: &str) -> Result<Found, StoreError> {
    let mut found = Found::default();
    let mut level = vec![served.to_string()];
    for depth in 0..=MAX_DEPTH {
        let mut next = Vec::new();
        for p in level {
            let l = c.store.list(&p, Some("/")).await?;
            let names: Vec<&str> = l.prefixes.iter().map(|x| last_part(x)).collect();
            let is_box = names.iter().any(|n| {
                crate::archive::verify::looks_like_hearing_id(n) || *n == layout::DEVICE_LOG
            }) || l
                .objects
                .iter()
                .any(|(k, _)| k.strip_prefix(&p) == Some(layout::STATUS));
            if is_box {
                let mut hearings = Vec::new();
                for (full, name) in l.prefixes.iter().zip(&names) {
                    if crate::archive::verify::looks_like_hearing_id(name) {
                        hearings.push(name.to_string());
                    } else if *name != layout::DEVICE_LOG && *name != layout::AUDIT {
                        found.strays.push(full.clone());
                    }
                }
                found.strays.extend(
                    l.objects
                        .iter()
                        .filter(|(k, _)| k.strip_prefix(&p) != Some(layout::STATUS))
                        .map(|(k, _)| k.clone()),
                );
                let room = p
                    .strip_prefix(served)
                    .unwrap_or("")
                    .trim_end_matches('/')
                    .to_string();
                found.boxes.push(BoxPrefix {
                    prefix: p,
                    room,
                    hearings,
                });
            } else if depth < MAX_DEPTH {
                found
                    .strays
                    .extend(l.objects.iter().map(|(k, _)| k.clone()));
                next.extend(
                    l.prefixes
                        .iter()
                        .filter(|x| {
                            let n = last_part(x);
                            !n.is_empty() && n != "." && n != ".."
                        })
                        .cloned(),
                );
            } else {
                found.strays.push(p);
            }
        }
        level = next;
        if level.is_empty() {
            break;
        }
    }
    Ok(found)
}

fn io(e: std::io::Error, what: &Path) -> StoreError {
    StoreError::new(Fault::Other, format!("{}: {e}", what.display()))
}

/// Mirrors the objects under `prefix + sub` that are not here yet (name and size);
/// returns whether any came.
async fn mirror_folder(
    c: &Central,
    prefix: &str,
    sub: &str,
    dir: &Path,
) -> Result<bool, StoreError> {
    let l = c.store.list(&format!("{prefix}{sub}"), None).await?;
    let mut any = false;
    for (key, size) in l.objects {
        let Some(rel) = key.strip_prefix(prefix) else {
            continue;
        };
        if !crate::archive::safe_rel(rel) || rel.contains("/.") {
            continue;
        }
        let path = dir.join(rel);
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == size) {
            continue;
        }
        let bytes = c.store.get_bytes(&key, MAX_SMALL_BYTES).await?;
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).map_err(|e| io(e, p))?;
        }
        crate::archive::write_atomic(&path, &bytes)
            .map_err(|e| StoreError::new(Fault::Other, e.to_string()))?;
        any = true;
    }
    Ok(any)
}

/// The manifest from its mirrored chunks: the lines of the chunks that follow on from
/// line 0, and why it stops short if it does.
pub fn joined_manifest(dir: &Path) -> (Vec<u8>, Option<String>) {
    let mut chunks: Vec<(u64, u64, std::path::PathBuf)> = std::fs::read_dir(dir.join("manifest"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let (a, b) = layout::parse_chunk(&e.file_name().to_string_lossy())?;
                    Some((a, b, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    chunks.sort();
    let mut out = Vec::new();
    let mut next = 0u64;
    for (a, b, p) in chunks {
        if a != next {
            return (
                out,
                Some(format!("its manifest chunks stop at line {next}")),
            );
        }
        match crate::archive::fsread::read_bounded(&p, MAX_SMALL_BYTES) {
            Ok(bytes) => out.extend_from_slice(&bytes),
            Err(e) => return (out, Some(format!("a manifest chunk {e}"))),
        }
        next = b + 1;
    }
    (out, None)
}

/// Brings one hearing's mirror and record up to date.
pub async fn hearing(
    c: &Central,
    bx: &BoxPrefix,
    id: &str,
    st: &mut MirrorState,
) -> Result<(), StoreError> {
    let qid = layout::qualify(&bx.room, id);
    let prefix = format!("{}{id}/", bx.prefix);
    let dir = c.data.hearing(&qid).root;
    std::fs::create_dir_all(&dir).map_err(|e| io(e, &dir))?;
    let mut changed = mirror_folder(c, &prefix, "manifest/", &dir).await?;
    changed |= mirror_folder(c, &prefix, "checkpoints/", &dir).await?;
    if !dir.join("device.vkey").is_file() {
        changed |= mirror_folder(c, &prefix, "device.vkey", &dir).await?;
    }
    if !changed && st.indexed_lines > 0 {
        return Ok(());
    }
    let (bytes, short) = joined_manifest(&dir);
    st.problem = short;
    let report = match crate::archive::manifest::parse::<Record>(&bytes, "manifest") {
        Ok(r) => r,
        Err(e) => {
            st.problem = Some(format!("its manifest does not read: {e}"));
            return Ok(());
        }
    };
    if report.entries.is_empty() {
        return Ok(());
    }
    let mut doc = match HearingDoc::from_entries(&report.entries) {
        Ok(d) => d,
        Err(e) => {
            st.problem = Some(format!("its manifest does not describe a hearing: {e}"));
            return Ok(());
        }
    };
    if doc.id != id {
        st.problem = Some(format!(
            "its manifest names hearing {}, not the folder's {id}",
            doc.id
        ));
        return Ok(());
    }
    doc.id = qid.clone();
    let index = c.index.clone();
    let entries: Vec<Entry> = report.entries;
    let from = st.indexed_lines as usize;
    let sizes = crate::archive::checkpoint::sizes_in(&dir.join("checkpoints"));
    let lines = entries.len() as u64;
    st.sealed = doc.state == crate::archive::index::HearingState::Closed
        && sizes.last().copied() == Some(lines);
    st.indexed_lines = lines;
    // sled is blocking: off the async worker.
    let res = tokio::task::spawn_blocking(move || -> crate::error::Result<()> {
        for e in entries.iter().skip(from) {
            if let Record::Segment(s) = &e.record {
                let mut s = s.clone();
                s.hearing_id = doc.id.clone();
                index.put_segment(&s)?;
            }
        }
        index.put_hearing(&doc)
    })
    .await;
    match res {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(StoreError::new(
            Fault::Other,
            format!("indexing {qid}: {e}"),
        )),
        Err(e) => Err(StoreError::new(
            Fault::Other,
            format!("indexing {qid}: {e}"),
        )),
    }
}

/// Mirrors a courtroom's device log (joined into one manifest for the verifier).
pub async fn device_log(c: &Central, bx: &BoxPrefix) -> Result<(), StoreError> {
    let dir = c.device_log_dir(&bx.room);
    let stage = dir.with_extension("chunks");
    std::fs::create_dir_all(&stage).map_err(|e| io(e, &stage))?;
    let prefix = format!("{}{}/", bx.prefix, layout::DEVICE_LOG);
    let a = mirror_folder(c, &prefix, "manifest/", &stage).await?;
    let b = mirror_folder(c, &prefix, "checkpoints/", &dir).await?;
    if !dir.join("device.vkey").is_file() {
        mirror_folder(c, &prefix, "device.vkey", &dir).await?;
    }
    if a || b || !dir.join("manifest.jsonl").is_file() {
        let (bytes, _) = joined_manifest(&stage);
        crate::archive::write_atomic(&dir.join("manifest.jsonl"), &bytes)
            .map_err(|e| StoreError::new(Fault::Other, e.to_string()))?;
    }
    Ok(())
}
