//! Review: per-track HLS playlists over the recorded segments (EVENT while recording,
//! VOD once closed, cuts marked at recesses, wall-clock time on every segment),
//! segments served with byte ranges, played by ffprobe over HTTP; and the archive
//! endpoints refuse anonymous callers and path tricks.

mod common;
use common::*;
use serde_json::json;
use std::process::Command;
use std::time::Duration;

fn get_text(d: &Daemon, path: &str, token: &str) -> (u16, String) {
    let (st, b) = d.download(path, token);
    (st, String::from_utf8_lossy(&b).to_string())
}

#[test]
fn tracks_play_as_hls_over_http_in_sync_and_safely() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = Daemon::start(&data, None, "review");
    let clerk = d.login("clerk", "demo");
    let judge = d.login("judge", "demo");
    let h = d.ok(
        "POST",
        "/api/v1/hearings",
        &clerk,
        Some(json!({"case_number": "(2026)X0101民初501号", "title": "review", "visibility": "public"})),
    );
    let id = h["id"].as_str().unwrap().to_string();
    let p = |a: &str| format!("/api/v1/hearings/{id}/{a}");
    d.ok("POST", &p("open"), &clerk, None);
    std::thread::sleep(Duration::from_secs(3));
    // While recording: an EVENT playlist that grows.
    let h = d.ok("GET", &format!("/api/v1/hearings/{id}"), &judge, None);
    let url = h["tracks"][0]["playlist_url"].as_str().unwrap().to_string();
    assert_eq!(url, format!("/api/v1/hearings/{id}/tracks/cam1/index.m3u8"));
    let (st, live) = get_text(&d, &url, &judge);
    assert_eq!(st, 200);
    assert!(
        live.contains("#EXT-X-PLAYLIST-TYPE:EVENT") && !live.contains("ENDLIST"),
        "{live}"
    );
    d.ok(
        "POST",
        &p("recess"),
        &clerk,
        Some(json!({"reason": "recess"})),
    );
    std::thread::sleep(Duration::from_secs(2));
    d.ok("POST", &p("resume"), &clerk, None);
    std::thread::sleep(Duration::from_secs(3));
    let h = d.ok("POST", &p("close"), &clerk, None);

    for t in h["tracks"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        let url = t["playlist_url"].as_str().unwrap();
        let (st, pl) = get_text(&d, url, &judge);
        assert_eq!(st, 200);
        assert!(
            pl.starts_with("#EXTM3U") && pl.contains("#EXT-X-ENDLIST"),
            "{pl}"
        );
        // Every segment listed once, in order; durations add up to the track's.
        let uris: Vec<&str> = pl
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .collect();
        let files = files(&data, &id, name);
        assert_eq!(uris.len(), files.len(), "{name}: {pl}");
        for (u, f) in uris.iter().zip(&files) {
            assert!(f.ends_with(u), "{u} vs {}", f.display());
        }
        let sum_s: f64 = pl
            .lines()
            .filter_map(|l| l.strip_prefix("#EXTINF:"))
            .map(|l| l.trim_end_matches(',').parse::<f64>().unwrap())
            .sum();
        let track_s = t["duration_ms"].as_f64().unwrap() / 1000.0;
        assert!(
            (sum_s - track_s).abs() < 0.01 * uris.len() as f64,
            "{name}: {sum_s} vs {track_s}"
        );
        assert_eq!(
            pl.matches("#EXT-X-DISCONTINUITY").count(),
            1,
            "{name}: one cut, at the recess"
        );
        assert_eq!(
            pl.matches("#EXT-X-PROGRAM-DATE-TIME:").count(),
            uris.len(),
            "{name}: wall-clock time on every segment"
        );
    }

    // Found by part of the case number, title words, courtroom and day; the integrity
    // badge is set by the verifier once the hearing is sealed.
    let found = |q: &str| -> Vec<String> {
        let v = d.ok("GET", &format!("/api/v1/hearings?{q}"), &judge, None);
        v["hearings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_str().unwrap().to_string())
            .collect()
    };
    let today = chrono_today();
    assert_eq!(
        found("case_number=%E6%B0%91%E5%88%9D501"),
        std::slice::from_ref(&id)
    );
    assert_eq!(found("q=REVIEW"), std::slice::from_ref(&id));
    assert_eq!(
        found(&format!("courtroom=demo-1&from={today}&to={today}")),
        std::slice::from_ref(&id)
    );
    assert!(found("from=2001-01-01&to=2001-12-31").is_empty());
    assert!(found("courtroom=elsewhere").is_empty());
    let (st, _) = d.call("GET", "/api/v1/hearings?from=yesterday", Some(&judge), None);
    assert!(st == 400 || st == 422, "a bad date: {st}");
    assert!(
        // The verifier runs at nice 19: on a busy 2-core machine (the browser test
        // beside it) it may wait a while for the CPU.
        wait_for(Duration::from_secs(60), || {
            d.ok("GET", &format!("/api/v1/hearings/{id}"), &judge, None)["integrity"]["status"]
                == "verified"
        }),
        "verified after close: {}",
        d.ok("GET", &format!("/api/v1/hearings/{id}"), &judge, None)["integrity"]
    );
    let r = d.ok(
        "POST",
        &format!("/api/v1/hearings/{id}/verify"),
        &judge,
        None,
    );
    assert_eq!(r["exit_code"], 0, "{r}");
    assert_eq!(r["signer_trusted"], true);

    // Played over HTTP by a tool nobody here wrote.
    let url = format!(
        "{}/api/v1/hearings/{id}/tracks/composite/index.m3u8",
        d.base
    );
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-headers"])
        .arg(format!("Authorization: Bearer {judge}\r\n"))
        .args(["-show_entries", "format=duration", "-of", "csv=p=0"])
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dur: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let composite_s = h["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "composite")
        .unwrap()["duration_ms"]
        .as_f64()
        .unwrap()
        / 1000.0;
    assert!(
        dur >= composite_s - 0.5,
        "ffprobe reads {dur} s of {composite_s} s"
    );
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-headers"])
        .arg(format!("Authorization: Bearer {judge}\r\n"))
        .arg("-i")
        .arg(&url)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "decodes: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Byte ranges.
    let seg = format!("/api/v1/hearings/{id}/tracks/cam1/00000001.ts");
    let client = reqwest::blocking::Client::new();
    let r = client
        .get(format!("{}{seg}", d.base))
        .bearer_auth(&judge)
        .header("range", "bytes=0-187")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(r.headers()["content-type"], "video/mp2t");
    let total = std::fs::metadata(&files(&data, &id, "cam1")[0])
        .unwrap()
        .len();
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 0-187/{total}").as_str()
    );
    let body = r.bytes().unwrap();
    assert_eq!(body.len(), 188);
    assert_eq!(body[0], 0x47, "a TS packet");
    let r = client
        .get(format!("{}{seg}", d.base))
        .bearer_auth(&judge)
        .header("range", format!("bytes={}-", total + 10))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 416);

    // Nobody anonymous; no path tricks.
    let (st, _) = d.call("GET", &seg, None, None);
    assert_eq!(st, 401);
    let (st, _) = d.call("GET", &url.replace(&d.base, ""), None, None);
    assert_eq!(st, 401);
    for bad in [
        format!("/api/v1/hearings/{id}/tracks/cam1/..%2Fmanifest.jsonl"),
        format!("/api/v1/hearings/{id}/tracks/..%2F..%2Fdevice-id/00000001.ts"),
        format!("/api/v1/hearings/{id}/tracks/cam9/00000001.ts"),
        format!("/api/v1/hearings/{id}/tracks/cam1/00000999.ts"),
        format!("/api/v1/hearings/{id}/tracks/cam1/1.ts"),
        format!("/api/v1/hearings/..%2F{id}/tracks/cam1/00000001.ts"),
        "/api/v1/hearings/nope/tracks/cam1/index.m3u8".to_string(),
    ] {
        let (st, _) = d.download(&bad, &judge);
        assert_eq!(st, 404, "{bad}");
    }
    // A symlink planted in the data folder leads nowhere.
    let f = files(&data, &id, "cam1")[1].clone();
    std::fs::remove_file(&f).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", &f).unwrap();
    let (st, _) = d.download(
        &format!("/api/v1/hearings/{id}/tracks/cam1/00000002.ts"),
        &judge,
    );
    assert_eq!(st, 404, "symlink");
}

fn chrono_today() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn judges_and_parties_review_in_the_browser() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // The timeline starts 2 s before the 72-hour mark (a trial in its fourth day): the
    // player crosses a timestamp epoch (a discontinuity) before the mark it seeks to.
    // The box's clock is set back 10 minutes before the mark (a `clock_step`): the page
    // places the mark by media time, not by its wall-clock time.
    let offset_file = tmp.path().join("clock-offset-ms");
    std::fs::write(&offset_file, "0").unwrap();
    let d = Daemon::start_env(
        &data,
        None,
        "review-browser",
        &[
            ("COURTREC_TEST_MEDIA_OFFSET_S", &(72 * 3600 - 2).to_string()),
            (
                "COURTREC_TEST_CLOCK_OFFSET_FILE",
                offset_file.to_str().unwrap(),
            ),
        ],
    );
    let clerk = d.login("clerk", "demo");
    let judge = d.login("judge", "demo");
    let mk = |case: &str| {
        let h = d.ok(
            "POST",
            "/api/v1/hearings",
            &clerk,
            Some(json!({"case_number": case, "title": "review in the browser", "visibility": "public"})),
        );
        h["id"].as_str().unwrap().to_string()
    };
    let other = mk("(2026)X0101民初700号");
    let id = mk("(2026)X0101民初777号");
    let p = |a: &str| format!("/api/v1/hearings/{id}/{a}");
    d.ok("POST", &p("open"), &clerk, None);
    wait_recorded(&data, &id, 3.0);
    std::fs::write(&offset_file, "-600000").unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || {
            let h = d.ok("GET", &format!("/api/v1/hearings/{id}"), &clerk, None);
            !events_of(&h, &["clock_step"]).is_empty()
        }),
        "the clock step is logged"
    );
    let before_mark = recorded_s(&data, &id);
    wait_recorded(&data, &id, before_mark + 2.0);
    d.ok(
        "POST",
        &p("marks"),
        &clerk,
        Some(json!({"text": "Exhibit 3 shown"})),
    );
    std::thread::sleep(Duration::from_secs(3));
    d.ok(
        "POST",
        &p("recess"),
        &clerk,
        Some(json!({"reason": "recess"})),
    );
    std::thread::sleep(Duration::from_secs(2));
    d.ok("POST", &p("resume"), &clerk, None);
    std::thread::sleep(Duration::from_secs(5));
    let h = d.ok("POST", &p("close"), &clerk, None);
    d.ok(
        "POST",
        &format!("/api/v1/hearings/{other}/open"),
        &clerk,
        None,
    );
    std::thread::sleep(Duration::from_secs(1));
    d.ok(
        "POST",
        &format!("/api/v1/hearings/{other}/close"),
        &clerk,
        None,
    );
    // Where the mark is in the recording: its media time from the first composite
    // segment's start (before the recess, so no cut in between).
    let ev = events_of(&h, &["mark"]);
    let mark_ms = ev[0]["media_time_ms"].as_f64().unwrap();
    let first = manifest(&data, &id);
    let first = segments(&first, "composite")[0]["media_start_ns"]
        .as_f64()
        .unwrap()
        / 1e6;
    let mark_at_s = (mark_ms - first) / 1000.0;
    assert!(
        wait_for(Duration::from_secs(30), || {
            d.ok("GET", &format!("/api/v1/hearings/{id}"), &judge, None)["integrity"]["status"]
                == "verified"
        }),
        "verified after close"
    );
    let code = d.ok(
        "POST",
        &p("access-codes"),
        &judge,
        Some(json!({"label": "defendant's lawyer"})),
    );
    let out = Command::new("node")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/browser/review.mjs"
        ))
        .env("BASE_URL", &d.base)
        .env("SHOTS", artifacts("review"))
        .env("CASE_PART", "民初777")
        .env("HEARING_ID", &id)
        .env("MARK_AT_S", format!("{mark_at_s:.3}"))
        .env("CODE", code["code"].as_str().unwrap())
        .output()
        .expect("run node");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "browser test failed:\n{log}");
    // What the judge did is in the audit log.
    let admin = d.login("admin", "demo");
    let a = d.ok("GET", &format!("/api/v1/audit?hearing={id}"), &admin, None);
    for action in ["view", "playlist", "segment", "export", "download"] {
        assert!(
            a["entries"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["user"] == "judge" && e["action"] == action),
            "{action} audited"
        );
    }
}
