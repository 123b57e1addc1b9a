//! Builds and runs the courtroom's GStreamer pipeline from the templates in
//! `pipelines/`, and hands each track's encoded frames to the [`FrameSink`].

use super::{CaptureControl, Frame, FrameSink, SourceStatus, levels_dbfs};
use crate::config::{CameraKind, Config, MicrophoneKind, Role};
use crate::error::{Error, ErrorKind, Result};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::sync::{Arc, Mutex};

const CAMERA_TEST: &str = include_str!("../../pipelines/camera-test.gst");
const CAMERA_V4L2: &str = include_str!("../../pipelines/camera-v4l2.gst");
const CAMERA_FILE: &str = include_str!("../../pipelines/camera-file.gst");
const CAMERA_RTSP: &str = include_str!("../../pipelines/camera-rtsp.gst");
const CAMERA_RTSP_PREVIEW: &str = include_str!("../../pipelines/camera-rtsp-preview.gst");
const CAMERA_ENCODE: &str = include_str!("../../pipelines/camera-encode.gst");
const CAMERA_PANE: &str = include_str!("../../pipelines/camera-pane.gst");
const MIC_TEST: &str = include_str!("../../pipelines/mic-test.gst");
const MIC_ALSA: &str = include_str!("../../pipelines/mic-alsa.gst");
const MIC_PULSE: &str = include_str!("../../pipelines/mic-pulse.gst");
const MIC_ENCODE: &str = include_str!("../../pipelines/mic-encode.gst");
const COMPOSITE: &str = include_str!("../../pipelines/composite.gst");

/// Fills `{name}` placeholders.
fn fill(template: &str, vars: &[(&str, String)]) -> String {
    let mut s = template.to_string();
    for (k, v) in vars {
        s = s.replace(&format!("{{{k}}}"), v);
    }
    s
}

/// Quotes a value for a gst-launch description (strings with spaces or symbols).
fn quote(s: &str) -> String {
    s.replace(['"', '\\'], "").replace('\n', " ")
}

/// Pane rectangles (x, y, w, h) of a layout on a 3x3 grid: the first pane (the judge)
/// is large; layout 4 is a 2x2 grid; layout 1 is one full picture.
pub fn layout_panes(layout: u8, width: u32, height: u32) -> Vec<(u32, u32, u32, u32)> {
    let even = |v: u32| v & !1;
    match layout {
        1 => vec![(0, 0, width, height)],
        4 => {
            let (w, h) = (even(width / 2), even(height / 2));
            vec![(0, 0, w, h), (w, 0, w, h), (0, h, w, h), (w, h, w, h)]
        }
        _ => {
            let (cw, ch) = (even(width / 3), even(height / 3));
            let mut v = vec![(0, 0, cw * 2, ch * 2)];
            let cells = [(2, 0), (2, 1), (0, 2), (1, 2), (2, 2)];
            let small = if layout == 6 { 5 } else { 4 };
            for (cx, cy) in cells.iter().take(small) {
                v.push((cx * cw, cy * ch, cw, ch));
            }
            v
        }
    }
}

fn role_rank(r: Role) -> u8 {
    match r {
        Role::Judge => 0,
        Role::Plaintiff => 1,
        Role::Defendant => 2,
        Role::Witness => 3,
        Role::Evidence => 4,
        Role::Overview => 5,
        Role::Clerk => 6,
        Role::Other => 7,
    }
}

/// The whole pipeline description for a courtroom.
pub fn describe(cfg: &Config) -> String {
    let mut parts = Vec::new();
    let comp = &cfg.composite;
    let panes = layout_panes(comp.layout, comp.width, comp.height);
    // Cameras in pane order: judges first, then parties, witnesses, evidence, overview.
    let mut order: Vec<usize> = (0..cfg.cameras.len()).collect();
    order.sort_by_key(|&i| (role_rank(cfg.cameras[i].get_ref().role), i));
    let mut pane_of = vec![None; cfg.cameras.len()];
    for (pane, &cam) in order.iter().enumerate().take(panes.len()) {
        pane_of[cam] = Some(pane);
    }
    let mut pane_props = Vec::new();
    for (i, cam) in cfg.cameras().enumerate() {
        let mut vars = vec![
            ("id", cam.id.clone()),
            ("width", cam.width.to_string()),
            ("height", cam.height.to_string()),
            ("fps", cam.fps.to_string()),
            ("bitrate_kbps", cam.bitrate_kbps.to_string()),
            (
                "label",
                quote(if cam.label.is_empty() {
                    &cam.id
                } else {
                    &cam.label
                }),
            ),
            (
                "pattern",
                cam.pattern.clone().unwrap_or_else(|| "smpte".into()),
            ),
            ("url", quote(cam.url.as_deref().unwrap_or(""))),
            (
                "preview_url",
                quote(
                    cam.preview_url
                        .as_deref()
                        .or(cam.url.as_deref())
                        .unwrap_or(""),
                ),
            ),
            (
                "device",
                cam.device
                    .as_ref()
                    .map(|d| d.get_ref().display().to_string())
                    .unwrap_or_default(),
            ),
            (
                "path",
                cam.path
                    .as_ref()
                    .map(|p| p.get_ref().display().to_string())
                    .unwrap_or_default(),
            ),
        ];
        match cam.kind {
            CameraKind::Test => parts.push(fill(CAMERA_TEST, &vars)),
            CameraKind::V4l2 => parts.push(fill(CAMERA_V4L2, &vars)),
            CameraKind::File => parts.push(fill(CAMERA_FILE, &vars)),
            CameraKind::Rtsp => {
                parts.push(fill(CAMERA_RTSP, &vars));
                if pane_of[i].is_some() {
                    parts.push(fill(CAMERA_RTSP_PREVIEW, &vars));
                }
            }
        }
        if cam.kind != CameraKind::Rtsp {
            parts.push(fill(CAMERA_ENCODE, &vars));
        }
        if let Some(pane) = pane_of[i] {
            let (x, y, w, h) = panes[pane];
            vars.push(("pane", pane.to_string()));
            vars.push(("pane_width", w.to_string()));
            vars.push(("pane_height", h.to_string()));
            parts.push(fill(CAMERA_PANE, &vars));
            pane_props.push(format!("sink_{pane}::xpos={x} sink_{pane}::ypos={y}"));
        } else if cam.kind != CameraKind::Rtsp {
            // Not in the composite: nothing else reads the raw picture.
        }
    }
    for mic in cfg.microphones() {
        let freq = mic.freq_hz.unwrap_or(440.0);
        let vars = vec![
            ("id", mic.id.clone()),
            ("freq", format!("{freq}")),
            // A 100 ms beep each second, in step with the test cameras' flash.
            (
                "beep_periods",
                format!("{}", (freq / 10.0).round().max(1.0) as u64),
            ),
            ("bitrate", (mic.bitrate_kbps * 1000).to_string()),
            (
                "device_prop",
                mic.device
                    .as_deref()
                    .map(|d| format!("device=\"{}\"", quote(d)))
                    .unwrap_or_default(),
            ),
        ];
        parts.push(match mic.kind {
            MicrophoneKind::Test => fill(MIC_TEST, &vars),
            MicrophoneKind::Alsa => fill(MIC_ALSA, &vars),
            MicrophoneKind::Pulse => fill(MIC_PULSE, &vars),
        });
        parts.push(fill(MIC_ENCODE, &vars));
    }
    parts.push(fill(
        COMPOSITE,
        &[
            ("width", comp.width.to_string()),
            ("height", comp.height.to_string()),
            ("fps", comp.fps.to_string()),
            ("bitrate_kbps", comp.bitrate_kbps.to_string()),
            (
                "audio_bitrate",
                (comp.audio_bitrate_kbps * 1000).to_string(),
            ),
            ("caption", quote(&cfg.courtroom.name)),
            ("pane_props", pane_props.join(" ")),
        ],
    ));
    parts.join("\n")
}

/// The running capture pipeline.
pub struct Capture {
    pipeline: gst::Pipeline,
    /// Appsinks of video tracks, for keyframe requests.
    video_sinks: Vec<gst_app::AppSink>,
    caption: Option<gst::Element>,
    _bus_thread: Option<std::thread::JoinHandle<()>>,
}

/// Running-time timestamps of a buffer.
fn running_times(sample: &gst::Sample, buf: &gst::BufferRef) -> Option<(i64, Option<i64>)> {
    let seg = sample.segment()?.downcast_ref::<gst::ClockTime>()?;
    let pts = seg.to_running_time(buf.pts().or(buf.dts())?)?;
    let dts = buf.dts().and_then(|d| seg.to_running_time(d));
    Some((pts.nseconds() as i64, dts.map(|d| d.nseconds() as i64)))
}

impl Capture {
    /// Builds the pipeline and starts it. Frames of track `i` (in
    /// [`super::track_specs`] order) go to `sink.push(i, ..)`.
    pub fn start(
        cfg: &Config,
        sink: Arc<dyn FrameSink>,
        status: Arc<SourceStatus>,
    ) -> Result<Capture> {
        gst::init().map_err(|e| Error::new(ErrorKind::Unavailable, format!("GStreamer: {e}")))?;
        let desc = describe(cfg);
        let pipeline = gst::parse::launch(&desc)
            .map_err(|e| {
                Error::new(
                    ErrorKind::Unavailable,
                    format!("cannot build the capture pipeline ({e}); is a GStreamer plugin missing? Run `courtrec pipeline` to see it"),
                )
            })?
            .downcast::<gst::Pipeline>()
            .map_err(|_| Error::new(ErrorKind::Internal, "pipeline description is not a pipeline"))?;

        let specs = super::track_specs(cfg);
        let mut video_sinks = Vec::new();
        for (track, spec) in specs.iter().enumerate() {
            let mut names = vec![(format!("{}_rec", spec.info.name), 0usize)];
            if spec.streams.len() > 1 {
                names.push((format!("{}_audio_rec", spec.info.name), 1));
            }
            for (name, stream) in names {
                let appsink = pipeline
                    .by_name(&name)
                    .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::Internal,
                            format!("pipeline has no appsink {name}"),
                        )
                    })?;
                if spec.streams[stream] == crate::recording::tsmux::StreamType::H264 {
                    video_sinks.push(appsink.clone());
                }
                let sink = sink.clone();
                let status = status.clone();
                let src_idx = if track < cfg.cameras.len() {
                    Some(track)
                } else {
                    None
                };
                appsink.set_callbacks(
                    gst_app::AppSinkCallbacks::builder()
                        .new_sample(move |s| {
                            let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                            let Some(buf) = sample.buffer_owned() else {
                                return Ok(gst::FlowSuccess::Ok);
                            };
                            let Some((pts, dts)) = running_times(&sample, &buf) else {
                                return Ok(gst::FlowSuccess::Ok);
                            };
                            if let Some(i) = src_idx {
                                status.saw_buffer(i);
                            }
                            let keyframe = !buf.flags().contains(gst::BufferFlags::DELTA_UNIT);
                            let duration_ns = buf.duration().map(|d| d.nseconds()).unwrap_or(0);
                            let Ok(map) = buf.into_mapped_buffer_readable() else {
                                return Ok(gst::FlowSuccess::Ok);
                            };
                            sink.push(
                                track,
                                Frame {
                                    stream,
                                    pts_ns: pts,
                                    dts_ns: dts,
                                    duration_ns,
                                    keyframe,
                                    data: Box::new(map),
                                },
                            );
                            Ok(gst::FlowSuccess::Ok)
                        })
                        .build(),
                );
            }
        }

        // Microphone levels: measured on the raw audio entering each microphone's tee.
        for (m, mic) in cfg.microphones().enumerate() {
            let idx = cfg.cameras.len() + m;
            let Some(pad) = pipeline
                .by_name(&format!("{}_raw", mic.id))
                .and_then(|t| t.static_pad("sink"))
            else {
                continue;
            };
            let status = status.clone();
            let window = Mutex::new((0i16, 0f64, 0usize));
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(buf) = info.buffer()
                    && let Ok(map) = buf.map_readable()
                {
                    let samples: Vec<i16> = map
                        .chunks_exact(2)
                        .map(|b| i16::from_le_bytes([b[0], b[1]]))
                        .collect();
                    if let Ok(mut w) = window.lock() {
                        // Accumulate 100 ms windows, so a short beep is not missed.
                        for s in &samples {
                            w.0 = w.0.max(s.saturating_abs());
                            w.1 += (*s as f64) * (*s as f64);
                        }
                        w.2 += samples.len();
                        if w.2 >= 4800 {
                            let peak = levels_dbfs(&[w.0]).0;
                            let rms = if w.1 <= 0.0 {
                                -100.0
                            } else {
                                (20.0 * ((w.1 / w.2 as f64).sqrt() / 32768.0).log10()).max(-100.0)
                            };
                            status.saw_level(idx, peak, rms);
                            *w = (0, 0.0, 0);
                        }
                    }
                }
                gst::PadProbeReturn::Ok
            });
        }

        // Test cameras flash a white square for 100 ms each second, in step with the
        // test microphones' beep, so audio/video sync can be measured on the recording.
        for cam in cfg.cameras().filter(|c| c.kind == CameraKind::Test) {
            let Some(pad) = pipeline
                .by_name(&format!("{}_flash", cam.id))
                .and_then(|e| e.static_pad("src"))
            else {
                continue;
            };
            let (w, h) = (cam.width as usize, cam.height as usize);
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(buf) = info.buffer_mut() {
                    let in_flash = buf
                        .pts()
                        .is_some_and(|p| p.nseconds() % 1_000_000_000 < 100_000_000);
                    if in_flash {
                        let b = buf.make_mut();
                        if let Ok(mut map) = b.map_writable() {
                            // I420: the Y plane comes first, stride rounded up to 4.
                            let stride = (w + 3) & !3;
                            let side = (h / 6).max(8);
                            for y in 0..side {
                                let row = y * stride;
                                let start = row + w - side;
                                if let Some(px) = map.get_mut(start..row + w) {
                                    px.fill(235);
                                }
                            }
                        }
                    }
                }
                gst::PadProbeReturn::Ok
            });
        }

        let caption = pipeline.by_name("caption");
        let bus = pipeline
            .bus()
            .ok_or_else(|| Error::new(ErrorKind::Internal, "pipeline has no bus"))?;
        let bus_status = status.clone();
        let bus_thread = std::thread::Builder::new()
            .name("capture-bus".into())
            .spawn(move || watch_bus(bus, bus_status))
            .ok();
        pipeline.set_state(gst::State::Playing).map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!("cannot start the capture pipeline: {e}"),
            )
        })?;
        Ok(Capture {
            pipeline,
            video_sinks,
            caption,
            _bus_thread: bus_thread,
        })
    }

    /// Waits until the pipeline runs (its clock gives a running time).
    pub fn wait_running(&self, timeout: std::time::Duration) -> Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if self.running_time_ns().is_some() {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Err(Error::new(
            ErrorKind::Unavailable,
            "the capture pipeline did not start",
        ))
    }

    pub fn stop(&self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl CaptureControl for Capture {
    fn running_time_ns(&self) -> Option<i64> {
        self.pipeline
            .current_running_time()
            .map(|t| t.nseconds() as i64)
    }

    fn request_keyframes(&self, at_rt_ns: i64) {
        for sink in &self.video_sinks {
            let s = gst::Structure::builder("GstForceKeyUnit")
                .field("running-time", at_rt_ns.max(0) as u64)
                .field("all-headers", true)
                .field("count", 0u32)
                .build();
            if let Some(pad) = sink.static_pad("sink") {
                pad.push_event(gst::event::CustomUpstream::new(s));
            }
        }
    }

    fn set_caption(&self, text: &str) {
        if let Some(c) = &self.caption {
            c.set_property("text", text);
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Logs pipeline errors and warnings and attributes them to the source they come from.
fn watch_bus(bus: gst::Bus, status: Arc<SourceStatus>) {
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        use gst::MessageView;
        match msg.view() {
            MessageView::Error(e) => {
                let src = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
                tracing::error!(element = %src, "capture error: {} ({:?})", e.error(), e.debug());
                if let Some(id) = src.split('_').next() {
                    status.set_error(id, e.error().to_string());
                }
            }
            MessageView::Warning(w) => {
                let src = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
                tracing::warn!(element = %src, "capture warning: {}", w.error());
            }
            MessageView::Eos(_) => {
                tracing::warn!("capture pipeline reached end of stream");
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn demo_description_names_every_track_sink() {
        let d = describe(&Config::demo());
        for n in [
            "cam1_rec",
            "cam4_rec",
            "mic1_rec",
            "mic4_rec",
            "composite_rec",
            "composite_audio_rec",
        ] {
            assert!(d.contains(&format!("name={n}")), "{n} missing");
        }
        assert!(!d.contains('{'), "unfilled placeholder in:\n{d}");
    }
}
