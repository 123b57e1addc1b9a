//! Writes one track of a hearing as MPEG-TS segments: cut at keyframes once
//! `segment_target_ms` of media is in, hashed as written, fsynced on a media-time
//! cadence.
//!
//! Failure contract (what a crash leaves behind):
//! - SIGKILL: everything passed to `write` is in the page cache and survives; the open
//!   segment ends at its last whole frame or mid-packet, and recovery hashes it.
//! - Power cut: at most `fsync_interval_ms` of media of the open segment is lost (each
//!   new file's directory entry is fsynced when it is created, and its data every
//!   `fsync_interval_ms` of media).
//! - A finished segment is fsynced before it is reported (and so before the manifest
//!   line and the index that point at it exist).

use super::tsmux::{StreamType, TsMuxer};
use crate::archive::{self, HearingDir};
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

pub use crate::capture::Frame;

/// A segment that is complete and durable on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedSegment {
    pub seq: u64,
    pub rel_path: String,
    pub bytes: u64,
    pub sha256: String,
    pub media_start_ns: i64,
    pub media_duration_ns: u64,
    /// Cut short by a failure; sealed from what is on disk.
    pub partial: bool,
}

struct OpenSegment {
    file: File,
    path: PathBuf,
    rel_path: String,
    seq: u64,
    hasher: Sha256,
    bytes: u64,
    media_start_ns: i64,
    /// End of the last frame written on stream 0 (pts + duration).
    media_end_ns: i64,
    /// The timestamp epoch of the segment's first frame, kept to its end (see
    /// `archive::ts::EPOCH_NS`).
    epoch: i64,
    last_sync_media_ns: i64,
}

/// Settings of a track writer.
#[derive(Debug, Clone)]
pub struct SegmentSettings {
    pub segment_target_ns: i64,
    pub fsync_interval_ns: i64,
    /// Free space to leave untouched (see `config::Recording::disk_reserve_bytes`).
    pub disk_reserve_bytes: u64,
}

/// Writes the segments of one track.
pub struct SegmentWriter {
    dir: HearingDir,
    track: String,
    settings: SegmentSettings,
    streams: Vec<StreamType>,
    mux: TsMuxer,
    next_seq: u64,
    cur: Option<OpenSegment>,
    buf: Vec<u8>,
    pending_audio: Option<PendingAudio>,
    done: Vec<FinishedSegment>,
}

/// AAC frames held to be written as one PES packet.
struct PendingAudio {
    stream: usize,
    pts_ns: i64,
    data: Vec<u8>,
    frames: usize,
}

/// AAC frames per PES packet: 4 x 21.3 ms at 48 kHz, so packing delays a write by at
/// most ~85 ms (well inside the 1 s recovery point).
const AUDIO_FRAMES_PER_PES: usize = 4;

impl SegmentWriter {
    /// `next_seq` continues the track's numbering (1 for a new hearing).
    pub fn new(
        dir: HearingDir,
        track: &str,
        streams: &[StreamType],
        settings: SegmentSettings,
        next_seq: u64,
    ) -> SegmentWriter {
        SegmentWriter {
            dir,
            track: track.to_string(),
            settings,
            streams: streams.to_vec(),
            mux: TsMuxer::new(streams),
            next_seq,
            cur: None,
            buf: Vec::with_capacity(256 * 1024),
            pending_audio: None,
            done: Vec::new(),
        }
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn is_open(&self) -> bool {
        self.cur.is_some()
    }

    /// The track's first stream decides where segments may start: video at keyframes;
    /// audio at any frame.
    fn can_start_at(&self, f: &Frame) -> bool {
        f.stream == 0 && (f.keyframe || self.streams[0] != StreamType::H264)
    }

    /// Writes a frame. Segments it seals are queued for [`Self::take_done`], even when
    /// the push then fails (e.g. no room for the next segment), so none is left out of
    /// the manifest. Frames before the first keyframe of a track are skipped (a segment
    /// must begin with one to play on its own).
    pub fn push(&mut self, f: &Frame) -> Result<()> {
        let start_here = self.can_start_at(f);
        match &self.cur {
            None if !start_here => return Ok(()),
            None => self.open(f.pts_ns)?,
            Some(cur) => {
                // Cut at this frame once enough media is in. Video may only cut at a
                // keyframe: allow a little tolerance so a keyframe every second gives
                // 2 s segments despite timestamp rounding. Audio cuts at any frame.
                let tolerance_ns = if self.streams[0] == StreamType::H264 {
                    self.settings.segment_target_ns / 8
                } else {
                    0
                };
                if start_here
                    && (f.discont
                        || f.pts_ns - cur.media_start_ns
                            >= self.settings.segment_target_ns - tolerance_ns)
                {
                    if let Some(s) = self.finish(Some(f.pts_ns))? {
                        self.done.push(s);
                    }
                    self.open(f.pts_ns)?;
                }
            }
        }
        self.write_frame(f)
    }

    /// Segments sealed by [`Self::push`] since the last call.
    pub fn take_done(&mut self) -> Vec<FinishedSegment> {
        std::mem::take(&mut self.done)
    }

    /// Writes the audio frames held for packing as one PES packet.
    fn flush_audio(&mut self) -> Result<()> {
        let Some(p) = self.pending_audio.take() else {
            return Ok(());
        };
        self.write_pes(p.stream, p.pts_ns, None, false, &p.data)
    }

    /// Refuses to go on when free space is below `floor_bytes`.
    fn check_space(&self, floor_bytes: u64) -> Result<()> {
        match archive::disk_space(&self.dir.root) {
            Some((free, _)) if free < floor_bytes => Err(Error::new(
                crate::error::ErrorKind::ResourceExhausted,
                format!(
                    "disk full: {} MB free, below the {} MB kept for the case file; recording of this track is paused until space is freed",
                    free / 1_000_000,
                    self.settings.disk_reserve_bytes / 1_000_000
                ),
            )),
            _ => Ok(()),
        }
    }

    fn open(&mut self, media_start_ns: i64) -> Result<()> {
        self.check_space(self.settings.disk_reserve_bytes)?;
        let track_dir = self.dir.track_dir(&self.track);
        let new_dir = !track_dir.exists();
        fs::create_dir_all(&track_dir)
            .map_err(|e| Error::io(format!("creating {}", track_dir.display()), e))?;
        if new_dir {
            archive::sync_dir(&track_dir.join(".."))?;
        }
        let seq = self.next_seq;
        let rel_path = HearingDir::segment_rel(&self.track, seq);
        let path = self.dir.root.join(&rel_path);
        // create_new: never overwrite a segment, even if numbering went wrong.
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io(format!("creating segment {}", path.display()), e))?;
        // Make the new file's directory entry durable now, so that the periodic data
        // fsyncs below protect something a power cut cannot unlink.
        archive::sync_dir(&track_dir)?;
        self.next_seq += 1;
        self.cur = Some(OpenSegment {
            file,
            path,
            rel_path,
            seq,
            hasher: Sha256::new(),
            bytes: 0,
            media_start_ns,
            media_end_ns: media_start_ns,
            last_sync_media_ns: media_start_ns,
            epoch: archive::ts::epoch_of(media_start_ns),
        });
        self.buf.clear();
        self.mux.write_tables(&mut self.buf);
        Ok(())
    }

    fn write_frame(&mut self, f: &Frame) -> Result<()> {
        if let Some(cur) = self.cur.as_mut()
            && f.stream == 0
        {
            cur.media_end_ns = cur
                .media_end_ns
                .max(f.pts_ns.saturating_add(f.duration_ns as i64));
        }
        let data = (*f.data).as_ref();
        if self.streams.get(f.stream) == Some(&StreamType::AacAdts) {
            // Pack a few AAC frames per PES packet, as broadcast muxers do: one ~170-byte
            // frame per PES costs two 188-byte packets, and a segment holding only one or
            // two single-frame PES is mistaken for MPEG audio by ffmpeg's prober.
            let p = self.pending_audio.get_or_insert_with(|| PendingAudio {
                stream: f.stream,
                pts_ns: f.pts_ns,
                data: Vec::with_capacity(1024),
                frames: 0,
            });
            p.data.extend_from_slice(data);
            p.frames += 1;
            if p.frames >= AUDIO_FRAMES_PER_PES {
                self.flush_audio()?;
            }
        } else {
            self.write_pes(f.stream, f.pts_ns, f.dts_ns, f.keyframe, data)?;
        }
        Ok(())
    }

    fn write_pes(
        &mut self,
        stream: usize,
        pts_ns: i64,
        dts_ns: Option<i64>,
        keyframe: bool,
        data: &[u8],
    ) -> Result<()> {
        let epoch = self
            .cur
            .as_ref()
            .map_or_else(|| archive::ts::epoch_of(pts_ns), |c| c.epoch);
        let to_90k = |ns: i64| archive::ts::pts_90k(ns, epoch);
        self.mux.write_frame(
            &mut self.buf,
            stream,
            to_90k(pts_ns),
            dts_ns.map(to_90k),
            keyframe,
            data,
        );
        let Some(cur) = self.cur.as_mut() else {
            self.buf.clear();
            return Ok(());
        };
        // The hash is taken over exactly the bytes handed to the kernel.
        cur.hasher.update(&self.buf);
        cur.file
            .write_all(&self.buf)
            .map_err(|e| Error::io(format!("writing segment {}", cur.path.display()), e))?;
        cur.bytes += self.buf.len() as u64;
        self.buf.clear();
        // Bound what a power cut can take: fsync every fsync_interval of media.
        if pts_ns - cur.last_sync_media_ns >= self.settings.fsync_interval_ns {
            crate::metrics::time_fsync(|| cur.file.sync_data())
                .map_err(|e| Error::io(format!("syncing segment {}", cur.path.display()), e))?;
            cur.last_sync_media_ns = pts_ns;
            // Half the reserve gone while writing: stop here rather than at ENOSPC,
            // so this segment ends whole and the manifest keeps room.
            self.check_space(self.settings.disk_reserve_bytes / 2)?;
        }
        Ok(())
    }

    /// Closes the open segment, if any. `end_ns` is where the next segment starts (so
    /// durations add up without gaps); `None` uses the end of the last frame.
    pub fn finish(&mut self, end_ns: Option<i64>) -> Result<Option<FinishedSegment>> {
        if self.cur.is_none() {
            self.pending_audio = None;
            return Ok(None);
        }
        self.flush_audio()?;
        let Some(cur) = self.cur.take() else {
            return Ok(None);
        };
        // Durable before anyone is told about it (manifest, index).
        crate::metrics::time_fsync(|| cur.file.sync_all())
            .map_err(|e| Error::io(format!("syncing segment {}", cur.path.display()), e))?;
        let end = end_ns.unwrap_or(cur.media_end_ns).max(cur.media_start_ns);
        Ok(Some(FinishedSegment {
            seq: cur.seq,
            rel_path: cur.rel_path,
            bytes: cur.bytes,
            sha256: hex::encode(cur.hasher.finalize()),
            media_start_ns: cur.media_start_ns,
            media_duration_ns: (end - cur.media_start_ns) as u64,
            partial: false,
        }))
    }

    /// Gives up the open segment after a failed write: its bytes on disk are unknown, so
    /// it is sealed from the file itself (torn packet cut, hashed as it is) and marked
    /// partial, never described by a hash of bytes that may not have reached the disk.
    pub fn abandon(&mut self) -> Result<Option<FinishedSegment>> {
        self.pending_audio = None;
        let Some(cur) = self.cur.take() else {
            return Ok(None);
        };
        let _ = cur.file.sync_all();
        drop(cur.file);
        let sealed = archive::seal_file(&cur.path)?;
        Ok(Some(FinishedSegment {
            seq: cur.seq,
            rel_path: cur.rel_path,
            bytes: sealed.bytes,
            sha256: sealed.sha256,
            media_start_ns: cur.media_start_ns,
            media_duration_ns: (cur.media_end_ns - cur.media_start_ns).max(0) as u64,
            partial: true,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(stream: usize, pts_ms: i64, key: bool) -> Frame {
        Frame {
            stream,
            pts_ns: pts_ms * 1_000_000,
            dts_ns: None,
            duration_ns: 66_666_667,
            keyframe: key,
            discont: false,
            data: Box::new(vec![0x42u8; 1500]),
        }
    }

    fn settings() -> SegmentSettings {
        SegmentSettings {
            segment_target_ns: 2_000_000_000,
            fsync_interval_ns: 500_000_000,
            disk_reserve_bytes: 0,
        }
    }

    #[test]
    fn cuts_at_keyframes_after_target_and_hashes_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = HearingDir {
            root: tmp.path().to_path_buf(),
        };
        let mut w = SegmentWriter::new(dir.clone(), "cam1", &[StreamType::H264], settings(), 1);
        let mut done = Vec::new();
        // 15 fps, keyframe every second, starting mid-GOP: the first frames are skipped.
        for i in 5..(15 * 7) {
            let t = i * 1000 / 15;
            w.push(&frame(0, t, i % 15 == 0)).unwrap();
            done.extend(w.take_done());
        }
        done.extend(w.finish(None).unwrap());
        assert_eq!(done.len(), 3, "{done:?}");
        assert_eq!(done[0].seq, 1);
        assert_eq!(done[0].media_start_ns, 1_000_000_000);
        assert_eq!(
            done[0].media_start_ns + done[0].media_duration_ns as i64,
            done[1].media_start_ns
        );
        assert_eq!(done[0].media_duration_ns, 2_000_000_000);
        for s in &done {
            let (sha, len) = archive::hash_file(&dir.root.join(&s.rel_path)).unwrap();
            assert_eq!((sha, len), (s.sha256.clone(), s.bytes));
            assert_eq!(len % 188, 0);
        }
    }

    #[test]
    fn audio_tracks_cut_on_time() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = HearingDir {
            root: tmp.path().to_path_buf(),
        };
        let mut w = SegmentWriter::new(dir, "mic1", &[StreamType::AacAdts], settings(), 7);
        let mut done = Vec::new();
        for i in 0..300 {
            // AAC at 48 kHz: 1024 samples = 21.333 ms per frame
            let f = Frame {
                pts_ns: i * 21_333_333,
                duration_ns: 21_333_333,
                ..frame(0, 0, false)
            };
            w.push(&f).unwrap();
            done.extend(w.take_done());
        }
        assert!(done.len() >= 2);
        assert_eq!(done[0].seq, 7);
        // Cut at the first frame at or past 2 s: never short, at most one frame long.
        for s in &done {
            assert!(
                s.media_duration_ns >= 2_000_000_000
                    && s.media_duration_ns < 2_000_000_000 + 21_333_334,
                "{s:?}"
            );
        }
    }

    /// A small ADTS frame (AAC-LC, 48 kHz, mono).
    fn adts_frame() -> Vec<u8> {
        let mut f = vec![
            0xff, 0xf1, 0x4c, 0x40, 0x01, 0x7f, 0xfc, 0x01, 0x18, 0x20, 0x07,
        ];
        let len = f.len();
        f[3] = (f[3] & 0xfc) | ((len >> 11) as u8 & 0x03);
        f[4] = (len >> 3) as u8;
        f[5] = ((len as u8 & 0x07) << 5) | 0x1f;
        f
    }

    #[test]
    fn a_two_frame_audio_segment_is_still_aac_to_ffprobe() {
        if std::process::Command::new("ffprobe")
            .arg("-version")
            .output()
            .is_err()
        {
            return; // ffprobe checks run in the integration suite's environment
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = HearingDir {
            root: tmp.path().to_path_buf(),
        };
        let mut w = SegmentWriter::new(dir.clone(), "mic1", &[StreamType::AacAdts], settings(), 1);
        for i in 0..2 {
            let f = Frame {
                pts_ns: i * 21_333_333,
                duration_ns: 21_333_333,
                data: Box::new(adts_frame()),
                ..frame(0, 0, false)
            };
            w.push(&f).unwrap();
        }
        let s = w.finish(None).unwrap().unwrap();
        let out = std::process::Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name",
                "-of",
                "csv=p=0",
            ])
            .arg(dir.root.join(&s.rel_path))
            .output()
            .unwrap();
        let codecs = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            !codecs.trim().is_empty() && codecs.split_whitespace().all(|c| c == "aac"),
            "{codecs}"
        );
        assert_eq!(s.bytes, 3 * 188, "PAT, PMT and one PES holding both frames");
    }

    #[test]
    fn never_overwrites_an_existing_segment() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = HearingDir {
            root: tmp.path().to_path_buf(),
        };
        fs::create_dir_all(dir.track_dir("cam1")).unwrap();
        fs::write(
            dir.root.join(HearingDir::segment_rel("cam1", 1)),
            b"evidence",
        )
        .unwrap();
        let mut w = SegmentWriter::new(dir, "cam1", &[StreamType::H264], settings(), 1);
        assert!(w.push(&frame(0, 0, true)).is_err());
    }
}
