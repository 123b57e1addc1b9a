//! Sends queued objects to the store, oldest first, a few at a time, and takes each
//! off the queue only once the store confirmed it: the store checked the bytes against
//! their SHA-256 (and `Content-MD5`), and a HEAD afterwards shows the object with its
//! size (and checksum, where the store keeps one).
//!
//! Never overwrites: a HEAD comes before every PUT. An object already there with the
//! same bytes counts as confirmed (an upload cut off after the PUT, a restarted box);
//! one with other bytes is a conflict, reported and left alone (S3 stores ignore
//! `If-None-Match`, so only the HEAD protects what is there).

use super::queue::{Item, Queue, Source};
use crate::store::{Fault, Lock, ObjectInfo, Store, StoreError, md5, sha256};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Largest object read for upload (segments are a few MB; a chunk less).
const MAX_OBJECT_BYTES: u64 = 1 << 30;

/// Why an object could not be confirmed.
#[derive(Debug)]
pub enum UploadError {
    /// The store (or the way to it) failed: retried with back-off.
    Store(StoreError),
    /// Something on the box: the file is gone, or differs from its signed line.
    Local(String),
    /// The store holds other bytes at this key.
    Conflict(String),
}

/// What the store confirmed.
#[derive(Debug)]
pub struct Confirmed {
    /// It was there already (the same bytes): nothing was sent.
    pub already_there: bool,
    pub lock: Lock,
    pub bytes: u64,
}

/// Caps the upload rate (`max_upload_mbit`): each upload waits for its turn.
pub struct Limiter {
    bytes_per_s: f64,
    next: Mutex<Instant>,
}

impl Limiter {
    pub fn new(mbit: f64) -> Limiter {
        Limiter {
            bytes_per_s: mbit * 1_000_000.0 / 8.0,
            next: Mutex::new(Instant::now()),
        }
    }

    /// When `bytes` may start so that the average stays under the cap.
    fn slot(&self, bytes: u64) -> Option<Instant> {
        if self.bytes_per_s <= 0.0 {
            return None;
        }
        let mut next = self.next.lock().ok()?;
        let start = (*next).max(Instant::now());
        *next = start + Duration::from_secs_f64(bytes as f64 / self.bytes_per_s);
        Some(start)
    }
}

fn matches(info: &ObjectInfo, len: u64, sha: &[u8; 32], md5: &[u8; 16]) -> bool {
    info.size_bytes == len
        && match (&info.sha256_b64, &info.etag) {
            (Some(s), _) => *s == crate::archive::b64(sha),
            // A single-part upload's ETag is its MD5 on most stores (a multipart one,
            // `…-n`, says nothing: we never write those).
            (None, Some(e)) if !e.contains('-') => e.eq_ignore_ascii_case(&hex::encode(md5)),
            _ => true,
        }
}

/// The object's bytes, checked against what its signed line says.
fn bytes_of(root: &std::path::Path, queue: &Queue, it: &Item) -> Result<Vec<u8>, UploadError> {
    let bytes = match &it.source {
        Source::Blob => queue
            .blob(&it.key)
            .ok_or_else(|| UploadError::Local("its queued bytes are missing".into()))?,
        Source::File(rel) => {
            match crate::archive::fsread::read_bounded(&root.join(rel), MAX_OBJECT_BYTES) {
                Ok(b) => b,
                Err(crate::archive::fsread::ReadError::NotFound) => {
                    return Err(UploadError::Local(
                        "the file is no longer on the box's disk".into(),
                    ));
                }
                Err(e) => return Err(UploadError::Local(format!("the file {e}"))),
            }
        }
    };
    if let Some(want) = &it.sha256 {
        let have = hex::encode(sha256(&bytes));
        if &have != want {
            return Err(UploadError::Local(format!(
                "the file on the box's disk no longer matches its signed record (SHA-256 {have}, recorded {want}); it is not sent"
            )));
        }
    }
    Ok(bytes)
}

/// Uploads one object (or finds it there) and confirms it.
pub async fn upload(
    store: &Store,
    root: &std::path::Path,
    queue: &Queue,
    limiter: &Limiter,
    key: &str,
    it: &Item,
    retain_until_unix_s: Option<i64>,
) -> Result<Confirmed, UploadError> {
    let bytes = bytes_of(root, queue, it)?;
    let len = bytes.len() as u64;
    let sha = sha256(&bytes);
    let md5 = md5(&bytes);
    if let Some(info) = store.head(key).await.map_err(UploadError::Store)? {
        return if matches(&info, len, &sha, &md5) {
            Ok(Confirmed {
                already_there: true,
                lock: info.lock,
                bytes: len,
            })
        } else {
            Err(UploadError::Conflict(format!(
                "the archive already holds {key} with other content ({} bytes, ours {len}); it is never overwritten",
                info.size_bytes
            )))
        };
    }
    if let Some(at) = limiter.slot(len) {
        tokio::time::sleep_until(at.into()).await;
    }
    store
        .put(key, bytes, &sha, &md5, retain_until_unix_s)
        .await
        .map_err(UploadError::Store)?;
    let info = store
        .head(key)
        .await
        .map_err(UploadError::Store)?
        .ok_or_else(|| {
            UploadError::Store(StoreError::new(
                Fault::Garbage,
                format!("the store acknowledged {key} but does not have it"),
            ))
        })?;
    if !matches(&info, len, &sha, &md5) {
        return Err(UploadError::Store(StoreError::new(
            Fault::Rejected,
            format!(
                "the store acknowledged {key} but holds {} bytes of other content",
                info.size_bytes
            ),
        )));
    }
    Ok(Confirmed {
        already_there: false,
        lock: info.lock,
        bytes: len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_spaces_uploads() {
        let l = Limiter::new(8.0); // 1 MB/s
        let a = l.slot(500_000).unwrap();
        let b = l.slot(500_000).unwrap();
        let gap = b.duration_since(a).as_secs_f64();
        assert!((gap - 0.5).abs() < 0.05, "{gap}");
        assert!(Limiter::new(0.0).slot(1 << 30).is_none(), "no cap");
    }

    #[test]
    fn what_counts_as_the_same_object() {
        let sha = sha256(b"x");
        let md5 = md5(b"x");
        let mut info = ObjectInfo {
            size_bytes: 1,
            sha256_b64: Some(crate::archive::b64(&sha)),
            etag: None,
            lock: Lock::None,
        };
        assert!(matches(&info, 1, &sha, &md5));
        assert!(!matches(&info, 2, &sha, &md5));
        info.sha256_b64 = Some(crate::archive::b64(&sha256(b"y")));
        assert!(!matches(&info, 1, &sha, &md5));
        info.sha256_b64 = None;
        info.etag = Some(hex::encode(md5));
        assert!(matches(&info, 1, &sha, &md5));
        info.etag = Some(hex::encode(crate::store::md5(b"y")));
        assert!(!matches(&info, 1, &sha, &md5));
    }
}
