//! The writer threads of a recording run: each takes the frames of several tracks from
//! one queue, interleaves each track's streams, writes its segments and lists them in
//! the hearing's manifest.
//!
//! Tracks share a few threads rather than having one each: their writes and fsyncs go
//! to one disk (whose journal serialises the fsyncs anyway), and a thread per track was
//! nine threads on a four-camera courtroom. A track's failures stay its own: a failed
//! write backs that track off without sleeping, so the tracks beside it go on; a disk
//! that hangs stalls every track of the thread, which the service watchdog sees (see
//! `Progress` in the recorder) as it would have with a thread per track.

use super::interleave::Interleaver;
use super::recorder::{Msg, Progress, QUEUE_FRAMES, Timebase, TrackEnd, WriterReport};
use super::segment::{FinishedSegment, SegmentWriter};
use crate::archive::log::HearingLog;
use crate::archive::records::{Record, SegmentRecord, format_wall};
use crate::capture::Frame;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a track's writing needs beside its segment writer: where its segments are
/// listed, whom it tells of failures, where its run is cut.
pub(super) struct TrackCtx {
    pub(super) hearing_id: String,
    pub(super) device_id: String,
    pub(super) track: String,
    pub(super) streams: usize,
    pub(super) drain_timeout: Duration,
    pub(super) timebase: Timebase,
    pub(super) log: Arc<Mutex<HearingLog>>,
    pub(super) report: Arc<dyn WriterReport>,
    /// See `TrackTx::cut_at` in the recorder.
    pub(super) cut_at: Arc<AtomicI64>,
    pub(super) progress: Arc<Progress>,
}

impl TrackCtx {
    /// Records a finished (durable) segment in the manifest, then the index.
    fn record(&self, s: FinishedSegment) -> crate::error::Result<()> {
        let m = crate::metrics::recording();
        let label = crate::metrics::track(&self.track);
        m.segments_written.get_or_create(&label).inc();
        m.bytes_written.get_or_create(&label).inc_by(s.bytes);
        let rec = SegmentRecord {
            hearing_id: self.hearing_id.clone(),
            device_id: self.device_id.clone(),
            track: self.track.clone(),
            seq: s.seq,
            file: s.rel_path,
            bytes: s.bytes,
            sha256: s.sha256,
            media_start_ns: s.media_start_ns,
            media_duration_ns: s.media_duration_ns,
            wall_start: String::new(),
            partial: s.partial,
        };
        let mut log = self
            .log
            .lock()
            .map_err(|_| crate::err!(Internal, "hearing log lock poisoned"))?;
        // The wall-clock time follows the hearing's logged anchor (a `clock_step` logged
        // while this run records moves it), the rule the verifier checks.
        let anchor_ns = crate::archive::wallclock::anchor_ns(&log.doc().events, rec.media_start_ns)
            .unwrap_or(self.timebase.wall_at_base_unix_ns);
        let rec = SegmentRecord {
            wall_start: format_wall(chrono::DateTime::from_timestamp_nanos(
                anchor_ns.saturating_add(rec.media_start_ns),
            )),
            ..rec
        };
        log.append(Record::Segment(rec))?;
        Ok(())
    }
}

/// After a write error, wait this long before trying a new segment.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// How far (media time) the interleaver may hold one stream's frames waiting for another.
const INTERLEAVE_SPAN_NS: i64 = 1_000_000_000;

/// The writer side of a track: records what it seals, and handles failures. A failed
/// segment *write* (the disk) stops writing for `RETRY_AFTER`; a failed manifest
/// *append* does not stop the media: the sealed segments wait, in order, and are
/// listed as soon as an append succeeds (or adopted at the next start). Either raises
/// the track's alarm until it clears.
struct TrackOut {
    w: SegmentWriter,
    /// When the last segment write failed, for the back-off.
    write_failed_at: Option<Instant>,
    /// Sealed, durable segments whose manifest line could not be written yet (the
    /// append failed and was undone): retried in order before any later one, so the
    /// track's lines stay in sequence and no recorded second is left out.
    unrecorded: std::collections::VecDeque<FinishedSegment>,
    /// When listing a segment last failed: retried after `RETRY_AFTER`, not at every
    /// frame (a failing disk would flood the log).
    record_failed_at: Option<Instant>,
    /// The track's alarm is up.
    alarmed: bool,
}

impl TrackOut {
    /// Records `segs` after the segments still waiting, in order.
    fn record(
        &mut self,
        ctx: &TrackCtx,
        segs: impl IntoIterator<Item = FinishedSegment>,
    ) -> crate::error::Result<()> {
        self.unrecorded.extend(segs);
        if self
            .record_failed_at
            .is_some_and(|t| t.elapsed() < RETRY_AFTER / 2)
        {
            return Ok(());
        }
        while let Some(s) = self.unrecorded.front() {
            if let Err(e) = ctx.record(s.clone()) {
                self.record_failed_at = Some(Instant::now());
                return Err(e);
            }
            self.unrecorded.pop_front();
        }
        self.record_failed_at = None;
        Ok(())
    }

    /// Raises or clears the track's alarm from what just happened.
    fn report(&mut self, ctx: &TrackCtx, err: Option<crate::error::Error>) {
        match err {
            Some(e) => {
                tracing::error!(track = %ctx.track, "recording failed: {e}");
                ctx.report.track_failed(&ctx.track, &e);
                self.alarmed = true;
            }
            None if self.alarmed
                && self.unrecorded.is_empty()
                && self.write_failed_at.is_none() =>
            {
                ctx.report.track_ok(&ctx.track);
                self.alarmed = false;
            }
            None => {}
        }
    }

    /// Seals the open segment at the end of a run and records everything waiting.
    fn finish(&mut self, ctx: &TrackCtx) {
        self.record_failed_at = None;
        let res = self.w.finish(None);
        let err = match res {
            Ok(s) => self.record(ctx, s).err(),
            Err(e) => Some(e),
        };
        self.report(ctx, err);
    }

    fn write(&mut self, ctx: &TrackCtx, f: Frame) {
        if let Some(t) = self.write_failed_at {
            if t.elapsed() < RETRY_AFTER {
                return;
            }
            self.write_failed_at = None;
        }
        let res = self.w.push(&f);
        // Segments sealed by this push are recorded whatever became of the push itself.
        let done = self.w.take_done();
        let mut err = self.record(ctx, done).err();
        if let Err(e) = res {
            // Seal what reached the disk (recorded, or waiting to be), then back off.
            match self.w.abandon() {
                Ok(s) => {
                    if let Err(e2) = self.record(ctx, s) {
                        tracing::error!(track = %ctx.track, "listing the interrupted segment: {e2}");
                    }
                }
                // Left on disk unlisted: the next start adopts it as partial.
                Err(e2) => {
                    tracing::error!(track = %ctx.track, "sealing the interrupted segment: {e2}")
                }
            }
            self.write_failed_at = Some(Instant::now());
            err = Some(e);
        }
        self.report(ctx, err);
    }
}

/// One track's writing during a run: where its stop is, what it holds back at a cut.
pub(super) struct TrackRun {
    ctx: TrackCtx,
    /// The stop's media time, and how long the track may drain after it.
    stop: Option<(i64, Instant)>,
    /// Frames past a cut whose stop has not come yet (see `TrackTx::cut_at`).
    held: Vec<Frame>,
    /// Which streams have passed the stop.
    passed: Vec<bool>,
    il: Interleaver,
    out: TrackOut,
    /// Sealed: the track takes no more frames this run.
    ended: bool,
}

impl TrackRun {
    pub(super) fn new(ctx: TrackCtx, w: SegmentWriter) -> TrackRun {
        TrackRun {
            passed: vec![false; ctx.streams],
            il: Interleaver::new(ctx.streams, INTERLEAVE_SPAN_NS),
            ctx,
            stop: None,
            held: Vec::new(),
            out: TrackOut {
                w,
                write_failed_at: None,
                unrecorded: Default::default(),
                record_failed_at: None,
                alarmed: false,
            },
            ended: false,
        }
    }

    fn frame(&mut self, f: Frame) {
        self.ctx.progress.took();
        if self.ended || f.stream >= self.ctx.streams {
            return;
        }
        if let Some((at, _)) = self.stop
            && f.pts_ns >= at
        {
            self.passed[f.stream] = true;
            if self.passed.iter().all(|p| *p) {
                self.end();
            }
            return;
        }
        if self.stop.is_none() {
            let cut = self.ctx.cut_at.load(Ordering::Acquire);
            if f.pts_ns >= cut {
                // Past a cut whose stop has not come yet: held, not written.
                if self.held.len() < QUEUE_FRAMES {
                    self.held.push(f);
                }
                return;
            }
            if cut == i64::MAX && !self.held.is_empty() {
                // The cut was lifted: what was held goes in, in order.
                for h in self.held.drain(..) {
                    self.il.push(h);
                }
            }
        }
        self.il.push(f);
        while let Some(f) = self.il.pop_ready() {
            self.out.write(&self.ctx, f);
        }
    }

    /// Writes what the interleaver still holds and seals the open segment.
    fn end(&mut self) {
        if self.ended {
            return;
        }
        self.ended = true;
        while let Some(f) = self.il.pop_any() {
            self.out.write(&self.ctx, f);
        }
        self.out.finish(&self.ctx);
    }

    /// Where the track ended (its numbering continues there next run).
    fn track_end(&self) -> TrackEnd {
        TrackEnd {
            track: self.ctx.track.clone(),
            next_seq: self.out.w.next_seq(),
        }
    }
}

/// How long a writer thread lets frames gather after one wakes it, before it takes
/// them all. Each frame sent to a thread blocked on its queue wakes it (futex, then
/// the scheduler): about 270 times a second per thread on a four-camera courtroom, and
/// on a small box a wake-up costs more than the frame's write. Gathering makes it
/// about two wake-ups per `GATHER` (the first frame's, the sleep's end), and the
/// capture threads' sends meet a thread that is not parked, so they wake nobody.
/// What it costs: a frame reaches the disk up to this much later, so a kill or a power
/// cut may take this much more with the queue (the recording tests bound a kill's loss
/// to one second; `fsync_interval_ms` bounds what was written and not yet synced).
/// Frames per track in this time are far below `QUEUE_FRAMES`.
const GATHER: Duration = Duration::from_millis(40);

/// Takes the messages of `rx` a batch at a time: waits up to `timeout` for the first,
/// then lets the rest gather for `gather` (no longer than `timeout`) and hands them
/// all to `each`. A disconnect after the first message is reported at the next call.
fn next_batch<T>(
    rx: &Receiver<T>,
    timeout: Duration,
    gather: Duration,
    mut each: impl FnMut(T),
) -> Result<(), RecvTimeoutError> {
    each(rx.recv_timeout(timeout)?);
    std::thread::sleep(gather.min(timeout));
    while let Ok(msg) = rx.try_recv() {
        each(msg);
    }
    Ok(())
}

/// Takes one message of a writer thread's queue for the track at `i` of `runs`.
fn take(runs: &mut [TrackRun], i: usize, msg: Msg) {
    let Some(r) = runs.get_mut(i) else {
        return;
    };
    match msg {
        Msg::Frame(f) => r.frame(f),
        Msg::Stop { at_media_ns } => {
            r.stop = Some((at_media_ns, Instant::now() + r.ctx.drain_timeout));
        }
    }
}

/// A writer thread's loop: frames and stops for its tracks, by their place in `runs`,
/// until every track is sealed (each at the first frame of all its streams past its
/// stop, or when its drain time is up) or the session goes away.
pub(super) fn run_group(mut runs: Vec<TrackRun>, rx: Receiver<(usize, Msg)>) -> Vec<TrackEnd> {
    loop {
        // Checked at every turn, not only when the queue is idle: the other tracks'
        // frames keep coming while a silent one drains, and must not keep it open.
        let now = Instant::now();
        for r in runs.iter_mut() {
            if r.stop.is_some_and(|(_, deadline)| deadline <= now) {
                r.end(); // drained as long as it may: sealed with what it has
            }
        }
        if runs.iter().all(|r| r.ended) {
            break;
        }
        let timeout = runs
            .iter()
            .filter(|r| !r.ended)
            .filter_map(|r| {
                r.stop
                    .map(|(_, deadline)| deadline.saturating_duration_since(now))
            })
            .min()
            .unwrap_or(Duration::from_secs(3600));
        match next_batch(&rx, timeout, GATHER, |(i, msg)| take(&mut runs, i, msg)) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    runs.iter_mut()
        .map(|r| {
            r.end();
            r.track_end()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_takes_what_arrives_together_in_one_wake() {
        // 60 messages a millisecond or more apart: one wake each without gathering.
        let (tx, rx) = std::sync::mpsc::sync_channel::<u32>(1000);
        let gather = Duration::from_millis(40);
        let t0 = Instant::now();
        let sender = std::thread::spawn(move || {
            for n in 0..60 {
                tx.send(n).unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let (mut got, mut batches) = (Vec::new(), 0u32);
        loop {
            match next_batch(&rx, Duration::from_secs(5), gather, |n| got.push(n)) {
                Ok(()) => batches += 1,
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("the sender stalled"),
            }
        }
        sender.join().unwrap();
        assert_eq!(got, (0..60).collect::<Vec<_>>(), "every message, in order");
        // Each batch lasts at least `gather` however loaded the machine is, so this
        // holds whenever messages are gathered; taken one by one, 60 batches would need
        // the sender's 1 ms pauses to last about `gather` each.
        let elapsed = t0.elapsed();
        assert!(
            gather * batches <= elapsed + gather,
            "{batches} wakes for 60 messages in {elapsed:?}"
        );
    }

    #[test]
    fn a_batch_waits_no_longer_than_the_next_deadline() {
        let (tx, rx) = std::sync::mpsc::sync_channel::<u32>(10);
        tx.send(1).unwrap();
        let t0 = Instant::now();
        next_batch(
            &rx,
            Duration::from_millis(1),
            Duration::from_secs(30),
            |_| {},
        )
        .unwrap();
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "gathered past the deadline"
        );
        drop(tx);
        assert_eq!(
            next_batch(&rx, Duration::from_secs(1), GATHER, |_| {}),
            Err(RecvTimeoutError::Disconnected)
        );
    }
}
