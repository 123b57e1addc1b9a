//! A trial held over three days: the hearing's media timeline (recesses count on it)
//! runs past the 33-bit PTS wrap (26.5 h) and past where `ns * 90_000` overflows an
//! `i64` (28.4 h). Started far along through the test hook `COURTREC_TEST_MEDIA_OFFSET_S`
//! instead of waiting three days: the recording crosses the 72-hour mark (a timestamp
//! epoch boundary), every segment decodes with sane timestamps, the playlist marks the
//! new epoch, ffmpeg plays the playlist through, a crash and recovery place the cut-off
//! segments right, and the hearing and its export verify.

mod common;
use common::evidence::*;
use common::*;
use serde_json::json;

const H: f64 = 3600.0;

#[test]
fn a_trial_over_three_days_records_plays_exports_and_verifies() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Open 3 s before the 72-hour mark (the start of the fourth timestamp epoch).
    let offset = (72.0 * H - 3.0) as i64;
    let mut d = Daemon::start_env(
        &data,
        None,
        "longhearing",
        &[("COURTREC_TEST_MEDIA_OFFSET_S", &offset.to_string())],
    );
    let clerk = d.login("clerk", "demo");
    let judge = d.login("judge", "demo");
    let h = d.ok(
        "POST",
        "/api/v1/hearings",
        &clerk,
        Some(json!({"case_number": "(2026)X0101民初72号", "title": "three days", "visibility": "public"})),
    );
    let id = h["id"].as_str().unwrap().to_string();
    let p = |a: &str| format!("/api/v1/hearings/{id}/{a}");
    d.ok("POST", &p("open"), &clerk, None);
    sleep_s(6.0);
    d.ok(
        "POST",
        &p("marks"),
        &clerk,
        Some(json!({"text": "day three"})),
    );
    // A crash in the middle: the segments it cut off are placed on the timeline from
    // their own timestamps, in the right epoch.
    d.kill9();
    d.restart();
    let clerk = d.login("clerk", "demo");
    sleep_s(4.0);
    d.ok(
        "POST",
        &p("recess"),
        &clerk,
        Some(json!({"reason": "recess", "note": "overnight"})),
    );
    sleep_s(1.0);
    d.ok("POST", &p("resume"), &clerk, None);
    sleep_s(3.0);
    d.ok("POST", &p("close"), &clerk, None);

    // The manifest keeps full media time: past 72 hours, in order, no overflow.
    let recs = manifest(&data, &id);
    let comp = segments(&recs, "composite");
    let starts: Vec<f64> = comp
        .iter()
        .map(|s| s["media_start_ns"].as_f64().unwrap() / 1e9)
        .collect();
    assert!(
        starts[0] > 72.0 * H - 4.0 && starts[0] < 72.0 * H,
        "{starts:?}"
    );
    assert!(*starts.last().unwrap() > 72.0 * H + 5.0, "{starts:?}");
    assert!(starts.windows(2).all(|w| w[0] < w[1]), "{starts:?}");
    for track in ["composite", "cam1", "mic1"] {
        for f in files(&data, &id, track) {
            assert_decodes(&f);
            // Within its epoch: a timestamp of seconds to a day, never the wrap.
            let pr = ffprobe(&f);
            assert!(
                pr.start_s >= 0.0 && pr.start_s < 25.0 * H,
                "{}: starts at {} s",
                f.display(),
                pr.start_s
            );
        }
    }
    let partial: Vec<_> = recs
        .iter()
        .filter(|r| r["record"]["partial"] == true)
        .map(|r| r["record"]["media_start_ns"].as_f64().unwrap() / 1e9)
        .collect();
    assert!(
        partial
            .iter()
            .all(|&t| t > 72.0 * H - 5.0 && t < 72.0 * H + 30.0),
        "cut-off segments placed in the right epoch: {partial:?}"
    );

    // The playlist marks the new epoch (and the recess); ffmpeg plays it through.
    let (st, text) = d.download(&p("tracks/composite/index.m3u8"), &judge);
    assert_eq!(st, 200);
    let text = String::from_utf8(text).unwrap();
    assert!(text.matches("#EXT-X-DISCONTINUITY").count() >= 2, "{text}");
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-headers"])
        .arg(format!("Authorization: Bearer {judge}\r\n"))
        .arg("-i")
        .arg(format!("{}{}", d.base, p("tracks/composite/index.m3u8")))
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg plays the playlist: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // It verifies, and so does an export of the part after the 72-hour mark.
    d.stop();
    let text = expect(
        &data.join("hearings").join(&id),
        &[],
        OK,
        "all present",
        "three-day hearing",
    );
    assert!(text.contains("recovery"), "{text}");
    let bundle = tmp.path().join("bundle");
    let out = courtrec(&[
        "export",
        &id,
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        bundle.to_str().unwrap(),
        "--from",
        "00:00:04",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    expect(&bundle, &[], OK, "clip of hearing", "export after the mark");
    let pr = ffprobe(&bundle.join("play/composite.m3u8"));
    assert!(pr.duration_s > 3.0, "the clip plays: {pr:?}");
}
