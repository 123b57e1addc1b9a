//! The approved livestream pushed to the court's platforms: over RTMP to a real
//! nginx-rtmp server on loopback, and over WHIP to a test platform; both reconnect
//! when the platform comes back, and stop with the livestream.

mod common;
use common::livestream::*;
use common::*;
use std::time::Duration;

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
        assert!(
            wait_for(Duration::from_secs(10), || std::net::TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "nginx listens on {port}"
        );
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
    // Media flows (a second recorded), yet nothing reaches the platform.
    wait_recorded(&tmp.path().join("data"), &id, 1.0);
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
    assert!(
        wait_for(Duration::from_secs(30), || probe_rtmp(&url).is_none()),
        "the push stops with the approval"
    );
    drop(nginx);
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
    // Media flows (a second recorded), yet nothing is published.
    wait_recorded(&tmp.path().join("data"), &id, 1.0);
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
    // A window in which packets still sent would arrive (about 100 a second).
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
