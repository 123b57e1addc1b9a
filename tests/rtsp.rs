//! An IP camera over RTSP: its H.264 is recorded as it arrives (no re-encoding); when
//! it is unplugged its track records the "signal lost" card, an alarm and a fault event
//! are raised, and when it comes back recording switches back to its own stream. Its
//! preview stream fills its pane of the composite the whole time it is plugged in.

mod common;
use common::*;
use serde_json::json;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Camera(Child);

impl Camera {
    fn start(port: u16, file: &Path) -> Camera {
        let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debug/examples/rtsp_camera");
        assert!(
            bin.exists(),
            "build the test camera first: cargo build --examples"
        );
        let log = std::fs::File::create(artifacts("logs").join("rtsp_camera.log")).unwrap();
        Camera(
            Command::new(bin)
                .arg(port.to_string())
                .arg(format!("cam={}", file.display()))
                .stdout(Stdio::from(log.try_clone().unwrap()))
                .stderr(Stdio::from(log))
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn an_ip_camera_is_recorded_as_sent_and_survives_being_unplugged() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    // The camera sends 480x270; its "signal lost" card is encoded at the configured 640x360,
    // so the two are told apart in the recording.
    let video = tmp.path().join("ipcam.mp4");
    make_video(&video, 60, "480x270", 15);
    let port = free_port();
    let cam = Camera::start(port, &video);
    let cfg = tmp.path().join("courtroom.toml");
    std::fs::write(
        &cfg,
        format!(
            "[courtroom]\nid = \"t1\"\nname = \"RTSP\"\n[alarms]\nsource_lost_ms = 1000\n\
             [composite]\nlayout = 1\n\
             [[camera]]\nid = \"cam1\"\nkind = \"test\"\nrole = \"witness\"\n\
             [[camera]]\nid = \"ip1\"\nkind = \"rtsp\"\nrole = \"judge\"\nurl = \"rtsp://127.0.0.1:{port}/cam\"\n\
             [[microphone]]\nid = \"mic1\"\nkind = \"test\"\nrole = \"judge\"\n{}",
            users_toml()
        ),
    )
    .unwrap();
    let mut d = Daemon::start(&tmp.path().join("data"), Some(&cfg), "rtsp");
    let clerk = d.login("clerk", "demo");
    // No alarm is not enough: a source has a few seconds' grace at start-up.
    let ip1_live = || {
        d.ok("GET", "/api/v1/status", &clerk, None)["sources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == "ip1" && s["state"] == "live")
    };
    assert!(
        wait_for(Duration::from_secs(15), || ip1_live()
            && alarm_keys(&d, &clerk).is_empty()),
        "camera live: {:?}",
        alarm_keys(&d, &clerk)
    );
    // The camera's picture in the console (its preview stream connects beside the
    // main stream and starts at a keyframe): what a clerk sees before opening.
    let still_bright = || {
        let (code, jpeg) = d.download("/api/v1/previews/ip1", &clerk);
        code == 200 && jpeg_luma(&jpeg).is_some_and(|l| l > 60.0)
    };
    assert!(
        wait_for(Duration::from_secs(15), still_bright),
        "the camera's picture never reached the console"
    );
    // Open once the pictures have rested for a while, as between any two hearings:
    // the preview decoded keyframes only, its pane thinned (a few pictures let
    // through while resting, each of which once held the pane after the open).
    assert!(
        wait_for(Duration::from_secs(15), || d.ok(
            "GET",
            "/api/v1/status",
            &clerk,
            None
        )["resting_ms"]
            .as_u64()
            .is_some_and(|ms| ms >= 1500)),
        "the pictures never rested: {}",
        d.ok("GET", "/api/v1/status", &clerk, None)
    );
    let h = d.ok(
        "POST",
        "/api/v1/hearings",
        &clerk,
        Some(json!({"case_number": "(2026)X0101民初6号", "title": "rtsp", "visibility": "public"})),
    );
    let id = h["id"].as_str().unwrap().to_string();
    d.ok("POST", &format!("/api/v1/hearings/{id}/open"), &clerk, None);
    // 12 s of recording (6 composite segments and the one being written) before the
    // unplug: longer than a source may stay silent before it is rebuilt (5 s), so a
    // preview stream wrongly rebuilt would show in the composite.
    let segments = || files(&tmp.path().join("data"), &id, "composite").len();
    assert!(
        wait_for(Duration::from_secs(40), || segments() >= 7),
        "composite segments: {}",
        segments()
    );

    drop(cam); // unplug
    assert!(wait_for(Duration::from_secs(10), || alarm_keys(&d, &clerk)
        .contains(&"camera_lost:ip1".to_string())));
    std::thread::sleep(Duration::from_secs(4));
    let _cam = Camera::start(port, &video); // plug back in
    assert!(
        wait_for(Duration::from_secs(25), || !alarm_keys(&d, &clerk)
            .contains(&"camera_lost:ip1".to_string())),
        "camera came back: {:?}",
        alarm_keys(&d, &clerk)
    );
    std::thread::sleep(Duration::from_secs(4));
    let h = d.ok(
        "POST",
        &format!("/api/v1/hearings/{id}/close"),
        &clerk,
        None,
    );
    d.stop();
    assert!(
        events_of(&h, &["device_fault"])
            .iter()
            .any(|e| e["source"] == "ip1")
    );
    assert!(
        events_of(&h, &["device_restored"])
            .iter()
            .any(|e| e["source"] == "ip1")
    );

    let data = tmp.path().join("data");
    let widths: Vec<u64> = files(&data, &id, "ip1")
        .iter()
        .map(|p| {
            assert_decodes(p);
            ffprobe(p).json["streams"][0]["width"].as_u64().unwrap()
        })
        .collect();
    // Camera's own stream, then the card while unplugged, then the camera again.
    let first_card = widths
        .iter()
        .position(|&w| w == 640)
        .expect("card segments while unplugged");
    let back = widths[first_card..]
        .iter()
        .position(|&w| w == 480)
        .expect("camera stream again")
        + first_card;
    assert!(widths[..first_card].iter().all(|&w| w == 480), "{widths:?}");
    assert!(
        widths[first_card..back].iter().all(|&w| w == 640),
        "{widths:?}"
    );
    assert!(widths[back..].iter().all(|&w| w == 480), "{widths:?}");
    // The composite (one pane: the IP camera, from its preview stream) shows the
    // camera's picture, not its dark "signal lost" card, in the 12 s before the unplug.
    // A preview stream once counted as stalled (it reports to no source status) and was
    // reconnected every few seconds, the card in between. From the first frame: the
    // resting preview's pictures once came out of OpenH264 a keyframe interval late
    // (it holds a picture until the next frame comes), and a hearing opened before the
    // camera's second keyframe showed the card in its first half second (about one run
    // in six). Opening once the console shows the camera, this test no longer meets that
    // by itself: the unit test `a_resting_keyframe_leaves_the_decoder_before_the_next_one_comes`
    // guards it.
    let mut means = Vec::new();
    for path in files(&data, &id, "composite").iter().take(6) {
        means.extend(luma_means(path, 4));
    }
    assert!(
        means.len() >= 40 && means.iter().all(|&m| m > 60.0),
        "the card in the composite while the camera was plugged in: {means:.0?}"
    );
    // And the picture moves from the open on: the preview waits for its next keyframe
    // (one a second) at most. (What once froze the panes for up to 4 s after an open,
    // pictures let through while resting stretched to 4 s, is caught by the unit test
    // `pictures_move_as_soon_as_a_hearing_opens`; here, in the whole daemon, it showed
    // only now and then.)
    let first_six: Vec<_> = files(&data, &id, "composite").into_iter().take(6).collect();
    let still = still_spans(&first_six, 2.0);
    assert!(still.is_empty(), "the composite stood still: {still:?}");
    // The other tracks did not notice.
    for track in ["cam1", "mic1", "composite"] {
        for p in files(&data, &id, track) {
            assert_decodes(&p);
        }
    }
    let out = courtrec(&["check", "--data-dir", data.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Every track, the composite too, is continuous from open to close: no gap that
    // the events do not explain.
    let (code, text) = verify(&data.join("hearings").join(&id), &[]);
    assert_eq!(code, 0, "{text}");
}
