//! The court's object store (S3-compatible: Garage, Ceph RGW, MinIO, AWS S3), as the
//! replication of a box and the archive server use it. Why `aws-sdk-s3` and not
//! `object_store`: we need Object Lock on PUT, `GetObjectRetention`, an explicit
//! SHA-256 checksum and `Content-MD5` per PUT, and the store's answers as they are
//! (error codes for plain-words alarms); `object_store` hides all of these
//! (`docs/archive.md`).
//!
//! Every call fails with a [`StoreError`] saying which kind of trouble it is, so the
//! alarms tell court IT what to fix (credentials, bucket, network, the store itself).
//! The SDK retries once (a pooled connection the store closed); beyond that the
//! replication's queue retries with its own back-off, and a reader gets a quick clear
//! error rather than a long wait.
//!
//! Every call runs on the store's own runtime (`calls`), whichever thread or runtime
//! asks: the SDK's pooled connections are driven by tasks of the runtime that opened
//! them, and a connection opened by a short-lived or sleeping runtime (a scan thread's)
//! would stall the next caller that picks it from the pool.

mod calls;
mod errors;
pub mod fleet;
pub mod layout;
pub mod remote;

pub use errors::{Fault, StoreError};

use crate::config::archive::{Archive, Credentials};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    BehaviorVersion, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{ChecksumMode, ObjectLockMode};
use errors::classify;
use std::time::Duration;

/// What the store says about an object.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectInfo {
    pub size_bytes: u64,
    /// Base64 SHA-256 the store keeps for it (when it was written with one).
    pub sha256_b64: Option<String>,
    /// The ETag without quotes: the hex MD5 of a single-part upload on most stores.
    pub etag: Option<String>,
    /// The lock the store keeps on it.
    pub lock: Lock,
}

/// The store's lock on an object, as it answers `GetObjectRetention`.
#[derive(Debug, Clone, PartialEq)]
pub enum Lock {
    /// COMPLIANCE until this time (unix seconds).
    Compliance { until_unix_s: i64 },
    /// Another mode (GOVERNANCE can be lifted by an administrator).
    Other { mode: String, until_unix_s: i64 },
    /// The store keeps no lock on it (Garage; a bucket without Object Lock).
    None,
}

/// A listing: objects (key, size) and, with a delimiter, the "folders".
#[derive(Debug, Default)]
pub struct Listing {
    pub objects: Vec<(String, u64)>,
    pub prefixes: Vec<String>,
}

/// One object being read.
pub struct Reading {
    pub body: ByteStream,
    /// Bytes in this answer.
    pub len_bytes: u64,
    /// `Content-Range` for a range request.
    pub content_range: Option<String>,
}

/// Longest listing read in one call (a prefix with more is not a hearing's).
pub const MAX_LIST_KEYS: usize = 2_000_000;

/// A bucket on a store.
#[derive(Clone)]
pub struct Store {
    client: Client,
    pub bucket: String,
    pub endpoint: String,
    sha256_header: bool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({} bucket {})", self.endpoint, self.bucket)
    }
}

impl Store {
    /// A client for `cfg`'s bucket. Nothing is sent yet.
    pub fn new(cfg: &Archive, creds: &Credentials) -> Result<Store, StoreError> {
        use aws_smithy_http_client::tls;
        let mut trust = tls::TrustStore::default();
        if let Some(ca) = &cfg.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                StoreError::new(
                    Fault::Other,
                    format!("reading archive.ca_file {}: {e}", ca.display()),
                )
            })?;
            trust = trust.with_pem_certificate(pem);
        }
        let ctx = tls::TlsContext::builder()
            .with_trust_store(trust)
            .build()
            .map_err(|e| StoreError::new(Fault::Other, format!("TLS settings: {e}")))?;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .tls_context(ctx)
            .build_https();
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(cfg.region.clone()))
            .endpoint_url(cfg.endpoint.trim_end_matches('/'))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                creds.access_key_id.clone(),
                creds.secret_access_key.clone(),
                None,
                None,
                "courtrec-config",
            ))
            // Buckets as paths (`http://host:3900/bucket/key`): what Garage, MinIO and
            // RGW answer without DNS for every bucket.
            .force_path_style(true)
            // Checksums only where we set them: the SDK's own (CRC32, trailers in
            // aws-chunked bodies) are not understood by every S3-compatible store.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            // One quick retry: a pooled connection the store closed (a restart) fails
            // once; longer outages are the caller's (the queue backs off itself).
            .retry_config(
                aws_sdk_s3::config::retry::RetryConfig::standard()
                    .with_max_attempts(2)
                    .with_initial_backoff(Duration::from_millis(200)),
            )
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .read_timeout(Duration::from_secs(30))
                    .operation_attempt_timeout(Duration::from_secs(120))
                    .build(),
            )
            .http_client(http)
            .build();
        Ok(Store {
            client: Client::from_conf(conf),
            bucket: cfg.bucket.clone(),
            endpoint: cfg.endpoint.clone(),
            sha256_header: cfg.checksum_sha256,
        })
    }

    /// See [`Store::check_bucket`] (`calls`).
    async fn check_bucket_io(&self) -> Result<(), StoreError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(e, "checking the bucket", &self.bucket))
    }

    /// See [`Store::head`] (`calls`).
    async fn head_io(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        let res = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await;
        match res {
            Ok(o) => Ok(Some(ObjectInfo {
                size_bytes: o.content_length().unwrap_or(0).max(0) as u64,
                sha256_b64: o
                    .checksum_sha256()
                    .map(|s| s.split('-').next().unwrap_or(s).to_string()),
                etag: o.e_tag().map(|t| t.trim_matches('"').to_string()),
                lock: match (o.object_lock_mode(), o.object_lock_retain_until_date()) {
                    (Some(ObjectLockMode::Compliance), Some(d)) => Lock::Compliance {
                        until_unix_s: d.secs(),
                    },
                    (Some(m), d) => Lock::Other {
                        mode: m.as_str().to_string(),
                        until_unix_s: d.map(|d| d.secs()).unwrap_or(0),
                    },
                    _ => Lock::None,
                },
            })),
            Err(e) => {
                let e = classify(e, "looking up", key);
                if e.fault == Fault::NotFound {
                    return Ok(None);
                }
                // A HEAD's error has no body, so no S3 code: a 403 may be a wrong key,
                // a key without rights, or a missing bucket. Ask in a way that answers.
                if matches!(e.fault, Fault::Credentials | Fault::Denied)
                    && e.detail.contains("no error code")
                    && let Err(why) = self.probe().await
                {
                    return Err(why);
                }
                Err(e)
            }
        }
    }

    /// A listing of one key: its error, unlike a HEAD's, says what is wrong.
    async fn probe(&self) -> Result<(), StoreError> {
        self.client
            .list_objects_v2()
            .bucket(&self.bucket)
            .max_keys(1)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(e, "listing the bucket", &self.bucket))
    }

    /// See [`Store::put`] (`calls`).
    async fn put_io(
        &self,
        key: &str,
        body: Vec<u8>,
        sha256: &[u8; 32],
        md5: &[u8; 16],
        retain_until_unix_s: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_md5(crate::archive::b64(md5))
            .body(ByteStream::from(body));
        if self.sha256_header {
            req = req.checksum_sha256(crate::archive::b64(sha256));
        }
        if let Some(until) = retain_until_unix_s {
            req = req
                .object_lock_mode(ObjectLockMode::Compliance)
                .object_lock_retain_until_date(DateTime::from_secs(until));
        }
        req.send()
            .await
            .map(|_| ())
            .map_err(|e| classify(e, "writing", key))
    }

    /// See [`Store::put_mutable`] (`calls`).
    async fn put_mutable_io(&self, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
        let md5 = crate::store::md5(&body);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .content_md5(crate::archive::b64(&md5))
            .body(ByteStream::from(body))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(e, "writing", key))
    }

    /// The store's retention on an object, as its HEAD tells (AWS and moto answer
    /// `x-amz-object-lock-mode` and `-retain-until-date` there; Garage nothing).
    pub async fn retention(&self, key: &str) -> Result<Lock, StoreError> {
        match self.head(key).await? {
            Some(info) => Ok(info.lock),
            None => Err(StoreError::new(
                Fault::NotFound,
                format!("asking the retention of {key}: no such object"),
            )),
        }
    }

    /// See [`Store::get`] (`calls`).
    async fn get_io(
        &self,
        key: &str,
        range: Option<(u64, Option<u64>)>,
    ) -> Result<Reading, StoreError> {
        let mut req = self.client.get_object().bucket(&self.bucket).key(key);
        if let Some((a, b)) = range {
            req = req.range(match b {
                Some(b) => format!("bytes={a}-{b}"),
                None => format!("bytes={a}-"),
            });
        }
        let o = req.send().await.map_err(|e| classify(e, "reading", key))?;
        Ok(Reading {
            len_bytes: o.content_length().unwrap_or(0).max(0) as u64,
            content_range: o.content_range().map(str::to_string),
            body: o.body,
        })
    }

    /// A whole small object, refused beyond `max_bytes` (metadata from an untrusted
    /// bucket must not exhaust memory).
    pub async fn get_bytes(&self, key: &str, max_bytes: u64) -> Result<Vec<u8>, StoreError> {
        let mut r = self.get(key, None).await?;
        if r.len_bytes > max_bytes {
            return Err(StoreError::new(
                Fault::Garbage,
                format!("{key} is {} bytes, more than any such file", r.len_bytes),
            ));
        }
        let mut out = Vec::with_capacity(r.len_bytes as usize);
        while let Some(chunk) = r.body.next().await {
            let chunk = chunk
                .map_err(|e| StoreError::new(Fault::Unreachable, format!("reading {key}: {e}")))?;
            out.extend_from_slice(&chunk);
            if out.len() as u64 > max_bytes {
                return Err(StoreError::new(
                    Fault::Garbage,
                    format!("{key} is larger than any such file"),
                ));
            }
        }
        Ok(out)
    }

    /// See [`Store::list`] (`calls`).
    async fn list_io(&self, prefix: &str, delimiter: Option<&str>) -> Result<Listing, StoreError> {
        let mut out = Listing::default();
        let mut token: Option<String> = None;
        loop {
            let mut req = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix);
            if let Some(d) = delimiter {
                req = req.delimiter(d);
            }
            if let Some(t) = &token {
                req = req.continuation_token(t);
            }
            let page = req
                .send()
                .await
                .map_err(|e| classify(e, "listing", prefix))?;
            for o in page.contents() {
                if let Some(k) = o.key() {
                    out.objects
                        .push((k.to_string(), o.size().unwrap_or(0).max(0) as u64));
                }
            }
            for p in page.common_prefixes() {
                if let Some(p) = p.prefix() {
                    out.prefixes.push(p.to_string());
                }
            }
            if out.objects.len() + out.prefixes.len() > MAX_LIST_KEYS {
                return Err(StoreError::new(
                    Fault::Garbage,
                    format!("{prefix} holds more than {MAX_LIST_KEYS} objects"),
                ));
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated().unwrap_or(false) => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }
}

/// MD5 of bytes (`Content-MD5`, and the ETag of a single-part upload).
pub fn md5(bytes: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(bytes).into()
}

/// SHA-256 of bytes.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}
