//! Pictures rest while nobody needs them at full rate: between hearings (no composite
//! recorded) and while nobody watches the livestream, only the console's stills (two a
//! second) are made from them.
//!
//! - An RTSP camera's preview stream (its small substream, decoded for the stills, the
//!   composite's pane and the public picture) is decoded keyframes only. Decoding four
//!   substreams at 30 fps all day was most of what a copy-only courtroom (`[composite]
//!   enabled = false`) spent beyond copying. Before the decoder, delta frames are
//!   dropped while pictures rest, and after they come back to full rate until the next
//!   keyframe (a delta frame decoded without its references would smear the picture).
//! - The composite's panes are thinned to the stills' rate between hearings: each
//!   pane's scaling then works twice a second instead of at the camera's rate.
//! - A test camera, and each camera slot's "signal lost" card, draw [`REST_FPS`]
//!   pictures a second unless the camera's picture is recorded or watched (drawing the
//!   pattern was most of what a test camera cost; the four cards cost as much).
//! - The mixers make fewer pictures while nobody takes them: the composite's
//!   compositor [`RECORDED_REST_FPS`] (it is recorded, and must be back at full rate
//!   within the gate's lead), the public picture's and its "stream paused" card
//!   [`REST_FPS`] (only a viewer waits for them). A camera slot's compositor does not
//!   rest: it costs a fifth of the composite's, and resting it saved nothing
//!   measurable (0.2 % of a core per slot either way) while its encoder would start
//!   each hearing renegotiating.
//!
//! Resting is not seen in the pipeline's latency: a source or a mixer reports one of
//! its frames as latency, and the mixers downstream wait by the latency they were last
//! told. Answers to latency queries are given as at full rate (see
//! [`report_full_rate_latency`]), so a latency recalculation while things rest (a
//! mixer that changes its rate asks for one) does not leave the next hearing waiting
//! by a resting frame.
//!
//! A picture let through while resting is stretched to last until the next one: a
//! compositor shows its background (or a camera's "signal lost" card) once a frame's
//! own duration has passed.

use gstreamer as gst;
use gstreamer::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// How long a picture let through while resting is shown: past any sensible keyframe
/// interval (cameras send one every 1-2 s), so the pane never falls back to its card.
const RESTING_PICTURE_NS: u64 = 4_000_000_000;

/// A thinned pane passes one picture per this much running time (the stills' rate).
const THIN_EVERY_NS: u64 = 500_000_000;

/// A resting test camera's or card's rate. Its frame (200 ms) is no longer than the
/// recorder's gate lead, so once a hearing opens the camera is back at its full rate
/// about when the first recorded frame is taken; until then its slot repeats the last
/// picture (seen: the first full-rate picture 270 ms after the switch). The slot's
/// compositor holds each picture for its whole duration, so the card never shows
/// through, and a card alone still makes a frame at the slot's every frame time.
const REST_FPS: i32 = 5;

/// How long the pipeline runs (running time) before anything rests.
const REST_AFTER_START_NS: u64 = 2_000_000_000;

/// A resting mixer's rate when its pictures are recorded (the composite). A live mixer
/// takes a new rate only with its next picture, so after a hearing opens it makes one
/// more resting frame: the first at full rate is at most
/// two resting frames (200 ms) past the running time of the open, the gate's lead,
/// and the first recorded frame is at full rate. At 5 fps it could be 400 ms.
const RECORDED_REST_FPS: i32 = 10;

/// What a rate filter sits behind, which sets its resting rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Behind {
    /// A test camera or a card: [`REST_FPS`].
    Source,
    /// A mixer whose pictures are recorded (the composite): [`RECORDED_REST_FPS`].
    RecordedMixer,
    /// The public picture's mixer: [`REST_FPS`].
    Mixer,
}

impl Behind {
    fn rest_fps(self) -> i32 {
        match self {
            Behind::Source | Behind::Mixer => REST_FPS,
            Behind::RecordedMixer => RECORDED_REST_FPS,
        }
    }
}

/// Who needs a rate filter's pictures at full rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Need {
    /// A test camera's picture: a hearing records it, or a viewer watches it.
    Camera,
    /// Nobody: a camera's "signal lost" card always rests, recording or not (its slot
    /// repeats each card picture until the next, so the card's track, pane and stills
    /// stay at full rate; resting only between hearings, the RTSP job's four cards
    /// cost 0.8 % of a core more while a hearing recorded).
    Nobody,
    /// The composite: a hearing records it.
    Composite,
    /// The public picture: a viewer (or a platform) watches it.
    Public,
}

/// Who needs the preview streams at full rate.
#[derive(Debug)]
pub(super) struct PictureDemand {
    /// The composite pictures are recorded (a hearing is open, there is a composite).
    recording: AtomicBool,
    /// Someone watches the livestream.
    public: AtomicBool,
    /// There is a composite track at all (config).
    composite: bool,
    /// The test cameras' and the cards' rates.
    rates: Mutex<Rates>,
}

/// The rate filters, and whether they rest.
#[derive(Debug, Default)]
struct Rates {
    /// The recorder has said once whether it records (the pipeline runs and its
    /// latency is set): before, everything keeps its full rate.
    settled: bool,
    /// The pipeline has run for [`REST_AFTER_START_NS`]. A mixer that changed its
    /// rate in its first fraction of a second (its inputs still negotiating and
    /// allocating) failed with "not negotiated" about one start in five, and its
    /// sources with it; in steady state, 52 recess/resume cycles never did.
    started: bool,
    filters: Vec<RateFilter>,
}

/// A capsfilter behind a test camera, a card or a mixer (`<id>_rate`, `<id>_cardrate`,
/// `comp_rate`, `pub_rate`, `pub_cardrate`).
#[derive(Debug)]
struct RateFilter {
    filter: gst::glib::WeakRef<gst::Element>,
    /// Its caps at the full rate.
    full: gst::Caps,
    behind: Behind,
    need: Need,
    resting: bool,
}

impl PictureDemand {
    pub(super) fn new(composite: bool) -> PictureDemand {
        PictureDemand {
            recording: AtomicBool::new(false),
            public: AtomicBool::new(false),
            composite,
            rates: Mutex::new(Rates::default()),
        }
    }

    pub(super) fn set_recording(&self, on: bool) {
        self.recording.store(on, Ordering::Release);
        self.update_rates(true);
    }

    pub(super) fn set_public(&self, on: bool) {
        self.public.store(on, Ordering::Release);
        self.update_rates(false);
    }

    /// Puts a rate filter under this demand, at the rate it wants now: it rests while
    /// nobody in `need` takes its pictures.
    pub(super) fn add_rate_filter(&self, filter: &gst::Element, behind: Behind, need: Need) {
        let Some(full) = filter.property::<Option<gst::Caps>>("caps") else {
            return;
        };
        if let Some(pad) = filter.static_pad("src") {
            report_full_rate_latency(&pad, &full);
        }
        let Ok(mut r) = self.rates.lock() else {
            return;
        };
        let resting = r.settled && r.started && !self.needed(need);
        if resting {
            set_rate(filter, &full, behind.rest_fps());
        }
        r.filters.retain(|f| f.filter.upgrade().is_some());
        r.filters.push(RateFilter {
            filter: filter.downgrade(),
            full,
            behind,
            need,
            resting,
        });
    }

    /// Tells the demand how long the pipeline has run (the capture supervisor does,
    /// on each of its rounds): nothing rests before [`REST_AFTER_START_NS`].
    pub(super) fn poll(&self, running_ns: Option<u64>) {
        let starts = running_ns.is_some_and(|t| t >= REST_AFTER_START_NS)
            && self.rates.lock().is_ok_and(|mut r| {
                let first = !r.started;
                r.started = true;
                first
            });
        if starts {
            self.update_rates(false);
        }
    }

    /// Whether someone in `need` takes the pictures now.
    fn needed(&self, need: Need) -> bool {
        let recording = self.recording.load(Ordering::Acquire);
        let public = self.public.load(Ordering::Acquire);
        match need {
            Need::Camera => recording || public,
            Need::Nobody => false,
            Need::Composite => recording,
            Need::Public => public,
        }
    }

    /// Moves the rate filters to the rate the demand wants, where it changed. Setting
    /// a capsfilter's caps only marks its upstream for renegotiation: the source (or
    /// mixer) takes the new rate with its next picture.
    fn update_rates(&self, settle: bool) {
        let Ok(mut r) = self.rates.lock() else {
            return;
        };
        r.settled |= settle;
        r.filters.retain(|f| f.filter.upgrade().is_some());
        let can_rest = r.settled && r.started;
        for f in r.filters.iter_mut() {
            let rest = can_rest && !self.needed(f.need);
            if rest == f.resting {
                continue;
            }
            f.resting = rest;
            if let Some(filter) = f.filter.upgrade() {
                if rest {
                    set_rate(&filter, &f.full, f.behind.rest_fps());
                } else {
                    filter.set_property("caps", &f.full);
                }
            }
        }
    }

    /// True when the composite is recorded (its panes at full rate).
    pub(super) fn composite_full(&self) -> bool {
        self.recording.load(Ordering::Acquire)
    }

    /// True when the preview streams must be decoded frame by frame.
    pub(super) fn full(&self) -> bool {
        (self.composite && self.recording.load(Ordering::Acquire))
            || self.public.load(Ordering::Acquire)
    }
}

/// Sets a rate filter to its full caps at `rest_fps` (or their own rate, if lower).
fn set_rate(filter: &gst::Element, full: &gst::Caps, rest_fps: i32) {
    let mut caps = full.copy();
    if let Some(s) = caps.make_mut().structure_mut(0) {
        let fps = s
            .get::<gst::Fraction>("framerate")
            .ok()
            .filter(|f| *f < gst::Fraction::new(rest_fps, 1))
            .unwrap_or(gst::Fraction::new(rest_fps, 1));
        s.set("framerate", fps);
    }
    filter.set_property("caps", &caps);
}

/// One frame at the rate of `caps`, in ns (None without a fixed positive rate).
fn frame_ns(caps: &gst::CapsRef) -> Option<u64> {
    let f = caps.structure(0)?.get::<gst::Fraction>("framerate").ok()?;
    (f.numer() > 0 && f.denom() > 0).then(|| 1_000_000_000u64 * f.denom() as u64 / f.numer() as u64)
}

/// Answers latency queries through `pad` (a rate filter's output) as at the full
/// rate of `full`: a live source or mixer counts one of its frames as its latency, and
/// a resting one's frame is longer. Without this, a latency recalculation while things
/// rest would have every mixer downstream wait by the resting frame for as long as
/// the next hearing runs (and the livestream's delay grow by as much).
fn report_full_rate_latency(pad: &gst::Pad, full: &gst::Caps) {
    let Some(full_ns) = frame_ns(full) else {
        return;
    };
    // A query's probe runs as it goes upstream (push) and as its answer comes back
    // (pull): the answer is rewritten on its way back.
    pad.add_probe(
        gst::PadProbeType::QUERY_UPSTREAM | gst::PadProbeType::PULL,
        move |pad, info| {
            let Some(now_ns) = pad.current_caps().and_then(|c| frame_ns(&c)) else {
                return gst::PadProbeReturn::Ok;
            };
            if now_ns <= full_ns {
                return gst::PadProbeReturn::Ok;
            }
            if let Some(gst::PadProbeData::Query(q)) = &mut info.data
                && let gst::QueryViewMut::Latency(l) = q.view_mut()
            {
                let (live, min, max) = l.result();
                if live {
                    let ns = min.nseconds().saturating_sub(now_ns) + full_ns;
                    l.set(live, gst::ClockTime::from_nseconds(ns), max);
                }
            }
            gst::PadProbeReturn::Ok
        },
    );
}

/// Thins the pictures through `pad` (a composite pane's input) to one per
/// [`THIN_EVERY_NS`] of running time while the composite is not recorded.
pub(super) fn thin(pad: &gst::Pad, demand: Arc<PictureDemand>) {
    // The window of the last picture let through (u64::MAX: none yet).
    let last = std::sync::atomic::AtomicU64::new(u64::MAX);
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if demand.composite_full() {
            last.store(u64::MAX, Ordering::Relaxed);
            return gst::PadProbeReturn::Ok;
        }
        let Some(buf) = info.buffer_mut() else {
            return gst::PadProbeReturn::Ok;
        };
        let window = buf.pts().map_or(0, |p| p.nseconds() / THIN_EVERY_NS);
        if last.swap(window, Ordering::Relaxed) == window {
            return drop_buffer();
        }
        buf.make_mut()
            .set_duration(gst::ClockTime::from_nseconds(RESTING_PICTURE_NS));
        gst::PadProbeReturn::Ok
    });
}

/// What a buffer probe returns to drop the buffer. Not `PadProbeReturn::Drop`:
/// gstreamer-rs takes the buffer out of the probe's info while the probe runs and
/// leaves it empty on `Drop`, and GStreamer 1.22 then unrefs that empty pointer on a
/// sink pad's chain: a `GStreamer-CRITICAL` per dropped picture (about 50 a second
/// in the demo courtroom between hearings, all day in the journal). `Handled` drops
/// it the same way: the core leaves the buffer to the probe, which lets go of it.
pub(super) fn drop_buffer() -> gst::PadProbeReturn {
    gst::PadProbeReturn::Handled
}

/// Decodes keyframes only while pictures rest: `parsed` is the parser's output pad
/// (H.264 access units), `decoded` the decoder's.
pub(super) fn key_only(parsed: &gst::Pad, decoded: &gst::Pad, demand: Arc<PictureDemand>) {
    // True from a dropped delta frame until the next keyframe passes.
    let broken = Arc::new(AtomicBool::new(false));
    {
        let demand = demand.clone();
        let broken = broken.clone();
        parsed.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let Some(buf) = info.buffer() else {
                return gst::PadProbeReturn::Ok;
            };
            if !buf.flags().contains(gst::BufferFlags::DELTA_UNIT) {
                broken.store(false, Ordering::Release);
                return gst::PadProbeReturn::Ok;
            }
            if !demand.full() || broken.load(Ordering::Acquire) {
                broken.store(true, Ordering::Release);
                return drop_buffer();
            }
            gst::PadProbeReturn::Ok
        });
    }
    decoded.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if !demand.full()
            && let Some(buf) = info.buffer_mut()
        {
            buf.make_mut()
                .set_duration(gst::ClockTime::from_nseconds(RESTING_PICTURE_NS));
        }
        gst::PadProbeReturn::Ok
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use gstreamer_app as gst_app;

    /// GStreamer criticals logged in this process so far (a handler counts them).
    fn criticals() -> usize {
        use gst::glib;
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        static HANDLER: std::sync::Once = std::sync::Once::new();
        HANDLER.call_once(|| {
            glib::log_set_handler(
                Some("GStreamer"),
                glib::LogLevels::LEVEL_CRITICAL,
                false,
                false,
                |_, _, msg| {
                    eprintln!("GStreamer-CRITICAL: {msg}");
                    COUNT.fetch_add(1, Ordering::SeqCst);
                },
            );
        });
        COUNT.load(Ordering::SeqCst)
    }

    /// Runs 3 s of a 15 fps white camera (keyframe each second) into a compositor over
    /// black, through the preview's decoding (`decode`) or straight into the pane, with
    /// the resting probes; returns (pictures that reached the compositor, composited
    /// frames that showed black after the first white one).
    fn run(decode: bool, recording: bool) -> (usize, usize) {
        gst::init().unwrap();
        let criticals_before = criticals();
        let camera = if decode {
            "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 threads=1 ! h264parse name=parse \
             ! avdec_h264 name=dec max-threads=1"
        } else {
            "queue name=pane"
        };
        let p = gst::parse::launch(&format!(
            "compositor name=c background=black max-threads=1 sink_0::zorder=0 \
             ! video/x-raw,format=I420,width=64,height=36,framerate=15/1 ! appsink name=out sync=false \
             videotestsrc is-live=true pattern=black ! video/x-raw,format=I420,width=64,height=36,framerate=15/1 ! c.sink_0 \
             videotestsrc is-live=true pattern=white num-buffers=45 ! video/x-raw,format=I420,width=64,height=36,framerate=15/1 \
             ! {camera} ! c.sink_1"
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let demand = Arc::new(PictureDemand::new(true));
        demand.set_recording(recording);
        let pad = |n: &str| p.by_name(n).unwrap().static_pad("src").unwrap();
        if decode {
            key_only(&pad("parse"), &pad("dec"), demand);
        } else {
            // As in the pipeline: on the pane queue's input.
            let pane = p.by_name("pane").unwrap().static_pad("sink").unwrap();
            thin(&pane, demand);
        }
        let arrived = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let a = arrived.clone();
        let comp_in = p.by_name("c").unwrap().static_pad("sink_1").unwrap();
        comp_in.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            a.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
        let sink = p
            .by_name("out")
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        p.set_state(gst::State::Playing).unwrap();
        let (mut seen_white, mut black_after) = (false, 0);
        // 2.5 s of composited frames: within the 3 s the camera sends.
        for _ in 0..38 {
            let s = sink.pull_sample().unwrap();
            let map = s.buffer().unwrap().map_readable().unwrap();
            let white = map[64 * 36 - 1] > 128;
            if white {
                seen_white = true;
            } else if seen_white {
                black_after += 1;
            }
        }
        p.set_state(gst::State::Null).unwrap();
        assert!(seen_white, "the camera's picture never showed");
        assert_eq!(
            criticals(),
            criticals_before,
            "GStreamer logged a critical (a dropped picture mishandled)"
        );
        (arrived.load(Ordering::Relaxed), black_after)
    }

    #[test]
    fn resting_previews_decode_keyframes_only_and_keep_their_picture() {
        let (decoded, black) = run(true, false);
        assert!(decoded <= 4, "{decoded} frames decoded while resting");
        assert_eq!(black, 0, "the pane fell back to its card between keyframes");
        let (decoded, black) = run(true, true);
        assert!(decoded >= 30, "only {decoded} frames decoded at full rate");
        assert_eq!(black, 0);
    }

    #[test]
    fn panes_are_thinned_to_the_stills_rate_between_hearings() {
        let (passed, black) = run(false, false);
        assert!((3..=8).contains(&passed), "{passed} pictures in 2.5-3 s");
        assert_eq!(black, 0, "the pane showed the background between pictures");
        let (passed, black) = run(false, true);
        assert!(passed >= 30, "only {passed} pictures while recorded");
        assert_eq!(black, 0);
    }

    /// A test camera rests once the recorder has settled and nobody needs its picture,
    /// and comes back to its full rate when a hearing records or someone watches.
    #[test]
    fn test_cameras_rest_while_nobody_needs_their_picture() {
        gst::init().unwrap();
        let p = gst::parse::launch(
            "videotestsrc is-live=true pattern=ball \
             ! capsfilter name=cam_rate caps=video/x-raw,format=I420,width=64,height=36,framerate=15/1 \
             ! fakesink name=out sync=false",
        )
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        // The duration of the latest picture, in ms.
        let last_ms = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let l = last_ms.clone();
        let out = p.by_name("out").unwrap().static_pad("sink").unwrap();
        out.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(d) = info.buffer().and_then(|b| b.duration()) {
                l.store(d.mseconds(), Ordering::Relaxed);
            }
            gst::PadProbeReturn::Ok
        });
        let demand = PictureDemand::new(true);
        demand.add_rate_filter(
            &p.by_name("cam_rate").unwrap(),
            Behind::Source,
            Need::Camera,
        );
        // The pipeline's first seconds: nothing rests yet, whatever the recorder says.
        demand.poll(Some(REST_AFTER_START_NS - 1));
        p.set_state(gst::State::Playing).unwrap();
        // Waits (up to 5 s) for the camera to draw pictures of `ms`.
        let reaches = |ms: u64| {
            let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while std::time::Instant::now() < until {
                if last_ms.load(Ordering::Relaxed) == ms {
                    return true;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            false
        };
        assert!(reaches(66), "full rate before the recorder settles");
        demand.set_public(false);
        // The rate the camera's filter asks for now.
        let rate = || {
            p.by_name("cam_rate")
                .unwrap()
                .property::<Option<gst::Caps>>("caps")
                .unwrap()
                .structure(0)
                .unwrap()
                .get::<gst::Fraction>("framerate")
                .unwrap()
        };
        assert_eq!(
            rate(),
            gst::Fraction::new(15, 1),
            "no rest before the recorder has said whether it records"
        );
        demand.set_recording(false);
        assert_eq!(
            rate(),
            gst::Fraction::new(15, 1),
            "no rest in the pipeline's first seconds"
        );
        demand.poll(Some(REST_AFTER_START_NS));
        assert!(reaches(200), "rests between hearings");
        // Downstream is told the latency of the full rate (one 15 fps frame), not the
        // resting frame's 200 ms.
        let mut q = gst::query::Latency::new();
        assert!(out.peer_query(&mut q));
        let (live, min, _) = q.result();
        assert!(live);
        assert!(
            min.mseconds().abs_diff(66) <= 1,
            "latency reported while resting: {min}"
        );
        demand.set_public(true);
        assert!(reaches(66), "full rate while someone watches");
        demand.set_public(false);
        assert!(reaches(200));
        demand.set_recording(true);
        assert!(reaches(66), "full rate while a hearing records");
        p.set_state(gst::State::Null).unwrap();
    }

    #[test]
    fn pictures_are_needed_by_a_recorded_composite_or_a_viewer() {
        let demand = PictureDemand::new(false);
        demand.set_recording(true);
        assert!(!demand.full(), "no composite: recording needs no pictures");
        demand.set_public(true);
        assert!(demand.full());
        let demand = PictureDemand::new(true);
        demand.set_recording(true);
        assert!(demand.full());
    }
}
