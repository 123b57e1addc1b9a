//! The public livestream's policy, enforced by the server: only public hearings are
//! ever approved, by judges; the clerk cuts and restores; a recess for non-public
//! evidence or mediation pauses the stream; withdrawal and the close end it. Every
//! decision is an event of the hearing's record.

mod common;
use common::*;
use serde_json::{Value, json};
use std::time::Duration;

fn live(h: &Value) -> (bool, bool, bool) {
    let l = &h["livestream"];
    (
        l["approved"].as_bool().unwrap(),
        l["streaming"].as_bool().unwrap(),
        l["paused"].as_bool().unwrap(),
    )
}

/// A one-camera, one-microphone courtroom whose `[livestream]` section is `livestream`
/// (TOML lines); returns the config file's path.
fn courtroom_with_livestream(dir: &std::path::Path, livestream: &str) -> std::path::PathBuf {
    let cfg = dir.join("courtroom.toml");
    std::fs::write(
        &cfg,
        format!(
            "[courtroom]\nid = \"t1\"\nname = \"Livestream test\"\n\
             [livestream]\n{livestream}\n\
             [[camera]]\nid = \"cam1\"\nkind = \"test\"\nrole = \"judge\"\n\
             [[microphone]]\nid = \"mic1\"\nkind = \"test\"\nrole = \"judge\"\n{}",
            users_toml()
        ),
    )
    .unwrap();
    cfg
}

/// Schedules a public hearing; returns its id.
fn public_hearing(d: &Daemon, clerk: &str, case_number: &str, title: &str) -> String {
    d.ok(
        "POST",
        "/api/v1/hearings",
        clerk,
        Some(json!({"case_number": case_number, "title": title, "visibility": "public"})),
    )["id"]
        .as_str()
        .unwrap()
        .to_string()
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

/// A real RTMP server on loopback: Debian's nginx with its RTMP module.
struct Nginx(std::process::Child);

impl Nginx {
    fn start(dir: &std::path::Path, port: u16) -> Nginx {
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        std::fs::write(
            dir.join("nginx.conf"),
            format!(
                "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n\
                 daemon off; master_process off; worker_processes 1;\n\
                 error_log {d}/logs/error.log; pid {d}/nginx.pid;\n\
                 events {{ worker_connections 64; }}\n\
                 rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; record off; }} }} }}\n",
                d = dir.display()
            ),
        )
        .unwrap();
        let child = std::process::Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .spawn()
            .expect("nginx (scripts/test installs nginx and libnginx-mod-rtmp)");
        std::thread::sleep(std::time::Duration::from_millis(500));
        Nginx(child)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What ffprobe reads from the RTMP server: the codecs of the stream, or None.
fn probe_rtmp(url: &str) -> Option<Vec<String>> {
    let out = std::process::Command::new("timeout")
        .args([
            "15",
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(url)
        .output()
        .ok()?;
    let codecs: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    (out.status.success() && !codecs.is_empty()).then_some(codecs)
}

#[test]
fn an_approved_hearing_is_pushed_over_rtmp_and_reconnects() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("rtmp://127.0.0.1:{port}/live/court1");
    let cfg = courtroom_with_livestream(tmp.path(), &format!("rtmp_url = \"{url}\""));
    let nginx = Nginx::start(&tmp.path().join("nginx"), port);
    let d = Daemon::start(&tmp.path().join("data"), Some(&cfg), "live-rtmp");
    let clerk = d.login("clerk", "demo");
    let judge = d.login("judge", "demo");
    let id = public_hearing(&d, &clerk, "(2026)X0101民初950号", "rtmp");
    d.ok("POST", &format!("/api/v1/hearings/{id}/open"), &clerk, None);
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(probe_rtmp(&url), None, "nothing is pushed before approval");
    d.ok(
        "POST",
        &format!("/api/v1/hearings/{id}/livestream"),
        &judge,
        None,
    );
    assert!(
        wait_for(std::time::Duration::from_secs(30), || probe_rtmp(&url)
            .is_some_and(
                |c| c.contains(&"h264".to_string()) && c.contains(&"aac".to_string())
            )),
        "the platform receives H.264 and AAC"
    );
    // The platform goes down (an alarm for court IT) and comes back: the push
    // reconnects by itself.
    drop(nginx);
    assert!(
        wait_for(std::time::Duration::from_secs(20), || alarm_keys(
            &d, &clerk
        )
        .contains(&"rtmp_push_failed".to_string())),
        "alarm while the platform is down: {:?}",
        alarm_keys(&d, &clerk)
    );
    let nginx = Nginx::start(&tmp.path().join("nginx"), port);
    assert!(
        wait_for(std::time::Duration::from_secs(40), || probe_rtmp(&url)
            .is_some()),
        "the push reconnects"
    );
    assert!(
        wait_for(std::time::Duration::from_secs(10), || !alarm_keys(
            &d, &clerk
        )
        .contains(&"rtmp_push_failed".to_string())),
        "the alarm clears"
    );
    // Withdrawn: the push stops.
    d.ok(
        "DELETE",
        &format!("/api/v1/hearings/{id}/livestream"),
        &judge,
        None,
    );
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(probe_rtmp(&url), None, "the push stops with the approval");
    drop(nginx);
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
    assert!(r["latency_ms"]["p95"].as_f64().unwrap() < 1500.0, "{r}");
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

/// What the WHIP test platform saw.
#[derive(Default)]
struct WhipSeen {
    posts: std::sync::atomic::AtomicU64,
    unauthorized: std::sync::atomic::AtomicU64,
    deletes: std::sync::atomic::AtomicU64,
    /// Offers that were send-only, as RFC 9725 asks.
    sendonly_offers: std::sync::atomic::AtomicU64,
    h264_packets: std::sync::atomic::AtomicU64,
    opus_packets: std::sync::atomic::AtomicU64,
}

/// A WHIP endpoint on loopback (RFC 9725): POST an offer with the bearer token →
/// 201 Created, the answer and a Location; DELETE there ends the session. It counts
/// the H.264 and Opus packets it receives. Dropping it takes the platform down
/// (its connections vanish without a goodbye).
struct WhipPlatform {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WhipPlatform {
    fn start(port: u16, seen: std::sync::Arc<WhipSeen>) -> WhipPlatform {
        use axum::extract::{Path, State};
        use axum::http::{HeaderMap, StatusCode};
        use std::sync::Arc;
        use std::sync::atomic::Ordering::Relaxed;
        use webrtc::api::APIBuilder;
        use webrtc::api::media_engine::MediaEngine;
        use webrtc::api::setting_engine::SettingEngine;
        use webrtc::peer_connection::RTCPeerConnection;
        use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
        use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
        use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
        use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
        type Sessions = Arc<tokio::sync::Mutex<Vec<Arc<RTCPeerConnection>>>>;
        #[derive(Clone)]
        struct St(Arc<WhipSeen>, Sessions);
        async fn post(
            State(St(seen, sessions)): State<St>,
            h: HeaderMap,
            offer: String,
        ) -> (StatusCode, HeaderMap, String) {
            seen.posts.fetch_add(1, Relaxed);
            let mut out = HeaderMap::new();
            if h.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer s3cret") {
                seen.unauthorized.fetch_add(1, Relaxed);
                return (StatusCode::UNAUTHORIZED, out, String::new());
            }
            if h.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/sdp") {
                return (StatusCode::UNSUPPORTED_MEDIA_TYPE, out, String::new());
            }
            if offer.matches("a=sendonly").count() == 2 && !offer.contains("a=sendrecv") {
                seen.sendonly_offers.fetch_add(1, Relaxed);
            }
            let mut m = MediaEngine::default();
            m.register_default_codecs().unwrap();
            let mut s = SettingEngine::default();
            s.set_ice_multicast_dns_mode(webrtc::ice::mdns::MulticastDnsMode::Disabled);
            s.set_include_loopback_candidate(true);
            let api = APIBuilder::new()
                .with_media_engine(m)
                .with_setting_engine(s)
                .build();
            let pc = Arc::new(api.new_peer_connection(Default::default()).await.unwrap());
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
            let seen2 = seen.clone();
            pc.on_track(Box::new(move |track, _, _| {
                let seen = seen2.clone();
                tokio::spawn(async move {
                    let mime = track.codec().capability.mime_type.to_lowercase();
                    while track.read_rtp().await.is_ok() {
                        match mime.as_str() {
                            "video/h264" => seen.h264_packets.fetch_add(1, Relaxed),
                            "audio/opus" => seen.opus_packets.fetch_add(1, Relaxed),
                            _ => 0,
                        };
                    }
                });
                Box::pin(async {})
            }));
            pc.set_remote_description(RTCSessionDescription::offer(offer).unwrap())
                .await
                .unwrap();
            let answer = pc.create_answer(None).await.unwrap();
            let mut gathered = pc.gathering_complete_promise().await;
            pc.set_local_description(answer).await.unwrap();
            let _ = gathered.recv().await;
            let sdp = pc.local_description().await.unwrap().sdp;
            let mut list = sessions.lock().await;
            list.push(pc);
            out.insert(
                "location",
                format!("/whip/session/{}", list.len() - 1).parse().unwrap(),
            );
            (StatusCode::CREATED, out, sdp)
        }
        async fn delete(State(St(seen, sessions)): State<St>, Path(n): Path<usize>) -> StatusCode {
            seen.deletes.fetch_add(1, Relaxed);
            match sessions.lock().await.get(n) {
                Some(pc) => {
                    let _ = pc.close().await;
                    StatusCode::OK
                }
                None => StatusCode::NOT_FOUND,
            }
        }
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                let app = axum::Router::new()
                    .route("/whip", axum::routing::post(post))
                    .route("/whip/session/{n}", axum::routing::delete(delete))
                    .with_state(St(seen, Arc::default()));
                let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
                    .await
                    .unwrap();
                axum::serve(l, app)
                    .with_graceful_shutdown(async move {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
            // Dropping the runtime drops every connection: the platform is gone.
            rt.shutdown_timeout(Duration::from_secs(1));
        });
        WhipPlatform {
            stop: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for WhipPlatform {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The same stream published over WHIP to a platform: only while streamed, with the
/// bearer token and a send-only offer, ended with a DELETE when withdrawn, and
/// published again, with an alarm meanwhile, after the platform went down.
#[test]
fn an_approved_hearing_is_published_over_whip_and_reconnects() {
    use std::sync::atomic::Ordering::Relaxed;
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = courtroom_with_livestream(
        tmp.path(),
        &format!("whip_url = \"http://127.0.0.1:{port}/whip\"\nwhip_token = \"s3cret\""),
    );
    let seen = std::sync::Arc::new(WhipSeen::default());
    let platform = WhipPlatform::start(port, seen.clone());
    let d = Daemon::start(&tmp.path().join("data"), Some(&cfg), "live-whip");
    let clerk = d.login("clerk", "demo");
    let judge = d.login("judge", "demo");
    let id = public_hearing(&d, &clerk, "(2026)X0101民初960号", "whip");
    d.ok("POST", &format!("/api/v1/hearings/{id}/open"), &clerk, None);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        seen.posts.load(Relaxed),
        0,
        "nothing is published before approval"
    );
    let live_path = format!("/api/v1/hearings/{id}/livestream");
    d.ok("POST", &live_path, &judge, None);
    assert!(
        wait_for(Duration::from_secs(30), || seen.h264_packets.load(Relaxed)
            > 100
            && seen.opus_packets.load(Relaxed) > 20),
        "H.264 and Opus arrive: {} {}",
        seen.h264_packets.load(Relaxed),
        seen.opus_packets.load(Relaxed)
    );
    assert_eq!(seen.posts.load(Relaxed), 1, "one session");
    assert_eq!(seen.unauthorized.load(Relaxed), 0, "the token was sent");
    assert_eq!(seen.sendonly_offers.load(Relaxed), 1, "a send-only offer");
    // The platform does not count as a viewer.
    let h = d.ok("GET", &format!("/api/v1/hearings/{id}"), &clerk, None);
    assert_eq!(h["livestream"]["viewers"], 0, "{h}");
    // Withdrawn: the session is ended at the platform.
    d.ok("DELETE", &live_path, &judge, None);
    assert!(
        wait_for(Duration::from_secs(10), || seen.deletes.load(Relaxed) == 1),
        "DELETE on the session's resource"
    );
    let after = seen.h264_packets.load(Relaxed);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        seen.h264_packets.load(Relaxed) <= after + 5,
        "nothing sent after"
    );
    // Approved again, then the platform goes away: an alarm, and it comes back.
    d.ok("POST", &live_path, &judge, None);
    assert!(
        wait_for(Duration::from_secs(30), || seen.posts.load(Relaxed) == 2
            && seen.h264_packets.load(Relaxed) > after + 100),
        "published again"
    );
    drop(platform);
    assert!(
        wait_for(Duration::from_secs(40), || alarm_keys(&d, &clerk)
            .contains(&"whip_push_failed".to_string())),
        "court IT is told the platform is gone: {:?}",
        alarm_keys(&d, &clerk)
    );
    let seen2 = std::sync::Arc::new(WhipSeen::default());
    let _platform = WhipPlatform::start(port, seen2.clone());
    assert!(
        wait_for(Duration::from_secs(40), || seen2.h264_packets.load(Relaxed)
            > 100),
        "it reconnects by itself"
    );
    assert!(
        wait_for(Duration::from_secs(10), || !alarm_keys(&d, &clerk)
            .contains(&"whip_push_failed".to_string())),
        "the alarm clears"
    );
    d.ok(
        "POST",
        &format!("/api/v1/hearings/{id}/close"),
        &clerk,
        None,
    );
    assert!(
        wait_for(Duration::from_secs(10), || seen2.deletes.load(Relaxed) == 1),
        "the close ends the session"
    );
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
