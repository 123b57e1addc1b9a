//! The device log as the verifier reads it: on its own (`courtrec verify
//! DATA/device-log`), and as later signed statements about a hearing, which turn a
//! removed end from "not sealed" into "missing".

use super::checkpoints::{self, Keys};
use super::report::{Problem, Report};
use super::segments;
use crate::devlog::{DevRecord, LOG_NAME};
use crate::fsread as files;
use crate::merkle::{Hash, Levels};
use crate::records::Entry;
use std::path::Path;

/// A device log whose lines up to `signed` are covered by a valid checkpoint.
pub(crate) struct SignedLog {
    pub device_id: String,
    pub entries: Vec<Entry<DevRecord>>,
    pub signed: u64,
}

/// Reads a device log folder and checks its chain and checkpoints with `keys`; the
/// problems go to `r`. None if it is not a usable device log at all.
pub(crate) fn load(dir: &Path, keys: &Keys, r: &mut Report) -> Option<SignedLog> {
    let bytes = match files::read_bounded(&dir.join("manifest.jsonl"), super::MAX_MANIFEST_BYTES) {
        Ok(b) => b,
        Err(e) => {
            r.problem(
                Problem::Unusable,
                Some("manifest.jsonl"),
                format!("the device log {e}"),
            );
            return None;
        }
    };
    let report: crate::manifest::ReadReport<DevRecord> =
        match crate::manifest::parse(&bytes, "device log") {
            Ok(x) => x,
            Err(e) => {
                r.problem(Problem::Modified, Some("manifest.jsonl"), e.msg);
                return None;
            }
        };
    let device_id = match report.entries.first().map(|e| &e.record) {
        Some(DevRecord::Device { device_id, .. }) => device_id.clone(),
        _ => {
            r.problem(
                Problem::Modified,
                Some("manifest.jsonl"),
                "the device log does not begin with its device record",
            );
            return None;
        }
    };
    let cps = checkpoints::load(dir, keys, &device_id, LOG_NAME, r);
    checkpoints::check_chain(&cps, r);
    let levels = Levels::new(report.leaves.clone());
    let mut signed = 0u64;
    for cp in &cps {
        if cp.size > levels.len() as u64 {
            r.problem(
                Problem::MissingOrReordered,
                Some(&format!(
                    "checkpoints/{}",
                    crate::checkpoint::Checkpoint::file_name(cp.size)
                )),
                format!(
                    "signs {} lines of the device log, which has {}: its end was removed",
                    cp.size,
                    levels.len()
                ),
            );
        } else if levels.root(cp.size as usize) != cp.root {
            r.problem(
                Problem::Modified,
                Some(&format!(
                    "checkpoints/{}",
                    crate::checkpoint::Checkpoint::file_name(cp.size)
                )),
                "the device log's lines are not what was signed",
            );
        } else {
            signed = cp.size;
        }
    }
    Some(SignedLog {
        device_id,
        entries: report.entries,
        signed,
    })
}

/// `courtrec verify DATA/device-log`.
pub(crate) fn verify_folder(dir: &Path, trust: &super::Trust, r: &mut Report) {
    let keys = checkpoints::signer_keys(dir, trust, "", r);
    let Some(log) = load(dir, &keys, r) else {
        return;
    };
    r.device_id = log.device_id.clone();
    r.hearing_id = LOG_NAME.into();
    r.manifest_lines = log.entries.len() as u64;
    r.tree_size = log.entries.len() as u64;
    r.signed_lines = log.signed;
    r.checkpoints = crate::checkpoint::sizes_in(&dir.join("checkpoints")).len();
    if log.signed < log.entries.len() as u64 {
        r.note(
            Some("manifest.jsonl"),
            format!(
                "lines {}..{} are after the last signed checkpoint (a crash between a line and its signature)",
                log.signed + 1,
                log.entries.len()
            ),
        );
    }
    let hearings: std::collections::BTreeSet<&str> = log
        .entries
        .iter()
        .filter_map(|e| e.record.hearing_id())
        .collect();
    r.note(
        None,
        format!("the device log covers {} hearing(s)", hearings.len()),
    );
    for e in &log.entries {
        match &e.record {
            DevRecord::Tampered {
                hearing_id,
                reason,
                time,
            } => r.note(
                None,
                format!("at {time} the box found hearing {hearing_id} tampered: {reason}"),
            ),
            DevRecord::Released {
                hearing_id,
                size,
                to,
                time,
                ..
            } => r.note(
                None,
                format!(
                    "at {time} the box deleted its copy of hearing {hearing_id} ({size} lines), kept by the archive at {to}"
                ),
            ),
            _ => {}
        }
    }
    let mut known: std::collections::HashSet<String> =
        ["manifest.jsonl", "device.vkey", "checkpoints", "lock"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    for s in crate::checkpoint::sizes_in(&dir.join("checkpoints")) {
        known.insert(format!(
            "checkpoints/{}",
            crate::checkpoint::Checkpoint::file_name(s)
        ));
    }
    segments::check_unexpected(
        dir,
        &segments::Expected {
            known,
            segments: Default::default(),
            last_seq: Default::default(),
            sealed: true,
        },
        r,
        None,
    );
}

/// Checks a hearing against what the device log signed about it. Returns true when
/// the log shows the hearing's end was removed or its sealed end rewritten (so a
/// missing seal is reported as that, not as "not sealed yet").
pub(crate) fn cross_check(
    log: &SignedLog,
    hearing_id: &str,
    leaves: &Levels,
    checkpoint_sizes: &[u64],
    r: &mut Report,
) -> bool {
    let mut missing_end = false;
    let n = leaves.len() as u64;
    for e in log.entries.iter().take(log.signed as usize) {
        match &e.record {
            DevRecord::Checkpoint {
                hearing_id: h,
                size,
                root,
                time,
                closed,
            } if h == hearing_id => {
                let root: Option<Hash> = base64_root(root);
                missing_end |= *size > n;
                let said = format!(
                    "the device log (line {}, signed) records {}checkpoint {size} of this hearing at {time}",
                    e.n + 1,
                    if *closed { "the closed " } else { "" }
                );
                if *size > n {
                    r.problem(
                        Problem::MissingOrReordered,
                        Some("manifest.jsonl"),
                        format!("{said}, but the manifest has only {n} lines: its end was removed"),
                    );
                } else if root != Some(leaves.root(*size as usize)) {
                    missing_end |= *closed;
                    r.problem(
                        Problem::Modified,
                        Some("manifest.jsonl"),
                        format!("{said}, and the manifest's first {size} lines are no longer what was signed"),
                    );
                } else if !checkpoint_sizes.contains(size) {
                    r.problem(
                        Problem::MissingOrReordered,
                        Some(&format!("checkpoints/{}", crate::checkpoint::Checkpoint::file_name(*size))),
                        format!("{said}, but that checkpoint is missing or invalid"),
                    );
                }
            }
            DevRecord::Tampered {
                hearing_id: h,
                reason,
                time,
            } if h == hearing_id => r.note(
                None,
                format!("at {time} the recording box found this hearing altered and made it read-only: {reason}"),
            ),
            _ => {}
        }
    }
    missing_end
}

fn base64_root(b64: &str) -> Option<Hash> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .ok()
        .and_then(|b| b.try_into().ok())
}
