//! What the recording counts for court IT's Prometheus (`GET /metrics`, see
//! `http::metrics`): process-wide counters and the fsync latency histogram, kept here
//! (a leaf module: the recording writes, the API reads, neither imports the other).
//! Everything else on `/metrics` is read from the daemon's state at scrape time.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::OnceLock;

/// A `track` label.
pub type TrackLabel = Vec<(&'static str, String)>;

pub struct Recording {
    pub segments_written: Family<TrackLabel, Counter>,
    pub bytes_written: Family<TrackLabel, Counter>,
    pub frames_dropped: Family<TrackLabel, Counter>,
    /// Seconds per fsync of a segment (the periodic data sync and the final one).
    pub fsync_seconds: Histogram,
}

/// The process's recording counters.
pub fn recording() -> &'static Recording {
    static R: OnceLock<Recording> = OnceLock::new();
    R.get_or_init(|| Recording {
        segments_written: Family::default(),
        bytes_written: Family::default(),
        frames_dropped: Family::default(),
        // 0.5 ms to 4 s: a healthy SSD answers in about a millisecond, a failing or
        // overloaded disk in hundreds.
        fsync_seconds: Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            0.0005, 2.0, 14,
        )),
    })
}

pub fn track(name: &str) -> TrackLabel {
    vec![("track", name.to_string())]
}

/// Times `f` (an fsync) into the histogram.
pub fn time_fsync<T>(f: impl FnOnce() -> T) -> T {
    let t = std::time::Instant::now();
    let out = f();
    recording().fsync_seconds.observe(t.elapsed().as_secs_f64());
    out
}
