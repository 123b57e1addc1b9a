//! `courtrec watch`: a WHEP viewer without a browser, for court IT (does the public
//! stream reach a viewer here, and how late?), the livestream tests and
//! `scripts/bench-live`.
//!
//! It connects N viewers to a WHEP URL, receives for a while, ends each session with
//! a DELETE, and reports what arrived. Latency is glass to glass: a frame's capture
//! time comes from the daemon's sender reports (NTP time against RTP time on the
//! capture clock, see `capture_clock_report`), compared with its arrival here. The
//! two machines' clocks must agree (NTP) for latency to mean anything off the box.

use super::ntp_to_unix_ns;
use serde::Serialize;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use webrtc::api::APIBuilder;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::MediaEngine;
use webrtc::api::setting_engine::SettingEngine;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtcp::sender_report::SenderReport;
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;

/// What one viewer received.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ViewerReport {
    pub video_packets: u64,
    pub audio_packets: u64,
    /// Complete video frames (RTP marker bits).
    pub video_frames: u64,
    /// The longest wait between two video packets after the first, in ms: a viewer
    /// slowed by another would show it here.
    pub max_video_gap_ms: f64,
    /// Video frames whose capture time was known (a sender report had arrived).
    pub frames_timed: u64,
}

/// Latency percentiles over every timed frame of every viewer, in ms.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

/// What `watch` prints.
#[derive(Debug, Default, Clone, Serialize)]
pub struct WatchReport {
    /// Viewers the server accepted (201 Created).
    pub viewers: usize,
    /// The status of every refused request, e.g. 503 when the server is full.
    pub refused: Vec<u16>,
    pub latency_ms: Latency,
    pub per_viewer: Vec<ViewerReport>,
}

#[derive(Default)]
struct Received {
    report: ViewerReport,
    last_video: Option<Instant>,
    /// (NTP time as Unix ns, RTP time) of the last video sender report.
    video_sr: Option<(i64, u32)>,
    latencies_ms: Vec<f64>,
}

/// A receive-only viewer's SDP offer (every candidate gathered): what `watch` sends,
/// and what a test sends without ever connecting (a pending offer).
pub async fn offer(pc: &RTCPeerConnection) -> Result<String, String> {
    let offer = pc
        .create_offer(None)
        .await
        .map_err(|e| format!("offer: {e}"))?;
    let mut gathered = pc.gathering_complete_promise().await;
    pc.set_local_description(offer)
        .await
        .map_err(|e| format!("offer: {e}"))?;
    let _ = gathered.recv().await;
    pc.local_description()
        .await
        .map(|l| l.sdp)
        .ok_or_else(|| "no local description".into())
}

/// A new receive-only viewer connection (as `watch` makes them), for [`offer`].
pub async fn new_viewer() -> Result<Arc<RTCPeerConnection>, String> {
    viewer()
        .await
        .map(|(pc, _)| pc)
        .map_err(|e| format!("WebRTC: {e}"))
}

fn unix_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

/// Connects `viewers` viewers to `whep_url`, receives for `seconds`, ends the sessions
/// and reports.
pub async fn watch(whep_url: &str, viewers: usize, seconds: u64) -> Result<WatchReport, String> {
    let http = reqwest::Client::new();
    let mut report = WatchReport::default();
    let mut sessions: Vec<(Arc<RTCPeerConnection>, Option<String>)> = Vec::new();
    let mut received: Vec<Arc<Mutex<Received>>> = Vec::new();
    for _ in 0..viewers {
        let (pc, rx) = viewer().await.map_err(|e| format!("WebRTC: {e}"))?;
        let local = offer(&pc).await?;
        let r = http
            .post(whep_url)
            .header("content-type", "application/sdp")
            .body(local)
            .send()
            .await
            .map_err(|e| format!("{whep_url}: {e}"))?;
        let status = r.status().as_u16();
        if status != 201 {
            report.refused.push(status);
            let _ = pc.close().await;
            continue;
        }
        let location = r
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .and_then(|l| reqwest::Url::parse(whep_url).ok()?.join(l).ok())
            .map(|u| u.to_string());
        let answer = r.text().await.map_err(|e| format!("answer: {e}"))?;
        let answer = RTCSessionDescription::answer(answer).map_err(|e| format!("answer: {e}"))?;
        pc.set_remote_description(answer)
            .await
            .map_err(|e| format!("answer: {e}"))?;
        sessions.push((pc, location));
        received.push(rx);
    }
    report.viewers = sessions.len();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let mut all_ms = Vec::new();
    for r in &received {
        if let Ok(r) = r.lock() {
            report.per_viewer.push(r.report.clone());
            all_ms.extend_from_slice(&r.latencies_ms);
        }
    }
    all_ms.sort_by(|a, b| a.total_cmp(b));
    let q = |f: f64| {
        all_ms
            .get(((all_ms.len() as f64 - 1.0) * f).round() as usize)
            .copied()
            .unwrap_or(-1.0)
    };
    report.latency_ms = Latency {
        p50: q(0.5),
        p95: q(0.95),
        p99: q(0.99),
    };
    // End each session the WHEP way, then locally.
    for (pc, location) in sessions {
        if let Some(l) = location {
            let _ = http.delete(l).send().await;
        }
        let _ = pc.close().await;
    }
    Ok(report)
}

/// A receive-only connection whose tracks count into the returned record.
async fn viewer() -> Result<(Arc<RTCPeerConnection>, Arc<Mutex<Received>>), webrtc::Error> {
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
    let rec = Arc::new(Mutex::new(Received::default()));
    let r = rec.clone();
    pc.on_track(Box::new(move |track, receiver, _| {
        let video = track.kind() == RTPCodecType::Video;
        let clock_rate = i64::from(track.codec().capability.clock_rate.max(1));
        // Sender reports: the capture clock. A compound RTCP packet may carry the
        // reports of both tracks: keep this track's.
        let rr = r.clone();
        let ssrc = track.ssrc();
        tokio::spawn(async move {
            while let Ok((pkts, _)) = receiver.read_rtcp().await {
                for p in pkts {
                    if let Some(sr) = p.as_any().downcast_ref::<SenderReport>()
                        && video
                        && sr.ssrc == ssrc
                        && let Ok(mut r) = rr.lock()
                    {
                        r.video_sr = Some((ntp_to_unix_ns(sr.ntp_time), sr.rtp_time));
                    }
                }
            }
        });
        let r = r.clone();
        tokio::spawn(async move {
            while let Ok((p, _)) = track.read_rtp().await {
                let now = Instant::now();
                let Ok(mut r) = r.lock() else { break };
                if !video {
                    r.report.audio_packets += 1;
                    continue;
                }
                r.report.video_packets += 1;
                if let Some(last) = r.last_video.replace(now) {
                    let gap_ms = (now - last).as_secs_f64() * 1e3;
                    if gap_ms > r.report.max_video_gap_ms {
                        r.report.max_video_gap_ms = gap_ms;
                    }
                }
                if !p.header.marker {
                    continue;
                }
                r.report.video_frames += 1;
                if let Some((sr_unix_ns, sr_rtp)) = r.video_sr {
                    // RTP time wraps: the difference is small and signed.
                    let ticks = i64::from(p.header.timestamp.wrapping_sub(sr_rtp) as i32);
                    let captured_ns = sr_unix_ns + ticks * 1_000_000_000 / clock_rate;
                    r.latencies_ms.push((unix_ns() - captured_ns) as f64 / 1e6);
                    r.report.frames_timed += 1;
                }
            }
        });
        Box::pin(async {})
    }));
    Ok((pc, rec))
}
