//! The courtroom's GStreamer pipeline as text, from the templates in `pipelines/` and
//! the config: what the config asks for ([`Description`]: the main pipeline and one
//! source bin per camera and microphone). Nothing here runs anything; `courtrec
//! pipeline` prints it, and [`super::pipeline::Capture`] builds it.

use crate::config::{CameraKind, Config, MicrophoneKind, Role, TestWave};
use std::time::Duration;

const CAMERA_SLOT: &str = include_str!("../../pipelines/camera-slot.gst");
const CAMERA_TEST: &str = include_str!("../../pipelines/camera-test.gst");
const CAMERA_V4L2: &str = include_str!("../../pipelines/camera-v4l2.gst");
const CAMERA_FILE: &str = include_str!("../../pipelines/camera-file.gst");
const CAMERA_RTSP_PREVIEW: &str = include_str!("../../pipelines/camera-rtsp-preview.gst");
const CAMERA_RECORD: &str = include_str!("../../pipelines/camera-record.gst");
const CAMERA_RTSP_FALLBACK: &str = include_str!("../../pipelines/camera-rtsp-fallback.gst");
const CAMERA_PANE: &str = include_str!("../../pipelines/camera-pane.gst");
const MIC_SLOT: &str = include_str!("../../pipelines/mic-slot.gst");
const MIC_TEST: &str = include_str!("../../pipelines/mic-test.gst");
const MIC_ALSA: &str = include_str!("../../pipelines/mic-alsa.gst");
const MIC_PULSE: &str = include_str!("../../pipelines/mic-pulse.gst");
const MIC_RECORD: &str = include_str!("../../pipelines/mic-record.gst");
const MIC_MIX: &str = include_str!("../../pipelines/mic-mix.gst");
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
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(8);

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

/// `s` as Pango markup (what `textoverlay` draws): `&` or `<` in a label would make it
/// refuse the text and draw nothing.
fn markup(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `s` as one quoted value of the pipeline text.
fn quoted(s: &str) -> String {
    format!("\"{}\"", quote(s))
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

pub(super) fn role_rank(r: Role) -> u8 {
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
    /// Test cameras: paint the sync flash (width, height) on the bin's output (`out`).
    pub flash: Option<(usize, usize)>,
    /// Test microphones with ticks: gate the tone into the sync beep on the bin's
    /// output (`out`).
    pub beep: bool,
    /// RTSP main stream: the track it feeds (it has no bin: its frames go straight
    /// to the track).
    pub rtsp_track: Option<usize>,
    /// RTSP: the stream an RTSP client ([`super::rtsp`]) connects to, feeding the
    /// track (main stream) or the bin's `appsrc` (preview).
    pub rtsp_url: Option<String>,
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
            if let Some(url) = &src.rtsp_url {
                let feeds = if src.desc.is_empty() {
                    " -> its track"
                } else {
                    ":"
                };
                s.push_str(&format!(
                    "\n# RTSP client '{}' <- {}{feeds}\n",
                    src.id,
                    without_password(url)
                ));
            }
            if !src.desc.is_empty() {
                s.push_str(&format!(
                    "\n# source bin '{}'{to}\n{}\n",
                    src.id,
                    src.desc.trim()
                ));
            }
        }
        s
    }
}

/// A camera URL fit for printing: its password replaced.
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => url.to_string(),
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
    let live = cfg.livestream.enabled;
    // Cameras in pane order: judges first, then parties, witnesses, evidence, overview.
    let mut order: Vec<usize> = (0..cfg.cameras.len()).collect();
    order.sort_by_key(|&i| (role_rank(cfg.cameras[i].get_ref().role), i));
    let mut pane_of = vec![None; cfg.cameras.len()];
    for (pane, &cam) in order.iter().enumerate().take(panes.len()) {
        pane_of[cam] = Some(pane);
    }
    let mut pane_props = Vec::new();
    for (i, cam) in cfg.cameras().enumerate() {
        let label = markup(&quote(if cam.label.is_empty() {
            &cam.id
        } else {
            &cam.label
        }));
        let mut vars = vec![
            ("id", cam.id.clone()),
            ("width", cam.width.to_string()),
            ("height", cam.height.to_string()),
            ("fps", cam.fps.to_string()),
            ("bitrate_kbps", cam.bitrate_kbps.to_string()),
            ("label", label),
            ("decoder", cam.preview_decoder.element().to_string()),
            (
                "pattern",
                cam.pattern.clone().unwrap_or_else(|| "smpte".into()),
            ),
            ("scroll", cam.scroll_px_per_frame.to_string()),
            // Quoted: a space or `!` in a value must not start another element (what
            // quoting cannot carry is refused by config::pipeline_text).
            (
                "device",
                quoted(
                    &cam.device
                        .as_ref()
                        .map(|d| d.get_ref().display().to_string())
                        .unwrap_or_default(),
                ),
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
            beep: false,
            rtsp_track: None,
            rtsp_url: None,
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
                let url = cam.url.clone().unwrap_or_default();
                sources.push(SourceDef {
                    id: cam.id.clone(),
                    status_idx: Some(i),
                    desc: String::new(),
                    target: None,
                    video: true,
                    on_end: OnEnd::Fail,
                    flash: None,
                    beep: false,
                    rtsp_track: Some(i),
                    rtsp_url: Some(url.clone()),
                });
                sources.push(SourceDef {
                    status_idx: None,
                    rtsp_url: Some(cam.preview_url.clone().unwrap_or(url)),
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
            if comp.enabled {
                main.push(fill(CAMERA_PANE, &vars));
                pane_props.push(format!("sink_{pane}::xpos={x} sink_{pane}::ypos={y}"));
            }
            if !live {
                continue;
            }
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
            // Ticks: a steady tone that a probe gates into a 100 ms beep at the start
            // of each second of running time, in step with the test cameras' flash
            // (both follow the pipeline clock, so the sync test measures the recorder).
            // The tone from audiotestsrc's table, not a sine computed per sample:
            // nine tenths of it is silenced, and sin() was a sixth of a test
            // microphone's work.
            (
                "wave",
                match mic.wave.unwrap_or(TestWave::Ticks) {
                    TestWave::Ticks => "sine-table",
                    w => w.gst_name(),
                }
                .to_string(),
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
        if comp.enabled {
            main.push(fill(
                MIC_MIX,
                &[("id", mic.id.clone()), ("pad", m.to_string())],
            ));
        }
        // Into the public mix on pad m, so it can be muted. Like the room's mix, the
        // public mix runs on the microphone slots, which never stop (each makes
        // silence without its microphone): a muted pad still gives it its time. While
        // nobody watches it takes no input and keeps time on its clock
        // (`resting::hold_input`).
        if live {
            main.push(fill(
                PUBLIC_MIC,
                &[("id", mic.id.clone()), ("pad", m.to_string())],
            ));
        }
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
            beep: mic.kind == MicrophoneKind::Test
                && mic.wave.unwrap_or(TestWave::Ticks) == TestWave::Ticks,
            rtsp_track: None,
            rtsp_url: None,
        });
    }
    if comp.enabled {
        main.push(composite(cfg, &pane_props));
    }
    // A courtroom that never streams builds no public picture, mix or encoders.
    if !live {
        return Description {
            main: main.join("\n"),
            sources,
        };
    }
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

/// The composite track: the multi-pane picture with the time burned in, the mixed
/// sound, and the picture's preview still.
fn composite(cfg: &Config, pane_props: &[String]) -> String {
    let comp = &cfg.composite;
    let mut main = vec![fill(
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
    )];
    main.push(preview("composite", 640, comp.width, comp.height));
    main.join("\n")
}

#[cfg(test)]
#[path = "describe_tests.rs"]
mod tests;
