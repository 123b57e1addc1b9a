//! The files of a bundle meant for people and players rather than the verifier: the
//! HLS playlists, `VERIFY.txt` and the default folder name. The verifier regenerates
//! the first two to check they say what was verified.

use super::BundleDesc;
use crate::records::{Entry, Record, SegmentRecord};
use std::path::PathBuf;

/// The playlists of a bundle, per exported track with segments: an HLS VOD playlist
/// over the segments it carries, in order. The verifier regenerates them to check
/// that what a player shows is what was verified.
pub fn playlists(desc: &BundleDesc, entries: &[Entry]) -> Vec<(String, String)> {
    let carried: std::collections::HashSet<u64> = desc.lines.iter().map(|l| l.n).collect();
    desc.tracks
        .iter()
        .filter_map(|t| {
            let mut segs: Vec<&SegmentRecord> = entries
                .iter()
                .filter(|e| carried.contains(&e.n))
                .filter_map(|e| match &e.record {
                    Record::Segment(s) if &s.track == t => Some(s),
                    _ => None,
                })
                .collect();
            segs.sort_by_key(|s| s.seq);
            (!segs.is_empty()).then(|| {
                (
                    t.clone(),
                    crate::playlist::media_playlist(&segs, |s| format!("../{}", s.file), true),
                )
            })
        })
        .collect()
}

/// The text of `VERIFY.txt`, from the bundle's description (the verifier checks the
/// file is exactly this).
pub fn verify_txt(d: &BundleDesc) -> String {
    format!(
        "This folder is an evidence bundle exported by courtrec from hearing {id}
(case {case}), recorded by device {dev}. Exported {at} by {by}.

To check it, run in this folder:

    courtrec verify .        (or courtrec-verify ., built from the archive crate alone)

It checks the signature on every checkpoint (checkpoints/*.note, signed notes in
the C2SP format), that every earlier checkpoint is consistent with the final one,
that every manifest line in bundle.json is included in the final signed Merkle
tree (RFC 9162), that every segment file has the length and SHA-256 its line
states, that segment numbers run without a hole, that every gap in the media
is explained by a signed event (recess, device fault, recovery), that every
event of the hearing is here, and that the playlists list exactly the verified
segments. It ends with one RESULT line; exit code 0 means complete and unmodified.

To prove WHO signed, give the court's copy of the recording box's key:

    courtrec verify --key '<verifier key from `courtrec key show`>' .

The key this bundle carries (device.vkey) only proves the files are unchanged
since they were signed, not by whom.

Checking the hashes alone, with standard tools: every segment line in
bundle.json (\"text\" field) names a file and its \"sha256\"; compare with

    sha256sum tracks/*/*.ts

To watch: ffplay play/composite.m3u8 (or open a .m3u8 or .ts file in VLC).
The hearing's manifest had {n} lines when this bundle was made; bundle.json
carries the ones this export needs, each with its proof (or, for a whole
hearing, every line's leaf hash, whose Merkle root is the final checkpoint's).
",
        id = d.hearing_id,
        case = d.case_number,
        dev = d.device_id,
        at = d.exported_at,
        by = d.exported_by,
        n = d.tree_size,
    )
}

/// Default bundle folder name for a hearing.
pub fn default_out(hearing_id: &str) -> PathBuf {
    PathBuf::from(format!("export-{hearing_id}"))
}
