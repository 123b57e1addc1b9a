//! A microphone slot's mixer keeps its time going forward.
//!
//! Each microphone slot is an `audiomixer` that makes silence on its own
//! (`force-live`), and the microphone's source joins it once it starts. GStreamer
//! 1.22's aggregator stamps the buffer it makes right after its *first* input ever
//! joins with running time 0 (measured: ..., 0.52, 0.56, **0.00**, 0.64, ...): that
//! buffer stands for the 40 ms after the one before it. At boot it then also re-emits
//! the time it already covered, from the start (measured with the clock fixed, see
//! `clocking`: ..., 0.28, **0.00, 0.04, ..., 0.28**, 0.32, ...). A microphone plugged in or found
//! after boot, while a hearing records, would put a buffer from the start of the day
//! into the middle of its track (and into the room's mix) and step its encoder's clock
//! back. This probe puts the first buffer that goes back right after the previous one
//! and drops the rest of the episode (time already covered) until the mixer's own
//! timestamps have caught up: never more than one buffer is moved, so the track cannot
//! be pushed ahead of the clock. The moved buffer also gets the mixer's buffer length:
//! the slipped one claims the whole time since 0.

use gstreamer as gst;
use gstreamer::prelude::*;
use std::sync::Mutex;

/// Overlaps up to this much are rounding, not going back (buffers pass as they are).
const ROUNDING_NS: u64 = 1_000_000;

/// An episode of dropped time longer than this is not the known slip: worth a warning.
const WARN_AFTER_DROPPED_NS: u64 = 1_000_000_000;

/// What becomes of one buffer.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Keep,
    /// Restamped to this pts and duration.
    MoveTo(u64, u64),
    Drop,
}

#[derive(Default)]
struct Timeline {
    /// Where the previous buffer ended (running time of the mixer's output segment).
    next_ns: Option<u64>,
    /// In an episode: the first buffer that went back was moved, and this much time
    /// has been dropped since.
    episode_dropped_ns: Option<u64>,
    /// The previous buffer's duration: the mixer's own buffer length.
    last_dur_ns: Option<u64>,
}

impl Timeline {
    fn step(&mut self, pts_ns: u64, dur_ns: u64) -> Step {
        match (self.next_ns, self.episode_dropped_ns) {
            (Some(next_ns), None) if pts_ns + ROUNDING_NS < next_ns => {
                // The slipped buffer holds one buffer's samples but claims all the
                // time since 0 (measured: stamped 0, lasting 1.2 s, 100 ms of sound,
                // for a microphone that joined at 1.1 s). Kept that long, it hid the
                // next 1.1 s of the microphone as "going back": a hole in the track.
                let moved_ns = self.last_dur_ns.unwrap_or(dur_ns);
                self.next_ns = Some(next_ns + moved_ns);
                self.episode_dropped_ns = Some(0);
                Step::MoveTo(next_ns, moved_ns)
            }
            (Some(next_ns), Some(dropped)) if pts_ns + ROUNDING_NS < next_ns => {
                self.episode_dropped_ns = Some(dropped + dur_ns);
                Step::Drop
            }
            _ => {
                self.next_ns = Some(pts_ns + dur_ns);
                self.episode_dropped_ns = None;
                self.last_dur_ns = Some(dur_ns);
                Step::Keep
            }
        }
    }
}

/// Installs the probe on a slot mixer's output pad.
pub(super) fn keep_time_forward(pad: &gst::Pad, source: String) {
    let timeline = Mutex::new(Timeline::default());
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(buf) = info.buffer_mut() else {
            return gst::PadProbeReturn::Ok;
        };
        let (Some(pts), Some(dur)) = (buf.pts(), buf.duration()) else {
            return gst::PadProbeReturn::Ok;
        };
        let Ok(mut t) = timeline.lock() else {
            return gst::PadProbeReturn::Ok;
        };
        // A step forward is a hole in the track, which this probe cannot mend: never
        // seen, so worth a line in the journal if it ever happens.
        let hole_ns = t.next_ns.map_or(0, |n| pts.nseconds().saturating_sub(n));
        if hole_ns > ROUNDING_NS {
            tracing::warn!(%source, hole_ms = hole_ns / 1_000_000, "microphone mixer skipped ahead: a hole in its track");
        }
        let dropped_before = t.episode_dropped_ns;
        match t.step(pts.nseconds(), dur.nseconds()) {
            Step::Keep => {
                if let Some(dropped) = dropped_before {
                    tracing::debug!(%source, dropped_ms = dropped / 1_000_000, "mixer caught up: the time it had gone back over is dropped");
                }
                gst::PadProbeReturn::Ok
            }
            Step::MoveTo(to_ns, dur_ns) => {
                tracing::debug!(%source, pts_ns = pts.nseconds(), to_ns, dur_ns, "mixer buffer restamped after its source joined");
                let b = buf.make_mut();
                b.set_pts(gst::ClockTime::from_nseconds(to_ns));
                b.set_duration(gst::ClockTime::from_nseconds(dur_ns));
                gst::PadProbeReturn::Ok
            }
            Step::Drop => {
                let dropped = t.episode_dropped_ns.unwrap_or(0);
                if dropped > WARN_AFTER_DROPPED_NS && dropped - dur.nseconds() <= WARN_AFTER_DROPPED_NS {
                    tracing::warn!(%source, dropped_ns = dropped, "microphone mixer keeps going back in time; its audio is dropped until it catches up");
                }
                super::resting::drop_buffer()
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use gstreamer_app as gst_app;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// The microphone slot's own template (a force-live mixer) with a microphone that
    /// joins once the mixer has made `join_after` buffers of silence; returns every
    /// output buffer's (pts, length of the sound it holds) in ns: its samples, not its
    /// duration field, which the slipped buffer gets wrong.
    fn run(probe: bool, join_after: usize) -> Vec<(u64, u64)> {
        gst::init().unwrap();
        let slot = include_str!("../../pipelines/mic-slot.gst").replace("{id}", "m");
        let p = gst::parse::launch(&format!(
            "{slot} m_raw. ! appsink name=out sync=false emit-signals=false"
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let mixer = p.by_name("m_fb").unwrap();
        if probe {
            keep_time_forward(&mixer.static_pad("src").unwrap(), "m".into());
        }
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = p
            .by_name("out")
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        let g = got.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    if let Some(b) = sample.buffer() {
                        // S16LE mono at 48 kHz (the slot's caps): 96,000 bytes a second.
                        g.lock().unwrap().push((
                            b.pts().map_or(0, |t| t.nseconds()),
                            b.size() as u64 * 1_000_000_000 / 96_000,
                        ));
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        p.set_state(gst::State::Playing).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while got.lock().unwrap().len() < join_after && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let mic = gst::parse::bin_from_description(
            "audiotestsrc is-live=true samplesperbuffer=1920 \
             ! audio/x-raw,format=S16LE,rate=48000,channels=1,layout=interleaved ! queue name=out",
            false,
        )
        .unwrap();
        let out = mic.by_name("out").unwrap().static_pad("src").unwrap();
        mic.add_pad(&gst::GhostPad::with_target(&out).unwrap())
            .unwrap();
        p.add(&mic).unwrap();
        let pad = mixer.request_pad_simple("sink_%u").unwrap();
        mic.static_pad("src").unwrap().link(&pad).unwrap();
        mic.sync_state_with_parent().unwrap();
        // Half a second of output after the join (25 buffers of 40 ms).
        let deadline = Instant::now() + Duration::from_secs(20);
        let joined_at = got.lock().unwrap().len();
        while got.lock().unwrap().len() < joined_at + 25 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        p.set_state(gst::State::Null).unwrap();
        got.lock().unwrap().clone()
    }

    /// Buffers whose start is not where the one before ended (tolerance 1 ms).
    fn breaks(v: &[(u64, u64)]) -> Vec<(u64, u64)> {
        v.windows(2)
            .filter(|w| w[1].0.abs_diff(w[0].0 + w[0].1) > 1_000_000)
            .map(|w| (w[0].0, w[1].0))
            .collect()
    }

    /// Replays pts sequences (ms, 40 ms buffers) through the timeline.
    fn replay(pts_ms: &[u64]) -> Vec<Step> {
        let mut t = Timeline::default();
        pts_ms
            .iter()
            .map(|&p| t.step(p * 1_000_000, 40_000_000))
            .collect()
    }

    #[test]
    fn the_slip_after_a_join_is_moved_and_time_already_covered_dropped() {
        use Step::*;
        // Mid-day: the buffer after 560 ms is stamped 0; it stands for 600 ms.
        assert_eq!(
            replay(&[520, 560, 0, 640]),
            vec![Keep, Keep, MoveTo(600_000_000, 40_000_000), Keep]
        );
        // At boot, as measured in the daemon: ahead of the clock, then re-emitted.
        assert_eq!(
            replay(&[120, 160, 0, 120, 160, 200, 240]),
            vec![
                Keep,
                Keep,
                MoveTo(200_000_000, 40_000_000),
                Drop,
                Drop,
                Drop,
                Keep
            ]
        );
        // The slipped buffer claims the time since 0 but holds one buffer's sound
        // (measured: 1.2 s for a microphone joining at 1.1 s): moved, it lasts as long
        // as the buffers before it, so the ones after it are kept.
        let mut t = Timeline::default();
        assert_eq!(t.step(1_000_000_000, 100_000_000), Keep);
        assert_eq!(t.step(0, 1_200_000_000), MoveTo(1_100_000_000, 100_000_000));
        assert_eq!(t.step(1_200_000_000, 100_000_000), Keep);
        // Rounding (a nanosecond's overlap) is not a slip.
        let mut t = Timeline::default();
        assert_eq!(t.step(0, 40_000_001), Keep);
        assert_eq!(t.step(40_000_000, 40_000_000), Keep);
        // A second slip later is handled the same way (the episode ended).
        assert_eq!(
            replay(&[0, 40, 0, 80, 120, 40, 160]),
            vec![
                Keep,
                Keep,
                MoveTo(80_000_000, 40_000_000),
                Drop,
                Keep,
                MoveTo(160_000_000, 40_000_000),
                Drop
            ]
        );
    }

    #[test]
    fn a_microphone_joining_late_leaves_the_slot_time_continuous() {
        let v = run(true, 15);
        assert!(v.len() > 30, "output buffers: {}", v.len());
        assert_eq!(breaks(&v), vec![], "the slot's time broke");
    }

    /// The GStreamer behaviour the probe exists for: if this stops failing, a newer
    /// GStreamer no longer slips and the probe can go.
    #[test]
    fn without_the_probe_the_mixer_slips_back_when_its_first_source_joins() {
        let v = run(false, 15);
        assert!(
            breaks(&v).iter().any(|&(before, after)| after < before),
            "no slip seen: {:?}",
            breaks(&v)
        );
    }
}
