//! Where the pipeline's appsinks hand their frames: the running time of each buffer,
//! the frame sink of the recording, and an RTSP camera's switch between its own
//! stream and the fallback encoder.

use super::{Frame, FrameSink, SourceStatus};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
/// Running-time timestamps of a buffer.
pub(super) fn running_times(
    sample: &gst::Sample,
    buf: &gst::BufferRef,
) -> Option<(i64, Option<i64>)> {
    let seg = sample.segment()?.downcast_ref::<gst::ClockTime>()?;
    let pts = seg.to_running_time(buf.pts().or(buf.dts())?)?;
    let dts = buf.dts().and_then(|d| seg.to_running_time(d));
    Some((pts.nseconds() as i64, dts.map(|d| d.nseconds() as i64)))
}

/// Which of an RTSP camera's two encodings feeds its track.
#[derive(Default)]
pub(super) struct RtspSwitch {
    /// True while the camera is lost and the fallback encoder feeds the track.
    pub(super) on_fallback: AtomicBool,
    /// The next forwarded frame starts a new segment.
    pub(super) cut_next: AtomicBool,
}

/// Where an appsink's frames go.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Feed {
    Plain,
    RtspMain,
    RtspFallback,
}

pub(super) struct Shared {
    pub(super) pipeline: gst::Pipeline,
    pub(super) sink: Arc<dyn FrameSink>,
    pub(super) status: Arc<SourceStatus>,
    pub(super) switches: Vec<Option<RtspSwitch>>,
    /// Whether the RTSP preview streams are decoded at full rate ([`super::resting`]).
    pub(super) demand: Arc<super::resting::PictureDemand>,
    /// The RTSP cameras' connections (None without RTSP cameras).
    pub(super) rtsp: Option<super::rtsp::RtspClients>,
}

impl Shared {
    pub(super) fn attach_appsink(
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

    pub(super) fn on_sample(&self, sample: gst::Sample, track: usize, stream: usize, feed: Feed) {
        let Some(buf) = sample.buffer_owned() else {
            return;
        };
        let Some((pts_ns, dts_ns)) = running_times(&sample, &buf) else {
            return;
        };
        let keyframe = !buf.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let duration_ns = buf.duration().map(|d| d.nseconds()).unwrap_or(0);
        let Ok(map) = buf.into_mapped_buffer_readable() else {
            return;
        };
        self.on_frame(
            track,
            feed,
            Frame {
                stream,
                pts_ns,
                dts_ns,
                duration_ns,
                keyframe,
                discont: false,
                data: Box::new(map),
            },
        );
    }

    /// Hands a frame to the recording; for an RTSP camera, only the frames of the
    /// encoding that currently feeds its track.
    pub(super) fn on_frame(&self, track: usize, feed: Feed, mut frame: Frame) {
        if let Some(sw) = self.switches.get(track).and_then(|s| s.as_ref()) {
            match feed {
                Feed::RtspMain => {
                    self.status.saw_buffer(track);
                    if sw.on_fallback.load(Ordering::Acquire) {
                        if !frame.keyframe {
                            return; // keep the card until the camera's next keyframe
                        }
                        sw.on_fallback.store(false, Ordering::Release);
                        self.set_valve(track, true);
                        frame.discont = true;
                    }
                }
                Feed::RtspFallback => {
                    if !sw.on_fallback.load(Ordering::Acquire) {
                        return;
                    }
                    if sw.cut_next.load(Ordering::Acquire) {
                        if !frame.keyframe {
                            return;
                        }
                        sw.cut_next.store(false, Ordering::Release);
                        frame.discont = true;
                    }
                }
                Feed::Plain => {}
            }
        }
        self.sink.push(track, frame);
    }

    /// Opens (drop = false) or closes the fallback encoder of an RTSP camera.
    pub(super) fn set_valve(&self, track: usize, drop: bool) {
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
