//! The public livestream's policy, enforced by the server: only public hearings are
//! ever approved, by judges; the clerk cuts and restores; a recess for non-public
//! evidence or mediation pauses the stream; withdrawal and the close end it. Every
//! decision is an event of the hearing's record.

mod common;
use common::livestream::*;
use common::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

fn live(h: &Value) -> (bool, bool, bool) {
    let l = &h["livestream"];
    (
        l["approved"].as_bool().unwrap(),
        l["streaming"].as_bool().unwrap(),
        l["paused"].as_bool().unwrap(),
    )
}

#[test]
fn only_approved_public_hearings_stream_and_the_clerk_can_cut() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(&tmp.path().join("data"), None, "live-policy");
    let clerk = d.login("clerk", "demo");
    let judge = d.login("judge", "demo");
    let mk = |vis: &str| {
        d.ok(
            "POST",
            "/api/v1/hearings",
            &clerk,
            Some(json!({"case_number": format!("(2026)X0101民初8{}号", vis.len()), "title": "live", "visibility": vis})),
        )["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let admin = d.login("admin", "demo");
    // (A judge without a grant cannot even see a sealed hearing; an admin can.)
    for (vis, who) in [("non_public", judge.as_str()), ("sealed", admin.as_str())] {
        let id = mk(vis);
        let (st, v) = d.call(
            "POST",
            &format!("/api/v1/hearings/{id}/livestream"),
            Some(who),
            Some(json!({})),
        );
        assert_eq!(st, 403, "{vis}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains("never streamed"),
            "{v}"
        );
    }
    let id = mk("public");
    let p = |a: &str| format!("/api/v1/hearings/{id}/{a}");
    let (st, _) = d.call("POST", &p("livestream"), Some(&clerk), Some(json!({})));
    assert_eq!(st, 403, "clerks do not approve");
    let (st, _) = d.call(
        "POST",
        &p("livestream"),
        Some(&judge),
        Some(json!({"exclude": ["cam9"]})),
    );
    assert_eq!(st, 422);
    let (st, _) = d.call("POST", &p("livestream/cut"), Some(&clerk), None);
    assert_eq!(st, 409, "nothing to cut before approval");
    let h = d.ok(
        "POST",
        &p("livestream"),
        &judge,
        Some(json!({"exclude": ["cam2", "mic3"]})),
    );
    assert_eq!(
        live(&h),
        (true, false, false),
        "approved, streaming once opened"
    );
    assert_eq!(h["livestream"]["excluded"], json!(["cam2", "mic3"]));
    d.ok("POST", &p("open"), &clerk, None);
    let h = d.ok("GET", &format!("/api/v1/hearings/{id}"), &clerk, None);
    assert_eq!(live(&h), (true, true, false));

    let h = d.ok("POST", &p("livestream/cut"), &clerk, None);
    assert_eq!(live(&h), (true, true, true), "cut: paused");
    let (st, _) = d.call("POST", &p("livestream/cut"), Some(&clerk), None);
    assert_eq!(st, 409);
    let h = d.ok("POST", &p("livestream/restore"), &clerk, None);
    assert_eq!(live(&h), (true, true, false));

    let h = d.ok(
        "POST",
        &p("recess"),
        &clerk,
        Some(json!({"reason": "non_public_evidence"})),
    );
    assert_eq!(live(&h), (true, true, true), "non-public evidence: paused");
    d.ok("POST", &p("resume"), &clerk, None);
    let h = d.ok(
        "POST",
        &p("recess"),
        &clerk,
        Some(json!({"reason": "recess"})),
    );
    assert_eq!(
        live(&h),
        (true, true, false),
        "an ordinary recess is not hidden"
    );
    d.ok("POST", &p("resume"), &clerk, None);

    let h = d.ok("DELETE", &p("livestream"), &judge, None);
    assert_eq!(live(&h), (false, false, false), "withdrawn");
    let (st, _) = d.call("POST", &p("livestream/cut"), Some(&clerk), None);
    assert_eq!(st, 409);
    d.ok("POST", &p("livestream"), &judge, None);
    let h = d.ok("POST", &p("close"), &clerk, None);
    assert_eq!(live(&h), (true, false, false), "the close ends streaming");
    let (st, _) = d.call("POST", &p("livestream"), Some(&judge), None);
    assert_eq!(st, 409);

    // The record says who decided what, when.
    let kinds: Vec<&str> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .filter(|k| k.starts_with("livestream"))
        .collect();
    assert_eq!(
        kinds,
        [
            "livestream_approved",
            "livestream_cut",
            "livestream_restored",
            "livestream_withdrawn",
            "livestream_approved"
        ]
    );
    let ev = events_of(&h, &["livestream_approved"]);
    assert_eq!(ev[0]["actor"], "judge");
    assert_eq!(events_of(&h, &["livestream_cut"])[0]["actor"], "clerk");
    // And it still verifies.
    d.stop();
    let (code, text) = verify(&tmp.path().join("data/hearings").join(&id), &[]);
    assert_eq!(code, 0, "{text}");
}

#[test]
fn the_public_watches_over_whep_and_the_policy_holds() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    // The public sound's way to the relay is logged: it rarely stayed silent.
    let mut d = Daemon::start_env(
        &tmp.path().join("data"),
        None,
        "live-whep",
        &[("RUST_LOG", "info,courtrec::capture::pipeline=debug")],
    );
    let clerk = d.login("clerk", "demo");
    let judge = d.login("judge", "demo");
    let mk = |vis: &str, case: &str| {
        d.ok(
            "POST",
            "/api/v1/hearings",
            &clerk,
            Some(json!({"case_number": case, "title": "livestream", "visibility": vis, "scheduled_start": "2099-01-01T09:00:00Z"})),
        )["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let private = mk("non_public", "(2026)X0101民初901号");
    let id = mk("public", "(2026)X0101民初902号");
    let sdp =
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n";
    let whep = |h: &str, ct: &str, body: &str| -> u16 {
        reqwest::blocking::Client::new()
            .post(format!("{}/api/v1/hearings/{h}/whep", d.base))
            .header("content-type", ct)
            .body(body.to_string())
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(
        whep(&private, "application/sdp", sdp),
        404,
        "never streamed, and the public is not told it exists"
    );
    assert_eq!(whep(&id, "application/sdp", sdp), 403, "not approved yet");
    assert_eq!(whep("nope", "application/sdp", sdp), 404);
    assert_eq!(whep(&id, "application/json", sdp), 415);
    assert_eq!(whep(&id, "application/sdp", "hello"), 400, "malformed SDP");
    // The public list shows public hearings only, and nothing else of the archive.
    let (st, v) = d.call("GET", "/api/v1/public/hearings", None, None);
    assert_eq!(st, 200);
    let ids: Vec<&str> = v["hearings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&id.as_str()) && !ids.contains(&private.as_str()),
        "{v}"
    );
    assert!(v.to_string().find("tracks").is_none());

    d.ok(
        "POST",
        &format!("/api/v1/hearings/{id}/livestream"),
        &judge,
        Some(json!({"exclude": ["cam4"]})),
    );
    d.ok("POST", &format!("/api/v1/hearings/{id}/open"), &clerk, None);
    let out = std::process::Command::new("node")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/browser/live.mjs"
        ))
        .env("BASE_URL", &d.base)
        .env("SHOTS", artifacts("live"))
        .env("HEARING_ID", &id)
        .output()
        .expect("run node");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser test failed:\n{log}\nthe daemon's log:\n{}",
        d.log_notes("public sound flows")
    );
    let h = d.ok(
        "POST",
        &format!("/api/v1/hearings/{id}/close"),
        &clerk,
        None,
    );
    assert_eq!(h["livestream"]["streaming"], false);
    d.stop();
    // The stream's cut and withdrawal never touched the recording.
    let (code, text) = verify(&tmp.path().join("data/hearings").join(&id), &[]);
    assert_eq!(code, 0, "{text}");
    assert!(
        !text.contains("no media from"),
        "no gap in the recording: {text}"
    );
}

/// Viewers of a hearing, as its JSON reports them.
fn viewers(d: &Daemon, token: &str, id: &str) -> u64 {
    d.ok("GET", &format!("/api/v1/hearings/{id}"), token, None)["livestream"]["viewers"]
        .as_u64()
        .unwrap_or(0)
}

/// A viewer that stops reading (its process frozen: it neither reads its socket nor
/// answers ICE consent checks) is dropped by the server, and meanwhile the other
/// viewers and the recording carry on undisturbed. `courtrec watch` stands in for
/// the browsers: one process stays healthy, the other is stopped with SIGSTOP.
#[test]
fn a_viewer_that_stops_reading_is_dropped_without_slowing_the_others() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(&tmp.path().join("data"), None, "live-stuck");
    let clerk = d.login("clerk", "demo");
    let judge = d.login("judge", "demo");
    let id = public_hearing(&d, &clerk, "(2026)X0101民初903号", "livestream");
    d.ok(
        "POST",
        &format!("/api/v1/hearings/{id}/livestream"),
        &judge,
        None,
    );
    d.ok("POST", &format!("/api/v1/hearings/{id}/open"), &clerk, None);
    let url = format!("{}/api/v1/hearings/{id}/whep", d.base);
    let watch = |viewers: &str, seconds: &str| {
        std::process::Command::new(bin())
            .args(["watch", &url, "--viewers", viewers, "--seconds", seconds])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("courtrec watch")
    };
    let healthy = watch("2", "45");
    let mut stuck = watch("1", "300");
    assert!(
        wait_for(Duration::from_secs(30), || viewers(&d, &clerk, &id) == 3),
        "three viewers connect"
    );
    // Let the stuck viewer receive for a moment, then freeze it.
    std::thread::sleep(Duration::from_secs(3));
    kill(Pid::from_raw(stuck.id() as i32), Signal::SIGSTOP).unwrap();
    let frozen = std::time::Instant::now();
    assert!(
        wait_for(Duration::from_secs(40), || viewers(&d, &clerk, &id) == 2),
        "the frozen viewer is dropped"
    );
    eprintln!("frozen viewer dropped after {:?}", frozen.elapsed());
    let out = healthy.wait_with_output().unwrap();
    let _ = stuck.kill();
    let _ = stuck.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("healthy viewers: {r}");
    assert_eq!(r["viewers"], 2);
    for v in r["per_viewer"].as_array().unwrap() {
        // 45 s at 15 frames a second is 675 frames; half is plenty under CI load.
        assert!(v["video_frames"].as_u64().unwrap() > 330, "{v}");
        assert!(v["audio_packets"].as_u64().unwrap() > 300, "{v}");
        // Never a stall while the other viewer froze and was dropped.
        assert!(v["max_video_gap_ms"].as_f64().unwrap() < 2000.0, "{v}");
    }
    // Measured (-1 when no sender report arrived to map capture time) and low.
    let p95 = r["latency_ms"]["p95"].as_f64().unwrap();
    assert!((0.0..1500.0).contains(&p95), "{r}");
    // The recording saw nothing of it.
    assert!(
        !alarm_keys(&d, &clerk)
            .iter()
            .any(|k| k.contains("frames_dropped")),
        "{:?}",
        alarm_keys(&d, &clerk)
    );
    d.ok(
        "POST",
        &format!("/api/v1/hearings/{id}/close"),
        &clerk,
        None,
    );
    d.stop();
    let (code, text) = verify(&tmp.path().join("data/hearings").join(&id), &[]);
    assert_eq!(code, 0, "{text}");
    assert!(!text.contains("no media from"), "no gap: {text}");
}

/// WHEP offers that never connect hold no viewer's place: only connected viewers
/// count towards `max_viewers`, and pending offers are capped per address (429) and
/// in all, and dropped after `pending_timeout_s`.
#[test]
fn offers_that_never_connect_do_not_keep_the_public_out() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = courtroom_with_livestream(
        tmp.path(),
        "max_viewers = 1\nmax_pending_per_address = 2\nmax_pending = 10\npending_timeout_s = 3",
    );
    let d = Daemon::start(&tmp.path().join("data"), Some(&cfg), "live-pending");
    let clerk = d.login("clerk", "demo");
    let judge = d.login("judge", "demo");
    let id = public_hearing(&d, &clerk, "(2026)X0101民初950号", "pending offers");
    d.ok("POST", &format!("/api/v1/hearings/{id}/open"), &clerk, None);
    d.ok(
        "POST",
        &format!("/api/v1/hearings/{id}/livestream"),
        &judge,
        Some(json!({})),
    );
    let url = format!("{}/api/v1/hearings/{id}/whep", d.base);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let post = |from: &str| -> u16 {
        let pc = rt.block_on(courtrec::live::watch::new_viewer()).unwrap();
        let sdp = rt.block_on(courtrec::live::watch::offer(&pc)).unwrap();
        // Dropped without closing: the server side stays pending.
        drop(pc);
        reqwest::blocking::Client::builder()
            .local_address(from.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
            .post(&url)
            .header("content-type", "application/sdp")
            .body(sdp)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    // Offers that never connect, from two addresses: nobody is watching yet.
    assert_eq!(post("127.0.0.2"), 201);
    assert_eq!(post("127.0.0.2"), 201);
    assert_eq!(
        post("127.0.0.2"),
        429,
        "a third pending offer from one address"
    );
    assert_eq!(post("127.0.0.3"), 201, "another address still gets in");
    let v = d.ok("GET", &format!("/api/v1/hearings/{id}"), &judge, None);
    assert_eq!(
        v["livestream"]["viewers"], 0,
        "pending offers are not viewers"
    );
    // A real viewer connects though max_viewers is 1 and three offers are pending.
    let out = courtrec(&["watch", &url, "--viewers", "1", "--seconds", "4"]);
    assert!(
        out.status.success(),
        "a viewer connects: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The stale offers are dropped: that address may offer again.
    assert!(wait_for(Duration::from_secs(10), || post("127.0.0.2") == 201));
    d.ok(
        "POST",
        &format!("/api/v1/hearings/{id}/close"),
        &clerk,
        None,
    );
}

/// A courtroom that never streams (`[livestream] enabled = false`): no public picture,
/// mix or encoder in its pipeline, an approval refused in plain words before anything
/// is written, and the hearing recorded and verified as in any other courtroom.
#[test]
fn a_courtroom_without_a_livestream_records_and_refuses_approvals() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = courtroom_with_livestream(tmp.path(), "enabled = false");
    let out = courtrec(&["pipeline", "--config", cfg.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("name=comp "), "{text}");
    for name in ["name=pub ", "name=pub_mix", "live_video", "opusenc"] {
        assert!(!text.contains(name), "{name} in:\n{text}");
    }

    let data = tmp.path().join("data");
    let mut d = Daemon::start(&data, Some(&cfg), "live-off");
    let clerk = d.login("clerk", "demo");
    let judge = d.login("judge", "demo");
    let id = public_hearing(&d, &clerk, "(2026)X0101民初901号", "no stream");
    let p = |a: &str| format!("/api/v1/hearings/{id}/{a}");
    let (st, v) = d.call("POST", &p("livestream"), Some(&judge), Some(json!({})));
    assert_eq!(st, 409, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("does not livestream"),
        "{v}"
    );
    d.ok("POST", &p("open"), &clerk, None);
    wait_recorded(&data, &id, 3.0);
    let h = d.ok("POST", &p("close"), &clerk, None);
    assert_eq!(live(&h), (false, false, false));
    assert!(events_of(&h, &["livestream_approved"]).is_empty(), "{h}");
    // Viewers are told the same, even for a public hearing.
    let r = reqwest::blocking::Client::new()
        .post(format!("{}{}", d.base, p("whep")))
        .header("content-type", "application/sdp")
        .body("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.text().unwrap().contains("does not livestream"));
    d.stop();
    for track in ["cam1", "mic1", "composite"] {
        let f = files(&data, &id, track);
        assert!(!f.is_empty(), "{track}: no segments");
        assert_decodes(&f[0]);
    }
    let (code, text) = verify(&data.join("hearings").join(&id), &[]);
    assert_eq!(code, 0, "{text}");
}

/// A viewer's NACK is answered: the packet it names comes again, the same bytes. The
/// relay encrypts and sends each viewer's packets itself (not through webrtc-rs's
/// writer chain, whose NACK responder would have kept them), so it keeps the last
/// video packets and resends from them. The viewer here turns off SRTP replay
/// protection, so that a packet it did receive can be asked for and counted twice.
#[test]
fn a_video_packet_a_viewer_reports_lost_is_sent_again() {
    use webrtc::api::APIBuilder;
    use webrtc::api::media_engine::MediaEngine;
    use webrtc::api::setting_engine::SettingEngine;
    use webrtc::peer_connection::configuration::RTCConfiguration;
    use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
    use webrtc::rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};
    use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
    use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
    use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(&tmp.path().join("data"), None, "live-nack");
    let clerk = d.login("clerk", "demo");
    let judge = d.login("judge", "demo");
    let id = public_hearing(&d, &clerk, "(2026)X0101民初905号", "livestream");
    d.ok(
        "POST",
        &format!("/api/v1/hearings/{id}/livestream"),
        &judge,
        None,
    );
    d.ok("POST", &format!("/api/v1/hearings/{id}/open"), &clerk, None);
    let url = format!("{}/api/v1/hearings/{id}/whep", d.base);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut m = MediaEngine::default();
        m.register_default_codecs().unwrap();
        let mut s = SettingEngine::default();
        s.set_include_loopback_candidate(true);
        s.disable_srtp_replay_protection(true);
        let api = APIBuilder::new()
            .with_media_engine(m)
            .with_setting_engine(s)
            .build();
        let pc = Arc::new(
            api.new_peer_connection(RTCConfiguration::default())
                .await
                .unwrap(),
        );
        for kind in [RTPCodecType::Video, RTPCodecType::Audio] {
            pc.add_transceiver_from_kind(
                kind,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    send_encodings: vec![],
                }),
            )
            .await
            .unwrap();
        }
        // Every video packet as it arrives: (SSRC, sequence number, payload).
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        pc.on_track(Box::new(move |track, _, _| {
            let tx = tx.clone();
            if track.kind() == RTPCodecType::Video {
                tokio::spawn(async move {
                    while let Ok((p, _)) = track.read_rtp().await {
                        let _ = tx.send((p.header.ssrc, p.header.sequence_number, p.payload));
                    }
                });
            }
            Box::pin(async {})
        }));
        let offer = courtrec::live::watch::offer(&pc).await.unwrap();
        let r = reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/sdp")
            .body(offer)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        let answer = RTCSessionDescription::answer(r.text().await.unwrap()).unwrap();
        pc.set_remote_description(answer).await.unwrap();
        type Video = (u32, u16, bytes::Bytes);
        async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Video>) -> Video {
            tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .expect("video keeps coming")
                .expect("the track reads")
        }
        // Some video first, then one packet named lost.
        let mut first = Vec::new();
        for _ in 0..40 {
            first.push(next(&mut rx).await);
        }
        let (ssrc, lost, payload) = first[30].clone();
        let nack = TransportLayerNack {
            sender_ssrc: 1,
            media_ssrc: ssrc,
            nacks: vec![NackPair {
                packet_id: lost,
                lost_packets: 0,
            }],
        };
        pc.write_rtcp(&[Box::new(nack)]).await.unwrap();
        let mut again = None;
        for _ in 0..2000 {
            let (s, seq, p) = next(&mut rx).await;
            if s == ssrc && seq == lost {
                again = Some(p);
                break;
            }
        }
        assert_eq!(again, Some(payload), "packet {lost} sent again, unchanged");
        pc.close().await.unwrap();
    });
    d.ok(
        "POST",
        &format!("/api/v1/hearings/{id}/close"),
        &clerk,
        None,
    );
    d.stop();
}
