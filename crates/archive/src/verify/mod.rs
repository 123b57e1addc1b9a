//! `courtrec verify`: checks a hearing folder, an export bundle, a device log or an
//! audit log offline, from the files alone (no daemon, no index, no network), and says
//! precisely what it found.
//!
//! What is checked, and what each check guards against:
//! - every checkpoint's signature, by a key bound to the device its origin names (a
//!   forged or re-signed manifest; with `--key`/`--ca`, that the signer is a box the
//!   court trusts and the very box that recorded it);
//! - that the checkpoints chain (`prev`) and each signs the Merkle root of a prefix of
//!   the same manifest, so no line was edited, removed, inserted or reordered after it
//!   was signed; in a sealed hearing, that no line follows the last signature;
//! - the device log beside the folder, when there is one: a later signed statement
//!   that the hearing once had more lines reveals a removed end (missing, not a crash);
//! - the hash chain of the manifest lines (`prev`), which also covers lines written
//!   after the last checkpoint (a crash);
//! - every segment's length and SHA-256 against its line (a flipped byte, a truncated,
//!   replaced or swapped file), that no segment is missing, and that the folder holds
//!   nothing else (decoys: a second manifest, stray segments, links, FIFOs);
//! - per track, sequence numbers 1..n in order, and media time continuous from the open
//!   to the close except where a signed event explains the gap (recess, device fault,
//!   recovery); a track with nothing at all is missing;
//! - that the hearing is sealed (a `closed` checkpoint after the close event);
//! - segments' wall-clock times against the media timeline: a `clock_step` event is
//!   reported, a time no event explains is noted (notes: a time of day, not the media).
//!
//! Files are opened only if regular, never through a link, and read with bounds.

mod bundle;
mod checkpoints;
mod devlog;
mod hearing;
mod limits;
pub mod report;
mod segments;
mod signedlog;
mod timeline;
pub mod trust;
mod wallclock;

pub use crate::progress::{NoProgress, Progress};
pub use hearing::looks_like_hearing_id;
pub use limits::*;
pub use report::{Finding, Problem, Report, SignerTrust, TrackSummary};
pub use signedlog::check_signed_log;
pub use trust::Trust;

use std::path::Path;

/// Verifies a hearing folder, an export bundle, a device log or an audit log.
pub fn verify(path: &Path, trust: &Trust) -> Report {
    verify_with(path, trust, &Options::default())
}

/// [`verify`] with options.
pub fn verify_with(path: &Path, trust: &Trust, opts: &Options) -> Report {
    let mut r = Report {
        path: path.display().to_string(),
        tsa_ca: trust.tsa_ca.clone(),
        ..Report::default()
    };
    let is = |name: &str| std::fs::symlink_metadata(path.join(name)).is_ok();
    let has_devlog_record = || {
        crate::fsread::first_line(&path.join("manifest.jsonl")).is_some_and(|l| {
            matches!(
                serde_json::from_slice::<crate::records::Entry<crate::devlog::DevRecord>>(&l),
                Ok(e) if matches!(e.record, crate::devlog::DevRecord::Device { .. })
            )
        })
    };
    if !path.exists() {
        r.problem(Problem::Unusable, None, "no such file or folder");
    } else if !path.is_dir() {
        r.problem(
            Problem::Unusable,
            None,
            "this is a file; give the hearing's folder (with manifest.jsonl) or an export bundle's folder (with bundle.json)",
        );
    } else if is("bundle.json") {
        r.kind = "bundle".into();
        bundle::verify(path, trust, opts, &mut r);
    } else if is("audit.jsonl") {
        r.kind = "audit-log".into();
        signedlog::verify_audit(path, trust, &mut r);
    } else if is("manifest.jsonl") && has_devlog_record() {
        r.kind = "device-log".into();
        devlog::verify_folder(path, trust, &mut r);
    } else if is("manifest.jsonl") || path.join("manifest").is_dir() {
        r.kind = "hearing".into();
        hearing::verify(path, trust, opts, &mut r);
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

#[cfg(test)]
mod tests {
    use super::*;

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
        std::fs::remove_file(h.join("manifest.jsonl")).unwrap();
        nix::unistd::mkfifo(&h.join("manifest.jsonl"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(code(&h), 15, "a FIFO for a manifest does not hang");
        std::fs::write(h.join("bundle.json"), b"\x00\x01garbage").unwrap();
        assert_eq!(code(&h), 15, "a broken bundle description");
    }
}
