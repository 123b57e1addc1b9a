//! Where things sit in the archive's bucket (see `docs/archive.md`):
//!
//! ```text
//! <prefix><hearing id>/device.vkey
//! <prefix><hearing id>/tracks/<track>/<seq>.ts
//! <prefix><hearing id>/checkpoints/<size>.note, <size>.tsr
//! <prefix><hearing id>/manifest/<first line>-<last line>.jsonl   (0-based, inclusive)
//! <prefix>device-log/{device.vkey, checkpoints/…, manifest/…}
//! <prefix>audit/{device.vkey, checkpoints/…, chunks/…}
//! <prefix>status.json                                            (the heartbeat)
//! ```
//!
//! A hearing's objects have the same relative paths as in its folder, so downloading
//! its prefix gives a folder `courtrec verify` accepts. Everything but `status.json` is
//! written once and never overwritten.

/// The device log's folder under a box's prefix.
pub const DEVICE_LOG: &str = "device-log";
/// The audit log's folder under a box's prefix.
pub const AUDIT: &str = "audit";
/// The heartbeat object under a box's prefix.
pub const STATUS: &str = "status.json";

/// `manifest/<first>-<last>.jsonl` (or `chunks/…` for the audit log): the lines
/// `first..=last` of a log, made when a checkpoint signed up to `last`.
pub fn chunk_name(folder: &str, first: u64, last: u64) -> String {
    format!("{folder}/{first}-{last}.jsonl")
}

/// `(first, last)` of a chunk's file name (`12-40.jsonl`).
pub fn parse_chunk(file: &str) -> Option<(u64, u64)> {
    let (a, b) = file.strip_suffix(".jsonl")?.split_once('-')?;
    let (a, b) = (a.parse().ok()?, b.parse().ok()?);
    (a <= b).then_some((a, b))
}

/// Separates a courtroom from a hearing id in the archive server's ids.
pub const QUALIFIER: char = '~';

/// The archive server's id for a hearing found under `room` (the box's prefix relative
/// to the served prefix, e.g. `room-7` or `court-a/room-7`): `room-7~<id>`; just the
/// id when the served prefix is the box's own.
pub fn qualify(room: &str, id: &str) -> String {
    let room = room.trim_matches('/');
    if room.is_empty() {
        id.to_string()
    } else {
        format!(
            "{}{QUALIFIER}{id}",
            room.replace('/', &QUALIFIER.to_string())
        )
    }
}

/// `(room path, hearing id)` of a qualified id; `None` if it is not one.
pub fn unqualify(qid: &str) -> Option<(String, &str)> {
    if qid.contains('/') {
        return None;
    }
    let (room, id) = match qid.rsplit_once(QUALIFIER) {
        Some((r, id)) => (r.replace(QUALIFIER, "/"), id),
        None => (String::new(), qid),
    };
    let part_ok = |p: &str| {
        !p.is_empty()
            && p != "."
            && p != ".."
            && p.len() <= 100
            && p.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.')
    };
    let qualified = qid.contains(QUALIFIER);
    (courtrec_archive::verify::looks_like_hearing_id(id)
        && (!qualified || room.split('/').all(part_ok)))
    .then_some((room, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_ids_round_trip() {
        let id = "20261201-101500-a1b2c3";
        assert_eq!(qualify("room-7", id), format!("room-7~{id}"));
        assert_eq!(
            qualify("court-a/room-7/", id),
            format!("court-a~room-7~{id}")
        );
        assert_eq!(qualify("", id), id);
        assert_eq!(
            unqualify(&format!("court-a~room-7~{id}")),
            Some(("court-a/room-7".to_string(), id))
        );
        assert_eq!(unqualify(id), Some((String::new(), id)));
        for bad in [
            "..~20261201-101500-a1b2c3",
            "room~x",
            "a/b~20261201-101500-a1b2c3",
            "~20261201-101500-a1b2c3",
        ] {
            assert_eq!(unqualify(bad), None, "{bad}");
        }
        assert_eq!(parse_chunk("0-41.jsonl"), Some((0, 41)));
        assert_eq!(parse_chunk("5-4.jsonl"), None);
        assert_eq!(chunk_name("manifest", 42, 99), "manifest/42-99.jsonl");
    }
}
