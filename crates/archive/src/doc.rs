//! A hearing as its manifest describes it: metadata, state, events and track totals,
//! derived from the manifest's records by one function ([`HearingDoc::apply`]), so any
//! index built from it can be rebuilt from the files, which stay the source of truth.

use crate::error::{Error, ErrorKind, Result};
use crate::records::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HearingState {
    /// Created, not yet opened.
    Scheduled,
    /// Open and recording.
    Open,
    /// Interrupted by a recess (not recording).
    Recess,
    Closed,
}

impl HearingState {
    pub fn as_str(self) -> &'static str {
        match self {
            HearingState::Scheduled => "scheduled",
            HearingState::Open => "open",
            HearingState::Recess => "recess",
            HearingState::Closed => "closed",
        }
    }
}

/// Totals of one track, for listings and checks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrackStats {
    pub segments: u64,
    pub bytes: u64,
    pub duration_ns: u64,
    pub last_seq: u64,
    /// End of the last segment on the media timeline.
    pub media_end_ns: i64,
}

/// A hearing as the index holds it: metadata, state, events and track totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HearingDoc {
    pub id: String,
    pub meta: HearingMeta,
    pub created_at: String,
    pub state: HearingState,
    pub events: Vec<EventRecord>,
    pub track_stats: BTreeMap<String, TrackStats>,
    /// Number of manifest entries applied (to compare with the file).
    pub manifest_entries: u64,
    /// The public livestream's policy state, from the livestream events.
    #[serde(default)]
    pub livestream: LivestreamState,
}

/// Whether a hearing may be streamed, and how (derived from its events).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LivestreamState {
    pub approved: bool,
    pub approved_by: Option<String>,
    /// Cameras and microphones left out of the public picture and sound.
    pub excluded: Vec<String>,
    /// The clerk cut the stream.
    pub cut: bool,
}

impl HearingDoc {
    /// The public may watch it now: approved, public, open or in recess.
    pub fn streaming(&self) -> bool {
        self.livestream.approved
            && self.meta.visibility == Visibility::Public
            && matches!(self.state, HearingState::Open | HearingState::Recess)
    }

    /// The public stream shows the "paused" picture and silence: cut by the clerk, or
    /// a recess for non-public evidence or mediation.
    pub fn stream_paused(&self) -> bool {
        self.livestream.cut
            || (self.state == HearingState::Recess
                && self
                    .events
                    .iter()
                    .rev()
                    .find(|e| e.kind == EventKind::Recess)
                    .and_then(|e| e.reason)
                    .is_some_and(|r| r != RecessReason::Recess))
    }

    /// Starts a doc from the `created` event (the first manifest record).
    pub fn from_created(ev: &EventRecord) -> Result<HearingDoc> {
        let meta = match (ev.kind, &ev.meta) {
            (EventKind::Created, Some(m)) => m.clone(),
            _ => {
                return Err(Error::new(
                    ErrorKind::Invalid,
                    format!(
                        "hearing {}: first manifest record is not a `created` event",
                        ev.hearing_id
                    ),
                ));
            }
        };
        Ok(HearingDoc {
            id: ev.hearing_id.clone(),
            meta,
            created_at: ev.wall_time.clone(),
            state: HearingState::Scheduled,
            events: vec![ev.clone()],
            track_stats: BTreeMap::new(),
            manifest_entries: 1,
            livestream: LivestreamState::default(),
        })
    }

    /// Applies one more manifest record. The state follows the lifecycle events; the
    /// lifecycle code has already refused invalid transitions before writing them.
    pub fn apply(&mut self, rec: &Record) {
        self.manifest_entries += 1;
        match rec {
            Record::Event(ev) => {
                match ev.kind {
                    EventKind::Open | EventKind::Resume => self.state = HearingState::Open,
                    EventKind::Recess => self.state = HearingState::Recess,
                    EventKind::Close => self.state = HearingState::Closed,
                    EventKind::LivestreamApproved => {
                        self.livestream.approved = true;
                        self.livestream.approved_by = ev.actor.clone();
                        self.livestream.excluded = ev.tracks.clone().unwrap_or_default();
                    }
                    EventKind::LivestreamWithdrawn => self.livestream = LivestreamState::default(),
                    EventKind::LivestreamCut => self.livestream.cut = true,
                    EventKind::LivestreamRestored => self.livestream.cut = false,
                    _ => {}
                }
                self.events.push(ev.clone());
            }
            Record::Segment(s) => {
                let t = self.track_stats.entry(s.track.clone()).or_default();
                t.segments += 1;
                t.bytes = t.bytes.saturating_add(s.bytes);
                t.duration_ns = t.duration_ns.saturating_add(s.media_duration_ns);
                t.last_seq = t.last_seq.max(s.seq);
                t.media_end_ns =
                    t.media_end_ns
                        .max(s.media_start_ns.saturating_add(
                            i64::try_from(s.media_duration_ns).unwrap_or(i64::MAX),
                        ));
            }
        }
    }

    /// Builds a doc from a whole manifest.
    pub fn from_entries(entries: &[Entry]) -> Result<HearingDoc> {
        let Some(Entry {
            record: Record::Event(first),
            ..
        }) = entries.first()
        else {
            return Err(Error::new(
                ErrorKind::Invalid,
                "manifest has no `created` event",
            ));
        };
        let mut doc = HearingDoc::from_created(first)?;
        for e in &entries[1..] {
            doc.apply(&e.record);
        }
        Ok(doc)
    }
}
