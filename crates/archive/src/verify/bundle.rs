//! Verifies an export bundle: everything a viewer of it uses is proven. Lines by
//! inclusion proofs against the final signed root; earlier checkpoints by consistency
//! proofs; the final size by the device log's signed line; the events and segments
//! by the counts in the signed export event; the playlists and `VERIFY.txt` by
//! regenerating them; the labels of `bundle.json` against the signed records.

use super::checkpoints;
use super::report::{Problem, Report};
use super::segments::{self, Expected};
use super::{Options, Trust, timeline, wallclock};
use crate::bundle::{BundleDesc, FORMAT};
use crate::checkpoint::Checkpoint;
use crate::devlog::{DevRecord, LOG_NAME};
use crate::fsread::{self as files, ReadError};
use crate::merkle::{self, Hash};
use crate::records::{Entry, EventKind, EventRecord, Record};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

fn decode_hashes(v: &[String]) -> Option<Vec<Hash>> {
    use base64::Engine;
    v.iter()
        .map(|s| {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .ok()
                .and_then(|b| b.try_into().ok())
        })
        .collect()
}

pub(crate) fn verify(dir: &Path, trust: &Trust, opts: &Options, r: &mut Report) {
    let bytes = match files::read_bounded(&dir.join("bundle.json"), super::MAX_MANIFEST_BYTES) {
        Ok(b) => b,
        Err(e) => {
            r.problem(Problem::Unusable, Some("bundle.json"), format!("{e}"));
            return;
        }
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
    let keys = checkpoints::signer_keys(dir, trust, &desc.device_id, r);
    let cps = checkpoints::load(dir, &keys, &desc.device_id, &desc.hearing_id, r);
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
    for cp in cps.iter().filter(|c| c.size != last.size) {
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
    checkpoints::check_chain(&cps, r);
    check_device_log(&desc, &keys, &final_root, r);

    // Every line carried must be in the signed tree, at the place it claims: its
    // hash is the leaf there (when the bundle lists every leaf and they make the
    // signed root), or its own inclusion proof holds.
    let leaves = signed_leaves(&desc, &final_root, r);
    let mut entries: Vec<Entry> = Vec::new();
    let mut lines_ok = true;
    for l in &desc.lines {
        let leaf = merkle::leaf_hash(l.text.as_bytes());
        let at = usize::try_from(l.n).unwrap_or(usize::MAX);
        let included = l.n < desc.tree_size
            && (leaves.as_ref().is_some_and(|ls| ls.get(at) == Some(&leaf))
                || decode_hashes(&l.proof).is_some_and(|p| {
                    merkle::verify_inclusion(at, desc.tree_size as usize, &leaf, &p, &final_root)
                }));
        if !included {
            lines_ok = false;
            r.problem(
                Problem::Modified,
                Some("bundle.json"),
                format!(
                    "manifest line {} is not in the signed manifest (edited, or its proof is wrong)",
                    l.n.saturating_add(1)
                ),
            );
            continue;
        }
        match serde_json::from_str::<Entry>(&l.text) {
            Ok(e) if e.n == l.n => entries.push(e),
            _ => r.problem(
                Problem::Modified,
                Some("bundle.json"),
                format!(
                    "manifest line {} is not a record at that place",
                    l.n.saturating_add(1)
                ),
            ),
        }
    }
    entries.sort_by_key(|e| e.n);
    entries.dedup_by_key(|e| e.n);
    r.manifest_lines = entries.len() as u64;
    if lines_ok {
        r.signed_lines = desc.tree_size;
    }
    let Some(created) = entries
        .first()
        .filter(|e| e.n == 0)
        .and_then(|e| match &e.record {
            Record::Event(ev) if ev.kind == EventKind::Created => Some(ev.clone()),
            _ => None,
        })
    else {
        r.problem(
            Problem::MissingOrReordered,
            Some("bundle.json"),
            "does not carry the hearing's `created` record",
        );
        return;
    };
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
    // The range and tracks come from the signed export event, not from bundle.json:
    // the hearing's own, or the archive server's record of it.
    let export = match &desc.issuer {
        Some(iss) => issued_export(iss, &desc, trust, r),
        None => entries.iter().find_map(|e| match &e.record {
            Record::Event(ev) if e.n == desc.export_event && ev.kind == EventKind::Export => {
                Some(ev.clone())
            }
            _ => None,
        }),
    };
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
    check_labels(&desc, &created, &export, r);
    check_counts(&desc, &export, &entries, r);
    let refs: Vec<&Entry> = entries.iter().collect();
    checkpoints::check_sealed(&cps, &refs, desc.tree_size, false, r);
    segments::check(dir, &refs, r, opts.progress, None);
    check_made_files(dir, &desc, &entries, r);
    let mut known: HashSet<String> = [
        "bundle.json",
        "VERIFY.txt",
        "device.vkey",
        "checkpoints",
        "tracks",
        "play",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for s in crate::checkpoint::sizes_in(&dir.join("checkpoints")) {
        known.insert(format!("checkpoints/{}", Checkpoint::file_name(s)));
        known.insert(format!("checkpoints/{}", Checkpoint::token_name(s)));
    }
    for t in &tracks {
        known.insert(format!("tracks/{t}"));
        known.insert(format!("play/{t}.m3u8"));
    }
    let segment_files: HashSet<&str> = entries
        .iter()
        .filter_map(|e| match &e.record {
            Record::Segment(s) => Some(s.file.as_str()),
            _ => None,
        })
        .collect();
    segments::check_unexpected(
        dir,
        &Expected {
            known,
            segments: segment_files,
            last_seq: BTreeMap::new(),
            sealed: true,
        },
        r,
        None,
    );
    timeline::check(&refs, clip, Some(&tracks), r);
    wallclock::check(&refs, r);
}

/// The leaf hashes a whole hearing's bundle lists, if they are the signed tree's: as
/// many as its lines, and their root is the final checkpoint's.
fn signed_leaves(desc: &BundleDesc, final_root: &Hash, r: &mut Report) -> Option<Vec<Hash>> {
    use base64::Engine;
    let text = desc.leaves.as_ref()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(text).ok();
    let leaves: Option<Vec<Hash>> = bytes
        .filter(|b| b.len() as u64 == desc.tree_size.saturating_mul(32))
        .map(|b| {
            b.chunks_exact(32)
                .filter_map(|c| c.try_into().ok())
                .collect()
        });
    let proven = leaves.filter(|ls| {
        let mut tree = merkle::Frontier::default();
        ls.iter().for_each(|l| tree.push(*l));
        tree.root() == *final_root
    });
    if proven.is_none() {
        r.problem(
            Problem::Modified,
            Some("bundle.json"),
            "its list of leaf hashes is not the signed manifest's (edited)",
        );
    }
    proven
}

/// The labels people read in `bundle.json` must be what the signed records say.
fn check_labels(desc: &BundleDesc, created: &EventRecord, export: &EventRecord, r: &mut Report) {
    let case = created
        .meta
        .as_ref()
        .map(|m| m.case_number.as_str())
        .unwrap_or("");
    let mut differ = |label: &str, claimed: String, signed: String| {
        if claimed != signed {
            r.problem(
                Problem::Modified,
                Some("bundle.json"),
                format!("says {label} {claimed:?}, but the signed record says {signed:?}"),
            );
        }
    };
    differ("case number", desc.case_number.clone(), case.to_string());
    differ(
        "exported by",
        desc.exported_by.clone(),
        export.actor.clone().unwrap_or_default(),
    );
    differ(
        "exported at",
        desc.exported_at.clone(),
        export.wall_time.clone(),
    );
    differ(
        "tracks",
        desc.tracks.join(","),
        export.tracks.clone().unwrap_or_default().join(","),
    );
    differ(
        "range",
        format!("{:?}-{:?}", desc.from_ns, desc.to_ns),
        format!("{:?}-{:?}", export.gap_from_ns, export.gap_to_ns),
    );
}

/// Every event up to the export, and each track's segments, are carried: the signed
/// export event counts them.
fn check_counts(desc: &BundleDesc, export: &EventRecord, entries: &[Entry], r: &mut Report) {
    let Some(counts) = &export.counts else {
        r.note(
            Some("bundle.json"),
            "made by an older courtrec: whether every event is here cannot be checked",
        );
        return;
    };
    let events = entries
        .iter()
        .filter(|e| e.n <= desc.export_event && matches!(e.record, Record::Event(_)))
        .count() as u64;
    let want = counts.get("events").copied().unwrap_or(0);
    if events != want {
        r.problem(
            Problem::MissingOrReordered,
            Some("bundle.json"),
            format!(
                "carries {events} of the hearing's {want} events up to this export: {} event line(s) were removed (a mark, a recess, a resume...)",
                want.saturating_sub(events)
            ),
        );
    }
    for t in export.tracks.iter().flatten() {
        let have = entries
            .iter()
            .filter(|e| matches!(&e.record, Record::Segment(s) if &s.track == t))
            .count() as u64;
        let want = counts.get(t).copied().unwrap_or(0);
        if have != want {
            r.problem(
                Problem::MissingOrReordered,
                Some("bundle.json"),
                format!(
                    "carries {have} segment line(s) of track {t}, the signed export says {want}"
                ),
            );
        }
    }
}

/// The playlists and `VERIFY.txt` are exactly what courtrec writes for the verified
/// content: a player shows what was verified, nothing else, in that order.
fn check_made_files(dir: &Path, desc: &BundleDesc, entries: &[Entry], r: &mut Report) {
    for (t, want) in crate::bundle::playlists(desc, entries) {
        let file = format!("play/{t}.m3u8");
        match files::read_bounded(&dir.join(&file), 64 << 20) {
            Ok(b) if b == want.as_bytes() => {}
            Ok(_) => r.problem(
                Problem::Modified,
                Some(&file),
                "does not list exactly the verified segments of the track, in order: a player would show something else",
            ),
            Err(ReadError::NotFound) => r.note(Some(&file), "missing (the segments can still be played one by one)"),
            Err(e) => r.problem(Problem::Unexpected, Some(&file), e.to_string()),
        }
    }
    match files::read_bounded(&dir.join("VERIFY.txt"), 1 << 20) {
        Ok(b) if b == crate::bundle::verify_txt(desc).as_bytes() => {}
        Ok(_) => r.problem(
            Problem::Modified,
            Some("VERIFY.txt"),
            "is not what courtrec wrote for this bundle: do not rely on what it says",
        ),
        Err(ReadError::NotFound) => r.note(Some("VERIFY.txt"), "missing"),
        Err(e) => r.problem(Problem::Unexpected, Some("VERIFY.txt"), e.to_string()),
    }
}

/// The device log's signed line that commits to the hearing's final size and root.
fn check_device_log(
    desc: &BundleDesc,
    keys: &checkpoints::Keys,
    final_root: &Hash,
    r: &mut Report,
) {
    let Some(dl) = &desc.device_log else {
        r.note(
            Some("bundle.json"),
            "carries no device-log proof (made by an older courtrec, or without a device log)",
        );
        return;
    };
    let note_ok = keys.keys.iter().find_map(|k| {
        let body = k.verify_note(&dl.note).ok()?;
        let cp = Checkpoint::parse(&body).ok()?;
        (k.name == super::trust::key_name(&cp.device_id)).then_some(cp)
    });
    let Some(cp) = note_ok else {
        r.problem(
            Problem::BadSignature,
            Some("bundle.json"),
            "the device-log checkpoint it carries is not signed by the recording device's key",
        );
        return;
    };
    let leaf = merkle::leaf_hash(dl.text.as_bytes());
    let included = cp.hearing_id == LOG_NAME
        && cp.device_id == desc.device_id
        && cp.size == dl.tree_size
        && decode_hashes(&dl.proof).is_some_and(|p| {
            merkle::verify_inclusion(dl.n as usize, dl.tree_size as usize, &leaf, &p, &cp.root)
        });
    let line: Option<Entry<DevRecord>> = serde_json::from_str(&dl.text).ok();
    let commits = matches!(
        line.map(|e| e.record),
        Some(DevRecord::Checkpoint { hearing_id, size, root, .. })
            if hearing_id == desc.hearing_id && size == desc.tree_size && root == crate::b64(final_root)
    );
    if !included || !commits {
        r.problem(
            Problem::Modified,
            Some("bundle.json"),
            "the device-log line it carries does not prove the hearing's final checkpoint",
        );
    } else {
        r.device_log_checked = true;
    }
}

/// The export record of a bundle made by the archive server: its line in the server's
/// export log, proven against that log's signed checkpoint, by a key bound to the
/// server it names (and trusted by the court, when keys are given).
fn issued_export(
    iss: &crate::exportlog::Issuer,
    desc: &BundleDesc,
    trust: &Trust,
    r: &mut Report,
) -> Option<EventRecord> {
    use crate::signing::NoteVerifier;
    let bad = |r: &mut Report, p: Problem, m: String| {
        r.problem(p, Some("bundle.json"), m);
        None
    };
    let Ok(key) = NoteVerifier::from_vkey(iss.vkey.trim()) else {
        return bad(
            r,
            Problem::BadSignature,
            "the archive server's key is unreadable".into(),
        );
    };
    if key.name != super::trust::key_name(&iss.device_id) {
        return bad(
            r,
            Problem::BadSignature,
            format!(
                "the exporting server's key is {:?}, not {}'s",
                key.name, iss.device_id
            ),
        );
    }
    if trust.given() && !trust.keys.iter().any(|k| k.to_vkey() == key.to_vkey()) {
        return bad(
            r,
            Problem::BadSignature,
            format!(
                "exported by archive server {} whose key ({}) is not one the court trusts",
                iss.device_id,
                key.fingerprint()
            ),
        );
    }
    let body = match key.verify_note(&iss.note) {
        Ok(b) => b,
        Err(_) => {
            return bad(
                r,
                Problem::BadSignature,
                "the archive server's signature on its export log does not verify".into(),
            );
        }
    };
    let cp = match Checkpoint::parse(&body) {
        Ok(c)
            if c.device_id == iss.device_id
                && c.hearing_id == crate::exportlog::LOG_NAME
                && c.size == iss.tree_size =>
        {
            c
        }
        _ => {
            return bad(
                r,
                Problem::Modified,
                "the archive server's signed checkpoint is not of its export log".into(),
            );
        }
    };
    let included = decode_hashes(&iss.proof).is_some_and(|p| {
        merkle::verify_inclusion(
            iss.n as usize,
            iss.tree_size as usize,
            &merkle::leaf_hash(iss.text.as_bytes()),
            &p,
            &cp.root,
        )
    });
    if !included {
        return bad(
            r,
            Problem::Modified,
            "the export's record is not in the archive server's signed export log".into(),
        );
    }
    match serde_json::from_str::<Entry>(&iss.text) {
        Ok(Entry {
            n,
            record: Record::Event(ev),
            ..
        }) if n == iss.n && ev.kind == EventKind::Export && ev.hearing_id == desc.hearing_id => {
            r.note(
                None,
                format!(
                    "exported from the court's archive by server {} ({}){}",
                    iss.device_id,
                    key.fingerprint(),
                    if trust.given() {
                        ", a key the court trusts"
                    } else {
                        "; its key was not checked against a trusted key"
                    }
                ),
            );
            Some(ev)
        }
        _ => bad(
            r,
            Problem::Modified,
            "the archive server's export record is not an export of this hearing".into(),
        ),
    }
}
