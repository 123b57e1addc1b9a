//! The public livestream relay: one encoding of the public picture and sound (see
//! `pipelines/public.gst`), its RTP packets parsed once and fanned out to every WHEP
//! viewer's WebRTC connection. Never an encoder per viewer.
//!
//! One task per track takes the capture's packets (a video frame at a time:
//! `fanout`), marshals each once, and sends it to every viewer in turn: encrypted with
//! that viewer's SRTP context and written on its ICE candidate pair by the relay itself,
//! a frame's packets in one UDP GSO send (`direct`, `udp`). webrtc-rs negotiates each
//! connection (each has its own tracks, whose binding gives its SSRC and payload
//! type), runs ICE, DTLS and RTCP; its own per-packet writer chain is only the
//! fallback for a connection the direct path cannot serve.
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

mod direct;
mod fanout;
mod negotiate;
mod policy;
mod reports;
pub mod rtmp;
mod stack;
mod udp;
pub mod watch;
pub mod whip;

use direct::{Serve, Tracks, new_tracks};
use negotiate::{gather, whip_offer};
pub use policy::enforce;
pub use reports::{capture_clock_report, ntp_to_unix_ns};
use stack::webrtc_api;

use crate::error::{Error, ErrorKind, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use webrtc::api::API;
use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtp::packet::Packet;
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::track::track_local::TrackLocal;

/// Bursts (a video frame's packets, or one audio packet) buffered between the
/// capture and each writer task before it skips (over 10 s of either: only a
/// stalled runtime would fill it).
const FANOUT_BURSTS: usize = 256;

/// Who a connection serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Audience {
    /// A WHEP viewer (counted, limited by `max_viewers`).
    Public,
    /// A platform we publish to (WHIP).
    Platform,
}

/// One viewer, or the platform a WHIP push feeds.
struct Viewer {
    hearing_id: String,
    audience: Audience,
    /// The viewer's address (WHEP), and when it offered: a connection that never
    /// comes up is pending, and counted apart from the viewers.
    remote: String,
    since: std::time::Instant,
    pc: Arc<RTCPeerConnection>,
    /// What the relay had sent of video and audio before this viewer joined
    /// (packets, payload bytes): its sender reports count from there.
    sent_before: [(u64, u64); 2],
    /// Its own video and audio tracks.
    tracks: Tracks,
    /// How its packets go, decided once it is connected.
    serve: Serve,
}

/// Asks the capture for a keyframe of the public stream.
pub type KeyframeFn = Arc<dyn Fn() + Send + Sync>;

/// The capture pipeline's running time now, in ns (what RTP timestamps count).
pub type ClockFn = Arc<dyn Fn() -> Option<i64> + Send + Sync>;

/// Who may join: connected viewers count towards `max_viewers`; offers whose
/// connection is not up yet are *pending*, capped in all and per address (a few offers
/// a second that never connect must not keep the public out), and dropped after
/// `pending_timeout`.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_viewers: usize,
    pub max_pending: usize,
    pub max_pending_per_address: usize,
    pub pending_timeout: std::time::Duration,
}

/// The relay: packets in from the capture, out to the viewers.
pub struct Relay {
    video: broadcast::Sender<fanout::Burst>,
    audio: broadcast::Sender<fanout::Burst>,
    /// The video frame the capture is handing over, until its last packet.
    frame: Mutex<Vec<Packet>>,
    /// The last video packets, for viewers' NACKs (`direct`).
    history: direct::History,
    viewers: Mutex<HashMap<String, Viewer>>,
    limits: Limits,
    ice_servers: Vec<String>,
    keyframe: KeyframeFn,
    clock: ClockFn,
    /// Packets and payload bytes written so far, video then audio (sender reports).
    sent: [(AtomicU64, AtomicU64); 2],
    /// Packets the capture handed over, video then audio: with `sent`, says whether a
    /// silent stream stopped before the relay or in it.
    from_capture: [AtomicU64; 2],
    api: API,
    /// The livestream's runtime (see the module doc).
    rt: tokio::runtime::Handle,
    /// The runtime until its thread starts, with the relay's first task: a courtroom
    /// that does not livestream (`[livestream] enabled = false`) never has the thread.
    unstarted: Mutex<Option<Unstarted>>,
}

/// A runtime not yet running: dropped without waiting (dropping a runtime the usual
/// way inside the daemon's async code panics), as when the daemon stops or the
/// livestream thread cannot be started.
struct Unstarted(Option<tokio::runtime::Runtime>);

impl Drop for Unstarted {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl Relay {
    pub fn new(
        limits: Limits,
        ice_servers: Vec<String>,
        keyframe: KeyframeFn,
        clock: ClockFn,
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
        Ok(Relay {
            video: broadcast::channel(FANOUT_BURSTS).0,
            audio: broadcast::channel(FANOUT_BURSTS).0,
            frame: Mutex::new(Vec::new()),
            history: direct::History::default(),
            viewers: Mutex::new(HashMap::new()),
            limits,
            ice_servers,
            keyframe,
            clock,
            sent: Default::default(),
            from_capture: Default::default(),
            api,
            rt: handle,
            unstarted: Mutex::new(Some(Unstarted(Some(rt)))),
        })
    }

    /// The livestream's runtime, its thread started on first use.
    fn runtime(&self) -> Result<&tokio::runtime::Handle> {
        let mut unstarted = self
            .unstarted
            .lock()
            .map_err(|_| Error::new(ErrorKind::Internal, "livestream runtime lock poisoned"))?;
        if let Some(mut rt) = unstarted.take() {
            // On failure the runtime is dropped with the closure: the tasks given to it
            // are cancelled, and each caller is told the livestream failed.
            std::thread::Builder::new()
                .name("courtrec-live".into())
                .spawn(move || {
                    if let Some(rt) = rt.0.take() {
                        rt.block_on(std::future::pending::<()>())
                    }
                })
                .map_err(|e| Error::io("starting the livestream thread", e))?;
        }
        Ok(&self.rt)
    }

    /// Bytes of RTP payload the relay has sent since start, video then audio (once per
    /// packet, whatever the number of viewers: the stream's own bitrate).
    pub fn sent_bytes(&self) -> [u64; 2] {
        [0, 1].map(|i| self.sent[i].1.load(Ordering::Relaxed))
    }

    /// Packets the capture has handed to the relay since start, video then audio.
    pub fn captured_packets(&self) -> [u64; 2] {
        [0, 1].map(|i| self.from_capture[i].load(Ordering::Relaxed))
    }

    /// How many are watching `hearing_id` (all hearings when None): connected viewers.
    pub fn viewer_count(&self, hearing_id: Option<&str>) -> usize {
        self.viewers.lock().map_or(0, |v| {
            v.values()
                .filter(|x| {
                    x.audience == Audience::Public
                        && x.pc.connection_state() == RTCPeerConnectionState::Connected
                        && hearing_id.is_none_or(|h| x.hearing_id == h)
                })
                .count()
        })
    }

    /// Offers whose connection is not up yet: in all, and from `remote`.
    fn pending(&self, remote: &str) -> (usize, usize) {
        self.viewers.lock().map_or((0, 0), |v| {
            let p: Vec<&Viewer> = v
                .values()
                .filter(|x| {
                    x.audience == Audience::Public
                        && x.pc.connection_state() != RTCPeerConnectionState::Connected
                })
                .collect();
            (p.len(), p.iter().filter(|x| x.remote == remote).count())
        })
    }

    /// Drops offers whose connection did not come up within `pending_timeout`.
    pub async fn reap_pending(&self) {
        let stale: Vec<String> = self.viewers.lock().map_or(Vec::new(), |v| {
            v.iter()
                .filter(|(_, x)| {
                    x.audience == Audience::Public
                        && x.pc.connection_state() != RTCPeerConnectionState::Connected
                        && x.since.elapsed() > self.limits.pending_timeout
                })
                .map(|(k, _)| k.clone())
                .collect()
        });
        for s in stale {
            self.remove(&s).await;
        }
    }

    pub fn ice_servers(&self) -> &[String] {
        &self.ice_servers
    }

    /// Runs `f` on the livestream's runtime.
    async fn on_live_thread<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T> {
        self.runtime()?
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
        remote: &str,
    ) -> Result<(String, String)> {
        let (me, hearing_id, remote) = (self.clone(), hearing_id.to_string(), remote.to_string());
        self.on_live_thread(async move { me.connect_viewer(&hearing_id, offer, &remote).await })
            .await?
    }

    async fn connect_viewer(
        self: &Arc<Self>,
        hearing_id: &str,
        offer: String,
        remote: &str,
    ) -> Result<(String, String)> {
        let l = &self.limits;
        if self.viewer_count(None) >= l.max_viewers {
            return Err(Error::new(
                ErrorKind::ResourceExhausted,
                format!("{} viewers already watch: try again later", l.max_viewers),
            ));
        }
        let (pending, mine) = self.pending(remote);
        if pending >= l.max_pending || mine >= l.max_pending_per_address {
            return Err(Error::new(
                ErrorKind::TooMany,
                "too many connections are being set up: try again in a few seconds",
            ));
        }
        let offer = RTCSessionDescription::offer(offer)
            .map_err(|e| Error::new(ErrorKind::BadRequest, format!("not an SDP offer: {e}")))?;
        let (pc, senders, tracks) = self.sender_connection(false).await?;
        let close = |pc: Arc<RTCPeerConnection>| async move {
            let _ = pc.close().await;
        };
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
        let local = match gather(&pc, answer).await {
            Ok(l) => l,
            Err(e) => {
                close(pc).await;
                return Err(e);
            }
        };
        let id = self.register(hearing_id, Audience::Public, remote, pc, senders, tracks);
        Ok((id, local))
    }

    /// A connection with new tracks of the public stream, not yet negotiated:
    /// `sendonly` when we make the offer (WHIP), plain tracks when we answer a
    /// viewer's (WHEP).
    async fn sender_connection(
        &self,
        sendonly: bool,
    ) -> Result<(Arc<RTCPeerConnection>, [Arc<RTCRtpSender>; 2], Tracks)> {
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
        let tracks = new_tracks();
        let mut senders = Vec::new();
        for track in &tracks {
            let track = track.clone() as Arc<dyn TrackLocal + Send + Sync>;
            let sender = if sendonly {
                match pc
                    .add_transceiver_from_track(
                        track,
                        Some(RTCRtpTransceiverInit {
                            direction: RTCRtpTransceiverDirection::Sendonly,
                            send_encodings: vec![],
                        }),
                    )
                    .await
                {
                    Ok(t) => Ok(t.sender().await),
                    Err(e) => Err(e),
                }
            } else {
                pc.add_track(track).await
            };
            match sender {
                Ok(s) => senders.push(s),
                Err(e) => {
                    let _ = pc.close().await;
                    return Err(werr("track", e));
                }
            }
        }
        let (Some(asender), Some(vsender)) = (senders.pop(), senders.pop()) else {
            let _ = pc.close().await;
            return Err(Error::new(ErrorKind::Internal, "no track senders"));
        };
        Ok((pc, [vsender, asender], tracks))
    }

    /// Keeps a negotiated connection: its RTCP is read (a picture-loss report asks
    /// for a keyframe), it gets a keyframe and sender reports once connected, and it
    /// is forgotten when it fails. Returns its session id.
    fn register(
        self: &Arc<Self>,
        hearing_id: &str,
        audience: Audience,
        remote: &str,
        pc: Arc<RTCPeerConnection>,
        [vsender, asender]: [Arc<RTCRtpSender>; 2],
        tracks: Tracks,
    ) -> String {
        let id = hex::encode(rand::random::<[u8; 12]>());
        if let Ok(mut v) = self.viewers.lock() {
            v.insert(
                id.clone(),
                Viewer {
                    hearing_id: hearing_id.to_string(),
                    audience,
                    remote: remote.to_string(),
                    since: std::time::Instant::now(),
                    pc: pc.clone(),
                    sent_before: self
                        .sent
                        .each_ref()
                        .map(|(p, b)| (p.load(Ordering::Relaxed), b.load(Ordering::Relaxed))),
                    tracks: tracks.clone(),
                    serve: Serve::Pending,
                },
            );
        }
        // Audio RTCP is only read (for the interceptors); on video, a picture-loss
        // report asks the encoder for a keyframe and a NACK is answered (`direct`).
        tokio::spawn(async move { while asender.read_rtcp().await.is_ok() {} });
        tokio::spawn(Relay::read_video_rtcp(
            Arc::downgrade(self),
            id.clone(),
            vsender.clone(),
        ));
        // A connected viewer needs a keyframe to start its picture (what was sent
        // before its encryption was ready never reached it); a viewer whose
        // connection fails is forgotten.
        let relay = Arc::downgrade(self);
        let sid = id.clone();
        let (vs, tr) = (vsender.clone(), tracks.clone());
        pc.on_peer_connection_state_change(Box::new(move |st| {
            let relay = relay.clone();
            let sid = sid.clone();
            let (vsender, tracks) = (vs.clone(), tr.clone());
            Box::pin(async move {
                let Some(r) = relay.upgrade() else { return };
                match st {
                    // Viewers are counted once connected: one that connects past the
                    // limit (two joined at once) is let go.
                    RTCPeerConnectionState::Connected
                        if audience == Audience::Public
                            && r.viewer_count(None) > r.limits.max_viewers =>
                    {
                        r.remove(&sid).await;
                    }
                    // Its own task: the handler runs inside webrtc-rs's state
                    // change, whose locks the direct path's setup takes too.
                    RTCPeerConnectionState::Connected => {
                        tokio::spawn(async move {
                            r.go_direct(&sid, &vsender, &tracks).await;
                            (r.keyframe)();
                        });
                    }
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        r.remove(&sid).await;
                    }
                    _ => {}
                }
            })
        }));
        // A connection that came up before the handler was set (a WHIP push whose
        // answer connected at once) is served all the same.
        if pc.connection_state() == RTCPeerConnectionState::Connected {
            let (relay, sid) = (self.clone(), id.clone());
            tokio::spawn(async move { relay.go_direct(&sid, &vsender, &tracks).await });
        }
        (self.keyframe)();
        id
    }

    /// Publishes the public stream to a WHIP endpoint (RFC 9725): our offer is
    /// POSTed with the bearer `token`, the answer connects. Returns the session id
    /// (gone from the relay once the connection fails) and the resource URL to
    /// DELETE when publishing stops.
    pub async fn publish_whip(
        self: &Arc<Self>,
        hearing_id: &str,
        url: &str,
        token: Option<&str>,
    ) -> Result<(String, Option<String>)> {
        let (me, hearing_id, url, token) = (
            self.clone(),
            hearing_id.to_string(),
            url.to_string(),
            token.map(str::to_string),
        );
        self.on_live_thread(async move {
            let (pc, senders, tracks) = me.sender_connection(true).await?;
            match whip_offer(&pc, &url, token.as_deref()).await {
                Ok(location) => Ok((
                    me.register(
                        &hearing_id,
                        Audience::Platform,
                        "platform",
                        pc,
                        senders,
                        tracks,
                    ),
                    location,
                )),
                Err(e) => {
                    let _ = pc.close().await;
                    Err(e)
                }
            }
        })
        .await?
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

    /// Is the session's connection up?
    pub fn session_connected(&self, session: &str) -> bool {
        self.viewers.lock().is_ok_and(|v| {
            v.get(session)
                .is_some_and(|x| x.pc.connection_state() == RTCPeerConnectionState::Connected)
        })
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
