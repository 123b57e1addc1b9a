//! The clerk's console in headless Chromium (tests/browser/console.mjs, driven with
//! playwright-core): a whole hearing clicked through, a camera pulled out, screenshots
//! of each state in both languages (test-artifacts/console/); then the hearing's
//! events are checked against what was clicked, and the server refuses what the
//! console did not offer.

mod common;
use common::*;
use serde_json::Value;
use std::process::Command;

#[test]
fn a_clerk_runs_a_whole_hearing_from_the_console() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let video = tmp.path().join("witness.mp4");
    make_video(&video, 3, "640x360", 15);
    let cfg = tmp.path().join("courtroom.toml");
    std::fs::write(
        &cfg,
        format!(
            "[courtroom]\nid = \"t1\"\nname = \"第一法庭 Courtroom 1\"\n\
             [alarms]\nsource_lost_ms = 1000\n\
             [[camera]]\nid = \"cam1\"\nkind = \"test\"\nrole = \"judge\"\nlabel = \"Judge\"\n\
             [[camera]]\nid = \"cam2\"\nkind = \"file\"\nrole = \"witness\"\nlabel = \"Witness\"\npath = \"witness.mp4\"\n\
             [[microphone]]\nid = \"mic1\"\nkind = \"test\"\nrole = \"judge\"\nlabel = \"Judge\"\n\
             [[microphone]]\nid = \"mic2\"\nkind = \"test\"\nrole = \"witness\"\nlabel = \"Witness\"\nwave = \"noise\"\n{}",
            users_toml()
        ),
    )
    .unwrap();
    let d = Daemon::start(&tmp.path().join("data"), Some(&cfg), "console");
    let case = "(2026)X0101民初321号";
    let shots = artifacts("console");
    let out = Command::new("node")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/browser/console.mjs"
        ))
        .env("BASE_URL", &d.base)
        .env("SHOTS", &shots)
        .env("CAMERA_FILE", &video)
        .env("CASE_NUMBER", case)
        .output()
        .expect("run node (scripts/test installs it and the browser test's packages)");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "browser test failed:\n{log}");
    let result: Value = serde_json::from_str(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or(""),
    )
    .unwrap_or_else(|e| panic!("no result from the browser test ({e}):\n{log}"));
    let id = result["hearing_id"].as_str().unwrap().to_string();

    // What was clicked is what the hearing's record says.
    let clerk = d.login("clerk", "demo");
    let h = d.ok("GET", &format!("/api/v1/hearings/{id}"), &clerk, None);
    assert_eq!(h["case_number"], case);
    assert_eq!(h["state"], "closed");
    let clicked: Vec<&str> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .filter(|k| !k.starts_with("device_"))
        .collect();
    assert_eq!(
        clicked,
        [
            "open",
            "livestream_approved",
            "livestream_cut",
            "livestream_restored",
            "mark",
            "recess",
            "resume",
            "close"
        ],
        "{h}"
    );
    let ev = events_of(&h, &["mark", "recess"]);
    assert_eq!(ev[0]["text"], "Exhibit 3 shown");
    assert_eq!(ev[1]["reason"], "non_public_evidence");
    assert_eq!(ev[1]["text"], "trade secret exhibit");
    assert!(
        events_of(&h, &["device_fault"])
            .iter()
            .any(|e| e["source"] == "cam2"),
        "the pulled camera is in the record: {h}"
    );
    for e in h["events"].as_array().unwrap() {
        let k = e["kind"].as_str().unwrap();
        if [
            "open",
            "mark",
            "recess",
            "resume",
            "close",
            "livestream_cut",
        ]
        .contains(&k)
        {
            assert_eq!(e["actor"], "clerk", "{k}");
        }
    }
    // The server refuses what the console no longer offered.
    for action in ["open", "recess", "resume", "close"] {
        let (st, _) = d.call(
            "POST",
            &format!("/api/v1/hearings/{id}/{action}"),
            Some(&clerk),
            Some(serde_json::json!({"reason": "recess"})),
        );
        assert!(st == 409 || st == 422, "{action} on a closed hearing: {st}");
    }
    let judge = d.login("judge", "demo");
    let (st, _) = d.call(
        "POST",
        "/api/v1/hearings",
        Some(&judge),
        Some(serde_json::json!({"case_number": "x", "title": "y", "visibility": "public"})),
    );
    assert_eq!(
        st, 403,
        "the console shows a judge no create form; the server refuses too"
    );
    for name in [
        "03-scheduled",
        "04-recording",
        "06-recess",
        "07-camera-lost",
        "09-closed",
    ] {
        for lang in ["zh", "en"] {
            assert!(
                shots.join(format!("{name}-{lang}.png")).is_file(),
                "{name}-{lang}"
            );
        }
    }
}
