//! Replication to the court's archive, against a real Garage on loopback: hearings
//! reach the bucket as they record, are verified there (`courtrec verify s3://…`, and
//! the prefix downloaded as it is), and leave the box only when safe (never while on
//! hold, never unreplicated); the store down for a minute and the box killed with
//! uploads pending lose nothing; bad stores give clear errors and alarms.

mod common;
use common::garage::{BUCKET, Bucket, Garage};
use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn config(dir: &Path, archive: &str) -> PathBuf {
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

fn hearing(d: &Daemon, token: &str, case: &str) -> String {
    let h = d.ok(
        "POST",
        "/api/v1/hearings",
        token,
        Some(json!({"case_number": case, "title": "archive", "visibility": "public"})),
    );
    h["id"].as_str().unwrap().to_string()
}

fn get(d: &Daemon, token: &str, id: &str) -> Value {
    d.ok("GET", &format!("/api/v1/hearings/{id}"), token, None)
}

fn status(d: &Daemon, token: &str) -> Value {
    d.ok("GET", "/api/v1/status", token, None)
}

/// Waits for two more local retention passes: the second one began after this call,
/// so whatever it keeps, retention has decided to keep.
fn two_retention_passes(d: &Daemon, token: &str) {
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
fn all_in_bucket(bucket: &Bucket, prefix: &str, folder: &Path) -> Result<(), String> {
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

fn walk(dir: &Path) -> Vec<PathBuf> {
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

fn verify_s3(url: &str, cfg: &Path) -> (i32, String) {
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

#[test]
fn hearings_reach_the_archive_as_they_record_and_leave_the_box_only_when_safe() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let g = Garage::single(&tmp.path().join("garage"));
    let bucket = Bucket::new(&g.endpoint());
    let prefix = "court-a/room-7/";
    let cfg = config(
        tmp.path(),
        &g.archive_toml(
            tmp.path(),
            prefix,
            "local_retention_days = 0\nheartbeat_s = 1\n",
        ),
    );
    let data = tmp.path().join("data");
    let d = Daemon::start(&data, Some(&cfg), "replication");
    let clerk = d.login("clerk", "demo");
    let admin = d.login("admin", "demo");

    // A hearing under legal hold: in the archive as it records, kept on the box.
    let held = hearing(&d, &clerk, "(2026)A0107民初1号");
    d.ok(
        "POST",
        &format!("/api/v1/hearings/{held}/open"),
        &clerk,
        None,
    );
    let (st, body) = d.call(
        "POST",
        &format!("/api/v1/hearings/{held}/hold"),
        Some(&clerk),
        Some(json!({"reason": "appeal"})),
    );
    assert_eq!(st, 403, "only admins hold hearings: {body}");
    let h = d.ok(
        "POST",
        &format!("/api/v1/hearings/{held}/hold"),
        &admin,
        Some(json!({"reason": "appeal filed"})),
    );
    assert_eq!(h["by"], "admin");
    let hp = format!("{prefix}{held}/");
    assert!(
        wait_for(Duration::from_secs(30), || bucket
            .list(&format!("{hp}tracks/"))
            .len()
            >= 2),
        "segments reach the bucket while the hearing records"
    );
    assert_eq!(get(&d, &clerk, &held)["state"], "open");
    assert!(
        wait_for(Duration::from_secs(40), || bucket
            .list(&format!("{hp}manifest/"))
            .len()
            >= 2),
        "manifest chunks follow each checkpoint while it records"
    );
    d.ok(
        "POST",
        &format!("/api/v1/hearings/{held}/close"),
        &clerk,
        None,
    );

    // A hearing recorded and closed: verified in the archive, then gone from the box.
    let gone = common::evidence::record(&d, &clerk, "(2026)A0107民初2号", 6.0);
    let gp = format!("{prefix}{gone}/");
    let folder = data.join("hearings").join(&gone);
    // The closed folder as the box kept it, to compare with the archive's copy (taken
    // at once: retention may delete it as soon as the store has confirmed it all).
    let copy = tmp.path().join("box-copy");
    if let Err(e) = try_copy_dir(&folder, &copy) {
        panic!("the closed hearing's folder was gone before it could be copied: {e}");
    }
    assert!(
        wait_for(Duration::from_secs(60), || {
            get(&d, &clerk, &gone)["released"].is_object()
        }),
        "a replicated and verified hearing leaves the box: {}",
        get(&d, &clerk, &gone)
    );
    assert!(!folder.exists(), "its folder is deleted");
    let v = get(&d, &clerk, &gone);
    assert_eq!(
        v["released"]["to"],
        format!("s3://{BUCKET}/{gp}"),
        "the box says where it lives on: {v}"
    );
    let (st, body) = d.call(
        "GET",
        &format!("/api/v1/hearings/{gone}/tracks/cam1/index.m3u8"),
        Some(&admin),
        None,
    );
    assert_eq!(st, 404, "{body}");
    assert!(body.to_string().contains("archive"), "{body}");
    // The device log says it was released, signed.
    let (code, text) = verify(&data.join("device-log"), &[]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!("deleted its copy of hearing {gone}")),
        "{text}"
    );

    // In the archive: verified in place, and as a downloaded folder, byte for byte
    // what the box had.
    let url = format!("s3://{BUCKET}/{gp}");
    let (code, text) = verify_s3(&url, &cfg);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("4 segment(s)") || text.contains("segment(s) 1.."),
        "{text}"
    );
    let down = tmp.path().join("downloaded").join(&gone);
    bucket.download(&gp, &down);
    let (code, text) = verify(&down, &[]);
    assert_eq!(code, 0, "the prefix as it is verifies: {text}");
    for f in walk(&copy) {
        let rel = f.strip_prefix(&copy).unwrap();
        if rel.starts_with("tracks") || rel.starts_with("checkpoints") {
            assert_eq!(
                std::fs::read(&f).unwrap(),
                std::fs::read(down.join(rel)).unwrap(),
                "{}",
                rel.display()
            );
        }
    }

    // The held hearing stays while held, is verified, and goes once the hold is lifted.
    two_retention_passes(&d, &clerk);
    let v = get(&d, &clerk, &held);
    assert_eq!(v["replication"]["state"], "verified", "{v}");
    assert_eq!(v["hold"]["reason"], "appeal filed");
    assert!(data.join("hearings").join(&held).exists(), "held: kept");
    let (st, _) = d.call(
        "DELETE",
        &format!("/api/v1/hearings/{held}/hold"),
        Some(&admin),
        None,
    );
    assert_eq!(st, 204);
    assert!(
        wait_for(Duration::from_secs(40), || !data
            .join("hearings")
            .join(&held)
            .exists()),
        "released after the hold is lifted"
    );
    let audit = d.ok(
        "GET",
        &format!("/api/v1/audit?hearing={held}"),
        &admin,
        None,
    );
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"hold") && actions.contains(&"hold_lifted"),
        "{actions:?}"
    );

    // The box's logs and heartbeat are in the bucket too.
    assert!(
        !bucket
            .list(&format!("{prefix}device-log/manifest/"))
            .is_empty()
    );
    assert!(!bucket.list(&format!("{prefix}audit/chunks/")).is_empty());
    let hb: Value = serde_json::from_slice(&bucket.get(&format!("{prefix}status.json"))).unwrap();
    assert_eq!(hb["courtroom_id"], "room-7", "{hb}");
    assert_eq!(hb["recording"], "idle", "{hb}");
    let s = status(&d, &admin);
    assert_eq!(s["replication"]["state"], "ok", "{s}");
    assert_eq!(s["replication"]["objects_pending"], 0, "{s}");
    assert_eq!(s["replication"]["lock"], "off", "{s}");

    // Altered in the bucket: verify names the object. Objects that are not the
    // hearing's are reported as such.
    let seg = bucket
        .list(&format!("{gp}tracks/cam1/"))
        .into_iter()
        .nth(1)
        .unwrap()
        .0;
    let mut bytes = bucket.get(&seg);
    bytes[1000] ^= 0x55;
    bucket.overwrite(&seg, &bytes);
    let (code, text) = verify_s3(&url, &cfg);
    assert_eq!(code, 10, "{text}");
    assert!(text.contains(seg.strip_prefix(&gp).unwrap()), "{text}");
    bucket.overwrite(&format!("{gp}tracks/cam1/notes.txt"), b"not evidence");
    let (code, text) = verify_s3(&url, &cfg);
    assert!(text.contains("notes.txt"), "{code} {text}");
    let (code, text) = verify_s3(&format!("s3://{BUCKET}/{prefix}device-log/"), &cfg);
    assert_eq!(code, 15, "not a hearing: {text}");
    let (code, text) = verify_s3(&format!("s3://{BUCKET}/{prefix}"), &cfg);
    assert_eq!(code, 15, "{text}");
    let log = std::fs::read_to_string(&d.log).unwrap();
    assert!(!log.contains("panicked"), "{log}");

    // After a restart the released hearings are not "damaged", `courtrec check` finds
    // nothing wrong, and `--repair` keeps their records.
    let mut d = d;
    d.stop();
    let out = courtrec(&[
        "check",
        "--data-dir",
        data.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && !text.contains("PROBLEM"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = courtrec(&[
        "check",
        "--repair",
        "--data-dir",
        data.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    d.restart();
    let clerk = d.login("clerk", "demo");
    // What the hearing_* alarms are raised from, read directly (start-up has checked
    // every hearing before the API answers): nothing damaged, nothing altered.
    let admin = d.login("admin", "demo");
    let metrics = reqwest::blocking::Client::new()
        .get(format!("{}/metrics", d.base))
        .bearer_auth(&admin)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "courtrec_hearings_damaged 0.0" || l == "courtrec_hearings_damaged 0"),
        "{metrics}"
    );
    let keys = alarm_keys(&d, &clerk);
    assert!(!keys.iter().any(|k| k.starts_with("hearing_")), "{keys:?}");
    assert!(
        get(&d, &clerk, &gone)["released"].is_object(),
        "kept in the index"
    );
    d.stop();
}

/// The store is stopped for a minute while a hearing records, and the box is killed
/// with uploads pending: afterwards every object is in the archive, once.
#[test]
fn a_store_outage_and_a_killed_box_lose_nothing() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut g = Garage::single(&tmp.path().join("garage"));
    let bucket = Bucket::new(&g.endpoint());
    let prefix = "court-a/room-7/";
    let cfg = config(
        tmp.path(),
        &g.archive_toml(tmp.path(), prefix, "lag_alarm_s = 15\n"),
    );
    let data = tmp.path().join("data");
    let mut d = Daemon::start_env(
        &data,
        Some(&cfg),
        "replication-outage",
        &[("RUST_LOG", "info,courtrec::replication=debug")],
    );
    let clerk = d.login("clerk", "demo");
    let id = hearing(&d, &clerk, "(2026)A0107民初3号");
    d.ok("POST", &format!("/api/v1/hearings/{id}/open"), &clerk, None);
    let hp = format!("{prefix}{id}/");
    assert!(wait_for(Duration::from_secs(30), || !bucket
        .list(&format!("{hp}tracks/"))
        .is_empty()));

    g.nodes[0].stop();
    let down_at = Instant::now();
    assert!(
        wait_for(Duration::from_secs(40), || {
            let s = status(&d, &clerk);
            alarm_keys(&d, &clerk).contains(&"replication_lagging".to_string())
                && s["replication"]["state"] == "failing"
        }),
        "the lag alarm is raised while the store is down: {}",
        status(&d, &clerk)
    );
    let s = status(&d, &clerk);
    assert!(
        s["replication"]["objects_pending"].as_u64().unwrap() > 0,
        "{s}"
    );
    assert!(
        s["replication"]["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot be reached"),
        "{s}"
    );
    let a = s["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["code"] == "replication_lagging")
        .unwrap()
        .clone();
    assert!(
        a["message"]
            .as_str()
            .unwrap()
            .contains("not reaching the court's archive"),
        "{a}"
    );
    // Killed with uploads pending; restarted while the store is still down.
    d.kill9();
    d.restart();
    let clerk = d.login("clerk", "demo");
    // The outage itself lasts 60 s (the scenario, not a wait for a condition).
    let rest = Duration::from_secs(60).saturating_sub(down_at.elapsed());
    std::thread::sleep(rest);
    g.nodes[0].start();
    assert!(
        wait_for(Duration::from_secs(90), || {
            let s = status(&d, &clerk);
            s["replication"]["objects_pending"] == 0
                && !alarm_keys(&d, &clerk).contains(&"replication_lagging".to_string())
        }),
        "the queue drains and the alarm clears: {}",
        status(&d, &clerk)
    );
    d.ok(
        "POST",
        &format!("/api/v1/hearings/{id}/close"),
        &clerk,
        None,
    );
    assert!(
        wait_for(
            Duration::from_secs(60),
            || get(&d, &clerk, &id)["replication"]["state"] == "verified"
        ),
        "{}",
        get(&d, &clerk, &id)
    );
    let folder = data.join("hearings").join(&id);
    all_in_bucket(&bucket, &hp, &folder).unwrap();
    // Nothing in the bucket that the box does not have (nothing twice under other
    // names), apart from the manifest's chunks.
    for (k, _) in bucket.list(&hp) {
        let rel = k.strip_prefix(&hp).unwrap();
        assert!(
            rel.starts_with("manifest/") || folder.join(rel).is_file(),
            "{rel} is in the bucket but not on the box"
        );
    }
    let (code, text) = verify_s3(&format!("s3://{BUCKET}/{hp}"), &cfg);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("recovery") || text.contains("restart"),
        "{text}"
    );
}

/// Wrong key, missing bucket, a server answering 500 or garbage: the box records,
/// says what is wrong in plain words, and deletes nothing.
#[test]
fn bad_stores_are_named_and_nothing_unreplicated_is_deleted() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let g = Garage::single(&tmp.path().join("garage"));
    let data = tmp.path().join("data");
    let creds = g.credentials_file(tmp.path());
    let bad_creds = tmp.path().join("bad-creds");
    std::fs::write(
        &bad_creds,
        format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            common::garage::KEY_ID,
            "0".repeat(64)
        ),
    )
    .unwrap();
    let s500 = fake_http(
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    let junk = fake_http(b"\x16\x03\x01 garbage\r\n\r\n");
    let cases: Vec<(&str, String, &[&str])> = vec![
        (
            "wrong key",
            format!(
                "endpoint = \"{}\"\nbucket = \"{BUCKET}\"\ncredentials_file = \"{}\"\n",
                g.endpoint(),
                bad_creds.display()
            ),
            &["credentials"],
        ),
        (
            "no bucket",
            format!(
                "endpoint = \"{}\"\nbucket = \"no-such-bucket\"\ncredentials_file = \"{}\"\n",
                g.endpoint(),
                creds.display()
            ),
            &["no_bucket", "denied"],
        ),
        (
            "500",
            format!(
                "endpoint = \"http://127.0.0.1:{s500}\"\nbucket = \"{BUCKET}\"\ncredentials_file = \"{}\"\n",
                creds.display()
            ),
            &["server"],
        ),
        (
            "garbage",
            format!(
                "endpoint = \"http://127.0.0.1:{junk}\"\nbucket = \"{BUCKET}\"\ncredentials_file = \"{}\"\n",
                creds.display()
            ),
            &["garbage", "unreachable"],
        ),
    ];
    let mut d: Option<Daemon> = None;
    let mut ids = Vec::new();
    for (name, archive, faults) in cases {
        let cfg = config(
            tmp.path(),
            &format!(
                "[archive]\n{archive}prefix = \"court-a/room-7/\"\nkeep_free_bytes = 1000000000000000000\nlag_alarm_s = 3\n"
            ),
        );
        match d.as_mut() {
            None => d = Some(Daemon::start(&data, Some(&cfg), "replication-bad")),
            Some(d) => {
                d.stop();
                d.restart();
            }
        }
        let d = d.as_ref().unwrap();
        let clerk = d.login("clerk", "demo");
        let id = common::evidence::record(d, &clerk, &format!("(2026)A0107民初{name}号"), 3.0);
        ids.push(id.clone());
        assert!(
            wait_for(Duration::from_secs(30), || {
                let s = status(d, &clerk)["replication"].clone();
                s["state"] == "failing"
                    && faults.iter().any(|f| s["fault"] == *f)
                    && alarm_keys(d, &clerk).contains(&"replication_lagging".to_string())
            }),
            "{name}: {}",
            status(d, &clerk)
        );
        let s = status(d, &clerk);
        let err = s["replication"]["last_error"].as_str().unwrap_or("");
        assert!(
            err.contains("archive") || err.contains("S3"),
            "{name}: {err}"
        );
        if name == "wrong key" || name == "no bucket" {
            // A setting to fix: its own alarm at once, in plain words.
            assert!(
                alarm_keys(d, &clerk).contains(&"replication_failing".to_string()),
                "{name}: {s}"
            );
        }
        let v = get(d, &clerk, &id);
        assert_ne!(v["replication"]["state"], "verified", "{v}");
    }
    // The disk is "full" (keep_free_bytes beyond any disk): several retention passes
    // later nothing unreplicated is gone, and the box says so, loudly.
    let d = d.unwrap();
    let clerk = d.login("clerk", "demo");
    assert!(
        wait_for(Duration::from_secs(30), || alarm_keys(&d, &clerk)
            .contains(&"retention_blocked".to_string())),
        "{}",
        status(&d, &clerk)
    );
    let s = status(&d, &clerk);
    let a = s["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["code"] == "retention_blocked")
        .unwrap()
        .clone();
    assert_eq!(a["severity"], "critical", "{a}");
    assert!(
        a["message"].as_str().unwrap().contains("cannot be removed"),
        "{a}"
    );
    two_retention_passes(&d, &clerk);
    for id in &ids {
        assert!(data.join("hearings").join(id).exists(), "{id} kept");
    }
    let log = std::fs::read_to_string(&d.log).unwrap();
    assert!(!log.contains("panicked"), "{log}");
}

/// Answers every connection with `reply`.
fn fake_http(reply: &'static [u8]) -> u16 {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let _ = c.set_read_timeout(Some(Duration::from_millis(200)));
            let mut buf = [0u8; 65536];
            let _ = c.read(&mut buf);
            let _ = c.write_all(reply);
        }
    });
    port
}

/// A three-node Garage cluster (replication factor 3): a node stopped in the middle
/// of a hearing and restarted later: nothing lost, the hearing verifies.
#[test]
fn a_cluster_node_lost_mid_hearing_loses_nothing() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut g = Garage::cluster(&tmp.path().join("garage"), 3);
    let bucket = Bucket::new(&g.endpoint());
    let prefix = "court-a/room-7/";
    let cfg = config(tmp.path(), &g.archive_toml(tmp.path(), prefix, ""));
    let data = tmp.path().join("data");
    let d = Daemon::start(&data, Some(&cfg), "replication-cluster");
    let clerk = d.login("clerk", "demo");
    let id = hearing(&d, &clerk, "(2026)A0107民初4号");
    let hp = format!("{prefix}{id}/");
    d.ok("POST", &format!("/api/v1/hearings/{id}/open"), &clerk, None);
    wait_recorded(&data, &id, 4.0);
    g.nodes[2].stop();
    wait_recorded(&data, &id, recorded_s(&data, &id) + 8.0);
    d.ok(
        "POST",
        &format!("/api/v1/hearings/{id}/recess"),
        &clerk,
        Some(json!({"reason": "recess"})),
    );
    d.ok(
        "POST",
        &format!("/api/v1/hearings/{id}/resume"),
        &clerk,
        None,
    );
    wait_recorded(&data, &id, recorded_s(&data, &id) + 4.0);
    g.nodes[2].start();
    wait_recorded(&data, &id, recorded_s(&data, &id) + 2.0);
    d.ok(
        "POST",
        &format!("/api/v1/hearings/{id}/close"),
        &clerk,
        None,
    );
    assert!(
        wait_for(
            Duration::from_secs(60),
            || get(&d, &clerk, &id)["replication"]["state"] == "verified"
        ),
        "{}",
        get(&d, &clerk, &id)
    );
    all_in_bucket(&bucket, &hp, &data.join("hearings").join(&id)).unwrap();
    let (code, text) = verify_s3(&format!("s3://{BUCKET}/{hp}"), &cfg);
    assert_eq!(code, 0, "{text}");
    // The node that was down serves it too once back (read through its own API).
    let node2 = Bucket::new(&format!("http://127.0.0.1:{}", g.nodes[2].s3_port));
    assert!(
        wait_for(Duration::from_secs(30), || node2.list(&hp).len()
            == bucket.list(&hp).len()),
        "the restarted node lists every object"
    );
    let dl = tmp.path().join("from-node2").join(&id);
    node2.download(&hp, &dl);
    let (code, text) = verify(&dl, &[]);
    assert_eq!(code, 0, "{text}");
}

/// Object Lock: asked for on every object; the box reports what the store does with
/// it. Garage ignores it (said, with an alarm); moto's S3 keeps it. Under disk
/// pressure a replicated hearing goes before its days are up.
#[test]
fn object_lock_is_reported_as_the_store_keeps_it() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let g = Garage::single(&tmp.path().join("garage"));
    let data = tmp.path().join("data");
    let cfg = config(
        tmp.path(),
        &g.archive_toml(
            tmp.path(),
            "court-a/room-7/",
            "retention_days = 1\nkeep_free_bytes = 1000000000000000000\n",
        ),
    );
    let mut d = Daemon::start(&data, Some(&cfg), "replication-lock");
    let clerk = d.login("clerk", "demo");
    let id = common::evidence::record(&d, &clerk, "(2026)A0107民初5号", 3.0);
    assert!(
        wait_for(
            Duration::from_secs(30),
            || status(&d, &clerk)["replication"]["lock"] == "not_enforced"
        ),
        "{}",
        status(&d, &clerk)
    );
    assert!(alarm_keys(&d, &clerk).contains(&"archive_lock_not_enforced".to_string()));
    assert!(
        wait_for(Duration::from_secs(60), || get(&d, &clerk, &id)["released"]
            .is_object()),
        "disk pressure: a replicated hearing goes before its days: {}",
        get(&d, &clerk, &id)
    );
    d.stop();

    // moto's S3 server with an Object Lock bucket.
    let port = free_port();
    let mut moto = std::process::Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("moto[server] is installed (scripts/test)");
    assert!(wait_for(Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));
    let r = reqwest::blocking::Client::new()
        .put(format!("http://127.0.0.1:{port}/locked"))
        .header("x-amz-bucket-object-lock-enabled", "true")
        .send()
        .unwrap();
    assert!(r.status().is_success());
    let creds = tmp.path().join("moto-creds");
    std::fs::write(
        &creds,
        "[default]\naws_access_key_id = test\naws_secret_access_key = test\n",
    )
    .unwrap();
    config(
        tmp.path(),
        &format!(
            "[archive]\nendpoint = \"http://127.0.0.1:{port}\"\nregion = \"us-east-1\"\nbucket = \"locked\"\nprefix = \"court-a/room-7/\"\ncredentials_file = \"{}\"\nretention_days = 1\n",
            creds.display()
        ),
    );
    d.restart();
    let clerk = d.login("clerk", "demo");
    assert!(
        wait_for(
            Duration::from_secs(30),
            || status(&d, &clerk)["replication"]["lock"] == "enforced"
        ),
        "{}",
        status(&d, &clerk)
    );
    assert!(!alarm_keys(&d, &clerk).contains(&"archive_lock_not_enforced".to_string()));
    d.stop();
    let _ = moto.kill();
    let _ = moto.wait();
}
