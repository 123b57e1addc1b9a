//! The resting probes and rates, on small pipelines of their own.

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

/// A test pipeline from its description.
fn launch(description: &str) -> gst::Pipeline {
    gst::init().unwrap();
    gst::parse::launch(description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap()
}

/// A 64x36 compositor over black (`c`, into the appsink `out`) whose `sink_1` takes
/// `camera` through the preview's decoding (`decode`: encoder, `parse`, `dec`) or
/// through a pane's queue (`pane`).
fn into_compositor(camera: &str, decode: bool) -> gst::Pipeline {
    let path = if decode {
        "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 threads=1 ! h264parse name=parse \
         ! avdec_h264 name=dec max-threads=1"
    } else {
        "queue name=pane"
    };
    launch(&format!(
        "compositor name=c background=black max-threads=1 sink_0::zorder=0 \
         ! video/x-raw,format=I420,width=64,height=36,framerate=15/1 ! appsink name=out sync=false \
         videotestsrc is-live=true pattern=black ! video/x-raw,format=I420,width=64,height=36,framerate=15/1 ! c.sink_0 \
         {camera} ! {path} ! c.sink_1"
    ))
}

/// Runs 3 s of a 15 fps white camera (keyframe each second) into a compositor over
/// black, through the preview's decoding (`decode`) or straight into the pane, with
/// the resting probes; returns (pictures that reached the compositor, composited
/// frames that showed black after the first white one).
fn run(decode: bool, recording: bool) -> (usize, usize) {
    gst::init().unwrap();
    let criticals_before = criticals();
    let p = into_compositor(
        "videotestsrc is-live=true pattern=white num-buffers=45 \
         ! video/x-raw,format=I420,width=64,height=36,framerate=15/1",
        decode,
    );
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

/// Runs a 15 fps camera whose picture alternates dark and bright each frame into a
/// compositor over black, as [`run`] does, resting 1.5 s, then recorded for 3 s;
/// returns how long (running time) after the open the composited picture first changed
/// (None: not in those 3 s), and how often it changed in the second after that.
fn moves_after_open(decode: bool) -> (Option<u64>, usize) {
    const FRAME_NS: u64 = 66_666_666;
    let p = into_compositor(
        "videotestsrc is-live=true pattern=black num-buffers=75 \
         ! video/x-raw,format=I420,width=64,height=36,framerate=15/1 ! identity name=marker",
        decode,
    );
    // Odd frames bright, even frames dark (the whole luma plane).
    let marker = p.by_name("marker").unwrap().static_pad("src").unwrap();
    marker.add_probe(gst::PadProbeType::BUFFER, |_, info| {
        if let Some(buf) = info.buffer_mut() {
            let bright = buf
                .pts()
                .is_some_and(|t| (t.nseconds() / FRAME_NS) % 2 == 1);
            if let Ok(mut map) = buf.make_mut().map_writable() {
                map[..64 * 36].fill(if bright { 200 } else { 40 });
            }
        }
        gst::PadProbeReturn::Ok
    });
    let demand = Arc::new(PictureDemand::new(true));
    demand.set_recording(false);
    let pad = |n: &str| p.by_name(n).unwrap().static_pad("src").unwrap();
    if decode {
        key_only(&pad("parse"), &pad("dec"), demand.clone());
    } else {
        thin(
            &p.by_name("pane").unwrap().static_pad("sink").unwrap(),
            demand.clone(),
        );
    }
    let sink = p
        .by_name("out")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let (mut first_ns, mut open_ns) = (None, None);
    let mut last: Option<bool> = None;
    let mut changes = Vec::new();
    loop {
        let s = sink.pull_sample().unwrap();
        let buf = s.buffer().unwrap();
        let pts_ns = buf.pts().unwrap().nseconds();
        let bright = buf.map_readable().unwrap()[64 * 36 - 1] > 128;
        let first = *first_ns.get_or_insert(pts_ns);
        match open_ns {
            None if pts_ns >= first + 1_500_000_000 => {
                demand.set_recording(true);
                open_ns = Some(pts_ns);
            }
            Some(open) if pts_ns >= open + 3_000_000_000 => break,
            Some(_) if last.is_some_and(|l| l != bright) => changes.push(pts_ns),
            _ => {}
        }
        last = Some(bright);
    }
    p.set_state(gst::State::Null).unwrap();
    let open = open_ns.unwrap();
    let Some(&first) = changes.first() else {
        return (None, 0);
    };
    let after = changes
        .iter()
        .filter(|&&t| t > first && t <= first + 1_000_000_000)
        .count();
    (Some((first - open) / 1_000_000), after)
}

/// Once a hearing opens the panes move at once: a picture let through while resting
/// must not hold its pane (4 s pictures froze every pane up to 4 s after each open: a
/// compositor drops a picture that ends before the one it holds).
#[test]
fn pictures_move_as_soon_as_a_hearing_opens() {
    // A preview decoded keyframes only waits for its next keyframe (one a second).
    for (decode, limit_ms, what) in [(false, 500, "a thinned pane"), (true, 1_500, "a preview")] {
        let (frozen_ms, moves) = moves_after_open(decode);
        assert!(
            frozen_ms.is_some_and(|ms| ms <= limit_ms),
            "{what} still frozen {frozen_ms:?} ms after the open (None: 3 s)"
        );
        assert!(
            moves >= 10,
            "{what} changed only {moves} times in its first second"
        );
    }
}

/// The duration (ms) of the latest picture into the element `out` of `p`, kept up to date.
fn picture_ms(p: &gst::Pipeline) -> Arc<std::sync::atomic::AtomicU64> {
    let last_ms = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let l = last_ms.clone();
    let out = p.by_name("out").unwrap().static_pad("sink").unwrap();
    out.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(d) = info.buffer().and_then(|b| b.duration()) {
            l.store(d.mseconds(), Ordering::Relaxed);
        }
        gst::PadProbeReturn::Ok
    });
    last_ms
}

/// Waits (up to 5 s) for pictures of `ms` (see [`picture_ms`]).
fn reaches(last_ms: &std::sync::atomic::AtomicU64, ms: u64) -> bool {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < until {
        if last_ms.load(Ordering::Relaxed) == ms {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

/// A test camera rests once the recorder has settled and nobody needs its picture,
/// and comes back to its full rate when a hearing records or someone watches.
#[test]
fn test_cameras_rest_while_nobody_needs_their_picture() {
    let p = launch(
        "videotestsrc is-live=true pattern=ball \
         ! capsfilter name=cam_rate caps=video/x-raw,format=I420,width=64,height=36,framerate=15/1 \
         ! fakesink name=out sync=false",
    );
    let last_ms = picture_ms(&p);
    let demand = PictureDemand::new(true);
    demand.add_rate_filter(
        &p.by_name("cam_rate").unwrap(),
        Behind::Source,
        Need::Source,
    );
    // The pipeline's first seconds: nothing rests yet, whatever the recorder says.
    demand.poll(Some(REST_AFTER_START_NS - 1));
    p.set_state(gst::State::Playing).unwrap();
    let reaches = |ms: u64| reaches(&last_ms, ms);
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
    let out = p.by_name("out").unwrap().static_pad("sink").unwrap();
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

/// A camera slot's card (one picture repeated by a live `imagefreeze`) lets the slot
/// configure its latency however long its camera needs: `imagefreeze` alone answers
/// one frame (here a second) as its maximum, and a slot whose camera needed
/// more (an RTSP preview, a resting test camera) failed its latency query.
#[test]
fn a_card_lets_its_slot_wait_as_long_as_its_camera_needs() {
    let p = launch(
        "compositor name=slot max-threads=1 ! fakesink name=out sync=false \
         videotestsrc pattern=black num-buffers=1 ! video/x-raw,format=I420,width=64,height=36,framerate=15/1 \
         ! imagefreeze is-live=true \
         ! capsfilter name=card_rate caps=video/x-raw,format=I420,width=64,height=36,framerate=1/1 ! slot.sink_0 \
         videotestsrc is-live=true ! video/x-raw,format=I420,width=64,height=36,framerate=1/2 ! slot.sink_1",
    );
    answer_card_latency(&p.by_name("card_rate").unwrap().static_pad("src").unwrap());
    p.set_state(gst::State::Playing).unwrap();
    let out = p.by_name("out").unwrap().static_pad("sink").unwrap();
    let latency = || {
        let mut q = gst::query::Latency::new();
        out.peer_query(&mut q).then(|| q.result())
    };
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut answer = None;
    while answer.is_none() && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(100));
        answer = latency();
    }
    p.set_state(gst::State::Null).unwrap();
    let (live, min, _) = answer.expect("the slot cannot configure its latency");
    assert!(live);
    assert!(
        min.mseconds() >= 2000,
        "the camera's frame (2 s) counts: {min}"
    );
}

/// Each card repeats its picture at its mixer's rate. A live mixer makes a frame as
/// soon as each input has one queued, else at its latency's deadline: a card slower
/// than its mixer leaves its input empty between its pictures, so the mixer made
/// most frames at the deadline, late and in bursts (seen with cards at 1 fps: the
/// RTSP camera slots' pane queues full and dropping once a second, 15 MB more
/// memory while recording).
#[test]
fn every_card_repeats_its_picture_at_its_mixers_rate() {
    let cfg = crate::config::Config::demo();
    let text = crate::capture::describe::describe(&cfg).main;
    // The frame rate of the first caps after `marker`.
    let rate_after = |marker: &str| -> String {
        let at = text
            .find(marker)
            .unwrap_or_else(|| panic!("{marker} missing"));
        let rest = &text[at..];
        let rate = &rest[rest.find("framerate=").expect("no framerate") + 10..];
        rate.chars()
            .take_while(|c| c.is_ascii_digit() || *c == '/')
            .collect()
    };
    let mut pairs: Vec<(String, String)> = cfg
        .cameras()
        .map(|c| {
            (
                format!("name={}_fb ", c.id),
                format!("name={}_cardrate ", c.id),
            )
        })
        .collect();
    assert!(!pairs.is_empty());
    pairs.push(("name=pub_rate ".into(), "name=pub_cardrate ".into()));
    for (mixer, card) in pairs {
        let (mixer_rate, card_rate) = (rate_after(&mixer), rate_after(&card));
        assert!(!mixer_rate.is_empty(), "{mixer} has no rate");
        assert_eq!(card_rate, mixer_rate, "{card} against {mixer}");
    }
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

/// The box rests (and says so in its status) only once things may rest, and while
/// nobody records or watches; the time counts from when it last began to rest.
#[test]
fn the_box_rests_while_nobody_records_or_watches() {
    let demand = PictureDemand::new(true);
    assert_eq!(demand.resting_for(), None, "before anything may rest");
    demand.set_recording(false);
    demand.poll(Some(REST_AFTER_START_NS - 1));
    assert_eq!(
        demand.resting_for(),
        None,
        "in the pipeline's first seconds"
    );
    demand.poll(Some(REST_AFTER_START_NS));
    assert!(demand.resting_for().is_some(), "resting between hearings");
    let slept = std::time::Duration::from_millis(200);
    std::thread::sleep(slept);
    assert!(
        demand.resting_for().is_some_and(|d| d >= slept),
        "it keeps counting"
    );
    demand.set_public(true);
    assert_eq!(demand.resting_for(), None, "someone watches");
    demand.set_public(false);
    demand.set_recording(true);
    assert_eq!(demand.resting_for(), None, "a hearing records");
    demand.set_recording(false);
    assert!(
        demand.resting_for().is_some_and(|d| d < slept),
        "counted again from the close"
    );
}

/// A caption is silent while nobody takes its pictures (the composite's between
/// hearings, the public picture's while nobody watches), and speaks as soon as
/// someone does: the rest of the hearing is drawn with it.
#[test]
fn captions_are_silent_while_nobody_takes_their_pictures() {
    gst::init().unwrap();
    let overlay = || gst::ElementFactory::make("textoverlay").build().unwrap();
    let (comp, public) = (overlay(), overlay());
    let demand = PictureDemand::new(true);
    demand.add_caption(&comp, Need::Composite);
    demand.add_caption(&public, Need::Public);
    let silent = |e: &gst::Element| e.property::<bool>("silent");
    demand.set_public(false);
    demand.set_recording(false);
    assert!(
        !silent(&comp) && !silent(&public),
        "nothing rests in the pipeline's first seconds"
    );
    demand.poll(Some(REST_AFTER_START_NS));
    assert!(silent(&comp) && silent(&public), "between hearings");
    demand.set_recording(true);
    assert!(!silent(&comp) && silent(&public), "a hearing records");
    demand.set_public(true);
    assert!(!silent(&comp) && !silent(&public), "someone watches too");
    demand.set_recording(false);
    assert!(
        silent(&comp) && !silent(&public),
        "a recess, someone watching"
    );
    // A caption added while things rest starts silent.
    let late = overlay();
    demand.add_caption(&late, Need::Composite);
    assert!(silent(&late));
}

/// A mixer whose rate changes while it negotiates must not fail: a mixer (unlike a
/// source) never retries a refused negotiation, and its failure reaches every input,
/// back through the panes to the cameras' slots (seen: a clerk's recess and resume
/// in quick succession stopped a camera's track). The hearing's state flips as fast
/// as a thread can flip it here, for 5 s; then the mixer still takes each rate asked.
#[test]
fn a_mixer_survives_its_rate_changing_while_it_negotiates() {
    let p = launch(
        "videotestsrc is-live=true pattern=black ! video/x-raw,format=I420,width=64,height=36,framerate=60/1 \
         ! queue leaky=downstream max-size-buffers=3 ! compositor name=c max-threads=1 \
         ! capsfilter name=comp_rate caps=video/x-raw,format=I420,width=64,height=36,framerate=60/1 \
         ! fakesink name=out sync=false",
    );
    let last_ms = picture_ms(&p);
    let demand = PictureDemand::new(true);
    demand.add_rate_filter(
        &p.by_name("comp_rate").unwrap(),
        Behind::RecordedMixer,
        Need::Composite,
    );
    demand.poll(Some(REST_AFTER_START_NS));
    p.set_state(gst::State::Playing).unwrap();
    let bus = p.bus().unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut on = false;
    while std::time::Instant::now() < until {
        on = !on;
        demand.set_recording(on);
        std::thread::sleep(std::time::Duration::from_micros(500));
    }
    let reaches = |ms: u64| reaches(&last_ms, ms);
    demand.set_recording(true);
    let full = reaches(16);
    demand.set_recording(false);
    let rests = reaches(100);
    let error = bus.pop_filtered(&[gst::MessageType::Error]);
    p.set_state(gst::State::Null).unwrap();
    assert!(error.is_none(), "the mixer failed: {error:?}");
    assert!(full, "the mixer is not back at its full rate");
    assert!(rests, "the mixer does not rest after the flips");
}

/// What a probe saw of one audio buffer: the phase of the test when it passed, its
/// time and duration (ns), and its loudest sample.
type Heard = (u8, u64, u64, i16);

/// Records each buffer into the element `out` of `p` with the test's current phase.
fn hear(p: &gst::Pipeline, phase: Arc<std::sync::atomic::AtomicU8>) -> Arc<Mutex<Vec<Heard>>> {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let h = heard.clone();
    let out = p.by_name("out").unwrap().static_pad("sink").unwrap();
    out.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(b) = info.buffer() {
            let map = b.map_readable().unwrap();
            let peak = map
                .chunks_exact(2)
                .map(|s| i16::from_le_bytes([s[0], s[1]]).saturating_abs())
                .max()
                .unwrap_or(0);
            h.lock().unwrap().push((
                phase.load(Ordering::SeqCst),
                b.pts().unwrap().nseconds(),
                b.duration().unwrap().nseconds(),
                peak,
            ));
        }
        gst::PadProbeReturn::Ok
    });
    heard
}

/// Each buffer starts where the one before ended: nothing lost, nothing repeated.
fn assert_continuous(heard: &[Heard]) {
    for w in heard.windows(2) {
        assert_eq!(w[1].1, w[0].1 + w[0].2, "a gap or overlap after {:?}", w[0]);
    }
}

/// A mix takes no input while nobody takes it, and still keeps time (silence, on its
/// clock); once taken, its input's sound is in it again within a few buffers, and its
/// timeline never jumps.
#[test]
fn a_mix_takes_no_input_while_nobody_takes_it() {
    let p = launch(
        "audiomixer name=mix output-buffer-duration=40000000 \
         ! audio/x-raw,format=S16LE,rate=48000,channels=1 ! fakesink name=out sync=false \
         audiotestsrc is-live=true wave=sine-table volume=0.5 samplesperbuffer=1920 \
         ! audio/x-raw,format=S16LE,rate=48000,channels=1,layout=interleaved ! mix.sink_0",
    );
    let phase = Arc::new(std::sync::atomic::AtomicU8::new(0));
    let heard = hear(&p, phase.clone());
    let demand = Arc::new(PictureDemand::new(true));
    let input = p.by_name("mix").unwrap().static_pad("sink_0").unwrap();
    let taken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t = taken.clone();
    hold_input(&input, demand.clone(), Need::Composite);
    input.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        t.fetch_add(1, Ordering::SeqCst);
        gst::PadProbeReturn::Ok
    });
    // As the capture's pipeline starts (a live mixer given the clock before its base
    // time runs ahead of it, see `capture::clocking`).
    crate::capture::clocking::fix_clock(&p);
    p.set_state(gst::State::Playing).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    phase.store(1, Ordering::SeqCst);
    demand.set_recording(false);
    demand.poll(Some(REST_AFTER_START_NS));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let taken_before = taken.load(Ordering::SeqCst);
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let taken_while_held = taken.load(Ordering::SeqCst) - taken_before;
    phase.store(2, Ordering::SeqCst);
    demand.set_recording(true);
    std::thread::sleep(std::time::Duration::from_millis(600));
    p.set_state(gst::State::Null).unwrap();
    assert_eq!(taken_while_held, 0, "the mix took input while held");
    let heard = heard.lock().unwrap().clone();
    let phase_of = |ph: u8| -> Vec<Heard> { heard.iter().filter(|h| h.0 == ph).copied().collect() };
    assert!(
        phase_of(0).iter().any(|h| h.3 > 1_000),
        "no sound before the rest"
    );
    let held = phase_of(1);
    // About 1.3 s of its own silence, a few buffers in flight when the hold began.
    assert!(
        held.len() >= 20,
        "the held mix stopped keeping time: {}",
        held.len()
    );
    assert!(held[6..].iter().all(|h| h.3 == 0), "sound in the held mix");
    let taken_again = phase_of(2);
    let first_sound = taken_again.iter().position(|h| h.3 > 1_000);
    assert!(
        first_sound.is_some_and(|i| i <= 5),
        "the input's sound came back late: {first_sound:?} of {}",
        taken_again.len()
    );
    assert!(
        taken_again[first_sound.unwrap_or(0)..]
            .iter()
            .all(|h| h.3 > 1_000)
    );
    assert_continuous(&heard);
}
