//! Exports through the API: only judges export a closed hearing, bad requests are
//! refused in plain words, the downloaded bundle verifies where it is unpacked, and
//! every export (the API's, or the CLI's on the box) is in the hearing's record.

mod common;
use common::*;
use serde_json::json;

#[test]
fn judges_export_through_the_api_and_the_download_verifies() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = Daemon::start(&data, None, "export-api");
    let clerk = d.login("clerk", "demo");
    let judge = d.login("judge", "demo");
    let h = d.ok(
        "POST",
        "/api/v1/hearings",
        &clerk,
        Some(json!({"case_number": "(2026)X0101民初77号", "title": "export", "visibility": "non_public"})),
    );
    let id = h["id"].as_str().unwrap().to_string();
    d.ok("POST", &format!("/api/v1/hearings/{id}/open"), &clerk, None);
    wait_recorded(&data, &id, 2.5);
    let path = format!("/api/v1/hearings/{id}/exports");
    let (st, v) = d.call("POST", &path, Some(&judge), Some(json!({})));
    assert_eq!(st, 409, "an open hearing is not exported yet: {v}");
    assert!(
        v["message"].as_str().unwrap().contains("close it first"),
        "{v}"
    );
    d.ok(
        "POST",
        &format!("/api/v1/hearings/{id}/close"),
        &clerk,
        None,
    );

    let (st, _) = d.call("POST", &path, Some(&clerk), Some(json!({})));
    assert_eq!(st, 403, "clerks do not export");
    let (st, v) = d.call(
        "POST",
        &path,
        Some(&judge),
        Some(json!({"tracks": ["cam7"]})),
    );
    assert_eq!(st, 422, "unknown track: {v}");
    let (st, v) = d.call(
        "POST",
        &path,
        Some(&judge),
        Some(json!({"from": "yesterday"})),
    );
    assert_eq!(st, 422, "bad time: {v}");
    let (st, _) = d.call("POST", &path, Some(&judge), Some(json!({"color": "red"})));
    assert_eq!(st, 422, "unknown field");

    let v = d.export(
        &id,
        &judge,
        json!({"from": "00:00:00", "to": "00:00:02", "tracks": ["composite"]}),
    );
    let url = v["download"].as_str().unwrap().to_string();
    assert!(v["summary"]["segments"].as_u64().unwrap() >= 1, "{v}");
    let (st, _) = d.download(&url, &clerk);
    assert_eq!(st, 403, "clerks do not download exports");
    let (st, _) = d.download("/api/v1/exports/..%2F..%2Fetc", &judge);
    assert_eq!(st, 404);
    let (st, tar) = d.download(&url, &judge);
    assert_eq!(st, 200);
    let tar_path = tmp.path().join("export.tar");
    std::fs::write(&tar_path, &tar).unwrap();
    let out = tmp.path().join("unpacked");
    std::fs::create_dir(&out).unwrap();
    let st = std::process::Command::new("tar")
        .arg("xf")
        .arg(&tar_path)
        .arg("-C")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let bundle = std::fs::read_dir(&out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let (code, text) = verify(&bundle, &[]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("clip of hearing") && text.contains("by judge"),
        "{text}"
    );

    // The export is in the hearing's record, with who did it; so is one made with the
    // CLI on the box while the daemon runs.
    let out = courtrec(&[
        "export",
        &id,
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        tmp.path().join("cli-bundle").to_str().unwrap(),
        "--as",
        "it-wang",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let h = d.ok("GET", &format!("/api/v1/hearings/{id}"), &judge, None);
    let ex = events_of(&h, &["export"]);
    assert_eq!(ex.len(), 2, "{h}");
    assert_eq!(ex[0]["actor"], "judge");
    assert_eq!(ex[1]["actor"], "it-wang");
}
