//! The audit log: who viewed, downloaded or exported which hearing, and who issued or
//! revoked access, when and from where. One append-only JSONL file
//! (`DATA/audit/audit.jsonl`), each line chained to the one before by its SHA-256 like
//! a hearing's manifest, so a removed or edited entry is detectable (`check_chain`).
//!
//! Failure contract: each entry is one `write` of a whole line, then an fdatasync; an
//! action is served only after its entry is durable (a crash leaves at most a torn
//! last line, cut at the next open).

use super::manifest::GENESIS_PREV;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One audited action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub n: u64,
    pub prev: String,
    pub time: String,
    pub user: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hearing: Option<String>,
    /// `view`, `playlist`, `segment`, `export`, `download`, `verify`,
    /// `access_code_issued`, `access_code_revoked`, `grant`, `grant_revoked`, `login_code`.
    pub action: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
}

/// What is appended (the log fills in `n`, `prev` and `time`).
#[derive(Debug, Clone, Default)]
pub struct AuditEvent {
    pub user: String,
    pub role: String,
    pub hearing: Option<String>,
    pub action: String,
    pub detail: String,
    pub remote: Option<String>,
}

pub struct AuditLog {
    path: PathBuf,
    state: Mutex<(File, u64, String)>,
}

impl AuditLog {
    /// Opens (or creates) the log, cutting a torn last line left by a crash.
    pub fn open(dir: &Path) -> Result<AuditLog> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let path = dir.join("audit.jsonl");
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        };
        let whole = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let lines: Vec<&[u8]> = text[..whole]
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        let prev = lines
            .last()
            .map_or(GENESIS_PREV.to_string(), |l| super::sha256_hex(l));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        if whole != text.len() {
            file.set_len(whole as u64)
                .and_then(|_| file.sync_data())
                .map_err(|e| Error::io(format!("cutting a torn line of {}", path.display()), e))?;
        }
        super::sync_dir(dir)?;
        Ok(AuditLog {
            path,
            state: Mutex::new((file, lines.len() as u64, prev)),
        })
    }

    /// Appends an entry durably.
    pub fn record(&self, ev: AuditEvent) -> Result<()> {
        let mut st = self
            .state
            .lock()
            .map_err(|_| crate::err!(Internal, "audit log lock poisoned"))?;
        let entry = AuditEntry {
            n: st.1,
            prev: st.2.clone(),
            time: super::records::format_wall(chrono::Utc::now()),
            user: ev.user,
            role: ev.role,
            hearing: ev.hearing,
            action: ev.action,
            detail: ev.detail,
            remote: ev.remote,
        };
        let mut line = serde_json::to_vec(&entry)
            .map_err(|e| crate::err!(Internal, "serialising an audit entry: {e}"))?;
        let hash = super::sha256_hex(&line);
        line.push(b'\n');
        st.0.write_all(&line)
            .and_then(|_| st.0.sync_data())
            .map_err(|e| Error::io(format!("appending to {}", self.path.display()), e))?;
        st.1 += 1;
        st.2 = hash;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads the log and checks its chain. Returns the entries and, if the chain is
/// broken, where (1-based line) and why.
pub fn read(path: &Path) -> Result<(Vec<AuditEntry>, Option<String>)> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    let mut out = Vec::new();
    let mut prev = GENESIS_PREV.to_string();
    let mut broken = None;
    for (i, l) in text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        match serde_json::from_slice::<AuditEntry>(l) {
            Ok(e) => {
                if broken.is_none() && (e.prev != prev || e.n != i as u64) {
                    broken = Some(format!(
                        "line {}: does not chain to the line before it (an entry was removed, edited or inserted)",
                        i + 1
                    ));
                }
                out.push(e);
            }
            Err(_) => {
                if broken.is_none() {
                    broken = Some(format!("line {}: not an audit entry", i + 1));
                }
            }
        }
        prev = super::sha256_hex(l);
    }
    Ok((out, broken))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chained_and_a_removed_entry_is_detected() {
        let tmp = tempfile::tempdir().unwrap();
        let log = AuditLog::open(tmp.path()).unwrap();
        for a in ["view", "segment", "export"] {
            log.record(AuditEvent {
                user: "judge".into(),
                role: "judge".into(),
                hearing: Some("h1".into()),
                action: a.into(),
                ..AuditEvent::default()
            })
            .unwrap();
        }
        drop(log);
        let log = AuditLog::open(tmp.path()).unwrap();
        log.record(AuditEvent {
            user: "admin".into(),
            action: "grant".into(),
            ..AuditEvent::default()
        })
        .unwrap();
        let (entries, broken) = read(log.path()).unwrap();
        assert_eq!(entries.len(), 4);
        assert_eq!(broken, None);
        let text = std::fs::read_to_string(log.path()).unwrap();
        let cut: Vec<&str> = text
            .lines()
            .enumerate()
            .filter(|(i, _)| *i != 1)
            .map(|(_, l)| l)
            .collect();
        std::fs::write(log.path(), cut.join("\n") + "\n").unwrap();
        let (_, broken) = read(log.path()).unwrap();
        assert!(broken.unwrap().starts_with("line 2"));
    }
}
