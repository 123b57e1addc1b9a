//! What the box's device log, its audit log and the archive server's export log share:
//! a folder that describes itself (`device.vkey`), a C2SP checkpoint signed over the
//! whole log as it grows (origin `courtrec/<device>/<log name>`), and the inclusion proof of one
//! line against a checkpoint, for an export bundle to carry.

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::merkle::{Hash, Levels};
use crate::records::format_wall;
use crate::signing::DeviceKey;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Makes the log's folder and its `checkpoints/`, and writes its `device.vkey`.
pub(crate) fn prepare_dir(dir: &Path, key: &DeviceKey) -> Result<()> {
    std::fs::create_dir_all(dir.join("checkpoints"))
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    write_vkey(dir, key)
}

/// Writes `device.vkey` when it is missing or names another key: the folder describes
/// itself, like a hearing's (`courtrec verify` on it needs nothing else).
pub(crate) fn write_vkey(dir: &Path, key: &DeviceKey) -> Result<()> {
    let vkey = format!("{}\n", key.verifier().to_vkey());
    if std::fs::read_to_string(dir.join("device.vkey"))
        .ok()
        .as_deref()
        != Some(vkey.as_str())
    {
        crate::write_atomic(&dir.join("device.vkey"), vkey.as_bytes())?;
    }
    Ok(())
}

/// The newest checkpoint in `dir` that covers no more than the `lines` the log has (a
/// checkpoint past the end would be of lines a crash took back before they were
/// synced; it is never trusted).
pub(crate) fn last_checkpoint(dir: &Path, lines: u64) -> u64 {
    crate::checkpoint::sizes_in(&dir.join("checkpoints"))
        .into_iter()
        .filter(|&s| s <= lines)
        .max()
        .unwrap_or(0)
}

/// Signs a log's checkpoints into its folder's `checkpoints/`. The device (or archive
/// server) and the log's name make the checkpoint's origin
/// `courtrec/<device>/<log name>`.
pub(crate) struct Signer {
    pub dir: PathBuf,
    pub device_id: String,
    pub key: Arc<DeviceKey>,
    log_name: &'static str,
}

impl Signer {
    pub(crate) fn new(
        dir: &Path,
        device_id: &str,
        key: Arc<DeviceKey>,
        log_name: &'static str,
    ) -> Signer {
        Signer {
            dir: dir.to_path_buf(),
            device_id: device_id.to_string(),
            key,
            log_name,
        }
    }

    /// Signs a checkpoint of the log's first `size` lines (Merkle `root`, following
    /// checkpoint `prev`) and writes it. Returns the signed note. Atomic: a crash
    /// leaves the note whole or absent, never torn; a note that cannot be written is an
    /// error, and the next line's checkpoint covers this one.
    pub(crate) fn sign(&self, size: u64, root: Hash, prev: u64) -> Result<String> {
        let cp = Checkpoint {
            device_id: self.device_id.clone(),
            hearing_id: self.log_name.to_string(),
            size,
            root,
            time: format_wall(chrono::Utc::now()),
            prev,
            closed: false,
        };
        let note = self.key.sign_note(&cp.body())?;
        let path = self
            .dir
            .join("checkpoints")
            .join(Checkpoint::file_name(size));
        crate::fault::hit("checkpoint.write", &path)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        crate::write_atomic(&path, note.as_bytes())?;
        Ok(note)
    }
}

/// Line `n` of a log's bytes as written, and its RFC 9162 inclusion proof (base64)
/// against the tree of its first `tree_size` lines (`leaves`: every line's leaf hash).
/// The proof is over the exact bytes on disk, which is what a verifier hashes.
pub(crate) fn line_proof(
    bytes: &[u8],
    leaves: Vec<Hash>,
    n: u64,
    tree_size: u64,
) -> (String, Vec<String>) {
    let text = bytes
        .split(|&b| b == b'\n')
        .nth(n as usize)
        .map(|l| String::from_utf8_lossy(l).to_string())
        .unwrap_or_default();
    let proof = Levels::new(leaves)
        .inclusion_proof(n as usize, tree_size as usize)
        .iter()
        .map(|h| crate::b64(h))
        .collect();
    (text, proof)
}
