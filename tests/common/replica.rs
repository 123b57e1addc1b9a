//! Helpers of the replication tests: a one-camera courtroom with an `[archive]`
//! section, the hearing's and the box's status, what the bucket holds, and
//! `courtrec verify s3://…`.

use super::garage::Bucket;
use super::{Daemon, bin, users_toml, wait_for};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub fn config(dir: &Path, archive: &str) -> PathBuf {
    let cfg = dir.join("room-7.toml");
    std::fs::write(
        &cfg,
        format!(
            "[courtroom]\nid = \"room-7\"\nname = \"Courtroom 7\"\ncourt = \"Court A\"\n\
             [[camera]]\nid = \"cam1\"\nkind = \"test\"\nrole = \"judge\"\n\
             [[microphone]]\nid = \"mic1\"\nkind = \"test\"\nrole = \"judge\"\n\
             {archive}\n{}",
            users_toml()
        ),
    )
    .unwrap();
    cfg
}

pub fn hearing(d: &Daemon, token: &str, case: &str) -> String {
    let h = d.ok(
        "POST",
        "/api/v1/hearings",
        token,
        Some(json!({"case_number": case, "title": "archive", "visibility": "public"})),
    );
    h["id"].as_str().unwrap().to_string()
}

pub fn get(d: &Daemon, token: &str, id: &str) -> Value {
    d.ok("GET", &format!("/api/v1/hearings/{id}"), token, None)
}

pub fn status(d: &Daemon, token: &str) -> Value {
    d.ok("GET", "/api/v1/status", token, None)
}

/// Waits for two more local retention passes: the second one began after this call,
/// so whatever it keeps, retention has decided to keep.
pub fn two_retention_passes(d: &Daemon, token: &str) {
    let passes = || {
        status(d, token)["retention"]["passes"]
            .as_u64()
            .unwrap_or(0)
    };
    let from = passes();
    assert!(
        wait_for(Duration::from_secs(60), || passes() >= from + 2),
        "no retention pass: {}",
        status(d, token)
    );
}

/// Every local file of a hearing is in the bucket with its size.
pub fn all_in_bucket(bucket: &Bucket, prefix: &str, folder: &Path) -> Result<(), String> {
    let held: std::collections::HashMap<String, u64> =
        bucket.list_strict(prefix).into_iter().collect();
    for e in walk(folder) {
        let rel = e
            .strip_prefix(folder)
            .unwrap()
            .to_string_lossy()
            .to_string();
        if rel == "manifest.jsonl" || rel.ends_with(".tmp") {
            continue;
        }
        let size = std::fs::metadata(&e).unwrap().len();
        if held.get(&format!("{prefix}{rel}")) != Some(&size) {
            return Err(format!(
                "{rel} ({size} bytes) is not in the bucket as it is here"
            ));
        }
    }
    Ok(())
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

pub fn verify_s3(url: &str, cfg: &Path) -> (i32, String) {
    let out = std::process::Command::new(bin())
        .args(["verify", url, "--config"])
        .arg(cfg)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("panicked"), "{text}");
    (out.status.code().unwrap_or(-1), text)
}
