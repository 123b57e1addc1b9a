//! Keeps sources alive: each camera and microphone is a bin of its own, linked into a
//! fallback mixer that always produces output ("signal lost" card, or silence). When a
//! source fails, ends or goes quiet, the supervisor removes its bin and builds a new
//! one, with back-off, while every track goes on recording. Also the bus watch and the
//! probes that measure levels and source health.

use super::describe::{MAX_BACKOFF, OnEnd, SourceDef};
use super::feeds::{Feed, Shared};
use super::{SourceStatus, levels_dbfs};
use crate::error::{Error, ErrorKind, Result};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long latency may stay unrecalculated before it is worth a warning (a source
/// starting takes a second or two).
const LATENCY_WARN_AFTER: Duration = Duration::from_secs(10);

/// A running source bin.
pub(super) struct Slot {
    pub(super) def: SourceDef,
    pub(super) bin: Option<gst::Bin>,
    /// An RTSP stream's connection (the main stream has no bin, only this).
    pub(super) client: Option<super::rtsp::Client>,
    pub(super) target_pad: Option<gst::Pad>,
    /// When to try again after a failure (None: running).
    pub(super) retry_at: Option<Instant>,
    pub(super) backoff: Duration,
    pub(super) started: Instant,
    /// When the bin last gave a buffer, for a bin that reports to no source status
    /// (an RTSP preview): without it, it read as stalled and was rebuilt every few
    /// seconds, its pane showing the "signal lost" card in between.
    pub(super) last_output: Arc<Mutex<Option<Instant>>>,
}

impl Slot {
    pub(super) fn running(&self) -> bool {
        self.bin.is_some() || self.client.is_some()
    }

    /// When the source last delivered.
    fn last_delivered(&self, status: &SourceStatus) -> Option<Instant> {
        match self.def.status_idx {
            Some(i) => status.last_buffer(i),
            None => self.last_output.lock().ok().and_then(|t| *t),
        }
    }
}

pub(super) enum SupervisorMsg {
    /// A source bin failed (error) or ended (EOS).
    Ended {
        slot: usize,
        reason: String,
        eos: bool,
    },
}

pub(super) fn add_level_probe(pad: &gst::Pad, status: Arc<SourceStatus>, idx: usize) {
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
pub(super) fn build_slot(
    shared: &Arc<Shared>,
    slot: &mut Slot,
    idx: usize,
    tx: &mpsc::Sender<SupervisorMsg>,
) -> Result<()> {
    let def = slot.def.clone();
    let def = &def;
    if def.desc.is_empty() {
        // An RTSP camera's main stream: only a connection, its frames to the track.
        slot.started = Instant::now();
        slot.client = Some(connect_rtsp(shared, def, idx, tx, None)?);
        slot.retry_at = None;
        return Ok(());
    }
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

    if let Some((w, h)) = def.flash
        && let Some(pad) = bin.by_name("out").and_then(|e| e.static_pad("src"))
    {
        add_flash_probe(&pad, w, h);
    }
    if let Some(rate) = bin.by_name(&format!("{}_rate", def.id)) {
        // A test camera: it rests while its picture is neither recorded nor watched.
        shared.demand.add_rate_filter(
            &rate,
            super::resting::Behind::Source,
            super::resting::Need::Source,
        );
    }
    if def.beep
        && let Some(pad) = bin.by_name("out").and_then(|e| e.static_pad("src"))
    {
        add_beep_probe(&pad);
    }
    if let (Some(parsed), Some(decoded)) = (
        bin.by_name(&format!("{}_pvparse", def.id))
            .and_then(|e| e.static_pad("src")),
        bin.by_name(&format!("{}_pvdec", def.id))
            .and_then(|e| e.static_pad("src")),
    ) {
        super::resting::key_only(&parsed, &decoded, shared.demand.clone());
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
        let last_output = slot.last_output.clone();
        let tx = tx.clone();
        src.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
            move |_, info| match &info.data {
                Some(gst::PadProbeData::Buffer(_)) => {
                    match status_idx {
                        Some(i) => status.saw_buffer(i),
                        None => {
                            if let Ok(mut t) = last_output.lock() {
                                *t = Some(Instant::now());
                            }
                        }
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
    if def.rtsp_url.is_some() {
        // An RTSP preview: the connection feeds the bin's appsrc.
        let name = format!("{}_pvsrc", def.id);
        let appsrc = bin
            .by_name(&name)
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or_else(|| fail(format!("no appsrc {name}")))?;
        slot.client = Some(connect_rtsp(shared, def, idx, tx, Some(appsrc))?);
    }
    slot.retry_at = None;
    Ok(())
}

/// Connects an RTSP stream: its frames go to the camera's track (`appsrc` None) or
/// into the preview bin's `appsrc`. When the connection ends, the supervisor hears.
fn connect_rtsp(
    shared: &Arc<Shared>,
    def: &SourceDef,
    idx: usize,
    tx: &mpsc::Sender<SupervisorMsg>,
    appsrc: Option<gst_app::AppSrc>,
) -> Result<super::rtsp::Client> {
    let clients = shared
        .rtsp
        .as_ref()
        .ok_or_else(|| Error::new(ErrorKind::Internal, "no RTSP runtime"))?;
    let url = def.rtsp_url.as_deref().unwrap_or_default();
    let pipeline = shared.pipeline.clone();
    let now_ns = move || pipeline.current_running_time().map(|t| t.nseconds() as i64);
    let tx = tx.clone();
    let on_end = move |reason: String| {
        let _ = tx.send(SupervisorMsg::Ended {
            slot: idx,
            reason,
            eos: false,
        });
    };
    let client = match (appsrc, def.rtsp_track) {
        (Some(appsrc), _) => clients.spawn(
            url,
            now_ns,
            move |f| {
                let mut buf = gst::Buffer::from_mut_slice(f.data);
                if let Some(b) = buf.get_mut() {
                    b.set_pts(gst::ClockTime::from_nseconds(f.pts_ns.max(0) as u64));
                    b.set_duration(gst::ClockTime::from_nseconds(f.duration_ns));
                    if !f.keyframe {
                        b.set_flags(gst::BufferFlags::DELTA_UNIT);
                    }
                }
                // Never blocks: a full queue drops its oldest frame (leaky appsrc).
                let _ = appsrc.push_buffer(buf);
            },
            on_end,
        ),
        (None, Some(track)) => {
            // Weak: the runtime that runs this belongs to `shared`.
            let shared = Arc::downgrade(shared);
            clients.spawn(
                url,
                now_ns,
                move |f| {
                    if let Some(shared) = shared.upgrade() {
                        shared.on_frame(
                            track,
                            Feed::RtspMain,
                            crate::media::Frame {
                                stream: 0,
                                pts_ns: f.pts_ns,
                                dts_ns: None,
                                duration_ns: f.duration_ns,
                                keyframe: f.keyframe,
                                discont: false,
                                data: Box::new(f.data),
                            },
                        );
                    }
                },
                on_end,
            )
        }
        (None, None) => Err(Error::new(
            ErrorKind::Internal,
            "RTSP stream without a track",
        )),
    };
    client.map_err(|e| Error::new(e.kind, format!("source {}: {}", def.id, e.msg)))
}

/// Removes a source bin and releases its mixer input.
pub(super) fn teardown_slot(shared: &Shared, slot: &mut Slot) {
    slot.client = None;
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

pub(super) fn add_flash_probe(pad: &gst::Pad, w: usize, h: usize) {
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

/// Test microphones beep for the first 100 ms of each second of running time (the
/// steady tone is silenced elsewhere, to the sample), in step with the test cameras'
/// flash.
pub(super) fn add_beep_probe(pad: &gst::Pad) {
    const RATE: u64 = 48_000;
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(buf) = info.buffer_mut()
            && let Some(pts) = buf.pts()
        {
            let b = buf.make_mut();
            if let Ok(mut map) = b.map_writable() {
                for (i, s) in map.chunks_exact_mut(2).enumerate() {
                    let t_ns = pts.nseconds() + i as u64 * 1_000_000_000 / RATE;
                    if t_ns % 1_000_000_000 >= 100_000_000 {
                        s.fill(0);
                    }
                }
            }
        }
        gst::PadProbeReturn::Ok
    });
}

/// Restarts failed sources with back-off, and switches RTSP cameras to their fallback
/// encoder while they are lost.
pub(super) fn supervise(
    shared: Arc<Shared>,
    slots: Arc<Mutex<Vec<Slot>>>,
    rx: mpsc::Receiver<SupervisorMsg>,
    tx: mpsc::Sender<SupervisorMsg>,
    stopping: Arc<AtomicBool>,
    lost_after: Duration,
    latency_stale: Arc<AtomicBool>,
) {
    // A source that delivers nothing this long is rebuilt even without an error.
    let stall_after = (lost_after * 3).max(Duration::from_secs(5));
    let mut stale_since: Option<Instant> = None;
    let mut warned_stale = false;
    loop {
        let msg = rx.recv_timeout(Duration::from_millis(250));
        if stopping.load(Ordering::Acquire) {
            return;
        }
        shared.demand.poll(
            shared
                .pipeline
                .current_running_time()
                .map(gst::ClockTime::nseconds),
        );
        // A failed latency recalculation leaves the mixers waiting by an old figure:
        // retried here until the sources can all answer. Failing at start-up is usual
        // (a source still starting); failing for long is worth a warning.
        if latency_stale.swap(false, Ordering::AcqRel) {
            let since = *stale_since.get_or_insert_with(Instant::now);
            match shared.pipeline.recalculate_latency() {
                Ok(()) => {
                    if warned_stale {
                        tracing::info!("latency recalculated");
                    } else {
                        tracing::debug!("latency recalculated after {:?}", since.elapsed());
                    }
                    stale_since = None;
                    warned_stale = false;
                }
                Err(e) => {
                    latency_stale.store(true, Ordering::Release);
                    if !warned_stale && since.elapsed() > LATENCY_WARN_AFTER {
                        tracing::warn!(
                            "latency still not recalculated after {:?} ({e}): mixers may drop or delay a source",
                            since.elapsed()
                        );
                        warned_stale = true;
                    }
                }
            }
        }
        let Ok(mut slots) = slots.lock() else { return };
        if let Ok(SupervisorMsg::Ended { slot, reason, eos }) = msg
            && let Some(s) = slots.get_mut(slot)
            && s.running()
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
            let last = s.last_delivered(&shared.status);
            if s.running() && last.is_some_and(|t| t > s.started) {
                s.backoff = Duration::from_secs(1);
            }
            // Stalled without an error (e.g. a network stream that hangs).
            if s.running()
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

/// Logs pipeline errors and warnings; an error inside a source bin fails that source.
pub(super) fn watch_bus(
    bus: gst::Bus,
    pipeline: gst::Pipeline,
    slots: Arc<Mutex<Vec<Slot>>>,
    tx: mpsc::Sender<SupervisorMsg>,
    latency_stale: Arc<AtomicBool>,
) {
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        use gst::MessageView;
        match msg.view() {
            // A source joined, left or changed its latency: redistribute it, or the
            // mixers keep waiting by the old figure and drop or delay a source's media.
            MessageView::Latency(_) => {
                if let Err(e) = pipeline.recalculate_latency() {
                    // A source still starting cannot answer yet; `supervise` tries
                    // again until it succeeds (no later message may come to do it),
                    // and warns if that takes long.
                    tracing::debug!("recalculating latency: {e}; trying again shortly");
                    latency_stale.store(true, Ordering::Release);
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
                        // The details (which element, GStreamer's reason such as
                        // "not-negotiated") go to the log; the status keeps the message.
                        tracing::warn!(element = %src, "source error: {} ({:?})", e.error(), e.debug());
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
