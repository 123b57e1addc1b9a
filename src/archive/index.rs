//! The `sled` index: hearings (with their events and per-track totals), segments,
//! users and login tokens. Everything about hearings here is derived from the
//! manifests by [`HearingDoc::apply`], so `courtrec check --repair` can rebuild it from
//! the files, which stay the source of truth.

use super::records::*;
use crate::error::{Error, ErrorKind, Result, index_err};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub use courtrec_archive::doc::*;

/// `?` on sled results: index failures become our errors (see [`index_err`]).
trait Db<T> {
    fn db(self) -> Result<T>;
}

impl<T> Db<T> for sled::Result<T> {
    fn db(self) -> Result<T> {
        self.map_err(index_err)
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
    /// Bumped whenever the role or password changes: a login token of an older
    /// generation no longer works.
    #[serde(default)]
    pub generation: u64,
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
    /// The account's generation when the token was issued (see [`UserDoc`]).
    #[serde(default)]
    pub generation: u64,
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

/// A legal hold: the box keeps the hearing's files whatever its retention says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldDoc {
    pub by: String,
    pub at: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// A hearing whose files the box deleted once the archive held all of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleasedDoc {
    pub at: String,
    /// Where it lives on (`s3://bucket/prefix<id>/`).
    pub to: String,
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
    /// Hearings the box found altered (id → why): read-only, alarmed.
    tampered: sled::Tree,
    /// Small summaries of the hearings (what searches filter on), so a search over a
    /// court's archive reads kilobytes, not every hearing's events.
    summaries: sled::Tree,
    /// The summaries decoded, kept between searches (an archive server's index holds a
    /// court's hundred thousand hearings); dropped whenever one changes.
    summary_cache: std::sync::Arc<std::sync::RwLock<Option<std::sync::Arc<Vec<HearingSummary>>>>>,
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
            hearings: db.open_tree("hearings").db()?,
            segments: db.open_tree("segments").db()?,
            users: db.open_tree("users").db()?,
            tokens: db.open_tree("tokens").db()?,
            integrity: db.open_tree("integrity").db()?,
            tampered: db.open_tree("tampered").db()?,
            access: db.open_tree("access").db()?,
            summaries: db.open_tree("summaries").db()?,
            summary_cache: Default::default(),
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
        self.summaries
            .insert(doc.id.as_bytes(), to_json(&s)?)
            .db()?;
        self.drop_summary_cache();
        Ok(())
    }

    /// Every hearing's summary.
    pub fn summaries(&self) -> Result<std::sync::Arc<Vec<HearingSummary>>> {
        if let Ok(c) = self.summary_cache.read()
            && let Some(v) = c.as_ref()
        {
            return Ok(v.clone());
        }
        let v: Vec<HearingSummary> = self
            .summaries
            .iter()
            .values()
            .map(|v| from_json(&v.db()?))
            .collect::<Result<_>>()?;
        let v = std::sync::Arc::new(v);
        if let Ok(mut c) = self.summary_cache.write() {
            *c = Some(v.clone());
        }
        Ok(v)
    }

    fn drop_summary_cache(&self) {
        if let Ok(mut c) = self.summary_cache.write() {
            *c = None;
        }
    }

    pub fn put_hearing(&self, doc: &HearingDoc) -> Result<()> {
        self.hearings
            .insert(doc.id.as_bytes(), to_json(doc)?)
            .db()?;
        self.put_summary(doc)
    }

    pub fn hearing(&self, id: &str) -> Result<Option<HearingDoc>> {
        self.hearings
            .get(id.as_bytes())
            .db()?
            .map(|v| from_json(&v))
            .transpose()
    }

    pub fn hearings(&self) -> Result<Vec<HearingDoc>> {
        self.hearings
            .iter()
            .values()
            .map(|v| from_json(&v.db()?))
            .collect()
    }

    pub fn put_access_code(&self, c: &AccessCodeDoc) -> Result<()> {
        self.access
            .insert(format!("code/{}", c.code_id), to_json(c)?)
            .db()?;
        self.access
            .insert(format!("hash/{}", c.code_sha256), c.code_id.as_bytes())
            .db()?;
        Ok(())
    }

    pub fn access_code(&self, code_id: &str) -> Result<Option<AccessCodeDoc>> {
        self.access
            .get(format!("code/{code_id}"))
            .db()?
            .map(|v| from_json(&v))
            .transpose()
    }

    /// The code whose SHA-256 is `sha256`, if any.
    pub fn access_code_by_hash(&self, sha256: &str) -> Result<Option<AccessCodeDoc>> {
        match self.access.get(format!("hash/{sha256}")).db()? {
            Some(id) => self.access_code(&String::from_utf8_lossy(&id)),
            None => Ok(None),
        }
    }

    pub fn access_codes(&self, hearing: &str) -> Result<Vec<AccessCodeDoc>> {
        let mut v: Vec<AccessCodeDoc> = self
            .access
            .scan_prefix("code/")
            .values()
            .map(|v| from_json::<AccessCodeDoc>(&v.db()?))
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
        ).db()?;
        Ok(())
    }

    pub fn remove_grant(&self, hearing: &str, user: &str) -> Result<bool> {
        Ok(self
            .access
            .remove(format!("grant/{hearing}/{user}"))
            .db()?
            .is_some())
    }

    pub fn has_grant(&self, hearing: &str, user: &str) -> Result<bool> {
        self.access
            .contains_key(format!("grant/{hearing}/{user}"))
            .db()
    }

    /// Users granted a sealed hearing.
    pub fn grants(&self, hearing: &str) -> Result<Vec<String>> {
        let prefix = format!("grant/{hearing}/");
        self.access
            .scan_prefix(&prefix)
            .keys()
            .map(|k| Ok(String::from_utf8_lossy(&k.db()?[prefix.len()..]).to_string()))
            .collect()
    }

    pub fn put_integrity(&self, id: &str, doc: &IntegrityDoc) -> Result<()> {
        self.integrity.insert(id.as_bytes(), to_json(doc)?).db()?;
        Ok(())
    }

    /// The last verification of a hearing, if any.
    pub fn integrity(&self, id: &str) -> Result<Option<IntegrityDoc>> {
        self.integrity
            .get(id.as_bytes())
            .db()?
            .map(|v| from_json(&v))
            .transpose()
    }

    pub fn put_tampered(&self, id: &str, reason: &str) -> Result<()> {
        self.tampered
            .insert(id.as_bytes(), reason.as_bytes())
            .db()?;
        self.tampered.flush().db()?;
        Ok(())
    }

    /// Why a hearing is marked altered, if it is.
    pub fn tampered_reason(&self, id: &str) -> Result<Option<String>> {
        Ok(self
            .tampered
            .get(id.as_bytes())
            .db()?
            .map(|v| String::from_utf8_lossy(&v).to_string()))
    }

    /// Every hearing marked altered, with why.
    pub fn tampered(&self) -> Result<Vec<(String, String)>> {
        self.tampered
            .iter()
            .map(|kv| {
                let (k, v) = kv.db()?;
                Ok((
                    String::from_utf8_lossy(&k).to_string(),
                    String::from_utf8_lossy(&v).to_string(),
                ))
            })
            .collect()
    }

    pub fn put_segment(&self, s: &SegmentRecord) -> Result<()> {
        self.segments
            .insert(segment_key(&s.hearing_id, &s.track, s.seq), to_json(s)?)
            .db()?;
        Ok(())
    }

    /// One segment of a track, by its sequence number.
    pub fn segment(&self, hearing: &str, track: &str, seq: u64) -> Result<Option<SegmentRecord>> {
        self.segments
            .get(segment_key(hearing, track, seq))
            .db()?
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
            .map(|v| from_json(&v.db()?))
            .collect()
    }

    /// Removes every hearing and segment (before a rebuild from the files).
    pub fn clear_hearings(&self) -> Result<()> {
        self.hearings.clear().db()?;
        self.summaries.clear().db()?;
        self.drop_summary_cache();
        self.segments.clear().db()?;
        Ok(())
    }

    pub fn put_user(&self, u: &UserDoc) -> Result<()> {
        self.users.insert(u.name.as_bytes(), to_json(u)?).db()?;
        Ok(())
    }

    pub fn user(&self, name: &str) -> Result<Option<UserDoc>> {
        self.users
            .get(name.as_bytes())
            .db()?
            .map(|v| from_json(&v))
            .transpose()
    }

    pub fn users(&self) -> Result<Vec<UserDoc>> {
        self.users
            .iter()
            .values()
            .map(|v| from_json(&v.db()?))
            .collect()
    }

    /// Removes a user, every login token of theirs and every grant they held: a new
    /// account with the same name starts with none.
    pub fn remove_user(&self, name: &str) -> Result<bool> {
        let existed = self.users.remove(name.as_bytes()).db()?.is_some();
        self.end_logins(name)?;
        let suffix = format!("/{name}");
        for k in self.access.scan_prefix("grant/").keys() {
            let k = k.db()?;
            if k.ends_with(suffix.as_bytes()) {
                self.access.remove(k).db()?;
            }
        }
        self.db.flush().db()?;
        Ok(existed)
    }

    /// Ends every login of `name` (a changed role or password, a removed account).
    pub fn end_logins(&self, name: &str) -> Result<usize> {
        let mut n = 0;
        for kv in self.tokens.iter() {
            let (k, v) = kv.db()?;
            if from_json::<TokenDoc>(&v).is_ok_and(|t| t.user == name && t.code_id.is_none()) {
                self.tokens.remove(k).db()?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Deletes expired login tokens.
    pub fn purge_expired_tokens(&self, now_unix: i64) -> Result<usize> {
        let mut n = 0;
        for kv in self.tokens.iter() {
            let (k, v) = kv.db()?;
            if from_json::<TokenDoc>(&v).is_ok_and(|t| t.expires_unix < now_unix) {
                self.tokens.remove(k).db()?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Sealed hearings `user` was granted.
    pub fn grants_of(&self, user: &str) -> Result<Vec<String>> {
        let suffix = format!("/{user}");
        self.access
            .scan_prefix("grant/")
            .keys()
            .filter_map(|k| {
                k.map(|k| {
                    let k = String::from_utf8_lossy(&k).to_string();
                    k.strip_prefix("grant/")
                        .and_then(|r| r.strip_suffix(&suffix))
                        .map(str::to_string)
                })
                .transpose()
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .db()
    }

    pub fn put_token(&self, token_sha256: &str, t: &TokenDoc) -> Result<()> {
        self.tokens
            .insert(token_sha256.as_bytes(), to_json(t)?)
            .db()?;
        Ok(())
    }

    pub fn token(&self, token_sha256: &str) -> Result<Option<TokenDoc>> {
        self.tokens
            .get(token_sha256.as_bytes())
            .db()?
            .map(|v| from_json(&v))
            .transpose()
    }

    pub fn remove_token(&self, token_sha256: &str) -> Result<()> {
        self.tokens.remove(token_sha256.as_bytes()).db()?;
        Ok(())
    }

    fn small_tree(&self, name: &str) -> Result<sled::Tree> {
        self.db.open_tree(name).db()
    }

    /// Legal holds (not derived from the folders: `check --repair` keeps them).
    pub fn put_hold(&self, id: &str, h: &HoldDoc) -> Result<()> {
        self.small_tree("holds")?
            .insert(id.as_bytes(), to_json(h)?)
            .db()?;
        self.flush()
    }

    pub fn remove_hold(&self, id: &str) -> Result<bool> {
        let had = self
            .small_tree("holds")?
            .remove(id.as_bytes())
            .db()?
            .is_some();
        self.flush()?;
        Ok(had)
    }

    pub fn hold(&self, id: &str) -> Result<Option<HoldDoc>> {
        match self.small_tree("holds")?.get(id.as_bytes()).db()? {
            Some(v) => Ok(Some(from_json(&v)?)),
            None => Ok(None),
        }
    }

    /// Records that the hearing's files are gone from the box (kept in the archive);
    /// its segment rows go (nothing here to play), its doc stays for the record.
    pub fn put_released(&self, id: &str, r: &ReleasedDoc) -> Result<()> {
        self.small_tree("released")?
            .insert(id.as_bytes(), to_json(r)?)
            .db()?;
        let mut prefix = id.as_bytes().to_vec();
        prefix.push(0);
        for k in self.segments.scan_prefix(&prefix).keys() {
            self.segments.remove(k.db()?).db()?;
        }
        self.flush()
    }

    pub fn released(&self, id: &str) -> Result<Option<ReleasedDoc>> {
        match self.small_tree("released")?.get(id.as_bytes()).db()? {
            Some(v) => Ok(Some(from_json(&v)?)),
            None => Ok(None),
        }
    }

    /// A tree of another module's own (the replication queue): in the same database,
    /// never touched by `check --repair`.
    pub fn tree(&self, name: &str) -> Result<sled::Tree> {
        self.db.open_tree(name).db()
    }

    /// Writes everything to disk (at shutdown; sled also flushes on its own timer).
    pub fn flush(&self) -> Result<()> {
        self.db.flush().db()?;
        Ok(())
    }
}

/// The hearing log keeps the index in step through this (see
/// [`courtrec_archive::log::DocSink`]): a segment row, then the hearing's doc.
impl courtrec_archive::log::DocSink for Index {
    fn put(&self, doc: &HearingDoc, segment: Option<&SegmentRecord>) -> Result<()> {
        courtrec_archive::fault::hit("index.write", std::path::Path::new(&doc.id))
            .map_err(|e| Error::io("index", e))?;
        if let Some(s) = segment {
            self.put_segment(s)?;
        }
        self.put_hearing(doc)
    }
}
