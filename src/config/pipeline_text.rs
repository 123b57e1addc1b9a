//! Values from the config that end up in the GStreamer pipeline text (camera URLs,
//! device nodes and names, file paths, test patterns). The text is parsed by
//! `gst_parse_launch`, where an unquoted space or `!` starts another element: a URL
//! like `rtsp://cam/x ! filesink location=/var/lib/courtrec/…` would otherwise splice
//! an element of the config author's choosing into the recording. Values go into the
//! text quoted (`capture::describe`); what quoting cannot carry (a quote, a backslash,
//! a control character) is refused here, with the key and the line, never altered.

use super::{CameraKind, Config};

/// Characters a quoted pipeline value cannot hold as they are.
fn unquotable(s: &str) -> Option<char> {
    s.chars()
        .find(|c| *c == '"' || *c == '\\' || c.is_control())
}

/// The first value that cannot go into the pipeline text: where (a byte offset in the
/// config text) and why.
pub(super) fn check(cfg: &Config, text: &str) -> Result<(), (usize, String)> {
    for cam in &cfg.cameras {
        let at = cam.span().start;
        let c = cam.get_ref();
        let mut values: Vec<(&str, String, usize)> = Vec::new();
        if matches!(c.kind, CameraKind::Rtsp) {
            for (key, v) in [("url", &c.url), ("preview_url", &c.preview_url)] {
                if let Some(v) = v {
                    values.push((key, v.clone(), find_key(text, at, key)));
                }
            }
        }
        if let Some(d) = &c.device {
            values.push(("device", d.get_ref().display().to_string(), d.span().start));
        }
        if let Some(p) = &c.path {
            values.push(("path", p.get_ref().display().to_string(), p.span().start));
        }
        for (key, v, offset) in values {
            if let Some(bad) = unquotable(&v) {
                return Err((
                    offset,
                    format!(
                        "camera '{}' field `{key}`: {bad:?} cannot be passed to the capture pipeline (no quotes, backslashes or control characters)",
                        c.id
                    ),
                ));
            }
        }
        if let Some(p) = &c.pattern
            && !p
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err((
                find_key(text, at, "pattern"),
                format!(
                    "camera '{}' field `pattern`: {p:?} is not a test pattern name (letters, digits, '-')",
                    c.id
                ),
            ));
        }
    }
    for mic in &cfg.microphones {
        let m = mic.get_ref();
        if let Some(d) = &m.device
            && let Some(bad) = unquotable(d)
        {
            return Err((
                find_key(text, mic.span().start, "device"),
                format!(
                    "microphone '{}' field `device`: {bad:?} cannot be passed to the capture pipeline (no quotes, backslashes or control characters)",
                    m.id
                ),
            ));
        }
    }
    Ok(())
}

/// Where the line `key = …` of the table starting at `from` is, for the line of an
/// error (the table's start if it cannot be found).
fn find_key(text: &str, from: usize, key: &str) -> usize {
    let mut offset = from;
    for (i, line) in text
        .get(from..)
        .unwrap_or("")
        .split_inclusive('\n')
        .enumerate()
    {
        let t = line.trim_start();
        if i > 0 && t.starts_with('[') {
            break;
        }
        if t.strip_prefix(key)
            .is_some_and(|r| r.trim_start().starts_with('='))
        {
            return offset;
        }
        offset += line.len();
    }
    from
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn cam(extra: &str) -> String {
        format!(
            "[courtroom]\nid = \"c\"\nname = \"C\"\n[[camera]]\nid = \"a\"\nkind = \"rtsp\"\nrole = \"judge\"\n{extra}\n\
             [[microphone]]\nid = \"m\"\nkind = \"test\"\nrole = \"judge\"\n"
        )
    }

    #[test]
    fn values_that_quoting_cannot_carry_are_refused_with_key_and_line() {
        for (extra, key) in [
            (
                r#"url = "rtsp://cam/x\" ! filesink location=/tmp/x \"""#,
                "url",
            ),
            (r#"url = "rtsp://cam/x\\y""#, "url"),
            ("url = \"rtsp://cam/x\\ny\"", "url"),
            (
                r#"url = "rtsp://cam/x"
preview_url = "rtsp://cam/\"p""#,
                "preview_url",
            ),
            (
                r#"url = "rtsp://cam/x"
pattern = "smpte ! fakesink""#,
                "pattern",
            ),
        ] {
            let e = Config::parse("room.toml", &cam(extra), None).unwrap_err();
            assert!(e.msg.contains(&format!("field `{key}`")), "{extra}: {e}");
            assert!(e.line >= 5, "{extra}: line {}", e.line);
        }
    }
}
