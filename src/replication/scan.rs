//! Finds what must reach the store, by reading the logs as they grow: every second
//! each hearing's manifest is read on from where it was (new segment lines name new
//! segment files), and its `checkpoints/` folder is listed when it changed (a new
//! checkpoint makes the manifest chunk it signs; a new TSA token is uploaded). The
//! device log and the audit log are followed the same way.
//!
//! Reading the files, not being told by the recorder, keeps the data flowing one way
//! (recording → archive → replication) and makes a restart, a lost queue or a crash
//! between a write and its enqueue harmless: the scan finds the same objects again.

use super::queue::{Item, Queue, Source};
use crate::archive::checkpoint::Checkpoint;
use crate::archive::records::{Entry, EventKind, Record};
use crate::store::layout;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Most manifest bytes read per log and scan (a long backlog is read over a few).
const MAX_READ_BYTES: u64 = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogKind {
    Hearing,
    DeviceLog,
    Audit,
}

/// How far a log has been read (persisted with the objects it produced).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogState {
    pub kind: LogKind,
    /// Bytes and lines of whole lines read.
    pub read_bytes: u64,
    pub lines: u64,
    /// Lines (and their bytes) already sent as chunks: up to the last checkpoint seen.
    pub chunked_lines: u64,
    pub chunked_bytes: u64,
    /// Checkpoint sizes whose TSA token was queued.
    pub tokens: BTreeSet<u64>,
    pub vkey: bool,
    /// A hearing's close event was read.
    pub closed: bool,
    /// A line could not be read as a record (the verifier will say why).
    #[serde(default)]
    pub unreadable_lines: u64,
}

impl LogState {
    fn new(kind: LogKind) -> LogState {
        LogState {
            kind,
            read_bytes: 0,
            lines: 0,
            chunked_lines: 0,
            chunked_bytes: 0,
            tokens: BTreeSet::new(),
            vkey: false,
            closed: false,
            unreadable_lines: 0,
        }
    }

    /// Closed, and every line signed and sent.
    pub fn sealed(&self) -> bool {
        self.closed && self.vkey && self.lines > 0 && self.chunked_lines == self.lines
    }
}

/// One followed log.
pub struct Followed {
    pub state: LogState,
    /// `checkpoints/`'s mtime when last listed.
    cp_mtime: Option<SystemTime>,
    cp_listed_at: Option<std::time::Instant>,
}

/// A log's identity: its queue name, folder, and where its objects go.
#[derive(Debug, Clone)]
pub struct LogRef {
    pub name: String,
    pub kind: LogKind,
    /// Folder relative to the data folder.
    pub rel_dir: String,
    /// Key folder under the box's prefix (no trailing '/').
    pub key_dir: String,
    pub hearing: Option<String>,
}

impl LogRef {
    pub fn hearing(id: &str) -> LogRef {
        LogRef {
            name: format!("h/{id}"),
            kind: LogKind::Hearing,
            rel_dir: format!("hearings/{id}"),
            key_dir: id.to_string(),
            hearing: Some(id.to_string()),
        }
    }
    pub fn device_log() -> LogRef {
        LogRef {
            name: layout::DEVICE_LOG.into(),
            kind: LogKind::DeviceLog,
            rel_dir: "device-log".into(),
            key_dir: layout::DEVICE_LOG.into(),
            hearing: None,
        }
    }
    pub fn audit() -> LogRef {
        LogRef {
            name: layout::AUDIT.into(),
            kind: LogKind::Audit,
            rel_dir: "audit".into(),
            key_dir: layout::AUDIT.into(),
            hearing: None,
        }
    }
    fn lines_file(&self) -> &'static str {
        match self.kind {
            LogKind::Audit => "audit.jsonl",
            _ => "manifest.jsonl",
        }
    }
    fn chunk_folder(&self) -> &'static str {
        match self.kind {
            LogKind::Audit => "chunks",
            _ => "manifest",
        }
    }
}

/// Follows every log of a data folder.
pub struct Scanner {
    root: PathBuf,
    pub followed: HashMap<String, Followed>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Scanner {
    pub fn new(root: &Path) -> Scanner {
        Scanner {
            root: root.to_path_buf(),
            followed: HashMap::new(),
        }
    }

    /// The logs there are now: the device log, the audit log, every hearing folder.
    pub fn logs(&self) -> Vec<LogRef> {
        let mut v = vec![LogRef::device_log(), LogRef::audit()];
        if let Ok(rd) = std::fs::read_dir(self.root.join("hearings")) {
            let mut ids: Vec<String> = rd
                .flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| crate::archive::verify::looks_like_hearing_id(n))
                .collect();
            ids.sort();
            v.extend(ids.iter().map(|id| LogRef::hearing(id)));
        }
        v
    }

    /// Reads one log on from where it was and queues what is new. Returns whether
    /// anything was queued.
    pub fn scan(&mut self, log: &LogRef, queue: &Queue) -> crate::error::Result<bool> {
        let dir = self.root.join(&log.rel_dir);
        let lines_path = dir.join(log.lines_file());
        let Ok(meta) = std::fs::metadata(&lines_path) else {
            return Ok(false);
        };
        let len = meta.len();
        let f = self
            .followed
            .entry(log.name.clone())
            .or_insert_with(|| Followed {
                state: queue
                    .log_state(&log.name)
                    .filter(|s: &LogState| s.kind == log.kind)
                    .unwrap_or_else(|| LogState::new(log.kind)),
                cp_mtime: None,
                cp_listed_at: None,
            });
        let cp_dir = dir.join("checkpoints");
        let cp_mtime = std::fs::metadata(&cp_dir).and_then(|m| m.modified()).ok();
        // A folder's mtime moves in coarse ticks: list it again while it changed lately.
        let recent = f
            .cp_listed_at
            .is_none_or(|t| t.elapsed() < std::time::Duration::from_secs(3));
        let grown = len > f.state.read_bytes;
        if !grown && cp_mtime == f.cp_mtime && !recent && f.state.vkey {
            return Ok(false);
        }
        let mut st = f.state.clone();
        let mut items: Vec<(Item, Option<Vec<u8>>)> = Vec::new();
        let file_item = |rel: &str, size: u64, sha: Option<String>| Item {
            key: format!("{}/{rel}", log.key_dir),
            source: Source::File(format!("{}/{rel}", log.rel_dir)),
            size_bytes: size,
            sha256: sha,
            hearing: log.hearing.clone(),
            created_ms: now_ms(),
        };
        if !st.vkey
            && let Ok(m) = std::fs::metadata(dir.join("device.vkey"))
        {
            items.push((file_item("device.vkey", m.len(), None), None));
            st.vkey = true;
        }
        if grown {
            let bytes = read_range(
                &lines_path,
                st.read_bytes,
                len.min(st.read_bytes + MAX_READ_BYTES),
            )?;
            let mut at = 0usize;
            while let Some(nl) = bytes[at..].iter().position(|&b| b == b'\n') {
                let line = &bytes[at..at + nl];
                at += nl + 1;
                st.lines += 1;
                st.read_bytes += nl as u64 + 1;
                if log.kind != LogKind::Hearing {
                    continue;
                }
                match serde_json::from_slice::<Entry>(line) {
                    Ok(e) => match e.record {
                        Record::Segment(s) if crate::archive::safe_rel(&s.file) => {
                            items.push((file_item(&s.file, s.bytes, Some(s.sha256)), None));
                        }
                        Record::Event(ev) if ev.kind == EventKind::Close => st.closed = true,
                        _ => {}
                    },
                    Err(_) => st.unreadable_lines += 1,
                }
            }
        }
        if grown || cp_mtime != f.cp_mtime || recent {
            let (sizes, tokens) = list_checkpoints(&cp_dir);
            for s in sizes {
                if s <= st.chunked_lines {
                    continue;
                }
                if s > st.lines {
                    break; // its lines are not read yet: next time
                }
                let want = s - st.chunked_lines;
                let chunk = read_lines(&lines_path, st.chunked_bytes, want)?;
                let Some(chunk) = chunk else { break };
                let name = layout::chunk_name(log.chunk_folder(), st.chunked_lines, s - 1);
                let blob = Item {
                    key: format!("{}/{name}", log.key_dir),
                    source: Source::Blob,
                    size_bytes: chunk.len() as u64,
                    sha256: None,
                    hearing: log.hearing.clone(),
                    created_ms: now_ms(),
                };
                st.chunked_bytes += chunk.len() as u64;
                st.chunked_lines = s;
                items.push((blob, Some(chunk)));
                let note = format!("checkpoints/{}", Checkpoint::file_name(s));
                let size = std::fs::metadata(dir.join(&note))
                    .map(|m| m.len())
                    .unwrap_or(0);
                items.push((file_item(&note, size, None), None));
            }
            for t in tokens {
                if st.tokens.contains(&t) {
                    continue;
                }
                let rel = format!("checkpoints/{}", Checkpoint::token_name(t));
                let size = std::fs::metadata(dir.join(&rel))
                    .map(|m| m.len())
                    .unwrap_or(0);
                items.push((file_item(&rel, size, None), None));
                st.tokens.insert(t);
            }
        }
        let queued = !items.is_empty();
        if queued || st != f.state {
            queue.commit(&log.name, &st, items)?;
        }
        f.state = st;
        if cp_mtime != f.cp_mtime {
            f.cp_listed_at = Some(std::time::Instant::now());
        }
        f.cp_mtime = cp_mtime;
        Ok(queued)
    }
}

/// Checkpoint sizes (ascending) and the sizes that have a TSA token.
fn list_checkpoints(dir: &Path) -> (Vec<u64>, Vec<u64>) {
    let mut sizes = Vec::new();
    let mut tokens = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(n) = name.strip_suffix(".note").and_then(|n| n.parse().ok()) {
                sizes.push(n);
            } else if let Some(n) = name.strip_suffix(".tsr").and_then(|n| n.parse().ok()) {
                tokens.push(n);
            }
        }
    }
    sizes.sort_unstable();
    tokens.sort_unstable();
    (sizes.into_iter().filter(|&s| s > 0).collect(), tokens)
}

fn read_range(path: &Path, from: u64, to: u64) -> crate::error::Result<Vec<u8>> {
    let mut f = std::fs::File::open(path)
        .map_err(|e| crate::error::Error::io(format!("opening {}", path.display()), e))?;
    f.seek(SeekFrom::Start(from))
        .map_err(|e| crate::error::Error::io(format!("reading {}", path.display()), e))?;
    let mut buf = Vec::with_capacity((to - from) as usize);
    f.take(to - from)
        .read_to_end(&mut buf)
        .map_err(|e| crate::error::Error::io(format!("reading {}", path.display()), e))?;
    Ok(buf)
}

/// `count` whole lines from byte `from` (with their newlines); `None` if the file
/// does not hold that many yet.
fn read_lines(path: &Path, from: u64, count: u64) -> crate::error::Result<Option<Vec<u8>>> {
    let mut f = std::fs::File::open(path)
        .map_err(|e| crate::error::Error::io(format!("opening {}", path.display()), e))?;
    f.seek(SeekFrom::Start(from))
        .map_err(|e| crate::error::Error::io(format!("reading {}", path.display()), e))?;
    let mut out = Vec::new();
    let mut seen = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    while seen < count {
        let n = f
            .read(&mut buf)
            .map_err(|e| crate::error::Error::io(format!("reading {}", path.display()), e))?;
        if n == 0 {
            return Ok(None);
        }
        for (i, &b) in buf[..n].iter().enumerate() {
            if b == b'\n' {
                seen += 1;
                if seen == count {
                    out.extend_from_slice(&buf[..=i]);
                    return Ok(Some(out));
                }
            }
        }
        out.extend_from_slice(&buf[..n]);
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("m");
        std::fs::write(&p, b"a\nbb\nccc\ndd").unwrap();
        assert_eq!(read_lines(&p, 0, 2).unwrap().unwrap(), b"a\nbb\n");
        assert_eq!(read_lines(&p, 2, 2).unwrap().unwrap(), b"bb\nccc\n");
        assert_eq!(
            read_lines(&p, 0, 4).unwrap(),
            None,
            "the last line is not whole"
        );
    }
}
