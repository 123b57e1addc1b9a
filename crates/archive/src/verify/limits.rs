//! The verifier's tolerances and bounds, and how a verification is run.

use crate::progress::{NoProgress, Progress};
use std::path::PathBuf;

/// Largest manifest or bundle description read (see [`crate::fsread::MAX_LOG_BYTES`]).
pub const MAX_MANIFEST_BYTES: u64 = crate::fsread::MAX_LOG_BYTES;
/// Media time between consecutive segments (or a run's edge) that counts as a gap.
pub const GAP_TOLERANCE_NS: i64 = 500_000_000;
/// How long a video track (camera or composite) may wait for a keyframe after a run starts
/// (IP cameras recorded without re-encoding start at their next keyframe).
pub const KEYFRAME_WAIT_NS: i64 = 5_000_000_000;
/// How late a device fault may be logged after the gap it explains began (the alarm
/// monitor notices a failure within a few seconds).
pub const FAULT_LAG_NS: i64 = 5_000_000_000;
/// How much before a recovery's `gap_from` (the end of the last durable segment of any
/// track) a track may have stopped: a crash loses what was still in the encoders (the
/// composite lags the cameras by its mixing latency) and not yet made durable.
pub const CRASH_LAG_NS: i64 = 2_000_000_000;

/// How to verify, beyond whom to trust.
pub struct Options<'a> {
    /// The device log to check a hearing against (default: the one beside the folder).
    pub device_log: Option<PathBuf>,
    pub progress: &'a dyn Progress,
    /// A hearing whose segments are in a store, not in the folder (see [`Remote`]).
    pub remote: Option<&'a dyn Remote>,
}

/// A hearing in the archive's bucket: its small files (manifest chunks, checkpoints,
/// key) downloaded into the folder, its segments read where they are. The caller does
/// the reading (this crate has no network): the verifier asks for every segment's
/// SHA-256 and length, read in full, and for every object there is (decoys count).
pub trait Remote: Sync {
    /// SHA-256 and length of each object (paths relative to the hearing), in order.
    fn hash_all(&self, rels: &[String], progress: &dyn Progress) -> Vec<crate::fsread::HashResult>;
    /// Every object under the hearing's prefix, relative to it.
    fn list(&self) -> Vec<String>;
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            device_log: None,
            progress: &NoProgress,
            remote: None,
        }
    }
}
