//! The burned-in caption drawn as an opaque box: its text is laid out and blended
//! once a second, by a twin of the template's `textoverlay` on a black frame, and the
//! box around the text is copied into every frame.
//!
//! Why: `textoverlay` blends its text into every frame although the text changes once
//! a second, through libgstvideo's generic line unpacking and packing: 0.43 ms a
//! 1280x720 frame, about 0.65 % of a core at 15 fps, the largest part of the
//! composite's compositor thread (docs/benchmarks.md). Copying the box's rows is a few
//! microseconds. An opaque box is also what the products in this field (and ffmpeg's
//! `drawtext box=1`) burn in: the time stays legible on any picture.
//!
//! The twin runs synchronously in the caller's thread: its pads are linked to two pads
//! of ours, no pipeline and no thread of its own.

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use std::sync::{Arc, Mutex};

/// Black in 8-bit video range: the box's background and the twin's canvas.
const BLACK_Y: u8 = 16;
const BLACK_CHROMA: u8 = 128;

/// Room left around the text inside the box, in pixels.
const MARGIN_PX: u32 = 6;

/// Why a caption could not be painted (the caller falls back to the overlay itself).
#[derive(Debug, thiserror::Error)]
pub(super) enum PaintError {
    #[error("the picture's format {0:?} is not planar 8-bit YUV")]
    Format(gst_video::VideoFormat),
    #[error("the caption's twin overlay failed: {0}")]
    Overlay(String),
    #[error("the caption's twin overlay returned no picture")]
    NoPicture,
}

/// A rectangle of the picture, in pixels, its edges on even coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BoxRect {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
}

impl BoxRect {
    fn union(self, o: BoxRect) -> BoxRect {
        BoxRect {
            x0: self.x0.min(o.x0),
            y0: self.y0.min(o.y0),
            x1: self.x1.max(o.x1),
            y1: self.y1.max(o.y1),
        }
    }
}

/// One second's caption, ready to be copied into frames of the same format.
#[derive(Debug)]
pub(super) struct Stamp {
    picture: gst::Buffer,
    info: gst_video::VideoInfo,
    rect: BoxRect,
}

impl Stamp {
    /// Copies the box into `frame` (a frame described by the stamp's info).
    pub(super) fn apply(&self, frame: &mut gst::BufferRef) -> Result<(), gst::glib::BoolError> {
        let src = gst_video::VideoFrameRef::from_buffer_ref_readable(&self.picture, &self.info)?;
        let mut dst = gst_video::VideoFrameRef::from_buffer_ref_writable(frame, &self.info)?;
        let finfo = self.info.format_info();
        for plane in 0..self.info.n_planes() {
            let Some(comp) =
                (0..finfo.n_components()).find(|&c| finfo.plane()[c as usize] == plane)
            else {
                continue;
            };
            let c = comp as usize;
            let (wsub, hsub) = (finfo.w_sub()[c], finfo.h_sub()[c]);
            let pstride = finfo.pixel_stride()[c] as usize;
            let (bx0, bx1) = (
                (self.rect.x0 >> wsub) as usize * pstride,
                (self.rect.x1 >> wsub) as usize * pstride,
            );
            let src_stride = src.plane_stride()[plane as usize] as usize;
            let dst_stride = dst.plane_stride()[plane as usize] as usize;
            let src_data = src.plane_data(plane)?;
            let dst_data = dst.plane_data_mut(plane)?;
            for row in (self.rect.y0 >> hsub) as usize..(self.rect.y1 >> hsub) as usize {
                let (s, d) = (row * src_stride, row * dst_stride);
                let (Some(from), Some(to)) = (
                    src_data.get(s + bx0..s + bx1),
                    dst_data.get_mut(d + bx0..d + bx1),
                ) else {
                    return Err(gst::glib::bool_error!("the box lies outside the frame"));
                };
                to.copy_from_slice(from);
            }
        }
        Ok(())
    }
}

/// The twin overlay and the pads it is driven through.
#[derive(Debug)]
pub(super) struct Painter {
    twin: gst::Element,
    src: gst::Pad,
    _sink: gst::Pad,
    out: Arc<Mutex<Option<gst::Buffer>>>,
    caps: Option<gst::Caps>,
    next_pts_s: u64,
    /// The box of the caption painted last, with its text's first line and format: a
    /// box only grows while they stay the same, so it does not twitch as digits of
    /// different widths come and go.
    last: Option<(String, gst_video::VideoInfo, BoxRect)>,
}

impl Painter {
    /// A painter drawing as `style` (a `textoverlay`) is set to draw, on black.
    pub(super) fn new(style: &gst::Element) -> Result<Painter, gst::glib::BoolError> {
        let twin = gst::ElementFactory::make("textoverlay").build()?;
        for pspec in style.list_properties() {
            let flags = pspec.flags();
            let name = pspec.name();
            if !flags.contains(gst::glib::ParamFlags::READWRITE)
                || flags.contains(gst::glib::ParamFlags::CONSTRUCT_ONLY)
                || ["name", "parent", "text", "silent", "shaded-background"].contains(&name)
            {
                continue;
            }
            twin.set_property_from_value(name, &style.property_value(name));
        }
        // The box is the background: shading would only darken black.
        twin.set_property("shaded-background", false);
        let out: Arc<Mutex<Option<gst::Buffer>>> = Arc::default();
        let template = gst::PadTemplate::new(
            "sink",
            gst::PadDirection::Sink,
            gst::PadPresence::Always,
            // Plain system memory: the twin must blend, not attach its text as a meta.
            &gst::Caps::builder("video/x-raw").build(),
        )?;
        let kept = out.clone();
        let sink = gst::Pad::builder_from_template(&template)
            .chain_function(move |_, _, buffer| {
                if let Ok(mut o) = kept.lock() {
                    *o = Some(buffer);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build();
        let src = gst::Pad::builder(gst::PadDirection::Src).build();
        let twin_sink = twin
            .static_pad("video_sink")
            .ok_or_else(|| gst::glib::bool_error!("textoverlay has no video_sink"))?;
        let twin_src = twin
            .static_pad("src")
            .ok_or_else(|| gst::glib::bool_error!("textoverlay has no src"))?;
        src.link(&twin_sink)
            .map_err(|e| gst::glib::bool_error!("linking the twin: {e:?}"))?;
        twin_src
            .link(&sink)
            .map_err(|e| gst::glib::bool_error!("linking the twin: {e:?}"))?;
        src.set_active(true)?;
        sink.set_active(true)?;
        twin.set_state(gst::State::Playing)
            .map_err(|e| gst::glib::bool_error!("starting the twin: {e:?}"))?;
        src.push_event(gst::event::StreamStart::new("courtrec-caption"));
        Ok(Painter {
            twin,
            src,
            _sink: sink,
            out,
            caps: None,
            next_pts_s: 0,
            last: None,
        })
    }

    /// `text` (Pango markup) drawn on black in frames described by `caps`.
    pub(super) fn paint(&mut self, text: &str, caps: &gst::Caps) -> Result<Stamp, PaintError> {
        let info = gst_video::VideoInfo::from_caps(caps)
            .map_err(|e| PaintError::Overlay(e.to_string()))?;
        let finfo = info.format_info();
        if !finfo.is_yuv()
            || finfo.bits() != 8
            || (0..finfo.n_components()).any(|c| finfo.pixel_stride()[c as usize] > 2)
        {
            return Err(PaintError::Format(info.format()));
        }
        if self.caps.as_ref() != Some(caps) {
            if !self.src.push_event(gst::event::Caps::new(caps)) {
                return Err(PaintError::Overlay(format!("caps {caps} refused")));
            }
            if self.caps.is_none() {
                let segment = gst::FormattedSegment::<gst::ClockTime>::new();
                self.src.push_event(gst::event::Segment::new(&segment));
            }
            self.caps = Some(caps.clone());
        }
        self.twin.set_property("text", text);
        let mut canvas = black_frame(&info).map_err(|e| PaintError::Overlay(e.to_string()))?;
        if let Some(b) = canvas.get_mut() {
            b.set_pts(gst::ClockTime::from_seconds(self.next_pts_s));
            b.set_duration(gst::ClockTime::SECOND);
        }
        self.next_pts_s += 1;
        if let Err(e) = self.src.push(canvas) {
            // Negotiated afresh next time (a refused format must not stick).
            self.caps = None;
            return Err(PaintError::Overlay(format!("{e:?}")));
        }
        let picture = self
            .out
            .lock()
            .ok()
            .and_then(|mut o| o.take())
            .ok_or(PaintError::NoPicture)?;
        let found = text_bounds(&picture, &info).map_err(|e| PaintError::Overlay(e.to_string()))?;
        let first_line = text.lines().next().unwrap_or_default().to_string();
        let rect = match (&self.last, found) {
            (Some((line, i, prev)), Some(r)) if *line == first_line && *i == info => prev.union(r),
            (Some((line, i, prev)), None) if *line == first_line && *i == info => *prev,
            (_, Some(r)) => r,
            // Nothing drawn (an empty text): an empty box.
            (_, None) => BoxRect {
                x0: 0,
                y0: 0,
                x1: 0,
                y1: 0,
            },
        };
        self.last = Some((first_line, info.clone(), rect));
        Ok(Stamp {
            picture,
            info,
            rect,
        })
    }
}

impl Drop for Painter {
    fn drop(&mut self) {
        let _ = self.twin.set_state(gst::State::Null);
    }
}

/// A black frame as `info` describes it.
fn black_frame(info: &gst_video::VideoInfo) -> Result<gst::Buffer, gst::glib::BoolError> {
    let mut buffer = gst::Buffer::with_size(info.size())?;
    {
        let b = buffer
            .get_mut()
            .ok_or_else(|| gst::glib::bool_error!("a new buffer is not writable"))?;
        let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(b, info)?;
        let finfo = info.format_info();
        for plane in 0..info.n_planes() {
            // Luma's plane (the first in every planar and semi-planar YUV format).
            let value = if finfo.plane()[0] == plane {
                BLACK_Y
            } else {
                BLACK_CHROMA
            };
            frame.plane_data_mut(plane)?.fill(value);
        }
    }
    Ok(buffer)
}

/// The rectangle (with a margin, on even coordinates) holding every pixel of the
/// painted picture that is not black luma; None when nothing was drawn.
fn text_bounds(
    picture: &gst::Buffer,
    info: &gst_video::VideoInfo,
) -> Result<Option<BoxRect>, gst::glib::BoolError> {
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(picture, info)?;
    let finfo = info.format_info();
    let luma = finfo.plane()[0];
    let pstride = finfo.pixel_stride()[0] as usize;
    let offset = finfo.poffset()[0] as usize;
    let stride = frame.plane_stride()[luma as usize] as usize;
    let data = frame.plane_data(luma)?;
    let (w, h) = (info.width(), info.height());
    let mut found: Option<BoxRect> = None;
    for y in 0..h {
        let start = y as usize * stride;
        let Some(row) = data.get(start..start + w as usize * pstride) else {
            break;
        };
        let lit = |x: &u32| row[offset + *x as usize * pstride] != BLACK_Y;
        let Some(first) = (0..w).find(lit) else {
            continue;
        };
        let last = (first..w).rev().find(lit).unwrap_or(first);
        let r = BoxRect {
            x0: first,
            y0: y,
            x1: last + 1,
            y1: y + 1,
        };
        found = Some(found.map_or(r, |f| f.union(r)));
    }
    // Even edges: a 4:2:0 picture's chroma covers two pixels each way.
    let even_up = |v: u32, max: u32| ((v + 1) & !1).min(max);
    Ok(found.map(|r| BoxRect {
        x0: r.x0.saturating_sub(MARGIN_PX) & !1,
        y0: r.y0.saturating_sub(MARGIN_PX) & !1,
        x1: even_up(r.x1 + MARGIN_PX, w),
        y1: even_up(r.y1 + MARGIN_PX, h),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn style() -> gst::Element {
        gst::init().unwrap();
        gst::ElementFactory::make("textoverlay")
            .property_from_str("halignment", "right")
            .property_from_str("valignment", "bottom")
            .property_from_str("line-alignment", "right")
            .property("font-desc", "Sans 18")
            .property("shaded-background", true)
            .build()
            .unwrap()
    }

    fn caps(format: &str) -> gst::Caps {
        format!("video/x-raw,format={format},width=640,height=360,framerate=15/1")
            .parse()
            .unwrap()
    }

    /// Every lit pixel of the painted picture lies in the box.
    fn lit_outside(stamp: &Stamp) -> usize {
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(&stamp.picture, &stamp.info)
            .unwrap();
        let stride = frame.plane_stride()[0] as usize;
        let y = frame.plane_data(0).unwrap();
        let r = stamp.rect;
        (0..360u32)
            .flat_map(|row| (0..640u32).map(move |x| (x, row)))
            .filter(|&(x, row)| !(r.x0..r.x1).contains(&x) || !(r.y0..r.y1).contains(&row))
            .filter(|&(x, row)| y[row as usize * stride + x as usize] != BLACK_Y)
            .count()
    }

    #[test]
    fn the_box_holds_the_text_and_only_grows_while_the_caption_stays() {
        let mut p = Painter::new(&style()).unwrap();
        let a = p
            .paint("CASE-1\n 2026-12-04 11:11:11", &caps("I420"))
            .unwrap();
        let r = a.rect;
        assert!(r.x0 < r.x1 && r.y0 < r.y1, "a box: {r:?}");
        assert!(
            r.x1 <= 640 && r.y1 <= 360 && r.x0 > 320 && r.y0 > 180,
            "bottom right: {r:?}"
        );
        assert!(
            [r.x0, r.y0, r.x1, r.y1].iter().all(|v| v % 2 == 0),
            "even edges: {r:?}"
        );
        assert_eq!(lit_outside(&a), 0, "the text lies in its box");
        // Wider digits a second later: the box grows to hold them, never shrinks back.
        let b = p
            .paint("CASE-1\n 2026-12-04 00:00:00", &caps("I420"))
            .unwrap();
        assert_eq!(lit_outside(&b), 0);
        let rb = b.rect;
        assert!(
            rb.x0 <= r.x0 && rb.y0 <= r.y0 && rb.x1 >= r.x1 && rb.y1 >= r.y1,
            "{rb:?} holds {r:?}"
        );
        let c = p
            .paint("CASE-1\n 2026-12-04 11:11:12", &caps("I420"))
            .unwrap();
        assert_eq!(c.rect, rb, "the box keeps its size within one caption");
        // Another caption gets a box of its own: a longer case number, a wider box.
        let d = p
            .paint(
                "(2026)X0101民初12345号\n 2026-12-04 11:11:13",
                &caps("I420"),
            )
            .unwrap();
        assert!(d.rect.x0 < rb.x0, "{:?} is wider than {rb:?}", d.rect);
        assert_eq!(lit_outside(&d), 0);
        // Another format: painted for it.
        let e = p
            .paint("CASE-1\n 2026-12-04 11:11:14", &caps("NV12"))
            .unwrap();
        assert_eq!(lit_outside(&e), 0);
        assert!(e.rect.x0 < e.rect.x1);
    }

    #[test]
    fn a_format_that_cannot_be_boxed_is_refused() {
        let mut p = Painter::new(&style()).unwrap();
        let e = p.paint("CASE-1", &caps("RGB")).unwrap_err();
        assert!(matches!(e, PaintError::Format(_)), "{e}");
        // And the painter still paints afterwards.
        assert!(p.paint("CASE-1", &caps("I420")).is_ok());
    }

    /// The box is copied into a frame: inside it, the painted picture; outside, the
    /// frame as it was.
    #[test]
    fn applying_copies_the_box_and_nothing_else() {
        let mut p = Painter::new(&style()).unwrap();
        let stamp = p
            .paint("CASE-1\n 2026-12-04 11:11:11", &caps("I420"))
            .unwrap();
        let info = gst_video::VideoInfo::from_caps(&caps("I420")).unwrap();
        let mut frame = gst::Buffer::from_mut_slice(vec![200u8; info.size()]);
        stamp.apply(frame.get_mut().unwrap()).unwrap();
        let out = frame.map_readable().unwrap();
        let painted = stamp.picture.map_readable().unwrap();
        let r = stamp.rect;
        for y in 0..360u32 {
            for x in 0..640u32 {
                let i = (y * 640 + x) as usize;
                let inside = (r.x0..r.x1).contains(&x) && (r.y0..r.y1).contains(&y);
                let want = if inside { painted[i] } else { 200 };
                assert_eq!(out[i], want, "luma at {x},{y} (box {r:?})");
            }
        }
        let u0 = 640 * 360;
        for y in 0..180u32 {
            for x in 0..320u32 {
                let i = u0 + (y * 320 + x) as usize;
                let inside = (r.x0 / 2..r.x1 / 2).contains(&x) && (r.y0 / 2..r.y1 / 2).contains(&y);
                let want = if inside { painted[i] } else { 200 };
                assert_eq!(out[i], want, "chroma at {x},{y}");
            }
        }
    }
}
