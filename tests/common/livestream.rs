//! Helpers of the livestream tests: a courtroom with a `[livestream]` section, and a
//! public hearing scheduled in it.

use super::{Daemon, users_toml};
use serde_json::json;

/// A one-camera, one-microphone courtroom whose `[livestream]` section is `livestream`
/// (TOML lines); returns the config file's path.
pub fn courtroom_with_livestream(dir: &std::path::Path, livestream: &str) -> std::path::PathBuf {
    let cfg = dir.join("courtroom.toml");
    std::fs::write(
        &cfg,
        format!(
            "[courtroom]\nid = \"t1\"\nname = \"Livestream test\"\n\
             [livestream]\n{livestream}\n\
             [[camera]]\nid = \"cam1\"\nkind = \"test\"\nrole = \"judge\"\n\
             [[microphone]]\nid = \"mic1\"\nkind = \"test\"\nrole = \"judge\"\n{}",
            users_toml()
        ),
    )
    .unwrap();
    cfg
}

/// Schedules a public hearing; returns its id.
pub fn public_hearing(d: &Daemon, clerk: &str, case_number: &str, title: &str) -> String {
    d.ok(
        "POST",
        "/api/v1/hearings",
        clerk,
        Some(json!({"case_number": case_number, "title": title, "visibility": "public"})),
    )["id"]
        .as_str()
        .unwrap()
        .to_string()
}
