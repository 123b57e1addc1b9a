//! Pictures and sounds rest while nobody needs them at full rate: between hearings
//! (no composite recorded) and while nobody watches the livestream, only the console's
//! stills (two a second) and meters are made from them.
//!
//! - An RTSP camera's preview stream (its small substream, decoded for the stills, the
//!   composite's pane and the public picture) is decoded keyframes only. Decoding four
//!   substreams at 30 fps all day was most of what a copy-only courtroom (`[composite]
//!   enabled = false`) spent beyond copying. Before the decoder, delta frames are
//!   dropped while pictures rest, and after they come back to full rate until the next
//!   keyframe (a delta frame decoded without its references would smear the picture).
//!   Each keyframe takes the delta frame after it along, so that a decoder that holds
//!   a picture until the next frame comes (OpenH264, on Main and High streams) lets
//!   it out at once ([`key_only`]).
//! - The composite's panes are thinned to the stills' rate between hearings: each
//!   pane's scaling then works twice a second instead of at the camera's rate.
//! - A test camera draws [`REST_FPS`] pictures a second unless its picture is
//!   recorded or watched (drawing the pattern was most of what a test camera cost).
//!   Each camera slot's "signal lost" card, drawn once, is repeated at the slot's
//!   rate always (see [`answer_card_latency`]).
//! - The mixers make fewer pictures while nobody takes them: the composite's
//!   compositor [`RECORDED_REST_FPS`] (it is recorded, and must be back at full rate
//!   within the gate's lead), the public picture's [`REST_FPS`] (only a viewer waits
//!   for it). A camera slot's compositor does not rest: it costs a fifth of the
//!   composite's, and resting it saved nothing measurable (0.2 % of a core per slot
//!   either way) while its encoder would start each hearing renegotiating.
//! - The composite's caption (case number and burned-in time) is silent between
//!   hearings (the console's still of the composite shows the panes only), the
//!   public picture's while nobody watches.
//! - The room's mix and the public mix take no input while nobody takes theirs
//!   ([`hold_input`]). (Sound has no resting rate: every microphone and mixer works in
//!   100 ms buffers, recording or not; see pipelines/README.md.)
//!
//! Between hearings the demo courtroom is mostly threads woken on the clock, and on
//! this kind of machine a wake-up costs more than the work it wakes for (a bare live
//! `audiotestsrc` at 40 ms buffers: 0.40 % of a core, at 100 ms 0.15 %): what rests
//! here wakes less often.
//!
//! Resting is not seen in the pipeline's latency: a source or a mixer reports one of
//! its frames as latency, and the mixers downstream wait by the latency they were last
//! told. Answers to latency queries are given as at full rate (see
//! [`report_full_rate_latency`]), so a latency recalculation while things rest (a
//! mixer that changes its rate asks for one) does not leave the next hearing waiting
//! by a resting frame.
//!
//! A picture let through while resting keeps its own duration: a compositor shows a
//! pad's last picture until a newer one comes (`max-last-buffer-repeat` is "until end
//! of stream" by default). Stretching it to cover the gap, as this once did (4 s),
//! froze the panes for up to 4 s after each open and resume: a compositor drops every
//! picture that ends before the one it holds ("buffer from the past").

use gstreamer as gst;
use gstreamer::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A thinned pane passes one picture per this much running time (the stills' rate).
const THIN_EVERY_NS: u64 = 500_000_000;

/// A resting test camera's rate. Its frame (200 ms) is no longer than the
/// recorder's gate lead, so once a hearing opens the camera is back at its full rate
/// about when the first recorded frame is taken; until then its slot repeats the last
/// picture (seen: the first full-rate picture 270 ms after the switch). The slot's
/// compositor holds each picture for its whole duration, so the card never shows
/// through.
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
    /// A test camera: [`REST_FPS`].
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

/// Who needs a resting element's output (pictures or sound) at full rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Need {
    /// A test camera's picture: a hearing records it, or a viewer watches it.
    Source,
    /// The composite: a hearing records it.
    Composite,
    /// The public picture: a viewer (or a platform) watches it.
    Public,
}

/// Who needs the preview streams, the pictures and the mixes at full rate.
#[derive(Debug)]
pub(super) struct PictureDemand {
    /// The composite pictures are recorded (a hearing is open, there is a composite).
    recording: AtomicBool,
    /// Someone watches the livestream.
    public: AtomicBool,
    /// There is a composite track at all (config).
    composite: bool,
    /// The rate filters and captions, and whether they rest.
    rates: Mutex<Rates>,
    /// Things may rest ([`Rates::settled`] and [`Rates::started`]), readable without
    /// the lock by the mixers' input probes, which run for every buffer.
    may_rest: AtomicBool,
}

/// The rate filters and captions, and whether they rest.
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
    elements: Vec<RestingElement>,
    /// Since when everything rests (nobody records or watches, and things may rest):
    /// reported in the status, so court IT (and the tests) see a box at rest.
    resting_since: Option<Instant>,
}

/// An element that rests: a rate filter or a caption.
#[derive(Debug)]
struct RestingElement {
    element: gst::glib::WeakRef<gst::Element>,
    rests: Rests,
    need: Need,
    resting: bool,
}

/// What resting does to an element.
#[derive(Debug)]
enum Rests {
    /// A capsfilter behind a test camera, a card or a mixer (`<id>_rate`,
    /// `<id>_cardrate`, `comp_rate`, `pub_rate`, `pub_cardrate`) asks for its
    /// `behind`'s resting rate instead of `full`, its caps at the full rate.
    Rate { full: gst::Caps, behind: Behind },
    /// A `textoverlay` (a caption and burned-in time) is silent: it
    /// passes its pictures on as they are, and neither lays its text out (Pango,
    /// Cairo) nor blends it. It speaks again in the same call that asks its mixer for
    /// the full rate, before any picture at or after the gate is made.
    Caption,
}

impl Rests {
    /// Sets `el` resting (`rest`) or back at its full rate.
    fn apply(&self, el: &gst::Element, rest: bool) {
        match self {
            Rests::Rate { full, behind } if rest => set_rate(el, full, behind.rest_fps()),
            Rests::Rate { full, .. } => el.set_property("caps", full),
            Rests::Caption => el.set_property("silent", rest),
        }
    }
}

impl PictureDemand {
    pub(super) fn new(composite: bool) -> PictureDemand {
        PictureDemand {
            recording: AtomicBool::new(false),
            public: AtomicBool::new(false),
            composite,
            rates: Mutex::new(Rates::default()),
            may_rest: AtomicBool::new(false),
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
        // A filter whose caps change between its upstream's negotiation and that
        // upstream's next push refuses the push ("not negotiated"). A source retries,
        // but a mixer (GstAggregator) stops for good, and its failure reaches each of
        // its inputs: through a pane's queue to a camera slot's tee and mixer, and to
        // the camera itself (seen: a recess and a resume in quick succession stopped a
        // camera's track). "Delayed" keeps the previous caps acceptable until upstream
        // has negotiated the new ones.
        filter.set_property_from_str("caps-change-mode", "delayed");
        if let Some(pad) = filter.static_pad("src") {
            report_full_rate_latency(&pad, &full);
        }
        self.add(filter, Rests::Rate { full, behind }, need);
    }

    /// Puts a caption (a `textoverlay`) under this demand: it is silent while nobody
    /// in `need` takes its pictures. Between hearings the composite is only the
    /// console's still, and its caption was two thirds of its compositor's work.
    pub(super) fn add_caption(&self, overlay: &gst::Element, need: Need) {
        self.add(overlay, Rests::Caption, need);
    }

    /// Puts `element` under this demand, resting at once if things may rest and
    /// nobody in `need` takes its output (a caption not resting is as built).
    fn add(&self, element: &gst::Element, rests: Rests, need: Need) {
        let Ok(mut r) = self.rates.lock() else {
            return;
        };
        let resting = r.settled && r.started && !self.needed(need);
        if resting {
            rests.apply(element, true);
        }
        r.elements.retain(|e| e.element.upgrade().is_some());
        r.elements.push(RestingElement {
            element: element.downgrade(),
            rests,
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
            Need::Source => recording || public,
            Need::Composite => recording,
            Need::Public => public,
        }
    }

    /// Moves the rate filters to the rate the demand wants, and silences or wakes the
    /// captions, where it changed. Setting a capsfilter's caps only marks its upstream
    /// for renegotiation: the source (or mixer) takes the new rate with its next
    /// picture. A caption takes its state with the next picture it overlays.
    fn update_rates(&self, settle: bool) {
        let Ok(mut r) = self.rates.lock() else {
            return;
        };
        r.settled |= settle;
        r.elements.retain(|e| e.element.upgrade().is_some());
        let can_rest = r.settled && r.started;
        self.may_rest.store(can_rest, Ordering::Release);
        let all_rest = can_rest && !self.needed(Need::Source);
        r.resting_since = match r.resting_since {
            Some(t) if all_rest => Some(t),
            None if all_rest => Some(Instant::now()),
            _ => None,
        };
        for f in r.elements.iter_mut() {
            let rest = can_rest && !self.needed(f.need);
            if rest == f.resting {
                continue;
            }
            f.resting = rest;
            let Some(el) = f.element.upgrade() else {
                continue;
            };
            f.rests.apply(&el, rest);
        }
    }

    /// How long everything has rested (None while anyone records or watches, or before
    /// things may rest).
    pub(super) fn resting_for(&self) -> Option<Duration> {
        let since = self.rates.lock().ok()?.resting_since?;
        Some(since.elapsed())
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
    rewrite_latency(pad, move |pad, min, max| {
        let now_ns = pad
            .current_caps()
            .and_then(|c| frame_ns(&c))
            .filter(|&now_ns| now_ns > full_ns)?;
        let ns = min.nseconds().saturating_sub(now_ns) + full_ns;
        Some((gst::ClockTime::from_nseconds(ns), max))
    });
}

/// Answers latency queries through `pad` (a card's output: one picture repeated by a
/// live `imagefreeze`) with an unbounded maximum, as a live `videotestsrc` answers:
/// `imagefreeze` says one frame as its maximum, so a camera slot whose camera
/// needs more (an RTSP preview's decoding, any resting camera) could not configure
/// its latency at all ("Impossible to configure latency", the pipeline's latency left
/// stale). The card repeats one picture stamped from its own counter, so a push that
/// waits for the slot holds nothing that could be lost or moved in time.
///
/// A card repeats its picture at its mixer's full rate (pipelines/camera-slot.gst,
/// public.gst), whether the mixer rests or not. A slower card would wake fewer
/// threads, but a live mixer makes a frame as soon as each input has one queued:
/// between a slow card's pictures it waited for its latency's deadline instead, and
/// made its frames late and in bursts (seen at 1 fps: the RTSP slots' pane queues
/// full and dropping once a second). A card cannot rest either: `imagefreeze` keeps
/// the rate it first negotiated.
pub(super) fn answer_card_latency(card_output: &gst::Pad) {
    rewrite_latency(card_output, |_, min, _| Some((min, gst::ClockTime::NONE)));
}

/// Rewrites the answers of live latency queries through `pad`: `answer(pad, min, max)`
/// gives the new (min, max), or None to leave the answer as it is. A query's probe
/// runs as it goes upstream (push) and as its answer comes back (pull): the answer is
/// rewritten on its way back.
fn rewrite_latency<F>(pad: &gst::Pad, answer: F)
where
    F: Fn(
            &gst::Pad,
            gst::ClockTime,
            Option<gst::ClockTime>,
        ) -> Option<(gst::ClockTime, Option<gst::ClockTime>)>
        + Send
        + Sync
        + 'static,
{
    pad.add_probe(
        gst::PadProbeType::QUERY_UPSTREAM | gst::PadProbeType::PULL,
        move |pad, info| {
            if let Some(gst::PadProbeData::Query(q)) = &mut info.data
                && let gst::QueryViewMut::Latency(l) = q.view_mut()
                && let (true, min, max) = l.result()
                && let Some((min, max)) = answer(pad, min, max)
            {
                l.set(true, min, max);
            }
            gst::PadProbeReturn::Ok
        },
    );
}

/// Thins the pictures through `pad` (a composite pane's input) to one per
/// [`THIN_EVERY_NS`] of running time while the composite is not recorded.
pub(super) fn thin(pad: &gst::Pad, demand: Arc<PictureDemand>) {
    // The window of the last picture let through (u64::MAX: none yet).
    let last = AtomicU64::new(u64::MAX);
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if demand.composite_full() {
            last.store(u64::MAX, Ordering::Relaxed);
            return gst::PadProbeReturn::Ok;
        }
        let Some(buf) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        let window = buf.pts().map_or(0, |p| p.nseconds() / THIN_EVERY_NS);
        if last.swap(window, Ordering::Relaxed) == window {
            return drop_buffer();
        }
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

/// Holds back the buffers into a mixer's input `pad` while nobody in `need` takes the
/// mix: the room's mix between hearings, the public mix while nobody watches. A live
/// mixer then makes its (silent) output once per buffer time on its clock, instead of
/// being woken by each of its inputs' buffers and contending for its inputs' locks:
/// the two mixes were the demo courtroom's most often woken threads (214 and 154
/// times a second with four microphones). Caps and segments still pass, so the
/// mixer stays negotiated, and once the mix is taken again its inputs' next buffers
/// (stamped on the pipeline clock, ahead of the mixer's timed-out output by its
/// latency) are mixed as before: the room's mix is taken again at the open, a gate's
/// lead before its first recorded buffer.
pub(super) fn hold_input(pad: &gst::Pad, demand: Arc<PictureDemand>, need: Need) {
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        if demand.may_rest.load(Ordering::Acquire) && !demand.needed(need) {
            return drop_buffer();
        }
        gst::PadProbeReturn::Ok
    });
}

/// Decodes keyframes only while pictures rest: `parsed` is the parser's output pad
/// (H.264 access units), `decoded` the decoder's.
///
/// Each keyframe let through while resting takes the delta frame after it along, its
/// *companion*, whose picture is dropped as it leaves the decoder. A decoder may hold
/// a picture until the next frame comes in: OpenH264 does so with Main and High
/// streams (measured; a Baseline one comes out at once), so most cameras' substreams
/// came out of it a whole keyframe interval late while resting. The preview stills
/// were that far behind the room, a camera that had just connected showed its "signal
/// lost" card until its second keyframe (a hearing opened meanwhile recorded the card
/// in its pane), and each open first showed the picture from a keyframe interval
/// before. The companion is the frame the keyframe
/// would have been pushed out by at full rate, and decodes from the keyframe alone.
pub(super) fn key_only(parsed: &gst::Pad, decoded: &gst::Pad, demand: Arc<PictureDemand>) {
    // True from a dropped delta frame until the next keyframe passes.
    let broken = AtomicBool::new(false);
    // True from a keyframe let through while resting until its companion passes.
    let companion_due = AtomicBool::new(false);
    // The running time of the last companion let through (u64::MAX: none).
    let companion = Arc::new(AtomicU64::new(u64::MAX));
    let passed = companion.clone();
    parsed.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(buf) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        let full = demand.full();
        if !buf.flags().contains(gst::BufferFlags::DELTA_UNIT) {
            broken.store(false, Ordering::Release);
            companion_due.store(!full, Ordering::Release);
            return gst::PadProbeReturn::Ok;
        }
        let due = companion_due.swap(false, Ordering::AcqRel);
        let is_broken = broken.load(Ordering::Acquire);
        if full && !is_broken {
            return gst::PadProbeReturn::Ok;
        }
        if due
            && !is_broken
            && let Some(pts) = buf.pts()
        {
            passed.store(pts.nseconds(), Ordering::Release);
            return gst::PadProbeReturn::Ok;
        }
        broken.store(true, Ordering::Release);
        drop_buffer()
    });
    decoded.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(pts) = info.buffer().and_then(|b| b.pts()) else {
            return gst::PadProbeReturn::Ok;
        };
        if companion
            .compare_exchange(
                pts.nseconds(),
                u64::MAX,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            return drop_buffer();
        }
        gst::PadProbeReturn::Ok
    });
}

#[cfg(test)]
mod keyframe_tests;
#[cfg(test)]
mod tests;
