//! Builds and runs the courtroom's GStreamer pipeline ([`super::describe`]), hands each
//! track's encoded frames to the [`FrameSink`] ([`super::feeds`]), and leaves keeping
//! sources alive to [`super::supervisor`].
//!
//! Settings (what the config asks for: [`Description`]) are kept apart from state (the
//! running bins: the supervisor's slots).

use super::describe::{PUBLIC_HEIGHT, PUBLIC_WIDTH, describe, layout_panes, role_rank};
use super::feeds::{Feed, RtspSwitch, Shared};
use super::overlay::BurnedClock;
use super::supervisor::{Slot, add_level_probe, build_slot, supervise, teardown_slot, watch_bus};
use super::{CaptureControl, FrameSink, SourceStatus};
use crate::config::{CameraKind, Config};
use crate::error::{Error, ErrorKind, Result};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
/// The running capture pipeline.
pub struct Capture {
    shared: Arc<Shared>,
    /// The public picture's pads (camera id → pane pad, `"paused"` → the card) and the
    /// public mix's (microphone id → pad), to leave sources out and pause the stream.
    public_pads: Vec<(String, gst::Pad)>,
    /// Appsinks of video tracks, for keyframe requests.
    video_sinks: Vec<gst_app::AppSink>,
    /// The valves in front of the recording encoders (`set_encoding`).
    enc_valves: Vec<gst::Element>,
    /// The burned-in clocks of the composite (first, when there is one) and the public
    /// picture ([`super::overlay`]).
    clocks: Vec<BurnedClock>,
    /// Wall clock (Unix ns) at running time 0: what the overlays count from.
    wall_epoch_ns: AtomicI64,
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
        // Before any state change: see `clocking` (the mixers ran ahead at start-up).
        super::clocking::fix_clock(&pipeline);
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
            demand: Arc::new(super::resting::PictureDemand::new(cfg.composite.enabled)),
            rtsp: if cfg.cameras().any(|c| c.kind == CameraKind::Rtsp) {
                Some(super::rtsp::RtspClients::new()?)
            } else {
                None
            },
        });

        let mut video_sinks = Vec::new();
        for (track, spec) in specs.iter().enumerate() {
            let rtsp = shared.switches.get(track).is_some_and(|s| s.is_some());
            let mut names = vec![(format!("{}_rec", spec.info.name), 0usize, Feed::Plain)];
            if spec.streams.len() > 1 {
                names.push((format!("{}_audio_rec", spec.info.name), 1, Feed::Plain));
            }
            if rtsp {
                // The camera's own H.264 comes from its RTSP client (`super::rtsp`,
                // started with the sources); the main pipeline holds the fallback encoder.
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

        // Encoders of the recorded tracks (an RTSP camera's main stream has none).
        let enc_valves: Vec<gst::Element> = specs
            .iter()
            .map(|s| s.info.name.as_str())
            .chain(["composite_audio"])
            .filter_map(|n| pipeline.by_name(&format!("{n}_encvalve")))
            .collect();

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

        // Between hearings the composite's panes, the mixers and the mixes rest
        // ([`super::resting`]); the cards answer latency as a live source does.
        use super::resting::{Behind, Need};
        for (name, behind, need) in [
            ("comp_rate", Behind::RecordedMixer, Need::Composite),
            ("pub_rate", Behind::Mixer, Need::Public),
        ] {
            if let Some(filter) = pipeline.by_name(name) {
                shared.demand.add_rate_filter(&filter, behind, need);
            }
        }
        let mut cards = vec!["pub_cardrate".to_string()];
        for cam in cfg.cameras() {
            if let Some(pad) = pipeline
                .by_name(&format!("{}_pane", cam.id))
                .and_then(|q| q.static_pad("sink"))
            {
                super::resting::thin(&pad, shared.demand.clone());
            }
            cards.push(format!("{}_cardrate", cam.id));
        }
        for card in cards {
            if let Some(pad) = pipeline.by_name(&card).and_then(|f| f.static_pad("src")) {
                super::resting::answer_card_latency(&pad);
            }
        }
        for (name, need) in [("mix", Need::Composite), ("pub_mix", Need::Public)] {
            if let Some(mixer) = pipeline.by_name(name) {
                for pad in mixer.sink_pads() {
                    super::resting::hold_input(&pad, shared.demand.clone(), need);
                }
            }
        }
        for (name, need) in [
            ("caption", Need::Composite),
            ("public_caption", Need::Public),
        ] {
            if let Some(caption) = pipeline.by_name(name) {
                shared.demand.add_caption(&caption, need);
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
                if let Some(pad) = mix.static_pad(&format!("sink_{m}")) {
                    public_pads.push((mic.id.clone(), pad));
                }
            }
        }

        // Microphone levels: measured on the raw audio leaving each microphone's slot,
        // whose mixer is kept from slipping back in time when its microphone joins.
        for (m, mic) in cfg.microphones().enumerate() {
            let idx = cfg.cameras.len() + m;
            if let Some(pad) = pipeline
                .by_name(&format!("{}_fb", mic.id))
                .and_then(|t| t.static_pad("src"))
            {
                super::mixtime::keep_time_forward(&pad, mic.id.clone());
            }
            if let Some(pad) = pipeline
                .by_name(&format!("{}_raw", mic.id))
                .and_then(|t| t.static_pad("sink"))
            {
                add_level_probe(&pad, status.clone(), idx);
            }
        }
        // The public sound's way to the relay: the livestream once played without
        // sound while its picture came; these debug lines say where the sound stopped.
        for (element, pad) in [
            ("pub_mix", "src"),
            ("live_audio_valve", "src"),
            ("live_audio", "sink"),
        ] {
            if let Some(p) = pipeline.by_name(element).and_then(|e| e.static_pad(pad)) {
                trace_flow(&p, element);
            }
        }

        let (tx, rx) = mpsc::channel();
        let mut slots = Vec::new();
        for def in desc.sources {
            slots.push(Slot {
                def,
                bin: None,
                client: None,
                target_pad: None,
                retry_at: None,
                backoff: Duration::from_secs(1),
                started: Instant::now(),
                last_output: Arc::default(),
            });
        }
        let slots = Arc::new(Mutex::new(slots));
        // Running time 0 is the moment the pipeline starts playing, just below; the
        // epoch is made exact once it runs (`wait_running`).
        let epoch_ns = crate::clock::now_unix_ns();
        let mut clocks = Vec::new();
        for name in ["caption", "public_caption"] {
            if let Some(el) = pipeline.by_name(name) {
                clocks.push(BurnedClock::attach(el, epoch_ns).ok_or_else(|| {
                    Error::new(
                        ErrorKind::Internal,
                        format!("overlay {name} has no video pad"),
                    )
                })?);
            }
        }
        let bus = pipeline
            .bus()
            .ok_or_else(|| Error::new(ErrorKind::Internal, "pipeline has no bus"))?;
        let stopping = Arc::new(AtomicBool::new(false));
        // Set when a latency recalculation failed; the supervisor retries it.
        let latency_stale = Arc::new(AtomicBool::new(false));
        {
            let slots = slots.clone();
            let tx = tx.clone();
            let pipeline_for_bus = pipeline.clone();
            let stale = latency_stale.clone();
            std::thread::Builder::new()
                .name("capture-bus".into())
                .spawn(move || watch_bus(bus, pipeline_for_bus, slots, tx, stale))
                .map_err(|e| Error::new(ErrorKind::Internal, format!("bus thread: {e}")))?;
        }
        {
            let slots = slots.clone();
            let shared = shared.clone();
            let stopping = stopping.clone();
            let tx = tx.clone();
            let lost_after = Duration::from_millis(cfg.alarms.source_lost_ms);
            std::thread::Builder::new()
                .name("capture-supervisor".into())
                .spawn(move || {
                    supervise(shared, slots, rx, tx, stopping, lost_after, latency_stale)
                })
                .map_err(|e| Error::new(ErrorKind::Internal, format!("supervisor thread: {e}")))?;
        }
        pipeline.set_state(gst::State::Playing).map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!("cannot start the capture pipeline: {e}"),
            )
        })?;
        // The sources join once the rest plays (the mixers make their card or silence
        // meanwhile): one that cannot start (an unplugged audio interface, a camera
        // missing at boot) is then that source's failure, alarmed and retried with
        // back-off, not the daemon's. Started with the rest, it failed the pipeline.
        if let Ok(mut slots) = slots.lock() {
            for (i, slot) in slots.iter_mut().enumerate() {
                if let Err(e) = build_slot(&shared, slot, i, &tx) {
                    tracing::error!(source = %slot.def.id, "cannot start source: {e}");
                    teardown_slot(&shared, slot);
                    slot.retry_at = Some(Instant::now() + slot.backoff);
                }
            }
        }
        Ok(Capture {
            shared,
            public_pads,
            video_sinks,
            enc_valves,
            clocks,
            wall_epoch_ns: AtomicI64::new(epoch_ns),
            slots,
            stopping,
        })
    }

    /// Waits until the pipeline runs (its clock gives a running time).
    pub fn wait_running(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(rt) = self.running_time_ns() {
                self.set_wall_epoch_ns(crate::clock::now_unix_ns() - rt);
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
        self.shared.demand.set_public(on);
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

    /// The composite's burned-in clock (the one recorded), if there is a composite.
    fn composite_clock(&self) -> Option<&BurnedClock> {
        self.clocks.iter().find(|c| c.element().name() == "caption")
    }

    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        let _ = self.shared.pipeline.set_state(gst::State::Null);
        if let Ok(mut slots) = self.slots.lock() {
            for s in slots.iter_mut() {
                s.bin = None;
                // Closes the connection; its task held the capture's shared state.
                s.client = None;
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

    fn set_encoding(&self, on: bool) {
        self.shared.demand.set_recording(on);
        for v in &self.enc_valves {
            v.set_property("drop", !on);
        }
    }

    fn wall_epoch_ns(&self) -> i64 {
        self.wall_epoch_ns.load(Ordering::SeqCst)
    }

    fn set_wall_epoch_ns(&self, epoch_ns: i64) {
        self.wall_epoch_ns.store(epoch_ns, Ordering::SeqCst);
        for c in &self.clocks {
            c.set_epoch_ns(epoch_ns);
        }
    }

    fn burned_in_epoch_ns(&self) -> Option<i64> {
        self.composite_clock()?.epoch_ns()
    }

    fn resting_ms(&self) -> Option<u64> {
        let d = self.shared.demand.resting_for()?;
        Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn set_caption(&self, text: &str) {
        // The overlay draws "<caption> <time>": the newline puts the time on its own
        // line under the case number.
        if let Some(c) = self.composite_clock() {
            c.set_caption(format!("{}\n", text.trim()));
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Logs (debug) the first buffer through `pad` and then every 250th (25 s of 100 ms
/// audio), with its timestamp: cheap enough to leave on.
fn trace_flow(pad: &gst::Pad, what: &'static str) {
    let seen = std::sync::atomic::AtomicU64::new(0);
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let n = seen.fetch_add(1, Ordering::Relaxed) + 1;
        if (n == 1 || n.is_multiple_of(250))
            && let Some(b) = info.buffer()
        {
            // The element's running time beside the buffer's: a mixer ahead of its clock
            // waits until the clock catches up.
            let clock_ns = pad
                .parent_element()
                .and_then(|e| e.current_running_time())
                .map(|t| t.nseconds());
            tracing::debug!(
                element = what,
                buffers = n,
                pts_ns = b.pts().map(|t| t.nseconds()),
                clock_ns,
                "public sound flows"
            );
        }
        gst::PadProbeReturn::Ok
    });
}
