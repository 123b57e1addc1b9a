//! The livestream's approval as events of the hearing's record: a court approves,
//! withdraws, cuts and restores the public stream, and each step is logged with who
//! did it (the relay follows the record: `live::enforce`).

use super::hearings::{HearingService, append};
use crate::archive::index::{HearingDoc, HearingState};
use crate::archive::records::*;
use crate::bail;
use crate::error::Result;

impl HearingService {
    /// Approves, withdraws, cuts or restores the public livestream of a hearing, as an
    /// event of its record. `excluded` (for an approval): cameras and microphones left
    /// out of the public picture and sound. Only public hearings are ever approved.
    pub fn livestream(
        &self,
        id: &str,
        kind: EventKind,
        actor: &str,
        excluded: Option<Vec<String>>,
    ) -> Result<HearingDoc> {
        let mut active = self.lock()?;
        let doc = self.get(id)?;
        if doc.state == HearingState::Closed {
            // Nothing but exports follows the seal.
            bail!(
                Conflict,
                "hearing {id} is closed: its livestream ended with it"
            );
        }
        match kind {
            EventKind::LivestreamApproved => {
                if doc.meta.visibility != Visibility::Public {
                    bail!(
                        PermissionDenied,
                        "hearing {id} is not public: it is never streamed"
                    );
                }
                for x in excluded.iter().flatten() {
                    let ok = doc
                        .meta
                        .tracks
                        .iter()
                        .any(|t| &t.name == x && t.kind != TrackKind::Composite);
                    if !ok {
                        bail!(
                            Invalid,
                            "field `exclude`: {x:?} is not a camera or microphone of hearing {id}"
                        );
                    }
                }
            }
            EventKind::LivestreamWithdrawn if !doc.livestream.approved => {
                bail!(Conflict, "streaming of hearing {id} is not approved")
            }
            EventKind::LivestreamCut if !doc.streaming() => {
                bail!(Conflict, "hearing {id} is not being streamed")
            }
            EventKind::LivestreamCut if doc.livestream.cut => {
                bail!(Conflict, "the stream of hearing {id} is already cut")
            }
            EventKind::LivestreamRestored if !doc.livestream.cut => {
                bail!(Conflict, "the stream of hearing {id} is not cut")
            }
            _ => {}
        }
        let mut ev = self.event(id, kind);
        ev.actor = Some(actor.to_string());
        ev.tracks = excluded.filter(|x| !x.is_empty());
        match active.as_mut().filter(|a| a.id == id) {
            Some(a) => {
                ev.media_time_ns = Some(self.now_media(a)?);
                append(&a.log, ev)
            }
            None => {
                let (mut log, _) = self.open_log(id)?;
                log.append(Record::Event(ev))?;
                Ok(log.doc().clone())
            }
        }
    }
}
