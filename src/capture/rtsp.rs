//! RTSP cameras through retina (Moonfire NVR's RTSP client) instead of `rtspsrc`.
//!
//! `rtspsrc` costs four threads per connection (its task, the jitter buffer's, the RTCP
//! session's and a timer) and a copy through `rtpbin`; a courtroom with four cameras
//! and their preview streams had 32 such threads. Here every connection is a task on
//! one small runtime: a main stream's access units go straight to its track, a
//! preview's into an `appsrc` in front of its decoder. Over TCP (interleaved), as
//! before: a court's network drops UDP more readily than a camera's TCP.
//!
//! What a failure leaves behind: a connection that fails or goes quiet ends its task,
//! and `on_end` tells the supervisor, which rebuilds it with back-off while the track
//! records the "signal lost" card; no error here stops the other cameras.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use retina::client::{
    Credentials, InitialSequenceNumberPolicy, InitialTimestampPolicy, PlayOptions, SessionOptions,
    SetupOptions, TcpTransportOptions, Transport,
};
use retina::codec::{CodecItem, FrameFormat};

use crate::error::{Error, ErrorKind, Result};

/// How long a step of the RTSP exchange (DESCRIBE, SETUP, PLAY) may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection with no frame for this long is given up (a camera that hangs with
/// its socket open); the supervisor reconnects.
const QUIET_TIMEOUT: Duration = Duration::from_secs(10);
/// The access unit delimiter that `h264parse` put before each access unit: H.264 in
/// MPEG-TS wants one (ISO/IEC 13818-1, 2.14), and the recording is MPEG-TS.
const AUD: [u8; 6] = [0, 0, 0, 1, 9, 0xf0];

/// One access unit of a camera, in the pipeline's running time.
pub(super) struct RtspFrame {
    pub(super) pts_ns: i64,
    pub(super) duration_ns: u64,
    pub(super) keyframe: bool,
    /// Annex B, an access unit delimiter first, SPS and PPS before each keyframe.
    pub(super) data: Vec<u8>,
}

/// The runtime every RTSP connection runs on: one thread, whatever the number of
/// cameras (the work per packet is small; decoding happens in the pipeline).
pub(super) struct RtspClients {
    rt: Option<tokio::runtime::Runtime>,
}

/// A running connection; dropping it closes the connection.
pub(super) struct Client(tokio::task::AbortHandle);

impl Drop for Client {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl RtspClients {
    pub(super) fn new() -> Result<RtspClients> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(1)
            .thread_name("rtsp")
            .enable_all()
            .build()
            .map_err(|e| Error::new(ErrorKind::Internal, format!("RTSP runtime: {e}")))?;
        Ok(RtspClients { rt: Some(rt) })
    }

    /// Connects to `url` and hands each H.264 access unit to `on_frame`, timed by
    /// `now_ns` (the pipeline's running time, None before it runs). `on_end` gets the
    /// reason the connection ended; it is not called when the client is dropped.
    pub(super) fn spawn(
        &self,
        url: &str,
        now_ns: impl Fn() -> Option<i64> + Send + Sync + 'static,
        mut on_frame: impl FnMut(RtspFrame) + Send + 'static,
        on_end: impl FnOnce(String) + Send + 'static,
    ) -> Result<Client> {
        let (url, creds) = split_credentials(url)?;
        let rt = self
            .rt
            .as_ref()
            .ok_or_else(|| Error::new(ErrorKind::Internal, "RTSP runtime stopped"))?;
        let task = rt.spawn(async move {
            let reason = match run(url, creds, &now_ns, &mut on_frame).await {
                Ok(()) => "the camera ended the stream".to_string(),
                Err(e) => e,
            };
            on_end(reason);
        });
        Ok(Client(task.abort_handle()))
    }
}

impl Drop for RtspClients {
    fn drop(&mut self) {
        // Without blocking: the capture may be dropped from async code.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Takes the user name and password out of the URL: retina sends them as RTSP
/// authentication (basic or digest), never inside the URL.
fn split_credentials(url: &str) -> Result<(url::Url, Option<Credentials>)> {
    let mut parsed = url::Url::parse(url)
        .map_err(|e| Error::new(ErrorKind::Invalid, format!("camera URL: {e}")))?;
    let creds = (!parsed.username().is_empty()).then(|| Credentials {
        username: decode(parsed.username()),
        password: decode(parsed.password().unwrap_or("")),
    });
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    Ok((parsed, creds))
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

async fn step<T, E: std::fmt::Display>(
    what: &str,
    f: impl Future<Output = std::result::Result<T, E>>,
) -> std::result::Result<T, String> {
    match tokio::time::timeout(STEP_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {}", short(e))),
        Err(_) => Err(format!("{what}: no answer in {STEP_TIMEOUT:?}")),
    }
}

/// A client error as the camera's status and alarm show it: its first line (retina's
/// errors go on with the connection's addresses, the packet, the stream), which the
/// log keeps whole.
fn short(e: impl std::fmt::Display) -> String {
    let full = e.to_string();
    let line = full.lines().next().unwrap_or("").trim();
    if line.len() < full.trim().len() {
        tracing::info!("RTSP client: {full}");
    }
    line.chars().take(200).collect()
}

async fn run(
    url: url::Url,
    creds: Option<Credentials>,
    now_ns: &(impl Fn() -> Option<i64> + Send + Sync),
    on_frame: &mut (impl FnMut(RtspFrame) + Send),
) -> std::result::Result<(), String> {
    let shown = url.to_string();
    let mut first = true;
    let options = SessionOptions::default()
        .creds(creds)
        .user_agent(format!("courtrec/{}", env!("CARGO_PKG_VERSION")));
    let mut session = step(
        "connecting",
        retina::client::Session::describe(url, options),
    )
    .await?;
    let video = session
        .streams()
        .iter()
        .position(|s| s.media() == "video" && s.encoding_name().eq_ignore_ascii_case("h264"))
        .ok_or("the camera offers no H.264 video stream")?;
    let setup = SetupOptions::default()
        .transport(Transport::Tcp(TcpTransportOptions::default()))
        .frame_format(FrameFormat::SIMPLE);
    step("setting up the stream", session.setup(video, setup)).await?;
    // The sequence number and RTP time announced at PLAY are not relied on: some
    // servers (gst-rtsp-server serving a shared stream among them) send a packet or two
    // from before them, which retina would take as reordering and fail on. One stream
    // is played, so no time needs lining up with another.
    let play = PlayOptions::default()
        .initial_seq(InitialSequenceNumberPolicy::Ignore)
        .initial_timestamp(InitialTimestampPolicy::Ignore);
    let playing = step("starting the stream", session.play(play)).await?;
    let mut frames = playing.demuxed().map_err(short)?;
    let mut timing = Timing::default();
    loop {
        let item = match tokio::time::timeout(QUIET_TIMEOUT, frames.next()).await {
            Err(_) => return Err(format!("no picture from the camera for {QUIET_TIMEOUT:?}")),
            Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => return Err(short(e)),
            Ok(Some(Ok(item))) => item,
        };
        let CodecItem::VideoFrame(frame) = item else {
            continue;
        };
        // Before the pipeline runs there is no running time to put the frame at.
        let Some(arrival_ns) = now_ns() else {
            continue;
        };
        let ts = frame.timestamp();
        let rtp_ns = (ts.elapsed() as i128 * 1_000_000_000 / ts.clock_rate().get() as i128) as i64;
        let Some((pts_ns, duration_ns)) = timing.place(rtp_ns, arrival_ns) else {
            continue;
        };
        let keyframe = frame.is_random_access_point();
        if first {
            // What is passed on starts with a picture that decodes on its own.
            if !keyframe {
                continue;
            }
            first = false;
            tracing::debug!(
                running_ms = arrival_ns / 1_000_000,
                "RTSP: first frame from {shown}"
            );
        }
        let au = frame.into_data();
        let mut data = Vec::with_capacity(AUD.len() + au.len());
        data.extend_from_slice(&AUD);
        data.extend_from_slice(&au);
        on_frame(RtspFrame {
            pts_ns,
            duration_ns,
            keyframe,
            data,
        });
    }
}

/// Frames further apart in the camera's clock than in ours by more than this mean a
/// jump (the camera restarted its clock, or ours stepped): the anchor is set again,
/// frames going on from the last one passed on.
const RESYNC_NS: i64 = 1_000_000_000;
/// How far back the smallest network delay is remembered; a camera's clock drifting
/// against ours (parts per million) is followed within this window.
const WINDOW_NS: i64 = 2_000_000_000;
/// A new connection's first second is not passed on: its frames come irregularly (a
/// burst of what the camera had queued) and only set the anchor.
const SETTLE_NS: i64 = 1_000_000_000;
/// How far the anchor may move back per frame: enough for any camera clock running
/// fast against ours (3,000 ppm at 30 fps), small enough that frames stay their own
/// length apart. A larger step back made two frames of one 2 s segment fall on one
/// frame time in players and muxers that count in frames (ffmpeg among them).
const MAX_BACK_NS: i64 = 100_000;
/// A frame's length when the previous one does not tell (the first frame).
const DEFAULT_FRAME_NS: u64 = 33_333_333;

/// Puts a camera's frames on the pipeline's running time, as `rtpjitterbuffer` did:
/// the camera's RTP clock keeps the spacing between frames (no network jitter in the
/// timestamps), and the smallest delay seen over the last two seconds anchors it to
/// our clock (a frame is placed no later than it arrived, but for the anchor's slow
/// moves back).
#[derive(Default)]
pub(super) struct Timing {
    /// (arrival, arrival - RTP time), increasing offsets: the front is the minimum.
    window: VecDeque<(i64, i64)>,
    /// When the connection's first frame came.
    first_ns: Option<i64>,
    /// The offset from RTP time to running time frames are placed with.
    anchor: Option<i64>,
    /// The last frame passed on: its RTP time, place and length.
    last: Option<(i64, i64, u64)>,
}

impl Timing {
    /// The running time and duration of a frame with RTP time `rtp_ns` (from the
    /// stream's start) that arrived at running time `arrival_ns`; None while the
    /// connection settles.
    pub(super) fn place(&mut self, rtp_ns: i64, arrival_ns: i64) -> Option<(i64, u64)> {
        let offset = arrival_ns - rtp_ns;
        let first_ns = *self.first_ns.get_or_insert(arrival_ns);
        if self
            .window
            .front()
            .is_some_and(|&(_, min)| (offset - min).abs() > RESYNC_NS)
        {
            // A jump: anchor again, going on from the last frame passed on.
            self.window.clear();
            self.anchor = None;
        }
        while self.window.back().is_some_and(|&(_, o)| o >= offset) {
            self.window.pop_back();
        }
        self.window.push_back((arrival_ns, offset));
        while self
            .window
            .front()
            .is_some_and(|&(at, _)| at < arrival_ns - WINDOW_NS)
        {
            self.window.pop_front();
        }
        if arrival_ns - first_ns < SETTLE_NS {
            return None;
        }
        let min = self.window.front().map_or(offset, |&(_, o)| o);
        let anchor = match (self.anchor, self.last) {
            (Some(a), _) => min.max(a - MAX_BACK_NS),
            (None, Some((_, last_pts, last_len))) => min.max(last_pts + last_len as i64 - rtp_ns),
            (None, None) => min,
        };
        self.anchor = Some(anchor);
        let mut pts_ns = rtp_ns + anchor;
        let mut duration_ns = DEFAULT_FRAME_NS;
        if let Some((last_rtp, last_pts, last_len)) = self.last {
            if rtp_ns > last_rtp {
                duration_ns = ((rtp_ns - last_rtp) as u64).min(1_000_000_000);
            } else {
                duration_ns = last_len;
            }
            // Without B-frames (no decode times are kept), times only go forward.
            pts_ns = pts_ns.max(last_pts + 1);
        }
        self.last = Some((rtp_ns, pts_ns, duration_ns));
        Some((pts_ns, duration_ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: i64 = 33_333_333;

    /// Frames at 30 fps from RTP time 0, arriving `delay_ns(i)` after their time
    /// (from running time 5 s); what is passed on: (arrival, place, length).
    fn run(n: i64, delay_ns: impl Fn(i64) -> i64) -> Vec<(i64, i64, u64)> {
        let mut t = Timing::default();
        (0..n)
            .filter_map(|i| {
                let rtp = i * FRAME;
                let arrival = 5_000_000_000 + rtp + delay_ns(i);
                t.place(rtp, arrival).map(|(pts, d)| (arrival, pts, d))
            })
            .collect()
    }

    /// The frame index of a place on the 30 fps grid from running time 5 s, and what
    /// is left over.
    fn grid(pts: i64) -> (i64, i64) {
        ((pts - 5_000_000_000) / FRAME, (pts - 5_000_000_000) % FRAME)
    }

    #[test]
    fn a_connection_settles_and_network_jitter_does_not_reach_the_timestamps() {
        let delays = [3, 20, 7, 1, 15, 9, 2, 30, 4, 1];
        let placed = run(100, |i| delays[i as usize % 10] * 1_000_000);
        // The first second only anchors: about 30 frames.
        assert!((69..=71).contains(&placed.len()), "{}", placed.len());
        // The smallest delay (1 ms) anchors every frame: evenly spaced, a frame apart,
        // never later than it arrived.
        for w in placed.windows(2) {
            assert_eq!(w[1].1 - w[0].1, FRAME, "{placed:?}");
            assert_eq!(w[1].2, FRAME as u64);
        }
        for &(arrival, pts, _) in &placed {
            assert!(pts <= arrival && pts >= arrival - 30_000_000);
        }
        for &(_, pts, _) in &placed {
            assert_eq!(grid(pts).1, 1_000_000);
        }
    }

    #[test]
    fn a_drifting_camera_clock_is_followed_and_times_only_go_forward() {
        // 1 % slow (its frames arrive ever later than their RTP times say: 600 ms over
        // 60 s) and 0.1 % fast (ever earlier).
        for ppm in [10_000, -1_000] {
            let placed = run(1800, |i| i * FRAME * ppm / 1_000_000);
            for w in placed.windows(2) {
                assert!(w[1].1 - w[0].1 > FRAME * 9 / 10, "{ppm} ppm");
            }
            for &(arrival, pts, _) in &placed {
                let behind_ms = (arrival - pts) / 1_000_000;
                assert!((-5..50).contains(&behind_ms), "{ppm} ppm: {behind_ms} ms");
            }
        }
    }

    #[test]
    fn a_burst_moves_the_anchor_back_slowly() {
        // After the first seconds, a frame comes 30 ms faster than any before it (the
        // network got faster): frames keep their spacing within 0.1 ms.
        let placed = run(300, |i| if i < 100 { 40_000_000 } else { 10_000_000 });
        for w in placed.windows(2) {
            let step = w[1].1 - w[0].1;
            assert!((FRAME - MAX_BACK_NS..=FRAME).contains(&step), "{step}");
        }
        // 200 frames at 0.1 ms: 20 of the 30 ms made up.
        let (arrival, pts, _) = placed[placed.len() - 1];
        assert_eq!(grid(pts), (299, 20_000_000));
        assert_eq!(arrival - pts, -10_000_000);
    }

    #[test]
    fn a_jump_of_the_camera_clock_goes_on_from_the_last_frame() {
        let mut t = Timing::default();
        let mut last = None;
        for i in 0..60 {
            last = t.place(i * FRAME, 2_000_000_000 + i * FRAME).or(last);
        }
        let (last_pts, _) = last.unwrap();
        // The camera restarted its clock: RTP time 0 again, a frame later.
        let at = 2_000_000_000 + 60 * FRAME;
        let (pts, dur) = t.place(0, at).unwrap();
        assert_eq!(pts, last_pts + FRAME);
        assert_eq!(dur, FRAME as u64);
        assert_eq!(t.place(FRAME, at + FRAME).unwrap().0, pts + FRAME);
    }

    #[test]
    fn an_error_shows_its_first_line() {
        let e = "Out-of-order packet or large loss; expecting seq=5\n\nconn: 1->2\nseq: 4";
        assert_eq!(
            short(e),
            "Out-of-order packet or large loss; expecting seq=5"
        );
        assert_eq!(short("x".repeat(300)).len(), 200);
    }

    #[test]
    fn credentials_leave_the_url_and_are_decoded() {
        let (url, creds) =
            split_credentials("rtsp://court%20it:p%21ss+word@cam:554/stream1").unwrap();
        assert_eq!(url.as_str(), "rtsp://cam:554/stream1");
        let creds = creds.unwrap();
        assert_eq!(creds.username, "court it");
        assert_eq!(creds.password, "p!ss+word");
        let (url, creds) = split_credentials("rtsp://cam/s").unwrap();
        assert_eq!(url.as_str(), "rtsp://cam/s");
        assert!(creds.is_none());
        assert!(split_credentials("not a url").is_err());
    }
}
