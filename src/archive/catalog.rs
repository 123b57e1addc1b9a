//! The box's archive as the API reads it: hearings by id and by search (from the
//! index, which is derived from the folders), their verification, and the hearings
//! the box found altered. The lifecycle (recording) writes; this reads.

use super::index::{HearingDoc, HearingState, HearingSummary, Index, IntegrityDoc};
use super::log::{HearingLog, Signer};
use super::records::format_wall;
use super::{DataDir, verify};
use crate::err;
use crate::error::Result;
use serde::Deserialize;
use std::sync::Arc;

/// What to search hearings by (every field optional; all given must match).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Search {
    /// Part of the case number.
    pub case_number: Option<String>,
    /// Courtroom id, exactly (on the archive server, also the courtroom folder the
    /// hearing was found in).
    pub courtroom: Option<String>,
    /// On the archive server: a folder of the courtroom's place in the bucket, e.g.
    /// `court-a` for every courtroom under `court-a/`.
    pub court: Option<String>,
    /// Part of the title, any case.
    #[serde(rename = "q")]
    pub text: Option<String>,
    /// First and last day (UTC) of the hearing's scheduled start (or creation).
    pub from: Option<chrono::NaiveDate>,
    pub to: Option<chrono::NaiveDate>,
    /// Paging: skip `offset` results, return at most `limit`.
    pub offset: Option<usize>,
    pub limit: Option<usize>,
}

/// Reads the archive of this box.
pub struct Catalog {
    pub data: DataDir,
    pub index: Index,
    /// This box's key and device log: what verification trusts, what signs exports.
    pub signer: Option<Signer>,
    /// On the archive server, the bucket prefix it serves (for searches by place).
    pub served_prefix: String,
}

impl Catalog {
    pub fn new(data: DataDir, index: Index, signer: Option<Signer>) -> Arc<Catalog> {
        Arc::new(Catalog {
            data,
            index,
            signer,
            served_prefix: String::new(),
        })
    }

    /// The archive server's catalog: hearings mirrored from the bucket under `prefix`.
    pub fn archive(data: DataDir, index: Index, prefix: &str) -> Arc<Catalog> {
        Arc::new(Catalog {
            data,
            index,
            signer: None,
            served_prefix: prefix.to_string(),
        })
    }

    /// A hearing by id. `courtrec export` run on the box appends to a closed
    /// hearing's manifest without the index (the daemon holds it); its signed
    /// checkpoint tells us, and the doc is re-derived from the manifest.
    pub fn get(&self, id: &str) -> Result<HearingDoc> {
        let doc = self
            .index
            .hearing(id)?
            .ok_or_else(|| err!(NotFound, "no hearing with id '{id}'"))?;
        // (The archive server's mirror is brought up to date by its scan instead.)
        if doc.state == HearingState::Closed && !self.data.mirror {
            let dir = self.data.hearing(id);
            let signed = super::checkpoint::sizes_in(&dir.root.join("checkpoints"))
                .last()
                .copied()
                .unwrap_or(0);
            if signed > doc.manifest_entries {
                let (log, _) = HearingLog::open(dir, Some(Arc::new(self.index.clone())), None)?;
                return Ok(log.doc().clone());
            }
        }
        Ok(doc)
    }

    /// Hearings matching every given criterion, newest first: filtered on the small
    /// summaries, then only the page asked for (`offset`, `limit`) is read in full.
    /// Returns the page and how many matched.
    pub fn search_page(
        &self,
        q: &Search,
        visible: impl Fn(&HearingSummary) -> bool,
    ) -> Result<(Vec<HearingDoc>, usize)> {
        let lower = |s: &str| s.to_lowercase();
        let text = q.text.as_deref().map(lower);
        let all = self.index.summaries()?;
        let mut v: Vec<&HearingSummary> = all
            .iter()
            .filter(|h| {
                visible(h)
                    && q.case_number
                        .as_deref()
                        .is_none_or(|c| h.case_number.contains(c.trim()))
                    && q.courtroom
                        .as_deref()
                        .is_none_or(|c| h.courtroom == c || self.location(&h.id).last() == Some(&c))
                    && q.court
                        .as_deref()
                        .is_none_or(|c| self.location(&h.id).contains(&c))
                    && text.as_deref().is_none_or(|t| lower(&h.title).contains(t))
                    && {
                        let day = chrono::DateTime::parse_from_rfc3339(&h.when)
                            .map(|t| t.with_timezone(&chrono::Utc).date_naive())
                            .ok();
                        q.from.is_none_or(|f| day.is_some_and(|d| d >= f))
                            && q.to.is_none_or(|t| day.is_some_and(|d| d <= t))
                    }
            })
            .collect();
        v.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        let total = v.len();
        let docs = v
            .iter()
            .skip(q.offset.unwrap_or(0))
            .take(q.limit.unwrap_or(usize::MAX))
            .filter_map(|s| self.index.hearing(&s.id).transpose())
            .collect::<Result<Vec<_>>>()?;
        Ok((docs, total))
    }

    /// Where the archive server found a hearing: the folders of its courtroom's
    /// prefix (`court-a`, `room-7`); nothing on a box.
    fn location<'a>(&'a self, id: &'a str) -> Vec<&'a str> {
        if !self.data.mirror {
            return Vec::new();
        }
        let mut parts: Vec<&str> = self
            .served_prefix
            .split('/')
            .filter(|p| !p.is_empty())
            .collect();
        if let Some((room, _)) = id.rsplit_once('~') {
            parts.extend(room.split('~'));
        }
        parts
    }

    /// Every hearing matching `q`, newest first.
    pub fn search(&self, q: &Search) -> Result<Vec<HearingDoc>> {
        Ok(self.search_page(q, |_| true)?.0)
    }

    /// The trust a verification of this box's own hearings uses: its own key.
    pub fn trust(&self) -> verify::Trust {
        verify::Trust {
            keys: self.signer.iter().map(|s| s.key.verifier()).collect(),
            ..verify::Trust::default()
        }
    }

    /// Runs the offline verifier on a hearing's folder (trusting this box's own key,
    /// and against its device log) and keeps the outcome for badges and searches.
    pub fn verify(&self, id: &str, progress: &dyn verify::Progress) -> Result<verify::Report> {
        let doc = self.get(id)?;
        let report = verify::verify_with(
            &self.data.hearing(id).root,
            &self.trust(),
            &verify::Options {
                device_log: self
                    .signer
                    .as_ref()
                    .and_then(|s| s.devlog.as_ref())
                    .map(|d| d.dir().to_path_buf()),
                progress,
                remote: None,
            },
        );
        let status = report.worst().map_or("verified", |p| p.status());
        self.index.put_integrity(
            id,
            &IntegrityDoc {
                status: status.into(),
                exit_code: report.exit_code,
                result: report.result.clone(),
                manifest_entries: doc.manifest_entries,
                checked_at: format_wall(chrono::Utc::now()),
            },
        )?;
        Ok(report)
    }

    /// Marks a hearing altered (read-only; the `hearing_tampered` alarm stays up while
    /// any is marked).
    pub fn mark_tampered(&self, id: &str, reason: &str) {
        if let Err(e) = self.index.put_tampered(id, reason) {
            tracing::error!(hearing = %id, "recording that the hearing was altered in the index: {e}");
        }
    }

    /// Hearings found altered, with why.
    pub fn tampered(&self) -> Vec<(String, String)> {
        self.index.tampered().unwrap_or_default()
    }
}
