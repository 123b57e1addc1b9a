//! Recovery at start-up: hearings left open by a crash or a stop are reopened, the
//! segments and lines a crash cut off are checked and adopted (or the hearing is found
//! altered), a `recovery` event covers the gap, and the newest open hearing resumes
//! recording. A hearing that cannot be opened is skipped and alarmed: it never stops
//! the others from recording.

use super::hearings::{Active, GATE_LEAD_NS, HearingService};
use super::recorder::Timebase;
use crate::archive::index::{HearingDoc, HearingState};
use crate::archive::log::HearingLog;
use crate::archive::manifest::ReadReport;
use crate::archive::records::*;
use crate::archive::{self, HearingDir, ts};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

impl HearingService {
    /// At start-up: finds hearings left open by a crash or a stop, records the segments
    /// the crash cut off, logs a `recovery` event covering the gap, and resumes
    /// recording if the hearing was open (it stays in recess if it was in recess).
    pub fn recover(&self) -> Result<Vec<String>> {
        let mut recovered = Vec::new();
        let mut unclosed: Vec<HearingDoc> = self
            .index
            .hearings()?
            .into_iter()
            .filter(|h| matches!(h.state, HearingState::Open | HearingState::Recess))
            .collect();
        unclosed.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        let mut active = self.lock()?;
        // Open every one first: a damaged or altered hearing is skipped (and alarmed),
        // never a reason not to start, and the newest that opens is the one resumed.
        let mut opened = Vec::new();
        for h in unclosed {
            match self.reopen(&h.id) {
                Ok(x) => opened.push((h, x)),
                Err(e) => self.skip_damaged(&h.id, &e),
            }
        }
        let n = opened.len();
        for (i, (h, (mut log, report, signed_tail))) in opened.into_iter().enumerate() {
            let dir = self.data.hearing(&h.id);
            let entries = report.entries;
            let torn = report.torn_tail_bytes;
            let adopted = match adopt_orphans(&dir, &mut log, &entries, &self.device_id) {
                Ok(n) => n,
                Err(e) => {
                    self.skip_damaged(&h.id, &e);
                    continue;
                }
            };
            let doc = log.doc().clone();
            let last_end = doc
                .track_stats
                .values()
                .map(|t| t.media_end_ns)
                .max()
                .unwrap_or(0);
            // Media time keeps pace with the wall clock across the restart, so the gap
            // on the timeline is the time the box was not recording. The anchor is the
            // open's, moved by any clock step logged since (`wallclock`); "now" is the
            // time burned into the picture at this running time.
            let rt = self.running_time()?;
            let now_wall_ns = self.capture.wall_epoch_ns() + rt;
            let wall_at_base =
                crate::archive::wallclock::latest_anchor_ns(&doc.events).unwrap_or(now_wall_ns);
            let mut now_media = now_wall_ns - wall_at_base;
            // The clock set back while the box was down (by more than it was down):
            // media time never goes back. It goes on from where the hearing's timeline
            // ended, and a `clock_step` moves the anchor to the clock shown now.
            let known_end = doc
                .events
                .iter()
                .filter_map(|e| e.media_time_ns)
                .max()
                .unwrap_or(0)
                .max(last_end);
            let mut wall_at_base = wall_at_base;
            if now_media < known_end {
                let new_base = now_wall_ns - known_end;
                let step_ms = (new_base - wall_at_base) / 1_000_000;
                let mut ev = self.event(&h.id, EventKind::ClockStep);
                ev.wall_time = format_wall(chrono::DateTime::from_timestamp_nanos(now_wall_ns));
                ev.media_time_ns = Some(known_end);
                ev.step_ms = Some(step_ms);
                ev.text = Some(format!(
                    "at the restart the box's clock was found set back by more than the box was down: times of day move by {} (the step less the time the box was down) and from here on follow the clock shown now",
                    crate::archive::wallclock::fmt_step(step_ms)
                ));
                if let Err(e) = log.append(Record::Event(ev)) {
                    self.skip_damaged(&h.id, &e);
                    continue;
                }
                (wall_at_base, now_media) = (new_base, known_end);
            }
            let timebase = Timebase {
                base_rt_ns: rt - now_media,
                wall_at_base_unix_ns: wall_at_base,
            };
            let was_open = doc.state == HearingState::Open;
            let resumed = was_open && i + 1 == n;
            let mut ev = self.event(&h.id, EventKind::Recovery);
            ev.media_time_ns = Some(now_media);
            if was_open {
                ev.gap_from_ns = Some(last_end);
                // A resumed run begins `GATE_LEAD_NS` after now (within milliseconds:
                // `start_session` reads the clock again just after this is logged).
                let resume_at = if resumed {
                    now_media + GATE_LEAD_NS
                } else {
                    now_media
                };
                ev.gap_to_ns = Some(resume_at.max(last_end));
            }
            ev.text = Some(format!(
                "courtrec restarted after an unclean stop; {adopted} segment(s) cut off by it were recorded as partial{}{}{}",
                if torn > 0 {
                    format!("; a torn manifest line of {torn} bytes was dropped")
                } else {
                    String::new()
                },
                if signed_tail > 0 {
                    format!(
                        "; {signed_tail} line(s) written after the last signature were checked against their segments and adopted"
                    )
                } else {
                    String::new()
                },
                if resumed {
                    "; recording resumed"
                } else if was_open {
                    "; another hearing is newer, this one stays unrecorded until closed"
                } else {
                    "; the hearing stays in recess"
                }
            ));
            if let Err(e) = log.append(Record::Event(ev)) {
                self.skip_damaged(&h.id, &e);
                continue;
            }
            let next_seqs = self
                .specs
                .iter()
                .map(|s| {
                    log.doc()
                        .track_stats
                        .get(&s.info.name)
                        .map_or(1, |t| t.last_seq + 1)
                })
                .collect();
            recovered.push(h.id.clone());
            if i + 1 == n {
                let mut a = Active {
                    run_start_ns: 0,
                    id: h.id.clone(),
                    log: Arc::new(Mutex::new(log)),
                    timebase,
                    session: None,
                    next_seqs,
                };
                self.capture.set_caption(&doc.meta.case_number);
                if resumed {
                    self.start_session(&mut a)?;
                }
                *active = Some(a);
            }
        }
        // The encoders ran from start-up, so a resumed run's keyframe request was
        // honoured at once on every track; with no run to record, they rest.
        self.capture
            .set_encoding(active.as_ref().is_some_and(|a| a.session.is_some()));
        self.flush_index();
        Ok(recovered)
    }

    /// Opens an unclosed hearing's log for recovery, adopting the lines a crash left
    /// after the last signature (or finding the hearing altered). Returns the log,
    /// what was read, and how many lines were adopted.
    fn reopen(&self, id: &str) -> Result<(HearingLog, ReadReport, u64)> {
        let (mut log, report) = self.open_log(id)?;
        for e in &report.entries {
            if let Record::Segment(s) = &e.record {
                self.index.put_segment(s)?;
            }
        }
        let adopted = if log.unvouched() > 0 {
            log.adopt_tail(&report).inspect_err(|_| {
                if let Some(t) = log.tampered() {
                    self.catalog.mark_tampered(id, t);
                }
            })?
        } else {
            0
        };
        Ok((log, report, adopted))
    }

    fn skip_damaged(&self, id: &str, e: &Error) {
        tracing::error!(hearing = %id, "cannot recover this hearing, skipped: {e}");
        if self.index.tampered_reason(id).ok().flatten().is_some() {
            // Raised as `hearing_tampered` already.
            return;
        }
        if let Ok(mut d) = self.damaged.lock() {
            d.push((id.to_string(), e.msg.clone()));
        }
    }

    /// At start-up, for every closed or scheduled hearing: one whose manifest runs past
    /// its last signature (a crash between a line and its checkpoint) is checked and
    /// adopted; one the device log says was signed further than its folder shows is
    /// opened, which finds it altered. Cheap: only such hearings are opened.
    pub fn check_signatures(&self) -> Result<()> {
        let devlog = self.signer.as_ref().and_then(|s| s.devlog.clone());
        let logged = devlog.map(|d| d.hearings()).unwrap_or_default();
        for h in self.index.hearings()? {
            // A hearing handed over to the archive has no folder here any more.
            if matches!(h.state, HearingState::Open | HearingState::Recess)
                || self.index.tampered_reason(&h.id)?.is_some()
                || self.index.released(&h.id)?.is_some()
            {
                continue;
            }
            let signed = crate::archive::checkpoint::sizes_in(
                &self.data.hearing(&h.id).root.join("checkpoints"),
            )
            .last()
            .copied()
            .unwrap_or(0);
            let behind = logged
                .get(&h.id)
                .is_some_and(|l| l.size > signed || l.size > h.manifest_entries);
            if signed >= h.manifest_entries && !behind {
                continue;
            }
            let res = self.open_log(&h.id).and_then(|(mut log, report)| {
                if log.unvouched() > 0 {
                    log.adopt_tail(&report).inspect_err(|_| {
                        if let Some(t) = log.tampered() {
                            self.catalog.mark_tampered(&h.id, t);
                        }
                    })?;
                }
                Ok(())
            });
            if let Err(e) = res {
                self.skip_damaged(&h.id, &e);
            }
        }
        Ok(())
    }
}

/// Records segment files that exist on disk but not in the manifest (cut off by a crash
/// or a write error). A torn last TS packet is cut first: it cannot be decoded, and the
/// recorded hash must describe the file as it stays. Returns how many were adopted.
pub fn adopt_orphans(
    dir: &HearingDir,
    log: &mut HearingLog,
    entries: &[Entry],
    device_id: &str,
) -> Result<usize> {
    let hearing_id = dir.id().unwrap_or_default().to_string();
    let mut known: BTreeMap<String, ()> = BTreeMap::new();
    // Per track: the last sequence number and where its media ended.
    let mut last: BTreeMap<String, (u64, i64)> = BTreeMap::new();
    for e in entries {
        if let Record::Segment(s) = &e.record {
            known.insert(s.file.clone(), ());
            let l = last.entry(s.track.clone()).or_default();
            *l = (
                l.0.max(s.seq),
                l.1.max(s.media_start_ns.saturating_add(s.media_duration_ns as i64)),
            );
        }
    }
    let tracks_of_hearing: Vec<String> = entries
        .first()
        .and_then(|e| match &e.record {
            Record::Event(ev) => ev.meta.as_ref(),
            _ => None,
        })
        .map(|m| m.tracks.iter().map(|t| t.name.clone()).collect())
        .unwrap_or_default();
    let events: Vec<&EventRecord> = entries.iter().filter_map(|e| e.event()).collect();
    let tracks_dir = dir.root.join("tracks");
    let Ok(tracks) = std::fs::read_dir(&tracks_dir) else {
        return Ok(0);
    };
    let mut orphans = Vec::new();
    for t in tracks.flatten() {
        let track = t.file_name().to_string_lossy().to_string();
        let Ok(files) = std::fs::read_dir(t.path()) else {
            continue;
        };
        for f in files.flatten() {
            let name = f.file_name().to_string_lossy().to_string();
            let Some(seq) = name.strip_suffix(".ts").and_then(|s| s.parse::<u64>().ok()) else {
                continue;
            };
            let rel = HearingDir::segment_rel(&track, seq);
            if !known.contains_key(&rel) && tracks_of_hearing.contains(&track) {
                orphans.push((track.clone(), seq, rel));
            }
        }
    }
    orphans.sort();
    // What a crash (or failed manifest appends) can leave on a track: the segments
    // after its last listed one, numbered on without a hole. Anything else was not
    // written by this box as it recorded: never adopted (and never signed); verify
    // reports it.
    let mut expect: BTreeMap<String, u64> =
        last.iter().map(|(t, l)| (t.clone(), l.0 + 1)).collect();
    orphans.retain(|(track, seq, rel)| {
        let next = expect.entry(track.clone()).or_insert(1);
        if *seq == *next {
            *next += 1;
            true
        } else {
            tracing::warn!(hearing = %hearing_id, file = %rel, "a segment file this box did not leave: not adopted");
            false
        }
    });
    let mut adopted = 0;
    for (i, (track, seq, rel)) in orphans.iter().enumerate() {
        let path = dir.root.join(rel);
        let sealed = archive::seal_file(&path)?;
        // A file the crash cut off before its first frame (created, nothing written, or
        // only a torn packet) holds no media: listing it would list a file no player
        // can open. The last one of its track is removed instead (the writer numbers
        // on from the last listed segment, so nothing refers to it); the directory is
        // synced so the removal outlives another crash.
        let last_of_track = orphans.get(i + 1).is_none_or(|(t, _, _)| t != track);
        if sealed.summary.main_pid().is_none() && last_of_track {
            std::fs::remove_file(&path).map_err(|e| Error::io("removing an empty segment", e))?;
            archive::sync_dir(&dir.root.join("tracks").join(track))?;
            tracing::warn!(hearing = %hearing_id, file = %rel, "a segment file cut off before its first frame was removed (it held no media)");
            continue;
        }
        adopted += 1;
        // The file's timestamps are within its epoch: placed next to where the track
        // was last known to be (a file with no frame at all, there).
        let near = last.get(track).map_or(0, |l| l.1);
        let (start, dur) = match sealed.summary.main_pid() {
            Some((_, p)) => {
                let start = ts::media_ns_near(p.min_pts_90k, near);
                let end = ts::media_ns_near(p.max_pts_90k, start);
                let span_ns = end.saturating_sub(start).max(0) as u64;
                (start, adopted_duration_ns(span_ns, p.pes_count))
            }
            None => (near, 0),
        };
        last.entry(track.clone()).or_default().1 = near.max(start.saturating_add(dur as i64));
        let rec = SegmentRecord {
            hearing_id: hearing_id.clone(),
            device_id: device_id.to_string(),
            track: track.clone(),
            seq: *seq,
            file: rel.clone(),
            bytes: sealed.bytes,
            sha256: sealed.sha256,
            media_start_ns: start,
            media_duration_ns: dur,
            wall_start: format_wall(chrono::DateTime::from_timestamp_nanos(
                crate::archive::wallclock::anchor_ns(events.iter().copied(), start)
                    .unwrap_or(0)
                    .saturating_add(start),
            )),
            partial: true,
        };
        log.append(Record::Segment(rec))?;
    }
    Ok(adopted)
}

/// The duration listed for an adopted segment whose frames' timestamps span
/// `span_ns`: the span plus its last frame (the average spacing, the file records no
/// frame durations), and never 0 for a file holding a frame. A zero duration would put
/// the segment's end at its start: a `clock_step` logged at the restart (at the end of
/// what was recorded) would then share its media time with a segment recorded on the
/// old clock, and that segment's time of day would be read with the new one.
fn adopted_duration_ns(span_ns: u64, frames: u64) -> u64 {
    match frames {
        0 => 0,
        1 => 1,
        n => span_ns.saturating_add(span_ns / (n - 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adopted_segment_lasts_through_its_last_frame() {
        assert_eq!(adopted_duration_ns(0, 0), 0, "no frame, no media");
        assert!(adopted_duration_ns(0, 1) > 0, "one frame is not nothing");
        // Three frames 66.7 ms apart: 200 ms, as the writer would have listed it.
        assert_eq!(adopted_duration_ns(133_333_334, 3), 200_000_001);
    }

    #[test]
    fn a_one_frame_segment_cut_off_ends_after_it_starts() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, mut log, entries) = hearing(tmp.path());
        let mut ts = Vec::new();
        let mut mux = crate::recording::tsmux::TsMuxer::new(&[crate::media::StreamType::H264]);
        mux.write_tables(&mut ts);
        let pts = ts::pts_90k(16_900_000_000, ts::epoch_of(16_900_000_000));
        mux.write_frame(&mut ts, 0, pts, None, true, &[0, 0, 0, 1, 0x65, 0x88]);
        std::fs::write(dir.root.join(HearingDir::segment_rel("cam1", 1)), &ts).unwrap();
        assert_eq!(adopt_orphans(&dir, &mut log, &entries, "d").unwrap(), 1);
        let end = log.doc().track_stats["cam1"].media_end_ns;
        assert!(
            end > 16_900_000_000,
            "ends after its one frame's start: {end}"
        );
    }

    /// A hearing folder with one track (cam1), no segment listed yet.
    fn hearing(tmp: &std::path::Path) -> (HearingDir, HearingLog, Vec<Entry>) {
        let dir = HearingDir {
            root: tmp.join("h1"),
        };
        let created = crate::recording::fixtures::created_h1();
        let entry = Entry {
            n: 0,
            prev: "0".repeat(64),
            record: Record::Event(created.clone()),
        };
        let log = HearingLog::create(dir.clone(), None, Record::Event(created), None).unwrap();
        std::fs::create_dir_all(dir.root.join("tracks/cam1")).unwrap();
        (dir, log, vec![entry])
    }

    #[test]
    fn a_segment_cut_off_before_its_first_frame_is_removed_not_listed() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, mut log, entries) = hearing(tmp.path());
        let empty = dir.root.join(HearingDir::segment_rel("cam1", 1));
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(adopt_orphans(&dir, &mut log, &entries, "d").unwrap(), 0);
        assert!(!empty.exists(), "the empty file is gone");
        assert_eq!(log.doc().manifest_entries, 1, "and nothing was listed");
    }

    #[test]
    fn only_the_last_file_of_a_track_is_removed_when_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, mut log, entries) = hearing(tmp.path());
        let first = dir.root.join(HearingDir::segment_rel("cam1", 1));
        let second = dir.root.join(HearingDir::segment_rel("cam1", 2));
        std::fs::write(&first, b"").unwrap();
        std::fs::write(&second, b"").unwrap();
        // A hole in the numbering would be worse than an empty file: the first stays,
        // listed as partial.
        assert_eq!(adopt_orphans(&dir, &mut log, &entries, "d").unwrap(), 1);
        assert!(first.exists() && !second.exists());
    }
}
