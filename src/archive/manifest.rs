//! The append-only, hash-chained manifest of a hearing (`manifest.jsonl`).
//!
//! Each line is an [`Entry`]: its position `n`, the SHA-256 of the previous line, and a
//! record. Removing, inserting or reordering a line breaks the chain at that point.
//! (Signed checkpoints over a Merkle tree of these lines are the integrity layer's
//! job; the lines themselves are its leaves and do not change.)
//!
//! Failure contract: every append is one `write` of a whole line followed by an
//! fdatasync, so after a crash the file holds every acknowledged line plus, at most,
//! one torn line at the end, which [`Manifest::open`] cuts off and reports.

use super::records::{Entry, Record};
use crate::error::{Error, ErrorKind, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What reading a manifest found.
#[derive(Debug, Default)]
pub struct ReadReport {
    pub entries: Vec<Entry>,
    /// RFC 9162 leaf hash of each line (its bytes without the newline).
    pub leaves: Vec<super::merkle::Hash>,
    /// Bytes after the last complete, valid line (a torn write from a crash).
    pub torn_tail_bytes: u64,
    /// Byte length of the valid prefix.
    pub valid_len: u64,
}

/// Reads and checks a manifest without changing it. A broken chain or an unparsable
/// line in the middle is an error (tampering or corruption); an incomplete last line
/// is reported as a torn tail.
pub fn read(path: &Path) -> Result<ReadReport> {
    let mut text = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut text))
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    parse(&text, &path.display().to_string())
}

/// Parses manifest bytes (see [`read`]).
pub fn parse(text: &[u8], name: &str) -> Result<ReadReport> {
    let mut report = ReadReport::default();
    let mut prev = GENESIS_PREV.to_string();
    let mut pos = 0usize;
    while pos < text.len() {
        let Some(nl) = text[pos..].iter().position(|&b| b == b'\n') else {
            // No newline: a write cut short by a crash.
            report.torn_tail_bytes = (text.len() - pos) as u64;
            break;
        };
        let line = &text[pos..pos + nl];
        let n = report.entries.len() as u64;
        let entry: Entry = serde_json::from_slice(line).map_err(|e| {
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
        if entry.prev != prev {
            return Err(Error::new(
                ErrorKind::Invalid,
                format!(
                    "{name}: line {} does not chain to the line before it: a line was removed, inserted, edited or reordered",
                    n + 1
                ),
            ));
        }
        prev = super::sha256_hex(line);
        report.leaves.push(super::merkle::leaf_hash(line));
        report.entries.push(entry);
        pos += nl + 1;
        report.valid_len = pos as u64;
    }
    Ok(report)
}

/// An open manifest, ready to append. One per hearing, shared behind a mutex by the
/// track writers and the hearing lifecycle.
#[derive(Debug)]
pub struct Manifest {
    path: PathBuf,
    file: File,
    next_n: u64,
    prev: String,
    /// Merkle leaf hashes of all lines, for checkpoints.
    leaves: Vec<super::merkle::Hash>,
}

impl Manifest {
    /// Opens (or creates) a manifest for appending, cutting off a torn last line left
    /// by a crash. Returns the manifest, its entries, and the torn bytes removed.
    pub fn open(path: &Path) -> Result<(Manifest, Vec<Entry>, u64)> {
        let exists = path.exists();
        let report = if exists {
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
            super::sync_dir(dir)?;
        }
        let prev = match report.entries.last() {
            None => GENESIS_PREV.to_string(),
            Some(last) => super::sha256_hex(&serde_json::to_vec(last).map_err(json_err)?),
        };
        let m = Manifest {
            path: path.to_path_buf(),
            file,
            next_n: report.entries.len() as u64,
            prev,
            leaves: report.leaves,
        };
        Ok((m, report.entries, report.torn_tail_bytes))
    }

    /// Appends a record and makes it durable before returning: a segment is indexed
    /// (and an API call answered) only after its line survives a power cut.
    pub fn append(&mut self, record: Record) -> Result<Entry> {
        let entry = Entry {
            n: self.next_n,
            prev: self.prev.clone(),
            record,
        };
        let mut line = serde_json::to_vec(&entry).map_err(json_err)?;
        let hash = super::sha256_hex(&line);
        let leaf = super::merkle::leaf_hash(&line);
        line.push(b'\n');
        // One write call for the whole line: a crash leaves it whole or torn at the end,
        // never interleaved with another line (appends are serialised by the caller's lock).
        self.file
            .write_all(&line)
            .and_then(|_| self.file.sync_data())
            .map_err(|e| Error::io(format!("appending to {}", self.path.display()), e))?;
        self.next_n += 1;
        self.prev = hash;
        self.leaves.push(leaf);
        Ok(entry)
    }

    pub fn len(&self) -> u64 {
        self.next_n
    }

    /// Merkle leaf hashes of every line so far.
    pub fn leaves(&self) -> &[super::merkle::Hash] {
        &self.leaves
    }

    pub fn is_empty(&self) -> bool {
        self.next_n == 0
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
    use crate::archive::records::*;

    fn mark(text: &str) -> Record {
        Record::Event(EventRecord {
            hearing_id: "h1".into(),
            device_id: "d1".into(),
            kind: EventKind::Mark,
            wall_time: "2026-01-01T00:00:00.000Z".into(),
            media_time_ns: Some(5),
            actor: None,
            reason: None,
            text: Some(text.into()),
            source: None,
            gap_from_ns: None,
            gap_to_ns: None,
            tracks: None,
            meta: None,
        })
    }

    #[test]
    fn append_reopen_and_chain() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("manifest.jsonl");
        let (mut m, entries, torn) = Manifest::open(&p).unwrap();
        assert!(entries.is_empty() && torn == 0);
        m.append(mark("a")).unwrap();
        m.append(mark("b")).unwrap();
        drop(m);
        let (mut m, entries, _) = Manifest::open(&p).unwrap();
        assert_eq!(entries.len(), 2);
        m.append(mark("c")).unwrap();
        let r = read(&p).unwrap();
        assert_eq!(r.entries.len(), 3);
        assert_eq!(r.entries[2].n, 2);
    }

    #[test]
    fn torn_tail_is_cut_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("manifest.jsonl");
        let (mut m, _, _) = Manifest::open(&p).unwrap();
        m.append(mark("a")).unwrap();
        drop(m);
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"n\":1,\"prev\":\"ab").unwrap();
        drop(f);
        let (mut m, entries, torn) = Manifest::open(&p).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(torn, 17);
        m.append(mark("b")).unwrap();
        assert_eq!(read(&p).unwrap().entries.len(), 2);
    }

    #[test]
    fn removed_edited_or_swapped_lines_are_detected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("manifest.jsonl");
        let (mut m, _, _) = Manifest::open(&p).unwrap();
        for t in ["a", "b", "c"] {
            m.append(mark(t)).unwrap();
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let removed = format!("{}\n{}\n", lines[0], lines[2]);
        assert!(parse(removed.as_bytes(), "x").is_err());
        let swapped = format!("{}\n{}\n{}\n", lines[0], lines[2], lines[1]);
        assert!(parse(swapped.as_bytes(), "x").is_err());
        let edited = text.replace("\"text\":\"b\"", "\"text\":\"B\"");
        let e = parse(edited.as_bytes(), "x").unwrap_err();
        assert!(e.msg.contains("line 3"), "{e}");
    }
}
