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
use std::time::Duration;

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

/// The wall-clock time of each segment, less its media time (ns): the anchor it was
/// stamped with.
fn anchors_of(recs: &[serde_json::Value], track: &str) -> Vec<(f64, i64)> {
    segments(recs, track)
        .iter()
        .map(|s| {
            let wall = chrono::DateTime::parse_from_rfc3339(s["wall_start"].as_str().unwrap())
                .unwrap()
                .timestamp_nanos_opt()
                .unwrap();
            let media = s["media_start_ns"].as_i64().unwrap();
            (media as f64 / 1e9, wall - media)
        })
        .collect()
}

/// The box's clock stepped +1 h, then -10 min, while a hearing records (injected through
/// `COURTREC_TEST_CLOCK_OFFSET_FILE`, never the machine's clock): each step is a
/// `clock_step` event with its size, the burned-in time and the segments' wall-clock
/// times follow it from there (before: the old clock), a crash after the steps resumes
/// on the corrected clock, and the verifier explains both steps and finds no other jump.
#[test]
fn a_clock_step_while_recording_is_logged_and_times_follow_it() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let offset_file = tmp.path().join("clock-offset-ms");
    std::fs::write(&offset_file, "0").unwrap();
    let mut d = Daemon::start_env(
        &data,
        None,
        "clockstep",
        &[(
            "COURTREC_TEST_CLOCK_OFFSET_FILE",
            offset_file.to_str().unwrap(),
        )],
    );
    let clerk = d.login("clerk", "demo");
    let admin = d.login("admin", "demo");
    let epoch = |d: &Daemon| {
        let st = d.ok("GET", "/api/v1/status", &admin, None);
        st["clock"]["burned_in_epoch_unix_ns"].as_i64().unwrap()
    };
    let epoch0 = epoch(&d);
    let h = d.ok(
        "POST",
        "/api/v1/hearings",
        &clerk,
        Some(
            json!({"case_number": "(2026)X0101民初73号", "title": "clock", "visibility": "public"}),
        ),
    );
    let id = h["id"].as_str().unwrap().to_string();
    let p = |a: &str| format!("/api/v1/hearings/{id}/{a}");
    d.ok("POST", &p("open"), &clerk, None);
    wait_recorded(&data, &id, 4.0);

    let steps = |d: &Daemon| {
        let h = d.ok("GET", &format!("/api/v1/hearings/{id}"), &clerk, None);
        events_of(&h, &["clock_step"])
    };
    let step_to = |ms: i64, n: usize| {
        std::fs::write(&offset_file, ms.to_string()).unwrap();
        assert!(
            wait_for(Duration::from_secs(10), || steps(&d).len() == n),
            "clock_step {n} logged within seconds"
        );
    };
    step_to(3_600_000, 1);
    let epoch1 = epoch(&d);
    assert!(
        ((epoch1 - epoch0) - 3_600_000_000_000).abs() < 1_000_000_000,
        "the burned-in time moved by the step: {epoch0} -> {epoch1}"
    );
    let rec1 = recorded_s(&data, &id);
    wait_recorded(&data, &id, rec1 + 4.0);
    step_to(3_000_000, 2);
    let epoch2 = epoch(&d);
    assert!(
        ((epoch2 - epoch1) + 600_000_000_000).abs() < 1_000_000_000,
        "and back by 10 min: {epoch1} -> {epoch2}"
    );
    let ev = steps(&d);
    let sizes: Vec<i64> = ev.iter().map(|e| e["step_ms"].as_i64().unwrap()).collect();
    assert!(
        (sizes[0] - 3_600_000).abs() < 1000 && (sizes[1] + 600_000).abs() < 1000,
        "{sizes:?}"
    );
    let rec2 = recorded_s(&data, &id);
    wait_recorded(&data, &id, rec2 + 4.0);

    // A crash after the steps: the hearing resumes on the corrected clock.
    d.kill9();
    d.restart();
    let rec3 = recorded_s(&data, &id);
    wait_recorded(&data, &id, rec3 + 3.0);
    assert_eq!(steps(&d).len(), 2, "a restart is not a clock step");
    // The clock set back 2 h 50 min while the box is down (more than it is down):
    // media time goes on from where it was, and the step is logged at the restart.
    d.kill9();
    std::fs::write(&offset_file, "-7200000").unwrap();
    d.restart();
    let clerk = d.login("clerk", "demo");
    let rec4 = recorded_s(&data, &id);
    wait_recorded(&data, &id, rec4 + 3.0);
    d.ok("POST", &p("close"), &clerk, None);
    let ev = steps(&d);
    assert_eq!(ev.len(), 3, "{ev:?}");
    let back_ms = ev[2]["step_ms"].as_i64().unwrap();
    assert!(
        (-10_200_000..-10_170_000).contains(&back_ms),
        "set back 2 h 50 min, less the seconds the box was down: {back_ms} ms"
    );

    // Where each step falls, to the nanosecond (the manifest's events; the API gives
    // milliseconds, and a segment cut off by the crash may begin within a millisecond
    // before the restart's step: measured 6.5 us).
    let recs = manifest(&data, &id);
    let at: Vec<f64> = recs
        .iter()
        .filter(|r| r["type"] == "event" && r["kind"] == "clock_step")
        .map(|r| r["media_time_ns"].as_i64().unwrap() as f64 / 1e9)
        .collect();
    assert_eq!(at.len(), 3, "{at:?}");

    // Segment times: the open's clock, +1 h from the first step, +50 min from the
    // second, on every track (within a second); after the restart, 2 h before the
    // open's clock plus the seconds the box was down.
    for track in ["composite", "cam1", "mic1"] {
        let a = anchors_of(&recs, track);
        let base = a[0].1;
        for (media_s, anchor) in &a {
            let (want, slack) = if *media_s < at[0] {
                (0, 0)
            } else if *media_s < at[1] {
                (3_600_000_000_000, 0)
            } else if *media_s < at[2] {
                (3_000_000_000_000, 0)
            } else {
                (-7_200_000_000_000, 30_000_000_000)
            };
            let off = (anchor - base) - want;
            assert!(
                (-1_000_000_000..1_000_000_000 + slack).contains(&off),
                "{track} at {media_s:.1} s: anchor {} s after the open's, want {} s",
                (anchor - base) / 1_000_000_000,
                want / 1_000_000_000
            );
        }
        assert!(
            a.iter().any(|(m, _)| *m > at[2]),
            "{track} records after the restart"
        );
    }

    d.stop();
    let text = expect(
        &data.join("hearings").join(&id),
        &[],
        OK,
        "all present",
        "clock-stepped hearing",
    );
    assert!(
        text.contains("corrected by +1 h 0 min")
            && text.contains("corrected by -10 min")
            && text.contains("corrected by -2 h 49 min"),
        "the report explains the three steps: {text}"
    );
    assert!(
        !text.contains("no clock_step event explains"),
        "and finds no other jump: {text}"
    );
}
