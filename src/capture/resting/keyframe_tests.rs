//! Keyframes decoded while resting leave the decoder at once.

use super::*;

/// What passed a point of the test pipeline, in the order it passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// Into the decoder: running time, keyframe.
    In(u64, bool),
    /// Out of the preview's decoding.
    Out(u64),
}

/// Runs 4 s of a 15 fps High-profile camera (a keyframe each second; most cameras'
/// substreams are Main or High) through the preview's parsing and OpenH264 (the
/// default preview decoder) while pictures rest; returns what went into the decoder
/// and what came out of it, in order. Decoder and sink run in one streaming thread, so
/// the order is the order things happened.
fn resting_decode() -> Vec<Seen> {
    gst::init().unwrap();
    let p = gst::parse::launch(
        "videotestsrc is-live=true pattern=ball num-buffers=60 \
         ! video/x-raw,format=I420,width=64,height=36,framerate=15/1 \
         ! x264enc speed-preset=superfast tune=zerolatency key-int-max=15 threads=1 \
         ! video/x-h264,profile=high ! h264parse name=parse ! openh264dec name=dec \
         ! fakesink name=out sync=false",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let demand = Arc::new(PictureDemand::new(true));
    demand.set_recording(false);
    let pad = |element: &str, name: &str| p.by_name(element).unwrap().static_pad(name).unwrap();
    key_only(&pad("parse", "src"), &pad("dec", "src"), demand);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    pad("dec", "sink").add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(buf) = info.buffer() {
            let key = !buf.flags().contains(gst::BufferFlags::DELTA_UNIT);
            let pts = buf.pts().map_or(0, |t| t.nseconds());
            s.lock().unwrap().push(Seen::In(pts, key));
        }
        gst::PadProbeReturn::Ok
    });
    let s = seen.clone();
    pad("out", "sink").add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(pts) = info.buffer().and_then(|b| b.pts()) {
            s.lock().unwrap().push(Seen::Out(pts.nseconds()));
        }
        gst::PadProbeReturn::Ok
    });
    p.set_state(gst::State::Playing).unwrap();
    let bus = p.bus().unwrap();
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(30),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    p.set_state(gst::State::Null).unwrap();
    assert!(
        matches!(
            msg.as_ref().map(|m| m.view()),
            Some(gst::MessageView::Eos(_))
        ),
        "{msg:?}"
    );
    seen.lock().unwrap().clone()
}

#[test]
fn a_resting_keyframe_leaves_the_decoder_before_the_next_one_comes() {
    let seen = resting_decode();
    let keys: Vec<u64> = seen
        .iter()
        .filter_map(|s| match s {
            Seen::In(t, true) => Some(*t),
            _ => None,
        })
        .collect();
    assert!(keys.len() >= 3, "{seen:?}");
    // Into the decoder: each keyframe and the one delta frame after it, nothing else.
    let ins = seen.iter().filter(|s| matches!(s, Seen::In(..))).count();
    assert!(
        ins <= 2 * keys.len(),
        "{ins} frames decoded while resting: {seen:?}"
    );
    for pair in keys.windows(2) {
        let out = seen.iter().position(|s| *s == Seen::Out(pair[0]));
        let next_in = seen.iter().position(|s| *s == Seen::In(pair[1], true));
        assert!(
            out.is_some_and(|o| next_in.is_some_and(|n| o < n)),
            "the keyframe at {} ms came out at {out:?}, the next went in at {next_in:?}: {seen:?}",
            pair[0] / 1_000_000
        );
    }
    // Only keyframes' pictures come out: the delta frames that pushed them out do not.
    for s in &seen {
        if let Seen::Out(t) = s {
            assert!(
                keys.contains(t),
                "a delta frame's picture came out: {seen:?}"
            );
        }
    }
}
