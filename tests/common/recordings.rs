//! What the tests read of recordings: the manifest and segment files of a hearing on
//! disk, ffprobe's and ffmpeg's view of a file, and `courtrec verify`'s verdict.

use super::{artifacts, bin, wait_for};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// What ffprobe says of one file.
#[derive(Debug, Clone)]
pub struct Probe {
    pub start_s: f64,
    pub duration_s: f64,
    pub codecs: Vec<String>,
    pub json: Value,
}

/// ffmpeg's and ffprobe's input options for a recorded file: a segment (`.ts`) is
/// MPEG-TS, as its playlist declares, and is read as such. Left to guess, ffmpeg takes
/// a valid segment of fewer than 11 TS packets (a microphone's last ~0.1 s, cut off by
/// a recess or the close) for an MPEG program stream, whose audio it decodes as MP2
/// ("[mp2] Header missing"): its TS probe scores at most 2 below 11 packets, the
/// program-stream probe 25 once it sees 5 audio PES headers (measured on ffmpeg 5.1).
pub fn input_format(path: &Path) -> &'static [&'static str] {
    if path.extension().is_some_and(|e| e == "ts") {
        &["-f", "mpegts"]
    } else {
        &[]
    }
}

pub fn ffprobe(path: &Path) -> Probe {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_format",
            "-show_streams",
            "-of",
            "json",
        ])
        .args(input_format(path))
        .arg(path)
        .output()
        .expect("ffprobe (apt-get install ffmpeg)");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = |k: &str| {
        v["format"][k]
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    Probe {
        start_s: f("start_time"),
        duration_s: f("duration"),
        codecs: v["streams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["codec_name"].as_str().unwrap_or("?").to_string())
            .collect(),
        json: v,
    }
}

/// Decodes a file completely with ffmpeg; panics with ffmpeg's words on any error.
pub fn assert_decodes(path: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-xerror"])
        .args(input_format(path))
        .arg("-i")
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    let err = String::from_utf8_lossy(&out.stderr);
    if !(out.status.success() && err.trim().is_empty()) {
        // Keep the evidence for whoever reads the failure.
        let keep = artifacts("failed-segments").join(
            path.iter()
                .rev()
                .take(3)
                .collect::<Vec<_>>()
                .iter()
                .rev()
                .map(|c| c.to_string_lossy())
                .collect::<Vec<_>>()
                .join("_"),
        );
        let _ = std::fs::copy(path, &keep);
        panic!(
            "{} does not decode cleanly (copy in {}): {err}",
            path.display(),
            keep.display()
        );
    }
}

/// Seconds of media the least-recorded track of a hearing has in sealed segments, read
/// from its manifest as it grows (lines not yet whole are skipped).
pub fn recorded_s(data: &Path, id: &str) -> f64 {
    let text = std::fs::read_to_string(data.join("hearings").join(id).join("manifest.jsonl"))
        .unwrap_or_default();
    let recs: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| v["record"].clone())
        .collect();
    let Some(tracks) = recs.first().and_then(|r| r["meta"]["tracks"].as_array()) else {
        return 0.0;
    };
    tracks
        .iter()
        .map(|t| {
            recs.iter()
                .filter(|r| r["type"] == "segment" && r["track"] == t["name"])
                .filter_map(|r| r["media_duration_ns"].as_u64())
                .sum::<u64>() as f64
                / 1e9
        })
        .fold(f64::INFINITY, f64::min)
}

/// Waits until every track of the hearing has `secs` of sealed media: recording for
/// real rather than sleeping for a guessed time.
pub fn wait_recorded(data: &Path, id: &str, secs: f64) {
    assert!(
        wait_for(Duration::from_secs(60), || recorded_s(data, id) >= secs),
        "hearing {id}: only {:.1} s recorded on some track after 60 s (wanted {secs} s)",
        recorded_s(data, id)
    );
}

/// The records of a hearing's manifest.
pub fn manifest(data: &Path, id: &str) -> Vec<Value> {
    let text =
        std::fs::read_to_string(data.join("hearings").join(id).join("manifest.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["record"].clone())
        .collect()
}

pub fn segments<'a>(records: &'a [Value], track: &str) -> Vec<&'a Value> {
    let mut v: Vec<&Value> = records
        .iter()
        .filter(|r| r["type"] == "segment" && r["track"] == track)
        .collect();
    v.sort_by_key(|r| r["seq"].as_u64());
    v
}

/// The segment files on disk of a track, sorted.
pub fn files(data: &Path, id: &str, track: &str) -> Vec<PathBuf> {
    let dir = data.join("hearings").join(id).join("tracks").join(track);
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Makes a short H.264 test video (no B-frames) with ffmpeg.
pub fn make_video(path: &Path, seconds: u32, size: &str, fps: u32) {
    let st = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc=size={size}:rate={fps}"))
        .args([
            "-t",
            &seconds.to_string(),
            "-c:v",
            "libx264",
            "-g",
            &fps.to_string(),
            "-bf",
            "0",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(path)
        .status()
        .expect("ffmpeg");
    assert!(st.success());
}

/// ffmpeg's output for the luma readers: its pictures as raw grey frames on stdout.
const GREY_OUT: [&str; 5] = ["-f", "rawvideo", "-pix_fmt", "gray", "-"];

/// Mean luma (0-255) of one grey frame.
fn mean_luma(frame: &[u8]) -> f64 {
    frame.iter().map(|&v| v as u64).sum::<u64>() as f64 / frame.len().max(1) as f64
}

/// Mean and brightest luma (0-255) of the frame at `offset_s` into a file, sampled
/// at 160x90: a dark card with white text has a low mean and a bright maximum.
pub fn luma_mean_max_at(path: &Path, offset_s: f64) -> (f64, u8) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &format!("{offset_s:.3}")])
        .args(input_format(path))
        .arg("-i")
        .arg(path)
        .args(["-frames:v", "1", "-vf", "scale=160:90"])
        .args(GREY_OUT)
        .output()
        .expect("ffmpeg");
    assert_eq!(
        out.stdout.len(),
        160 * 90,
        "no frame at {offset_s} in {}",
        path.display()
    );
    let max = out.stdout.iter().copied().max().unwrap_or(0);
    (mean_luma(&out.stdout), max)
}

/// Mean luma (0-255) of each frame of a file, `per_second` frames a second, sampled
/// at 160x90.
pub fn luma_means(path: &Path, per_second: u32) -> Vec<f64> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error"])
        .args(input_format(path))
        .arg("-i")
        .arg(path)
        .args(["-vf", &format!("fps={per_second},scale=160:90")])
        .args(GREY_OUT)
        .output()
        .expect("ffmpeg");
    assert!(out.status.success(), "ffmpeg failed on {}", path.display());
    out.stdout.chunks_exact(160 * 90).map(mean_luma).collect()
}

/// Mean luma (0-255) of a JPEG picture (a console still), sampled at 160x90; None if
/// ffmpeg cannot read it.
pub fn jpeg_luma(jpeg: &[u8]) -> Option<f64> {
    let file = tempfile::Builder::new().suffix(".jpg").tempfile().ok()?;
    std::fs::write(file.path(), jpeg).ok()?;
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file.path())
        .args(["-vf", "scale=160:90"])
        .args(GREY_OUT)
        .output()
        .ok()?;
    (out.status.success() && out.stdout.len() == 160 * 90).then(|| mean_luma(&out.stdout))
}

/// Where the pictures of `paths` (MPEG-TS segments, played one after the other) stand
/// still for `min_s` or longer, by ffmpeg's `freezedetect`: (start, length) in seconds
/// from the first picture, the length None for a stillness lasting to the end.
pub fn still_spans(paths: &[PathBuf], min_s: f64) -> Vec<(f64, Option<f64>)> {
    let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let out = Command::new("ffmpeg")
        .args(["-nostats", "-v", "info"])
        .args(paths.first().map_or(&[][..], |p| input_format(p)))
        .arg("-i")
        .arg(format!("concat:{}", list.join("|")))
        .args(["-map", "0:v", "-vf"])
        .arg(format!("freezedetect=n=0.0005:d={min_s}"))
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    assert!(out.status.success(), "ffmpeg failed on {list:?}");
    let log = String::from_utf8_lossy(&out.stderr);
    let value = |line: &str, key: &str| {
        line.split(key)
            .nth(1)
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let mut spans: Vec<(f64, Option<f64>)> = Vec::new();
    for line in log.lines() {
        if let Some(start) = value(line, "freeze_start: ") {
            spans.push((start, None));
        } else if let (Some(length), Some(last)) =
            (value(line, "freeze_duration: "), spans.last_mut())
        {
            last.1 = Some(length);
        }
    }
    spans
}

/// Runs `courtrec verify` and returns its exit code and report.
pub fn verify(path: &Path, extra: &[&str]) -> (i32, String) {
    let out = Command::new(bin())
        .arg("verify")
        .args(extra)
        .arg(path)
        .output()
        .expect("run courtrec verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("panicked"),
        "verify must never panic: {text}"
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Copies a folder tree (a hearing or a bundle) to a fresh place.
pub fn copy_dir(from: &Path, to: &Path) {
    try_copy_dir(from, to).unwrap()
}

/// [`copy_dir`] that reports a failure (the folder went away meanwhile).
pub fn try_copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dst = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            try_copy_dir(&e.path(), &dst)?;
        } else {
            std::fs::copy(e.path(), &dst)?;
        }
    }
    Ok(())
}
