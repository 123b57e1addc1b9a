//! The time burned into the composite and the public picture, with the case number:
//! a pad probe works out, frame by frame, the frame's running time counted from a
//! wall-clock epoch the daemon sets (see `archive::wallclock`). Unlike `clockoverlay`
//! (which reads the system clock as it draws), a frame's burned-in time is then exactly
//! the wall-clock time the recording gives its media time, and a clock step moves both
//! at the `clock_step` event, never one without the other.
//!
//! The template's `textoverlay` gives the caption's font and place, and its `silent`
//! switch (`capture::resting`) says whether the caption is drawn; it draws nothing
//! itself. When the second shown (or the caption) changes, a twin of it paints the
//! text on black (`capture::caption_box`), once a second, and the probe copies the box
//! around the text into each frame before the overlay sees it, so each frame shows its
//! own time. Should the twin fail, the overlay draws the text itself, as it did until
//! 2026-12 (blending it into every frame costs about 0.65 % of a core at 720p15).
//!
//! Why not `timeoverlay`: it lays the text out again with Pango and Cairo on every
//! frame although the time shown changes once a second.

use gstreamer as gst;
use gstreamer::prelude::*;
use std::sync::{Arc, Mutex};

use super::caption_box::{Painter, Stamp};

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
    caps: Option<gst::Caps>,
    /// None when no twin could be made: the overlay draws the text itself.
    painter: Option<Painter>,
    /// The box copied into each frame, the current second's.
    stamp: Option<Stamp>,
    /// The overlay draws the text itself (the twin failed this second).
    fallback: bool,
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
        let painter = match Painter::new(&element) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(overlay = %element.name(), "the caption's painter could not be made ({e}): the overlay blends it into every frame");
                None
            }
        };
        element.set_property("text", "");
        let shown = Arc::new(Mutex::new(Shown {
            caption,
            epoch_ns,
            second: None,
            segment: None,
            caps: None,
            painter,
            stamp: None,
            fallback: false,
        }));
        let pad = element.static_pad("video_sink")?;
        let weak = element.downgrade();
        let state = shown.clone();
        pad.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
            move |_, info| {
                if let Some(gst::PadProbeData::Event(ev)) = &info.data {
                    if let Ok(mut st) = state.lock() {
                        match ev.view() {
                            gst::EventView::Segment(s) => {
                                st.segment = s.segment().clone().downcast::<gst::ClockTime>().ok();
                            }
                            gst::EventView::Caps(c) => {
                                st.caps = Some(c.caps_owned());
                                // A new size or format: paint again for it.
                                st.second = None;
                            }
                            _ => {}
                        }
                    }
                    return gst::PadProbeReturn::Ok;
                }
                let Some(el) = weak.upgrade() else {
                    return gst::PadProbeReturn::Ok;
                };
                // Resting: nobody takes these pictures, nothing is drawn.
                if el.property::<bool>("silent") {
                    return gst::PadProbeReturn::Ok;
                }
                let Some(pts) = info.buffer().and_then(|b| b.pts()) else {
                    return gst::PadProbeReturn::Ok;
                };
                let Ok(mut st) = state.lock() else {
                    return gst::PadProbeReturn::Ok;
                };
                if let Some(text) = next_text(&mut st, pts) {
                    paint(&mut st, &el, &text);
                }
                if let (Some(stamp), Some(gst::PadProbeData::Buffer(buffer))) =
                    (&st.stamp, &mut info.data)
                    && let Err(e) = stamp.apply(buffer.make_mut())
                {
                    // A frame that does not match its caps: rather than a warning a
                    // frame, the overlay draws the text from this frame on.
                    tracing::warn!(overlay = %el.name(), "the caption's box was not copied ({e}): the overlay draws the text itself");
                    st.painter = None;
                    st.second = None;
                    if let Some(text) = next_text(&mut st, pts) {
                        paint(&mut st, &el, &text);
                    }
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

/// Makes this second's box from `text`; if that fails, `overlay` draws the text
/// itself until a box can be made again (the time is burned in either way).
fn paint(st: &mut Shown, overlay: &gst::Element, text: &str) {
    let painted = match (st.painter.as_mut(), st.caps.as_ref()) {
        (Some(p), Some(caps)) => p.paint(text, caps).map_err(|e| e.to_string()),
        (None, _) => Err("no painter".to_string()),
        (_, None) => Err("no caps yet".to_string()),
    };
    match painted {
        Ok(stamp) => {
            st.stamp = Some(stamp);
            if st.fallback {
                st.fallback = false;
                overlay.set_property("text", "");
                tracing::info!(overlay = %overlay.name(), "the caption is painted as a box again");
            }
        }
        Err(e) => {
            st.stamp = None;
            if !st.fallback && st.painter.is_some() {
                tracing::warn!(overlay = %overlay.name(), "the caption's box could not be painted ({e}): the overlay draws the text itself");
            }
            st.fallback = true;
            overlay.set_property("text", text);
        }
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
        frame_on(overlay, text, epoch_ns, n, "black")
    }

    /// Frame `n` out of `overlay` over videotestsrc's `pattern`.
    fn frame_on(
        overlay: &str,
        text: &str,
        epoch_ns: Option<i64>,
        n: usize,
        pattern: &str,
    ) -> Vec<u8> {
        gst::init().unwrap();
        let p = gst::parse::launch(&format!(
            "videotestsrc pattern={pattern} num-buffers={} ! video/x-raw,format=I420,width=640,height=360,framerate=25/1 ! {overlay} ! appsink name=out sync=false",
            n + 1
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let caption = p.by_name("caption").unwrap();
        if caption.has_property("text") {
            caption.set_property("text", text);
        }
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

    /// What the overlay must draw on black: the same text drawn by a plain
    /// `textoverlay` with the same placement and font ("<caption> <time>"), unshaded
    /// (the box is the background; shading would only darken black).
    fn expected(caption: &str, wall_ns: i64) -> Vec<u8> {
        let local = chrono::DateTime::from_timestamp_nanos(wall_ns).with_timezone(&chrono::Local);
        let text = format!("{caption}\n {}", local.format("%Y-%m-%d %H:%M:%S"));
        let plain = overlay_line().replace("shaded-background=true", "shaded-background=false");
        assert_ne!(plain, overlay_line(), "the template shades its caption");
        frame_on(&plain, &text, None, 0, "black")
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

    /// On a picture, the caption is an opaque black box at the bottom right holding
    /// the text, and nothing else of the picture changes.
    #[test]
    fn the_caption_is_a_box_and_the_rest_of_the_picture_is_untouched() {
        let (w, h) = (640usize, 360usize);
        let epoch_ns = 1_795_773_600_250_000_000;
        let text = "(2026)X0101民初1号\n";
        let stamped = frame_on(&overlay_line(), text, Some(epoch_ns), 0, "white");
        let picture = frame_on("identity name=caption", "", None, 0, "white");
        // The luma plane (I420: the first w*h bytes): where did it change?
        let changed: Vec<(usize, usize)> = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .filter(|&(x, y)| stamped[y * w + x] != picture[y * w + x])
            .collect();
        assert!(!changed.is_empty(), "a caption is drawn");
        let x0 = changed.iter().map(|c| c.0).min().unwrap();
        let y0 = changed.iter().map(|c| c.1).min().unwrap();
        let x1 = changed.iter().map(|c| c.0).max().unwrap() + 1;
        let y1 = changed.iter().map(|c| c.1).max().unwrap() + 1;
        assert!(x0 > w / 2 && y0 > h / 2, "at the bottom right: {x0},{y0}");
        assert!(x1 < w && y1 < h, "inside the picture's margins: {x1},{y1}");
        // The box is opaque: every pixel of its rectangle is black or text.
        let inside: Vec<u8> = (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| (x, y)))
            .map(|(x, y)| stamped[y * w + x])
            .collect();
        let black = inside.iter().filter(|&&v| v == 16).count();
        let bright = inside.iter().filter(|&&v| v > 200).count();
        assert!(
            black > inside.len() / 2 && bright > 200,
            "a black box with white text: {black} black, {bright} bright of {}",
            inside.len()
        );
        // Its chroma is the picture's white/grey (neutral) there too: no colour cast.
        let u = &stamped[w * h..w * h + w * h / 4];
        assert!(
            (y0 / 2..y1 / 2).all(|y| (x0 / 2..x1 / 2).all(|x| u[y * w / 2 + x].abs_diff(128) < 8)),
            "the box is neutral"
        );
    }

    /// Without a box, the overlay draws the text itself (the time is burned in either
    /// way), and stops as soon as a box is painted again.
    #[test]
    fn when_no_box_can_be_painted_the_overlay_draws_the_text() {
        gst::init().unwrap();
        let overlay = gst::ElementFactory::make("textoverlay").build().unwrap();
        let text = |e: &gst::Element| e.property::<Option<String>>("text").unwrap_or_default();
        let mut st = Shown {
            caption: "C\n".into(),
            epoch_ns: 0,
            second: None,
            segment: None,
            caps: Some(
                "video/x-raw,format=I420,width=320,height=180,framerate=15/1"
                    .parse()
                    .unwrap(),
            ),
            painter: None,
            stamp: None,
            fallback: false,
        };
        paint(&mut st, &overlay, "C\n 12:00:00");
        assert!(st.fallback && st.stamp.is_none());
        assert_eq!(text(&overlay), "C\n 12:00:00", "the overlay draws it");
        st.painter = Some(Painter::new(&overlay).unwrap());
        paint(&mut st, &overlay, "C\n 12:00:01");
        assert!(!st.fallback && st.stamp.is_some(), "a box again");
        assert_eq!(text(&overlay), "", "and the overlay draws nothing");
    }

    #[test]
    fn the_text_is_set_only_when_the_second_shown_changes() {
        let mut st = Shown {
            caption: "C\n".into(),
            epoch_ns: 1_000_000_000_900_000_000,
            second: None,
            segment: None,
            caps: None,
            painter: None,
            stamp: None,
            fallback: false,
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
