//! Checkpoints: the signed statements "the first `size` lines of hearing H's manifest
//! have Merkle root R", written by the recorder and checked by `courtrec verify`.
//!
//! The body of the signed note (see [`super::signing`]) is, line by line:
//!
//! ```text
//! courtrec/<device id>/<hearing id>     origin
//! <tree size>                           lines of the manifest covered
//! <base64 root hash>                    RFC 9162 root of those lines
//! time <RFC 3339>                       when it was signed (the box's clock)
//! prev <tree size>                      the checkpoint before this one (0: none)
//! closed                                only once the hearing is closed (sealed)
//! ```
//!
//! `prev` chains the checkpoints, so deleting one (to hide that the manifest once
//! looked different) leaves a visible hole.

use super::merkle::Hash;
use crate::error::{Error, ErrorKind, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

/// The parsed body of a checkpoint note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub device_id: String,
    pub hearing_id: String,
    pub size: u64,
    pub root: Hash,
    pub time: String,
    pub prev: u64,
    pub closed: bool,
}

impl Checkpoint {
    /// The note body to sign.
    pub fn body(&self) -> String {
        let mut body = format!(
            "courtrec/{}/{}\n{}\n{}\ntime {}\nprev {}\n",
            self.device_id,
            self.hearing_id,
            self.size,
            B64.encode(self.root),
            self.time,
            self.prev
        );
        if self.closed {
            body.push_str("closed\n");
        }
        body
    }

    /// Parses a note body (already checked for a signature, or not: the caller decides).
    pub fn parse(body: &str) -> Result<Checkpoint> {
        let bad = |what: &str| Error::new(ErrorKind::Invalid, format!("checkpoint: {what}"));
        let mut lines = body.lines();
        let origin = lines.next().ok_or_else(|| bad("empty"))?;
        let rest = origin
            .strip_prefix("courtrec/")
            .ok_or_else(|| bad("origin is not courtrec/<device>/<hearing>"))?;
        let (device_id, hearing_id) = rest
            .split_once('/')
            .ok_or_else(|| bad("origin is not courtrec/<device>/<hearing>"))?;
        let size = lines
            .next()
            .and_then(|l| l.parse::<u64>().ok())
            .ok_or_else(|| bad("second line is not a tree size"))?;
        let root: Hash = lines
            .next()
            .and_then(|l| B64.decode(l).ok())
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad("third line is not a base64 SHA-256 root"))?;
        let mut cp = Checkpoint {
            device_id: device_id.to_string(),
            hearing_id: hearing_id.to_string(),
            size,
            root,
            time: String::new(),
            prev: 0,
            closed: false,
        };
        for l in lines {
            if let Some(t) = l.strip_prefix("time ") {
                cp.time = t.to_string();
            } else if let Some(p) = l.strip_prefix("prev ") {
                cp.prev = p.parse().map_err(|_| bad("`prev` is not a tree size"))?;
            } else if l == "closed" {
                cp.closed = true;
            }
            // Other extension lines are allowed by the note format and ignored.
        }
        if cp.prev >= cp.size && cp.size > 0 {
            return Err(bad("`prev` is not before the tree size"));
        }
        Ok(cp)
    }

    /// File name of the note in `checkpoints/`.
    pub fn file_name(size: u64) -> String {
        format!("{size:08}.note")
    }

    /// File name of an RFC 3161 timestamp token over the note's bytes.
    pub fn token_name(size: u64) -> String {
        format!("{size:08}.tsr")
    }
}

/// Sizes of the checkpoints found in a `checkpoints/` folder, ascending.
pub fn sizes_in(dir: &std::path::Path) -> Vec<u64> {
    let mut sizes: Vec<u64> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    name.strip_suffix(".note")?.parse().ok()
                })
                .collect()
        })
        .unwrap_or_default();
    sizes.sort_unstable();
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_parses_back() {
        let cp = Checkpoint {
            device_id: "dev-1".into(),
            hearing_id: "h1".into(),
            size: 12,
            root: [7; 32],
            time: "2026-11-27T09:30:00.000Z".into(),
            prev: 9,
            closed: true,
        };
        assert_eq!(Checkpoint::parse(&cp.body()).unwrap(), cp);
        assert!(Checkpoint::parse("courtrec/dev-1/h1\nx\n").is_err());
        assert!(Checkpoint::parse(&cp.body().replace("prev 9", "prev 12")).is_err());
    }
}
