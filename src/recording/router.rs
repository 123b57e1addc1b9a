//! The frame sink capture pushes to (see [`Router`]).

use super::recorder::Session;
use crate::capture::{Frame, FrameSink};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How much media per track the router keeps while no session runs (see [`Router`]).
const RECENT_NS: i64 = 1_000_000_000;

/// The frame sink capture pushes to: forwards to the open session, if any.
///
/// Frames can reach the router a little before the clock reads their timestamps, so a
/// session cannot simply start with "frames from now on": a keyframe stamped just after
/// the start may already have gone by (and the encoder, having just made one, will not
/// force another, so the track would start a whole keyframe interval late). While no
/// session runs, the router therefore keeps the last second of each track;
/// [`Router::install`] hands it to the new session, whose [`Session::begin`] keeps
/// what is at or after the start.
pub struct Router {
    state: Mutex<RouterState>,
    /// Frames seen per track since start, recording or not.
    seen: Vec<AtomicU64>,
    /// Of those, the frames of each track's first stream (the composite's picture, not
    /// its sound): what shows its encoder has started (see `wait_all_flowing`).
    first_seen: Vec<AtomicU64>,
    /// When each track last delivered a frame, in ms since `epoch` (0: never).
    last_frame_ms: Vec<AtomicU64>,
    epoch: Instant,
}

struct RouterState {
    session: Option<Arc<Session>>,
    recent: Vec<std::collections::VecDeque<Frame>>,
}

impl Router {
    pub fn new(tracks: usize) -> Router {
        Router {
            state: Mutex::new(RouterState {
                session: None,
                recent: (0..tracks)
                    .map(|_| std::collections::VecDeque::new())
                    .collect(),
            }),
            seen: (0..tracks).map(|_| AtomicU64::new(0)).collect(),
            first_seen: (0..tracks).map(|_| AtomicU64::new(0)).collect(),
            last_frame_ms: (0..tracks).map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
        }
    }

    /// How long each track has delivered no frame while a session records (None: no
    /// session, so none is expected: the encoders rest between runs). A recorded
    /// track can stall while its sources are fine (a compositor or an encoder that
    /// stops): the source alarms would not see it, so the monitor watches this.
    pub fn silences(&self) -> Vec<Option<Duration>> {
        if self.state.lock().map_or(true, |st| st.session.is_none()) {
            return vec![None; self.last_frame_ms.len()];
        }
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        self.last_frame_ms
            .iter()
            .map(|t| match t.load(Ordering::Relaxed) {
                0 => None,
                at => Some(Duration::from_millis(now_ms.saturating_sub(at))),
            })
            .collect()
    }

    /// Frames each track has delivered since start, recording or not.
    pub fn frames_seen(&self) -> Vec<u64> {
        self.seen
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// Makes `s` receive every frame from now on, and returns the frames of the last
    /// second (per track, oldest first) for its [`Session::begin`].
    pub fn install(&self, s: Arc<Session>) -> Vec<(usize, Frame)> {
        let Ok(mut st) = self.state.lock() else {
            return Vec::new();
        };
        st.session = Some(s);
        // Silence counts from now: a track that delivers nothing in this run (its
        // encoder never starting) is as stalled as one that stops.
        self.mark_all_heard();
        let mut out = Vec::new();
        for (track, q) in st.recent.iter_mut().enumerate() {
            out.extend(q.drain(..).map(|f| (track, f)));
        }
        out
    }

    fn mark_all_heard(&self) {
        let now_ms = self.epoch.elapsed().as_millis() as u64 + 1; // never 0 ("no frame")
        for t in &self.last_frame_ms {
            t.fetch_max(now_ms, Ordering::Relaxed);
        }
    }

    /// Stops forwarding frames (after a session has stopped).
    pub fn clear(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.session = None;
        }
    }

    /// Waits until every track has delivered a frame of its first stream (so its
    /// encoder runs and will honour a keyframe request), or the timeout passes.
    /// Returns the silent tracks. An encoder's very first frame takes any keyframe
    /// request pending, whatever its time (GstVideoEncoder, seen with x264enc): one that
    /// had never run before a hearing opened would start its track a keyframe interval
    /// late, so every encoder makes a frame before the encoders first rest.
    pub fn wait_all_flowing(&self, timeout: Duration) -> Vec<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            let silent: Vec<usize> = (0..self.first_seen.len())
                .filter(|&i| self.first_seen[i].load(Ordering::Relaxed) == 0)
                .collect();
            if silent.is_empty() || Instant::now() >= deadline {
                return silent;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl FrameSink for Router {
    fn push(&self, track: usize, frame: Frame) {
        // Test hook (`COURTREC_FAULTS=capture.stall@n+`, see archive::fault): from the
        // n-th frame on nothing reaches the recorder, as if the pipeline had wedged.
        if crate::archive::fault::hit("capture.stall", std::path::Path::new("")).is_err() {
            return;
        }
        if let Some(c) = self.seen.get(track) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        if frame.stream == 0
            && let Some(c) = self.first_seen.get(track)
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(t) = self.last_frame_ms.get(track) {
            // Never 0, which means "no frame yet".
            t.store(
                self.epoch.elapsed().as_millis() as u64 + 1,
                Ordering::Relaxed,
            );
        }
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        if let Some(s) = st.session.as_ref() {
            s.route(track, frame);
        } else if let Some(q) = st.recent.get_mut(track) {
            let newest = frame.pts_ns;
            q.push_back(frame);
            while q.front().is_some_and(|f| f.pts_ns < newest - RECENT_NS) {
                q.pop_front();
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A keyframe of 100 bytes at `pts_ms` (the recorder's tests use it too).
    pub(crate) fn key(pts_ms: i64) -> Frame {
        Frame {
            stream: 0,
            pts_ns: pts_ms * 1_000_000,
            dts_ns: None,
            duration_ns: 66_666_667,
            keyframe: true,
            discont: false,
            data: Box::new(vec![0u8; 100]),
        }
    }
}
