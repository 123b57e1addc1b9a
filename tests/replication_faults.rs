//! Replication against stores that misbehave: a wrong key, a missing bucket, a server
//! answering 500 or garbage (clear errors and alarms, nothing unreplicated deleted); a
//! Garage cluster losing a node mid-hearing (nothing lost); Object Lock reported as the
//! store keeps it.

mod common;
use common::garage::{BUCKET, Bucket, Garage};
use common::replica::*;
use common::*;
use serde_json::json;
use std::time::Duration;

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
