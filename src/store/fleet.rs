//! The heartbeat a courtroom box publishes at `<prefix>status.json` every
//! `heartbeat_s` seconds, and court IT's fleet page (`/fleet` on the archive server)
//! reads: one small object per box, overwritten each time (it is not evidence).

use serde::{Deserialize, Serialize};

/// Largest heartbeat read back (a box's status is a few kilobytes).
pub const MAX_HEARTBEAT_BYTES: u64 = 256 * 1024;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Heartbeat {
    pub device_id: String,
    pub courtroom_id: String,
    pub courtroom_name: String,
    #[serde(default)]
    pub court: String,
    pub software_version: String,
    /// When the box wrote it (RFC 3339, the box's clock).
    pub time: String,
    /// How often it writes one: the page calls a box silent after three of these.
    pub heartbeat_s: u64,
    /// `idle`, `open`, `recess`.
    pub recording: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hearing_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_number: Option<String>,
    pub alarms: Vec<HeartbeatAlarm>,
    pub disk_free_bytes: u64,
    pub disk_total_bytes: u64,
    pub replication_state: String,
    pub replication_lag_s: f64,
    pub replication_lag_bytes: u64,
    pub replication_objects_pending: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HeartbeatAlarm {
    pub code: String,
    pub severity: String,
    pub message: String,
    #[serde(default)]
    pub message_zh: String,
    pub since: String,
}
