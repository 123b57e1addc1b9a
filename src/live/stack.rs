//! The WebRTC stack every viewer's and platform's connection is made from: built once
//! per relay, so a viewer costs only its own connection.

use webrtc::api::media_engine::MediaEngine;
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::{API, APIBuilder};
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::interceptor::nack::responder::Responder;
use webrtc::interceptor::registry::Registry;
use webrtc::rtp_transceiver::RTCPFeedback;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;

/// A viewer that stops answering ICE consent checks for this long is dropped (the
/// crate's default, 25 s, keeps sending to a closed browser tab for half a minute).
const VIEWER_FAILED_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// Sent video packets each viewer keeps to answer NACKs: 2^9 = 512, several seconds
/// of the public stream (~90 packets/s), far longer than any retransmission is still
/// useful for live viewing. The webrtc crate's default (8192) costs about 1 MB per
/// viewer for nothing.
pub(super) const NACK_LOG2_PACKETS: u8 = 9;

/// The WebRTC stack every viewer's connection is made from: built once, so a viewer
/// costs only its own connection. Send-only viewers need one interceptor: the NACK
/// responder (retransmission), for a connection the relay's direct path cannot serve
/// (`direct` answers NACKs itself). Sender reports come from `Relay::sender_reports`, on
/// the capture clock. The default set's NACK generator, receiver reports and
/// transport-wide congestion feedback serve incoming media, which there is none of,
/// yet each adds work to every packet sent.
pub(super) fn webrtc_api() -> std::result::Result<API, webrtc::Error> {
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
