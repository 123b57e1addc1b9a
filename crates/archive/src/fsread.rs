//! How untrusted files are read (by the verifier, and the audit log's reader): only
//! regular files, never through a symbolic link, with bounded reads. A folder handed
//! to `verify` is untrusted input: a FIFO in place
//! of a segment would hang a plain `read`, and a link to `/dev/zero` would read until
//! memory runs out.

use crate::progress::Progress;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Largest manifest, bundle description or log read (a 24-hour hearing with 12
/// tracks writes about 200 MB of manifest); anything larger is refused as unusable.
pub const MAX_LOG_BYTES: u64 = 1 << 30;

/// Most entries listed in one folder tree (a hearing of a full day has ~50,000 files).
pub const MAX_ENTRIES: usize = 2_000_000;

/// Why a file could not be read.
#[derive(Debug)]
pub enum ReadError {
    NotFound,
    /// A symbolic link, FIFO, device or folder where a regular file should be.
    NotRegular(&'static str),
    TooLarge(u64),
    Io(std::io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::NotFound => f.write_str("missing"),
            ReadError::NotRegular(what) => write!(f, "is {what}, not a regular file"),
            ReadError::TooLarge(n) => write!(f, "is {n} bytes, more than any hearing writes"),
            ReadError::Io(e) => write!(f, "cannot be read: {e}"),
        }
    }
}

fn kind_of(ft: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_dir() {
        "a folder"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() || ft.is_block_device() {
        "a device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Opens a regular file without following a symbolic link and without blocking on a
/// FIFO (checked before and after opening, so a swap in between is caught too).
pub fn open_regular(path: &Path) -> Result<File, ReadError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_file() => {
            return Err(ReadError::NotRegular(kind_of(m.file_type())));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ReadError::NotFound),
        Err(e) => return Err(ReadError::Io(e)),
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ReadError::NotFound,
            _ => ReadError::Io(e),
        })?;
    let m = f.metadata().map_err(ReadError::Io)?;
    if !m.file_type().is_file() {
        return Err(ReadError::NotRegular(kind_of(m.file_type())));
    }
    Ok(f)
}

/// Reads a whole regular file of at most `max_bytes`.
pub fn read_bounded(path: &Path, max_bytes: u64) -> Result<Vec<u8>, ReadError> {
    let f = open_regular(path)?;
    let len = f.metadata().map_err(ReadError::Io)?.len();
    if len > max_bytes {
        return Err(ReadError::TooLarge(len));
    }
    let mut buf = Vec::with_capacity(len as usize);
    f.take(max_bytes + 1)
        .read_to_end(&mut buf)
        .map_err(ReadError::Io)?;
    if buf.len() as u64 > max_bytes {
        return Err(ReadError::TooLarge(buf.len() as u64));
    }
    Ok(buf)
}

/// The first line of a regular file (at most 64 KiB), without its newline.
pub fn first_line(path: &Path) -> Option<Vec<u8>> {
    let f = open_regular(path).ok()?;
    let mut buf = Vec::new();
    f.take(64 * 1024).read_to_end(&mut buf).ok()?;
    let end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    buf.truncate(end);
    Some(buf)
}

/// What a folder tree holds: every entry's path relative to the root, and whether it
/// is a regular file, a folder, or something else (never followed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub rel: String,
    pub kind: &'static str,
}

impl Listed {
    pub fn is_file(&self) -> bool {
        self.kind == "file"
    }
}

/// Lists a folder tree without following links, at most [`MAX_ENTRIES`] entries.
pub fn walk(root: &Path) -> Vec<Listed> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            if out.len() >= MAX_ENTRIES {
                return out;
            }
            let p = e.path();
            let Ok(rel) = p.strip_prefix(root) else {
                continue;
            };
            let rel = rel.to_string_lossy().to_string();
            match e.file_type() {
                Ok(ft) if ft.is_dir() => {
                    out.push(Listed {
                        rel,
                        kind: "folder",
                    });
                    stack.push(p);
                }
                Ok(ft) if ft.is_file() => out.push(Listed { rel, kind: "file" }),
                Ok(ft) => out.push(Listed {
                    rel,
                    kind: kind_of(ft),
                }),
                Err(_) => out.push(Listed {
                    rel,
                    kind: "unreadable",
                }),
            }
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    out
}

/// Hex SHA-256 and length of a file, or why it could not be read.
pub type HashResult = Result<(String, u64), ReadError>;

/// Hashes files on every core: verifying a long hearing is bound by SHA-256, and the
/// boxes have two to four cores.
pub fn hash_parallel(paths: &[PathBuf], progress: &dyn Progress) -> Vec<HashResult> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<HashResult>>> =
        paths.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(path) = paths.get(i) else {
                        break;
                    };
                    let res = hash_one(path, &mut buf);
                    progress.advance(res.as_ref().map_or(0, |r| r.1), 1);
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(res);
                    }
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .ok()
                .flatten()
                .unwrap_or_else(|| Err(ReadError::Io(std::io::Error::other("not hashed"))))
        })
        .collect()
}

fn hash_one(path: &Path, buf: &mut [u8]) -> HashResult {
    use sha2::Digest;
    let mut f = open_regular(path)?;
    let mut h = sha2::Sha256::new();
    let mut total = 0u64;
    loop {
        let n = f.read(buf).map_err(ReadError::Io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex::encode(h.finalize()), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifos_links_and_devices_are_refused_without_blocking() {
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(matches!(
            read_bounded(&fifo, 10),
            Err(ReadError::NotRegular("a FIFO"))
        ));
        let link = tmp.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert!(matches!(
            read_bounded(&link, 10),
            Err(ReadError::NotRegular("a symbolic link"))
        ));
        assert!(matches!(
            read_bounded(Path::new("/dev/zero"), 10),
            Err(ReadError::NotRegular("a device"))
        ));
        let big = tmp.path().join("big");
        std::fs::write(&big, vec![0u8; 100]).unwrap();
        assert!(matches!(
            read_bounded(&big, 10),
            Err(ReadError::TooLarge(100))
        ));
        assert_eq!(read_bounded(&big, 100).unwrap().len(), 100);
        let listed = walk(tmp.path());
        let kinds: Vec<(&str, &str)> = listed.iter().map(|l| (l.rel.as_str(), l.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                ("big", "file"),
                ("fifo", "a FIFO"),
                ("zero", "a symbolic link")
            ]
        );
        let r = hash_parallel(&[fifo, link, big], &crate::progress::NoProgress);
        assert!(r[0].is_err() && r[1].is_err());
        assert_eq!(r[2].as_ref().unwrap().1, 100);
    }
}
