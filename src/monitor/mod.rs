//! Alarms: the conditions a clerk must hear about at once (camera lost, microphone
//! silent while recording, disk nearly full, a hearing not opened on time, recording
//! failed), each with what to do in plain words. While a hearing is open, every alarm
//! raised or cleared is also logged in it as a `device_fault` / `device_restored` event,
//! because the court rules want faults in the case file.

use crate::archive::index::HearingState;
use crate::archive::records::{EventKind, TrackKind};
use crate::capture::SourceStatus;
use crate::config::Config;
use crate::recording::hearings::HearingService;
use crate::recording::recorder::WriterReport;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod alarms;
pub use alarms::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Recording is or may be losing something now.
    Critical,
    /// Needs attention soon.
    Warning,
}

/// One active alarm.
#[derive(Debug, Clone, Serialize)]
pub struct Alarm {
    /// Stable key, e.g. `camera_lost:cam2`.
    pub key: String,
    /// Kind, e.g. `camera_lost`, `mic_silent`, `disk_low`, `hearing_not_opened`,
    /// `recording_failed`, `signing_failed`.
    pub code: String,
    pub severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// What is wrong, in plain words (English, then Chinese).
    pub message: String,
    pub message_zh: String,
    /// What to do about it.
    pub action: String,
    pub action_zh: String,
    pub since: String,
}

/// The set of active alarms, shared by the monitor, the writers and the API.
#[derive(Default)]
pub struct Alarms {
    /// Alarms computed by the monitor on each tick.
    conditions: Mutex<BTreeMap<String, Alarm>>,
    /// Alarms reported by the recording writers (cleared by them).
    reported: Mutex<BTreeMap<String, Alarm>>,
    /// Alarms that tell of something that happened, shown until they expire.
    notices: Mutex<BTreeMap<String, (Alarm, Instant)>>,
}

fn now() -> String {
    crate::archive::records::format_wall(chrono::Utc::now())
}

impl Alarms {
    pub fn active(&self) -> Vec<Alarm> {
        let mut v: Vec<Alarm> = Vec::new();
        if let Ok(c) = self.conditions.lock() {
            v.extend(c.values().cloned());
        }
        if let Ok(r) = self.reported.lock() {
            v.extend(r.values().cloned());
        }
        if let Ok(mut n) = self.notices.lock() {
            n.retain(|_, (_, until)| *until > Instant::now());
            v.extend(n.values().map(|(a, _)| a.clone()));
        }
        v.sort_by(|a, b| {
            (a.severity != Severity::Critical, &a.key)
                .cmp(&(b.severity != Severity::Critical, &b.key))
        });
        v
    }

    /// Raises an alarm reported by a subsystem (kept until it clears it).
    pub fn raise(&self, a: Alarm) {
        if let Ok(mut r) = self.reported.lock() {
            r.entry(a.key.clone()).or_insert(a);
        }
    }

    /// Raises an alarm about something that happened, shown for `for_` (or until the
    /// same key is raised again).
    pub fn raise_for(&self, a: Alarm, for_: Duration) {
        if let Ok(mut n) = self.notices.lock() {
            n.insert(a.key.clone(), (a, Instant::now() + for_));
        }
    }

    /// Raises an alarm or refreshes its words (its `since` stays the first one).
    pub fn update(&self, mut a: Alarm) {
        if let Ok(mut r) = self.reported.lock() {
            if let Some(old) = r.get(&a.key) {
                a.since = old.since.clone();
            }
            r.insert(a.key.clone(), a);
        }
    }

    pub fn clear(&self, key: &str) {
        if let Ok(mut r) = self.reported.lock() {
            r.remove(key);
        }
    }

    fn set_conditions(&self, mut fresh: BTreeMap<String, Alarm>) {
        if let Ok(mut c) = self.conditions.lock() {
            // Keep the original `since` of alarms that are still active.
            for (k, a) in fresh.iter_mut() {
                if let Some(old) = c.get(k) {
                    a.since = old.since.clone();
                }
            }
            *c = fresh;
        }
    }
}

impl WriterReport for Alarms {
    fn track_failed(&self, track: &str, error: &crate::error::Error) {
        let disk = error.kind == crate::error::ErrorKind::ResourceExhausted;
        let a = Alarm {
            key: format!("recording_failed:{track}"),
            code: "recording_failed".into(),
            severity: Severity::Critical,
            source: Some(track.to_string()),
            message: format!("Recording of {track} failed: {}", error.msg),
            message_zh: format!("{track} 录制失败：{}", error.msg),
            action: if disk {
                "The disk is full. Call court IT now to free space; the other tracks keep recording where they can.".into()
            } else {
                "Call court IT now. Do not close the hearing; courtrec keeps retrying.".into()
            },
            action_zh: if disk {
                "磁盘已满。请立即联系技术人员释放空间。".into()
            } else {
                "请立即联系技术人员。不要闭庭，系统会自动重试。".into()
            },
            since: now(),
        };
        if let Ok(mut r) = self.reported.lock() {
            r.entry(a.key.clone()).or_insert(a);
        }
    }

    fn track_ok(&self, track: &str) {
        if let Ok(mut r) = self.reported.lock() {
            r.remove(&format!("recording_failed:{track}"));
        }
    }

    fn frames_dropped(&self, track: &str, count: u64) {
        let a = Alarm {
            key: format!("frames_dropped:{track}"),
            code: "frames_dropped".into(),
            severity: Severity::Warning,
            source: Some(track.to_string()),
            message: format!(
                "{count} frame(s) of {track} could not be written in time (the box is overloaded or the disk is slow)"
            ),
            message_zh: format!("{track} 有 {count} 帧未能及时写入（设备过载或磁盘过慢）"),
            action: "Tell court IT after the hearing; recording continues.".into(),
            action_zh: "庭后请告知技术人员；录制仍在继续。".into(),
            since: now(),
        };
        if let Ok(mut r) = self.reported.lock() {
            r.insert(a.key.clone(), a);
        }
    }
}

/// Runs the alarm checks once a second until the process ends.
pub fn spawn(
    cfg: Arc<Config>,
    data_dir: PathBuf,
    status: Arc<SourceStatus>,
    alarms: Arc<Alarms>,
    hearings: Arc<HearingService>,
) {
    let started = Instant::now();
    // Alarms already written to the log, and already logged in the open hearing.
    let mut announced: BTreeMap<String, Alarm> = BTreeMap::new();
    let mut logged: BTreeMap<String, Alarm> = BTreeMap::new();
    let mut recording_since: Option<Instant> = None;
    let spawned = std::thread::Builder::new()
        .name("monitor".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(500));
                // A clock step is logged (and the burned-in time follows) within half a
                // second of it.
                hearings.watch_clock();
                let recording = hearings.is_recording();
                match (recording, recording_since) {
                    (true, None) => recording_since = Some(Instant::now()),
                    (false, Some(_)) => recording_since = None,
                    _ => {}
                }
                let fresh = evaluate(
                    &cfg,
                    &data_dir,
                    &status,
                    &hearings,
                    started,
                    recording_since,
                );
                alarms.set_conditions(fresh);
                let current: BTreeMap<String, Alarm> = alarms
                    .active()
                    .into_iter()
                    .map(|a| (a.key.clone(), a))
                    .collect();
                for (k, a) in &current {
                    if !announced.contains_key(k) {
                        tracing::warn!(alarm = %k, "ALARM: {} — {}", a.message, a.action);
                    }
                }
                announced = current.clone();
                // Log raised and cleared alarms in the active hearing. With no hearing
                // open nothing is logged, so alarms already active when one opens are
                // logged as faults at its start.
                let in_case_file = |a: &Alarm| a.code != "hearing_not_opened";
                let current: BTreeMap<String, Alarm> = if hearings.active_id().is_some() {
                    current
                        .into_iter()
                        .filter(|(_, a)| in_case_file(a))
                        .collect()
                } else {
                    BTreeMap::new()
                };
                for (k, a) in &current {
                    if !logged.contains_key(k) {
                        let src = a.source.clone().unwrap_or_else(|| a.code.clone());
                        if let Err(e) =
                            hearings.device_event(EventKind::DeviceFault, &src, &a.message)
                        {
                            tracing::error!("logging fault event: {e}");
                        }
                    }
                }
                for (k, a) in &logged {
                    if !current.contains_key(k) && hearings.active_id().is_some() {
                        let src = a.source.clone().unwrap_or_else(|| a.code.clone());
                        let text = format!("resolved: {}", a.message);
                        if let Err(e) =
                            hearings.device_event(EventKind::DeviceRestored, &src, &text)
                        {
                            tracing::error!("logging restore event: {e}");
                        }
                    }
                }
                logged = current;
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the alarm monitor: {e}");
    }
}

fn evaluate(
    cfg: &Config,
    data_dir: &std::path::Path,
    status: &SourceStatus,
    hearings: &HearingService,
    started: Instant,
    recording_since: Option<Instant>,
) -> BTreeMap<String, Alarm> {
    let mut out = BTreeMap::new();
    let mut add = |code: &str,
                   severity: Severity,
                   source: Option<&str>,
                   msg: String,
                   msg_zh: String,
                   action: &str,
                   action_zh: &str| {
        let key = match source {
            Some(s) => format!("{code}:{s}"),
            None => code.to_string(),
        };
        out.insert(
            key.clone(),
            Alarm {
                key,
                code: code.into(),
                severity,
                source: source.map(str::to_string),
                message: msg,
                message_zh: msg_zh,
                action: action.into(),
                action_zh: action_zh.into(),
                since: now(),
            },
        );
    };
    if let Some(e) = hearings.checkpoint_error() {
        add(
            "signing_failed",
            Severity::Critical,
            None,
            format!("The recording cannot be sealed with the box's signature: {e}"),
            format!("录像无法加盖设备签名：{e}"),
            "Recording continues and every segment is still hashed. Call court IT now (usually the disk is full).",
            "录制仍在继续，每个片段仍有哈希值。请立即联系技术人员（通常是磁盘已满）。",
        );
    }
    for (id, why) in hearings.catalog.tampered() {
        add(
            "hearing_tampered",
            Severity::Critical,
            Some(&id),
            format!(
                "Hearing {id} no longer matches what this box signed: {why}. courtrec keeps it read-only and will not sign, export or resume it."
            ),
            format!("庭审 {id} 与本设备签名的记录不一致，可能已被篡改。系统已将其设为只读。"),
            "Do not delete anything. Call court IT: the hearing's folder and the box's device log are evidence of what was changed.",
            "请勿删除任何文件。请联系技术人员：该庭审的文件夹和设备日志是篡改的证据。",
        );
    }
    for (id, why) in hearings.damaged() {
        add(
            "hearing_damaged",
            Severity::Critical,
            Some(&id),
            format!("Hearing {id} could not be opened at start-up and was skipped: {why}"),
            format!("庭审 {id} 启动时无法打开，已跳过。"),
            "The other hearings record as usual. Call court IT: `courtrec check` says what is wrong; nothing was deleted.",
            "其他庭审照常录制。请联系技术人员运行 courtrec check 检查；没有文件被删除。",
        );
    }
    let health = hearings.log_health();
    if let Some(e) = &health.append_error {
        add(
            "recording_failed",
            Severity::Critical,
            Some("manifest"),
            format!("The hearing's record cannot be written: {e}"),
            "庭审记录无法写入。".into(),
            "Call court IT now. Do not close the hearing.",
            "请立即联系技术人员。不要闭庭。",
        );
    }
    if let Some(e) = &health.index_error {
        add(
            "index_failed",
            Severity::Warning,
            None,
            format!(
                "The search index cannot be updated ({e}); the recording itself is safe on disk."
            ),
            "检索索引无法更新；录像本身已安全写入磁盘。".into(),
            "Nothing to do in the courtroom. Tell court IT (courtrec check --repair rebuilds the index).",
            "法庭内无需操作。请告知技术人员。",
        );
    }
    let lost_after = Duration::from_millis(cfg.alarms.source_lost_ms);
    let grace = started.elapsed() > Duration::from_secs(5).max(lost_after);
    for s in status.snapshot() {
        let name = if s.label.is_empty() {
            s.id.clone()
        } else {
            format!("{} ({})", s.label, s.id)
        };
        let lost = match s.last_buffer {
            Some(t) => t.elapsed() > lost_after,
            None => grace,
        };
        match s.kind {
            TrackKind::Video if lost => add(
                "camera_lost",
                Severity::Critical,
                Some(&s.id),
                format!(
                    "Camera {name} sends no picture{}",
                    s.error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ),
                format!("摄像机 {name} 无画面"),
                "Check the camera's cable and power. The other cameras and microphones keep recording.",
                "请检查该摄像机的线缆和电源。其他摄像机和麦克风仍在录制。",
            ),
            TrackKind::Audio if lost => add(
                "mic_lost",
                Severity::Critical,
                Some(&s.id),
                format!("Microphone {name} sends no sound signal"),
                format!("麦克风 {name} 无信号"),
                "Check the microphone's cable and the audio interface.",
                "请检查麦克风线缆和音频接口。",
            ),
            TrackKind::Audio => {
                let silent_for = Duration::from_secs(cfg.alarms.mic_silence_s);
                if let Some(rec) = recording_since {
                    let quiet_since = s.last_sound.map_or(rec, |t| t.max(rec));
                    if quiet_since.elapsed() > silent_for {
                        add(
                            "mic_silent",
                            Severity::Warning,
                            Some(&s.id),
                            format!(
                                "Microphone {name} has been silent for more than {} s while recording",
                                cfg.alarms.mic_silence_s
                            ),
                            format!(
                                "麦克风 {name} 录制中已静音超过 {} 秒",
                                cfg.alarms.mic_silence_s
                            ),
                            "Check that the microphone is switched on and not muted.",
                            "请确认麦克风已打开且未静音。",
                        );
                    }
                }
            }
            _ => {}
        }
    }
    // A recorded track that stops while recording, its sources being fine (they have
    // their own alarms above): a stalled compositor or encoder would otherwise leave
    // a silent gap, found only by the verifier after the hearing. Twice the source
    // threshold and a second: a lost camera's track is silent for about
    // `source_lost_ms` until its fallback picture takes over, which is the camera's
    // alarm, not this one.
    let stall_after = lost_after * 2 + Duration::from_secs(1);
    if let Some(rec) = recording_since
        && rec.elapsed() > stall_after
    {
        for (track, quiet) in stalled_tracks(&hearings.track_silences(), stall_after) {
            add(
                "track_stalled",
                Severity::Critical,
                Some(&track),
                format!(
                    "Track {track} has recorded nothing for {} s",
                    quiet.as_secs()
                ),
                format!("{track} 已有 {} 秒没有录到内容", quiet.as_secs()),
                "Call court IT now. The other tracks keep recording; note the time in the log.",
                "请立即联系技术人员。其他轨道仍在录制；请在记录中注明时间。",
            );
        }
    }
    if let Some((free, _)) = crate::archive::disk_space(data_dir)
        && free < cfg.alarms.disk_free_min_bytes
    {
        add(
            "disk_low",
            Severity::Critical,
            None,
            format!(
                "The recording disk is nearly full: {} MB free",
                free / 1_000_000
            ),
            format!("录像磁盘即将写满：剩余 {} MB", free / 1_000_000),
            "Call court IT to copy old hearings to the archive and free space before the disk fills.",
            "请联系技术人员将旧庭审归档并释放空间。",
        );
    }
    if crate::clock::synchronised() == Some(false) {
        add(
            "clock_unsynchronised",
            if recording_since.is_some() {
                Severity::Critical
            } else {
                Severity::Warning
            },
            None,
            "The box's clock is not synchronised with a time server: the time burned into the recording and its timestamps may be wrong".into(),
            "本机时钟未与时间服务器同步：录像中的时间可能不准确".into(),
            "Call court IT before opening a hearing: they check the box's time server (NTP).",
            "开庭前请联系技术人员检查本机的时间服务器（NTP）。",
        );
    }
    let late_after = chrono::Duration::seconds(cfg.alarms.hearing_not_opened_s as i64);
    let now_t = chrono::Utc::now();
    if let Ok(list) = hearings.index.hearings() {
        for h in list.iter().filter(|h| h.state == HearingState::Scheduled) {
            let Some(s) = h
                .meta
                .scheduled_start
                .as_deref()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            else {
                continue;
            };
            let due = s.with_timezone(&chrono::Utc) + late_after;
            if now_t > due && now_t - due < chrono::Duration::hours(12) {
                add(
                    "hearing_not_opened",
                    Severity::Warning,
                    Some(&h.id),
                    format!(
                        "Hearing {} was scheduled for {} and is not open: it is not being recorded",
                        h.meta.case_number,
                        h.meta.scheduled_start.as_deref().unwrap_or("")
                    ),
                    format!(
                        "庭审 {} 已到开庭时间但尚未开庭：未在录制",
                        h.meta.case_number
                    ),
                    "If the hearing has started, press \"Open hearing and start recording\" now.",
                    "如已开庭，请立即点击“开庭并开始录制”。",
                );
            }
        }
    }
    out
}

/// Tracks silent for longer than `after` (or silent since the start), with how long.
fn stalled_tracks(
    silences: &[(String, Option<Duration>)],
    after: Duration,
) -> Vec<(String, Duration)> {
    silences
        .iter()
        .filter_map(|(track, quiet)| match quiet {
            Some(q) if *q > after => Some((track.clone(), *q)),
            None => Some((track.clone(), after)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_track_silent_too_long_is_stalled() {
        let after = Duration::from_secs(3);
        let s = |ms: u64| Some(Duration::from_millis(ms));
        let tracks = vec![
            ("cam1".to_string(), s(100)),
            ("composite".to_string(), s(4000)),
            ("mic1".to_string(), None),
            ("mic2".to_string(), s(3000)),
        ];
        let stalled = stalled_tracks(&tracks, after);
        assert_eq!(
            stalled,
            vec![
                ("composite".to_string(), Duration::from_secs(4)),
                ("mic1".to_string(), after),
            ]
        );
    }
}
