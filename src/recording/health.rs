//! What the rest of the daemon reads of the recording's health: the alarms, the
//! service watchdog, the status page and the metrics. Read-only views of the hearing
//! service's state.

use super::hearings::{HearingService, LogHealth};

impl HearingService {
    /// Why the active hearing's last checkpoint could not be signed and written, while
    /// that lasts (an alarm: new segments are then covered by their hashes only).
    pub fn checkpoint_error(&self) -> Option<String> {
        let active = self.active.lock().ok()?;
        let a = active.as_ref()?;
        let log = a.log.lock().ok()?;
        log.checkpoint_error().map(str::to_string)
    }

    /// What is wrong with the active hearing's log, for alarms: the index could not
    /// be updated, an append failed half-way and appends are refused, or the manifest
    /// was found altered (then it is also marked in the catalog).
    pub fn log_health(&self) -> LogHealth {
        let Ok(active) = self.active.lock() else {
            return LogHealth::default();
        };
        let Some(a) = active.as_ref() else {
            return LogHealth::default();
        };
        let Ok(log) = a.log.lock() else {
            return LogHealth::default();
        };
        let h = LogHealth {
            hearing_id: Some(a.id.clone()),
            index_error: log.index_error().map(str::to_string),
            append_error: log.append_error().map(str::to_string),
            tampered: log.tampered().map(str::to_string),
        };
        if let Some(t) = &h.tampered
            && self.index.tampered_reason(&a.id).ok().flatten().is_none()
        {
            self.catalog.mark_tampered(&a.id, t);
        }
        h
    }

    /// The capture pipeline's running time now (the clock every timestamp is on).
    pub fn running_time_ns(&self) -> Option<i64> {
        self.capture.running_time_ns()
    }

    /// Each track's name and how long it has delivered no frame (None: not one yet).
    pub fn track_silences(&self) -> Vec<(String, Option<std::time::Duration>)> {
        self.specs
            .iter()
            .map(|s| s.info.name.clone())
            .zip(self.router.silences())
            .collect()
    }

    /// Each track's name and the frames it has delivered since start.
    pub fn track_frames(&self) -> Vec<(String, u64)> {
        self.specs
            .iter()
            .map(|s| s.info.name.clone())
            .zip(self.router.frames_seen())
            .collect()
    }

    /// The running session's writers that have had frames waiting and taken none for
    /// `after` (see `Session::stuck_writers`): the service watchdog stops pinging.
    pub fn stuck_writers(&self, after: std::time::Duration) -> Vec<String> {
        self.active
            .lock()
            .ok()
            .and_then(|a| a.as_ref()?.session.as_ref().map(|s| s.stuck_writers(after)))
            .unwrap_or_default()
    }

    /// True while a hearing is open and recording (not in recess).
    pub fn is_recording(&self) -> bool {
        self.active
            .lock()
            .ok()
            .is_some_and(|a| a.as_ref().is_some_and(|a| a.session.is_some()))
    }
}
