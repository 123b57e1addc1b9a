//! The audit log: who logged in, viewed, downloaded or exported which hearing, who
//! issued or revoked access, when and from where. One append-only JSONL file
//! (`DATA/audit/audit.jsonl`), each line chained to the one before by its SHA-256 like
//! a hearing's manifest, and its head signed by the device key (`audit/checkpoints/
//! <size>.note`, origin `courtrec/<device>/audit-log`, the same C2SP checkpoints as a
//! hearing's) at least every [`SIGN_INTERVAL`] and after every admin action.
//!
//! Why signed: a hash chain alone can be rebuilt by whoever edits the file (remove an
//! entry, recompute every `prev`). A signed head cannot: a removed, edited, reordered
//! or truncated entry no longer matches the root the box signed, and `courtrec verify
//! DATA/audit` says so offline.
//!
//! Failure contract: an action is served only after its entry is durable (one `write`
//! of a whole line, then fdatasync). A failed append is cut back; if that fails too,
//! the log refuses appends until reopened, and the daemon refuses audited reads (503)
//! meanwhile: no access goes unaudited.

use crate::checkpoint::Checkpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::GENESIS_PREV;
use crate::merkle::Frontier;
use crate::records::format_wall;
use crate::signing::DeviceKey;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest time an audited action waits for a signature over it.
pub const SIGN_INTERVAL: Duration = Duration::from_secs(60);
/// The `hearing` part of the audit log's checkpoint origin.
pub const LOG_NAME: &str = "audit-log";

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
    /// `login`, `login_failed`, `login_code`, `logout`, `search`, `view`, `playlist`,
    /// `segment`, `export`, `download`, `verify`, `audit_read`, `access_code_issued`,
    /// `access_code_revoked`, `grant`, `grant_revoked`, `user_changed`, ...
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
    /// Sign the head right after this entry (admin actions).
    pub sign_now: bool,
}

struct State {
    file: File,
    next_n: u64,
    prev: String,
    valid_len: u64,
    frontier: Frontier,
    poisoned: Option<String>,
    last_signed: u64,
    last_sign_at: Option<Instant>,
    sign_error: Option<String>,
    /// The log no longer matches its newest signed head: never signed again (the box
    /// does not vouch for entries it cannot account for).
    tampered: Option<String>,
}

pub struct AuditLog {
    dir: PathBuf,
    path: PathBuf,
    signer: Option<crate::signedlog::Signer>,
    state: Mutex<State>,
}

impl AuditLog {
    /// Opens (or creates) the log in `dir`, cutting a torn last line left by a crash.
    /// With a signer (key, device id), its head is signed as it grows.
    pub fn open(dir: &Path, signer: Option<(Arc<DeviceKey>, String)>) -> Result<AuditLog> {
        std::fs::create_dir_all(dir.join("checkpoints"))
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let path = dir.join("audit.jsonl");
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        };
        let whole = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let mut frontier = Frontier::default();
        let mut leaves = Vec::new();
        let mut prev = GENESIS_PREV.to_string();
        let mut n = 0u64;
        for l in text[..whole]
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
        {
            frontier.push(crate::merkle::leaf_hash(l));
            leaves.push(crate::merkle::leaf_hash(l));
            // The chain continues from the raw bytes of the last line on disk.
            prev = crate::sha256_hex(l);
            n += 1;
        }
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
        crate::sync_dir(dir)?;
        let signer = signer.map(|(key, id)| crate::signedlog::Signer::new(dir, &id, key, LOG_NAME));
        if let Some(s) = &signer {
            crate::signedlog::write_vkey(dir, &s.key)?;
        }
        let newest = crate::checkpoint::sizes_in(&dir.join("checkpoints"))
            .last()
            .copied();
        let last_signed = newest.filter(|&s| s <= n).unwrap_or(0);
        // The newest signed head must still describe the entries on disk.
        let tampered = match (&signer, newest) {
            (Some(s), Some(size)) => {
                let note = std::fs::read_to_string(
                    dir.join("checkpoints").join(Checkpoint::file_name(size)),
                )
                .unwrap_or_default();
                let ok = s
                    .key
                    .verifier()
                    .verify_note(&note)
                    .ok()
                    .and_then(|b| Checkpoint::parse(&b).ok())
                    .is_some_and(|cp| {
                        size <= n
                            && cp.hearing_id == LOG_NAME
                            && cp.root == crate::merkle::Levels::new(leaves).root(size as usize)
                    });
                (!ok).then(|| {
                    format!(
                        "its entries no longer match the head this box signed over its first {size}: entries were removed, edited or reordered"
                    )
                })
            }
            _ => None,
        };
        Ok(AuditLog {
            dir: dir.to_path_buf(),
            path,
            signer,
            state: Mutex::new(State {
                file,
                next_n: n,
                prev,
                valid_len: whole as u64,
                frontier,
                poisoned: None,
                last_signed,
                last_sign_at: None,
                sign_error: None,
                tampered,
            }),
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| Error::new(ErrorKind::Internal, "audit log lock poisoned"))
    }

    /// Appends an entry durably (see the failure contract), and signs the head when
    /// due.
    pub fn record(&self, ev: AuditEvent) -> Result<()> {
        let mut st = self.lock()?;
        if let Some(why) = &st.poisoned {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!("the audit log cannot be written ({why}); nothing is served unaudited"),
            ));
        }
        let entry = AuditEntry {
            n: st.next_n,
            prev: st.prev.clone(),
            time: format_wall(chrono::Utc::now()),
            user: ev.user,
            role: ev.role,
            hearing: ev.hearing,
            action: ev.action,
            detail: ev.detail,
            remote: ev.remote,
        };
        let mut line = serde_json::to_vec(&entry)
            .map_err(|e| crate::err!(Internal, "serialising an audit entry: {e}"))?;
        let hash = crate::sha256_hex(&line);
        let leaf = crate::merkle::leaf_hash(&line);
        line.push(b'\n');
        let res = (|| {
            if let Err(e) = crate::fault::hit("audit.write", &self.path) {
                let _ = st.file.write_all(&line[..line.len() / 2]);
                return Err(e);
            }
            st.file.write_all(&line)?;
            crate::fault::hit("audit.sync", &self.path)?;
            st.file.sync_data()
        })();
        if let Err(e) = res {
            // Cut back to the last acknowledged entry; if even that fails, stop.
            let len = st.valid_len;
            if let Err(cut) = st.file.set_len(len).and_then(|_| st.file.sync_data()) {
                st.poisoned = Some(format!(
                    "an append failed ({e}) and could not be undone ({cut})"
                ));
            }
            return Err(Error::io(
                format!("appending to {}", self.path.display()),
                e,
            ));
        }
        st.valid_len += line.len() as u64;
        st.next_n += 1;
        st.prev = hash;
        st.frontier.push(leaf);
        let due = ev.sign_now || st.last_sign_at.is_none_or(|t| t.elapsed() >= SIGN_INTERVAL);
        if due {
            self.sign_locked(&mut st);
        }
        Ok(())
    }

    /// Signs the head if entries were added since the last signature (called every
    /// minute by the daemon, so no entry waits longer for one).
    pub fn sign_head(&self) {
        if let Ok(mut st) = self.lock() {
            self.sign_locked(&mut st);
        }
    }

    fn sign_locked(&self, st: &mut State) {
        let Some(signer) = &self.signer else {
            return;
        };
        if st.tampered.is_some() {
            return;
        }
        if st.next_n == st.last_signed {
            st.last_sign_at = Some(Instant::now());
            return;
        }
        let size = st.next_n;
        match signer.sign(size, st.frontier.root(), st.last_signed) {
            Ok(_) => {
                st.last_signed = size;
                st.last_sign_at = Some(Instant::now());
                st.sign_error = None;
            }
            Err(e) => st.sign_error = Some(e.to_string()),
        }
    }

    /// Why entries cannot be appended, or the head not signed, if so (an alarm).
    pub fn error(&self) -> Option<String> {
        let st = self.lock().ok()?;
        st.poisoned.clone().or_else(|| st.sign_error.clone())
    }

    /// Why the box no longer signs this log (it was altered), if so.
    pub fn tampered(&self) -> Option<String> {
        self.lock().ok()?.tampered.clone()
    }

    /// Whether appends are refused (then audited reads must be refused too).
    pub fn unwritable(&self) -> bool {
        self.lock().map_or(true, |st| st.poisoned.is_some())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Reads the log and checks its chain. Returns the entries and, if the chain is
/// broken, where (1-based line) and why.
pub fn read(path: &Path) -> Result<(Vec<AuditEntry>, Option<String>)> {
    let text = match crate::fsread::read_bounded(path, crate::fsread::MAX_LOG_BYTES) {
        Ok(t) => t,
        Err(crate::fsread::ReadError::NotFound) => Vec::new(),
        Err(e) => crate::bail!(Internal, "the audit log {e}"),
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
        prev = crate::sha256_hex(l);
    }
    Ok((out, broken))
}

#[cfg(test)]
mod tests;
