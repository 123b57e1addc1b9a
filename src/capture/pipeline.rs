//! Builds and runs the courtroom's GStreamer pipeline from the templates in
//! `pipelines/`, hands each track's encoded frames to the [`FrameSink`], and keeps
//! sources alive.
//!
//! Settings (what the config asks for: [`Description`]) are kept apart from state (the
//! running bins: [`Slot`]). Each source is a bin of its own, linked into a fallback
//! mixer that always produces output ("signal lost" card, or silence); when a source
//! fails or ends, the supervisor removes its bin and builds a new one, with back-off,
//! while every track goes on recording.

use super::{CaptureControl, Frame, FrameSink, SourceStatus, levels_dbfs};
use crate::config::{CameraKind, Config, MicrophoneKind, Role, TestWave};
use crate::error::{Error, ErrorKind, Result};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CAMERA_SLOT: &str = include_str!("../../pipelines/camera-slot.gst");
const CAMERA_TEST: &str = include_str!("../../pipelines/camera-test.gst");
const CAMERA_V4L2: &str = include_str!("../../pipelines/camera-v4l2.gst");
const CAMERA_FILE: &str = include_str!("../../pipelines/camera-file.gst");
const CAMERA_RTSP: &str = include_str!("../../pipelines/camera-rtsp.gst");
const CAMERA_RTSP_PREVIEW: &str = include_str!("../../pipelines/camera-rtsp-preview.gst");
const CAMERA_RECORD: &str = include_str!("../../pipelines/camera-record.gst");
const CAMERA_RTSP_FALLBACK: &str = include_str!("../../pipelines/camera-rtsp-fallback.gst");
const CAMERA_PANE: &str = include_str!("../../pipelines/camera-pane.gst");
const MIC_SLOT: &str = include_str!("../../pipelines/mic-slot.gst");
const MIC_TEST: &str = include_str!("../../pipelines/mic-test.gst");
const MIC_ALSA: &str = include_str!("../../pipelines/mic-alsa.gst");
const MIC_PULSE: &str = include_str!("../../pipelines/mic-pulse.gst");
const MIC_RECORD: &str = include_str!("../../pipelines/mic-record.gst");
const COMPOSITE: &str = include_str!("../../pipelines/composite.gst");
const PREVIEW: &str = include_str!("../../pipelines/preview.gst");
const PUBLIC: &str = include_str!("../../pipelines/public.gst");
const PUBLIC_PANE: &str = include_str!("../../pipelines/public-pane.gst");
const PUBLIC_MIC: &str = include_str!("../../pipelines/public-mic.gst");

/// The public livestream's picture: small, so one more encode fits a 2-core box.
pub const PUBLIC_WIDTH: u32 = 640;
pub const PUBLIC_HEIGHT: u32 = 360;

/// Preview stills per second (the console polls them; the meters are what moves fast).
const PREVIEW_RATE: u32 = 2;

/// Fills the preview branch of `id` at `width` pixels wide (even height, same aspect).
fn preview(id: &str, width: u32, src_w: u32, src_h: u32) -> String {
    let height = ((width * src_h / src_w.max(1)) / 2 * 2).max(2);
    fill(
        PREVIEW,
        &[
            ("id", id.to_string()),
            ("rate", PREVIEW_RATE.to_string()),
            ("width", width.to_string()),
            ("height", height.to_string()),
        ],
    )
}

/// Longest wait between two attempts to restart a failed source.
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// Fills `{name}` placeholders.
fn fill(template: &str, vars: &[(&str, String)]) -> String {
    let mut s = template.to_string();
    for (k, v) in vars {
        s = s.replace(&format!("{{{k}}}"), v);
    }
    s
}

/// Makes a value safe inside a quoted gst-launch string.
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

/// What a source bin does when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnEnd {
    /// A live device or stream ending is a failure: restart with back-off.
    Fail,
    /// A media file played as a camera: start it again at once (a loop).
    Loop,
}

/// One source bin to build (and rebuild after a failure).
#[derive(Debug, Clone)]
pub struct SourceDef {
    /// Source id (camera or microphone id), for logs.
    pub id: String,
    /// Index in [`SourceStatus`] this bin reports to (None for an RTSP preview, whose
    /// health is the main stream's).
    pub status_idx: Option<usize>,
    /// The bin's description.
    pub desc: String,
    /// The fallback mixer its output is linked into (None when it ends in an appsink).
    pub target: Option<String>,
    /// True for compositor targets (the source goes on top of the card).
    pub video: bool,
    pub on_end: OnEnd,
    /// Test cameras: paint the sync flash (width, height).
    pub flash: Option<(usize, usize)>,
    /// RTSP main stream: the track its appsink feeds.
    pub rtsp_track: Option<usize>,
}

/// The whole pipeline: the main description and the source bins.
#[derive(Debug, Clone)]
pub struct Description {
    pub main: String,
    pub sources: Vec<SourceDef>,
}

impl Description {
    /// Human-readable form for `courtrec pipeline`.
    pub fn text(&self) -> String {
        let mut s = format!("# main pipeline\n{}\n", self.main);
        for src in &self.sources {
            let to = src
                .target
                .as_deref()
                .map(|t| format!(" -> {t}"))
                .unwrap_or_default();
            s.push_str(&format!(
                "\n# source bin '{}'{to}\n{}\n",
                src.id,
                src.desc.trim()
            ));
        }
        s
    }
}

/// Builds the pipeline description for a courtroom.
pub fn describe(cfg: &Config) -> Description {
    let mut main = Vec::new();
    let mut sources = Vec::new();
    let comp = &cfg.composite;
    let panes = layout_panes(comp.layout, comp.width, comp.height);
    let pub_panes = layout_panes(comp.layout, PUBLIC_WIDTH, PUBLIC_HEIGHT);
    let mut pub_props = Vec::new();
    // Cameras in pane order: judges first, then parties, witnesses, evidence, overview.
    let mut order: Vec<usize> = (0..cfg.cameras.len()).collect();
    order.sort_by_key(|&i| (role_rank(cfg.cameras[i].get_ref().role), i));
    let mut pane_of = vec![None; cfg.cameras.len()];
    for (pane, &cam) in order.iter().enumerate().take(panes.len()) {
        pane_of[cam] = Some(pane);
    }
    let mut pane_props = Vec::new();
    for (i, cam) in cfg.cameras().enumerate() {
        let label = quote(if cam.label.is_empty() {
            &cam.id
        } else {
            &cam.label
        });
        let mut vars = vec![
            ("id", cam.id.clone()),
            ("width", cam.width.to_string()),
            ("height", cam.height.to_string()),
            ("fps", cam.fps.to_string()),
            ("bitrate_kbps", cam.bitrate_kbps.to_string()),
            ("label", label),
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
                format!(
                    "\"{}\"",
                    quote(
                        &cam.path
                            .as_ref()
                            .map(|p| p.get_ref().display().to_string())
                            .unwrap_or_default()
                    )
                ),
            ),
        ];
        main.push(fill(CAMERA_SLOT, &vars));
        let slot_source = |desc: String, on_end: OnEnd, flash| SourceDef {
            id: cam.id.clone(),
            status_idx: Some(i),
            desc,
            target: Some(format!("{}_fb", cam.id)),
            video: true,
            on_end,
            flash,
            rtsp_track: None,
        };
        match cam.kind {
            CameraKind::Test => sources.push(slot_source(
                fill(CAMERA_TEST, &vars),
                OnEnd::Fail,
                Some((cam.width as usize, cam.height as usize)),
            )),
            CameraKind::V4l2 => {
                sources.push(slot_source(fill(CAMERA_V4L2, &vars), OnEnd::Fail, None))
            }
            CameraKind::File => {
                sources.push(slot_source(fill(CAMERA_FILE, &vars), OnEnd::Loop, None))
            }
            CameraKind::Rtsp => {
                sources.push(SourceDef {
                    id: cam.id.clone(),
                    status_idx: Some(i),
                    desc: fill(CAMERA_RTSP, &vars),
                    target: None,
                    video: true,
                    on_end: OnEnd::Fail,
                    flash: None,
                    rtsp_track: Some(i),
                });
                sources.push(SourceDef {
                    status_idx: None,
                    ..slot_source(fill(CAMERA_RTSP_PREVIEW, &vars), OnEnd::Fail, None)
                });
            }
        }
        if cam.kind == CameraKind::Rtsp {
            main.push(fill(CAMERA_RTSP_FALLBACK, &vars));
        } else {
            main.push(fill(CAMERA_RECORD, &vars));
        }
        main.push(preview(&cam.id, 320, cam.width, cam.height));
        if let Some(pane) = pane_of[i] {
            let (x, y, w, h) = panes[pane];
            vars.push(("pane", pane.to_string()));
            vars.push(("pane_width", w.to_string()));
            vars.push(("pane_height", h.to_string()));
            main.push(fill(CAMERA_PANE, &vars));
            pane_props.push(format!("sink_{pane}::xpos={x} sink_{pane}::ypos={y}"));
            let (px, py, pw, ph) = pub_panes[pane];
            main.push(fill(
                PUBLIC_PANE,
                &[
                    ("id", cam.id.clone()),
                    ("pane", pane.to_string()),
                    ("pane_width", pw.to_string()),
                    ("pane_height", ph.to_string()),
                ],
            ));
            pub_props.push(format!("sink_{pane}::xpos={px} sink_{pane}::ypos={py}"));
        }
    }
    for (m, mic) in cfg.microphones().enumerate() {
        let freq = mic.freq_hz.unwrap_or(440.0);
        let vars = vec![
            ("id", mic.id.clone()),
            ("freq", format!("{freq}")),
            (
                "wave",
                mic.wave.unwrap_or(TestWave::Ticks).gst_name().to_string(),
            ),
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
        main.push(fill(MIC_SLOT, &vars));
        main.push(fill(MIC_RECORD, &vars));
        // Into the public mix on pad m + 1 (pad 0 is silence), so it can be muted.
        main.push(fill(
            PUBLIC_MIC,
            &[("id", mic.id.clone()), ("pad", (m + 1).to_string())],
        ));
        sources.push(SourceDef {
            id: mic.id.clone(),
            status_idx: Some(cfg.cameras.len() + m),
            desc: match mic.kind {
                MicrophoneKind::Test => fill(MIC_TEST, &vars),
                MicrophoneKind::Alsa => fill(MIC_ALSA, &vars),
                MicrophoneKind::Pulse => fill(MIC_PULSE, &vars),
            },
            target: Some(format!("{}_fb", mic.id)),
            video: false,
            on_end: OnEnd::Fail,
            flash: None,
            rtsp_track: None,
        });
    }
    main.push(fill(
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
            ("caption", format!("{}\n", quote(&cfg.courtroom.name))),
            ("pane_props", pane_props.join(" ")),
        ],
    ));
    main.push(preview("composite", 640, comp.width, comp.height));
    main.push(fill(
        PUBLIC,
        &[
            ("width", PUBLIC_WIDTH.to_string()),
            ("height", PUBLIC_HEIGHT.to_string()),
            ("fps", comp.fps.to_string()),
            ("gop", (comp.fps * 2).to_string()),
            ("bitrate_kbps", "800".to_string()),
            ("caption", quote(&cfg.courtroom.name)),
            ("card", "16".to_string()),
            ("pane_props", pub_props.join(" ")),
        ],
    ));
    Description {
        main: main.join("\n"),
        sources,
    }
}

/// Running-time timestamps of a buffer.
fn running_times(sample: &gst::Sample, buf: &gst::BufferRef) -> Option<(i64, Option<i64>)> {
    let seg = sample.segment()?.downcast_ref::<gst::ClockTime>()?;
    let pts = seg.to_running_time(buf.pts().or(buf.dts())?)?;
    let dts = buf.dts().and_then(|d| seg.to_running_time(d));
    Some((pts.nseconds() as i64, dts.map(|d| d.nseconds() as i64)))
}

/// Which of an RTSP camera's two encodings feeds its track.
#[derive(Default)]
struct RtspSwitch {
    /// True while the camera is lost and the fallback encoder feeds the track.
    on_fallback: AtomicBool,
    /// The next forwarded frame starts a new segment.
    cut_next: AtomicBool,
}

/// Where an appsink's frames go.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Feed {
    Plain,
    RtspMain,
    RtspFallback,
}

struct Shared {
    pipeline: gst::Pipeline,
    sink: Arc<dyn FrameSink>,
    status: Arc<SourceStatus>,
    switches: Vec<Option<RtspSwitch>>,
}

impl Shared {
    fn attach_appsink(
        self: &Arc<Self>,
        appsink: &gst_app::AppSink,
        track: usize,
        stream: usize,
        feed: Feed,
    ) {
        let this = self.clone();
        appsink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    this.on_sample(sample, track, stream, feed);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    }

    fn on_sample(&self, sample: gst::Sample, track: usize, stream: usize, feed: Feed) {
        let Some(buf) = sample.buffer_owned() else {
            return;
        };
        let Some((pts, dts)) = running_times(&sample, &buf) else {
            return;
        };
        let keyframe = !buf.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let mut discont = false;
        if let Some(sw) = self.switches.get(track).and_then(|s| s.as_ref()) {
            match feed {
                Feed::RtspMain => {
                    self.status.saw_buffer(track);
                    if sw.on_fallback.load(Ordering::Acquire) {
                        if !keyframe {
                            return; // keep the card until the camera's next keyframe
                        }
                        sw.on_fallback.store(false, Ordering::Release);
                        self.set_valve(track, true);
                        discont = true;
                    }
                }
                Feed::RtspFallback => {
                    if !sw.on_fallback.load(Ordering::Acquire) {
                        return;
                    }
                    if sw.cut_next.load(Ordering::Acquire) {
                        if !keyframe {
                            return;
                        }
                        sw.cut_next.store(false, Ordering::Release);
                        discont = true;
                    }
                }
                Feed::Plain => {}
            }
        }
        let duration_ns = buf.duration().map(|d| d.nseconds()).unwrap_or(0);
        let Ok(map) = buf.into_mapped_buffer_readable() else {
            return;
        };
        self.sink.push(
            track,
            Frame {
                stream,
                pts_ns: pts,
                dts_ns: dts,
                duration_ns,
                keyframe,
                discont,
                data: Box::new(map),
            },
        );
    }

    /// Opens (drop = false) or closes the fallback encoder of an RTSP camera.
    fn set_valve(&self, track: usize, drop: bool) {
        let name = self
            .status
            .snapshot()
            .get(track)
            .map(|s| format!("{}_fbvalve", s.id))
            .unwrap_or_default();
        if let Some(v) = self.pipeline.by_name(&name) {
            v.set_property("drop", drop);
        }
    }
}

/// A running source bin.
struct Slot {
    def: SourceDef,
    bin: Option<gst::Bin>,
    target_pad: Option<gst::Pad>,
    /// When to try again after a failure (None: running).
    retry_at: Option<Instant>,
    backoff: Duration,
    started: Instant,
}

enum SupervisorMsg {
    /// A source bin failed (error) or ended (EOS).
    Ended {
        slot: usize,
        reason: String,
        eos: bool,
    },
}

/// The running capture pipeline.
pub struct Capture {
    shared: Arc<Shared>,
    /// The public picture's pads (camera id → pane pad, `"paused"` → the card) and the
    /// public mix's (microphone id → pad), to leave sources out and pause the stream.
    public_pads: Vec<(String, gst::Pad)>,
    /// Appsinks of video tracks, for keyframe requests.
    video_sinks: Vec<gst_app::AppSink>,
    caption: Option<gst::Element>,
    slots: Arc<Mutex<Vec<Slot>>>,
    stopping: Arc<AtomicBool>,
}

impl Capture {
    /// Builds the pipeline and starts it. Frames of track `i` (in
    /// [`super::track_specs`] order) go to `sink.push(i, ..)`.
    pub fn start(
        cfg: &Config,
        sink: Arc<dyn FrameSink>,
        status: Arc<SourceStatus>,
        previews: Arc<super::Previews>,
    ) -> Result<Capture> {
        gst::init().map_err(|e| Error::new(ErrorKind::Unavailable, format!("GStreamer: {e}")))?;
        let desc = describe(cfg);
        let pipeline = gst::parse::launch(&desc.main)
            .map_err(|e| {
                Error::new(
                    ErrorKind::Unavailable,
                    format!("cannot build the capture pipeline ({e}); is a GStreamer plugin missing? `courtrec pipeline` prints it"),
                )
            })?
            .downcast::<gst::Pipeline>()
            .map_err(|_| Error::new(ErrorKind::Internal, "pipeline description is not a pipeline"))?;
        let specs = super::track_specs(cfg);
        let shared = Arc::new(Shared {
            pipeline: pipeline.clone(),
            sink,
            status: status.clone(),
            switches: cfg
                .cameras()
                .map(|c| (c.kind == CameraKind::Rtsp).then(RtspSwitch::default))
                .chain(std::iter::repeat_with(|| None).take(specs.len()))
                .collect(),
        });

        let mut video_sinks = Vec::new();
        for (track, spec) in specs.iter().enumerate() {
            let rtsp = shared.switches.get(track).is_some_and(|s| s.is_some());
            let mut names = vec![(format!("{}_rec", spec.info.name), 0usize, Feed::Plain)];
            if spec.streams.len() > 1 {
                names.push((format!("{}_audio_rec", spec.info.name), 1, Feed::Plain));
            }
            if rtsp {
                // The camera's own H.264 appsink lives in its source bin (attached when
                // the bin is built); the main pipeline holds the fallback encoder.
                names = vec![(
                    format!("{}_fallback", spec.info.name),
                    0,
                    Feed::RtspFallback,
                )];
            }
            for (name, stream, feed) in names {
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
                shared.attach_appsink(&appsink, track, stream, feed);
            }
        }

        // Preview stills for the console: the latest JPEG of each camera and the composite.
        for name in cfg
            .cameras()
            .map(|c| c.id.clone())
            .chain(std::iter::once("composite".to_string()))
        {
            if let Some(appsink) = pipeline
                .by_name(&format!("{name}_preview"))
                .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            {
                let previews = previews.clone();
                appsink.set_callbacks(
                    gst_app::AppSinkCallbacks::builder()
                        .new_sample(move |s| {
                            let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                            if let Some(buf) = sample.buffer()
                                && let Ok(map) = buf.map_readable()
                            {
                                previews.put(&name, map.to_vec());
                            }
                            Ok(gst::FlowSuccess::Ok)
                        })
                        .build(),
                );
            }
        }

        // The public picture and mix: which pad is whose.
        let mut public_pads = Vec::new();
        let comp = &cfg.composite;
        let mut order: Vec<usize> = (0..cfg.cameras.len()).collect();
        order.sort_by_key(|&i| (role_rank(cfg.cameras[i].get_ref().role), i));
        let n_panes = layout_panes(comp.layout, PUBLIC_WIDTH, PUBLIC_HEIGHT).len();
        if let Some(pubc) = pipeline.by_name("pub") {
            for (pane, &cam) in order.iter().enumerate().take(n_panes) {
                if let Some(pad) = pubc.static_pad(&format!("sink_{pane}")) {
                    public_pads.push((cfg.cameras[cam].get_ref().id.clone(), pad));
                }
            }
            if let Some(pad) = pubc.static_pad("sink_16") {
                public_pads.push(("paused".to_string(), pad));
            }
        }
        if let Some(mix) = pipeline.by_name("pub_mix") {
            for (m, mic) in cfg.microphones().enumerate() {
                if let Some(pad) = mix.static_pad(&format!("sink_{}", m + 1)) {
                    public_pads.push((mic.id.clone(), pad));
                }
            }
        }

        // Microphone levels: measured on the raw audio leaving each microphone's slot.
        for (m, mic) in cfg.microphones().enumerate() {
            let idx = cfg.cameras.len() + m;
            if let Some(pad) = pipeline
                .by_name(&format!("{}_raw", mic.id))
                .and_then(|t| t.static_pad("sink"))
            {
                add_level_probe(&pad, status.clone(), idx);
            }
        }

        let (tx, rx) = mpsc::channel();
        let mut slots = Vec::new();
        for def in desc.sources {
            slots.push(Slot {
                def,
                bin: None,
                target_pad: None,
                retry_at: None,
                backoff: Duration::from_secs(1),
                started: Instant::now(),
            });
        }
        for (i, slot) in slots.iter_mut().enumerate() {
            if let Err(e) = build_slot(&shared, slot, i, &tx) {
                tracing::error!(source = %slot.def.id, "cannot start source: {e}");
                teardown_slot(&shared, slot);
                slot.retry_at = Some(Instant::now() + slot.backoff);
            }
        }
        let slots = Arc::new(Mutex::new(slots));
        let caption = pipeline.by_name("caption");
        let bus = pipeline
            .bus()
            .ok_or_else(|| Error::new(ErrorKind::Internal, "pipeline has no bus"))?;
        let stopping = Arc::new(AtomicBool::new(false));
        {
            let slots = slots.clone();
            let tx = tx.clone();
            let pipeline_for_bus = pipeline.clone();
            std::thread::Builder::new()
                .name("capture-bus".into())
                .spawn(move || watch_bus(bus, pipeline_for_bus, slots, tx))
                .map_err(|e| Error::new(ErrorKind::Internal, format!("bus thread: {e}")))?;
        }
        {
            let slots = slots.clone();
            let shared = shared.clone();
            let stopping = stopping.clone();
            let lost_after = Duration::from_millis(cfg.alarms.source_lost_ms);
            std::thread::Builder::new()
                .name("capture-supervisor".into())
                .spawn(move || supervise(shared, slots, rx, tx, stopping, lost_after))
                .map_err(|e| Error::new(ErrorKind::Internal, format!("supervisor thread: {e}")))?;
        }
        pipeline.set_state(gst::State::Playing).map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!("cannot start the capture pipeline: {e}"),
            )
        })?;
        Ok(Capture {
            shared,
            public_pads,
            video_sinks,
            caption,
            slots,
            stopping,
        })
    }

    /// Waits until the pipeline runs (its clock gives a running time).
    pub fn wait_running(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.running_time_ns().is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(Error::new(
            ErrorKind::Unavailable,
            "the capture pipeline did not start",
        ))
    }

    /// Hands the public stream's encoded frames (H.264 byte-stream, AAC ADTS) to
    /// `feed`, for pushing to a platform (RTMP).
    pub fn attach_live_es(&self, feed: Arc<dyn super::LiveFeed>) {
        self.attach_feed(feed, [("live_video_es", true), ("live_audio_es", false)]);
    }

    /// Hands the public stream's RTP packets (H.264, Opus) to `feed`.
    pub fn attach_live(&self, feed: Arc<dyn super::LiveFeed>) {
        self.attach_feed(feed, [("live_video", true), ("live_audio", false)]);
    }

    fn attach_feed(&self, feed: Arc<dyn super::LiveFeed>, sinks: [(&str, bool); 2]) {
        for (name, video) in sinks {
            let Some(appsink) = self
                .shared
                .pipeline
                .by_name(name)
                .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            else {
                tracing::error!("pipeline has no appsink {name}: no livestream");
                continue;
            };
            let feed = feed.clone();
            appsink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |s| {
                        let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        if let Some(buf) = sample.buffer()
                            && let Ok(map) = buf.map_readable()
                        {
                            feed.rtp(video, &map);
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
        }
    }

    /// Sets the public stream: `on` encodes it (only while someone watches), `paused`
    /// shows the "stream paused" card and silence, `excluded` sources are left out.
    /// The recording is never affected: these are pads of the public branch only.
    pub fn set_public(&self, on: bool, paused: bool, excluded: &[String]) {
        // Closed valves keep the public branch idle while nobody watches: no scaling
        // of the panes, no encoding.
        let panes = self
            .public_pads
            .iter()
            .map(|(id, _)| format!("pub_{id}_valve"));
        for v in [
            "live_video_valve".to_string(),
            "live_audio_valve".to_string(),
        ]
        .into_iter()
        .chain(panes)
        {
            if let Some(valve) = self.shared.pipeline.by_name(&v) {
                valve.set_property("drop", !on);
            }
        }
        for (id, pad) in &self.public_pads {
            if id == "paused" {
                pad.set_property("alpha", if paused { 1.0f64 } else { 0.0 });
            } else if pad.has_property("mute") {
                pad.set_property("mute", paused || excluded.contains(id));
            } else if pad.has_property("alpha") {
                pad.set_property("alpha", if excluded.contains(id) { 0.0f64 } else { 1.0 });
            }
        }
    }

    /// Asks the public encoder for a keyframe (a viewer joined, or lost a picture).
    pub fn request_live_keyframe(&self) {
        if let Some(pad) = self
            .shared
            .pipeline
            .by_name("live_video")
            .and_then(|s| s.static_pad("sink"))
        {
            let s = gst::Structure::builder("GstForceKeyUnit")
                .field("all-headers", true)
                .build();
            pad.push_event(gst::event::CustomUpstream::new(s));
        }
    }

    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        let _ = self.shared.pipeline.set_state(gst::State::Null);
        if let Ok(mut slots) = self.slots.lock() {
            for s in slots.iter_mut() {
                s.bin = None;
            }
        }
    }
}

fn add_level_probe(pad: &gst::Pad, status: Arc<SourceStatus>, idx: usize) {
    // Accumulate 100 ms windows, so a short beep is not missed between polls.
    let window = Mutex::new((0i16, 0f64, 0usize));
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(buf) = info.buffer()
            && let Ok(map) = buf.map_readable()
            && let Ok(mut w) = window.lock()
        {
            for b in map.chunks_exact(2) {
                let s = i16::from_le_bytes([b[0], b[1]]);
                w.0 = w.0.max(s.saturating_abs());
                w.1 += (s as f64) * (s as f64);
            }
            w.2 += map.len() / 2;
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
        gst::PadProbeReturn::Ok
    });
}

/// Builds a source bin, links it into its fallback mixer and starts it.
fn build_slot(
    shared: &Arc<Shared>,
    slot: &mut Slot,
    idx: usize,
    tx: &mpsc::Sender<SupervisorMsg>,
) -> Result<()> {
    let def = slot.def.clone();
    let def = &def;
    // No automatic ghost pads: they would also ghost inputs whose link to a dynamic
    // pad (decodebin, rtspsrc) is still pending. The output is the element named `out`.
    let bin = gst::parse::bin_from_description(&def.desc, false)
        .map_err(|e| Error::new(ErrorKind::Unavailable, format!("source {}: {e}", def.id)))?;
    if let Some(out) = bin.by_name("out").and_then(|o| o.static_pad("src")) {
        let ghost = gst::GhostPad::builder_with_target(&out)
            .map_err(|e| Error::new(ErrorKind::Internal, format!("source {}: {e}", def.id)))?
            .name("src")
            .build();
        bin.add_pad(&ghost)
            .map_err(|e| Error::new(ErrorKind::Internal, format!("source {}: {e}", def.id)))?;
    }
    // The bin settles its own asynchronous state changes (decodebin prerolling, say):
    // otherwise they make the whole pipeline "lose state" and pause every source, and a
    // source that fails to start could leave it paused.
    bin.set_property("async-handling", true);
    bin.set_property(
        "name",
        format!("src_{}_{}", def.id, slot.started.elapsed().as_millis()),
    );
    let pipeline = &shared.pipeline;
    pipeline.add(&bin).map_err(|e| {
        Error::new(
            ErrorKind::Internal,
            format!("adding source {}: {e}", def.id),
        )
    })?;
    // Registered before anything else can fail, so that a failed build is torn down
    // completely: a dead bin left linked to the mixer would stall the camera's track.
    slot.bin = Some(bin.clone());
    slot.started = Instant::now();
    let fail = |e: String| Error::new(ErrorKind::Unavailable, format!("source {}: {e}", def.id));

    if let Some(track) = def.rtsp_track {
        let name = format!("{}_rec", def.id);
        let appsink = bin
            .by_name(&name)
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or_else(|| fail(format!("no appsink {name}")))?;
        shared.attach_appsink(&appsink, track, 0, Feed::RtspMain);
    }
    if let Some((w, h)) = def.flash
        && let Some(pad) = bin
            .by_name(&format!("{}_flash", def.id))
            .and_then(|e| e.static_pad("src"))
    {
        add_flash_probe(&pad, w, h);
    }
    if let Some(sync) = bin
        .by_name(&format!("{}_sync", def.id))
        .and_then(|e| e.static_pad("sink"))
    {
        // A file starts at time 0: shift it to now so it plays in real time.
        let now = pipeline
            .current_running_time()
            .map(|t| t.nseconds() as i64)
            .unwrap_or(0);
        sync.set_offset(now);
    }
    if let Some(target) = &def.target {
        let mixer = pipeline
            .by_name(target)
            .ok_or_else(|| fail(format!("no mixer {target}")))?;
        let src = bin
            .static_pad("src")
            .ok_or_else(|| fail("bin has no output".into()))?;
        let pad = mixer
            .request_pad_simple("sink_%u")
            .ok_or_else(|| fail(format!("{target} gives no input")))?;
        if def.video {
            pad.set_property("zorder", 1u32);
        }
        // Seen buffers mean the source is alive; an end of stream is a failure (or the
        // end of a looped file): the supervisor replaces the bin and its mixer input.
        let status = shared.status.clone();
        let status_idx = def.status_idx;
        let tx = tx.clone();
        src.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
            move |_, info| match &info.data {
                Some(gst::PadProbeData::Buffer(_)) => {
                    if let Some(i) = status_idx {
                        status.saw_buffer(i);
                    }
                    gst::PadProbeReturn::Ok
                }
                Some(gst::PadProbeData::Event(ev)) if ev.type_() == gst::EventType::Eos => {
                    let _ = tx.send(SupervisorMsg::Ended {
                        slot: idx,
                        reason: "end of stream".into(),
                        eos: true,
                    });
                    gst::PadProbeReturn::Ok
                }
                _ => gst::PadProbeReturn::Ok,
            },
        );
        src.link(&pad)
            .map_err(|e| fail(format!("linking to {target}: {e}")))?;
        slot.target_pad = Some(pad);
    }
    bin.sync_state_with_parent()
        .map_err(|e| fail(format!("cannot start: {e}")))?;
    slot.retry_at = None;
    Ok(())
}

/// Removes a source bin and releases its mixer input.
fn teardown_slot(shared: &Shared, slot: &mut Slot) {
    if let Some(bin) = slot.bin.take() {
        if let (Some(pad), Some(target)) = (slot.target_pad.take(), slot.def.target.as_ref())
            && let Some(mixer) = shared.pipeline.by_name(target)
        {
            if let Some(src) = bin.static_pad("src") {
                let _ = src.unlink(&pad);
            }
            mixer.release_request_pad(&pad);
        }
        let _ = bin.set_state(gst::State::Null);
        let _ = shared.pipeline.remove(&bin);
    }
}

fn add_flash_probe(pad: &gst::Pad, w: usize, h: usize) {
    // Test cameras flash a white square for 100 ms each second, in step with the test
    // microphones' beep, so audio/video sync can be measured on the recording.
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
                        if let Some(px) = map.get_mut(row + w - side..row + w) {
                            px.fill(235);
                        }
                    }
                }
            }
        }
        gst::PadProbeReturn::Ok
    });
}

/// Restarts failed sources with back-off, and switches RTSP cameras to their fallback
/// encoder while they are lost.
fn supervise(
    shared: Arc<Shared>,
    slots: Arc<Mutex<Vec<Slot>>>,
    rx: mpsc::Receiver<SupervisorMsg>,
    tx: mpsc::Sender<SupervisorMsg>,
    stopping: Arc<AtomicBool>,
    lost_after: Duration,
) {
    // A source that delivers nothing this long is rebuilt even without an error.
    let stall_after = (lost_after * 3).max(Duration::from_secs(5));
    loop {
        let msg = rx.recv_timeout(Duration::from_millis(250));
        if stopping.load(Ordering::Acquire) {
            return;
        }
        let Ok(mut slots) = slots.lock() else { return };
        if let Ok(SupervisorMsg::Ended { slot, reason, eos }) = msg
            && let Some(s) = slots.get_mut(slot)
            && s.bin.is_some()
        {
            teardown_slot(&shared, s);
            if eos && s.def.on_end == OnEnd::Loop {
                tracing::info!(source = %s.def.id, "file ended; playing it again");
                s.retry_at = Some(Instant::now());
            } else {
                tracing::warn!(source = %s.def.id, "source failed ({reason}); retrying in {:?}", s.backoff);
                if let Some(i) = s.def.status_idx {
                    shared.status.set_failed(i, reason);
                }
                s.retry_at = Some(Instant::now() + s.backoff);
                s.backoff = (s.backoff * 2).min(MAX_BACKOFF);
            }
        }
        let now = Instant::now();
        for i in 0..slots.len() {
            let s = &mut slots[i];
            // Alive again: reset the back-off.
            let last = s.def.status_idx.and_then(|x| shared.status.last_buffer(x));
            if s.bin.is_some() && last.is_some_and(|t| t > s.started) {
                s.backoff = Duration::from_secs(1);
            }
            // Stalled without an error (e.g. a network stream that hangs).
            if s.bin.is_some()
                && s.started.elapsed() > stall_after
                && last.is_none_or(|t| t.elapsed() > stall_after)
            {
                let _ = tx.send(SupervisorMsg::Ended {
                    slot: i,
                    reason: "no data".into(),
                    eos: false,
                });
            }
            if s.retry_at.is_some_and(|t| t <= now)
                && let Err(e) = build_slot(&shared, s, i, &tx)
            {
                tracing::warn!(source = %s.def.id, "restart failed: {e}");
                teardown_slot(&shared, s);
                s.retry_at = Some(now + s.backoff);
                s.backoff = (s.backoff * 2).min(MAX_BACKOFF);
            }
            // RTSP: no frames from the camera for a while → its track takes the card.
            if let Some(track) = s.def.rtsp_track
                && let Some(Some(sw)) = shared.switches.get(track)
            {
                let stale = last.is_none_or(|t| t.elapsed() > lost_after);
                if stale && !sw.on_fallback.load(Ordering::Acquire) {
                    sw.cut_next.store(true, Ordering::Release);
                    sw.on_fallback.store(true, Ordering::Release);
                    shared.set_valve(track, false);
                }
            }
        }
    }
}

impl CaptureControl for Capture {
    fn running_time_ns(&self) -> Option<i64> {
        self.shared
            .pipeline
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
        // clockoverlay draws "<text> <time>": the newline puts the time on its own line
        // under the case number.
        if let Some(c) = &self.caption {
            c.set_property("text", format!("{}\n", text.trim()));
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Logs pipeline errors and warnings; an error inside a source bin fails that source.
fn watch_bus(
    bus: gst::Bus,
    pipeline: gst::Pipeline,
    slots: Arc<Mutex<Vec<Slot>>>,
    tx: mpsc::Sender<SupervisorMsg>,
) {
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        use gst::MessageView;
        match msg.view() {
            // A source joined, left or changed its latency: redistribute it, or the
            // mixers keep waiting by the old figure and drop or delay a source's media.
            MessageView::Latency(_) => {
                if let Err(e) = pipeline.recalculate_latency() {
                    tracing::warn!("recalculating latency: {e}");
                }
            }
            MessageView::Error(e) => {
                let src = msg
                    .src()
                    .map(|s| s.path_string().to_string())
                    .unwrap_or_default();
                let slot = msg.src().and_then(|src| {
                    let slots = slots.lock().ok()?;
                    slots
                        .iter()
                        .position(|s| s.bin.as_ref().is_some_and(|b| src.has_as_ancestor(b)))
                });
                match slot {
                    Some(i) => {
                        let _ = tx.send(SupervisorMsg::Ended {
                            slot: i,
                            reason: e.error().to_string(),
                            eos: false,
                        });
                    }
                    None => {
                        tracing::error!(element = %src, "capture error: {} ({:?})", e.error(), e.debug())
                    }
                }
            }
            MessageView::Warning(w) => {
                let src = msg
                    .src()
                    .map(|s| s.path_string().to_string())
                    .unwrap_or_default();
                tracing::warn!(element = %src, "capture warning: {} ({:?})", w.error(), w.debug());
            }
            MessageView::Eos(_) => tracing::error!("capture pipeline reached end of stream"),
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
    fn every_layout_and_kind_parses_in_gstreamer() {
        if gst::init().is_err() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cam.mp4");
        std::fs::write(&file, b"").unwrap();
        for layout in [1, 4, 5, 6] {
            let text = format!(
                "[courtroom]\nid = \"c\"\nname = \"C\"\n[composite]\nlayout = {layout}\n\
                 [[camera]]\nid = \"a\"\nkind = \"test\"\nrole = \"judge\"\n\
                 [[camera]]\nid = \"b\"\nkind = \"rtsp\"\nrole = \"witness\"\nurl = \"rtsp://127.0.0.1:1/x\"\n\
                 [[camera]]\nid = \"f\"\nkind = \"file\"\nrole = \"evidence\"\npath = \"{}\"\n\
                 [[microphone]]\nid = \"m\"\nkind = \"test\"\nrole = \"judge\"\n\
                 [[microphone]]\nid = \"n\"\nkind = \"alsa\"\nrole = \"clerk\"\n",
                file.display()
            );
            let cfg = Config::parse("t.toml", &text, None).unwrap();
            let d = describe(&cfg);
            gst::parse::launch(&d.main)
                .unwrap_or_else(|e| panic!("layout {layout}: {e}\n{}", d.main));
            for s in &d.sources {
                gst::parse::bin_from_description(&s.desc, false)
                    .unwrap_or_else(|e| panic!("{}: {e}\n{}", s.id, s.desc));
            }
        }
    }
}
