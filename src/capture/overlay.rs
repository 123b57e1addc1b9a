//! The time burned into the composite and the public picture: a `textoverlay` whose
//! text a pad probe sets, frame by frame, to the frame's running time counted from a
//! wall-clock epoch the daemon sets (see `archive::wallclock`). Unlike `clockoverlay`
//! (which reads the system clock as it draws), a frame's burned-in time is then exactly
//! the wall-clock time the recording gives its media time, and a clock step moves both
//! at the `clock_step` event, never one without the other.
//!
//! Why not `timeoverlay` (which did this until 2026-12): it lays the text out again
//! with Pango and Cairo on every frame although the time shown changes once a second,
//! about a tenth of the box's CPU with no hearing open. The probe sets the text only
//! when the second shown (or the caption) changes, so the text is drawn once a second
//! and blended on the other frames. It runs in the streaming thread just before the
//! overlay draws that frame, so each frame shows its own time.

use gstreamer as gst;
use gstreamer::prelude::*;
use std::sync::{Arc, Mutex};

/// What one overlay shows: "<caption> <time>" (the caption may end in a newline to put
/// the time on a line of its own).
#[derive(Debug)]
struct Shown {
    caption: String,
    epoch_ns: i64,
    /// The wall-clock second the overlay's text shows now; None when the text must be
    /// set again (caption or epoch changed).
    second: Option<i64>,
    segment: Option<gst::FormattedSegment<gst::ClockTime>>,
}

/// One burned-in clock: the overlay element and what it shows.
#[derive(Clone)]
pub(super) struct BurnedClock {
    element: gst::Element,
    shown: Arc<Mutex<Shown>>,
}

impl BurnedClock {
    /// Drives `element` (a `textoverlay`): its current `text` is the caption.
    pub(super) fn attach(element: gst::Element, epoch_ns: i64) -> Option<BurnedClock> {
        let caption = element
            .property::<Option<String>>("text")
            .unwrap_or_default();
        let shown = Arc::new(Mutex::new(Shown {
            caption,
            epoch_ns,
            second: None,
            segment: None,
        }));
        let pad = element.static_pad("video_sink")?;
        let weak = element.downgrade();
        let state = shown.clone();
        pad.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
            move |_, info| {
                if let Some(gst::PadProbeData::Event(ev)) = &info.data {
                    if let gst::EventView::Segment(s) = ev.view()
                        && let Ok(mut st) = state.lock()
                    {
                        st.segment = s.segment().clone().downcast::<gst::ClockTime>().ok();
                    }
                    return gst::PadProbeReturn::Ok;
                }
                let Some(pts) = info.buffer().and_then(|b| b.pts()) else {
                    return gst::PadProbeReturn::Ok;
                };
                let text = match state.lock() {
                    Ok(mut st) => next_text(&mut st, pts),
                    Err(_) => None,
                };
                if let (Some(text), Some(el)) = (text, weak.upgrade()) {
                    el.set_property("text", text);
                }
                gst::PadProbeReturn::Ok
            },
        )?;
        Some(BurnedClock { element, shown })
    }

    pub(super) fn set_epoch_ns(&self, epoch_ns: i64) {
        if let Ok(mut st) = self.shown.lock() {
            st.epoch_ns = epoch_ns;
            st.second = None;
        }
    }

    pub(super) fn epoch_ns(&self) -> Option<i64> {
        self.shown.lock().ok().map(|st| st.epoch_ns)
    }

    pub(super) fn set_caption(&self, caption: String) {
        if let Ok(mut st) = self.shown.lock() {
            st.caption = caption;
            st.second = None;
        }
    }

    pub(super) fn element(&self) -> &gst::Element {
        &self.element
    }
}

/// The text for a frame at `pts`, when it differs from what the overlay shows.
fn next_text(st: &mut Shown, pts: gst::ClockTime) -> Option<String> {
    let rt = st
        .segment
        .as_ref()
        .and_then(|s| s.to_running_time(pts))
        .unwrap_or(pts);
    let wall_ns = st
        .epoch_ns
        .saturating_add(i64::try_from(rt.nseconds()).unwrap_or(i64::MAX));
    let second = wall_ns.div_euclid(1_000_000_000);
    if st.second == Some(second) {
        return None;
    }
    st.second = Some(second);
    // The overlay's text is Pango markup: a case number with `&` or `<` would be
    // refused, and nothing drawn (the time included), unless escaped.
    Some(format!(
        "{} {}",
        gst::glib::markup_escape_text(&st.caption),
        format_local(second)
    ))
}

/// `second` (Unix seconds) as the box's local date and time, as the overlay shows it.
fn format_local(second: i64) -> String {
    gst::glib::DateTime::from_unix_local(second)
        .and_then(|d| d.format("%Y-%m-%d %H:%M:%S"))
        .map(|s| s.to_string())
        .unwrap_or_else(|_| "----------- --:--:--".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The composite template's overlay (its text is set once built).
    fn overlay_line() -> String {
        let t = include_str!("../../pipelines/composite.gst");
        let line = t
            .lines()
            .find(|l| l.contains("name=caption"))
            .expect("composite.gst burns the time in with an overlay named caption");
        line.trim_start_matches([' ', '!']).replace("{caption}", "")
    }

    /// Frame `n` (at 25 fps) out of `overlay` over a black picture; with an epoch, the
    /// overlay is driven as the daemon drives it, its caption `text`.
    fn frame(overlay: &str, text: &str, epoch_ns: Option<i64>, n: usize) -> Vec<u8> {
        gst::init().unwrap();
        let p = gst::parse::launch(&format!(
            "videotestsrc pattern=black num-buffers={} ! video/x-raw,format=I420,width=640,height=360,framerate=25/1 ! {overlay} ! appsink name=out sync=false",
            n + 1
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let caption = p.by_name("caption").unwrap();
        caption.set_property("text", text);
        let _clock = epoch_ns.map(|e| BurnedClock::attach(caption, e).unwrap());
        let sink = p
            .by_name("out")
            .unwrap()
            .downcast::<gstreamer_app::AppSink>()
            .unwrap();
        p.set_state(gst::State::Playing).unwrap();
        let mut last = None;
        for _ in 0..=n {
            last = Some(sink.pull_sample().unwrap());
        }
        p.set_state(gst::State::Null).unwrap();
        last.unwrap()
            .buffer()
            .unwrap()
            .map_readable()
            .unwrap()
            .to_vec()
    }

    /// What the overlay must draw: the same text drawn by a plain `textoverlay` with
    /// the same placement and font ("<caption> <time>").
    fn expected(caption: &str, wall_ns: i64) -> Vec<u8> {
        let local = chrono::DateTime::from_timestamp_nanos(wall_ns).with_timezone(&chrono::Local);
        let text = format!("{caption}\n {}", local.format("%Y-%m-%d %H:%M:%S"));
        frame(&overlay_line(), &text, None, 0)
    }

    #[test]
    fn the_burned_in_time_is_the_epoch_plus_the_running_time() {
        let epoch_ns = 1_795_773_600_250_000_000; // 2026-11-27 08:00:00.25 UTC
        let caption = "(2026)X0101民初1号";
        let text = format!("{caption}\n");
        let drawn = frame(&overlay_line(), &text, Some(epoch_ns), 0);
        assert!(
            drawn == expected(caption, epoch_ns),
            "frame 0 shows the epoch's time"
        );
        assert!(
            drawn != expected(caption, epoch_ns + 1_000_000_000),
            "a second off is told apart"
        );
        // Frame 20 (0.8 s of running time) is past the next second: 08:00:01.
        let drawn_20 = frame(&overlay_line(), &text, Some(epoch_ns), 20);
        assert!(
            drawn_20 == expected(caption, epoch_ns + 800_000_000),
            "frame 20 shows its own second"
        );
        assert!(drawn_20 != drawn, "and it is not frame 0's");
        // A step moves it: an hour later is drawn differently, and as expected.
        let later = epoch_ns + 3_600_000_000_000;
        let drawn_later = frame(&overlay_line(), &text, Some(later), 0);
        assert!(drawn_later != drawn, "an hour later looks different");
        assert!(
            drawn_later == expected(caption, later),
            "and shows that hour"
        );
    }

    #[test]
    fn the_text_is_set_only_when_the_second_shown_changes() {
        let mut st = Shown {
            caption: "C\n".into(),
            epoch_ns: 1_000_000_000_900_000_000,
            second: None,
            segment: None,
        };
        let at = |ms: u64| gst::ClockTime::from_mseconds(ms);
        assert!(next_text(&mut st, at(0)).is_some());
        assert!(next_text(&mut st, at(66)).is_none(), "same second");
        assert!(next_text(&mut st, at(100)).is_some(), "the next second");
        assert!(next_text(&mut st, at(166)).is_none());
        st.caption = "D\n".into();
        st.second = None;
        let t = next_text(&mut st, at(200)).unwrap();
        assert!(t.starts_with("D\n "), "{t}");
        st.caption = "(2026) A & B <1>\n".into();
        st.second = None;
        let t = next_text(&mut st, at(300)).unwrap();
        assert!(t.starts_with("(2026) A &amp; B &lt;1&gt;\n "), "{t}");
    }
}
