//! Court IT's view of every courtroom (`/fleet`, `GET /api/v1/fleet`): each box's last
//! heartbeat and anything wrong with it, in plain words.

use super::Central;
use super::sync::BoxPrefix;
use crate::store::fleet::{Heartbeat, MAX_HEARTBEAT_BYTES};
use crate::store::layout;
use serde::Serialize;

/// A courtroom as the fleet page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct FleetEntry {
    /// The courtroom's path under the served prefix (`room-7`).
    pub room: String,
    pub prefix: String,
    pub hearings: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<Heartbeat>,
    /// Seconds since the box wrote its heartbeat (by the box's clock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_s: Option<f64>,
    /// `ok`, `attention` (something is wrong), `silent` (no heartbeat for three
    /// periods), `unknown` (no heartbeat ever).
    pub state: &'static str,
    /// What is wrong, in plain words.
    pub problems: Vec<String>,
}

/// Reads a courtroom's heartbeat and judges it.
pub async fn read(c: &Central, bx: &BoxPrefix) -> FleetEntry {
    let key = format!("{}{}", bx.prefix, layout::STATUS);
    let hb: Option<Heartbeat> = match c.store.get_bytes(&key, MAX_HEARTBEAT_BYTES).await {
        Ok(b) => serde_json::from_slice(&b).ok(),
        Err(_) => None,
    };
    judge(bx, hb, chrono::Utc::now())
}

fn judge(bx: &BoxPrefix, hb: Option<Heartbeat>, now: chrono::DateTime<chrono::Utc>) -> FleetEntry {
    let mut problems = Vec::new();
    let age_s = hb.as_ref().and_then(|h| {
        chrono::DateTime::parse_from_rfc3339(&h.time)
            .ok()
            .map(|t| (now - t.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0)
    });
    let state = match &hb {
        None => {
            problems.push("This courtroom has never sent a heartbeat (an older box, or replication is failing).".into());
            "unknown"
        }
        Some(h) => {
            let silent = age_s.is_none_or(|a| a > 3.0 * h.heartbeat_s.max(1) as f64);
            if silent {
                problems.push(format!(
                    "No heartbeat for {}: the box may be off, or cut off from the archive.",
                    age_s.map_or("a long time".to_string(), |a| {
                        if a < 120.0 {
                            format!("{} seconds", a.round() as i64)
                        } else {
                            format!("{} minutes", (a / 60.0).round() as i64)
                        }
                    })
                ));
            }
            for a in &h.alarms {
                problems.push(a.message.clone());
            }
            if h.disk_total_bytes > 0 && h.disk_free_bytes < h.disk_total_bytes / 10 {
                problems.push(format!(
                    "The box's disk is nearly full ({} GB free).",
                    h.disk_free_bytes / 1_000_000_000
                ));
            }
            if silent {
                "silent"
            } else if problems.is_empty() {
                "ok"
            } else {
                "attention"
            }
        }
    };
    FleetEntry {
        room: if bx.room.is_empty() {
            bx.prefix.trim_end_matches('/').to_string()
        } else {
            bx.room.clone()
        },
        prefix: bx.prefix.clone(),
        hearings: bx.hearings.len(),
        heartbeat: hb,
        age_s,
        state,
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_and_troubled_boxes_are_named() {
        let bx = BoxPrefix {
            prefix: "court-a/room-7/".into(),
            room: "room-7".into(),
            hearings: vec![],
        };
        let now = chrono::Utc::now();
        assert_eq!(judge(&bx, None, now).state, "unknown");
        let mut hb = Heartbeat {
            time: crate::archive::records::format_wall(now - chrono::Duration::seconds(10)),
            heartbeat_s: 30,
            disk_total_bytes: 100,
            disk_free_bytes: 50,
            ..Default::default()
        };
        assert_eq!(judge(&bx, Some(hb.clone()), now).state, "ok");
        hb.disk_free_bytes = 5;
        let e = judge(&bx, Some(hb.clone()), now);
        assert_eq!(e.state, "attention");
        assert!(e.problems[0].contains("nearly full"), "{:?}", e.problems);
        hb.time = crate::archive::records::format_wall(now - chrono::Duration::minutes(5));
        let e = judge(&bx, Some(hb), now);
        assert_eq!(e.state, "silent");
        assert!(e.problems[0].contains("5 minutes"), "{:?}", e.problems);
    }
}
