//! What flows between capture and recording: encoded frames and the kinds of stream
//! they belong to. A module of its own, so that capture need not know recording nor
//! recording know GStreamer.

/// The kind of an elementary stream of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamType {
    /// H.264 byte stream (Annex B), one access unit per frame.
    H264,
    /// AAC in ADTS frames.
    AacAdts,
}

/// One encoded frame. Timestamps are the pipeline's running time when it comes from
/// capture, and the hearing's media time once the recorder has rebased it.
pub struct Frame {
    /// Index of the elementary stream within its track (0 = video or the only stream).
    pub stream: usize,
    pub pts_ns: i64,
    pub dts_ns: Option<i64>,
    pub duration_ns: u64,
    pub keyframe: bool,
    /// The stream changed source here (e.g. a camera's own H.264 replaced by the
    /// "signal lost" card): start a new segment at this keyframe.
    pub discont: bool,
    pub data: Box<dyn AsRef<[u8]> + Send>,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("stream", &self.stream)
            .field("pts_ns", &self.pts_ns)
            .field("keyframe", &self.keyframe)
            .field("bytes", &(*self.data).as_ref().len())
            .finish()
    }
}
