//! SDP exchanges without trickle ICE: the complete local description (WHEP answers,
//! WHIP offers), and the WHIP POST itself.

use crate::error::{Error, ErrorKind, Result};
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;

/// Sets `desc` as the local description and waits for every ICE candidate (WHEP and
/// WHIP here do not trickle); returns the complete SDP.
pub(super) async fn gather(pc: &RTCPeerConnection, desc: RTCSessionDescription) -> Result<String> {
    let mut gathered = pc.gathering_complete_promise().await;
    pc.set_local_description(desc)
        .await
        .map_err(|e| Error::new(ErrorKind::Internal, format!("local description: {e}")))?;
    let _ = gathered.recv().await;
    pc.local_description()
        .await
        .map(|l| l.sdp)
        .ok_or_else(|| Error::new(ErrorKind::Internal, "no local description"))
}

/// The WHIP exchange (RFC 9725 section 4.2): POST the offer as `application/sdp`,
/// expect 201 Created with the answer and a `Location`. Returns that location,
/// resolved against `url`.
pub(super) async fn whip_offer(
    pc: &RTCPeerConnection,
    url: &str,
    token: Option<&str>,
) -> Result<Option<String>> {
    let unavailable = |what: String| Error::new(ErrorKind::Unavailable, what);
    let offer = pc
        .create_offer(None)
        .await
        .map_err(|e| Error::new(ErrorKind::Internal, format!("offer: {e}")))?;
    let sdp = gather(pc, offer).await?;
    let mut req = reqwest::Client::new()
        .post(url)
        .timeout(std::time::Duration::from_secs(10))
        .header("content-type", "application/sdp")
        .body(sdp);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req
        .send()
        .await
        .map_err(|e| unavailable(format!("the WHIP endpoint cannot be reached: {e}")))?;
    let status = r.status();
    if status.as_u16() != 201 {
        let why = r.text().await.unwrap_or_default();
        return Err(unavailable(format!(
            "the WHIP endpoint answered {status}: {}",
            why.chars().take(200).collect::<String>()
        )));
    }
    let location = r
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .and_then(|l| reqwest::Url::parse(url).ok()?.join(l).ok())
        .map(|u| u.to_string());
    let answer = r
        .text()
        .await
        .map_err(|e| unavailable(format!("the WHIP answer was cut: {e}")))?;
    let answer = RTCSessionDescription::answer(answer)
        .map_err(|e| unavailable(format!("the WHIP answer is not SDP: {e}")))?;
    pc.set_remote_description(answer)
        .await
        .map_err(|e| unavailable(format!("the WHIP answer cannot be used: {e}")))?;
    Ok(location)
}
