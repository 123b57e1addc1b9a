//! N WHEP viewers in one process, for `scripts/bench-live`:
//! `whep_viewers BASE_URL HEARING_ID N SECONDS`.
//!
//! Connects N WebRTC viewers to the hearing's WHEP endpoint, receives for SECONDS, and
//! prints one JSON line: viewers connected, packets received, and the latency of video
//! frames from capture to arrival. The capture time of a frame is its RTP timestamp
//! (the capture pipeline's running time at 90 kHz: the public payloader has no random
//! offset) placed on the wall clock with the mapping `/api/v1/status` gives.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Mutex;
use webrtc::api::APIBuilder;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::MediaEngine;
use webrtc::api::setting_engine::SettingEngine;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;

fn unix_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: whep_viewers BASE_URL HEARING_ID N SECONDS");
        std::process::exit(2);
    }
    let (base, hearing) = (args[1].clone(), args[2].clone());
    let n: usize = args[3].parse()?;
    let secs: u64 = args[4].parse()?;
    let http = reqwest::Client::new();
    // The capture clock against the wall clock.
    let login: serde_json::Value = http
        .post(format!("{base}/api/v1/login"))
        .json(&serde_json::json!({"username": "clerk", "password": "demo"}))
        .send()
        .await?
        .json()
        .await?;
    let token = login["token"].as_str().unwrap_or_default().to_string();
    let status: serde_json::Value = http
        .get(format!("{base}/api/v1/status"))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    let rt0 = status["clock"]["running_time_ns"].as_i64().unwrap_or(0);
    let wall0 = status["clock"]["unix_ns"].as_i64().unwrap_or(0);

    let packets = Arc::new(AtomicU64::new(0));
    let latencies_ms: Arc<Mutex<Vec<f64>>> = Arc::new(Mutex::new(Vec::new()));
    let mut pcs = Vec::new();
    let mut connected = 0;
    for i in 0..n {
        let mut m = MediaEngine::default();
        m.register_default_codecs()?;
        let registry = register_default_interceptors(Registry::new(), &mut m)?;
        let mut s = SettingEngine::default();
        s.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
        s.set_include_loopback_candidate(true);
        let api = APIBuilder::new()
            .with_media_engine(m)
            .with_interceptor_registry(registry)
            .with_setting_engine(s)
            .build();
        let pc = Arc::new(api.new_peer_connection(RTCConfiguration::default()).await?);
        for kind in [RTPCodecType::Video, RTPCodecType::Audio] {
            pc.add_transceiver_from_kind(
                kind,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    send_encodings: vec![],
                }),
            )
            .await?;
        }
        let (pk, lat) = (packets.clone(), latencies_ms.clone());
        let sample = i < 10; // latency from the first ten viewers is plenty
        pc.on_track(Box::new(move |track, _, _| {
            let (pk, lat) = (pk.clone(), lat.clone());
            tokio::spawn(async move {
                let video = track.kind() == RTPCodecType::Video;
                // RTP timestamps wrap every 13 h at 90 kHz: unwrap against the capture clock.
                let mut ext_base: Option<i64> = None;
                while let Ok((p, _)) = track.read_rtp().await {
                    pk.fetch_add(1, Ordering::Relaxed);
                    if !(video && sample && p.header.marker) {
                        continue;
                    }
                    let now = unix_ns();
                    let ts = p.header.timestamp as i64;
                    let rt_now = rt0 + (now - wall0);
                    let base = *ext_base.get_or_insert_with(|| {
                        let ticks = rt_now * 9 / 100_000;
                        ticks - ticks.rem_euclid(1 << 32)
                    });
                    let mut ticks = base + ts;
                    if ticks * 100_000 / 9 > rt_now + 10_000_000_000 {
                        ticks -= 1 << 32;
                    }
                    let capture_rt = ticks * 100_000 / 9;
                    let capture_wall = wall0 + (capture_rt - rt0);
                    let ms = (now - capture_wall) as f64 / 1e6;
                    if std::env::var_os("WHEP_VIEWERS_TRACE").is_some() {
                        eprintln!("{} {ms:.0}", now / 1_000_000);
                    }
                    lat.lock().await.push(ms);
                }
            });
            Box::pin(async {})
        }));
        let offer = pc.create_offer(None).await?;
        let mut gathered = pc.gathering_complete_promise().await;
        pc.set_local_description(offer).await?;
        let _ = gathered.recv().await;
        let Some(local) = pc.local_description().await else {
            continue;
        };
        let r = http
            .post(format!("{base}/api/v1/hearings/{hearing}/whep"))
            .header("content-type", "application/sdp")
            .body(local.sdp)
            .send()
            .await?;
        if r.status().as_u16() != 201 {
            eprintln!("viewer {i}: {}", r.status());
            continue;
        }
        let answer = r.text().await?;
        pc.set_remote_description(RTCSessionDescription::answer(answer)?)
            .await?;
        connected += 1;
        pcs.push(pc);
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let mut l = latencies_ms.lock().await.clone();
    l.sort_by(|a, b| a.total_cmp(b));
    let q = |f: f64| {
        l.get(((l.len() as f64 - 1.0) * f) as usize)
            .copied()
            .unwrap_or(-1.0)
    };
    println!(
        "{}",
        serde_json::json!({
            "viewers": connected, "packets": packets.load(Ordering::Relaxed),
            "frames_timed": l.len(), "latency_ms": {"p50": q(0.5), "p95": q(0.95), "p99": q(0.99)},
        })
    );
    for pc in pcs {
        let _ = pc.close().await;
    }
    Ok(())
}
