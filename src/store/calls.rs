//! The store's calls, each run on the store's own runtime (see the module comment of
//! `store`): callers on any runtime await a task there. A reading's body is then
//! polled by the caller; the connection that feeds it lives on the store's runtime,
//! which always runs.

use super::{Listing, ObjectInfo, Reading, Store, StoreError};
use crate::store::Fault;
use std::future::Future;

/// Two threads for every store of the process (uploads hash and sign their bodies
/// here), at the lowest priority: on a courtroom box the store's work must never take
/// CPU from the recording.
fn runtime() -> Result<&'static tokio::runtime::Runtime, StoreError> {
    static RT: std::sync::OnceLock<Result<tokio::runtime::Runtime, String>> =
        std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("store-io")
            .on_thread_start(|| {
                // SAFETY: setpriority on our own thread id has no memory effects.
                unsafe {
                    let tid = nix::libc::gettid() as nix::libc::id_t;
                    nix::libc::setpriority(nix::libc::PRIO_PROCESS, tid, 19);
                }
            })
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| StoreError::new(Fault::Other, format!("starting the store's runtime: {e}")))
}

async fn on_store<T: Send + 'static>(
    f: impl Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<T, StoreError> {
    runtime()?
        .spawn(f)
        .await
        .map_err(|e| StoreError::new(Fault::Other, format!("a store call failed: {e}")))?
}

impl Store {
    /// Whether the bucket is there and ours to use (a clear error at start-up).
    pub async fn check_bucket(&self) -> Result<(), StoreError> {
        let s = self.clone();
        on_store(async move { s.check_bucket_io().await }).await
    }

    /// The object's size and checksums; `None` if there is no such object.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        let (s, key) = (self.clone(), key.to_string());
        on_store(async move { s.head_io(&key).await }).await
    }

    /// Writes an immutable object. The store checks the bytes against `sha256` (when
    /// it supports `x-amz-checksum-sha256`) and against `md5` (`Content-MD5`), and
    /// refuses them if they differ; `retain_until_unix_s` asks for COMPLIANCE Object
    /// Lock until then.
    pub async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        sha256: &[u8; 32],
        md5: &[u8; 16],
        retain_until_unix_s: Option<i64>,
    ) -> Result<(), StoreError> {
        let (s, key, sha256, md5) = (self.clone(), key.to_string(), *sha256, *md5);
        on_store(async move {
            s.put_io(&key, body, &sha256, &md5, retain_until_unix_s)
                .await
        })
        .await
    }

    /// Writes (or overwrites) a small object that is not evidence: the box's heartbeat.
    pub async fn put_mutable(&self, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
        let (s, key) = (self.clone(), key.to_string());
        on_store(async move { s.put_mutable_io(&key, body).await }).await
    }

    /// Reads an object, or the byte range `first..=last` of it.
    pub async fn get(
        &self,
        key: &str,
        range: Option<(u64, Option<u64>)>,
    ) -> Result<Reading, StoreError> {
        let (s, key) = (self.clone(), key.to_string());
        on_store(async move { s.get_io(&key, range).await }).await
    }

    /// Every object under `prefix` (with `delimiter`, only the first level and its
    /// "folders"), page after page.
    pub async fn list(&self, prefix: &str, delimiter: Option<&str>) -> Result<Listing, StoreError> {
        let (s, prefix, delimiter) = (
            self.clone(),
            prefix.to_string(),
            delimiter.map(str::to_string),
        );
        on_store(async move { s.list_io(&prefix, delimiter.as_deref()).await }).await
    }
}
