//! `[archive]`: the court's central archive on S3-compatible object storage (Garage,
//! Ceph RGW, MinIO, AWS S3). On a box it turns replication on; on the archive server
//! (`courtrec archive serve`) it says which bucket and prefix to serve. Off when absent.
//! See `docs/archive.md`.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Archive {
    /// The store's S3 endpoint, e.g. `http://10.0.0.5:3900`.
    pub endpoint: String,
    /// The store's region name (Garage: its `s3_region`, often `garage`).
    #[serde(default = "default_region")]
    pub region: String,
    pub bucket: String,
    /// Where this box's objects go (`court-a/room-7/`); on the archive server, what it
    /// serves (a parent such as `court-a/`, or empty for the whole bucket).
    #[serde(default)]
    pub prefix: String,
    /// An AWS-style credentials file (`aws_access_key_id`, `aws_secret_access_key`);
    /// without it, the `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` variables.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// A PEM file of the CA that signed the store's certificate (an `https://` store of
    /// the court's own PKI); the system's roots otherwise.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Upload bandwidth cap in Mbit/s (0: none).
    #[serde(default)]
    pub max_upload_mbit: f64,
    /// Uploads in flight at once (a store across a WAN needs a few to fill the line).
    #[serde(default = "default_parallel")]
    pub parallel_uploads: usize,
    /// The `replication_lagging` alarm is raised when the oldest object not yet
    /// confirmed by the store is older than this.
    #[serde(default = "default_lag_alarm_s")]
    pub lag_alarm_s: u64,
    /// Object Lock: every object is written in COMPLIANCE mode until its upload time
    /// plus this many days (0: no lock asked for). The store is asked afterwards
    /// whether the lock took.
    #[serde(default)]
    pub retention_days: u32,
    /// A box deletes a hearing's local files once all of it is replicated and
    /// verified, it is older than this, and it is not on hold. Absent: never.
    #[serde(default)]
    pub local_retention_days: Option<u32>,
    /// Free space below which replicated hearings are deleted oldest first even before
    /// their days are up (default: twice `[alarms] disk_free_min_bytes`).
    #[serde(default)]
    pub keep_free_bytes: Option<u64>,
    /// Send the SHA-256 of every object as `x-amz-checksum-sha256` (beside
    /// `Content-MD5`). Turn off only for an old store that refuses the header.
    #[serde(default = "yes")]
    pub checksum_sha256: bool,
    /// Seconds between two heartbeats (`<prefix>status.json`, read by the fleet page).
    #[serde(default = "default_heartbeat_s")]
    pub heartbeat_s: u64,
    /// Archive server: seconds between two scans of the bucket for new hearings.
    #[serde(default = "default_scan_s")]
    pub scan_s: u64,
    /// Where judges review the archive (shown on a box for hearings it no longer keeps).
    #[serde(default)]
    pub review_url: Option<String>,
}

fn default_region() -> String {
    "garage".into()
}
fn default_parallel() -> usize {
    4
}
fn default_lag_alarm_s() -> u64 {
    600
}
fn default_heartbeat_s() -> u64 {
    30
}
fn default_scan_s() -> u64 {
    10
}
fn yes() -> bool {
    true
}

impl Archive {
    /// Checks the values and resolves relative paths against `base`; the message names
    /// the field.
    pub fn validate(&mut self, base: Option<&Path>) -> Result<(), String> {
        if !(self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://")) {
            return Err(format!(
                "field `archive.endpoint`: {:?} is not an http:// or https:// URL",
                self.endpoint
            ));
        }
        // Bucket names as S3 allows them (3-63 of a-z, 0-9, '.', '-').
        let b = &self.bucket;
        if !(3..=63).contains(&b.len())
            || !b
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        {
            return Err(format!(
                "field `archive.bucket`: {b:?} is not a bucket name (3-63 lower-case letters, digits, '.' or '-')"
            ));
        }
        if !self.prefix.is_empty() {
            let p = &self.prefix;
            let ok = p.ends_with('/')
                && !p.starts_with('/')
                && p.trim_end_matches('/').split('/').all(|part| {
                    !part.is_empty()
                        && part != "."
                        && part != ".."
                        && part.bytes().all(|c| {
                            c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.'
                        })
                });
            if !ok {
                return Err(format!(
                    "field `archive.prefix`: {p:?} must be folders ending in '/', of letters, digits, '-', '_' or '.' (e.g. \"court-a/room-7/\")"
                ));
            }
        }
        if self.region.trim().is_empty() {
            return Err("field `archive.region`: must not be empty".into());
        }
        if !(self.max_upload_mbit >= 0.0 && self.max_upload_mbit.is_finite()) {
            return Err("field `archive.max_upload_mbit`: must be 0 (no cap) or more".into());
        }
        if !(1..=32).contains(&self.parallel_uploads) {
            return Err("field `archive.parallel_uploads`: must be 1 to 32".into());
        }
        if self.lag_alarm_s == 0 || self.heartbeat_s == 0 || self.scan_s == 0 {
            return Err(
                "fields `archive.lag_alarm_s`, `heartbeat_s` and `scan_s` must be at least 1"
                    .into(),
            );
        }
        if self.retention_days > 36_500 {
            return Err("field `archive.retention_days`: at most 36500 (100 years)".into());
        }
        for (key, p) in [
            ("credentials_file", self.credentials_file.as_mut()),
            ("ca_file", self.ca_file.as_mut()),
        ] {
            let Some(p) = p else { continue };
            if let Some(base) = base.filter(|b| !b.as_os_str().is_empty())
                && p.is_relative()
            {
                *p = base.join(&*p);
            }
            if !p.is_file() {
                return Err(format!(
                    "field `archive.{key}`: {} is not a readable file",
                    p.display()
                ));
            }
        }
        Ok(())
    }
}

/// Access key and secret for the store.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, secret hidden)", self.access_key_id)
    }
}

impl Archive {
    /// The credentials: from `credentials_file` (AWS's INI format, profile `default`
    /// or the only one), else from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`.
    pub fn credentials(&self) -> Result<Credentials, String> {
        if let Some(path) = &self.credentials_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            return parse_credentials(&text).ok_or_else(|| {
                format!(
                    "{}: no aws_access_key_id and aws_secret_access_key in it",
                    path.display()
                )
            });
        }
        match (
            std::env::var("AWS_ACCESS_KEY_ID"),
            std::env::var("AWS_SECRET_ACCESS_KEY"),
        ) {
            (Ok(id), Ok(secret)) if !id.is_empty() && !secret.is_empty() => Ok(Credentials {
                access_key_id: id,
                secret_access_key: secret,
            }),
            _ => Err("no credentials for the archive: set `archive.credentials_file`, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into()),
        }
    }
}

/// `[default]` (or the first profile) of an AWS credentials file; `key = value` lines.
pub fn parse_credentials(text: &str) -> Option<Credentials> {
    let mut profile = String::new();
    let mut found: Vec<(String, String, String)> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(p) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            profile = p.trim().to_string();
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            found.push((
                profile.clone(),
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_string(),
            ));
        }
    }
    let pick = |p: &str| {
        let get = |k: &str| {
            found
                .iter()
                .find(|(pp, kk, _)| pp == p && kk == k)
                .map(|(_, _, v)| v.clone())
        };
        Some(Credentials {
            access_key_id: get("aws_access_key_id")?,
            secret_access_key: get("aws_secret_access_key")?,
        })
    };
    pick("default").or_else(|| found.first().and_then(|(p, _, _)| pick(p)))
}

/// The `[archive]` section of any courtrec config (a box's or an archive server's),
/// for `courtrec verify s3://…`: the rest of the file is not looked at.
pub fn load_section(path: &Path) -> Result<Archive, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let v: toml::Table =
        toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))?;
    let section = v
        .get("archive")
        .ok_or_else(|| format!("{}: no [archive] section", path.display()))?;
    let mut a: Archive = section
        .clone()
        .try_into()
        .map_err(|e: toml::de::Error| format!("{}: [archive]: {}", path.display(), e.message()))?;
    a.validate(path.parent())
        .map_err(|m| format!("{}: {m}", path.display()))?;
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Archive {
        toml::from_str("endpoint = \"http://127.0.0.1:3900\"\nbucket = \"court-archive\"\nprefix = \"court-a/room-7/\"\n").unwrap()
    }

    #[test]
    fn defaults_and_checks() {
        let mut a = sample();
        assert_eq!(a.lag_alarm_s, 600);
        assert_eq!(a.region, "garage");
        a.validate(None).unwrap();
        for (field, bad) in [
            ("prefix", "court-a/room-7"),
            ("prefix", "/abs/"),
            ("prefix", "a/../b/"),
            ("bucket", "Court_Archive"),
            ("endpoint", "ftp://x"),
        ] {
            let mut a = sample();
            match field {
                "prefix" => a.prefix = bad.into(),
                "bucket" => a.bucket = bad.into(),
                _ => a.endpoint = bad.into(),
            }
            let e = a.validate(None).unwrap_err();
            assert!(e.contains(&format!("archive.{field}")), "{e}");
        }
    }

    #[test]
    fn credentials_file_profiles() {
        let c = parse_credentials(
            "# court\n[other]\naws_access_key_id = X\naws_secret_access_key = Y\n[default]\naws_access_key_id = GK1\naws_secret_access_key = \"s3cret\"\n",
        )
        .unwrap();
        assert_eq!(c.access_key_id, "GK1");
        assert_eq!(c.secret_access_key, "s3cret");
        let c =
            parse_credentials("[court]\naws_access_key_id=A\naws_secret_access_key=B\n").unwrap();
        assert_eq!(c.access_key_id, "A");
        assert!(parse_credentials("[default]\naws_access_key_id=A\n").is_none());
        assert!(!format!("{c:?}").contains('B'));
    }
}
