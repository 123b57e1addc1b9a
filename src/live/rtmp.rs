//! Pushing the public stream to a platform over RTMP (what national court livestream
//! sites and CDNs ingest): the same public encoding (H.264, plus AAC because FLV
//! carries no Opus), muxed in its own small GStreamer pipeline, so a platform that
//! is down or refuses us never disturbs capture, recording or the WHEP viewers.
//! It runs while the hearing is streamed and reconnects by itself (every few
//! seconds) when the connection fails.

use crate::capture::LiveFeed;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Wait before reconnecting after a failure.
const RETRY: Duration = Duration::from_secs(3);

struct Running {
    pipeline: gst::Pipeline,
    video: gst_app::AppSrc,
    audio: gst_app::AppSrc,
    failed: Arc<AtomicBool>,
}

/// The RTMP push of one courtroom.
pub struct Egress {
    url: String,
    running: Mutex<Option<Running>>,
    retry_at: Mutex<Option<Instant>>,
    /// Why the last attempt failed, while it is failing (for the alarm).
    pub last_error: Mutex<Option<String>>,
}

impl LiveFeed for Egress {
    fn rtp(&self, video: bool, frame: &[u8]) {
        // Not RTP here: encoded frames (see `Capture::attach_live_es`).
        let Ok(r) = self.running.lock() else { return };
        if let Some(r) = r.as_ref() {
            let src = if video { &r.video } else { &r.audio };
            let _ = src.push_buffer(gst::Buffer::from_slice(frame.to_vec()));
        }
    }
}

impl Egress {
    pub fn new(url: &str) -> Egress {
        Egress {
            url: url.to_string(),
            running: Mutex::new(None),
            retry_at: Mutex::new(None),
            last_error: Mutex::new(None),
        }
    }

    /// Is the push running?
    pub fn is_running(&self) -> bool {
        self.running.lock().is_ok_and(|r| {
            r.as_ref()
                .is_some_and(|r| !r.failed.load(Ordering::Acquire))
        })
    }

    /// Starts or stops pushing; called every policy tick. Restarts a failed push
    /// once `RETRY` has passed.
    pub fn set_active(&self, active: bool) {
        let Ok(mut running) = self.running.lock() else {
            return;
        };
        let failed = running
            .as_ref()
            .is_some_and(|r| r.failed.load(Ordering::Acquire));
        if (!active || failed)
            && let Some(r) = running.take()
        {
            let _ = r.pipeline.set_state(gst::State::Null);
            if failed {
                self.fail("the platform cannot be reached or closed the connection".into());
            }
        }
        if !active || running.is_some() {
            return;
        }
        if self
            .retry_at
            .lock()
            .is_ok_and(|t| t.is_some_and(|t| Instant::now() < t))
        {
            return;
        }
        match self.start() {
            Ok(r) => {
                tracing::info!(url = %redact(&self.url), "pushing the livestream over RTMP");
                *running = Some(r);
            }
            Err(e) => {
                tracing::warn!("cannot start the RTMP push: {e}");
                self.fail(e);
            }
        }
    }

    fn fail(&self, e: String) {
        if let Ok(mut l) = self.last_error.lock() {
            *l = Some(e);
        }
        if let Ok(mut t) = self.retry_at.lock() {
            *t = Some(Instant::now() + RETRY);
        }
    }

    fn start(&self) -> Result<Running, String> {
        let desc = format!(
            "appsrc name=v is-live=true do-timestamp=true format=time \
               caps=\"video/x-h264,stream-format=byte-stream,alignment=au\" \
             ! h264parse ! queue ! flvmux name=mux streamable=true latency=200000000 \
             ! rtmpsink name=out location=\"{} live=1\" \
             appsrc name=a is-live=true do-timestamp=true format=time \
               caps=\"audio/mpeg,mpegversion=4,stream-format=adts\" \
             ! aacparse ! queue ! mux.",
            self.url.replace('"', "")
        );
        let pipeline = gst::parse::launch(&desc)
            .map_err(|e| format!("building the RTMP push: {e}"))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| "not a pipeline".to_string())?;
        let src = |n: &str| {
            pipeline
                .by_name(n)
                .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
                .ok_or_else(|| format!("no appsrc {n}"))
        };
        let (video, audio) = (src("v")?, src("a")?);
        for s in [&video, &audio] {
            s.set_max_bytes(4 << 20);
            s.set_property("block", false);
        }
        let failed = Arc::new(AtomicBool::new(false));
        if let Some(bus) = pipeline.bus() {
            let failed = failed.clone();
            let url = redact(&self.url);
            std::thread::Builder::new()
                .name("rtmp-bus".into())
                .spawn(move || {
                    for msg in bus.iter_timed(gst::ClockTime::NONE) {
                        match msg.view() {
                            gst::MessageView::Error(e) => {
                                tracing::warn!(url = %url, "RTMP push failed: {}", e.error());
                                failed.store(true, Ordering::Release);
                                break;
                            }
                            gst::MessageView::Eos(_) => {
                                failed.store(true, Ordering::Release);
                                break;
                            }
                            _ => {}
                        }
                    }
                })
                .map_err(|e| format!("bus thread: {e}"))?;
        }
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| format!("starting the RTMP push: {e}"))?;
        if let Ok(mut l) = self.last_error.lock() {
            *l = None;
        }
        Ok(Running {
            pipeline,
            video,
            audio,
            failed,
        })
    }
}

/// The URL without its stream key (the last path part), for logs.
fn redact(url: &str) -> String {
    match url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/…"),
        None => url.to_string(),
    }
}
