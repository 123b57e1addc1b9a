//! The livestream's policy, applied four times a second: what the public may see of
//! the hearing open now (approval, cut, recess, exclusions), pushed to the capture's
//! public branch, the relay's viewers and the platform pushes.

use super::{Relay, rtmp, whip};
use std::sync::Arc;

/// How often the stream's policy is applied (approval, cut, recess, exclusions).
const ENFORCE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// Keeps the public stream in line with the hearings' policy: encodes it only while
/// someone watches (or it is pushed to a platform) an approved, public, open hearing; pauses it when cut or in a
/// non-public recess; leaves excluded sources out; drops every viewer of a hearing
/// that may no longer be streamed (withdrawn, closed).
pub async fn enforce(
    hearings: Arc<crate::recording::hearings::HearingService>,
    capture: Arc<crate::capture::pipeline::Capture>,
    relay: Arc<Relay>,
    egress: Option<Arc<rtmp::Egress>>,
    whip: Option<Arc<whip::WhipEgress>>,
    alarms: Arc<crate::monitor::Alarms>,
) {
    let mut tick = tokio::time::interval(ENFORCE_INTERVAL);
    let mut last: Option<(bool, bool, Vec<String>)> = None;
    loop {
        tick.tick().await;
        let doc = hearings.active_id().and_then(|id| hearings.get(&id).ok());
        let streaming = doc.as_ref().filter(|d| d.streaming());
        relay.drop_all_but(streaming.map(|d| d.id.as_str())).await;
        relay.reap_pending().await;
        if let Some(e) = &egress {
            e.set_active(streaming.is_some());
            // Court IT should see a platform that refuses or cannot be reached.
            let failing = e.last_error.lock().ok().and_then(|l| l.clone());
            match failing.filter(|_| streaming.is_some()) {
                Some(why) => alarms.raise(crate::monitor::rtmp_alarm(&why)),
                None => alarms.clear("rtmp_push_failed"),
            }
        }
        if let Some(w) = &whip {
            w.set_active(streaming.map(|d| d.id.as_str()));
            let failing = w.last_error.lock().ok().and_then(|l| l.clone());
            match failing.filter(|_| streaming.is_some()) {
                Some(why) => alarms.raise(crate::monitor::whip_alarm(&why)),
                None => alarms.clear("whip_push_failed"),
            }
        }
        let want = match streaming {
            Some(d) => (
                relay.viewer_count(Some(&d.id)) > 0 || egress.is_some() || whip.is_some(),
                d.stream_paused(),
                d.livestream.excluded.clone(),
            ),
            None => (false, true, Vec::new()),
        };
        if last.as_ref() != Some(&want) {
            capture.set_public(want.0, want.1, &want.2);
            if want.0 {
                capture.request_live_keyframe();
            }
            last = Some(want);
        }
    }
}
