//! The daemon under systemd (which is not PID 1 here): the notify protocol spoken to a
//! socket the test opens (`NOTIFY_SOCKET`), as systemd would see it with `Type=notify`
//! and `WatchdogSec=`: READY once the API listens, a status line a person can read,
//! watchdog pings, and no pings once the capture pipeline stalls (a test hook), so
//! systemd would restart it. The unit file itself is checked by `systemd-analyze`.

mod common;
use common::*;
use serde_json::json;
use std::collections::HashMap;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// The journal's socket, played by the test while it holds this (removed on drop).
/// None when a real journald owns the path: its records then go there.
struct Journal {
    sock: UnixDatagram,
}

const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

impl Journal {
    fn open() -> Option<Journal> {
        if std::path::Path::new(JOURNAL_SOCKET).exists() {
            eprintln!("a journald runs here: the journal records are not checked");
            return None;
        }
        std::fs::create_dir_all("/run/systemd/journal").unwrap();
        let sock = UnixDatagram::bind(JOURNAL_SOCKET).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Some(Journal { sock })
    }

    /// The first record received, within `secs`, whose field `key` is `value`.
    fn record_with(&self, key: &str, value: &str, secs: f64) -> HashMap<String, String> {
        let end = Instant::now() + Duration::from_secs_f64(secs);
        let mut buf = vec![0u8; 1 << 16];
        let mut seen = Vec::new();
        while Instant::now() < end {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let r = journal_fields(&buf[..n]);
                if r.get(key).is_some_and(|v| v == value) {
                    return r;
                }
                seen.push(r);
            }
        }
        panic!("no journal record with {key}={value}: {seen:?}");
    }
}

/// The fields of one record of journald's native protocol: `KEY=value\n`, or
/// `KEY\n`, a 64-bit little-endian length, the value and `\n`.
fn journal_fields(mut b: &[u8]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    while let Some(end) = b.iter().position(|&c| c == b'=' || c == b'\n') {
        let key = String::from_utf8_lossy(&b[..end]).to_string();
        let value;
        if b[end] == b'=' {
            let stop = b[end..].iter().position(|&c| c == b'\n').unwrap() + end;
            value = &b[end + 1..stop];
            b = &b[stop + 1..];
        } else {
            let len = u64::from_le_bytes(b[end + 1..end + 9].try_into().unwrap()) as usize;
            value = &b[end + 9..end + 9 + len];
            b = &b[end + 10 + len..];
        }
        out.insert(key, String::from_utf8_lossy(value).to_string());
    }
    out
}

impl Drop for Journal {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(JOURNAL_SOCKET);
    }
}

/// Every message received until `until` says stop or `secs` pass.
fn collect(sock: &UnixDatagram, secs: f64, mut until: impl FnMut(&str) -> bool) -> Vec<String> {
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut out = Vec::new();
    let mut buf = vec![0u8; 4096];
    while Instant::now() < end {
        if let Ok(n) = sock.recv(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).to_string();
            let stop = until(&m);
            out.push(m);
            if stop {
                break;
            }
        }
    }
    out
}

#[test]
fn tells_systemd_it_is_ready_how_it_is_and_stops_pinging_when_capture_stalls() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let notify = path.to_str().unwrap().to_string();
    // A 2 s watchdog: pinged every second while the box works.
    let env = [
        ("NOTIFY_SOCKET", notify.as_str()),
        ("WATCHDOG_USEC", "2000000"),
    ];
    let mut d = Daemon::start_env(&tmp.path().join("data"), None, "service", &env);
    let first = collect(&sock, 20.0, |m| m.contains("READY=1"));
    let ready = first.iter().find(|m| m.contains("READY=1"));
    assert!(ready.is_some(), "no READY=1: {first:?}");
    assert!(
        ready
            .unwrap()
            .contains("STATUS=idle, no hearing open, 9 tracks, disk "),
        "{ready:?}"
    );
    let msgs = collect(&sock, 4.0, |_| false);
    let pings = msgs.iter().filter(|m| m.contains("WATCHDOG=1")).count();
    assert!(pings >= 2, "pings while idle: {msgs:?}");

    let clerk = d.login("clerk", "demo");
    let h = d.ok(
        "POST",
        "/api/v1/hearings",
        &clerk,
        Some(json!({"case_number": "(2026)X0101民初123号", "title": "service", "visibility": "public"})),
    );
    let id = h["id"].as_str().unwrap().to_string();
    d.ok("POST", &format!("/api/v1/hearings/{id}/open"), &clerk, None);
    let msgs = collect(&sock, 10.0, |m| m.contains("STATUS=recording"));
    let rec = msgs.iter().find(|m| m.contains("STATUS=recording"));
    assert!(
        rec.is_some_and(
            |m| m.contains("STATUS=recording (2026)X0101民初123号, 9 tracks")
                && m.contains("WATCHDOG=1")
        ),
        "{msgs:?}"
    );
    d.stop();
    let msgs = collect(&sock, 2.0, |m| m.contains("STOPPING=1"));
    assert!(
        msgs.iter().any(|m| m.contains("STOPPING=1")),
        "SIGTERM: {msgs:?}"
    );

    // The pipeline stalls a few seconds after start (no frame reaches the recorder
    // from the 3000th on, see archive::fault): the watchdog must say so and stop
    // pinging, whatever the hearing does meanwhile.
    d.env
        .push(("COURTREC_FAULTS".into(), "capture.stall@3000+".into()));
    d.restart();
    let msgs = collect(&sock, 60.0, |m| m.contains("NOT WORKING"));
    let bad = msgs.iter().find(|m| m.contains("NOT WORKING"));
    assert!(
        bad.is_some_and(
            |m| m.contains("no frames from the capture pipeline") && !m.contains("WATCHDOG=1")
        ),
        "{msgs:?}"
    );
    let after = collect(&sock, 5.0, |_| false);
    assert!(
        after.len() >= 3 && after.iter().all(|m| !m.contains("WATCHDOG=1")),
        "pings after the stall: {after:?}"
    );
    d.stop();
}

#[test]
fn the_unit_file_passes_systemd_analyze() {
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/courtrec.service"),
    )
    .unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("WatchdogSec="));
    // verify wants the binary the unit names: point it at the one under test.
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("courtrec.service");
    std::fs::write(&copy, unit.replace("/usr/bin/courtrec", bin())).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !err.contains("courtrec.service:"),
        "systemd-analyze verify: {err}"
    );
    let out = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=30"])
        .arg(&copy)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let level: f64 = text
        .lines()
        .find_map(|l| l.split("exposure level for courtrec.service: ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {text}"));
    assert!(
        out.status.success() && level <= 3.0,
        "exposure {level}: {text}"
    );
}

#[test]
fn config_check_says_valid_or_names_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("room.toml");
    let base = "[courtroom]\nid = \"room-7\"\nname = \"Room 7\"\n\
                [[camera]]\nid = \"judge\"\nkind = \"test\"\nrole = \"judge\"\n\
                [[microphone]]\nid = \"m1\"\nkind = \"test\"\nrole = \"judge\"\n";
    std::fs::write(&good, format!("{base}{}", users_toml())).unwrap();
    let out = courtrec(&["config", "check", good.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("valid") && said.contains("room-7"), "{said}");

    // A camera URL that would splice an element into the pipeline, on line 16.
    let bad = tmp.path().join("bad.toml");
    std::fs::write(
        &bad,
        format!(
            "{base}[[camera]]\nid = \"cam2\"\nkind = \"rtsp\"\nrole = \"witness\"\n\
             url = \"rtsp://cam/x\\\" ! filesink location=/tmp/x \\\"\"\n"
        ),
    )
    .unwrap();
    let out = courtrec(&["config", "check", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("{}:16:", bad.display())) && err.contains("field `url`"),
        "{err}"
    );
    // Unknown keys and missing files are errors with their line too.
    std::fs::write(
        &bad,
        format!("{base}[server]\nlisten = \"127.0.0.1:80\"\nlisen = 1\n"),
    )
    .unwrap();
    let out = courtrec(&["config", "check", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(":14:") && err.contains("lisen"), "{err}");
    let out = courtrec(&["config", "check", "/nonexistent/courtrec.toml"]);
    assert_eq!(out.status.code(), Some(2));

    // Every error is named in one pass, each with its line.
    std::fs::write(
        &bad,
        format!(
            "[courtroom]\nid = \"room 7\"\nname = \"Room 7\"\n\
             [[camera]]\nid = \"judge\"\nkind = \"rtsp\"\nrole = \"judge\"\n\
             [[microphone]]\nid = \"m1\"\nkind = \"test\"\nrole = \"judge\"\n\
             [metrics]\ntoken = \"short\"\n{}",
            users_toml()
        ),
    )
    .unwrap();
    let out = courtrec(&["config", "check", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let at = |line: usize| format!("{}:{line}:", bad.display());
    assert!(
        err.contains(&format!("{} field `courtroom.id`", at(1))),
        "{err}"
    );
    assert!(
        err.contains("camera 'judge' (kind rtsp): field `url`"),
        "{err}"
    );
    assert!(
        err.contains(&format!("{} field `metrics.token`", at(12))),
        "{err}"
    );
    assert!(err.contains("3 error(s)"), "{err}");
}

/// `GET /metrics` with `token`: status and body.
fn scrape(d: &Daemon, token: Option<&str>) -> (u16, String) {
    let mut req = reqwest::blocking::Client::new().get(format!("{}/metrics", d.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

/// The value of the sample `name{labels}` (labels as Prometheus prints them).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn metrics_are_for_court_it_and_say_what_the_box_does() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("room.toml");
    let token = "prometheus-0123456789abcdef";
    std::fs::write(
        &cfg,
        format!(
            "[courtroom]\nid = \"room-7\"\nname = \"Room 7\"\n\
             [[camera]]\nid = \"judge\"\nkind = \"test\"\nrole = \"judge\"\n\
             [[microphone]]\nid = \"m1\"\nkind = \"test\"\nrole = \"judge\"\n\
             [metrics]\ntoken = \"{token}\"\n{}",
            users_toml()
        ),
    )
    .unwrap();
    let mut d = Daemon::start(&tmp.path().join("data"), Some(&cfg), "metrics");
    let clerk = d.login("clerk", "demo");
    let admin = d.login("admin", "demo");
    assert_eq!(scrape(&d, None).0, 401);
    assert_eq!(scrape(&d, Some(&clerk)).0, 401, "a clerk is not court IT");
    assert_eq!(scrape(&d, Some("prometheus-0123456789abcdeX")).0, 401);
    let id = common::evidence::record(&d, &clerk, "(2026)X0101民初9号", 4.0);
    let (code, text) = scrape(&d, Some(token));
    assert_eq!(code, 200, "{text}");
    let (code, by_admin) = scrape(&d, Some(&admin));
    assert_eq!(code, 200, "{by_admin}");

    // Parsed by Prometheus's own client library (not ours).
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families as f\n\
             print(len(list(f(sys.stdin.read()))))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(text.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success(),
        "not OpenMetrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );

    let h = d.ok("GET", &format!("/api/v1/hearings/{id}"), &clerk, None);
    let segs: u64 = h["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"] == "judge")
        .map(|t| t["segments"].as_u64().unwrap())
        .sum();
    assert!(segs >= 2, "{h}");
    for (series, want) in [
        (
            "courtrec_source_up{source=\"judge\",kind=\"camera\"}",
            Some(1.0),
        ),
        (
            "courtrec_source_up{source=\"m1\",kind=\"microphone\"}",
            Some(1.0),
        ),
        ("courtrec_hearing_state{state=\"idle\"}", Some(1.0)),
        ("courtrec_hearing_state{state=\"recording\"}", Some(0.0)),
        (
            "courtrec_segments_written_total{track=\"judge\"}",
            Some(segs as f64),
        ),
        ("courtrec_hearings_damaged", Some(0.0)),
        ("courtrec_livestream_viewers", Some(0.0)),
        ("courtrec_disk_reserve_bytes", Some((256u64 << 20) as f64)),
    ] {
        assert_eq!(sample(&text, series), want, "{series} in:\n{text}");
    }
    for series in [
        "courtrec_written_bytes_total{track=\"judge\"}",
        "courtrec_track_frames_total{track=\"m1\"}",
        "courtrec_fsync_seconds_count",
        "courtrec_disk_free_bytes",
    ] {
        assert!(
            sample(&text, series).is_some_and(|v| v > 0.0),
            "{series} in:\n{text}"
        );
    }
    assert!(
        sample(&text, "courtrec_microphone_peak_dbfs{source=\"m1\"}").is_some(),
        "{text}"
    );
    // While recording, the state says so.
    let h = d.ok(
        "POST",
        "/api/v1/hearings",
        &clerk,
        Some(json!({"case_number": "(2026)X0101民初10号", "title": "m", "visibility": "public"})),
    );
    let id2 = h["id"].as_str().unwrap().to_string();
    d.ok(
        "POST",
        &format!("/api/v1/hearings/{id2}/open"),
        &clerk,
        None,
    );
    let (_, text) = scrape(&d, Some(token));
    assert_eq!(
        sample(&text, "courtrec_hearing_state{state=\"recording\"}"),
        Some(1.0),
        "{text}"
    );
    d.ok(
        "POST",
        &format!("/api/v1/hearings/{id2}/close"),
        &clerk,
        None,
    );
    d.stop();
}

#[test]
fn an_unsynchronised_clock_is_an_alarm_before_and_a_fault_during_a_hearing() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    // Run as systemd runs it (JOURNAL_STREAM set): its records reach the journal's
    // socket, which this test plays (there is no journald on these machines).
    let journal = Journal::open();
    let d = Daemon::start_env(
        &tmp.path().join("data"),
        None,
        "clock",
        &[
            ("COURTREC_TEST_CLOCK_SYNC", "unsynchronised"),
            ("JOURNAL_STREAM", "8:12345"),
        ],
    );
    let clerk = d.login("clerk", "demo");
    assert!(
        wait_for(Duration::from_secs(10), || alarm_keys(&d, &clerk)
            .contains(&"clock_unsynchronised".to_string())),
        "{:?}",
        alarm_keys(&d, &clerk)
    );
    if let Some(j) = &journal {
        // The alarm is a structured journal record: its priority, who logged it, and
        // the alarm's key as a field of its own (`journalctl ALARM=clock_unsynchronised`).
        let alarm = j.record_with("ALARM", "clock_unsynchronised", 10.0);
        let field = |k: &str| alarm.get(k).map(String::as_str).unwrap_or("");
        assert_eq!(field("PRIORITY"), "4", "a warning: {alarm:?}");
        assert_eq!(field("SYSLOG_IDENTIFIER"), "courtrec", "{alarm:?}");
        assert!(
            field("MESSAGE").starts_with("ALARM: The box's clock is not synchronised"),
            "{alarm:?}"
        );
    }
    let h = d.ok(
        "POST",
        "/api/v1/hearings",
        &clerk,
        Some(
            json!({"case_number": "(2026)X0101民初11号", "title": "clock", "visibility": "public"}),
        ),
    );
    let id = h["id"].as_str().unwrap().to_string();
    d.ok("POST", &format!("/api/v1/hearings/{id}/open"), &clerk, None);
    let faults = || {
        let h = d.ok("GET", &format!("/api/v1/hearings/{id}"), &clerk, None);
        events_of(&h, &["device_fault"])
    };
    assert!(
        wait_for(Duration::from_secs(10), || faults()
            .iter()
            .any(|e| e.to_string().contains("not synchronised"))),
        "{:?}",
        faults()
    );
    d.ok(
        "POST",
        &format!("/api/v1/hearings/{id}/close"),
        &clerk,
        None,
    );
}

/// The frames the track's encoder has delivered so far (court IT's metric).
fn frames(d: &Daemon, token: &str, track: &str) -> f64 {
    let (_, text) = scrape(d, Some(token));
    sample(
        &text,
        &format!("courtrec_track_frames_total{{track=\"{track}\"}}"),
    )
    .unwrap_or(0.0)
}

/// How far after the open each track's first segment starts (ms), from the manifest.
fn start_lag_ms(hearing: &std::path::Path) -> HashMap<String, i64> {
    let text = std::fs::read_to_string(hearing.join("manifest.jsonl")).unwrap();
    let recs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["record"].clone())
        .collect();
    let open = recs
        .iter()
        .find(|r| r["kind"] == "open")
        .and_then(|r| r["media_time_ns"].as_i64())
        .unwrap();
    let mut lag = HashMap::new();
    for r in recs.iter().filter(|r| r["type"] == "segment") {
        let track = r["track"].as_str().unwrap().to_string();
        lag.entry(track)
            .or_insert((r["media_start_ns"].as_i64().unwrap() - open) / 1_000_000);
    }
    lag
}

/// How long the box has rested, from its status (None: it works).
fn rest_ms(d: &Daemon, token: &str) -> Option<u64> {
    d.ok("GET", "/api/v1/status", token, None)["resting_ms"].as_u64()
}

/// Between hearings and in a recess nothing consumes the recording encoders' output,
/// so they rest (a box idles most of the day); every track still starts at the open,
/// at the resume after a recess, and in the next hearing. A courtroom may also record
/// without a composite (`[composite] enabled = false`): its cameras and microphones
/// only. The frames are awaited with a deadline, not counted over a fixed time (a
/// starved CI machine once counted 30 of the usual 60 in a 3.5 s hearing).
#[test]
fn encoders_rest_between_hearings_and_every_track_starts_at_the_open() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("room.toml");
    let room = |composite: bool| {
        format!(
            "[courtroom]\nid = \"room-8\"\nname = \"Room 8\"\n[composite]\nenabled = {composite}\n\
             [[camera]]\nid = \"judge\"\nkind = \"test\"\nrole = \"judge\"\n\
             [[microphone]]\nid = \"m1\"\nkind = \"test\"\nrole = \"judge\"\n{}",
            users_toml()
        )
    };
    std::fs::write(&cfg, room(true)).unwrap();
    let data = tmp.path().join("data");
    let mut d = Daemon::start(&data, Some(&cfg), "rest");
    let admin = d.login("admin", "demo");
    let clerk = d.login("clerk", "demo");
    let resting = |what: &str| {
        evidence::sleep_s(0.5);
        let before = ["judge", "m1", "composite"].map(|t| frames(&d, &admin, t));
        evidence::sleep_s(1.5);
        let after = ["judge", "m1", "composite"].map(|t| frames(&d, &admin, t));
        assert_eq!(before, after, "{what}: the encoders should rest");
        assert!(
            wait_for(Duration::from_secs(10), || rest_ms(&d, &admin).is_some()),
            "{what}: the status should say the box rests"
        );
    };
    let working = |what: &str| {
        assert!(
            wait_for(Duration::from_secs(10), || rest_ms(&d, &admin).is_none()),
            "{what}: the status says the box rests while it records"
        );
    };
    // Waits until the judge camera's encoder has delivered `n` frames since `from`
    // were counted: a deadline rather than a fixed time, so that a starved machine
    // slows the test down instead of failing it.
    let delivered = |from: f64, n: f64, what: &str| {
        assert!(
            wait_for(Duration::from_secs(20), || frames(&d, &admin, "judge")
                >= from + n),
            "{what}: the encoder delivered {} frames in 20 s, not {n}",
            frames(&d, &admin, "judge") - from
        );
    };
    resting("after start");
    for case in ["(2026)X0101民初21号", "(2026)X0101民初22号"] {
        let id = replica::hearing(&d, &clerk, case);
        let p = |a: &str| format!("/api/v1/hearings/{id}/{a}");
        let before = frames(&d, &admin, "judge");
        d.ok("POST", &p("open"), &clerk, None);
        delivered(before, 20.0, &format!("{case}: after the open"));
        working(case);
        let mark = json!({"text": "Exhibit 3 shown"});
        d.ok("POST", &p("marks"), &clerk, Some(mark));
        let recess = json!({"reason": "recess", "note": "lunch"});
        d.ok("POST", &p("recess"), &clerk, Some(recess));
        resting(&format!("{case}: in recess"));
        let before = frames(&d, &admin, "judge");
        d.ok("POST", &p("resume"), &clerk, None);
        delivered(before, 20.0, &format!("{case}: after the resume"));
        d.ok("POST", &p("close"), &clerk, None);
        let dir = data.join("hearings").join(&id);
        let lag = start_lag_ms(&dir);
        assert_eq!(lag.len(), 3, "{case}: {lag:?}");
        // A track whose encoder missed the keyframe request would start at its next
        // keyframe, up to a second late.
        assert!(
            lag.values().all(|&ms| (0..300).contains(&ms)),
            "{case}: every track starts at the open: {lag:?}"
        );
        evidence::expect(&dir, &[], evidence::OK, "VERIFIED", case);
        resting(case);
    }

    d.stop();
    std::fs::write(&cfg, room(false)).unwrap();
    d.restart();
    let clerk = d.login("clerk", "demo");
    let id = evidence::record(&d, &clerk, "(2026)X0101民初23号", 3.0);
    let h = d.ok("GET", &format!("/api/v1/hearings/{id}"), &clerk, None);
    let names: Vec<&str> = h["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["judge", "m1"], "no composite: {h}");
    assert!(h["recorded_ms"].as_u64().unwrap() > 2000, "{h}");
    let dir = data.join("hearings").join(&id);
    evidence::expect(&dir, &[], evidence::OK, "VERIFIED", "without a composite");
    d.stop();
}
