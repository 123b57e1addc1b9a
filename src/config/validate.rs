//! Checks a parsed config for what TOML types cannot say (URLs, ids, sizes, files
//! that must exist, what goes into pipeline text), naming every error with its line
//! so that court IT fixes a file in one pass.

use super::{CameraKind, Config, ConfigError, UserRole, is_safe_id, line_of, pipeline_text};
use std::path::Path;
use toml::Spanned;

/// A test camera's pattern may move at most this far a frame (a wider jump is no longer
/// seen as motion, and a typo such as 6400 would be taken silently).
const MAX_SCROLL_PX_PER_FRAME: u32 = 64;

/// Every error in `cfg` (empty: valid). Resolves relative paths against `base` as it
/// goes, since a file's existence is checked where the daemon will look for it.
pub(super) fn validate(
    cfg: &mut Config,
    file: &str,
    text: &str,
    base: Option<&Path>,
) -> Vec<ConfigError> {
    let fail = |offset: usize, msg: String| ConfigError {
        file: file.to_string(),
        line: line_of(text, offset),
        msg,
    };
    let mut errors = Vec::new();
    if let Some(base) = base.filter(|b| !b.as_os_str().is_empty()) {
        if cfg.server.data_dir.is_relative() {
            cfg.server.data_dir = base.join(&cfg.server.data_dir);
        }
        if let Some(k) = cfg.device.key_path.as_mut()
            && k.is_relative()
        {
            *k = base.join(&*k);
        }
    }
    if let Some(url) = &cfg.device.tsa_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        errors.push(fail(
            text.find("tsa_url").unwrap_or(0),
            format!("field `device.tsa_url`: {url:?} is not an http:// or https:// URL"),
        ));
    }
    if let Some(url) = &cfg.livestream.rtmp_url
        && !(url.starts_with("rtmp://") || url.starts_with("rtmps://"))
    {
        errors.push(fail(
            text.find("rtmp_url").unwrap_or(0),
            format!("field `livestream.rtmp_url`: {url:?} is not an rtmp:// URL"),
        ));
    }
    if let Some(url) = &cfg.livestream.whip_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        errors.push(fail(
            text.find("whip_url").unwrap_or(0),
            format!("field `livestream.whip_url`: {url:?} is not an http:// or https:// URL"),
        ));
    }
    // A push to a platform with the public stream switched off would never send a
    // frame: said at load, not discovered on the day of a public hearing.
    if !cfg.livestream.enabled {
        for (key, set) in [
            ("rtmp_url", cfg.livestream.rtmp_url.is_some()),
            ("whip_url", cfg.livestream.whip_url.is_some()),
        ] {
            if set {
                errors.push(fail(
                    text.find(key).unwrap_or(0),
                    format!(
                        "field `livestream.{key}`: the livestream is off (`enabled = false`), so nothing would be pushed there; remove one of the two"
                    ),
                ));
            }
        }
    }
    for p in [cfg.server.tls_cert.as_mut(), cfg.server.tls_key.as_mut()]
        .into_iter()
        .flatten()
    {
        if let Some(base) = base.filter(|b| !b.as_os_str().is_empty())
            && p.is_relative()
        {
            *p = base.join(&*p);
        }
    }
    let tls = [
        cfg.server.tls_listen.is_some(),
        cfg.server.tls_cert.is_some(),
        cfg.server.tls_key.is_some(),
    ];
    if tls.contains(&true) && tls.contains(&false) {
        errors.push(fail(
            text.find("tls_").unwrap_or(0),
            "fields `server.tls_listen`, `tls_cert` and `tls_key` go together: give all three"
                .into(),
        ));
    }
    for (key, p) in [
        ("tls_cert", &cfg.server.tls_cert),
        ("tls_key", &cfg.server.tls_key),
    ] {
        if let Some(p) = p
            && !p.is_file()
        {
            errors.push(fail(
                text.find(key).unwrap_or(0),
                format!(
                    "field `server.{key}`: {} is not a readable file",
                    p.display()
                ),
            ));
        }
    }
    if cfg.server.header_timeout_s == 0
        || cfg.server.idle_timeout_s == 0
        || cfg.server.max_connections == 0
    {
        errors.push(fail(
            text.find("[server]").unwrap_or(0),
            "fields `server.header_timeout_s`, `idle_timeout_s` and `max_connections` must be at least 1".into(),
        ));
    }
    if !(1..=4).contains(&cfg.exports.workers) || cfg.exports.pending_per_caller == 0 {
        errors.push(fail(
            text.find("[exports]").unwrap_or(0),
            "fields `exports.workers` (1-4) and `exports.pending_per_caller` (at least 1)".into(),
        ));
    }
    if cfg.login.max_hashes == 0 || cfg.login.free_attempts == 0 {
        errors.push(fail(
            text.find("[login]").unwrap_or(0),
            "fields `login.max_hashes` and `login.free_attempts` must be at least 1".into(),
        ));
    }
    if cfg.device.tsa_retry_s == 0 {
        errors.push(fail(
            text.find("tsa_retry_s").unwrap_or(0),
            "field `device.tsa_retry_s`: must be at least 1".into(),
        ));
    }
    if let Some(a) = cfg.archive.as_mut()
        && let Err(m) = a.validate(base)
    {
        errors.push(fail(text.find("[archive]").unwrap_or(0), m));
    }
    if !is_safe_id(&cfg.courtroom.id) {
        errors.push(fail(
            text.find("[courtroom]").unwrap_or(0),
            "field `courtroom.id`: use 1-32 letters, digits, '-' or '_'".into(),
        ));
    }
    if ![1, 4, 5, 6].contains(&cfg.composite.layout) {
        errors.push(fail(
            text.find("layout").unwrap_or(0),
            format!(
                "field `composite.layout`: {} panes is not a layout (use 1, 4, 5 or 6)",
                cfg.composite.layout
            ),
        ));
    }
    if cfg.cameras.is_empty() {
        errors.push(fail(
            0,
            "no [[camera]] configured: a courtroom needs at least one".into(),
        ));
    }
    if cfg.microphones.is_empty() {
        errors.push(fail(
            0,
            "no [[microphone]] configured: a courtroom needs at least one".into(),
        ));
    }
    let mut ids = std::collections::HashSet::new();
    ids.insert("composite".to_string());
    for cam in cfg.cameras.iter_mut() {
        let at = cam.span().start;
        let c = cam.get_mut();
        if !is_safe_id(&c.id) {
            errors.push(fail(
                at,
                format!(
                    "camera field `id`: '{}' must be 1-32 letters, digits, '-' or '_'",
                    c.id
                ),
            ));
        }
        if !ids.insert(c.id.clone()) {
            errors.push(fail(
                at,
                format!(
                    "camera field `id`: '{}' is used twice (or is reserved)",
                    c.id
                ),
            ));
        }
        if c.width == 0 || c.height == 0 || c.fps == 0 || c.width % 2 == 1 || c.height % 2 == 1 {
            errors.push(fail(
                at,
                format!(
                    "camera '{}': width, height and fps must be positive, width and height even",
                    c.id
                ),
            ));
        }
        if c.scroll_px_per_frame.unsigned_abs() > MAX_SCROLL_PX_PER_FRAME
            || (c.kind != CameraKind::Test && c.scroll_px_per_frame != 0)
        {
            errors.push(fail(
                at,
                format!(
                    "camera '{}' field `scroll_px_per_frame`: {} is not allowed (test cameras only, -{MAX_SCROLL_PX_PER_FRAME} to {MAX_SCROLL_PX_PER_FRAME})",
                    c.id, c.scroll_px_per_frame
                ),
            ));
        }
        match c.kind {
            CameraKind::Test => {}
            CameraKind::Rtsp => {
                if !c
                    .url
                    .as_deref()
                    .is_some_and(|u| u.starts_with("rtsp://") || u.starts_with("rtsps://"))
                {
                    errors.push(fail(
                        at,
                        format!(
                            "camera '{}' (kind rtsp): field `url` is missing or not an rtsp:// URL",
                            c.id
                        ),
                    ));
                }
            }
            CameraKind::V4l2 => match &c.device {
                None => {
                    errors.push(fail(
                        at,
                        format!("camera '{}' (kind v4l2): missing field `device`", c.id),
                    ));
                }
                Some(d) if !d.get_ref().exists() => {
                    errors.push(fail(
                        d.span().start,
                        format!(
                            "camera '{}' field `device`: {} does not exist",
                            c.id,
                            d.get_ref().display()
                        ),
                    ));
                }
                Some(_) => {}
            },
            CameraKind::File => match &mut c.path {
                None => {
                    errors.push(fail(
                        at,
                        format!("camera '{}' (kind file): missing field `path`", c.id),
                    ));
                }
                Some(p) => {
                    let span = p.span();
                    let mut resolved = p.get_ref().clone();
                    if let Some(base) = base.filter(|b| !b.as_os_str().is_empty())
                        && resolved.is_relative()
                    {
                        resolved = base.join(resolved);
                    }
                    if !resolved.is_file() {
                        errors.push(fail(
                            span.start,
                            format!(
                                "camera '{}' field `path`: {} is not a readable file",
                                c.id,
                                resolved.display()
                            ),
                        ));
                    }
                    *p = Spanned::new(span, resolved);
                }
            },
        }
    }
    for mic in cfg.microphones.iter() {
        let at = mic.span().start;
        let m = mic.get_ref();
        if !is_safe_id(&m.id) {
            errors.push(fail(
                at,
                format!(
                    "microphone field `id`: '{}' must be 1-32 letters, digits, '-' or '_'",
                    m.id
                ),
            ));
        }
        if !ids.insert(m.id.clone()) {
            errors.push(fail(
                at,
                format!(
                    "microphone field `id`: '{}' is used twice (or is reserved)",
                    m.id
                ),
            ));
        }
    }
    if let Err((at, msg)) = pipeline_text::check(cfg, text) {
        errors.push(fail(at, msg));
    }
    if cfg
        .metrics
        .token
        .as_ref()
        .is_some_and(|t| t.trim().len() < 16)
    {
        errors.push(fail(
            text.find("[metrics]").unwrap_or(0),
            "field `metrics.token`: use at least 16 characters (it guards the box's metrics)"
                .into(),
        ));
    }
    for u in cfg.users.iter() {
        let at = u.span().start;
        if u.get_ref().role == UserRole::Party {
            errors.push(fail(
                at,
                format!(
                    "user '{}' field `role`: parties log in with a hearing's access code, not an account (use clerk, judge or admin)",
                    u.get_ref().name
                ),
            ));
        }
        if argon2::PasswordHash::new(&u.get_ref().password_hash).is_err() {
            errors.push(fail(
                at,
                format!(
                    "user '{}' field `password_hash`: not an argon2 hash (make one with `courtrec hash-password`)",
                    u.get_ref().name
                ),
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn every_error_is_named_with_its_line() {
        let text = "[courtroom]\nid = \"a b\"\nname = \"R\"\n\
                    [composite]\nlayout = 3\n\
                    [[camera]]\nid = \"c1\"\nkind = \"test\"\nrole = \"judge\"\n\
                    [[camera]]\nid = \"c1\"\nkind = \"test\"\nrole = \"witness\"\n\
                    [[microphone]]\nid = \"m1\"\nkind = \"test\"\nrole = \"judge\"\n";
        let errors = Config::parse_all("room.toml", text, None).unwrap_err();
        let said: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 3, "{said:#?}");
        assert!(said[0].starts_with("room.toml:1:") && said[0].contains("courtroom.id"));
        assert!(said[1].starts_with("room.toml:5:") && said[1].contains("composite.layout"));
        assert!(said[2].contains("'c1' is used twice"), "{said:#?}");
        // `parse` gives the first of them.
        let first = Config::parse("room.toml", text, None).unwrap_err();
        assert_eq!(first.to_string(), said[0]);
    }

    #[test]
    fn a_scrolling_pattern_is_for_test_cameras_and_bounded() {
        let room = |cam: &str| {
            format!(
                "[courtroom]\nid = \"r1\"\nname = \"R\"\n[[camera]]\nid = \"c1\"\nrole = \"judge\"\n{cam}\n\
                 [[microphone]]\nid = \"m1\"\nkind = \"test\"\nrole = \"judge\"\n"
            )
        };
        let ok = Config::parse(
            "room.toml",
            &room("kind = \"test\"\npattern = \"smpte75\"\nscroll_px_per_frame = -2"),
            None,
        )
        .unwrap();
        assert_eq!(ok.cameras[0].get_ref().scroll_px_per_frame, -2);
        for bad in [
            "kind = \"test\"\nscroll_px_per_frame = 6400",
            "kind = \"rtsp\"\nurl = \"rtsp://cam/1\"\nscroll_px_per_frame = 2",
        ] {
            let e = Config::parse("room.toml", &room(bad), None).unwrap_err();
            assert!(
                e.msg.contains("scroll_px_per_frame") && e.line == 4,
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn a_push_with_the_livestream_off_is_refused() {
        let base = "[courtroom]\nid = \"r1\"\nname = \"R\"\n\
                    [[camera]]\nid = \"c1\"\nkind = \"test\"\nrole = \"judge\"\n\
                    [[microphone]]\nid = \"m1\"\nkind = \"test\"\nrole = \"judge\"\n";
        let off = format!("{base}[livestream]\nenabled = false\n");
        let cfg = Config::parse("room.toml", &off, None).unwrap();
        assert!(!cfg.livestream.enabled);
        assert!(
            Config::parse("room.toml", base, None)
                .unwrap()
                .livestream
                .enabled
        );
        let push = format!("{off}rtmp_url = \"rtmp://platform/app/key\"\n");
        let errors = Config::parse_all("room.toml", &push, None).unwrap_err();
        let said: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 1, "{said:#?}");
        assert!(
            said[0].contains("livestream.rtmp_url") && said[0].contains("the livestream is off"),
            "{said:#?}"
        );
    }
}
