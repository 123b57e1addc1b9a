//! The records of a hearing's manifest. Each is serialised as one line of canonical
//! JSON (fields in declaration order, no optional field written when absent), so the
//! same record always has the same bytes and the same hash.
//!
//! A segment record carries everything the integrity layer needs as a Merkle leaf
//! (hearing id, device id, track, sequence, length, SHA-256, media start and duration,
//! wall-clock start), so signing can be added without changing what is written.

use serde::{Deserialize, Serialize};

/// Why a hearing was interrupted (the reasons the 2017 rules allow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecessReason {
    Recess,
    NonPublicEvidence,
    Mediation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    Public,
    NonPublic,
    /// Viewable only by judges an admin granted it to (and parties with a code).
    Sealed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackKind {
    /// One camera, H.264.
    Video,
    /// One microphone, AAC mono.
    Audio,
    /// The multi-pane picture with the time overlay, plus the mixed audio.
    Composite,
}

/// A track of a hearing, fixed when the hearing is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    pub name: String,
    pub kind: TrackKind,
    pub role: String,
    #[serde(default)]
    pub label: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The hearing was scheduled (its metadata and tracks).
    Created,
    Open,
    Recess,
    Resume,
    Close,
    Mark,
    /// A device failed while recording (camera lost, microphone silent, disk full...).
    DeviceFault,
    /// A device that had failed works again.
    DeviceRestored,
    /// The daemon restarted after a crash and resumed the hearing; covers the gap.
    Recovery,
    /// Someone exported the hearing or a clip of it (chain of custody). The only kind
    /// written after the close.
    Export,
    /// A judge approved streaming this (public) hearing; `excluded` lists the cameras
    /// and microphones left out of the public picture and sound.
    LivestreamApproved,
    /// The approval was withdrawn: the stream stops.
    LivestreamWithdrawn,
    /// The clerk cut the public stream (a "stream paused" picture and silence).
    LivestreamCut,
    /// The clerk restored it.
    LivestreamRestored,
    /// The box's wall clock moved against its monotonic clock by more than a second
    /// (`step_ms`): NTP stepping it, or a person setting the time. Wall-clock times of
    /// segments and the burned-in time follow the new clock from `media_time_ns` on
    /// (see [`crate::wallclock`]).
    ClockStep,
}

/// Metadata carried by the `created` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HearingMeta {
    pub case_number: String,
    pub title: String,
    pub courtroom: String,
    pub visibility: Visibility,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_start: Option<String>,
    pub tracks: Vec<TrackInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub hearing_id: String,
    pub device_id: String,
    pub kind: EventKind,
    /// Wall-clock time, RFC 3339 UTC with milliseconds.
    pub wall_time: String,
    /// Position on the hearing's media timeline, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_time_ns: Option<i64>,
    /// Who did it (user name), for actions taken by a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RecessReason>,
    /// Free text: the clerk's mark, the recess note, or what a fault was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The device a fault or restoration is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// For `recovery`: the media time range that was lost. For `export`: the range
    /// exported (absent: the whole hearing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap_from_ns: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap_to_ns: Option<i64>,
    /// For `created`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<HearingMeta>,
    /// For `export`: the tracks exported (all when absent). For `livestream_approved`:
    /// the sources left out of the public stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracks: Option<Vec<String>>,
    /// For `export`: what the bundle carries, so that nothing can be dropped from it
    /// unseen: `events` (every event line up to this one) and, per track, segments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<std::collections::BTreeMap<String, u64>>,
    /// For `clock_step`: how far the wall clock moved (negative: set back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_ms: Option<i64>,
}

impl EventRecord {
    /// An event with every optional field empty; callers set what applies.
    pub fn new(hearing_id: &str, device_id: &str, kind: EventKind, wall_time: String) -> Self {
        EventRecord {
            hearing_id: hearing_id.to_string(),
            device_id: device_id.to_string(),
            kind,
            wall_time,
            media_time_ns: None,
            actor: None,
            reason: None,
            text: None,
            source: None,
            gap_from_ns: None,
            gap_to_ns: None,
            meta: None,
            tracks: None,
            counts: None,
            step_ms: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentRecord {
    pub hearing_id: String,
    pub device_id: String,
    pub track: String,
    /// 1-based, contiguous per track.
    pub seq: u64,
    /// Path relative to the hearing folder.
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    pub media_start_ns: i64,
    pub media_duration_ns: u64,
    /// Wall-clock time of the segment's first frame, RFC 3339 UTC with milliseconds.
    pub wall_start: String,
    /// Set when the segment was cut off by a crash and recorded by recovery.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

/// One line of a manifest.
// Events are the larger variant (400 bytes against 184; `step_ms` took it 16 bytes
// over the lint's threshold). Boxing them would shrink a vector of a long hearing's
// lines (mostly segments) by about half, at an allocation per event and a change of
// every constructor; not worth it until a profile says memory is what limits verify
// or export (bench-export: time is).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    Event(EventRecord),
    Segment(SegmentRecord),
}

/// The envelope that chains a record to the one before it (a hearing's [`Record`], or
/// the device log's records).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry<R = Record> {
    /// 0-based position in the manifest.
    pub n: u64,
    /// Hex SHA-256 of the previous line's bytes (without its newline); 64 zeros first.
    pub prev: String,
    pub record: R,
}

impl Entry {
    /// The line's event, if it is one.
    pub fn event(&self) -> Option<&EventRecord> {
        match &self.record {
            Record::Event(ev) => Some(ev),
            Record::Segment(_) => None,
        }
    }
}

/// Wall-clock time as the manifest writes it.
pub fn format_wall(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
