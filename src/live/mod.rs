//! The public livestream relay: one encoding of the public picture and sound (see
//! `pipelines/public.gst`), its RTP packets parsed once and fanned out to every WHEP
//! viewer's WebRTC connection. Never an encoder per viewer.
//!
//! One video and one audio track are shared by every viewer's connection (the webrtc
//! crate binds a local track to many connections); one task per track writes each
//! packet once, and the track encrypts and sends it on each viewer's UDP socket in
//! turn. That costs one task wake per packet instead of one per packet per viewer.
//!
//! All of it runs on its own single-threaded runtime (thread `courtrec-live`): the
//! viewers' connections, their internal tasks and the writers. Spread over the
//! daemon's runtime, every packet bounced tasks between its worker threads (a
//! futex wake and sleep each time, most of the fan-out's cost); on one thread they
//! run back to back. It also keeps the API (an fsynced audit line, an export) and the
//! livestream from delaying each other.
//!
//! Nothing waits for a viewer: UDP sends do not block on a slow receiver (its own
//! socket drops what it cannot read), the capture side only `send`s on a broadcast
//! channel (a lagging writer skips, never blocks the recording), and a viewer that
//! stops answering is dropped once ICE declares its connection failed.

pub mod rtmp;

use crate::capture::LiveFeed;
use crate::error::{Error, ErrorKind, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use webrtc::api::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS, MediaEngine};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::{API, APIBuilder};
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::interceptor::nack::responder::Responder;
use webrtc::interceptor::registry::Registry;
use webrtc::interceptor::report::sender::SenderReport;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp::packet::Packet;
use webrtc::rtp_transceiver::RTCPFeedback;
use webrtc::rtp_transceiver::rtp_codec::{RTCRtpCodecCapability, RTPCodecType};
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::{TrackLocal, TrackLocalWriter};
use webrtc::util::Unmarshal;

/// Packets buffered between the capture and the writer task before it skips (about
/// 10 s of video: only a stalled runtime would fill it).
const FANOUT_PACKETS: usize = 1024;

/// A viewer that stops answering ICE consent checks for this long is dropped (the
/// crate's default, 25 s, keeps sending to a closed browser tab for half a minute).
const VIEWER_FAILED_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// Sent video packets each viewer keeps to answer NACKs: 2^9 = 512, several seconds
/// of the public stream (~90 packets/s), far longer than any retransmission is still
/// useful for live viewing. The webrtc crate's default (8192) costs about 1 MB per
/// viewer for nothing.
const NACK_LOG2_PACKETS: u8 = 9;

/// The WebRTC stack every viewer's connection is made from: built once, so a viewer
/// costs only its own connection. Send-only viewers need just two interceptors:
/// the NACK responder (retransmission) and sender reports (the browser's
/// audio/video sync). The default set's NACK generator, receiver reports and
/// transport-wide congestion feedback serve incoming media, which there is none of,
/// yet each adds work to every packet sent.
fn webrtc_api() -> std::result::Result<API, webrtc::Error> {
    let mut m = MediaEngine::default();
    m.register_default_codecs()?;
    for parameter in ["", "pli"] {
        m.register_feedback(
            RTCPFeedback {
                typ: "nack".to_owned(),
                parameter: parameter.to_owned(),
            },
            RTPCodecType::Video,
        );
    }
    let mut registry = Registry::new();
    registry.add(Box::new(
        Responder::builder().with_log2_size(NACK_LOG2_PACKETS),
    ));
    registry.add(Box::new(SenderReport::builder()));
    let mut s = SettingEngine::default();
    // No mDNS (a closed network); loopback candidates too (a viewer on the box).
    s.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    s.set_include_loopback_candidate(true);
    s.set_ice_timeouts(
        Some(std::time::Duration::from_secs(4)),
        Some(VIEWER_FAILED_AFTER),
        Some(std::time::Duration::from_secs(2)),
    );
    Ok(APIBuilder::new()
        .with_media_engine(m)
        .with_interceptor_registry(registry)
        .with_setting_engine(s)
        .build())
}

/// One viewer.
struct Viewer {
    hearing_id: String,
    pc: Arc<RTCPeerConnection>,
}

/// Asks the capture for a keyframe of the public stream.
pub type KeyframeFn = Arc<dyn Fn() + Send + Sync>;

/// The relay: packets in from the capture, out to the viewers.
pub struct Relay {
    video: broadcast::Sender<Arc<Packet>>,
    audio: broadcast::Sender<Arc<Packet>>,
    /// The tracks every viewer's connection sends (see the module doc).
    video_track: Arc<TrackLocalStaticRTP>,
    audio_track: Arc<TrackLocalStaticRTP>,
    viewers: Mutex<HashMap<String, Viewer>>,
    max_viewers: usize,
    ice_servers: Vec<String>,
    keyframe: KeyframeFn,
    api: API,
    /// The livestream's runtime (see the module doc).
    rt: tokio::runtime::Handle,
}

impl LiveFeed for Relay {
    fn rtp(&self, video: bool, bytes: &[u8]) {
        // Parsed once here; every viewer gets the same packet.
        let Ok(p) = Packet::unmarshal(&mut &bytes[..]) else {
            return;
        };
        let tx = if video { &self.video } else { &self.audio };
        // No receiver (nobody watching) is not an error.
        let _ = tx.send(Arc::new(p));
    }
}

impl Relay {
    pub fn new(
        max_viewers: usize,
        ice_servers: Vec<String>,
        keyframe: KeyframeFn,
    ) -> Result<Relay> {
        let api = webrtc_api().map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                format!("the WebRTC stack cannot be set up: {e}"),
            )
        })?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the livestream runtime", e))?;
        let handle = rt.handle().clone();
        std::thread::Builder::new()
            .name("courtrec-live".into())
            .spawn(move || rt.block_on(std::future::pending::<()>()))
            .map_err(|e| Error::io("starting the livestream thread", e))?;
        Ok(Relay {
            video: broadcast::channel(FANOUT_PACKETS).0,
            audio: broadcast::channel(FANOUT_PACKETS / 4).0,
            video_track: Arc::new(TrackLocalStaticRTP::new(
                RTCRtpCodecCapability {
                    mime_type: MIME_TYPE_H264.to_owned(),
                    clock_rate: 90000,
                    channels: 0,
                    sdp_fmtp_line:
                        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
                            .to_owned(),
                    rtcp_feedback: vec![],
                },
                "video".to_owned(),
                "courtrec".to_owned(),
            )),
            audio_track: Arc::new(TrackLocalStaticRTP::new(
                RTCRtpCodecCapability {
                    mime_type: MIME_TYPE_OPUS.to_owned(),
                    clock_rate: 48000,
                    channels: 2,
                    sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                    rtcp_feedback: vec![],
                },
                "audio".to_owned(),
                "courtrec".to_owned(),
            )),
            viewers: Mutex::new(HashMap::new()),
            max_viewers,
            ice_servers,
            keyframe,
            api,
            rt: handle,
        })
    }

    /// How many are watching `hearing_id` (all hearings when None).
    pub fn viewer_count(&self, hearing_id: Option<&str>) -> usize {
        self.viewers.lock().map_or(0, |v| {
            v.values()
                .filter(|x| hearing_id.is_none_or(|h| x.hearing_id == h))
                .count()
        })
    }

    pub fn ice_servers(&self) -> &[String] {
        &self.ice_servers
    }

    /// Runs `f` on the livestream's runtime.
    async fn on_live_thread<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T> {
        self.rt
            .spawn(f)
            .await
            .map_err(|e| Error::new(ErrorKind::Internal, format!("livestream task failed: {e}")))
    }

    /// Answers a viewer's SDP offer (WHEP): a new connection sending the public
    /// stream. Returns the session id and the SDP answer (with every candidate: no
    /// trickle needed).
    pub async fn add_viewer(
        self: &Arc<Self>,
        hearing_id: &str,
        offer: String,
    ) -> Result<(String, String)> {
        let (me, hearing_id) = (self.clone(), hearing_id.to_string());
        self.on_live_thread(async move { me.connect_viewer(&hearing_id, offer).await })
            .await?
    }

    async fn connect_viewer(
        self: &Arc<Self>,
        hearing_id: &str,
        offer: String,
    ) -> Result<(String, String)> {
        if self.viewer_count(None) >= self.max_viewers {
            return Err(Error::new(
                ErrorKind::ResourceExhausted,
                format!(
                    "{} viewers already watch: try again later",
                    self.max_viewers
                ),
            ));
        }
        let offer = RTCSessionDescription::offer(offer)
            .map_err(|e| Error::new(ErrorKind::BadRequest, format!("not an SDP offer: {e}")))?;
        let werr =
            |what: &str, e: webrtc::Error| Error::new(ErrorKind::Internal, format!("{what}: {e}"));
        let cfg = RTCConfiguration {
            ice_servers: if self.ice_servers.is_empty() {
                vec![]
            } else {
                vec![RTCIceServer {
                    urls: self.ice_servers.clone(),
                    ..Default::default()
                }]
            },
            ..Default::default()
        };
        let pc = Arc::new(
            self.api
                .new_peer_connection(cfg)
                .await
                .map_err(|e| werr("peer connection", e))?,
        );
        let close = |pc: Arc<RTCPeerConnection>| async move {
            let _ = pc.close().await;
        };
        let vsender = match pc
            .add_track(self.video_track.clone() as Arc<dyn TrackLocal + Send + Sync>)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                close(pc).await;
                return Err(werr("video track", e));
            }
        };
        if let Err(e) = pc
            .add_track(self.audio_track.clone() as Arc<dyn TrackLocal + Send + Sync>)
            .await
        {
            close(pc).await;
            return Err(werr("audio track", e));
        }
        if let Err(e) = pc.set_remote_description(offer).await {
            close(pc).await;
            return Err(Error::new(
                ErrorKind::BadRequest,
                format!("the SDP offer cannot be used: {e}"),
            ));
        }
        let answer = match pc.create_answer(None).await {
            Ok(a) => a,
            Err(e) => {
                close(pc).await;
                return Err(Error::new(
                    ErrorKind::BadRequest,
                    format!("no answer to this offer: {e}"),
                ));
            }
        };
        let mut gathered = pc.gathering_complete_promise().await;
        if let Err(e) = pc.set_local_description(answer).await {
            close(pc).await;
            return Err(werr("local description", e));
        }
        let _ = gathered.recv().await;
        let Some(local) = pc.local_description().await else {
            close(pc).await;
            return Err(Error::new(ErrorKind::Internal, "no local description"));
        };
        let id = hex::encode(rand::random::<[u8; 12]>());
        if let Ok(mut v) = self.viewers.lock() {
            v.insert(
                id.clone(),
                Viewer {
                    hearing_id: hearing_id.to_string(),
                    pc: pc.clone(),
                },
            );
        }
        // A picture-loss report asks the encoder for a keyframe. (Reading RTCP also
        // feeds the NACK responder.)
        let keyframe = self.keyframe.clone();
        tokio::spawn(async move {
            while let Ok((pkts, _)) = vsender.read_rtcp().await {
                if pkts
                    .iter()
                    .any(|p| p.as_any().downcast_ref::<PictureLossIndication>().is_some())
                {
                    keyframe();
                }
            }
        });
        // A connected viewer needs a keyframe to start its picture (what was sent
        // before its encryption was ready never reached it); a viewer whose
        // connection fails is forgotten.
        let relay = Arc::downgrade(self);
        let sid = id.clone();
        pc.on_peer_connection_state_change(Box::new(move |st| {
            let relay = relay.clone();
            let sid = sid.clone();
            Box::pin(async move {
                let Some(r) = relay.upgrade() else { return };
                match st {
                    RTCPeerConnectionState::Connected => (r.keyframe)(),
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        r.remove(&sid).await;
                    }
                    _ => {}
                }
            })
        }));
        (self.keyframe)();
        Ok((id, local.sdp))
    }

    /// Starts writing the capture's packets to the shared tracks, each packet once
    /// for all viewers, for the daemon's life.
    pub fn start(self: &Arc<Self>) {
        self.rt.spawn(self.clone().forward());
    }

    async fn forward(self: Arc<Self>) {
        let writer = |track: Arc<TrackLocalStaticRTP>, mut rx: broadcast::Receiver<Arc<Packet>>| async move {
            loop {
                match rx.recv().await {
                    // An error names connections that are closing; the state handler
                    // removes them. The other viewers were still sent the packet.
                    Ok(p) => {
                        let _ = track.write_rtp(&p).await;
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!("livestream writer fell behind: {n} packets skipped");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        };
        tokio::join!(
            writer(self.video_track.clone(), self.video.subscribe()),
            writer(self.audio_track.clone(), self.audio.subscribe()),
        );
    }

    /// Ends a viewer's session. False if there was none.
    pub async fn remove(&self, session: &str) -> bool {
        let v = self.viewers.lock().ok().and_then(|mut v| v.remove(session));
        match v {
            Some(v) => {
                let _ = self
                    .on_live_thread(async move {
                        let _ = v.pc.close().await;
                    })
                    .await;
                true
            }
            None => false,
        }
    }

    /// The hearing of a session, if it exists.
    pub fn session_hearing(&self, session: &str) -> Option<String> {
        self.viewers
            .lock()
            .ok()?
            .get(session)
            .map(|v| v.hearing_id.clone())
    }

    /// Ends every viewer of hearings that may no longer be streamed.
    pub async fn drop_all_but(&self, streaming: Option<&str>) {
        let gone: Vec<String> = self.viewers.lock().map_or(Vec::new(), |v| {
            v.iter()
                .filter(|(_, x)| Some(x.hearing_id.as_str()) != streaming)
                .map(|(k, _)| k.clone())
                .collect()
        });
        for s in gone {
            self.remove(&s).await;
        }
    }
}

/// How often the stream's policy is applied (approval, cut, recess, exclusions).
const ENFORCE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// Keeps the public stream in line with the hearings' policy: encodes it only while
/// someone watches (or it is pushed to a platform) an approved, public, open hearing; pauses it when cut or in a
/// non-public recess; leaves excluded sources out; drops every viewer of a hearing
/// that may no longer be streamed (withdrawn, closed).
pub async fn enforce(
    hearings: Arc<crate::recording::hearings::HearingService>,
    capture: Arc<crate::capture::pipeline::Capture>,
    relay: Arc<Relay>,
    egress: Option<Arc<rtmp::Egress>>,
    alarms: Arc<crate::monitor::Alarms>,
) {
    let mut tick = tokio::time::interval(ENFORCE_INTERVAL);
    let mut last: Option<(bool, bool, Vec<String>)> = None;
    loop {
        tick.tick().await;
        let doc = hearings.active_id().and_then(|id| hearings.get(&id).ok());
        let streaming = doc.as_ref().filter(|d| d.streaming());
        relay.drop_all_but(streaming.map(|d| d.id.as_str())).await;
        if let Some(e) = &egress {
            e.set_active(streaming.is_some());
            // Court IT should see a platform that refuses or cannot be reached.
            let failing = e.last_error.lock().ok().and_then(|l| l.clone());
            match failing.filter(|_| streaming.is_some()) {
                Some(why) => alarms.raise(crate::monitor::rtmp_alarm(&why)),
                None => alarms.clear("rtmp_push_failed"),
            }
        }
        let want = match streaming {
            Some(d) => (
                relay.viewer_count(Some(&d.id)) > 0 || egress.is_some(),
                d.stream_paused(),
                d.livestream.excluded.clone(),
            ),
            None => (false, true, Vec::new()),
        };
        if last.as_ref() != Some(&want) {
            capture.set_public(want.0, want.1, &want.2);
            if want.0 {
                capture.request_live_keyframe();
            }
            last = Some(want);
        }
    }
}
