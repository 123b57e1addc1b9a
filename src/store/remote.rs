//! `courtrec verify s3://<bucket>/<prefix><hearing id>/ --config FILE`: checks a
//! hearing where the archive keeps it. Its small files (manifest chunks, checkpoints,
//! tokens, key) are downloaded into a temporary folder named after the hearing; its
//! segments are read from the store, each in full, and hashed as they stream (the
//! verifier asks through [`courtrec_archive::verify::Remote`]); the box's device log
//! beside it in the bucket is fetched too. Every object under the prefix is listed, so
//! an object added to the bucket is reported like a decoy in a folder.

use super::{Store, StoreError};
use crate::archive::fsread::{HashResult, ReadError};
use crate::archive::verify::{self, Progress, Remote};
use crate::store::layout;
use std::path::{Path, PathBuf};

/// Largest small object fetched (a manifest chunk of a long hearing is a few MB).
const MAX_SMALL_BYTES: u64 = 256 << 20;

/// `s3://bucket/prefix…` → (bucket, prefix ending in '/').
pub fn parse_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/')?;
    let prefix = if prefix.ends_with('/') {
        prefix.to_string()
    } else {
        format!("{prefix}/")
    };
    (!bucket.is_empty() && prefix.len() > 1 && !prefix.contains("//"))
        .then(|| (bucket.to_string(), prefix))
}

/// The hearing's segments in the store.
pub struct S3Remote {
    pub store: Store,
    pub prefix: String,
    pub objects: Vec<String>,
    pub rt: tokio::runtime::Runtime,
}

impl Remote for S3Remote {
    fn hash_all(&self, rels: &[String], progress: &dyn Progress) -> Vec<HashResult> {
        use futures_util::StreamExt;
        self.rt.block_on(async {
            futures_util::stream::iter(rels.iter().map(|rel| async move {
                let res = self.hash_one(rel).await;
                progress.advance(res.as_ref().map_or(0, |r| r.1), 1);
                res
            }))
            .buffered(4)
            .collect::<Vec<_>>()
            .await
        })
    }

    fn list(&self) -> Vec<String> {
        self.objects.clone()
    }
}

impl S3Remote {
    async fn hash_one(&self, rel: &str) -> HashResult {
        use sha2::Digest;
        let key = format!("{}{rel}", self.prefix);
        let mut r = match self.store.get(&key, None).await {
            Ok(r) => r,
            Err(e) if e.fault == super::Fault::NotFound => return Err(ReadError::NotFound),
            Err(e) => return Err(ReadError::Io(std::io::Error::other(e.to_string()))),
        };
        let mut h = sha2::Sha256::new();
        let mut len = 0u64;
        while let Some(chunk) = r.body.next().await {
            let chunk = chunk.map_err(|e| ReadError::Io(std::io::Error::other(e.to_string())))?;
            len += chunk.len() as u64;
            h.update(&chunk);
        }
        Ok((hex::encode(h.finalize()), len))
    }
}

/// Downloads every object under `prefix` except those `skip` names into `dir`
/// (relative paths checked), returning every object's relative path.
async fn fetch_small(
    store: &Store,
    prefix: &str,
    dir: &Path,
    skip: impl Fn(&str) -> bool,
) -> Result<Vec<String>, StoreError> {
    let listing = store.list(prefix, None).await?;
    let mut rels = Vec::new();
    for (key, _) in &listing.objects {
        let Some(rel) = key.strip_prefix(prefix) else {
            continue;
        };
        rels.push(rel.to_string());
        if skip(rel) || !crate::archive::safe_rel(rel) {
            continue;
        }
        let bytes = store.get_bytes(key, MAX_SMALL_BYTES).await?;
        let path = dir.join(rel);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).map_err(|e| {
                StoreError::new(
                    super::Fault::Other,
                    format!("creating {}: {e}", p.display()),
                )
            })?;
        }
        std::fs::write(&path, bytes).map_err(|e| {
            StoreError::new(
                super::Fault::Other,
                format!("writing {}: {e}", path.display()),
            )
        })?;
    }
    Ok(rels)
}

/// A temporary folder, removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Verifies the hearing at `url` in `store`'s bucket. Store failures are reported as
/// an unusable input (exit 15) naming what failed.
pub fn verify_s3(
    url: &str,
    store: Store,
    trust: &verify::Trust,
    progress: &dyn Progress,
) -> verify::Report {
    let unusable = |msg: String| {
        let mut r = verify::Report {
            path: url.to_string(),
            ..Default::default()
        };
        r.problem(verify::Problem::Unusable, None, msg);
        r.finish();
        r
    };
    let Some((_, prefix)) = parse_url(url) else {
        return unusable("not an s3://bucket/prefix/hearing-id/ address".into());
    };
    let id = prefix
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    if !verify::looks_like_hearing_id(&id) {
        return unusable(format!(
            "{id:?} is not a hearing id: give the hearing's own prefix (…/<hearing id>/)"
        ));
    }
    let box_prefix = prefix[..prefix.len() - id.len() - 1].to_string();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return unusable(format!("starting the runtime: {e}")),
    };
    let tmp = TempDir(std::env::temp_dir().join(format!(
        "courtrec-verify-{}",
        hex::encode(rand::random::<[u8; 8]>())
    )));
    let dir = tmp.0.join(&id);
    let devlog_dir = tmp.0.join(layout::DEVICE_LOG);
    let fetched = rt.block_on(async {
        let rels = fetch_small(&store, &prefix, &dir, |rel| rel.starts_with("tracks/")).await?;
        let dl = format!("{box_prefix}{}/", layout::DEVICE_LOG);
        fetch_small(&store, &dl, &devlog_dir, |_| false).await?;
        Ok::<_, StoreError>(rels)
    });
    let objects = match fetched {
        Ok(o) if o.is_empty() => return unusable(format!("nothing in the bucket under {prefix}")),
        Ok(o) => o,
        Err(e) => return unusable(format!("{}: {e}", e.plain())),
    };
    let device_log = join_chunks(&devlog_dir).then_some(devlog_dir);
    let remote = S3Remote {
        store,
        prefix,
        objects,
        rt,
    };
    let mut report = verify::verify_with(
        &dir,
        trust,
        &verify::Options {
            device_log,
            progress,
            remote: Some(&remote),
        },
    );
    report.path = url.to_string();
    report
}

/// A device log fetched from the bucket comes as chunks; the verifier reads it as one
/// `manifest.jsonl` (the chunks joined in order, each starting where the last ended).
fn join_chunks(dir: &Path) -> bool {
    let Ok(rd) = std::fs::read_dir(dir.join("manifest")) else {
        return false;
    };
    let mut chunks: Vec<(u64, u64, PathBuf)> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let (a, b) = layout::parse_chunk(&name)?;
            Some((a, b, e.path()))
        })
        .collect();
    chunks.sort();
    let mut out = Vec::new();
    let mut next = 0;
    for (a, b, p) in chunks {
        if a != next {
            return false;
        }
        match std::fs::read(&p) {
            Ok(b2) => out.extend_from_slice(&b2),
            Err(_) => return false,
        }
        next = b + 1;
    }
    let _ = std::fs::remove_dir_all(dir.join("manifest"));
    std::fs::write(dir.join("manifest.jsonl"), out).is_ok() && next > 0
}
