//! The pipeline's clock and base time, fixed before it starts.
//!
//! A live aggregator (the microphone slots' mixers, the public mix, the compositors)
//! times its output on the clock: it makes a buffer once the clock reaches the buffer's
//! running time plus the latency. GStreamer 1.22 hands every element the pipeline's
//! clock when the pipeline starts to play, but an element's base time only as the
//! pipeline sets that element playing, one after the other. In between, a mixer that
//! already runs (it does in PAUSED) reads the clock against a base time of 0: it thinks
//! it is as late as the machine's uptime and makes silence as fast as it can. Measured:
//! the public mix made 150 s of silence in 70 ms at start-up about one start in five;
//! it then waited 150 s for the clock, and the livestream had no sound. A microphone
//! slot's mixer that ran ahead so lost its microphone's sound for as long once the
//! microphone joined (see `mixtime`), which is how a recorded track once had a 4 s hole
//! early in a hearing.
//!
//! So the pipeline gets its clock and base time before its first state change: every
//! element then has both from the start, and sources added later take them from the
//! pipeline. With no start time, the pipeline keeps this base time (it never pauses).

use gstreamer as gst;
use gstreamer::prelude::*;

/// Gives `pipeline` the system clock and a base time of now, for good.
pub(super) fn fix_clock(pipeline: &gst::Pipeline) {
    let clock = gst::SystemClock::obtain();
    pipeline.use_clock(Some(&clock));
    pipeline.set_start_time(gst::ClockTime::NONE);
    pipeline.set_base_time(clock.time());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    /// A live mixer whose output is never waited for (as the public mix's, behind a
    /// leaky queue and a closed valve), held in PAUSED for 300 ms after it got the
    /// clock; `fixed` prepares the pipeline with [`fix_clock`]. Returns the last output
    /// timestamp (ns) by then.
    fn last_pts_in_paused(fixed: bool) -> u64 {
        gst::init().unwrap();
        let p = gst::parse::launch(
            "audiomixer name=m force-live=true output-buffer-duration=40000000 \
             ! audio/x-raw,format=S16LE,rate=48000,channels=1 \
             ! queue leaky=downstream max-size-time=200000000 max-size-buffers=0 max-size-bytes=0 \
             ! valve drop=true ! fakesink sync=false async=false",
        )
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let mixer = p.by_name("m").unwrap();
        let last = Arc::new(Mutex::new(0u64));
        let l = last.clone();
        mixer
            .static_pad("src")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(b) = info.buffer() {
                    *l.lock().unwrap() = b.pts().map_or(0, |t| t.nseconds());
                }
                gst::PadProbeReturn::Ok
            });
        if fixed {
            fix_clock(&p);
        }
        // The window GStreamer leaves while starting: the mixer has the clock, not yet
        // its base time.
        mixer.set_clock(Some(&gst::SystemClock::obtain())).unwrap();
        p.set_state(gst::State::Paused).unwrap();
        let until = Instant::now() + Duration::from_millis(300);
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        let pts = *last.lock().unwrap();
        p.set_state(gst::State::Null).unwrap();
        pts
    }

    #[test]
    fn with_its_base_time_set_first_a_mixer_keeps_to_the_clock() {
        let pts_ns = last_pts_in_paused(true);
        assert!(
            pts_ns < 2_000_000_000,
            "ran ahead of the clock: {pts_ns} ns in 0.3 s"
        );
    }

    /// The GStreamer behaviour [`fix_clock`] exists for: if this stops failing, the
    /// mixers no longer run ahead while the pipeline starts.
    #[test]
    fn without_it_a_mixer_given_the_clock_runs_far_ahead() {
        let pts_ns = last_pts_in_paused(false);
        assert!(
            pts_ns > 10_000_000_000,
            "no run ahead: {pts_ns} ns in 0.3 s"
        );
    }
}
