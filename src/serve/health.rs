//! What the service watchdog checks on a courtroom box, and the status line systemd
//! shows (see `notify`).

use super::notify::{self, Health};
use crate::recording::hearings::HearingService;
use std::sync::Arc;
use std::time::Duration;

pub struct BoxHealth {
    pub hearings: Arc<HearingService>,
    /// The console's preview stills: taken from the raw pictures all the time, so they
    /// show the pipeline runs between hearings too, while the encoders rest.
    pub previews: Arc<crate::capture::Previews>,
    pub data_dir: std::path::PathBuf,
    /// The daemon's plain HTTP address (probed on loopback).
    pub http: std::net::SocketAddr,
    /// A track silent for longer than this is stalled: twice the time a lost camera's
    /// fallback picture takes to come in, and a second (the monitor's `track_stalled`).
    pub stall_after: Duration,
}

impl Health for BoxHealth {
    fn alive(&self) -> Result<(), String> {
        let silences = self.hearings.track_silences();
        let stalled: Vec<&str> = silences
            .iter()
            .filter(|(_, q)| q.is_some_and(|q| q > self.stall_after))
            .map(|(t, _)| t.as_str())
            .collect();
        if !stalled.is_empty() {
            return Err(format!(
                "no frames from the capture pipeline for {}",
                stalled.join(", ")
            ));
        }
        let frozen = self.previews.stale(self.stall_after);
        if !frozen.is_empty() {
            return Err(format!(
                "no pictures from the capture pipeline for {}",
                frozen.join(", ")
            ));
        }
        let stuck = self.hearings.stuck_writers(self.stall_after);
        if !stuck.is_empty() {
            return Err(format!(
                "the recording of {} makes no progress",
                stuck.join(", ")
            ));
        }
        notify::http_answers(loopback(self.http), Duration::from_secs(5))
    }

    fn status(&self) -> String {
        let tracks = self.hearings.track_silences().len();
        let disk = crate::archive::disk_space(&self.data_dir)
            .filter(|(_, total)| *total > 0)
            .map(|(free, total)| format!(", disk {} % free", free * 100 / total))
            .unwrap_or_default();
        let what = match self.hearings.active_id() {
            Some(id) => {
                let case = self
                    .hearings
                    .get(&id)
                    .map(|d| d.meta.case_number)
                    .unwrap_or(id);
                if self.hearings.is_recording() {
                    format!("recording {case}")
                } else {
                    format!("in recess {case}")
                }
            }
            None => "idle, no hearing open".into(),
        };
        format!("{what}, {tracks} tracks{disk}")
    }
}

/// The address to probe: an unspecified listen address (0.0.0.0, ::) is reached on
/// loopback.
fn loopback(a: std::net::SocketAddr) -> std::net::SocketAddr {
    match a.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            (std::net::Ipv4Addr::LOCALHOST, a.port()).into()
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            (std::net::Ipv6Addr::LOCALHOST, a.port()).into()
        }
        _ => a,
    }
}
