//! The persisted upload queue, in the index's database (its own trees; `check
//! --repair` never touches them): what must still reach the store, in the order it
//! came to exist, and how far each log has been read.
//!
//! Failure contract: new objects and the read position of their log are written in one
//! sled transaction, so a crash leaves either both or neither (the scan then finds the
//! same objects again). An object leaves the queue only after the store confirmed it
//! (checksum and a HEAD of its size); a crash before that uploads it again, and the
//! HEAD before each PUT makes that a no-op. Nothing is ever uploaded twice.

use crate::error::{Result, index_err};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::ConflictableTransactionError;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where an object's bytes come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A file, relative to the data folder.
    File(String),
    /// Bytes kept in the queue (a manifest chunk, frozen when its checkpoint came).
    Blob,
}

/// One object to upload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Its key under the box's prefix.
    pub key: String,
    pub source: Source,
    pub size_bytes: u64,
    /// Hex SHA-256 a signed line states for it (segments): the bytes sent must be these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hearing: Option<String>,
    /// When it was found (unix ms): the replication lag counts from here.
    pub created_ms: i64,
}

/// Pending objects of a hearing (or of all): count, bytes, the oldest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Pending {
    pub objects: u64,
    pub bytes: u64,
    pub oldest_ms: Option<i64>,
}

/// Confirmed objects of a hearing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Confirmed {
    pub objects: u64,
    pub bytes: u64,
}

#[derive(Default)]
struct Agg {
    bytes: u64,
    /// seq → created_ms: the first is the oldest.
    seqs: BTreeMap<u64, i64>,
}

impl Agg {
    fn add(&mut self, seq: u64, it: &Item) {
        self.bytes += it.size_bytes;
        self.seqs.insert(seq, it.created_ms);
    }
    fn remove(&mut self, seq: u64, it: &Item) {
        if self.seqs.remove(&seq).is_some() {
            self.bytes = self.bytes.saturating_sub(it.size_bytes);
        }
    }
    fn pending(&self) -> Pending {
        Pending {
            objects: self.seqs.len() as u64,
            bytes: self.bytes,
            oldest_ms: self.seqs.values().min().copied(),
        }
    }
}

#[derive(Default)]
struct Stats {
    total: Agg,
    hearings: HashMap<String, Agg>,
}

pub struct Queue {
    items: sled::Tree,
    keys: sled::Tree,
    blobs: sled::Tree,
    logs: sled::Tree,
    confirmed: sled::Tree,
    next_seq: AtomicU64,
    stats: Mutex<Stats>,
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

fn abort(e: impl std::fmt::Display) -> ConflictableTransactionError<String> {
    ConflictableTransactionError::Abort(e.to_string())
}

fn tx_err(e: sled::transaction::TransactionError<String>) -> crate::error::Error {
    match e {
        sled::transaction::TransactionError::Abort(m) => crate::err!(Internal, "queue: {m}"),
        sled::transaction::TransactionError::Storage(e) => index_err(e),
    }
}

impl Queue {
    pub fn open(index: &crate::archive::index::Index) -> Result<Queue> {
        let q = Queue {
            items: index.tree("repl_items")?,
            keys: index.tree("repl_keys")?,
            blobs: index.tree("repl_blobs")?,
            logs: index.tree("repl_logs")?,
            confirmed: index.tree("repl_confirmed")?,
            next_seq: AtomicU64::new(0),
            stats: Mutex::new(Stats::default()),
        };
        let mut next = 0;
        if let Ok(mut st) = q.stats.lock() {
            for kv in q.items.iter() {
                let (k, v) = kv.map_err(index_err)?;
                let seq = seq_of(&k);
                next = next.max(seq + 1);
                let Ok(it) = serde_json::from_slice::<Item>(&v) else {
                    // An unreadable row is dropped: the next scan finds its object again.
                    let _ = q.items.remove(&k);
                    continue;
                };
                st.total.add(seq, &it);
                if let Some(h) = &it.hearing {
                    st.hearings.entry(h.clone()).or_default().add(seq, &it);
                }
            }
        }
        q.next_seq.store(next, Ordering::SeqCst);
        Ok(q)
    }

    /// A log's read position, as last committed.
    pub fn log_state<T: for<'de> Deserialize<'de>>(&self, log: &str) -> Option<T> {
        let v = self.logs.get(log.as_bytes()).ok()??;
        serde_json::from_slice(&v).ok()
    }

    /// Logs with a committed position.
    pub fn logs(&self) -> Vec<String> {
        self.logs
            .iter()
            .keys()
            .flatten()
            .filter(|k| !k.starts_with(b"\0"))
            .map(|k| String::from_utf8_lossy(&k).to_string())
            .collect()
    }

    /// Adds objects (with their bytes for blobs) and the log's new read position at
    /// once. Objects already queued are not added twice.
    pub fn commit(
        &self,
        log: &str,
        state: &impl Serialize,
        objects: Vec<(Item, Option<Vec<u8>>)>,
    ) -> Result<()> {
        let first = self
            .next_seq
            .fetch_add(objects.len() as u64, Ordering::SeqCst);
        let state = json(state);
        let added: Vec<(u64, Item)> = (&self.items, &self.keys, &self.blobs, &self.logs)
            .transaction(|(items, keys, blobs, logs)| {
                let mut added = Vec::new();
                for (i, (it, blob)) in objects.iter().enumerate() {
                    if keys.get(it.key.as_bytes())?.is_some() {
                        continue;
                    }
                    let seq = first + i as u64;
                    items.insert(&seq.to_be_bytes(), json(it))?;
                    keys.insert(it.key.as_bytes(), &seq.to_be_bytes())?;
                    if let Some(b) = blob {
                        blobs.insert(it.key.as_bytes(), b.as_slice())?;
                    }
                    added.push((seq, it.clone()));
                }
                logs.insert(log.as_bytes(), state.as_slice())?;
                Ok::<_, ConflictableTransactionError<String>>(added)
            })
            .map_err(tx_err)?;
        if let Ok(mut st) = self.stats.lock() {
            for (seq, it) in &added {
                st.total.add(*seq, it);
                if let Some(h) = &it.hearing {
                    st.hearings.entry(h.clone()).or_default().add(*seq, it);
                }
            }
        }
        Ok(())
    }

    /// Up to `limit` objects, oldest first, skipping those `skip` says.
    pub fn peek(&self, limit: usize, skip: impl Fn(u64) -> bool) -> Vec<(u64, Item)> {
        let mut out = Vec::new();
        for kv in self.items.iter().flatten() {
            let seq = seq_of(&kv.0);
            if skip(seq) {
                continue;
            }
            if let Ok(it) = serde_json::from_slice::<Item>(&kv.1) {
                out.push((seq, it));
            }
            if out.len() >= limit {
                break;
            }
        }
        out
    }

    /// The bytes of a blob object.
    pub fn blob(&self, key: &str) -> Option<Vec<u8>> {
        self.blobs.get(key.as_bytes()).ok()?.map(|v| v.to_vec())
    }

    /// The store confirmed `it`: it leaves the queue and counts for its hearing.
    pub fn done(&self, seq: u64, it: &Item) -> Result<()> {
        (&self.items, &self.keys, &self.blobs, &self.confirmed)
            .transaction(|(items, keys, blobs, confirmed)| {
                items.remove(&seq.to_be_bytes())?;
                keys.remove(it.key.as_bytes())?;
                blobs.remove(it.key.as_bytes())?;
                if let Some(h) = &it.hearing {
                    let mut c: Confirmed = confirmed
                        .get(h.as_bytes())?
                        .and_then(|v| serde_json::from_slice(&v).ok())
                        .unwrap_or_default();
                    c.objects += 1;
                    c.bytes += it.size_bytes;
                    let v = serde_json::to_vec(&c).map_err(abort)?;
                    confirmed.insert(h.as_bytes(), v)?;
                }
                Ok::<_, ConflictableTransactionError<String>>(())
            })
            .map_err(tx_err)?;
        if let Ok(mut st) = self.stats.lock() {
            st.total.remove(seq, it);
            if let Some(h) = &it.hearing
                && let Some(a) = st.hearings.get_mut(h)
            {
                a.remove(seq, it);
                if a.seqs.is_empty() {
                    st.hearings.remove(h);
                }
            }
        }
        Ok(())
    }

    pub fn pending(&self) -> Pending {
        self.stats
            .lock()
            .map(|s| s.total.pending())
            .unwrap_or_default()
    }

    pub fn pending_for(&self, hearing: &str) -> Pending {
        self.stats
            .lock()
            .ok()
            .and_then(|s| s.hearings.get(hearing).map(Agg::pending))
            .unwrap_or_default()
    }

    pub fn confirmed_for(&self, hearing: &str) -> Confirmed {
        self.confirmed
            .get(hearing.as_bytes())
            .ok()
            .flatten()
            .and_then(|v| serde_json::from_slice(&v).ok())
            .unwrap_or_default()
    }

    /// Where the objects went (`endpoint bucket prefix`) when the queue was last
    /// used; a new destination is recorded and every log read again from its start
    /// (the HEAD before each PUT finds what the new place already has).
    pub fn retarget(&self, destination: &str) -> Result<bool> {
        let old = self.logs.get(b"\0destination").map_err(index_err)?;
        if old.as_deref() == Some(destination.as_bytes()) {
            return Ok(false);
        }
        let had = old.is_some();
        let _ = self.logs.clear();
        let _ = self.confirmed.clear();
        self.logs
            .insert(b"\0destination", destination.as_bytes())
            .map_err(index_err)?;
        Ok(had)
    }

    /// Forgets a log that is gone (a hearing released from the box): its read
    /// position and counts. Its objects are all confirmed by then.
    pub fn forget_log(&self, log: &str, hearing: Option<&str>) {
        let _ = self.logs.remove(log.as_bytes());
        if let Some(h) = hearing {
            let _ = self.confirmed.remove(h.as_bytes());
        }
    }
}

fn seq_of(k: &[u8]) -> u64 {
    k.try_into().map(u64::from_be_bytes).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(key: &str, h: &str, size: u64, t: i64) -> Item {
        Item {
            key: key.into(),
            source: Source::Blob,
            size_bytes: size,
            sha256: None,
            hearing: Some(h.into()),
            created_ms: t,
        }
    }

    #[test]
    fn survives_a_reopen_and_never_queues_twice() {
        let tmp = tempfile::tempdir().unwrap();
        let index = crate::archive::index::Index::open(&tmp.path().join("i")).unwrap();
        let q = Queue::open(&index).unwrap();
        q.commit(
            "h/a",
            &7u64,
            vec![
                (item("a/1", "a", 10, 100), Some(b"one".to_vec())),
                (item("a/2", "a", 20, 200), None),
            ],
        )
        .unwrap();
        q.commit("h/a", &8u64, vec![(item("a/1", "a", 10, 300), None)])
            .unwrap();
        assert_eq!(q.log_state::<u64>("h/a"), Some(8));
        assert_eq!(
            q.pending(),
            Pending {
                objects: 2,
                bytes: 30,
                oldest_ms: Some(100)
            }
        );
        let (seq, it) = q.peek(1, |_| false).remove(0);
        assert_eq!(it.key, "a/1");
        assert_eq!(q.blob("a/1").as_deref(), Some(&b"one"[..]));
        q.done(seq, &it).unwrap();
        drop(q);
        let q = Queue::open(&index).unwrap();
        assert_eq!(q.pending_for("a").objects, 1);
        assert_eq!(q.pending_for("a").oldest_ms, Some(200));
        assert_eq!(
            q.confirmed_for("a"),
            Confirmed {
                objects: 1,
                bytes: 10
            }
        );
        assert_eq!(q.blob("a/1"), None);
        let next = q.peek(5, |_| false);
        assert_eq!(next.len(), 1);
        assert!(next[0].0 > seq);
    }
}
