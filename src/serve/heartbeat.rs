//! The box's heartbeat for court IT's fleet page: every `[archive] heartbeat_s` the
//! recording state, the alarms, the disk and the replication, handed to the replication
//! to publish as `<prefix>status.json`.

use crate::archive::DataDir;
use crate::config::Config;
use crate::monitor::Alarms;
use crate::recording::hearings::HearingService;
use crate::replication::Replicator;
use crate::store::fleet::{Heartbeat, HeartbeatAlarm};
use std::sync::Arc;
use std::time::Duration;

pub fn spawn(
    cfg: Arc<Config>,
    hearings: Arc<HearingService>,
    alarms: Arc<Alarms>,
    data: DataDir,
    device_id: String,
    r: Arc<Replicator>,
) {
    let every = Duration::from_secs(r.config().heartbeat_s);
    let spawned = std::thread::Builder::new()
        .name("heartbeat".into())
        .spawn(move || {
            loop {
                let hb = beat(&cfg, &hearings, &alarms, &data, &device_id, &r);
                match serde_json::to_vec_pretty(&hb) {
                    Ok(body) => r.set_heartbeat(body),
                    Err(e) => tracing::warn!("heartbeat: {e}"),
                }
                std::thread::sleep(every);
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the heartbeat: {e}");
    }
}

fn beat(
    cfg: &Config,
    hearings: &HearingService,
    alarms: &Alarms,
    data: &DataDir,
    device_id: &str,
    r: &Replicator,
) -> Heartbeat {
    let active = hearings.active_id().and_then(|id| hearings.get(&id).ok());
    let (free, total) = crate::archive::disk_space(&data.root).unwrap_or((0, 0));
    let rs = r.status();
    Heartbeat {
        device_id: device_id.to_string(),
        courtroom_id: cfg.courtroom.id.clone(),
        courtroom_name: cfg.courtroom.name.clone(),
        court: cfg.courtroom.court.clone(),
        software_version: env!("CARGO_PKG_VERSION").to_string(),
        time: crate::archive::records::format_wall(chrono::Utc::now()),
        heartbeat_s: r.config().heartbeat_s,
        recording: active
            .as_ref()
            .map_or("idle".to_string(), |d| d.state.as_str().to_string()),
        // A sealed hearing's case number stays off the fleet page.
        case_number: active
            .as_ref()
            .filter(|d| d.meta.visibility != crate::archive::records::Visibility::Sealed)
            .map(|d| d.meta.case_number.clone()),
        hearing_id: active.map(|d| d.id),
        alarms: alarms
            .active()
            .into_iter()
            .map(|a| HeartbeatAlarm {
                code: a.code,
                severity: format!("{:?}", a.severity).to_lowercase(),
                message: a.message,
                message_zh: a.message_zh,
                since: a.since,
            })
            .collect(),
        disk_free_bytes: free,
        disk_total_bytes: total,
        replication_state: rs.state.to_string(),
        replication_lag_s: rs.lag_s,
        replication_lag_bytes: rs.lag_bytes,
        replication_objects_pending: rs.objects_pending,
    }
}
