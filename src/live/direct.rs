//! Each viewer's packets encrypted and sent by the relay itself, not through
//! webrtc-rs's per-connection writer chain.
//!
//! webrtc-rs sends a track's packet to a connection through a chain of `async`
//! writers (the track's bindings, the interceptors, the SRTP writer, the mux, the ICE
//! connection), each with its own lock and allocation: about 40 % of the relay's
//! thread at 100 viewers (docs/benchmarks.md). Here a packet is marshalled once for
//! all viewers; for each viewer its SSRC and payload type are written into a copy,
//! the copy is encrypted in place with the viewer's own SRTP context (a third patch,
//! to webrtc-srtp), the viewer's packets lie one after another in one reused buffer,
//! and go out on the ICE agent's selected candidate pair, as webrtc-rs's would.
//!
//! webrtc-rs still negotiates the connection, runs ICE, DTLS and RTCP, and sends what
//! we do not: each viewer's `ViewerTrack` is bound like any track (its binding gives
//! the SSRC and payload type), and a connection the direct path cannot serve (a header
//! extension negotiated, keys not available) is written through that track instead.
//! Two small patches to webrtc-rs give the SRTP keys and the ICE agent
//! (vendor/README.md).
//!
//! Retransmission: webrtc-rs's NACK responder only resends what went through its
//! chain, so the relay keeps the last video packets itself (`History`) and answers a
//! viewer's NACK from them on the same path.

use super::{Relay, udp};
use async_trait::async_trait;
use bytes::Bytes;
use std::any::Any;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use webrtc::api::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS};
use webrtc::ice::agent::Agent;
use webrtc::ice::candidate::CandidatePair;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTPCodecType,
};
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::srtp::context::Context;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::{TrackLocal, TrackLocalContext};

/// Video packets kept for retransmission: as many as webrtc-rs's NACK responder
/// keeps per viewer (several seconds of the public stream), but once for all viewers.
const HISTORY_PACKETS: usize = 1 << super::stack::NACK_LOG2_PACKETS;

/// What a connection bound a track to.
#[derive(Clone)]
struct Binding {
    ssrc: u32,
    payload_type: u8,
    /// A header extension was negotiated: webrtc-rs's track writes it, the direct
    /// path does not, so such a connection is served through the track.
    extensions: bool,
    /// Is the sender paused (webrtc-rs's flag, read through this)?
    paused: Arc<dyn Fn() -> bool + Send + Sync>,
}

/// A viewer's track: webrtc-rs's static RTP track (negotiation, and the way packets
/// go when the direct path cannot serve the connection), remembering its binding.
pub(super) struct ViewerTrack {
    inner: TrackLocalStaticRTP,
    binding: Mutex<Option<Binding>>,
}

impl ViewerTrack {
    pub(super) fn new(inner: TrackLocalStaticRTP) -> ViewerTrack {
        ViewerTrack {
            inner,
            binding: Mutex::new(None),
        }
    }

    /// The webrtc-rs track, for the fallback path.
    pub(super) fn track(&self) -> &TrackLocalStaticRTP {
        &self.inner
    }

    /// The SSRC the connection bound this track to (None before it is bound).
    pub(super) fn ssrc(&self) -> Option<u32> {
        self.binding.lock().ok()?.as_ref().map(|b| b.ssrc)
    }

    fn binding(&self) -> Option<Binding> {
        self.binding.lock().ok()?.clone()
    }
}

#[async_trait]
impl TrackLocal for ViewerTrack {
    async fn bind(&self, t: &TrackLocalContext) -> webrtc::error::Result<RTCRtpCodecParameters> {
        let codec = self.inner.bind(t).await?;
        if let Ok(mut b) = self.binding.lock() {
            *b = Some(Binding {
                ssrc: t.ssrc(),
                payload_type: codec.payload_type,
                extensions: !t.header_extensions().is_empty(),
                paused: {
                    let p = t.paused();
                    Arc::new(move || p.load(Ordering::Relaxed))
                },
            });
        }
        Ok(codec)
    }

    async fn unbind(&self, t: &TrackLocalContext) -> webrtc::error::Result<()> {
        if let Ok(mut b) = self.binding.lock() {
            *b = None;
        }
        self.inner.unbind(t).await
    }

    fn id(&self) -> &str {
        self.inner.id()
    }

    fn rid(&self) -> Option<&str> {
        self.inner.rid()
    }

    fn stream_id(&self) -> &str {
        self.inner.stream_id()
    }

    fn kind(&self) -> RTPCodecType {
        self.inner.kind()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A connection's video and audio tracks.
pub(super) type Tracks = [Arc<ViewerTrack>; 2];

/// New video and audio tracks of the public stream, for one connection.
pub(super) fn new_tracks() -> Tracks {
    [
        TrackLocalStaticRTP::new(
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
        ),
        TrackLocalStaticRTP::new(
            RTCRtpCodecCapability {
                mime_type: MIME_TYPE_OPUS.to_owned(),
                clock_rate: 48000,
                channels: 2,
                sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                rtcp_feedback: vec![],
            },
            "audio".to_owned(),
            "courtrec".to_owned(),
        ),
    ]
    .map(|t| Arc::new(ViewerTrack::new(t)))
}

/// How a connection's packets go.
#[derive(Clone)]
pub(super) enum Serve {
    /// Not connected yet: nothing is sent.
    Pending,
    /// Encrypted and sent by the relay.
    Direct(Arc<Direct>),
    /// Through its tracks and webrtc-rs's writer chain (the direct path cannot serve
    /// it: a header extension negotiated, no keys).
    Track,
}

/// A connected viewer served by the direct path: what its packets need.
pub(super) struct Direct {
    /// Video then audio.
    bindings: [Binding; 2],
    /// Its outgoing SRTP context, both tracks (one per connection, as webrtc-rs's).
    /// Only the relay's thread locks it, never across an await.
    srtp: Mutex<Context>,
    agent: Arc<Agent>,
    /// Where its packets go, read again every `ROUTE_FRESH`. Only the relay's thread
    /// locks it, never across an await.
    route: Mutex<Option<Route>>,
    /// A send to this viewer failed for a reason other than a full buffer, and was
    /// logged: the next failures are not (one line per viewer, not one per frame).
    failed: AtomicBool,
}

/// How often a direct viewer's route (ICE's selected pair, its socket, the senders'
/// paused flags) is read again from webrtc-rs. Read for every burst, it walked a
/// dozen pointers through webrtc-rs's objects per viewer (cache misses: about 5 % of
/// the relay's thread at 100 viewers). ICE switching pairs, or a sender paused, is
/// picked up this late at most.
const ROUTE_FRESH: Duration = Duration::from_millis(250);

/// A UDP socket of ours and the address it sends to.
type Dest = (RawFd, SocketAddr);

/// A direct viewer's route, as last read.
struct Route {
    /// Held so that its socket, and with it `socket`'s descriptor, stays open while
    /// the route is used (webrtc-util's `close` of a UDP socket does nothing; the
    /// descriptor closes when the last reference goes): a descriptor number reused by
    /// another file is never written to.
    pair: Arc<CandidatePair>,
    /// The local candidate's socket and the viewer's address; None for a TURN relay's
    /// connection (no socket of ours), written through webrtc-rs.
    socket: Option<Dest>,
    /// Video then audio sender paused.
    paused: [bool; 2],
    read_at: Instant,
}

/// Buffers a writer reuses from burst to burst (no allocation per viewer).
#[derive(Default)]
pub(super) struct Scratch {
    /// A viewer's share of a burst: its packets encrypted, one after another (as a
    /// GSO send wants them).
    out: Vec<u8>,
    /// The length of each packet in `out`.
    lens: Vec<usize>,
}

impl Direct {
    /// The direct path for a connection that just connected, or None when it cannot
    /// serve it (the reason logged at debug level; its packets then go through its
    /// tracks).
    pub(super) async fn new(
        sender: &RTCRtpSender,
        tracks: &[Arc<ViewerTrack>; 2],
    ) -> Option<Arc<Direct>> {
        let [Some(video), Some(audio)] = [tracks[0].binding(), tracks[1].binding()] else {
            tracing::debug!(
                "livestream: a track is not bound; the connection is served by webrtc-rs"
            );
            return None;
        };
        if video.extensions || audio.extensions {
            tracing::debug!(
                "livestream: header extensions negotiated; the connection is served by webrtc-rs"
            );
            return None;
        }
        let transport = sender.transport();
        let srtp = match transport.new_srtp_sending_context().await {
            Ok(Some(c)) => c,
            Ok(None) => {
                tracing::debug!("livestream: DTLS not up; the connection is served by webrtc-rs");
                return None;
            }
            Err(e) => {
                tracing::warn!(
                    "livestream: no SRTP keys for the direct path ({e}); served by webrtc-rs"
                );
                return None;
            }
        };
        let Some(agent) = transport.ice_transport().agent().await else {
            tracing::debug!("livestream: no ICE agent; the connection is served by webrtc-rs");
            return None;
        };
        Some(Arc::new(Direct {
            bindings: [video, audio],
            srtp: Mutex::new(srtp),
            agent,
            route: Mutex::new(None),
            failed: AtomicBool::new(false),
        }))
    }

    /// Reads the route again from webrtc-rs when older than `ROUTE_FRESH` (None while
    /// ICE has no selected pair).
    fn refresh(&self, route: &mut Option<Route>, now: Instant) {
        if route
            .as_ref()
            .is_some_and(|r| now.saturating_duration_since(r.read_at) < ROUTE_FRESH)
        {
            return;
        }
        *route = self.agent.get_selected_candidate_pair().map(|pair| {
            let socket = pair
                .local
                .get_conn()
                .and_then(|c| c.as_any().downcast_ref::<tokio::net::UdpSocket>())
                .map(|s| (s.as_raw_fd(), pair.remote.addr()));
            // What webrtc-rs's own writes record: ICE sends no keepalive while
            // packets go out.
            pair.local.seen(true);
            Route {
                socket,
                paused: [0, 1].map(|i| (self.bindings[i].paused)()),
                read_at: now,
                pair,
            }
        });
    }

    /// Sends track `i`'s marshalled packets (0 video, 1 audio) at `now`. Stops at
    /// the first failure: the connection is closing (its state handler removes it)
    /// or its socket's buffer is full (see `udp`).
    pub(super) async fn send(
        &self,
        i: usize,
        packets: &[Bytes],
        now: Instant,
        scratch: &mut Scratch,
    ) {
        let pair = {
            // Held while the socket is written: the route keeps the socket open.
            let Ok(mut route) = self.route.lock() else {
                return;
            };
            self.refresh(&mut route, now);
            let Some(r) = route.as_ref() else { return };
            if r.paused[i] {
                return;
            }
            let Scratch { out, lens } = &mut *scratch;
            self.encrypt(&self.bindings[i], packets, out, lens);
            // A host or server-reflexive candidate's socket takes the burst in one go.
            if let Some((fd, dst)) = r.socket {
                // A full buffer drops the rest of the frame (see `udp`); anything
                // else means this viewer gets no picture, which court IT must see.
                if let Err(udp::Unsent::Failed(e)) = udp::send_burst(fd, dst, out, lens) {
                    self.failed_once(&e);
                }
                return;
            }
            r.pair.clone()
        };
        let mut at = 0;
        for &n in &scratch.lens {
            let p = &scratch.out[at..at + n];
            at += n;
            if let Err(e) = pair.local.write_to(p, &*pair.remote).await {
                self.failed_once(&e);
                return;
            }
        }
    }

    /// Logs the first failed send (or encryption) for this viewer.
    fn failed_once(&self, e: &dyn std::fmt::Display) {
        if !self.failed.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "livestream: packets to a viewer cannot be sent ({e}); it sees no picture"
            );
        }
    }

    /// Lays `packets` in `out` with this connection's SSRC and payload type, each
    /// encrypted in place, and their lengths in `lens`. Stops at the first that fails
    /// (too short to be RTP, or the SRTP context refuses it): the packets after it
    /// would reach the viewer out of order anyway.
    fn encrypt(&self, b: &Binding, packets: &[Bytes], out: &mut Vec<u8>, lens: &mut Vec<usize>) {
        out.clear();
        lens.clear();
        let Ok(mut srtp) = self.srtp.lock() else {
            return;
        };
        for plain in packets {
            // An RTP header is 12 bytes at least (`Packet::marshal` wrote it).
            if plain.len() < 12 {
                return;
            }
            let start = out.len();
            out.extend_from_slice(plain);
            out[start + 1] = (plain[1] & 0x80) | (b.payload_type & 0x7f);
            out[start + 8..start + 12].copy_from_slice(&b.ssrc.to_be_bytes());
            if let Err(e) = srtp.encrypt_rtp_in_place(out, start) {
                out.truncate(start);
                self.failed_once(&e);
                return;
            }
            lens.push(out.len() - start);
        }
    }
}

/// The last video packets sent (sequence number, marshalled), for NACKs.
#[derive(Default)]
pub(super) struct History(Mutex<VecDeque<(u16, Bytes)>>);

impl History {
    pub(super) fn keep(&self, packets: &[(u16, Bytes)]) {
        let Ok(mut h) = self.0.lock() else { return };
        for p in packets {
            if h.len() == HISTORY_PACKETS {
                h.pop_front();
            }
            h.push_back(p.clone());
        }
    }

    /// The kept packets of these sequence numbers, in the order asked.
    fn find(&self, seqs: &[u16]) -> Vec<Bytes> {
        let Ok(h) = self.0.lock() else {
            return Vec::new();
        };
        seqs.iter()
            .filter_map(|s| h.iter().rev().find(|(q, _)| q == s).map(|(_, b)| b.clone()))
            .collect()
    }
}

impl Relay {
    /// Resends the video packets a direct viewer reported lost (its NACK's sequence
    /// numbers) from the relay's history. Packets too old to be kept are not sent.
    pub(super) async fn resend(&self, direct: &Direct, seqs: &[u16]) {
        let packets = self.history.find(seqs);
        if !packets.is_empty() {
            direct
                .send(0, &packets, Instant::now(), &mut Scratch::default())
                .await;
        }
    }

    /// Decides how session `sid`'s packets go, once it is connected: the direct path
    /// if it can serve it, webrtc-rs's tracks otherwise. Until then it is sent
    /// nothing (it could not decrypt it yet, and asks for a keyframe next), so one
    /// connection's packets are never encrypted by two contexts. A session that
    /// connects again (ICE lost and found its way) keeps what it has: the DTLS keys
    /// are the same, and a new context would restart the rollover count of sequence
    /// numbers that may have wrapped meanwhile, which the viewer would fail to
    /// decrypt.
    pub(super) async fn go_direct(
        &self,
        sid: &str,
        sender: &RTCRtpSender,
        tracks: &[Arc<ViewerTrack>; 2],
    ) {
        let pending = |r: &Relay| {
            r.viewers.lock().is_ok_and(|v| {
                v.get(sid)
                    .is_some_and(|v| matches!(v.serve, Serve::Pending))
            })
        };
        if !pending(self) {
            return;
        }
        let serve = match Direct::new(sender, tracks).await {
            Some(d) => Serve::Direct(d),
            None => Serve::Track,
        };
        if let Ok(mut v) = self.viewers.lock()
            && let Some(v) = v.get_mut(sid)
            && matches!(v.serve, Serve::Pending)
        {
            v.serve = serve;
        }
    }

    /// Reads session `sid`'s video RTCP until its connection ends: a picture-loss
    /// report asks the encoder for a keyframe; a NACK is answered from the history
    /// when the session is served directly (otherwise webrtc-rs's NACK responder,
    /// fed by this read, answers it).
    pub(super) async fn read_video_rtcp(
        relay: Weak<Relay>,
        sid: String,
        sender: Arc<RTCRtpSender>,
    ) {
        while let Ok((pkts, _)) = sender.read_rtcp().await {
            let Some(relay) = relay.upgrade() else { return };
            let mut lost = Vec::new();
            for p in &pkts {
                let p = p.as_any();
                if p.downcast_ref::<PictureLossIndication>().is_some() {
                    (relay.keyframe)();
                } else if let Some(nack) = p.downcast_ref::<TransportLayerNack>() {
                    lost.extend(nack.nacks.iter().flat_map(|n| n.packet_list()));
                }
            }
            if lost.is_empty() {
                continue;
            }
            let serve = relay
                .viewers
                .lock()
                .ok()
                .and_then(|v| v.get(&sid).map(|v| v.serve.clone()));
            if let Some(Serve::Direct(direct)) = serve {
                relay.resend(&direct, &lost).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_keeps_the_last_packets_and_finds_them_by_number() {
        let h = History::default();
        let n = HISTORY_PACKETS + 10;
        let packets: Vec<(u16, Bytes)> = (0..n)
            .map(|i| (65530u16.wrapping_add(i as u16), Bytes::from(vec![i as u8])))
            .collect();
        h.keep(&packets);
        // The first ten are gone; the rest are found, across the wrap of the numbers
        // (the eleventh is number 4, the twelfth 5).
        assert!(h.find(&[65530, 65531, 3]).is_empty());
        let last = packets[n - 1].0;
        assert_eq!(
            h.find(&[4, last, 5]),
            vec![
                Bytes::from(vec![10u8]),
                Bytes::from(vec![(n - 1) as u8]),
                Bytes::from(vec![11u8])
            ]
        );
    }
}
