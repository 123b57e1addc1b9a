//! The time burned into the composite and the public picture: GStreamer's
//! `timeoverlay` showing each frame's running time counted from a wall-clock epoch the
//! daemon sets (see `archive::wallclock`). Unlike `clockoverlay` (which reads the
//! system clock as it draws), a frame's burned-in time is then exactly the wall-clock
//! time the recording gives its media time, and a clock step moves both at the
//! `clock_step` event, never one without the other.

use gstreamer as gst;
use gstreamer::prelude::*;

/// Makes the overlays count from `epoch_ns` (Unix ns), shown in the box's time zone.
pub(super) fn apply_epoch(clocks: &[gst::Element], epoch_ns: i64) {
    let us = epoch_ns.div_euclid(1_000);
    let dt = gst::glib::DateTime::from_unix_local(us.div_euclid(1_000_000)).and_then(|d| {
        d.add(gst::glib::TimeSpan::from_microseconds(
            us.rem_euclid(1_000_000),
        ))
    });
    match dt {
        Ok(dt) => {
            for c in clocks {
                c.set_property("datetime-epoch", &dt);
            }
        }
        Err(e) => tracing::error!("cannot set the burned-in clock to {epoch_ns} ns: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The composite template's overlay (its text is set once built).
    fn overlay_line() -> String {
        let t = include_str!("../../pipelines/composite.gst");
        let line = t
            .lines()
            .find(|l| l.contains("timeoverlay"))
            .expect("composite.gst burns the time in with timeoverlay");
        line.trim_start_matches([' ', '!']).replace("{caption}", "")
    }

    /// The first frame (running time 0) out of `overlay` over a black picture, its
    /// text set to `text` (as `set_caption` sets it).
    fn frame(overlay: &str, text: &str, epoch_ns: Option<i64>) -> Vec<u8> {
        gst::init().unwrap();
        let p = gst::parse::launch(&format!(
            "videotestsrc pattern=black num-buffers=1 ! video/x-raw,format=I420,width=640,height=360,framerate=25/1 ! {overlay} ! appsink name=out"
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let caption = p.by_name("caption").unwrap();
        caption.set_property("text", text);
        if let Some(e) = epoch_ns {
            apply_epoch(&[caption], e);
        }
        let sink = p
            .by_name("out")
            .unwrap()
            .downcast::<gstreamer_app::AppSink>()
            .unwrap();
        p.set_state(gst::State::Playing).unwrap();
        let sample = sink.pull_sample().unwrap();
        p.set_state(gst::State::Null).unwrap();
        sample.buffer().unwrap().map_readable().unwrap().to_vec()
    }

    /// What the overlay must draw: the same text drawn by `textoverlay` with the same
    /// placement and font (timeoverlay writes "<text> <time>").
    fn expected(caption: &str, epoch_ns: i64) -> Vec<u8> {
        let local = chrono::DateTime::from_timestamp_nanos(epoch_ns).with_timezone(&chrono::Local);
        let text = format!("{caption}\n {}", local.format("%Y-%m-%d %H:%M:%S"));
        let line = overlay_line()
            .replace("timeoverlay", "textoverlay")
            .replace(" time-mode=running-time", "")
            .replace(" show-times-as-dates=true", "")
            .replace(" datetime-format=\"%Y-%m-%d %H:%M:%S\"", "");
        frame(&line, &text, None)
    }

    #[test]
    fn the_burned_in_time_is_the_epoch_plus_the_running_time() {
        let epoch_ns = 1_795_773_600_250_000_000; // 2026-11-27 08:00:00.25 UTC
        let caption = "(2026)X0101民初1号";
        let text = format!("{caption}\n");
        let drawn = frame(&overlay_line(), &text, Some(epoch_ns));
        assert!(
            drawn == expected(caption, epoch_ns),
            "frame 0 shows the epoch's time"
        );
        assert!(
            drawn != expected(caption, epoch_ns + 1_000_000_000),
            "a second off is told apart"
        );
        // A step moves it: an hour later is drawn differently, and as expected.
        let later = epoch_ns + 3_600_000_000_000;
        let drawn_later = frame(&overlay_line(), &text, Some(later));
        assert!(drawn_later != drawn, "an hour later looks different");
        assert!(
            drawn_later == expected(caption, later),
            "and shows that hour"
        );
    }
}
