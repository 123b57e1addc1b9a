//! A camera that dies must not stop the other tracks: its track records the "signal
//! lost" card, an alarm and a fault event are raised, and it comes back by itself.
//! A microphone that goes silent while recording raises an alarm.

mod common;
use common::*;
use serde_json::{Value, json};
use std::time::Duration;

fn source_state(d: &Daemon, token: &str, id: &str) -> Value {
    d.ok("GET", "/api/v1/status", token, None)["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .cloned()
        .unwrap()
}

#[test]
fn a_lost_camera_records_the_card_raises_an_alarm_and_comes_back() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let video = tmp.path().join("witness.mp4");
    make_video(&video, 3, "640x360", 15);
    let cfg = tmp.path().join("courtroom.toml");
    std::fs::write(
        &cfg,
        format!(
            "[courtroom]\nid = \"t1\"\nname = \"Test courtroom\"\n\
             [alarms]\nsource_lost_ms = 1000\nmic_silence_s = 3\n\
             [[camera]]\nid = \"cam1\"\nkind = \"test\"\nrole = \"judge\"\n\
             [[camera]]\nid = \"cam2\"\nkind = \"file\"\nrole = \"witness\"\nlabel = \"Witness\"\npath = \"witness.mp4\"\n\
             [[microphone]]\nid = \"mic1\"\nkind = \"test\"\nrole = \"judge\"\n\
             [[microphone]]\nid = \"mic2\"\nkind = \"test\"\nrole = \"witness\"\nwave = \"silence\"\n{}",
            users_toml()
        ),
    )
    .unwrap();
    let mut d = Daemon::start(&tmp.path().join("data"), Some(&cfg), "sources");
    let clerk = d.login("clerk", "demo");
    // The file plays in a loop as a live camera.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(source_state(&d, &clerk, "cam2")["state"], "live");
    assert!(
        alarm_keys(&d, &clerk).is_empty(),
        "no alarm before recording: {:?}",
        alarm_keys(&d, &clerk)
    );

    let h = d.ok(
        "POST",
        "/api/v1/hearings",
        &clerk,
        Some(json!({"case_number": "(2026)X0101民初5号", "title": "t", "visibility": "public"})),
    );
    let id = h["id"].as_str().unwrap().to_string();
    d.ok("POST", &format!("/api/v1/hearings/{id}/open"), &clerk, None);

    // The dead microphone is noticed while recording.
    assert!(wait_for(Duration::from_secs(10), || alarm_keys(&d, &clerk)
        .contains(&"mic_silent:mic2".to_string())));

    // Pull the camera's "cable": the file disappears, so the source cannot restart.
    std::thread::sleep(Duration::from_secs(1));
    let hidden = tmp.path().join("witness.mp4.away");
    std::fs::rename(&video, &hidden).unwrap();
    assert!(
        wait_for(Duration::from_secs(12), || alarm_keys(&d, &clerk)
            .contains(&"camera_lost:cam2".to_string())),
        "camera_lost alarm: {:?}",
        alarm_keys(&d, &clerk)
    );
    let st = d.ok("GET", "/api/v1/status", &clerk, None);
    let alarm = st["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "camera_lost:cam2")
        .unwrap()
        .clone();
    assert_eq!(alarm["severity"], "critical");
    assert!(
        alarm["action"].as_str().unwrap().contains("cable"),
        "says what to do: {alarm}"
    );
    assert!(!alarm["message_zh"].as_str().unwrap().is_empty());
    assert_eq!(source_state(&d, &clerk, "cam2")["state"], "lost");
    assert_eq!(source_state(&d, &clerk, "cam1")["state"], "live");
    std::thread::sleep(Duration::from_secs(3));

    // Plug it back: it reconnects by itself.
    std::fs::rename(&hidden, &video).unwrap();
    assert!(
        wait_for(Duration::from_secs(20), || !alarm_keys(&d, &clerk)
            .contains(&"camera_lost:cam2".to_string())),
        "camera came back"
    );
    std::thread::sleep(Duration::from_secs(2));
    let h = d.ok(
        "POST",
        &format!("/api/v1/hearings/{id}/close"),
        &clerk,
        None,
    );
    d.stop();

    let faults = events_of(&h, &["device_fault", "device_restored"]);
    let find = |kind: &str, src: &str| {
        faults
            .iter()
            .find(|e| e["kind"] == kind && e["source"] == src)
            .cloned()
    };
    let lost = find("device_fault", "cam2").expect("fault event for cam2");
    let back = find("device_restored", "cam2").expect("restored event for cam2");
    assert!(
        find("device_fault", "mic2").is_some(),
        "fault event for the silent microphone: {faults:?}"
    );
    // The fallback picture kept cam2's track recorded: the camera's alarm, never a
    // stalled track (which would mean a gap in the recording).
    assert!(
        !faults
            .iter()
            .any(|e| e.to_string().contains("has recorded nothing")),
        "no track stalled: {faults:?}"
    );
    let lost_t = lost["media_time_ms"].as_i64().unwrap() as f64 / 1000.0;
    let back_t = back["media_time_ms"].as_i64().unwrap() as f64 / 1000.0;
    assert!(back_t > lost_t + 2.0);

    let ev = events_of(&h, &["open", "close"]);
    let recorded = (ev[1]["media_time_ms"].as_i64().unwrap()
        - ev[0]["media_time_ms"].as_i64().unwrap()) as f64
        / 1000.0;
    let data = tmp.path().join("data");
    for track in ["cam1", "cam2", "mic1", "mic2", "composite"] {
        let paths = files(&data, &id, track);
        let mut total = 0.0;
        let mut prev_end: Option<f64> = None;
        for p in &paths {
            assert_decodes(p);
            let pr = ffprobe(p);
            if let Some(e) = prev_end {
                assert!(
                    (pr.start_s - e).abs() < 0.1,
                    "{track}: timeline continuous at {}: {} vs {e}",
                    p.display(),
                    pr.start_s
                );
            }
            prev_end = Some(pr.start_s + pr.duration_s);
            total += pr.duration_s;
        }
        assert!(
            (total - recorded).abs() < 0.3,
            "{track}: {total:.3} s recorded of {recorded:.3} s, across the loss"
        );
    }
    // While lost, cam2's track shows the dark "signal lost" card; before, the test picture.
    let records = manifest(&data, &id);
    let frame_stats_at = |t: f64| {
        let s = segments(&records, "cam2")
            .into_iter()
            .find(|s| {
                let a = s["media_start_ns"].as_i64().unwrap() as f64 / 1e9;
                a <= t && t < a + s["media_duration_ns"].as_i64().unwrap() as f64 / 1e9
            })
            .expect("segment at time");
        // Sample the middle of that segment: seeking near a segment's last frame is fragile.
        let dur = s["media_duration_ns"].as_i64().unwrap() as f64 / 1e9;
        luma_mean_max_at(
            &data
                .join("hearings")
                .join(&id)
                .join(s["file"].as_str().unwrap()),
            dur / 2.0,
        )
    };
    assert!(
        lost_t > 3.0,
        "the camera was lost only after the samples below"
    );
    let frame_at = |t: f64| frame_stats_at(t).0;
    let (card, card_text) = frame_stats_at((lost_t + back_t) / 2.0);
    // The file camera restarts at the end of each 3 s loop; on a loaded machine the
    // restart can outlast the card's threshold, so a single sample may fall on the
    // card. The picture must show at one of three moments before the loss.
    let picture = [0.5, 1.5, 2.5]
        .map(frame_at)
        .into_iter()
        .fold(0.0, f64::max);
    assert!(
        card < 40.0 && picture > 60.0,
        "card luma {card}, picture luma {picture}"
    );
    // The card says so in white letters: not just a black picture.
    assert!(card_text > 180, "card's brightest luma {card_text}");
}

/// A microphone that cannot be opened (unplugged audio interface) raises its alarm,
/// and its track records silence for the whole hearing: the slot's mixer makes sound
/// with no source at all, on the pipeline clock.
#[test]
fn a_lost_microphone_records_silence_and_raises_an_alarm() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("courtroom.toml");
    std::fs::write(
        &cfg,
        format!(
            "[courtroom]\nid = \"t1\"\nname = \"Test courtroom\"\n\
             [alarms]\nsource_lost_ms = 1000\n\
             [[camera]]\nid = \"cam1\"\nkind = \"test\"\nrole = \"judge\"\n\
             [[microphone]]\nid = \"mic1\"\nkind = \"test\"\nrole = \"judge\"\n\
             [[microphone]]\nid = \"mic2\"\nkind = \"alsa\"\nrole = \"witness\"\ndevice = \"hw:CARD=CourtrecAbsent\"\n{}",
            users_toml()
        ),
    )
    .unwrap();
    let data = tmp.path().join("data");
    let mut d = Daemon::start(&data, Some(&cfg), "mic-lost");
    let clerk = d.login("clerk", "demo");
    assert!(
        wait_for(Duration::from_secs(15), || alarm_keys(&d, &clerk)
            .contains(&"mic_lost:mic2".to_string())),
        "mic_lost alarm: {:?}",
        alarm_keys(&d, &clerk)
    );
    // Every track, the lost microphone's included, seals its first seconds.
    let (id, h) = record_seconds(&d, &clerk, &data, "(2026)X0101民初6号", 3.0);
    d.stop();
    assert_whole(&data, &id, &h, &["mic1", "mic2"]);
}

/// Creates, opens, records `secs` of and closes a hearing; returns its id and the
/// hearing as closed.
fn record_seconds(
    d: &Daemon,
    clerk: &str,
    data: &std::path::Path,
    case: &str,
    secs: f64,
) -> (String, Value) {
    let h = d.ok(
        "POST",
        "/api/v1/hearings",
        clerk,
        Some(json!({"case_number": case, "title": "t", "visibility": "public"})),
    );
    let id = h["id"].as_str().unwrap().to_string();
    d.ok("POST", &format!("/api/v1/hearings/{id}/open"), clerk, None);
    wait_recorded(data, &id, secs);
    let h = d.ok("POST", &format!("/api/v1/hearings/{id}/close"), clerk, None);
    (id, h)
}

/// Each of `tracks` decodes and lasts as long as the hearing `h` recorded (0.3 s).
fn assert_whole(data: &std::path::Path, id: &str, h: &Value, tracks: &[&str]) {
    let ev = events_of(h, &["open", "close"]);
    let recorded = (ev[1]["media_time_ms"].as_i64().unwrap()
        - ev[0]["media_time_ms"].as_i64().unwrap()) as f64
        / 1000.0;
    for track in tracks {
        let paths = files(data, id, track);
        assert!(!paths.is_empty(), "{track} recorded");
        let mut total = 0.0;
        for p in &paths {
            assert_decodes(p);
            total += ffprobe(p).duration_s;
        }
        assert!(
            (total - recorded).abs() < 0.3,
            "{track}: {total:.3} s recorded of {recorded:.3} s"
        );
    }
}

/// A PulseAudio server of the test's own (a null sink playing a 440 Hz tone, whose
/// monitor is the "microphone"); killed on drop.
struct Pulse {
    server: std::process::Child,
    player: Option<std::process::Child>,
    address: String,
}

impl Pulse {
    fn start(dir: &std::path::Path) -> Pulse {
        let socket = dir.join("pulse.sock");
        let server = std::process::Command::new("pulseaudio")
            .args([
                "-n",
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--use-pid-file=no",
            ])
            .arg("-L")
            .arg(format!(
                "module-native-protocol-unix auth-anonymous=1 socket={}",
                socket.display()
            ))
            .args([
                "-L",
                "module-null-sink sink_name=room rate=48000 channels=1",
            ])
            .env("XDG_RUNTIME_DIR", dir)
            .env("HOME", dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("pulseaudio (scripts/test installs it)");
        let mut pulse = Pulse {
            server,
            player: None,
            address: format!("unix:{}", socket.display()),
        };
        assert!(
            wait_for(Duration::from_secs(10), || socket.exists()),
            "PulseAudio did not start"
        );
        pulse.player = Some(
            std::process::Command::new("gst-launch-1.0")
                .args([
                    "-q",
                    "audiotestsrc",
                    "is-live=true",
                    "freq=440",
                    "volume=0.5",
                    "!",
                    "audio/x-raw,rate=48000,channels=1",
                    "!",
                    "pulsesink",
                    "device=room",
                ])
                .arg(format!("server={}", pulse.address))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("gst-launch-1.0"),
        );
        pulse
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        for child in self
            .player
            .iter_mut()
            .chain(std::iter::once(&mut self.server))
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A PulseAudio microphone (the desktop sound server many court PCs run) is recorded
/// whole, in the 100 ms periods the pipelines ask of it (pipelines/mic-pulse.gst), as
/// long as the test microphone beside it, with the sound it hears.
#[test]
fn a_pulseaudio_microphone_is_recorded() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let pulse = Pulse::start(tmp.path());
    let cfg = tmp.path().join("courtroom.toml");
    std::fs::write(
        &cfg,
        format!(
            "[courtroom]\nid = \"t1\"\nname = \"Test courtroom\"\n\
             [[camera]]\nid = \"cam1\"\nkind = \"test\"\nrole = \"judge\"\n\
             [[microphone]]\nid = \"mic1\"\nkind = \"pulse\"\nrole = \"judge\"\ndevice = \"room.monitor\"\n\
             [[microphone]]\nid = \"mic2\"\nkind = \"test\"\nrole = \"witness\"\n{}",
            users_toml()
        ),
    )
    .unwrap();
    let data = tmp.path().join("data");
    let mut d = Daemon::start_env(
        &data,
        Some(&cfg),
        "pulse",
        &[("PULSE_SERVER", pulse.address.as_str())],
    );
    let clerk = d.login("clerk", "demo");
    assert!(
        wait_for(Duration::from_secs(15), || source_state(&d, &clerk, "mic1")
            ["state"]
            == "live"
            && alarm_keys(&d, &clerk).is_empty()),
        "the PulseAudio microphone: {} {:?}",
        source_state(&d, &clerk, "mic1"),
        alarm_keys(&d, &clerk)
    );
    // At once: the microphone joined its slot's mixer about a second after the start
    // (PulseAudio's connection), and the mixer's slip at that join once cost a hearing
    // opened in the next second that microphone's first 0.8 s (`capture::mixtime`).
    let (id, h) = record_seconds(&d, &clerk, &data, "(2026)X0101民初7号", 4.0);
    d.stop();
    drop(pulse);
    assert!(
        events_of(&h, &["device_fault"]).is_empty(),
        "{:?}",
        events_of(&h, &["device_fault"])
    );
    assert_whole(&data, &id, &h, &["mic1", "mic2"]);
    // What the microphone heard: the tone, throughout (a 440 Hz sine crosses zero
    // 880 times a second; silence or a broken stream would not).
    let paths = files(&data, &id, "mic1");
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error"])
        .args(input_format(&paths[0]))
        .arg("-i")
        .arg(format!(
            "concat:{}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join("|")
        ))
        .args(["-f", "s16le", "-ac", "1", "-ar", "48000", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let samples: Vec<i16> = out
        .stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    for (i, second) in samples.chunks_exact(48_000).enumerate() {
        let crossings = second
            .windows(2)
            .filter(|w| (w[0] < 0) != (w[1] < 0))
            .count();
        let peak = second.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!(
            (800..=960).contains(&crossings) && peak > 4_000,
            "second {i} of the PulseAudio track: {crossings} zero crossings, peak {peak}"
        );
    }
}
