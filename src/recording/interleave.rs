//! Puts the frames of a multi-stream track (the composite: video and mixed audio) in
//! timestamp order before they are written. The two streams reach the writer with
//! different latencies (encoding 720p takes longer than mixing audio); written in
//! arrival order, audio would straddle segment cuts and be lost before the first
//! keyframe. A frame is released once every stream has delivered one at least as
//! late, or once it is `max_span_ns` behind the newest frame (a stream that stopped
//! must not hold the others back).

use crate::capture::Frame;
use std::collections::VecDeque;

pub struct Interleaver {
    queues: Vec<VecDeque<Frame>>,
    newest_ns: i64,
    max_span_ns: i64,
}

impl Interleaver {
    pub fn new(streams: usize, max_span_ns: i64) -> Interleaver {
        Interleaver {
            queues: (0..streams).map(|_| VecDeque::new()).collect(),
            newest_ns: i64::MIN,
            max_span_ns,
        }
    }

    pub fn push(&mut self, f: Frame) {
        self.newest_ns = self.newest_ns.max(f.pts_ns);
        let s = f.stream.min(self.queues.len() - 1);
        self.queues[s].push_back(f);
    }

    fn oldest_head(&self) -> Option<usize> {
        (0..self.queues.len())
            .filter_map(|i| {
                self.queues[i]
                    .front()
                    .map(|f| (f.dts_ns.unwrap_or(f.pts_ns), i))
            })
            .min()
            .map(|(_, i)| i)
    }

    /// The next frame that may be written now.
    pub fn pop_ready(&mut self) -> Option<Frame> {
        let i = self.oldest_head()?;
        let all_present = self.queues.iter().all(|q| !q.is_empty());
        let head_ns = self.queues[i].front().map(|f| f.pts_ns)?;
        if all_present || self.newest_ns - head_ns > self.max_span_ns {
            self.queues[i].pop_front()
        } else {
            None
        }
    }

    /// The next frame in order, whatever is still missing (at a stop).
    pub fn pop_any(&mut self) -> Option<Frame> {
        let i = self.oldest_head()?;
        self.queues[i].pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(stream: usize, ms: i64) -> Frame {
        Frame {
            stream,
            pts_ns: ms * 1_000_000,
            dts_ns: None,
            duration_ns: 0,
            keyframe: true,
            discont: false,
            data: Box::new(Vec::<u8>::new()),
        }
    }

    #[test]
    fn late_audio_is_put_in_order() {
        let mut il = Interleaver::new(2, 1_000_000_000);
        let mut out = Vec::new();
        // Video arrives first for 0..200 ms, then audio catches up.
        for ms in [0, 66, 133, 200] {
            il.push(f(0, ms));
            out.extend(
                std::iter::from_fn(|| il.pop_ready()).map(|x| (x.stream, x.pts_ns / 1_000_000)),
            );
        }
        assert!(out.is_empty(), "nothing released before audio arrives");
        for ms in [0, 21, 42, 64, 85, 106, 128, 149, 170, 192, 213] {
            il.push(f(1, ms));
            out.extend(
                std::iter::from_fn(|| il.pop_ready()).map(|x| (x.stream, x.pts_ns / 1_000_000)),
            );
        }
        let times: Vec<i64> = out.iter().map(|x| x.1).collect();
        let mut sorted = times.clone();
        sorted.sort();
        assert_eq!(times, sorted, "{out:?}");
        assert_eq!(out.iter().filter(|x| x.0 == 0).count(), 4);
    }

    #[test]
    fn a_stopped_stream_does_not_hold_the_other_back() {
        let mut il = Interleaver::new(2, 500_000_000);
        il.push(f(1, 0));
        assert!(il.pop_ready().is_none());
        il.push(f(1, 600));
        assert_eq!(il.pop_ready().map(|x| x.pts_ns), Some(0));
        assert!(il.pop_ready().is_none());
        assert_eq!(il.pop_any().map(|x| x.pts_ns), Some(600_000_000));
    }
}
