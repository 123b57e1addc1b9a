//! Tests of the pipeline descriptions (`describe`).

use super::*;
use gstreamer as gst;
use gstreamer::prelude::*;

#[test]
fn layouts_fit_the_picture() {
    for layout in [1u8, 4, 5, 6] {
        let panes = layout_panes(layout, 1280, 720);
        assert_eq!(panes.len(), layout as usize);
        for (x, y, w, h) in panes {
            assert!(x + w <= 1280 && y + h <= 720);
            assert!(w % 2 == 0 && h % 2 == 0);
        }
    }
    // The judge's pane is the largest in the 5-pane layout.
    let p = layout_panes(5, 1280, 720);
    assert!(p[0].2 > p[1].2 && p[0].3 > p[1].3);
}

#[test]
fn demo_description_names_every_track_sink_and_source() {
    let d = describe(&Config::demo());
    for n in [
        "cam1_rec",
        "cam4_rec",
        "mic1_rec",
        "mic4_rec",
        "composite_rec",
        "composite_audio_rec",
    ] {
        assert!(d.main.contains(&format!("name={n}")), "{n} missing");
    }
    assert_eq!(d.sources.len(), 8);
    assert!(d.sources.iter().all(|s| s.target.is_some()));
    let all = d.text();
    assert!(!all.contains('{'), "unfilled placeholder in:\n{all}");
}

#[test]
fn labels_are_drawn_as_text_not_markup() {
    let text = "[courtroom]\nid = \"c\"\nname = \"C\"\n[[camera]]\nid = \"a\"\nkind = \"test\"\nrole = \"judge\"\n\
                label = \"Judge & <clerk>\"\n[[microphone]]\nid = \"m\"\nkind = \"test\"\nrole = \"judge\"\n";
    let cfg = Config::parse("t.toml", text, None).unwrap();
    let all = describe(&cfg).text();
    assert!(all.contains("text=\"Judge &amp; &lt;clerk&gt;\""), "{all}");
    assert!(
        all.contains("SIGNAL LOST · Judge &amp; &lt;clerk&gt;"),
        "{all}"
    );
}

#[test]
fn a_camera_url_never_enters_the_pipeline_text_and_its_password_is_not_printed() {
    let text = "[courtroom]\nid = \"c\"\nname = \"C\"\n[[camera]]\nid = \"a\"\nkind = \"rtsp\"\nrole = \"judge\"\n\
                url = \"rtsp://user:p!ss word@cam/stream 1 ! fakesink\"\n\
                [[microphone]]\nid = \"m\"\nkind = \"test\"\nrole = \"judge\"\n";
    let cfg = Config::parse("t.toml", text, None).unwrap();
    let d = describe(&cfg);
    // The RTSP client takes the URL as it is; GStreamer never parses it.
    assert!(!d.main.contains("fakesink"), "{}", d.main);
    for s in &d.sources {
        assert!(
            !s.desc.contains("fakesink") && !s.desc.contains("rtsp://"),
            "{}",
            s.desc
        );
    }
    let urls: Vec<_> = d
        .sources
        .iter()
        .filter_map(|s| s.rtsp_url.as_deref())
        .collect();
    assert_eq!(urls, ["rtsp://user:p!ss word@cam/stream 1 ! fakesink"; 2]);
    let all = d.text();
    assert!(!all.contains("p!ss"), "{all}");
    assert!(
        all.contains("RTSP client 'a' <- rtsp://user:***@cam/"),
        "{all}"
    );
}

#[test]
fn every_layout_and_kind_parses_in_gstreamer() {
    if gst::init().is_err() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cam.mp4");
    std::fs::write(&file, b"").unwrap();
    for (layout, enabled, live) in [
        (1, true, true),
        (4, true, true),
        (5, true, true),
        (6, true, true),
        (5, false, true),
        (4, true, false),
        (5, false, false),
    ] {
        let text = format!(
            "[courtroom]\nid = \"c\"\nname = \"C\"\n[composite]\nlayout = {layout}\nenabled = {enabled}\n\
             [livestream]\nenabled = {live}\n\
             [[camera]]\nid = \"a\"\nkind = \"test\"\nrole = \"judge\"\n\
             [[camera]]\nid = \"b\"\nkind = \"rtsp\"\nrole = \"witness\"\nurl = \"rtsp://127.0.0.1:1/x\"\n\
             [[camera]]\nid = \"c\"\nkind = \"rtsp\"\nrole = \"witness\"\nurl = \"rtsp://127.0.0.1:1/y\"\n\
             preview_decoder = \"libav\"\n\
             [[camera]]\nid = \"f\"\nkind = \"file\"\nrole = \"evidence\"\npath = \"{}\"\n\
             [[microphone]]\nid = \"m\"\nkind = \"test\"\nrole = \"judge\"\n\
             [[microphone]]\nid = \"n\"\nkind = \"alsa\"\nrole = \"clerk\"\n",
            file.display()
        );
        let cfg = Config::parse("t.toml", &text, None).unwrap();
        let d = describe(&cfg);
        gst::parse::launch(&d.main).unwrap_or_else(|e| panic!("layout {layout}: {e}\n{}", d.main));
        // Without a composite: no composite track, picture, mix or encoder; the
        // public livestream (when enabled) still has its own picture and mix.
        for name in [
            "name=composite_rec",
            "name=comp ",
            "name=mix",
            " mix.",
            "name=caption",
        ] {
            assert_eq!(
                d.main.contains(name),
                enabled,
                "{name} (composite {enabled})"
            );
        }
        // The public picture and mix, unless the courtroom never streams.
        for name in [
            "name=pub ",
            "name=pub_mix",
            "pub.",
            "pub_mix.",
            "name=live_video",
        ] {
            assert_eq!(d.main.contains(name), live, "{name} (livestream {live})");
        }
        let specs = crate::capture::track_specs(&cfg);
        assert_eq!(specs.iter().any(|s| s.info.name == "composite"), enabled);
        // Each RTSP preview decodes with the camera's decoder (OpenH264 by default).
        let preview = |id: &str| {
            d.sources
                .iter()
                .find(|s| s.id == id && !s.desc.is_empty())
                .map(|s| s.desc.clone())
                .unwrap_or_default()
        };
        assert!(
            preview("b").contains("! openh264dec name=b_pvdec"),
            "{}",
            preview("b")
        );
        assert!(preview("c").contains("! avdec_h264 max-threads=1 name=c_pvdec"));
        // An RTSP camera's main stream has no bin (its RTSP client feeds the track).
        for s in d.sources.iter().filter(|s| !s.desc.is_empty()) {
            gst::parse::bin_from_description(&s.desc, false)
                .unwrap_or_else(|e| panic!("{}: {e}\n{}", s.id, s.desc));
        }
    }
}

/// The demo's moving camera moves (its frames differ from one to the next) and a still
/// pattern is still: what `scroll_px_per_frame` does, seen in the pictures.
#[test]
fn a_scrolling_test_camera_moves_and_a_still_one_does_not() {
    if gst::init().is_err() {
        return;
    }
    let d = describe(&Config::demo());
    let frames = |id: &str| -> Vec<Vec<u8>> {
        let src = d.sources.iter().find(|s| s.id == id).unwrap();
        let desc = src.desc.replace("is-live=true", "num-buffers=3");
        let pipeline = gst::parse::launch(&format!(
            "{desc} ! appsink name=sink sync=false emit-signals=false"
        ))
        .unwrap_or_else(|e| panic!("{id}: {e}\n{desc}"));
        let pipeline = pipeline.downcast::<gst::Pipeline>().unwrap();
        let sink = pipeline
            .by_name("sink")
            .unwrap()
            .downcast::<gstreamer_app::AppSink>()
            .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let mut out = Vec::new();
        while let Ok(sample) = sink.pull_sample() {
            let map = sample.buffer().unwrap().map_readable().unwrap();
            out.push(map.as_slice().to_vec());
        }
        pipeline.set_state(gst::State::Null).unwrap();
        assert_eq!(out.len(), 3, "{id}");
        out
    };
    let moving = frames("cam2");
    assert!(moving[0] != moving[1] && moving[1] != moving[2]);
    let still = frames("cam3");
    assert!(still[0] == still[1] && still[1] == still[2]);
}
