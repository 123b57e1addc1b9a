//! The `sled` index: hearings (with their events and per-track totals), segments,
//! users and login tokens. Everything about hearings here is derived from the
//! manifests by [`HearingDoc::apply`], so `courtrec check --repair` can rebuild it from
//! the files, which stay the source of truth.

use super::records::*;
use crate::error::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

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
                t.bytes += s.bytes;
                t.duration_ns += s.media_duration_ns;
                t.last_seq = t.last_seq.max(s.seq);
                t.media_end_ns = t
                    .media_end_ns
                    .max(s.media_start_ns + s.media_duration_ns as i64);
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

/// What searches filter hearings on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HearingSummary {
    pub id: String,
    pub case_number: String,
    pub title: String,
    pub courtroom: String,
    /// Scheduled start, else creation (RFC 3339).
    pub when: String,
    pub created_at: String,
    pub visibility: Visibility,
}

/// The outcome of the last `verify` of a hearing (for badges and searches).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntegrityDoc {
    /// `verified`, `unsealed`, `modified`, `missing`, `gap`, `bad_signature`, `unusable`.
    pub status: String,
    pub exit_code: i32,
    /// The report's RESULT line.
    pub result: String,
    /// Manifest lines when checked: a hearing that grew since (an export) is re-checked.
    pub manifest_entries: u64,
    pub checked_at: String,
}

/// A user account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserDoc {
    pub name: String,
    pub role: crate::config::UserRole,
    pub password_hash: String,
}

/// A login session, stored under the SHA-256 of its bearer token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenDoc {
    pub user: String,
    pub role: crate::config::UserRole,
    pub expires_unix: i64,
    /// For a party: the one hearing the token opens, and the access code it came from
    /// (revoking the code ends the token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hearing: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_id: Option<String>,
}

/// A per-hearing access code for a party (only its SHA-256 is kept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessCodeDoc {
    pub code_id: String,
    pub hearing_id: String,
    pub code_sha256: String,
    /// Who the code is for, e.g. "plaintiff's lawyer".
    pub label: String,
    pub issued_by: String,
    pub issued_at: String,
    pub expires_unix: i64,
    #[serde(default)]
    pub revoked: bool,
}

/// The index database.
#[derive(Clone)]
pub struct Index {
    db: sled::Db,
    hearings: sled::Tree,
    segments: sled::Tree,
    users: sled::Tree,
    tokens: sled::Tree,
    integrity: sled::Tree,
    /// Small summaries of the hearings (what searches filter on), so a search over a
    /// court's archive reads kilobytes, not every hearing's events.
    summaries: sled::Tree,
    /// `code/<code id>` → AccessCodeDoc, `hash/<code sha256>` → code id,
    /// `grant/<hearing>/<user>` → who granted it and when.
    access: sled::Tree,
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::new(ErrorKind::Internal, format!("index encode: {e}")))
}

fn from_json<T: for<'de> Deserialize<'de>>(b: &[u8]) -> Result<T> {
    serde_json::from_slice(b).map_err(|e| {
        Error::new(
            ErrorKind::Internal,
            format!("index record unreadable ({e}); run `courtrec check --repair`"),
        )
    })
}

fn segment_key(hearing: &str, track: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(hearing.len() + track.len() + 10);
    k.extend_from_slice(hearing.as_bytes());
    k.push(0);
    k.extend_from_slice(track.as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

impl Index {
    pub fn open(path: &Path) -> Result<Index> {
        let db = sled::Config::new().path(path).open().map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!(
                    "cannot open the index at {} ({e}); is another courtrec running on this data folder?",
                    path.display()
                ),
            )
        })?;
        Ok(Index {
            hearings: db.open_tree("hearings")?,
            segments: db.open_tree("segments")?,
            users: db.open_tree("users")?,
            tokens: db.open_tree("tokens")?,
            integrity: db.open_tree("integrity")?,
            access: db.open_tree("access")?,
            summaries: db.open_tree("summaries")?,
            db,
        })
        .and_then(|i: Index| {
            // An index from before summaries existed: make them once.
            if i.summaries.len() != i.hearings.len() {
                for doc in i.hearings()? {
                    i.put_summary(&doc)?;
                }
            }
            Ok(i)
        })
    }

    fn put_summary(&self, doc: &HearingDoc) -> Result<()> {
        let s = HearingSummary {
            id: doc.id.clone(),
            case_number: doc.meta.case_number.clone(),
            title: doc.meta.title.clone(),
            courtroom: doc.meta.courtroom.clone(),
            when: doc
                .meta
                .scheduled_start
                .clone()
                .unwrap_or_else(|| doc.created_at.clone()),
            created_at: doc.created_at.clone(),
            visibility: doc.meta.visibility,
        };
        self.summaries.insert(doc.id.as_bytes(), to_json(&s)?)?;
        Ok(())
    }

    /// Every hearing's summary.
    pub fn summaries(&self) -> Result<Vec<HearingSummary>> {
        self.summaries
            .iter()
            .values()
            .map(|v| from_json(&v?))
            .collect()
    }

    pub fn put_hearing(&self, doc: &HearingDoc) -> Result<()> {
        self.hearings.insert(doc.id.as_bytes(), to_json(doc)?)?;
        self.put_summary(doc)
    }

    pub fn hearing(&self, id: &str) -> Result<Option<HearingDoc>> {
        self.hearings
            .get(id.as_bytes())?
            .map(|v| from_json(&v))
            .transpose()
    }

    pub fn hearings(&self) -> Result<Vec<HearingDoc>> {
        self.hearings
            .iter()
            .values()
            .map(|v| from_json(&v?))
            .collect()
    }

    pub fn put_access_code(&self, c: &AccessCodeDoc) -> Result<()> {
        self.access
            .insert(format!("code/{}", c.code_id), to_json(c)?)?;
        self.access
            .insert(format!("hash/{}", c.code_sha256), c.code_id.as_bytes())?;
        Ok(())
    }

    pub fn access_code(&self, code_id: &str) -> Result<Option<AccessCodeDoc>> {
        self.access
            .get(format!("code/{code_id}"))?
            .map(|v| from_json(&v))
            .transpose()
    }

    /// The code whose SHA-256 is `sha256`, if any.
    pub fn access_code_by_hash(&self, sha256: &str) -> Result<Option<AccessCodeDoc>> {
        match self.access.get(format!("hash/{sha256}"))? {
            Some(id) => self.access_code(&String::from_utf8_lossy(&id)),
            None => Ok(None),
        }
    }

    pub fn access_codes(&self, hearing: &str) -> Result<Vec<AccessCodeDoc>> {
        let mut v: Vec<AccessCodeDoc> = self
            .access
            .scan_prefix("code/")
            .values()
            .map(|v| from_json::<AccessCodeDoc>(&v?))
            .filter(|c| c.as_ref().map_or(true, |c| c.hearing_id == hearing))
            .collect::<Result<_>>()?;
        v.sort_by(|a, b| a.issued_at.cmp(&b.issued_at));
        Ok(v)
    }

    /// Lets `user` (a judge) view sealed hearing `hearing`.
    pub fn put_grant(&self, hearing: &str, user: &str, by: &str) -> Result<()> {
        self.access.insert(
            format!("grant/{hearing}/{user}"),
            to_json(&serde_json::json!({"by": by, "at": super::records::format_wall(chrono::Utc::now())}))?,
        )?;
        Ok(())
    }

    pub fn remove_grant(&self, hearing: &str, user: &str) -> Result<bool> {
        Ok(self
            .access
            .remove(format!("grant/{hearing}/{user}"))?
            .is_some())
    }

    pub fn has_grant(&self, hearing: &str, user: &str) -> Result<bool> {
        Ok(self
            .access
            .contains_key(format!("grant/{hearing}/{user}"))?)
    }

    /// Users granted a sealed hearing.
    pub fn grants(&self, hearing: &str) -> Result<Vec<String>> {
        let prefix = format!("grant/{hearing}/");
        self.access
            .scan_prefix(&prefix)
            .keys()
            .map(|k| Ok(String::from_utf8_lossy(&k?[prefix.len()..]).to_string()))
            .collect()
    }

    pub fn put_integrity(&self, id: &str, doc: &IntegrityDoc) -> Result<()> {
        self.integrity.insert(id.as_bytes(), to_json(doc)?)?;
        Ok(())
    }

    /// The last verification of a hearing, if any.
    pub fn integrity(&self, id: &str) -> Result<Option<IntegrityDoc>> {
        self.integrity
            .get(id.as_bytes())?
            .map(|v| from_json(&v))
            .transpose()
    }

    pub fn put_segment(&self, s: &SegmentRecord) -> Result<()> {
        self.segments
            .insert(segment_key(&s.hearing_id, &s.track, s.seq), to_json(s)?)?;
        Ok(())
    }

    /// One segment of a track, by its sequence number.
    pub fn segment(&self, hearing: &str, track: &str, seq: u64) -> Result<Option<SegmentRecord>> {
        self.segments
            .get(segment_key(hearing, track, seq))?
            .map(|v| from_json(&v))
            .transpose()
    }

    /// Segments of a track in order.
    pub fn segments(&self, hearing: &str, track: &str) -> Result<Vec<SegmentRecord>> {
        let mut prefix = hearing.as_bytes().to_vec();
        prefix.push(0);
        prefix.extend_from_slice(track.as_bytes());
        prefix.push(0);
        self.segments
            .scan_prefix(prefix)
            .values()
            .map(|v| from_json(&v?))
            .collect()
    }

    /// Removes every hearing and segment (before a rebuild from the files).
    pub fn clear_hearings(&self) -> Result<()> {
        self.hearings.clear()?;
        self.summaries.clear()?;
        self.segments.clear()?;
        Ok(())
    }

    pub fn put_user(&self, u: &UserDoc) -> Result<()> {
        self.users.insert(u.name.as_bytes(), to_json(u)?)?;
        Ok(())
    }

    pub fn user(&self, name: &str) -> Result<Option<UserDoc>> {
        self.users
            .get(name.as_bytes())?
            .map(|v| from_json(&v))
            .transpose()
    }

    pub fn users(&self) -> Result<Vec<UserDoc>> {
        self.users.iter().values().map(|v| from_json(&v?)).collect()
    }

    /// Removes a user and every login token of theirs.
    pub fn remove_user(&self, name: &str) -> Result<bool> {
        let existed = self.users.remove(name.as_bytes())?.is_some();
        for kv in self.tokens.iter() {
            let (k, v) = kv?;
            if from_json::<TokenDoc>(&v).is_ok_and(|t| t.user == name) {
                self.tokens.remove(k)?;
            }
        }
        Ok(existed)
    }

    pub fn put_token(&self, token_sha256: &str, t: &TokenDoc) -> Result<()> {
        self.tokens.insert(token_sha256.as_bytes(), to_json(t)?)?;
        Ok(())
    }

    pub fn token(&self, token_sha256: &str) -> Result<Option<TokenDoc>> {
        self.tokens
            .get(token_sha256.as_bytes())?
            .map(|v| from_json(&v))
            .transpose()
    }

    pub fn remove_token(&self, token_sha256: &str) -> Result<()> {
        self.tokens.remove(token_sha256.as_bytes())?;
        Ok(())
    }

    /// Writes everything to disk (at shutdown; sled also flushes on its own timer).
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }
}
