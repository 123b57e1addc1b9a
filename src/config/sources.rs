//! The sources of a courtroom as the config names them: cameras and microphones, their
//! kinds and roles (see `docs/config.md`).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use toml::Spanned;

/// Who or what a source points at; decides its place in the composite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Judge,
    Clerk,
    Plaintiff,
    Defendant,
    Witness,
    Evidence,
    Overview,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraKind {
    /// GStreamer's videotestsrc: for demos and tests.
    Test,
    /// An IP camera; its H.264 is recorded as it arrives.
    Rtsp,
    /// A local capture device.
    V4l2,
    /// A media file looped as if it were a live camera.
    File,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Camera {
    pub id: String,
    pub kind: CameraKind,
    pub role: Role,
    #[serde(default)]
    pub label: String,
    /// `test`: videotestsrc pattern name (smpte, ball, snow, pinwheel, ...).
    #[serde(default)]
    pub pattern: Option<String>,
    /// `test`: pixels the pattern moves sideways each frame (videotestsrc's
    /// `horizontal-speed`; 0: still). A moving still pattern costs far less to draw
    /// than `ball` (which paints every line of every frame: 3 % of a core at 640x360,
    /// 15 fps, against 0.7-1 % for `smpte75` moving).
    #[serde(default)]
    pub scroll_px_per_frame: i32,
    /// `rtsp`: the main (recorded) stream.
    #[serde(default)]
    pub url: Option<String>,
    /// `rtsp`: optional low-resolution stream of the same camera for the composite and
    /// previews, so the box never decodes the full-resolution stream.
    #[serde(default)]
    pub preview_url: Option<String>,
    /// `rtsp`: what decodes the stream the composite and previews show.
    #[serde(default)]
    pub preview_decoder: PreviewDecoder,
    /// `v4l2`: device node.
    #[serde(default)]
    pub device: Option<Spanned<PathBuf>>,
    /// `file`: the media file to loop.
    #[serde(default)]
    pub path: Option<Spanned<PathBuf>>,
    #[serde(default = "default_cam_width")]
    pub width: u32,
    #[serde(default = "default_cam_height")]
    pub height: u32,
    #[serde(default = "default_fps")]
    pub fps: u32,
    #[serde(default = "default_cam_bitrate")]
    pub bitrate_kbps: u32,
}

/// The H.264 decoder of an IP camera's preview stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PreviewDecoder {
    /// OpenH264 (`openh264dec`): the least memory (it does not load FFmpeg's libraries
    /// and the codecs they link, about 25 MB resident; it takes about 3 MB per stream
    /// itself) and a little less CPU. Exact on Constrained Baseline streams (what
    /// cameras send as substreams); Main and High progressive streams decode
    /// near-exactly (48 dB PSNR against FFmpeg on a High-profile stream with B-frames);
    /// interlaced streams need `libav`.
    #[default]
    Openh264,
    /// FFmpeg's decoder (`avdec_h264`): every H.264 stream, for about 20 MB more on a
    /// four-camera box.
    Libav,
}

impl PreviewDecoder {
    /// The GStreamer element, one thread.
    pub fn element(self) -> &'static str {
        match self {
            PreviewDecoder::Openh264 => "openh264dec",
            PreviewDecoder::Libav => "avdec_h264 max-threads=1",
        }
    }
}

fn default_cam_width() -> u32 {
    640
}
fn default_cam_height() -> u32 {
    360
}
fn default_fps() -> u32 {
    15
}
fn default_cam_bitrate() -> u32 {
    600
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MicrophoneKind {
    /// audiotestsrc: a tone with a beep every second, in step with the cameras' flash.
    Test,
    Alsa,
    Pulse,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Microphone {
    pub id: String,
    pub kind: MicrophoneKind,
    pub role: Role,
    #[serde(default)]
    pub label: String,
    /// `test`: tone frequency.
    #[serde(default)]
    pub freq_hz: Option<f64>,
    /// `test`: `ticks` (default: a beep each second), `sine` (a steady tone) or
    /// `silence` (a dead microphone, for testing the alarm).
    #[serde(default)]
    pub wave: Option<TestWave>,
    /// `alsa`/`pulse`: device name (e.g. `hw:1,0`); the system default if absent.
    #[serde(default)]
    pub device: Option<String>,
    #[serde(default = "default_audio_bitrate")]
    pub bitrate_kbps: u32,
}

fn default_audio_bitrate() -> u32 {
    64
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TestWave {
    Ticks,
    Sine,
    Silence,
    /// Pink noise: a level that never holds still, like speech (for meter tests).
    Noise,
}

impl TestWave {
    /// The `audiotestsrc` wave name.
    pub fn gst_name(self) -> &'static str {
        match self {
            TestWave::Ticks => "ticks",
            TestWave::Sine => "sine",
            TestWave::Silence => "silence",
            TestWave::Noise => "pink-noise",
        }
    }
}
