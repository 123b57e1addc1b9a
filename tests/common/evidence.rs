//! Helpers for the evidence tests (tamper and forgery corpora): a recorded hearing,
//! fresh copies to tamper with, the forger's tools (a rebuilt hash chain, re-signing)
//! and `courtrec verify` with its expected exit code and words.
#![allow(dead_code)]

use super::*;
use courtrec::archive::checkpoint::Checkpoint;
use courtrec::archive::merkle;
use courtrec::archive::signing::DeviceKey;
use serde_json::json;
use sha2::Digest;
use std::path::{Path, PathBuf};

pub const OK: i32 = 0;
pub const MODIFIED: i32 = 10;
pub const MISSING: i32 = 11;
pub const GAP: i32 = 12;
pub const UNSEALED: i32 = 13;
pub const BAD_SIGNATURE: i32 = 14;
pub const UNUSABLE: i32 = 15;
pub const UNEXPECTED: i32 = 16;

/// Records a hearing: open, mark, recess, resume, close. Returns its id. The pauses
/// are the hearing's shape (how long it records, a recess of 1.5 s: a real gap in
/// the media that a signed event must explain), not waits for something to happen:
/// the sources are live, so only real time makes media.
pub fn record(d: &Daemon, token: &str, case: &str, seconds: f64) -> String {
    let h = d.ok(
        "POST",
        "/api/v1/hearings",
        token,
        Some(json!({"case_number": case, "title": "integrity", "visibility": "public"})),
    );
    let id = h["id"].as_str().unwrap().to_string();
    let p = |a: &str| format!("/api/v1/hearings/{id}/{a}");
    d.ok("POST", &p("open"), token, None);
    sleep_s(seconds / 2.0);
    d.ok(
        "POST",
        &p("marks"),
        token,
        Some(json!({"text": "Exhibit 3 shown"})),
    );
    sleep_s(0.5);
    d.ok(
        "POST",
        &p("recess"),
        token,
        Some(json!({"reason": "recess", "note": "lunch"})),
    );
    sleep_s(1.5);
    d.ok("POST", &p("resume"), token, None);
    sleep_s(seconds / 2.0);
    d.ok("POST", &p("close"), token, None);
    id
}

pub fn sleep_s(s: f64) {
    std::thread::sleep(std::time::Duration::from_secs_f64(s));
}

/// A fresh copy of the hearing folder to tamper with.
pub fn fresh(src: &Path, work: &Path, name: &str) -> PathBuf {
    let dst = work.join(name);
    copy_dir(src, &dst);
    dst
}

pub fn seg(dir: &Path, track: &str, seq: u64) -> PathBuf {
    dir.join(format!("tracks/{track}/{seq:08}.ts"))
}

pub fn lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("manifest.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Writes manifest lines back with their `n` and `prev` fields recomputed, as a
/// careful forger would (so the hash chain alone looks intact).
pub fn write_rechained(dir: &Path, lines: &[String]) {
    let mut out = String::new();
    let mut prev = "0".repeat(64);
    for (i, l) in lines.iter().enumerate() {
        let rest = &l[l.find(",\"record\"").unwrap()..];
        let line = format!("{{\"n\":{i},\"prev\":\"{prev}\"{rest}");
        prev = hex::encode(sha2::Sha256::digest(line.as_bytes()));
        out.push_str(&line);
        out.push('\n');
    }
    std::fs::write(dir.join("manifest.jsonl"), out).unwrap();
}

/// Replaces every checkpoint with one signed by `key` over the manifest as it is now.
pub fn resign(dir: &Path, key: &DeviceKey, device_id: &str, hearing_id: &str) {
    let leaves: Vec<_> = lines(dir)
        .iter()
        .map(|l| merkle::leaf_hash(l.as_bytes()))
        .collect();
    let cps = dir.join("checkpoints");
    std::fs::remove_dir_all(&cps).unwrap();
    std::fs::create_dir(&cps).unwrap();
    let cp = Checkpoint {
        device_id: device_id.into(),
        hearing_id: hearing_id.into(),
        size: leaves.len() as u64,
        root: merkle::root(&leaves),
        time: "2026-11-27T10:00:00.000Z".into(),
        prev: 0,
        closed: true,
    };
    std::fs::write(
        cps.join(Checkpoint::file_name(cp.size)),
        key.sign_note(&cp.body()).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("device.vkey"),
        format!("{}\n", key.verifier().to_vkey()),
    )
    .unwrap();
}

pub fn expect(dir: &Path, extra: &[&str], code: i32, needle: &str, case: &str) -> String {
    let (got, text) = verify(dir, extra);
    assert_eq!(got, code, "{case}: exit code\n{text}");
    assert!(
        text.contains(needle),
        "{case}: the report should say {needle:?}\n{text}"
    );
    let last = text.lines().last().unwrap_or("");
    assert!(
        last.starts_with("RESULT: "),
        "{case}: ends with one RESULT line\n{text}"
    );
    text
}
