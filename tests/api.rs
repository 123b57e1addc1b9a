//! Bad input of every kind gets a clear error, never a crash: malformed JSON, wrong
//! types, huge bodies, unknown ids, invalid transitions, missing or wrong tokens,
//! roles that may not act, and a bad config at start-up.

mod common;
use common::*;
use serde_json::json;

#[test]
fn every_endpoint_refuses_bad_input_with_the_right_status() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(&tmp.path().join("data"), None, "api");
    let clerk = d.login("clerk", "demo");
    let judge = d.login("judge", "demo");

    // Authentication.
    let (st, v) = d.call(
        "POST",
        "/api/v1/login",
        None,
        Some(json!({"username": "clerk", "password": "wrong"})),
    );
    assert_eq!(st, 401, "{v}");
    assert_eq!(v["error"], "unauthenticated");
    assert_eq!(
        d.call(
            "POST",
            "/api/v1/login",
            None,
            Some(json!({"username": "nobody", "password": "demo"}))
        )
        .0,
        401
    );
    assert_eq!(d.call("GET", "/api/v1/status", None, None).0, 401);
    assert_eq!(
        d.call("GET", "/api/v1/hearings", Some("not-a-token"), None)
            .0,
        401
    );
    assert_eq!(
        d.call(
            "POST",
            "/api/v1/hearings",
            None,
            Some(json!({"case_number": "1", "title": "t", "visibility": "public"}))
        )
        .0,
        401
    );

    // Bodies.
    let (st, v) = d.raw(
        "POST",
        "/api/v1/hearings",
        Some(&clerk),
        Some("application/json"),
        b"{\"case_number\": ".to_vec(),
    );
    assert_eq!(st, 400, "truncated JSON: {v}");
    assert!(v["message"].is_string());
    let (st, _) = d.raw(
        "POST",
        "/api/v1/hearings",
        Some(&clerk),
        Some("text/plain"),
        b"{}".to_vec(),
    );
    assert_eq!(st, 415);
    let (st, v) = d.call(
        "POST",
        "/api/v1/hearings",
        Some(&clerk),
        Some(json!({"case_number": 123, "title": "t", "visibility": "public"})),
    );
    assert_eq!(st, 422, "wrong type: {v}");
    let (st, v) = d.call(
        "POST",
        "/api/v1/hearings",
        Some(&clerk),
        Some(json!({"title": "t", "visibility": "public"})),
    );
    assert_eq!(st, 422, "missing field: {v}");
    assert!(v["message"].as_str().unwrap().contains("case_number"));
    let (st, _) = d.call(
        "POST",
        "/api/v1/hearings",
        Some(&clerk),
        Some(json!({"case_number": "1", "title": "t", "visibility": "secret"})),
    );
    assert_eq!(st, 422, "unknown visibility");
    let (st, _) = d.call(
        "POST",
        "/api/v1/hearings",
        Some(&clerk),
        Some(json!({"case_number": "  ", "title": "t", "visibility": "public"})),
    );
    assert_eq!(st, 422, "blank case number");
    let (st, _) = d.call("POST", "/api/v1/hearings", Some(&clerk), Some(json!({"case_number": "1", "title": "t", "visibility": "public", "scheduled_start": "tomorrow"})));
    assert_eq!(st, 422, "bad time");
    let (st, _) = d.call("POST", "/api/v1/hearings", Some(&clerk), Some(json!({"case_number": "1", "title": "t", "visibility": "public", "courtroom": "elsewhere"})));
    assert_eq!(st, 422, "another courtroom");
    // Just over the 64 KiB limit: the server answers 413 from the Content-Length and
    // closes; a body this size is already in the socket buffer, so the client reads it.
    let huge = format!(
        "{{\"case_number\": \"{}\", \"title\": \"t\", \"visibility\": \"public\"}}",
        "x".repeat(70_000)
    );
    let (st, _) = d.raw(
        "POST",
        "/api/v1/hearings",
        Some(&clerk),
        Some("application/json"),
        huge.into_bytes(),
    );
    assert_eq!(st, 413, "huge body");

    // Roles: a judge views but does not run hearings.
    let (st, v) = d.call(
        "POST",
        "/api/v1/hearings",
        Some(&judge),
        Some(json!({"case_number": "1", "title": "t", "visibility": "public"})),
    );
    assert_eq!(st, 403, "{v}");
    let h = d.ok(
        "POST",
        "/api/v1/hearings",
        &clerk,
        Some(json!({"case_number": "(2026)X0101民初9号", "title": "t", "visibility": "public"})),
    );
    let id = h["id"].as_str().unwrap().to_string();
    assert_eq!(
        d.call(
            "POST",
            &format!("/api/v1/hearings/{id}/open"),
            Some(&judge),
            None
        )
        .0,
        403
    );
    assert_eq!(
        d.call("GET", &format!("/api/v1/hearings/{id}"), Some(&judge), None)
            .0,
        200
    );

    // Unknown ids and path tricks.
    for bad in ["nope", "..", "%2e%2e%2fetc", "20261127-000000-abcdef"] {
        assert_eq!(
            d.call(
                "GET",
                &format!("/api/v1/hearings/{bad}"),
                Some(&clerk),
                None
            )
            .0,
            404,
            "{bad}"
        );
        assert_eq!(
            d.call(
                "POST",
                &format!("/api/v1/hearings/{bad}/open"),
                Some(&clerk),
                None
            )
            .0,
            404,
            "{bad}"
        );
    }
    assert_eq!(
        d.call("GET", "/api/v1/nothing-here", Some(&clerk), None).0,
        404
    );

    // Invalid transitions answer 409 with a reason.
    for (action, body) in [
        ("resume", None),
        ("close", None),
        ("recess", Some(json!({"reason": "recess"}))),
        ("marks", Some(json!({"text": "too early"}))),
    ] {
        let (st, v) = d.call(
            "POST",
            &format!("/api/v1/hearings/{id}/{action}"),
            Some(&clerk),
            body,
        );
        assert_eq!(st, 409, "{action} before open: {v}");
        assert!(
            v["message"].as_str().unwrap().contains("not been opened")
                || v["message"].as_str().unwrap().contains("open"),
            "{v}"
        );
    }
    d.ok("POST", &format!("/api/v1/hearings/{id}/open"), &clerk, None);
    assert_eq!(
        d.call(
            "POST",
            &format!("/api/v1/hearings/{id}/open"),
            Some(&clerk),
            None
        )
        .0,
        409
    );
    assert_eq!(
        d.call(
            "POST",
            &format!("/api/v1/hearings/{id}/resume"),
            Some(&clerk),
            None
        )
        .0,
        409
    );
    let (st, _) = d.call(
        "POST",
        &format!("/api/v1/hearings/{id}/recess"),
        Some(&clerk),
        Some(json!({"reason": "lunch"})),
    );
    assert_eq!(st, 422, "a reason not in the rules");
    let (st, _) = d.call(
        "POST",
        &format!("/api/v1/hearings/{id}/marks"),
        Some(&clerk),
        Some(json!({"text": ""})),
    );
    assert_eq!(st, 422, "empty mark");
    // A second hearing cannot open while one is open in the courtroom.
    let h2 = d.ok(
        "POST",
        "/api/v1/hearings",
        &clerk,
        Some(json!({"case_number": "2", "title": "t", "visibility": "non_public"})),
    );
    let (st, v) = d.call(
        "POST",
        &format!("/api/v1/hearings/{}/open", h2["id"].as_str().unwrap()),
        Some(&clerk),
        None,
    );
    assert_eq!(st, 409, "{v}");
    d.ok(
        "POST",
        &format!("/api/v1/hearings/{id}/close"),
        &clerk,
        None,
    );
    let (st, v) = d.call(
        "POST",
        &format!("/api/v1/hearings/{id}/open"),
        Some(&clerk),
        None,
    );
    assert_eq!(st, 409);
    assert!(v["message"].as_str().unwrap().contains("closed"), "{v}");
    // Nothing is deleted through the API.
    assert_eq!(
        d.call(
            "DELETE",
            &format!("/api/v1/hearings/{id}"),
            Some(&clerk),
            None
        )
        .0,
        405
    );

    // A hearing scheduled 6 minutes ago and not opened raises an alarm (after 5 min).
    let late = (chrono::Utc::now() - chrono::Duration::minutes(6)).to_rfc3339();
    let h3 = d.ok("POST", "/api/v1/hearings", &clerk, Some(json!({"case_number": "(2026)X0101民初3号", "title": "late", "visibility": "public", "scheduled_start": late})));
    let key = format!("hearing_not_opened:{}", h3["id"].as_str().unwrap());
    assert!(
        wait_for(std::time::Duration::from_secs(5), || alarm_keys(&d, &clerk)
            .contains(&key)),
        "{:?}",
        alarm_keys(&d, &clerk)
    );
    d.ok(
        "POST",
        &format!("/api/v1/hearings/{}/open", h3["id"].as_str().unwrap()),
        &clerk,
        None,
    );
    assert!(
        wait_for(std::time::Duration::from_secs(5), || !alarm_keys(
            &d, &clerk
        )
        .contains(&key)),
        "cleared once opened"
    );
    d.ok(
        "POST",
        &format!("/api/v1/hearings/{}/close", h3["id"].as_str().unwrap()),
        &clerk,
        None,
    );

    // The daemon is still healthy after all that.
    assert_eq!(
        d.ok("GET", "/api/v1/status", &clerk, None)["courtroom"]["id"],
        "demo-1"
    );
}

#[test]
fn a_bad_config_stops_start_up_naming_file_line_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[courtroom]\nid = \"c1\"\nname = \"One\"\n\n[[camera]]\nid = \"cam1\"\nrole = \"judge\"\nkind = \"webcam\"\n",
            8,
            "webcam",
        ),
        (
            "[courtroom]\nid = \"c1\"\nname = \"One\"\n[[camera]]\nid = \"cam1\"\nrole = \"judge\"\nkind = \"file\"\npath = \"/no/such/file.mp4\"\n[[microphone]]\nid = \"m1\"\nrole = \"judge\"\nkind = \"test\"\n",
            8,
            "field `path`",
        ),
        (
            "[courtroom]\nid = \"c1\"\nname = \"One\"\n[[camera]]\nid = \"cam1\"\nkind = \"test\"\n",
            4,
            "role",
        ),
        (
            "[courtroom]\nid = \"c1\"\nname = \"One\"\n[composite]\nlayout = 3\n",
            5,
            "layout",
        ),
    ];
    for (i, (text, line, what)) in cases.iter().enumerate() {
        let p = tmp.path().join(format!("bad{i}.toml"));
        std::fs::write(&p, text).unwrap();
        let out = courtrec(&[
            "serve",
            "--config",
            p.to_str().unwrap(),
            "--listen",
            "127.0.0.1:1",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {i} started");
        assert!(
            err.contains(&format!("bad{i}.toml:{line}:")),
            "case {i}: wants file:line {line}: {err}"
        );
        assert!(err.contains(what), "case {i}: wants '{what}': {err}");
    }
    let out = courtrec(&["serve", "--config", "/no/such/config.toml"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/config.toml"));
}

#[test]
fn the_cli_client_runs_a_hearing_through_the_api() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(&tmp.path().join("data"), None, "cli");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin())
            .arg("hearing")
            .args(["--server", &d.base, "--user", "clerk"])
            .args(args)
            .env("COURTREC_PASSWORD", "demo")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let created = run(&[
        "create",
        "--case-number",
        "(2026)X0101民初77号",
        "--title",
        "CLI",
        "--visibility",
        "non_public",
    ]);
    let id = created.split('\t').next().unwrap().trim().to_string();
    assert!(created.contains("scheduled"), "{created}");
    assert!(run(&["open", &id]).contains("\topen\t"));
    run(&["mark", &id, "Exhibit 1 shown"]);
    assert!(
        run(&[
            "recess",
            &id,
            "--reason",
            "mediation",
            "--note",
            "parties talk"
        ])
        .contains("\trecess\t")
    );
    run(&["resume", &id]);
    assert!(run(&["close", &id]).contains("\tclosed\t"));
    let shown = run(&["show", &id]);
    for kind in ["open", "mark", "recess", "resume", "close"] {
        assert!(
            shown.contains(&format!("\t{kind}\t")),
            "{kind} in:\n{shown}"
        );
    }
    assert!(shown.contains("Exhibit 1 shown") && shown.contains("mediation"));
    assert!(run(&["list", "--case-number", "民初77"]).contains(&id));
    // Errors come back in plain words with a non-zero exit.
    let out = std::process::Command::new(bin())
        .args([
            "hearing", "--server", &d.base, "--user", "clerk", "resume", &id,
        ])
        .env("COURTREC_PASSWORD", "demo")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("409"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn key_show_creates_the_device_key_once_and_prints_it() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let show = || {
        let out = courtrec(&["key", "show", "--data-dir", dir.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let first = show();
    assert!(first.contains("verifier:    courtrec/dev-"), "{first}");
    assert!(first.contains("fingerprint: SHA256:"), "{first}");
    assert_eq!(show(), first, "the same key on every call");
    let mode = std::fs::metadata(dir.join("device.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "only the daemon's user may read the private key"
    );
}
