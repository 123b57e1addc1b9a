//! Failing writes at every append site, injected in the real daemon through the test
//! hook `COURTREC_FAULTS` (`archive::fault`): the manifest (a write cut half-way, a
//! failed fdatasync), checkpoints, the device log, the index and the audit log. Nothing
//! acknowledged is lost, every failure is alarmed while it lasts, and the hearing
//! verifies afterwards; with appends failing for good, a crash and a restart without
//! the fault bring every recorded segment back.

mod common;
use common::evidence::*;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// Samples the alarm keys for `secs`, returning every key seen.
fn alarms_during(d: &Daemon, token: &str, secs: f64) -> std::collections::BTreeSet<String> {
    let mut seen = std::collections::BTreeSet::new();
    let end = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        seen.extend(alarm_keys(d, token));
        std::thread::sleep(Duration::from_millis(150));
    }
    seen
}

fn create(d: &Daemon, clerk: &str, case: &str) -> String {
    let h = d.ok(
        "POST",
        "/api/v1/hearings",
        clerk,
        Some(json!({"case_number": case, "title": "faults", "visibility": "public"})),
    );
    h["id"].as_str().unwrap().to_string()
}

#[test]
fn failed_writes_at_every_site_lose_nothing_acknowledged() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Manifest appends 1 and 2 are the `created` and `open` events; from the 3rd on,
    // segments (nine tracks, one each per 2 s) until the mark, 7 s after the open.
    let faults =
        "manifest.sync@12,manifest.write@22,checkpoint.write@6,devlog.write@7,index.write@14x40";
    let mut d = Daemon::start_env(&data, None, "faults", &[("COURTREC_FAULTS", faults)]);
    let clerk = d.login("clerk", "demo");
    let judge = d.login("judge", "demo");
    let admin = d.login("admin", "demo");
    let id = create(&d, &clerk, "(2026)X0101民初91号");
    let p = |a: &str| format!("/api/v1/hearings/{id}/{a}");
    d.ok("POST", &p("open"), &clerk, None);
    let seen = alarms_during(&d, &admin, 7.0);
    assert!(
        seen.iter().any(|k| k.starts_with("recording_failed")),
        "a failed segment append is alarmed: {seen:?}"
    );
    assert!(seen.contains("index_failed"), "{seen:?}");
    d.ok(
        "POST",
        &p("marks"),
        &clerk,
        Some(json!({"text": "after the faults"})),
    );
    sleep_s(2.5);
    d.ok("POST", &p("close"), &clerk, None);
    assert!(
        wait_for(Duration::from_secs(10), || !alarm_keys(&d, &admin)
            .iter()
            .any(|k| k.starts_with("recording_failed")
                || k == "index_failed"
                || k == "signing_failed")),
        "the alarms clear once writes succeed again: {:?}",
        alarm_keys(&d, &admin)
    );
    // The index was repaired from the log: it has every segment.
    let h = d.ok("GET", &format!("/api/v1/hearings/{id}"), &judge, None);
    let recs = manifest(&data, &id);
    for t in h["tracks"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        let listed = segments(&recs, name).len() as u64;
        assert_eq!(t["segments"].as_u64().unwrap(), listed, "{name}");
        let on_disk = files(&data, &id, name).len() as u64;
        assert_eq!(listed, on_disk, "{name}: every segment written is listed");
    }
    d.stop();
    let hearing = data.join("hearings").join(&id);
    expect(&hearing, &[], OK, "all present", "after transient faults");
    expect(
        &data.join("audit"),
        &[],
        OK,
        "all present",
        "audit after a failed append",
    );
    expect(
        &data.join("device-log"),
        &[],
        OK,
        "all present",
        "device log after a failed append",
    );
    let out = courtrec(&["check", "--data-dir", data.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Appends failing for good from the 6th on: the writers keep their sealed segments,
    // the clerk is told, the process dies; restarted without the fault, every segment
    // comes back and the hearing resumes.
    let data = tmp.path().join("data2");
    let mut d = Daemon::start_env(
        &data,
        None,
        "faults-sticky",
        &[("COURTREC_FAULTS", "manifest.sync@6+")],
    );
    let clerk = d.login("clerk", "demo");
    let admin = d.login("admin", "demo");
    let id = create(&d, &clerk, "(2026)X0101民初92号");
    let p = |a: &str| format!("/api/v1/hearings/{id}/{a}");
    d.ok("POST", &p("open"), &clerk, None);
    sleep_s(7.0);
    assert!(
        alarm_keys(&d, &admin)
            .iter()
            .any(|k| k.starts_with("recording_failed"))
    );
    let (st, v) = d.call(
        "POST",
        &p("marks"),
        Some(&clerk),
        Some(json!({"text": "lost?"})),
    );
    assert!(
        st >= 500,
        "an event that cannot be written is not acknowledged: {st} {v}"
    );
    let msg = v["message"].as_str().unwrap();
    assert!(
        !msg.contains(data.to_str().unwrap()) && msg.contains("reference"),
        "no file path of the box reaches the caller, a reference to its log does: {msg}"
    );
    let before: usize = ["cam1", "mic1", "composite"]
        .iter()
        .map(|t| files(&data, &id, t).len())
        .sum();
    d.kill9();
    d.env.clear();
    d.restart();
    let clerk = d.login("clerk", "demo");
    sleep_s(2.0);
    d.ok("POST", &p("close"), &clerk, None);
    d.stop();
    let recs = manifest(&data, &id);
    let listed: usize = ["cam1", "mic1", "composite"]
        .iter()
        .map(|t| segments(&recs, t).len())
        .sum();
    assert!(
        listed >= before,
        "every segment on disk before the crash is listed: {listed} < {before}"
    );
    assert!(
        recs.iter().all(|r| r["record"]["text"] != "lost?"),
        "the refused mark was never written"
    );
    let text = expect(
        &data.join("hearings").join(&id),
        &[],
        OK,
        "all present",
        "after sticky faults and a crash",
    );
    assert!(text.contains("recovery"), "{text}");

    // The audit log cannot be written: the access is refused (503), never served
    // unaudited; the next one is recorded, and the chain is whole.
    let data = tmp.path().join("data3");
    let d = Daemon::start_env(
        &data,
        None,
        "faults-audit",
        &[("COURTREC_FAULTS", "audit.sync@1")],
    );
    let (st, v) = d.call(
        "POST",
        "/api/v1/login",
        None,
        Some(json!({"username": "admin", "password": "demo"})),
    );
    assert_eq!(st, 503, "a login that cannot be audited is refused: {v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("audit log cannot be written"),
        "{v}"
    );
    let admin = d.login("admin", "demo");
    let a = d.ok("GET", "/api/v1/audit", &admin, None);
    assert_eq!(a["chain_intact"], true, "{a}");
    let logins: Vec<_> = a["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "login")
        .collect();
    assert_eq!(logins.len(), 1, "only the served login is in the log: {a}");
}
