//! Checkpoints as the verifier reads them: each note's signature by a key bound to the
//! device its origin names, the `prev` chain, the trusted timestamp beside it, and
//! whether the hearing is sealed.

use super::report::{Problem, Report, SignerTrust};
use super::trust::{Trust, key_name};
use crate::checkpoint::Checkpoint;
use crate::fsread::{self as files, ReadError};
use crate::records::{Entry, EventKind, Record};
use crate::signing::NoteVerifier;
use sha2::Digest;
use std::path::Path;

/// Largest checkpoint note or timestamp token read.
const MAX_NOTE_BYTES: u64 = 64 * 1024;

/// The keys checkpoints are checked with.
pub(crate) struct Keys {
    pub keys: Vec<NoteVerifier>,
    /// Court-trusted keys (`--key`/`--ca`), rather than the folder's own `device.vkey`.
    pub trusted: bool,
}

/// The trusted keys if given, else the `device.vkey` the folder carries (which proves
/// the notes are intact, not who made them). The folder's key must be named for the
/// device that recorded the hearing.
pub(crate) fn signer_keys(dir: &Path, trust: &Trust, device_id: &str, r: &mut Report) -> Keys {
    let own = files::read_bounded(&dir.join("device.vkey"), 4096)
        .ok()
        .and_then(|b| NoteVerifier::from_vkey(String::from_utf8_lossy(&b).trim()).ok());
    if let Some(k) = &own {
        r.signer_fingerprint = Some(k.fingerprint());
    }
    if trust.given() {
        r.signer = SignerTrust::Trusted;
        return Keys {
            keys: trust.keys.clone(),
            trusted: true,
        };
    }
    match own {
        Some(k) => {
            if !device_id.is_empty() && k.name != key_name(device_id) {
                r.problem(
                    Problem::BadSignature,
                    Some("device.vkey"),
                    format!(
                        "is the key of {:?}, not of device {device_id} that recorded this",
                        k.name
                    ),
                );
            }
            Keys {
                keys: vec![k],
                trusted: false,
            }
        }
        None => {
            r.problem(
                Problem::BadSignature,
                Some("device.vkey"),
                "missing or unreadable, and no --key or --ca given: the checkpoints' signatures cannot be checked",
            );
            Keys {
                keys: Vec::new(),
                trusted: false,
            }
        }
    }
}

/// Reads and checks every `checkpoints/*.note`, returning those with a valid signature
/// by a key bound to the device they name, for origin `device_id`/`name`, by size.
pub(crate) fn load(
    dir: &Path,
    keys: &Keys,
    device_id: &str,
    name: &str,
    r: &mut Report,
) -> Vec<Checkpoint> {
    let cp_dir = dir.join("checkpoints");
    let mut out = Vec::new();
    for size in crate::checkpoint::sizes_in(&cp_dir) {
        let file = format!("checkpoints/{}", Checkpoint::file_name(size));
        let note =
            match files::read_bounded(&cp_dir.join(Checkpoint::file_name(size)), MAX_NOTE_BYTES) {
                Ok(b) => String::from_utf8_lossy(&b).to_string(),
                Err(ReadError::TooLarge(_)) => {
                    r.problem(
                        Problem::Modified,
                        Some(&file),
                        "far too large to be a checkpoint",
                    );
                    continue;
                }
                Err(e @ ReadError::NotRegular(_)) => {
                    r.problem(Problem::Unexpected, Some(&file), e.to_string());
                    continue;
                }
                Err(e) => {
                    r.problem(Problem::Unusable, Some(&file), e.to_string());
                    continue;
                }
            };
        if keys.keys.is_empty() {
            continue;
        }
        let mut verified: Option<(String, &NoteVerifier)> = None;
        let mut last_err = String::new();
        for k in &keys.keys {
            match k.verify_note(&note) {
                Ok(b) => {
                    verified = Some((b, k));
                    break;
                }
                Err(e) => last_err = e.msg,
            }
        }
        let Some((body, key)) = verified else {
            if keys.trusted {
                r.signer = SignerTrust::Untrusted;
            }
            r.problem(
                Problem::BadSignature,
                Some(&file),
                format!(
                    "signature does not verify with {}: {last_err}",
                    if keys.trusted {
                        "any trusted key"
                    } else {
                        "the folder's device.vkey"
                    }
                ),
            );
            continue;
        };
        let cp = match Checkpoint::parse(&body) {
            Ok(cp) if cp.size == size => cp,
            Ok(cp) => {
                r.problem(
                    Problem::MissingOrReordered,
                    Some(&file),
                    format!("is named for tree size {size} but signs size {}", cp.size),
                );
                continue;
            }
            Err(e) => {
                r.problem(Problem::Modified, Some(&file), e.msg);
                continue;
            }
        };
        if key.name != key_name(&cp.device_id) {
            if keys.trusted {
                r.signer = SignerTrust::Untrusted;
            }
            r.problem(
                Problem::BadSignature,
                Some(&file),
                format!(
                    "names device {} but is signed by the key of {:?}: a key vouches only for its own device",
                    cp.device_id, key.name
                ),
            );
            continue;
        }
        if keys.trusted {
            r.signer_fingerprint = Some(key.fingerprint());
        }
        if cp.hearing_id != name || cp.device_id != device_id {
            r.problem(
                Problem::Modified,
                Some(&file),
                format!(
                    "is for {} on device {}, not this one (copied in from elsewhere)",
                    cp.hearing_id, cp.device_id
                ),
            );
            continue;
        }
        check_token(&cp_dir, size, note.as_bytes(), r);
        out.push(cp);
    }
    if keys.trusted && out.is_empty() {
        r.signer = SignerTrust::Untrusted;
    }
    out
}

/// Checks the RFC 3161 token stored beside a checkpoint, if there is one: that it
/// stamps this note's exact bytes, and (with `--tsa-ca`) the TSA's signature.
fn check_token(cp_dir: &Path, size: u64, note: &[u8], r: &mut Report) {
    use crate::tsa;
    let name = Checkpoint::token_name(size);
    let path = cp_dir.join(&name);
    let file = format!("checkpoints/{name}");
    let der = match files::read_bounded(&path, MAX_NOTE_BYTES) {
        Ok(d) => d,
        Err(ReadError::NotFound) => return,
        Err(e) => {
            r.problem(Problem::Unexpected, Some(&file), e.to_string());
            return;
        }
    };
    let info = match tsa::parse_reply(&der) {
        Ok(i) => i,
        Err(e) => {
            r.problem(
                Problem::Modified,
                Some(&file),
                format!("is not a granted RFC 3161 timestamp reply: {e}"),
            );
            return;
        }
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
    let time = info.gen_time.clone();
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

/// Each checkpoint names the one before it: a deleted checkpoint leaves a hole.
pub(crate) fn check_chain(cps: &[Checkpoint], r: &mut Report) {
    let mut prev = 0u64;
    for cp in cps {
        if cp.prev != prev {
            let file = format!("checkpoints/{}", Checkpoint::file_name(cp.size));
            let msg = if cp.prev > prev {
                format!(
                    "follows the checkpoint of {} lines, which is missing (a checkpoint was removed)",
                    cp.prev
                )
            } else {
                format!(
                    "says the checkpoint before it covers {} lines, but one of {prev} lines exists: checkpoints were added or reordered",
                    cp.prev
                )
            };
            r.problem(Problem::MissingOrReordered, Some(&file), msg);
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

/// Where the close event is, if there is one.
pub(crate) fn close_line(entries: &[&Entry]) -> Option<u64> {
    entries.iter().find_map(|e| match &e.record {
        Record::Event(ev) if ev.kind == EventKind::Close => Some(e.n),
        _ => None,
    })
}

/// Sealed: a valid `closed` checkpoint covers the close event, and only `export`
/// events follow the close. `missing_end` names a later signed statement (the device
/// log) that shows the end was removed: then no close is "missing", not "unsealed".
pub(crate) fn check_sealed(
    cps: &[Checkpoint],
    entries: &[&Entry],
    signed: u64,
    missing_end: bool,
    r: &mut Report,
) {
    let Some(close_n) = close_line(entries) else {
        if !missing_end {
            r.problem(
                Problem::Unsealed,
                None,
                "the hearing has no close event: it is still open, or the recorder was cut off (a crash) before it closed",
            );
        }
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
    } else if !missing_end {
        r.problem(
            Problem::Unsealed,
            None,
            "no valid closed checkpoint covers the close event",
        );
    }
}
