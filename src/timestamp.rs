//! Fetches RFC 3161 trusted timestamps for hearing checkpoints from the TSA in the
//! config (`device.tsa_url`), in a background thread so a slow or dead TSA never
//! holds up recording or a close.
//!
//! Stamped: the final (closed) checkpoint of every hearing, and, every
//! `tsa_interval_s`, the latest checkpoint of the hearing being recorded. A hearing is
//! sealed by its signed closed checkpoint whether or not the TSA answers; when it does
//! not, an alarm says so and the request is retried every `tsa_retry_s`, including
//! after a restart (hearings whose final checkpoint has no token are found on disk).

use crate::archive::checkpoint::{self, Checkpoint};
use crate::archive::{DataDir, tsa};
use crate::config::Config;
use crate::monitor::Alarms;
use crate::recording::hearings::HearingService;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the thread looks for checkpoints to stamp.
const TICK: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(10);

/// What one hearing needs next.
#[derive(Default)]
struct Watch {
    /// When the open hearing's checkpoint was last stamped.
    last_stamp: Option<Instant>,
    /// Not before this instant (after a failure).
    retry_at: Option<Instant>,
}

/// Starts the timestamping thread if a TSA is configured.
pub fn spawn(cfg: Arc<Config>, data: DataDir, hearings: Arc<HearingService>, alarms: Arc<Alarms>) {
    let Some(url) = cfg.device.tsa_url.clone() else {
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("timestamps".into())
        .spawn(move || {
            let client = match reqwest::blocking::Client::builder().timeout(TIMEOUT).build() {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!("cannot make the TSA client: {e}");
                    return;
                }
            };
            let interval = Duration::from_secs(cfg.device.tsa_interval_s);
            let retry = Duration::from_secs(cfg.device.tsa_retry_s);
            let mut watch: BTreeMap<String, Watch> = unstamped_closed(&data)
                .into_iter()
                .map(|id| (id, Watch::default()))
                .collect();
            loop {
                if let Some(id) = hearings.active_id() {
                    watch.entry(id).or_default();
                }
                let active = hearings.active_id();
                let mut done = Vec::new();
                for (id, w) in watch.iter_mut() {
                    if w.retry_at.is_some_and(|t| Instant::now() < t) {
                        continue;
                    }
                    let dir = data.hearing(id).root.join("checkpoints");
                    let Some((size, closed)) = latest(&dir) else {
                        continue;
                    };
                    let due = if closed {
                        true
                    } else {
                        active.as_deref() == Some(id.as_str())
                            && !interval.is_zero()
                            && w.last_stamp.is_none_or(|t| t.elapsed() >= interval)
                    };
                    let token_path = dir.join(Checkpoint::token_name(size));
                    if !due || token_path.exists() {
                        if closed {
                            done.push(id.clone());
                        }
                        continue;
                    }
                    match stamp(&client, &url, &dir, size) {
                        Ok(()) => {
                            tracing::info!(hearing = %id, size, "checkpoint timestamped by the TSA");
                            w.last_stamp = Some(Instant::now());
                            w.retry_at = None;
                            alarms.clear("tsa_unreachable");
                            if closed {
                                done.push(id.clone());
                            }
                        }
                        Err(e) => {
                            tracing::warn!(hearing = %id, "trusted timestamp failed, retrying in {} s: {e}", retry.as_secs());
                            w.retry_at = Some(Instant::now() + retry);
                            alarms.raise(crate::monitor::tsa_alarm(&url, &e));
                        }
                    }
                }
                for id in done {
                    watch.remove(&id);
                }
                std::thread::sleep(TICK);
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the timestamp thread: {e}");
    }
}

/// The latest checkpoint in a folder: (tree size, closed).
fn latest(dir: &Path) -> Option<(u64, bool)> {
    let size = *checkpoint::sizes_in(dir).last()?;
    let note = std::fs::read_to_string(dir.join(Checkpoint::file_name(size))).ok()?;
    Some((size, note.lines().any(|l| l == "closed")))
}

/// Closed hearings whose final checkpoint has no token yet (a TSA that was down, or a
/// restart before the stamp).
fn unstamped_closed(data: &DataDir) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(data.hearings()) else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| {
            let id = e.file_name().to_string_lossy().to_string();
            let dir = e.path().join("checkpoints");
            let (size, closed) = latest(&dir)?;
            (closed && !dir.join(Checkpoint::token_name(size)).exists()).then_some(id)
        })
        .collect()
}

/// Asks the TSA for a token over the checkpoint note's bytes and stores its reply.
fn stamp(
    client: &reqwest::blocking::Client,
    url: &str,
    dir: &Path,
    size: u64,
) -> Result<(), String> {
    let note_path = dir.join(Checkpoint::file_name(size));
    let note =
        std::fs::read(&note_path).map_err(|e| format!("reading {}: {e}", note_path.display()))?;
    let nonce: u64 = rand::random();
    let req = tsa::request(&note, nonce)?;
    let resp = client
        .post(url)
        .header("content-type", "application/timestamp-query")
        .body(req)
        .send()
        .map_err(|e| format!("cannot reach the TSA at {url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("the TSA at {url} answered {}", resp.status()));
    }
    let body = resp
        .bytes()
        .map_err(|e| format!("reading the TSA's answer: {e}"))?;
    // Parsed as ASN.1, and checked to stamp this note and echo our nonce: a reply
    // to another request (replayed, or from a confused TSA) is never stored.
    tsa::check_reply(&body, &note, nonce)?;
    // Atomic: a crash leaves no half token that would read as tampering.
    crate::archive::write_atomic(&dir.join(Checkpoint::token_name(size)), &body)
        .map_err(|e| e.to_string())
}
