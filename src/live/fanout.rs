//! Packets in from the capture, out to every viewer: a video frame at a time.
//!
//! The capture hands over a frame's packets one by one (the payloader pushes them
//! back to back); they are passed on together once its last packet (RTP marker) is
//! in, so the relay's thread wakes once per frame instead of once per packet.

use super::Relay;
use super::direct::{Scratch, Serve};
use crate::capture::LiveFeed;
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::broadcast;
use webrtc::rtp::packet::Packet;
use webrtc::track::track_local::TrackLocalWriter;
use webrtc::util::{Marshal, Unmarshal};

/// A video frame's packets, or one audio packet: handed to the writer together.
pub(super) type Burst = Arc<Vec<Packet>>;

/// A frame with more packets than this is passed on in parts (a keyframe of a
/// high-bitrate stream), so a frame never holds many packets back.
const BURST_MAX_PACKETS: usize = 64;

impl LiveFeed for Relay {
    fn rtp(&self, video: bool, bytes: &[u8]) {
        // Parsed once here; every viewer gets the same packet.
        let Ok(p) = Packet::unmarshal(&mut &bytes[..]) else {
            return;
        };
        self.from_capture[usize::from(!video)].fetch_add(1, Ordering::Relaxed);
        // No receiver (nobody watching) is not an error.
        if !video {
            let _ = self.audio.send(Arc::new(vec![p]));
            return;
        }
        let Ok(mut frame) = self.frame.lock() else {
            // Poisoned (a panic while holding it): the packet alone, never lost.
            let _ = self.video.send(Arc::new(vec![p]));
            return;
        };
        // The payloader is given whole frames, so each ends with a marker; were one
        // cut short, its packets would go with the next frame's, in order.
        let last = p.header.marker;
        frame.push(p);
        if last || frame.len() >= BURST_MAX_PACKETS {
            // The next frame starts at this one's size: one allocation, not a doubling
            // per few packets.
            let next = Vec::with_capacity(frame.len());
            let _ = self
                .video
                .send(Arc::new(std::mem::replace(&mut *frame, next)));
        }
    }
}

impl Relay {
    /// Starts sending the capture's packets to every viewer, each packet marshalled
    /// once for all of them, for the daemon's life.
    pub fn start(self: &Arc<Self>) {
        match self.runtime() {
            Ok(rt) => {
                rt.spawn(self.clone().forward());
            }
            Err(e) => tracing::error!("the livestream cannot start: {e}"),
        }
    }

    async fn forward(self: Arc<Self>) {
        tokio::join!(
            self.clone().writer(0, self.video.subscribe()),
            self.clone().writer(1, self.audio.subscribe()),
            self.clone().sender_reports(),
        );
    }

    /// Writes track `i`'s bursts (0 video, 1 audio) to every viewer: marshalled once,
    /// then a viewer at a time, all of the burst (see `direct`).
    async fn writer(self: Arc<Self>, i: usize, mut rx: broadcast::Receiver<Burst>) {
        let mut scratch = Scratch::default();
        loop {
            match rx.recv().await {
                Ok(burst) => {
                    let plain: Vec<(u16, Bytes)> = burst
                        .iter()
                        .filter_map(|p| Some((p.header.sequence_number, p.marshal().ok()?)))
                        .collect();
                    if i == 0 {
                        self.history.keep(&plain);
                    }
                    let plain: Vec<Bytes> = plain.into_iter().map(|(_, b)| b).collect();
                    let viewers: Vec<_> = self.viewers.lock().map_or(Vec::new(), |v| {
                        v.values()
                            .map(|x| (x.serve.clone(), x.tracks[i].clone()))
                            .collect()
                    });
                    let now = std::time::Instant::now();
                    for (serve, track) in viewers {
                        match serve {
                            Serve::Direct(d) => d.send(i, &plain, now, &mut scratch).await,
                            Serve::Track => {
                                for p in burst.iter() {
                                    // An error is a connection closing: its state
                                    // handler removes it.
                                    if track.track().write_rtp(p).await.is_err() {
                                        break;
                                    }
                                }
                            }
                            Serve::Pending => {}
                        }
                    }
                    let (packets, bytes) = &self.sent[i];
                    for p in burst.iter() {
                        packets.fetch_add(1, Ordering::Relaxed);
                        bytes.fetch_add(p.payload.len() as u64, Ordering::Relaxed);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("livestream writer fell behind: {n} bursts skipped");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::Limits;
    use webrtc::rtp::header::Header;
    use webrtc::util::Marshal;

    fn packet(seq: u16, marker: bool) -> Vec<u8> {
        Packet {
            header: Header {
                version: 2,
                sequence_number: seq,
                marker,
                ..Default::default()
            },
            payload: vec![0u8; 100].into(),
        }
        .marshal()
        .unwrap()
        .to_vec()
    }

    fn seqs(b: &Burst) -> Vec<u16> {
        b.iter().map(|p| p.header.sequence_number).collect()
    }

    #[test]
    fn a_video_frame_is_passed_on_whole_and_audio_at_once() {
        let relay = Relay::new(
            Limits {
                max_viewers: 1,
                max_pending: 1,
                max_pending_per_address: 1,
                pending_timeout: std::time::Duration::from_secs(1),
            },
            Vec::new(),
            Arc::new(|| {}),
            Arc::new(|| None),
        )
        .unwrap();
        let (mut video, mut audio) = (relay.video.subscribe(), relay.audio.subscribe());
        // A frame of three packets: nothing until its last (marker).
        relay.rtp(true, &packet(1, false));
        relay.rtp(true, &packet(2, false));
        assert!(
            video.try_recv().is_err(),
            "not before the frame's last packet"
        );
        relay.rtp(true, &packet(3, true));
        assert_eq!(seqs(&video.try_recv().unwrap()), [1, 2, 3]);
        // Audio is not held.
        relay.rtp(false, &packet(7, false));
        assert_eq!(seqs(&audio.try_recv().unwrap()), [7]);
        // A frame longer than a burst is passed on in parts, none lost.
        let n = BURST_MAX_PACKETS as u16 + 6;
        for seq in 0..n {
            relay.rtp(true, &packet(100 + seq, seq == n - 1));
        }
        let first = video.try_recv().unwrap();
        let second = video.try_recv().unwrap();
        assert_eq!(first.len(), BURST_MAX_PACKETS);
        let all: Vec<u16> = seqs(&first).into_iter().chain(seqs(&second)).collect();
        assert_eq!(all, (100..100 + n).collect::<Vec<_>>());
        // Garbage is not a packet, and holds nothing up.
        relay.rtp(true, b"not rtp");
        assert!(video.try_recv().is_err());
        assert_eq!(relay.captured_packets(), [3 + u64::from(n), 1]);
    }
}
