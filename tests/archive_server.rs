//! The court's archive server (`courtrec archive serve`) against a real Garage: after a
//! courtroom box has replicated its hearings and deleted its own copies, judges find,
//! play, export and verify them from the archive server alone, under its own users,
//! grants and audit; hearings of two courtrooms with the same id are told apart; court
//! IT sees every courtroom on the fleet page; junk in the bucket is reported, never a
//! panic; two archive servers can serve the same bucket.

mod common;
use common::garage::{BUCKET, Bucket, Garage};
use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn box_config(dir: &Path, g: &Garage) -> PathBuf {
    let cfg = dir.join("room-7.toml");
    std::fs::write(
        &cfg,
        format!(
            "[courtroom]\nid = \"room-7\"\nname = \"Courtroom 7\"\ncourt = \"Court A\"\n\
             [[camera]]\nid = \"cam1\"\nkind = \"test\"\nrole = \"judge\"\n\
             [[microphone]]\nid = \"mic1\"\nkind = \"test\"\nrole = \"judge\"\n\
             {}\n{}",
            g.archive_toml(
                dir,
                "court-a/room-7/",
                "local_retention_days = 0\nheartbeat_s = 2\n"
            ),
            users_toml()
        ),
    )
    .unwrap();
    cfg
}

fn archive_config(dir: &Path, g: &Garage, name: &str) -> PathBuf {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "name = \"Court A archive\"\n{}\n{}",
            g.archive_toml(dir, "court-a/", "scan_s = 1\n"),
            users_toml()
        ),
    )
    .unwrap();
    cfg
}

fn ids(v: &Value) -> Vec<String> {
    v["hearings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .collect()
}

fn untar(bytes: &[u8], dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let tar = dir.join("bundle.tar");
    std::fs::write(&tar, bytes).unwrap();
    let st = std::process::Command::new("tar")
        .arg("xf")
        .arg(&tar)
        .arg("-C")
        .arg(dir)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::remove_file(&tar).unwrap();
    std::fs::read_dir(dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

#[test]
fn judges_review_export_and_verify_from_the_archive_alone() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let g = Garage::single(&tmp.path().join("garage"));
    let bucket = Bucket::new(&g.endpoint());

    // A courtroom records a public and a sealed hearing; once the archive has them,
    // the box deletes its copies.
    let box_data = tmp.path().join("box");
    let mut b = Daemon::start(&box_data, Some(&box_config(tmp.path(), &g)), "archive-box");
    let clerk = b.login("clerk", "demo");
    let public = common::evidence::record(&b, &clerk, "(2026)A0107民初10号", 6.0);
    let h = b.ok(
        "POST",
        "/api/v1/hearings",
        &clerk,
        Some(json!({"case_number": "(2026)A0107民初11号", "title": "sealed", "visibility": "sealed"})),
    );
    let sealed = h["id"].as_str().unwrap().to_string();
    b.ok(
        "POST",
        &format!("/api/v1/hearings/{sealed}/open"),
        &clerk,
        None,
    );
    wait_recorded(&box_data, &sealed, 2.0);
    b.ok(
        "POST",
        &format!("/api/v1/hearings/{sealed}/close"),
        &clerk,
        None,
    );
    assert!(
        wait_for(Duration::from_secs(90), || [&public, &sealed]
            .iter()
            .all(|id| !box_data.join("hearings").join(id).exists())),
        "the box hands both over to the archive"
    );
    // A heartbeat written after the last change (the box idle) before it stops.
    let heartbeat = || -> serde_json::Value {
        serde_json::from_slice(&bucket.get("court-a/room-7/status.json")).unwrap_or_default()
    };
    assert!(
        wait_for(Duration::from_secs(20), || heartbeat()["recording"]
            == "idle"),
        "{}",
        heartbeat()
    );
    b.stop();

    // The same hearing id in a second courtroom (a copy of its objects): both are
    // served, told apart by their qualified ids.
    for (k, _) in bucket.list(&format!("court-a/room-7/{public}/")) {
        let copy = k.replace("court-a/room-7/", "court-a/room-8/");
        bucket.overwrite(&copy, &bucket.get(&k));
    }
    // Junk in the bucket: reported, never a panic.
    bucket.overwrite("court-a/stray.txt", b"not a courtroom");
    bucket.overwrite("court-a/room-7/notes/readme.txt", b"not a hearing");
    bucket.overwrite(
        "court-a/room-7/20260101-000000-abcdef/manifest/0-0.jsonl",
        b"garbage\n",
    );

    let arc_data = tmp.path().join("archive");
    let a = Daemon::start_archive(
        &arc_data,
        &archive_config(tmp.path(), &g, "archive"),
        "archive-server",
    );
    let judge = a.login("judge", "demo");
    let admin = a.login("admin", "demo");
    let q7 = format!("room-7~{public}");
    let q8 = format!("room-8~{public}");
    let qs = format!("room-7~{sealed}");
    assert!(
        wait_for(Duration::from_secs(60), || {
            let v = a.ok("GET", "/api/v1/hearings?case_number=A0107", &admin, None);
            let found = ids(&v);
            found.contains(&q7) && found.contains(&q8) && found.contains(&qs)
        }),
        "the archive server finds every hearing: {}",
        a.ok("GET", "/api/v1/hearings", &admin, None)
    );
    // Search by case number, courtroom, title and day; the sealed one stays sealed.
    let v = a.ok(
        "GET",
        "/api/v1/hearings?case_number=%E6%B0%91%E5%88%9D10",
        &judge,
        None,
    );
    let mut found = ids(&v);
    found.sort();
    assert_eq!(found, vec![q7.clone(), q8.clone()], "{v}");
    let today = chrono::Utc::now().date_naive().to_string();
    let v = a.ok(
        "GET",
        &format!("/api/v1/hearings?courtroom=room-8&from={today}&to={today}&q=integrity"),
        &judge,
        None,
    );
    assert_eq!(
        ids(&v),
        vec![q8.clone()],
        "by the courtroom it is kept under: {v}"
    );
    let v = a.ok(
        "GET",
        "/api/v1/hearings?court=court-a&q=integrity",
        &judge,
        None,
    );
    assert_eq!(ids(&v).len(), 2, "by court: {v}");
    let v = a.ok("GET", "/api/v1/hearings?court=court-b", &judge, None);
    assert!(ids(&v).is_empty(), "{v}");
    let (st, _) = a.call("GET", &format!("/api/v1/hearings/{qs}"), Some(&judge), None);
    assert_eq!(st, 404, "sealed: not even its existence without a grant");
    let (st, _) = a.call(
        "POST",
        &format!("/api/v1/hearings/{qs}/grants"),
        Some(&admin),
        Some(json!({"user": "judge"})),
    );
    assert_eq!(st, 204);
    assert_eq!(
        a.ok("GET", &format!("/api/v1/hearings/{qs}"), &judge, None)["state"],
        "closed"
    );

    // Playback: the playlist and segments streamed through the archive server.
    let h = a.ok("GET", &format!("/api/v1/hearings/{q7}"), &judge, None);
    assert_eq!(h["id"], q7.as_str());
    assert_eq!(h["state"], "closed");
    let pl = h["tracks"][0]["playlist_url"].as_str().unwrap().to_string();
    let (st, body) = a.fetch(&pl, Some(&judge), &[]);
    assert_eq!(st, 200);
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("#EXT-X-ENDLIST"), "{text}");
    let first = text
        .lines()
        .find(|l| l.ends_with(".ts"))
        .unwrap()
        .to_string();
    let seg_url = format!("{}/{first}", pl.rsplit_once('/').unwrap().0);
    let (st, seg) = a.fetch(&seg_url, Some(&judge), &[]);
    assert_eq!(st, 200);
    let track = h["tracks"][0]["name"].as_str().unwrap();
    let key = format!("court-a/room-7/{public}/tracks/{track}/{first}");
    assert_eq!(seg, bucket.get(&key), "the bytes the box recorded");
    let f = tmp.path().join("seg.ts");
    std::fs::write(&f, &seg).unwrap();
    assert!(ffprobe(&f).duration_s > 0.5);
    let (st, part) = a.fetch(&seg_url, Some(&judge), &[("range", "bytes=188-375")]);
    assert_eq!(st, 206);
    assert_eq!(part, seg[188..376].to_vec());

    // Verify through the archive server: every segment read from the store.
    let r = a.ok(
        "POST",
        &format!("/api/v1/hearings/{q7}/verify"),
        &judge,
        None,
    );
    assert_eq!(r["exit_code"], 0, "{r}");
    assert_eq!(
        a.ok("GET", &format!("/api/v1/hearings/{q7}"), &judge, None)["integrity"]["status"],
        "verified"
    );

    // Exports (whole and a clip) made by the archive server, proven by its own log.
    let chunks_before = bucket.list_strict(&format!("court-a/room-7/{public}/manifest/"));
    let done = a.export(&q7, &judge, json!({}));
    let (st, tar) = a.download(done["download"].as_str().unwrap(), &judge);
    assert_eq!(st, 200);
    let bundle = untar(&tar, &tmp.path().join("whole"));
    let (code, text) = verify(&bundle, &[]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("exported from the court's archive by server"),
        "{text}"
    );
    let done = a.export(
        &q7,
        &judge,
        json!({"from": "00:00:01", "to": "00:00:03", "tracks": ["cam1"]}),
    );
    let (_, tar) = a.download(done["download"].as_str().unwrap(), &judge);
    let clip = untar(&tar, &tmp.path().join("clip"));
    let (code, text) = verify(&clip, &[]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("a clip"), "{text}");
    // The bundle's record cannot be stretched: a forged range in the signed line fails.
    let desc_path = clip.join("bundle.json");
    let mut desc: Value = serde_json::from_slice(&std::fs::read(&desc_path).unwrap()).unwrap();
    let text = desc["issuer"]["text"].as_str().unwrap().to_string();
    let at = text.find("\"gap_to_ns\":").unwrap() + "\"gap_to_ns\":".len();
    let end = at + text[at..].find(|c: char| !c.is_ascii_digit()).unwrap();
    let forged = format!("{}9{}", &text[..at], &text[at..end]) + &text[end..];
    desc["issuer"]["text"] = json!(forged);
    std::fs::write(&desc_path, serde_json::to_vec(&desc).unwrap()).unwrap();
    let (code, text) = verify(&clip, &[]);
    assert_ne!(code, 0, "{text}");
    // Nothing of this went into the box's manifest: the bucket's chunks are unchanged.
    assert_eq!(
        bucket.list_strict(&format!("court-a/room-7/{public}/manifest/")),
        chunks_before
    );
    // With the court's list of keys, a bundle is trusted only if the list names the
    // archive server too, not just the box.
    let box_key = std::fs::read_to_string(bundle.join("device.vkey")).unwrap();
    let (code, text) = verify(&bundle, &["--key", box_key.trim()]);
    assert_eq!(code, 14, "the archive server is not on the list: {text}");
    let desc: Value =
        serde_json::from_slice(&std::fs::read(bundle.join("bundle.json")).unwrap()).unwrap();
    let server_key = desc["issuer"]["vkey"].as_str().unwrap().to_string();
    let (code, text) = verify(&bundle, &["--key", box_key.trim(), "--key", &server_key]);
    assert_eq!(code, 0, "{text}");
    let st = a.ok("GET", "/api/v1/status", &admin, None);
    assert_eq!(st["archive_server"], true, "{st}");

    // A party with the archive server's own access code sees that hearing only.
    let code = a.ok(
        "POST",
        &format!("/api/v1/hearings/{q7}/access-codes"),
        &judge,
        Some(json!({"label": "defence", "valid_hours": 24})),
    );
    let (st, v) = a.call(
        "POST",
        "/api/v1/login/code",
        None,
        Some(json!({"code": code["code"]})),
    );
    assert_eq!(st, 200, "{v}");
    let party = v["token"].as_str().unwrap().to_string();
    let (st, _) = a.fetch(&pl, Some(&party), &[]);
    assert_eq!(st, 200);
    let (st, _) = a.call("GET", &format!("/api/v1/hearings/{q8}"), Some(&party), None);
    assert_eq!(st, 404);

    // Every read is in the archive server's audit log.
    let audit = a.ok("GET", &format!("/api/v1/audit?hearing={q7}"), &admin, None);
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for want in [
        "playlist",
        "segment",
        "verify",
        "export",
        "access_code_issued",
    ] {
        assert!(actions.contains(&want), "{want} audited: {actions:?}");
    }

    // Nothing is recorded or streamed here.
    let (st, v) = a.call(
        "POST",
        "/api/v1/hearings",
        Some(&admin),
        Some(json!({"case_number": "x", "title": "x", "visibility": "public"})),
    );
    assert_eq!(st, 404, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("archive server"),
        "{v}"
    );

    // Court IT's fleet page: the courtroom's heartbeat; junk reported.
    let (st, _) = a.call("GET", "/api/v1/fleet", Some(&judge), None);
    assert_eq!(st, 403);
    let fleet = a.ok("GET", "/api/v1/fleet", &admin, None);
    let room7 = fleet["courtrooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["room"] == "room-7")
        .unwrap_or_else(|| panic!("{fleet}"))
        .clone();
    assert_eq!(
        room7["heartbeat"]["courtroom_name"], "Courtroom 7",
        "{room7}"
    );
    assert_eq!(room7["heartbeat"]["recording"], "idle", "{room7}");
    let strays = fleet["archive"]["not_hearings"].to_string();
    assert!(
        strays.contains("stray.txt") && strays.contains("notes/"),
        "{strays}"
    );
    let unreadable = fleet["archive"]["unreadable"].to_string();
    assert!(
        unreadable.contains("20260101-000000-abcdef"),
        "{unreadable}"
    );
    let (st, page) = a.fetch("/fleet", None, &[]);
    assert_eq!(st, 200);
    assert!(String::from_utf8_lossy(&page).contains("fleet.js"));
    // The box is silent now: after three heartbeat periods the page says so.
    assert!(
        wait_for(Duration::from_secs(20), || {
            let f = a.ok("GET", "/api/v1/fleet", &admin, None);
            f["courtrooms"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["room"] == "room-7" && c["state"] == "silent")
        }),
        "a box that stopped is shown silent"
    );

    // The same in the browser: the review page and the fleet page.
    let out = std::process::Command::new("node")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/browser/archive.mjs"
        ))
        .env("BASE_URL", &a.base)
        .env("SHOTS", artifacts("archive"))
        .env("CASE_PART", "民初10")
        .env("HEARING_ID", &q7)
        .env("ROOMS", "room-7,room-8")
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "browser test failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A second archive server on the same bucket serves the same hearings.
    let a2 = Daemon::start_archive(
        &tmp.path().join("archive2"),
        &archive_config(tmp.path(), &g, "archive2"),
        "archive-server-2",
    );
    let judge2 = a2.login("judge", "demo");
    assert!(wait_for(Duration::from_secs(60), || ids(&a2.ok(
        "GET",
        "/api/v1/hearings",
        &judge2,
        None
    ))
    .contains(&q7)));
    let (st, _) = a2.fetch(&pl, Some(&judge2), &[]);
    assert_eq!(st, 200);
    for d in [&a, &a2] {
        let log = std::fs::read_to_string(&d.log).unwrap();
        assert!(!log.contains("panicked"), "{log}");
    }
    let _ = BUCKET;
}
