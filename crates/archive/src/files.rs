//! Paths and file primitives of the data folder: where hearings live, and the writes
//! that make them durable (atomic replacement, folder fsyncs, sealing a cut-off file).

use crate::error::{Error, Result};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Paths inside a data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    pub root: PathBuf,
    /// The archive server's data folder: hearings are mirrored from the bucket under
    /// `mirror/<courtroom path>/<hearing id>/`, and known by qualified ids
    /// (`room-7~<id>`, see the daemon's `store::layout`).
    pub mirror: bool,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir {
            root: root.into(),
            mirror: false,
        }
    }

    /// An archive server's data folder (see [`DataDir::mirror`]).
    pub fn mirrored(root: impl Into<PathBuf>) -> Self {
        DataDir {
            root: root.into(),
            mirror: true,
        }
    }

    pub fn hearings(&self) -> PathBuf {
        if self.mirror {
            self.root.join("mirror")
        } else {
            self.root.join("hearings")
        }
    }

    /// The folder of hearing `id` relative to [`Self::hearings`]: the id itself on a
    /// box; on the archive server, `room-7~<id>` is `room-7/<id>` (never `..` or `.`).
    pub fn hearing_rel(&self, id: &str) -> PathBuf {
        if !self.mirror {
            return PathBuf::from(id);
        }
        let parts: Vec<&str> = id.split('~').collect();
        if parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == ".." || p.contains('/'))
        {
            return PathBuf::from(".invalid");
        }
        parts.iter().collect()
    }

    pub fn index(&self) -> PathBuf {
        self.root.join("index")
    }

    pub fn hearing(&self, id: &str) -> HearingDir {
        HearingDir {
            root: self.hearings().join(self.hearing_rel(id)),
        }
    }

    /// Creates the folders if needed and returns the device id, made on first start.
    pub fn init(&self) -> Result<String> {
        fs::create_dir_all(self.hearings())
            .map_err(|e| Error::io(format!("creating {}", self.hearings().display()), e))?;
        let id_path = self.root.join("device-id");
        match fs::read_to_string(&id_path) {
            Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
            _ => {
                let id = format!("dev-{}", uuid::Uuid::now_v7().simple());
                write_atomic(&id_path, format!("{id}\n").as_bytes())?;
                Ok(id)
            }
        }
    }
}

/// One hearing's self-contained folder.
#[derive(Debug, Clone)]
pub struct HearingDir {
    pub root: PathBuf,
}

impl HearingDir {
    pub fn manifest(&self) -> PathBuf {
        self.root.join("manifest.jsonl")
    }

    pub fn track_dir(&self, track: &str) -> PathBuf {
        self.root.join("tracks").join(track)
    }

    /// Relative path of a segment inside the hearing folder (what the manifest stores).
    pub fn segment_rel(track: &str, seq: u64) -> String {
        format!("tracks/{track}/{seq:08}.ts")
    }

    pub fn id(&self) -> Option<&str> {
        self.root.file_name().and_then(|n| n.to_str())
    }
}

/// Writes a small file so that after a crash either the old or the new content is
/// there, never a torn mix: write a temporary file, fsync it, rename, fsync the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    // `<name>.tmp` beside it: unique per target, and ignored by every reader.
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f =
        File::create(&tmp).map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io(format!("renaming to {}", path.display()), e))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// fsyncs a directory so that files created or renamed in it survive a power cut
/// (a file's own fsync does not make its directory entry durable on every filesystem).
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("syncing folder {}", dir.display()), e))
}

/// Free (for unprivileged writers) and total bytes of the filesystem holding `path`.
pub fn disk_space(path: &Path) -> Option<(u64, u64)> {
    let s = nix::sys::statvfs::statvfs(path).ok()?;
    let frag = s.fragment_size() as u64;
    Some((s.blocks_available() as u64 * frag, s.blocks() as u64 * frag))
}

/// A segment file sealed as it is on disk (see [`seal_file`]).
#[derive(Debug)]
pub struct SealedFile {
    pub bytes: u64,
    pub sha256: String,
    pub summary: crate::ts::TsSummary,
}

/// Seals a segment file whose writer did not finish it (a crash, a failed write): cuts
/// a torn last TS packet (it cannot be decoded, and the recorded hash must describe the
/// file as it will stay), makes the cut durable, and hashes what remains.
pub fn seal_file(path: &Path) -> Result<SealedFile> {
    let bytes = fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let whole = bytes.len() - bytes.len() % crate::ts::PACKET_BYTES;
    if whole != bytes.len() {
        let f = fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        f.set_len(whole as u64)
            .and_then(|_| f.sync_all())
            .map_err(|e| Error::io(format!("truncating {}", path.display()), e))?;
    }
    Ok(SealedFile {
        bytes: whole as u64,
        sha256: sha256_hex(&bytes[..whole]),
        summary: crate::ts::summarize(&bytes[..whole]),
    })
}

/// Hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Hex SHA-256 and length of a whole file, read in large blocks.
pub fn hash_file(path: &Path) -> Result<(String, u64)> {
    use sha2::Digest;
    use std::io::Read;
    let mut f =
        File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex::encode(h.finalize()), total))
}

/// A relative path inside a folder: no `..`, not absolute, not empty.
pub fn safe_rel(p: &str) -> bool {
    let p = Path::new(p);
    !p.as_os_str().is_empty()
        && !p.is_absolute()
        && p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// Standard base64 of bytes (hashes in checkpoints, proofs and the device log).
pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
