//! The append-only, hash-chained manifest of a hearing (`manifest.jsonl`), and of the
//! device log, which has the same shape.
//!
//! Each line is an [`Entry`]: its position `n`, the SHA-256 of the previous line's
//! bytes, and a record. Removing, inserting or reordering a line breaks the chain at
//! that point. (Signed checkpoints over a Merkle tree of these lines are the integrity
//! layer's job; the lines themselves are its leaves and do not change.)
//!
//! Failure contract: every append is one `write` of a whole line followed by an
//! fdatasync, and is acknowledged only once both succeed. So after a crash the file
//! holds every acknowledged line plus, at most, one torn line at the end, which
//! [`Manifest::open`] cuts off and reports. An append that *fails* (EIO, ENOSPC, a
//! failed fdatasync) may still have put some or all of its bytes in the file: the file
//! is cut back to its last acknowledged length before the error is returned, so the
//! next line chains to the last acknowledged one and never repeats its number. If even
//! that cut fails, the manifest refuses every further append until it is reopened
//! (which cuts the torn tail then): fail-stop, never a fork in the chain.

use crate::error::{Error, ErrorKind, Result};
use crate::merkle::{Frontier, Hash};
use crate::records::{Entry, Record};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What reading a manifest found.
#[derive(Debug)]
pub struct ReadReport<R = Record> {
    pub entries: Vec<Entry<R>>,
    /// RFC 9162 leaf hash of each line (its bytes without the newline).
    pub leaves: Vec<Hash>,
    /// Bytes after the last complete, valid line (a torn write from a crash).
    pub torn_tail_bytes: u64,
    /// Byte length of the valid prefix.
    pub valid_len: u64,
    /// Hex SHA-256 of the last valid line's raw bytes (the next line's `prev`).
    pub last_hash: String,
}

impl<R> Default for ReadReport<R> {
    fn default() -> Self {
        ReadReport {
            entries: Vec::new(),
            leaves: Vec::new(),
            torn_tail_bytes: 0,
            valid_len: 0,
            last_hash: GENESIS_PREV.to_string(),
        }
    }
}

/// Reads and checks a manifest without changing it. A broken chain or an unparsable
/// line in the middle is an error (tampering or corruption); an incomplete last line
/// is reported as a torn tail.
pub fn read<R: DeserializeOwned>(path: &Path) -> Result<ReadReport<R>> {
    let mut text = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut text))
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    parse(&text, &path.display().to_string())
}

/// Parses manifest bytes (see [`read`]).
pub fn parse<R: DeserializeOwned>(text: &[u8], name: &str) -> Result<ReadReport<R>> {
    let mut report = ReadReport::default();
    let mut pos = 0usize;
    while pos < text.len() {
        let Some(nl) = text[pos..].iter().position(|&b| b == b'\n') else {
            // No newline: a write cut short by a crash.
            report.torn_tail_bytes = (text.len() - pos) as u64;
            break;
        };
        let line = &text[pos..pos + nl];
        let n = report.entries.len() as u64;
        let entry: Entry<R> = serde_json::from_slice(line).map_err(|e| {
            Error::new(
                ErrorKind::Invalid,
                format!("{name}: line {} is not a manifest record: {e}", n + 1),
            )
        })?;
        if entry.n != n {
            return Err(Error::new(
                ErrorKind::Invalid,
                format!(
                    "{name}: line {} says it is entry {}: entries were removed or reordered",
                    n + 1,
                    entry.n
                ),
            ));
        }
        if entry.prev != report.last_hash {
            return Err(Error::new(
                ErrorKind::Invalid,
                format!(
                    "{name}: line {} does not chain to the line before it: a line was removed, inserted, edited or reordered",
                    n + 1
                ),
            ));
        }
        // The chain is over the raw bytes on disk, never over a re-serialised record.
        report.last_hash = crate::sha256_hex(line);
        report.leaves.push(crate::merkle::leaf_hash(line));
        report.entries.push(entry);
        pos += nl + 1;
        report.valid_len = pos as u64;
    }
    Ok(report)
}

/// An open manifest, ready to append. One per hearing (or device log), shared behind a
/// mutex by its writers.
#[derive(Debug)]
pub struct Manifest<R = Record> {
    path: PathBuf,
    file: File,
    next_n: u64,
    prev: String,
    /// Bytes acknowledged so far: what a failed append cuts the file back to.
    valid_len: u64,
    /// The Merkle tree's peaks over every line, for checkpoint roots in O(log n).
    frontier: Frontier,
    /// Set when a failed append could not be undone: no more appends until reopened.
    poisoned: Option<String>,
    /// Site names for fault injection (`<prefix>.write`, `<prefix>.sync`).
    fault_prefix: &'static str,
    _record: std::marker::PhantomData<fn() -> R>,
}

impl<R: Serialize + DeserializeOwned> Manifest<R> {
    /// Opens (or creates) a manifest for appending, cutting off a torn last line left
    /// by a crash. Returns the manifest, what was read, and the torn bytes removed.
    pub fn open(path: &Path) -> Result<(Manifest<R>, ReadReport<R>)> {
        Self::open_as(path, "manifest")
    }

    /// [`Self::open`], naming the fault-injection sites `<fault_prefix>.write|sync`.
    pub fn open_as(
        path: &Path,
        fault_prefix: &'static str,
    ) -> Result<(Manifest<R>, ReadReport<R>)> {
        let exists = path.exists();
        let report: ReadReport<R> = if exists {
            read(path)?
        } else {
            ReadReport::default()
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        if report.torn_tail_bytes > 0 {
            // The torn line was never acknowledged (its fdatasync never returned), so
            // dropping it loses nothing that anyone was told was recorded.
            file.set_len(report.valid_len)
                .and_then(|_| file.sync_data())
                .map_err(|e| Error::io(format!("truncating torn line of {}", path.display()), e))?;
        }
        if !exists && let Some(dir) = path.parent() {
            // Make the new file's directory entry durable before anything depends on it.
            crate::sync_dir(dir)?;
        }
        let mut frontier = Frontier::default();
        for l in &report.leaves {
            frontier.push(*l);
        }
        let m = Manifest {
            path: path.to_path_buf(),
            file,
            next_n: report.entries.len() as u64,
            prev: report.last_hash.clone(),
            valid_len: report.valid_len,
            frontier,
            poisoned: None,
            fault_prefix,
            _record: std::marker::PhantomData,
        };
        Ok((m, report))
    }

    /// Appends a record and makes it durable before returning: a segment is indexed
    /// (and an API call answered) only after its line survives a power cut. On failure
    /// the file is as it was before the call (see the module's failure contract).
    pub fn append(&mut self, record: R) -> Result<Entry<R>> {
        if let Some(why) = &self.poisoned {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "{} refuses appends until it is reopened: {why}",
                    self.path.display()
                ),
            ));
        }
        let entry = Entry {
            n: self.next_n,
            prev: self.prev.clone(),
            record,
        };
        let mut line = serde_json::to_vec(&entry).map_err(json_err)?;
        let hash = crate::sha256_hex(&line);
        let leaf = crate::merkle::leaf_hash(&line);
        line.push(b'\n');
        if let Err(e) = self.write_line(&line) {
            self.undo(&e);
            return Err(Error::io(
                format!("appending to {}", self.path.display()),
                e,
            ));
        }
        self.valid_len += line.len() as u64;
        self.next_n += 1;
        self.prev = hash;
        self.frontier.push(leaf);
        Ok(entry)
    }

    /// One write call for the whole line, then fdatasync: a crash leaves it whole or
    /// torn at the end, never interleaved with another line (appends are serialised by
    /// the caller's lock).
    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        let (write_site, sync_site) = match self.fault_prefix {
            "devlog" => ("devlog.write", "devlog.sync"),
            "audit" => ("audit.write", "audit.sync"),
            _ => ("manifest.write", "manifest.sync"),
        };
        if let Err(e) = crate::fault::hit(write_site, &self.path) {
            // An injected failure that, like a real one, leaves half the line behind.
            let _ = self.file.write_all(&line[..line.len() / 2]);
            return Err(e);
        }
        self.file.write_all(line)?;
        crate::fault::hit(sync_site, &self.path)?;
        self.file.sync_data()
    }

    /// Cuts the file back to its last acknowledged length after a failed append, so
    /// that bytes of the failed line never sit under the next one. If that fails too,
    /// refuses every further append (the torn tail is cut when the file is reopened).
    fn undo(&mut self, cause: &std::io::Error) {
        let cut = self
            .file
            .set_len(self.valid_len)
            .and_then(|_| self.file.sync_data());
        if let Err(e) = cut {
            self.poisoned = Some(format!(
                "an append failed ({cause}) and its bytes could not be cut off ({e})"
            ));
        }
    }

    pub fn len(&self) -> u64 {
        self.next_n
    }

    pub fn is_empty(&self) -> bool {
        self.next_n == 0
    }

    /// Bytes acknowledged so far.
    pub fn valid_len(&self) -> u64 {
        self.valid_len
    }

    /// The RFC 9162 root of every line so far.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// Why appends are refused, if they are.
    pub fn poisoned(&self) -> Option<&str> {
        self.poisoned.as_deref()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file at our path is still the one we append to, with exactly the
    /// bytes we acknowledged: false when someone replaced, truncated or extended it.
    pub fn unchanged_on_disk(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(&self.path), self.file.metadata()) {
            (Ok(on_disk), Ok(ours)) => {
                on_disk.ino() == ours.ino()
                    && on_disk.dev() == ours.dev()
                    && on_disk.len() == self.valid_len
            }
            _ => false,
        }
    }
}

fn json_err(e: serde_json::Error) -> Error {
    Error::new(
        ErrorKind::Internal,
        format!("serialising manifest record: {e}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::*;

    fn mark(text: &str) -> Record {
        let mut ev = EventRecord::new(
            "h1",
            "d1",
            EventKind::Mark,
            "2026-01-01T00:00:00.000Z".into(),
        );
        ev.media_time_ns = Some(5);
        ev.text = Some(text.into());
        Record::Event(ev)
    }

    fn open(p: &Path) -> (Manifest, ReadReport) {
        Manifest::open(p).unwrap()
    }

    #[test]
    fn append_reopen_and_chain() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("manifest.jsonl");
        let (mut m, r) = open(&p);
        assert!(r.entries.is_empty() && r.torn_tail_bytes == 0);
        m.append(mark("a")).unwrap();
        m.append(mark("b")).unwrap();
        let root = m.root();
        drop(m);
        let (mut m, r) = open(&p);
        assert_eq!(r.entries.len(), 2);
        assert_eq!(m.root(), root, "the root is rebuilt from the lines on disk");
        assert_eq!(m.root(), crate::merkle::root(&r.leaves));
        m.append(mark("c")).unwrap();
        let r: ReadReport = read(&p).unwrap();
        assert_eq!(r.entries.len(), 3);
        assert_eq!(r.entries[2].n, 2);
    }

    #[test]
    fn torn_tail_is_cut_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("manifest.jsonl");
        let (mut m, _) = open(&p);
        m.append(mark("a")).unwrap();
        drop(m);
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"n\":1,\"prev\":\"ab").unwrap();
        drop(f);
        let (mut m, r) = open(&p);
        assert_eq!(r.entries.len(), 1);
        assert_eq!(r.torn_tail_bytes, 17);
        m.append(mark("b")).unwrap();
        assert_eq!(read::<Record>(&p).unwrap().entries.len(), 2);
    }

    #[test]
    fn the_chain_follows_the_bytes_on_disk_not_a_reserialisation() {
        // A line written by another serialiser (spaces, another field order) still
        // chains: `prev` is the hash of its raw bytes.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("manifest.jsonl");
        let first = format!(
            "{{ \"prev\": \"{GENESIS_PREV}\", \"n\": 0, \"record\": {} }}\n",
            serde_json::to_string(&mark("a")).unwrap()
        );
        std::fs::write(&p, &first).unwrap();
        let (mut m, _) = open(&p);
        m.append(mark("b")).unwrap();
        drop(m);
        let r: ReadReport = read(&p).unwrap();
        assert_eq!(r.entries.len(), 2);
        assert_eq!(
            r.entries[1].prev,
            crate::sha256_hex(first.trim_end().as_bytes())
        );
    }

    #[test]
    fn a_failed_append_leaves_the_file_as_it_was_and_the_next_one_chains() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("manifest.jsonl");
        let (mut m, _) = open(&p);
        m.append(mark("a")).unwrap();
        let before = std::fs::read(&p).unwrap();
        for site in ["manifest.write", "manifest.sync"] {
            crate::fault::arm_scoped(site, 1, false, Some(dir.path()));
            let e = m.append(mark("lost")).unwrap_err();
            assert!(e.msg.contains("appending"), "{e}");
            assert_eq!(std::fs::read(&p).unwrap(), before, "{site}: cut back");
            assert_eq!(m.len(), 1, "{site}: the failed line took no number");
        }
        m.append(mark("b")).unwrap();
        let r: ReadReport = read(&p).unwrap();
        assert_eq!(r.entries.len(), 2, "no duplicate number, no broken chain");
        assert!(m.unchanged_on_disk());
        std::fs::write(&p, b"").unwrap();
        assert!(
            !m.unchanged_on_disk(),
            "a file cut behind our back is noticed"
        );
    }

    #[test]
    fn removed_edited_or_swapped_lines_are_detected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("manifest.jsonl");
        let (mut m, _) = open(&p);
        for t in ["a", "b", "c"] {
            m.append(mark(t)).unwrap();
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let removed = format!("{}\n{}\n", lines[0], lines[2]);
        assert!(parse::<Record>(removed.as_bytes(), "x").is_err());
        let swapped = format!("{}\n{}\n{}\n", lines[0], lines[2], lines[1]);
        assert!(parse::<Record>(swapped.as_bytes(), "x").is_err());
        let edited = text.replace("\"text\":\"b\"", "\"text\":\"B\"");
        let e = parse::<Record>(edited.as_bytes(), "x").unwrap_err();
        assert!(e.msg.contains("line 3"), "{e}");
    }
}
