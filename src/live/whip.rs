//! Publishing the public stream to a platform over WHIP (RFC 9725): the court's own
//! SFU or a livestream service that ingests WebRTC. The platform is one more
//! connection of the relay, served like a viewer (`Relay::publish_whip`): the same
//! H.264 and Opus packets the viewers get, no second encoding.
//!
//! It publishes while a hearing is streamed, ends the session with a DELETE when
//! streaming stops, and reconnects by itself (every few seconds) when the endpoint
//! refuses, cannot be reached, or the connection fails. While it fails, the
//! `whip_push_failed` alarm tells court IT why.

use super::Relay;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Wait before publishing again after a failure.
const RETRY: Duration = Duration::from_secs(3);

/// A session whose media connection is still not up this long after the endpoint
/// answered has failed (the HTTP side works but UDP is blocked, say).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Default)]
struct State {
    /// The relay's session id, the resource to DELETE, and when it was answered.
    session: Option<(String, Option<String>, Instant)>,
    /// A publish is under way (it takes a round trip and ICE gathering).
    connecting: bool,
    retry_at: Option<Instant>,
}

/// The WHIP push of one courtroom.
pub struct WhipEgress {
    url: String,
    token: Option<String>,
    relay: Arc<Relay>,
    state: Mutex<State>,
    /// Why publishing fails, while it fails (for the alarm).
    pub last_error: Mutex<Option<String>>,
}

impl WhipEgress {
    pub fn new(url: &str, token: Option<&str>, relay: Arc<Relay>) -> WhipEgress {
        WhipEgress {
            url: url.to_string(),
            token: token.map(str::to_string),
            relay,
            state: Mutex::new(State::default()),
            last_error: Mutex::new(None),
        }
    }

    fn fail(&self, why: String) {
        tracing::warn!("WHIP push to {}: {why}", self.url);
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some(why);
        }
    }

    /// Publishes `hearing` (the one being streamed), or stops when None; called
    /// every policy tick from a tokio runtime.
    pub fn set_active(self: &Arc<Self>, hearing: Option<&str>) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        let Some(hearing) = hearing else {
            if let Some((sid, location, _)) = st.session.take() {
                let me = self.clone();
                tokio::spawn(async move { me.end(&sid, location).await });
            }
            st.retry_at = None;
            if let Ok(mut e) = self.last_error.lock() {
                *e = None;
            }
            return;
        };
        // A session the relay forgot has failed (or was for another hearing).
        if let Some((sid, location, answered)) = st.session.clone() {
            let connected = self.relay.session_connected(&sid);
            match self.relay.session_hearing(&sid) {
                Some(h) if h == hearing && (connected || answered.elapsed() < CONNECT_TIMEOUT) => {
                    if connected && let Ok(mut e) = self.last_error.lock() {
                        *e = None;
                    }
                    return;
                }
                other => {
                    st.session = None;
                    if other.is_none() || other.as_deref() == Some(hearing) {
                        st.retry_at = Some(Instant::now() + RETRY);
                        self.fail("the connection to the platform failed".into());
                    }
                    let me = self.clone();
                    tokio::spawn(async move { me.end(&sid, location).await });
                }
            }
        }
        if st.connecting || st.retry_at.is_some_and(|t| Instant::now() < t) {
            return;
        }
        st.connecting = true;
        let (me, hearing) = (self.clone(), hearing.to_string());
        tokio::spawn(async move {
            let r = me
                .relay
                .publish_whip(&hearing, &me.url, me.token.as_deref())
                .await;
            let Ok(mut st) = me.state.lock() else { return };
            st.connecting = false;
            match r {
                Ok((sid, location)) => st.session = Some((sid, location, Instant::now())),
                Err(e) => {
                    st.retry_at = Some(Instant::now() + RETRY);
                    drop(st);
                    me.fail(e.to_string());
                }
            }
        });
    }

    /// Ends a session: here, and at the platform (DELETE on its resource).
    async fn end(&self, sid: &str, location: Option<String>) {
        self.relay.remove(sid).await;
        if let Some(l) = location {
            let mut req = reqwest::Client::new()
                .delete(&l)
                .timeout(Duration::from_secs(5));
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            // A platform that is gone cannot be told; its session times out there.
            let _ = req.send().await;
        }
    }
}
