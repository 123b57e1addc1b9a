//! Capture: every source of the courtroom in one GStreamer pipeline on one clock,
//! running continuously (so levels and status are live before a hearing opens).
//! It hands encoded frames to a [`FrameSink`] (the recorder) and publishes the health
//! and level of each source in [`SourceStatus`].
//!
//! This file holds the GStreamer-free interface; `describe.rs` makes the pipeline's
//! text from the templates in `pipelines/`, `pipeline.rs` runs it, `feeds.rs` hands
//! frames on, and `supervisor.rs` keeps sources alive.

mod caption_box;
mod clocking;
mod describe;
mod feeds;
mod mixtime;
mod overlay;
pub mod pipeline;
mod resting;
mod rtsp;
mod supervisor;

pub use describe::{Description, describe, layout_panes};

use crate::archive::records::{TrackInfo, TrackKind};
use crate::config::Config;
use crate::media::StreamType;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use crate::media::Frame;

/// Receives encoded frames from capture's streaming threads. Must not block.
pub trait FrameSink: Send + Sync {
    fn push(&self, track: usize, frame: Frame);
}

/// What the recorder may ask of capture.
pub trait CaptureControl: Send + Sync {
    /// The pipeline clock's running time now (the timeline frames are stamped on).
    fn running_time_ns(&self) -> Option<i64>;
    /// Asks every encoder for a keyframe at the first frame at or after `at_rt_ns`, so
    /// recording starts there on every track at once.
    fn request_keyframes(&self, at_rt_ns: i64);
    /// Lets the recording encoders work (`true`) or rest (`false`). Nothing consumes
    /// what they make while no hearing records, so between hearings they wait behind
    /// valves (a courtroom box idles most of the day); previews, levels and the
    /// livestream take the raw pictures and sound before them and stay live.
    fn set_encoding(&self, on: bool);
    /// Text burned into the composite under the time (the case number).
    fn set_caption(&self, text: &str);
    /// The wall-clock time (Unix ns) of running time 0: the burned-in time of a frame
    /// is this plus its running time.
    fn wall_epoch_ns(&self) -> i64;
    /// Moves the burned-in time (after a clock step).
    fn set_wall_epoch_ns(&self, epoch_ns: i64);
    /// The epoch the composite's overlay itself holds (read back from the element, for
    /// the status page and tests), to the microsecond.
    fn burned_in_epoch_ns(&self) -> Option<i64>;
    /// How long the pictures and encoders have rested (no hearing records, nobody
    /// watches: `capture::resting`), in ms; None while they work or before they may
    /// rest (the pipeline's first seconds).
    fn resting_ms(&self) -> Option<u64>;
}

/// A track that capture produces, in the order of its index.
#[derive(Debug, Clone)]
pub struct TrackSpec {
    pub info: TrackInfo,
    pub streams: Vec<StreamType>,
}

/// The tracks of a courtroom: one per camera, one per microphone, then the composite
/// (unless `[composite] enabled = false`).
pub fn track_specs(cfg: &Config) -> Vec<TrackSpec> {
    let mut v = Vec::new();
    for c in cfg.cameras() {
        v.push(TrackSpec {
            info: TrackInfo {
                name: c.id.clone(),
                kind: TrackKind::Video,
                role: role_name(c.role),
                label: c.label.clone(),
            },
            streams: vec![StreamType::H264],
        });
    }
    for m in cfg.microphones() {
        v.push(TrackSpec {
            info: TrackInfo {
                name: m.id.clone(),
                kind: TrackKind::Audio,
                role: role_name(m.role),
                label: m.label.clone(),
            },
            streams: vec![StreamType::AacAdts],
        });
    }
    if cfg.composite.enabled {
        v.push(TrackSpec {
            info: TrackInfo {
                name: "composite".into(),
                kind: TrackKind::Composite,
                role: "composite".into(),
                label: "Composite".into(),
            },
            streams: vec![StreamType::H264, StreamType::AacAdts],
        });
    }
    v
}

fn role_name(r: crate::config::Role) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "other".into())
}

/// Live health of one source.
#[derive(Debug, Clone)]
pub struct SourceState {
    pub id: String,
    pub kind: TrackKind,
    pub role: String,
    pub label: String,
    pub last_buffer: Option<Instant>,
    /// Peak of the last audio block, dBFS (microphones only).
    pub peak_dbfs: Option<f64>,
    /// RMS of the last audio block, dBFS (microphones only).
    pub rms_dbfs: Option<f64>,
    /// When the peak was last above the silence threshold.
    pub last_sound: Option<Instant>,
    /// Last error the source reported (e.g. "connection refused").
    pub error: Option<String>,
    /// The source failed and is being restarted.
    pub reconnecting: bool,
    /// How many times the source was restarted after a failure.
    pub restarts: u64,
}

/// Health of all sources, written by capture's streaming threads, read by the API and
/// the alarm monitor.
#[derive(Debug)]
pub struct SourceStatus {
    pub sources: Mutex<Vec<SourceState>>,
    pub silence_dbfs: f64,
}

impl SourceStatus {
    /// One entry per camera and microphone, indexed like their tracks.
    pub fn new(cfg: &Config) -> SourceStatus {
        let sources = track_specs(cfg)
            .into_iter()
            .filter(|t| t.info.kind != TrackKind::Composite)
            .map(|t| SourceState {
                id: t.info.name,
                kind: t.info.kind,
                role: t.info.role,
                label: t.info.label,
                last_buffer: None,
                peak_dbfs: None,
                rms_dbfs: None,
                last_sound: None,
                error: None,
                reconnecting: false,
                restarts: 0,
            })
            .collect();
        SourceStatus {
            sources: Mutex::new(sources),
            silence_dbfs: cfg.alarms.mic_silence_dbfs,
        }
    }

    /// Records that source `idx` delivered a buffer now.
    pub fn saw_buffer(&self, idx: usize) {
        if let Ok(mut s) = self.sources.lock()
            && let Some(src) = s.get_mut(idx)
        {
            src.last_buffer = Some(Instant::now());
            src.error = None;
        }
    }

    /// Records the level of an audio block of source `idx`. Levels are measured after
    /// the microphone's slot, which makes silence when the microphone is gone: they say
    /// nothing about whether it is there (its own output does, [`Self::saw_buffer`]).
    pub fn saw_level(&self, idx: usize, peak_dbfs: f64, rms_dbfs: f64) {
        if let Ok(mut s) = self.sources.lock()
            && let Some(src) = s.get_mut(idx)
        {
            src.peak_dbfs = Some(peak_dbfs);
            src.rms_dbfs = Some(rms_dbfs);
            if peak_dbfs > self.silence_dbfs {
                src.last_sound = Some(Instant::now());
            }
        }
    }

    /// Records that source `idx` failed and is being restarted.
    pub fn set_failed(&self, idx: usize, err: String) {
        if let Ok(mut s) = self.sources.lock()
            && let Some(src) = s.get_mut(idx)
        {
            src.error = Some(err);
            src.reconnecting = true;
            src.restarts += 1;
        }
    }

    /// The last time source `idx` delivered anything.
    pub fn last_buffer(&self, idx: usize) -> Option<Instant> {
        self.sources
            .lock()
            .ok()
            .and_then(|s| s.get(idx).and_then(|s| s.last_buffer))
    }

    pub fn snapshot(&self) -> Vec<SourceState> {
        self.sources.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Peak and RMS of signed 16-bit samples, in dBFS (-100 for digital silence).
pub fn levels_dbfs(samples: &[i16]) -> (f64, f64) {
    if samples.is_empty() {
        return (-100.0, -100.0);
    }
    let mut peak = 0i32;
    let mut sum_sq = 0f64;
    for &s in samples {
        peak = peak.max((s as i32).abs());
        sum_sq += (s as f64) * (s as f64);
    }
    let to_db = |v: f64| {
        if v <= 0.0 {
            -100.0
        } else {
            (20.0 * (v / 32768.0).log10()).max(-100.0)
        }
    };
    (
        to_db(peak as f64),
        to_db((sum_sq / samples.len() as f64).sqrt()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_not_renewed_are_stale() {
        let p = Previews::default();
        assert!(p.stale(std::time::Duration::ZERO).is_empty(), "none yet");
        p.put("cam2", vec![1]);
        p.put("cam1", vec![1]);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(p.stale(std::time::Duration::ZERO), ["cam1", "cam2"]);
        assert!(p.stale(std::time::Duration::from_secs(3600)).is_empty());
        p.put("cam1", vec![2]);
        assert_eq!(p.stale(std::time::Duration::from_millis(4)), ["cam2"]);
    }

    #[test]
    fn levels() {
        let (p, r) = levels_dbfs(&[0; 100]);
        assert_eq!((p, r), (-100.0, -100.0));
        let full: Vec<i16> = (0..100)
            .map(|i| if i % 2 == 0 { 32767 } else { -32768 })
            .collect();
        let (p, r) = levels_dbfs(&full);
        assert!(p > -0.01 && r > -0.01);
        let half: Vec<i16> = vec![16384; 10];
        assert!((levels_dbfs(&half).0 + 6.02).abs() < 0.01);
    }

    #[test]
    fn demo_tracks() {
        let specs = track_specs(&Config::demo());
        let names: Vec<_> = specs.iter().map(|s| s.info.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "cam1",
                "cam2",
                "cam3",
                "cam4",
                "mic1",
                "mic2",
                "mic3",
                "mic4",
                "composite"
            ]
        );
    }
}

/// The latest preview still (JPEG) of each camera and of the composite, for the clerk's
/// console. Written by the capture's preview branches, read by the API.
#[derive(Default)]
pub struct Previews {
    stills: Mutex<std::collections::HashMap<String, Still>>,
}

/// A JPEG and when it was taken.
pub type Still = (Arc<Vec<u8>>, Instant);

impl Previews {
    pub fn put(&self, id: &str, jpeg: Vec<u8>) {
        if let Ok(mut s) = self.stills.lock() {
            s.insert(id.to_string(), (Arc::new(jpeg), Instant::now()));
        }
    }

    /// The latest still of `id` and when it was taken.
    pub fn get(&self, id: &str) -> Option<Still> {
        self.stills.lock().ok()?.get(id).cloned()
    }

    /// The pictures whose latest still is older than `after` (sorted): their branch of
    /// the pipeline has stopped (stills come twice a second, a lost camera's card too).
    pub fn stale(&self, after: std::time::Duration) -> Vec<String> {
        let Ok(s) = self.stills.lock() else {
            return Vec::new();
        };
        let mut ids: Vec<String> = s
            .iter()
            .filter(|(_, (_, at))| at.elapsed() > after)
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }
}

/// Receives the public stream's RTP packets (see `Capture::attach_live`), on GStreamer
/// threads: it must not block.
pub trait LiveFeed: Send + Sync {
    fn rtp(&self, video: bool, packet: &[u8]);
}
