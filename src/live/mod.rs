//! The public livestream relay: one encoding of the public picture and sound (see
//! `pipelines/public.gst`), its RTP packets parsed once and fanned out to every WHEP
//! viewer's WebRTC connection. Never an encoder per viewer.
//!
//! A viewer that reads too slowly lags on the broadcast channel and skips packets;
//! it never slows the others or the recording (the capture side only `send`s).

pub mod rtmp;

use crate::capture::LiveFeed;
use crate::error::{Error, ErrorKind, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use webrtc::api::APIBuilder;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS, MediaEngine};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp::packet::Packet;
use webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::{TrackLocal, TrackLocalWriter};
use webrtc::util::Unmarshal;

/// Packets buffered per viewer before a slow one starts skipping (about 2 s of video).
const FANOUT_PACKETS: usize = 1024;

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
    viewers: Mutex<HashMap<String, Viewer>>,
    max_viewers: usize,
    ice_servers: Vec<String>,
    keyframe: KeyframeFn,
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
    pub fn new(max_viewers: usize, ice_servers: Vec<String>, keyframe: KeyframeFn) -> Relay {
        Relay {
            video: broadcast::channel(FANOUT_PACKETS).0,
            audio: broadcast::channel(FANOUT_PACKETS / 4).0,
            viewers: Mutex::new(HashMap::new()),
            max_viewers,
            ice_servers,
            keyframe,
        }
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

    /// Answers a viewer's SDP offer (WHEP): a new connection sending the public
    /// stream. Returns the session id and the SDP answer (with every candidate: no
    /// trickle needed).
    pub async fn add_viewer(
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
        let mut m = MediaEngine::default();
        m.register_default_codecs().map_err(|e| werr("codecs", e))?;
        let registry = register_default_interceptors(Registry::new(), &mut m)
            .map_err(|e| werr("interceptors", e))?;
        let mut s = SettingEngine::default();
        // No mDNS (a closed network); loopback candidates too (a viewer on the box).
        s.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
        s.set_include_loopback_candidate(true);
        let api = APIBuilder::new()
            .with_media_engine(m)
            .with_interceptor_registry(registry)
            .with_setting_engine(s)
            .build();
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
            api.new_peer_connection(cfg)
                .await
                .map_err(|e| werr("peer connection", e))?,
        );
        let video = Arc::new(TrackLocalStaticRTP::new(
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
        ));
        let audio = Arc::new(TrackLocalStaticRTP::new(
            RTCRtpCodecCapability {
                mime_type: MIME_TYPE_OPUS.to_owned(),
                clock_rate: 48000,
                channels: 2,
                sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                rtcp_feedback: vec![],
            },
            "audio".to_owned(),
            "courtrec".to_owned(),
        ));
        let close = |pc: Arc<RTCPeerConnection>| async move {
            let _ = pc.close().await;
        };
        let vsender = match pc
            .add_track(video.clone() as Arc<dyn TrackLocal + Send + Sync>)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                close(pc).await;
                return Err(werr("video track", e));
            }
        };
        if let Err(e) = pc
            .add_track(audio.clone() as Arc<dyn TrackLocal + Send + Sync>)
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
        // Forward packets; a lagging viewer skips, a closed one ends its tasks.
        for (track, mut rx) in [
            (video, self.video.subscribe()),
            (audio, self.audio.subscribe()),
        ] {
            let pc = pc.clone();
            tokio::spawn(async move {
                loop {
                    match rx.recv().await {
                        Ok(p) => {
                            if track.write_rtp(&p).await.is_err()
                                && pc.connection_state() == RTCPeerConnectionState::Closed
                            {
                                break;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => break,
                    }
                    if matches!(
                        pc.connection_state(),
                        RTCPeerConnectionState::Closed | RTCPeerConnectionState::Failed
                    ) {
                        break;
                    }
                }
            });
        }
        // A picture-loss report asks the encoder for a keyframe.
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
        // A viewer whose connection fails is forgotten.
        let relay = Arc::downgrade(self);
        let sid = id.clone();
        pc.on_peer_connection_state_change(Box::new(move |st| {
            let relay = relay.clone();
            let sid = sid.clone();
            Box::pin(async move {
                if matches!(
                    st,
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed
                ) && let Some(r) = relay.upgrade()
                {
                    r.remove(&sid).await;
                }
            })
        }));
        (self.keyframe)();
        Ok((id, local.sdp))
    }

    /// Ends a viewer's session. False if there was none.
    pub async fn remove(&self, session: &str) -> bool {
        let v = self.viewers.lock().ok().and_then(|mut v| v.remove(session));
        match v {
            Some(v) => {
                let _ = v.pc.close().await;
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
