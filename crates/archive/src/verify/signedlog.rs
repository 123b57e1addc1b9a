//! A signed log folder (the audit log, `DATA/audit`): its chain, and its lines against
//! every signed head.

use super::Trust;
use super::checkpoints;
use super::report::{Problem, Report};
use super::segments::{self, Expected};
use crate::checkpoint::Checkpoint;
use crate::fsread as files;
use crate::merkle::Levels;
use std::path::Path;

/// Checks the checkpoints in `dir/checkpoints` (origin `courtrec/<device>/<name>`)
/// against the log's leaves: a head that signs more lines than there are reveals a cut
/// end; a root that differs, an edited, removed or reordered entry, even with its
/// chain rebuilt.
pub fn check_signed_log(dir: &Path, trust: &Trust, name: &str, levels: &Levels, r: &mut Report) {
    let device_id = files::read_bounded(&dir.join("device.vkey"), 4096)
        .ok()
        .and_then(|b| {
            String::from_utf8_lossy(&b)
                .trim()
                .split('+')
                .next()
                .and_then(|n| n.strip_prefix("courtrec/"))
                .map(str::to_string)
        })
        .or_else(|| {
            // No key file: the origin of any note says which device to expect.
            let size = *crate::checkpoint::sizes_in(&dir.join("checkpoints")).first()?;
            let b = files::read_bounded(
                &dir.join("checkpoints").join(Checkpoint::file_name(size)),
                65536,
            )
            .ok()?;
            let text = String::from_utf8_lossy(&b).to_string();
            let body = text.split("\n\n").next()?.to_string() + "\n";
            Checkpoint::parse(&body).ok().map(|c| c.device_id)
        })
        .unwrap_or_default();
    r.device_id = device_id.clone();
    r.hearing_id = name.to_string();
    let keys = checkpoints::signer_keys(dir, trust, &device_id, r);
    let cps = checkpoints::load(dir, &keys, &device_id, name, r);
    checkpoints::check_chain(&cps, r);
    r.checkpoints = cps.len();
    let n = levels.len() as u64;
    let mut signed = 0;
    for cp in &cps {
        let file = format!("checkpoints/{}", Checkpoint::file_name(cp.size));
        if cp.size > n {
            r.problem(
                Problem::MissingOrReordered,
                Some(&file),
                format!(
                    "signs {} entries but the log has {n}: entries were removed from its end",
                    cp.size
                ),
            );
        } else if levels.root(cp.size as usize) != cp.root {
            r.problem(
                Problem::Modified,
                Some(&file),
                format!(
                    "the log's first {} entries are not what was signed: an entry was removed, edited, inserted or reordered (even if the chain was rebuilt)",
                    cp.size
                ),
            );
        } else {
            signed = cp.size;
        }
    }
    r.signed_lines = signed;
    if cps.is_empty() && n > 0 {
        r.problem(
            Problem::Unsealed,
            None,
            "no signed head: nothing proves the entries were not rewritten",
        );
    } else if signed < n {
        r.note(
            None,
            format!(
                "entries {}..{n} are after the last signed head (signed at least every minute): covered by the hash chain only",
                signed + 1
            ),
        );
    }
    let mut known: std::collections::HashSet<String> =
        ["audit.jsonl", "device.vkey", "checkpoints"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    for s in crate::checkpoint::sizes_in(&dir.join("checkpoints")) {
        known.insert(format!("checkpoints/{}", Checkpoint::file_name(s)));
    }
    segments::check_unexpected(
        dir,
        &Expected {
            known,
            segments: Default::default(),
            last_seq: Default::default(),
            sealed: true,
        },
        r,
        None,
    );
}

/// `courtrec verify DATA/audit`: the chain, and every signed head against the entries
/// (a rebuilt chain, a removed or edited entry, a cut end are all caught).
pub(crate) fn verify_audit(dir: &Path, trust: &super::Trust, r: &mut Report) {
    let path = dir.join("audit.jsonl");
    let text = match files::read_bounded(&path, super::MAX_MANIFEST_BYTES) {
        Ok(t) => t,
        Err(e) => {
            r.problem(Problem::Unusable, Some("audit.jsonl"), format!("{e}"));
            return;
        }
    };
    let lines: Vec<&[u8]> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    match crate::audit::read(&path) {
        Ok((_, Some(broken))) => r.problem(Problem::Modified, Some("audit.jsonl"), broken),
        Ok(_) => {}
        Err(e) => r.problem(Problem::Unusable, Some("audit.jsonl"), e.msg),
    }
    let levels =
        crate::merkle::Levels::new(lines.iter().map(|l| crate::merkle::leaf_hash(l)).collect());
    check_signed_log(dir, trust, crate::audit::LOG_NAME, &levels, r);
    r.manifest_lines = lines.len() as u64;
    r.tree_size = lines.len() as u64;
}
