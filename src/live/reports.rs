//! RTCP sender reports on the capture clock: each viewer learns, once a second per
//! track, which wall-clock time a frame's RTP timestamp was captured at (browsers start
//! lip sync at the first report; `courtrec watch` measures glass-to-glass latency).

use super::Relay;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::rtcp::sender_report::SenderReport;

/// How often each viewer gets a sender report per track (RFC 3550 suggests 5 s at
/// most; browsers start lip sync at the first one).
const SENDER_REPORT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// RTP clock rates of the public stream's video and audio.
const CLOCK_RATES: [i64; 2] = [90_000, 48_000];

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET_S: u64 = 2_208_988_800;

/// A sender report's two clocks for "now": the NTP wall clock, and the RTP timestamp a
/// frame captured now carries (the payloaders have no random offset: RTP timestamps
/// are the pipeline's running time at the clock rate). The webrtc crate's own sender
/// reports map the time a packet was *sent*, which puts the encoders' delay into the
/// picture and sound unequally (lip sync off by the difference) and hides it from any
/// latency measurement.
pub fn capture_clock_report(running_ns: i64, unix_ns: i64, clock_rate: i64) -> (u64, u32) {
    let unix_ns = unix_ns.max(0) as u64;
    let secs = unix_ns / 1_000_000_000 + NTP_UNIX_OFFSET_S;
    let frac = ((unix_ns % 1_000_000_000) << 32) / 1_000_000_000;
    let rtp = (i128::from(running_ns.max(0)) * i128::from(clock_rate) / 1_000_000_000) as u64;
    ((secs << 32) | frac, rtp as u32)
}

/// The Unix time in ns of an NTP timestamp (inverse of `capture_clock_report`'s).
pub fn ntp_to_unix_ns(ntp: u64) -> i64 {
    let secs = (ntp >> 32) as i64 - NTP_UNIX_OFFSET_S as i64;
    let frac_ns = ((ntp & 0xffff_ffff) * 1_000_000_000) >> 32;
    secs * 1_000_000_000 + frac_ns as i64
}

impl Relay {
    /// Sends each connected viewer a sender report per track on the capture clock
    /// (see `capture_clock_report`), once a second.
    pub(super) async fn sender_reports(self: Arc<Self>) {
        let mut tick = tokio::time::interval(SENDER_REPORT_INTERVAL);
        loop {
            tick.tick().await;
            // Each track's SSRC as the connection bound it (what webrtc-rs's
            // `get_parameters` would give, without copying the codec parameters).
            type Streams = [(Option<u32>, (u64, u64)); 2];
            let viewers: Vec<(Arc<RTCPeerConnection>, Streams)> =
                self.viewers.lock().map_or(Vec::new(), |v| {
                    v.values()
                        .filter(|v| v.pc.connection_state() == RTCPeerConnectionState::Connected)
                        .map(|v| {
                            let ssrc = |i: usize| v.tracks[i].ssrc();
                            (
                                v.pc.clone(),
                                [(ssrc(0), v.sent_before[0]), (ssrc(1), v.sent_before[1])],
                            )
                        })
                        .collect()
                });
            if viewers.is_empty() {
                continue;
            }
            // Both clocks read together: the mapping is as exact as these two reads.
            let Some(running_ns) = (self.clock)() else {
                continue;
            };
            let unix_ns = crate::clock::now_unix_ns();
            let sent = [0, 1].map(|i| {
                (
                    self.sent[i].0.load(Ordering::Relaxed),
                    self.sent[i].1.load(Ordering::Relaxed),
                )
            });
            for (pc, streams) in viewers {
                let mut reports: Vec<Box<dyn webrtc::rtcp::packet::Packet + Send + Sync>> =
                    Vec::new();
                for (i, (ssrc, (p0, b0))) in streams.iter().enumerate() {
                    let Some(ssrc) = *ssrc else { continue };
                    let (ntp_time, rtp_time) =
                        capture_clock_report(running_ns, unix_ns, CLOCK_RATES[i]);
                    reports.push(Box::new(SenderReport {
                        ssrc,
                        ntp_time,
                        rtp_time,
                        packet_count: sent[i].0.wrapping_sub(*p0) as u32,
                        octet_count: sent[i].1.wrapping_sub(*b0) as u32,
                        ..Default::default()
                    }));
                }
                // A viewer going away meanwhile is not an error.
                let _ = pc.write_rtcp(&reports).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_reports_map_capture_time_to_wall_time() {
        // 2026-11-27T10:00:00.25Z, running time 12.5 s.
        let unix_ns = 1_795_773_600_250_000_000i64;
        let (ntp, rtp) = capture_clock_report(12_500_000_000, unix_ns, 90_000);
        assert_eq!(rtp, 1_125_000);
        assert_eq!(ntp >> 32, 1_795_773_600 + NTP_UNIX_OFFSET_S);
        assert_eq!(ntp & 0xffff_ffff, 1 << 30, "a quarter second");
        // Back to Unix time within a nanosecond (the fraction's resolution).
        assert!((ntp_to_unix_ns(ntp) - unix_ns).abs() <= 1);
        // RTP time wraps at 2^32 like the payloaders' (13.25 h at 90 kHz).
        let day_ns = 86_400_000_000_000i64;
        let (_, rtp) = capture_clock_report(day_ns, unix_ns, 90_000);
        assert_eq!(
            rtp,
            ((day_ns as i128 * 90_000 / 1_000_000_000) % (1 << 32)) as u32
        );
        let (_, rtp) = capture_clock_report(1_000_000_000, unix_ns, 48_000);
        assert_eq!(rtp, 48_000);
    }
}
