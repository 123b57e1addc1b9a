//! Access to the archive: a role × endpoint matrix (anonymous, clerk, a judge granted a
//! sealed hearing, a judge not granted, admin, a party with an access code), access
//! codes revoked and expired, and the hash-chained audit log.

mod common;
use common::*;
use serde_json::{Value, json};
use std::time::Duration;

fn record(d: &Daemon, clerk: &str, case: &str, visibility: &str) -> String {
    let h = d.ok(
        "POST",
        "/api/v1/hearings",
        clerk,
        Some(json!({"case_number": case, "title": "access", "visibility": visibility})),
    );
    let id = h["id"].as_str().unwrap().to_string();
    d.ok("POST", &format!("/api/v1/hearings/{id}/open"), clerk, None);
    std::thread::sleep(Duration::from_secs(2));
    d.ok("POST", &format!("/api/v1/hearings/{id}/close"), clerk, None);
    id
}

#[test]
fn every_archive_endpoint_refuses_whom_it_must() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let users = users_toml();
    let judge2 = users
        .split("[[user]]")
        .find(|u| u.contains("name = \"judge\""))
        .unwrap()
        .replace("name = \"judge\"", "name = \"judge2\"");
    let cfg = tmp.path().join("courtroom.toml");
    std::fs::write(
        &cfg,
        format!(
            "[courtroom]\nid = \"t1\"\nname = \"Access test\"\n\
             [[camera]]\nid = \"cam1\"\nkind = \"test\"\nrole = \"judge\"\n\
             [[microphone]]\nid = \"mic1\"\nkind = \"test\"\nrole = \"judge\"\n{users}[[user]]{judge2}"
        ),
    )
    .unwrap();
    let data = tmp.path().join("data");
    let d = Daemon::start(&data, Some(&cfg), "access");
    let clerk = d.login("clerk", "demo");
    let judge = d.login("judge", "demo");
    let judge2 = d.login("judge2", "demo");
    let admin = d.login("admin", "demo");
    let p = record(&d, &clerk, "(2026)X0101民初601号", "public");
    let s = record(&d, &clerk, "(2026)X0101民初602号", "sealed");

    // Only an admin grants a judge a sealed hearing, and only to a judge.
    let grant = format!("/api/v1/hearings/{s}/grants");
    for t in [&clerk, &judge] {
        let (st, _) = d.call("POST", &grant, Some(t), Some(json!({"user": "judge"})));
        assert_eq!(st, 403);
    }
    let (st, _) = d.call("POST", &grant, Some(&admin), Some(json!({"user": "clerk"})));
    assert_eq!(st, 422, "only judges are granted");
    let (st, _) = d.call("POST", &grant, Some(&admin), Some(json!({"user": "judge"})));
    assert_eq!(st, 204);

    // A party's code for the public hearing, issued by a judge.
    let code = d.ok(
        "POST",
        &format!("/api/v1/hearings/{p}/access-codes"),
        &judge,
        Some(json!({"label": "plaintiff's lawyer", "valid_hours": 24})),
    );
    let code_str = code["code"].as_str().unwrap().to_string();
    let (st, v) = d.call(
        "POST",
        "/api/v1/login/code",
        None,
        Some(json!({"code": code_str.to_lowercase()})),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["hearing_id"], p.as_str());
    let party = v["token"].as_str().unwrap().to_string();
    let (st, _) = d.call(
        "POST",
        "/api/v1/login/code",
        None,
        Some(json!({"code": "AAAA-BBBB-CCCC"})),
    );
    assert_eq!(st, 401);

    // Exports to download later (made before the matrix: a caller may have only two
    // exports in the making at once).
    let ex_p = d.export(&p, &judge, json!({}));
    let ex_s = d.export(&s, &judge, json!({}));
    let dl_p = ex_p["download"].as_str().unwrap().to_string();
    let dl_s = ex_s["download"].as_str().unwrap().to_string();

    let who: [(&str, Option<&str>); 6] = [
        ("anonymous", None),
        ("clerk", Some(&clerk)),
        ("judge", Some(&judge)),
        ("judge2", Some(&judge2)),
        ("admin", Some(&admin)),
        ("party", Some(&party)),
    ];
    // (method, path, body, expected status for each caller in `who` order)
    let seg = |h: &str| format!("/api/v1/hearings/{h}/tracks/cam1/00000001.ts");
    let pl = |h: &str| format!("/api/v1/hearings/{h}/tracks/cam1/index.m3u8");
    let matrix: Vec<(&str, String, Option<Value>, [u16; 6])> = vec![
        (
            "GET",
            format!("/api/v1/hearings/{p}"),
            None,
            [401, 200, 200, 200, 200, 200],
        ),
        (
            "GET",
            format!("/api/v1/hearings/{s}"),
            None,
            [401, 200, 200, 404, 200, 404],
        ),
        ("GET", pl(&p), None, [401, 200, 200, 200, 200, 200]),
        ("GET", pl(&s), None, [401, 403, 200, 404, 403, 404]),
        ("GET", seg(&p), None, [401, 200, 200, 200, 200, 200]),
        ("GET", seg(&s), None, [401, 403, 200, 404, 403, 404]),
        (
            "POST",
            format!("/api/v1/hearings/{p}/exports"),
            Some(json!({})),
            [401, 403, 202, 202, 202, 202],
        ),
        (
            "POST",
            format!("/api/v1/hearings/{s}/exports"),
            Some(json!({})),
            [401, 403, 202, 404, 403, 404],
        ),
        ("GET", dl_p.clone(), None, [401, 403, 200, 200, 200, 200]),
        ("GET", dl_s.clone(), None, [401, 403, 200, 404, 403, 404]),
        (
            "POST",
            format!("/api/v1/hearings/{p}/verify"),
            None,
            [401, 200, 200, 200, 200, 200],
        ),
        (
            "POST",
            format!("/api/v1/hearings/{s}/verify"),
            None,
            [401, 200, 200, 404, 200, 404],
        ),
        (
            "POST",
            format!("/api/v1/hearings/{p}/access-codes"),
            Some(json!({"label": "x"})),
            [401, 201, 201, 201, 201, 403],
        ),
        (
            "POST",
            format!("/api/v1/hearings/{s}/access-codes"),
            Some(json!({"label": "x"})),
            [401, 403, 201, 404, 403, 404],
        ),
        (
            "GET",
            format!("/api/v1/hearings/{p}/access-codes"),
            None,
            [401, 200, 200, 200, 200, 403],
        ),
        (
            "POST",
            format!("/api/v1/hearings/{p}/open"),
            None,
            [401, 409, 403, 403, 409, 403],
        ),
        (
            "POST",
            "/api/v1/hearings".into(),
            Some(json!({"case_number": "x", "title": "y", "visibility": "public"})),
            [401, 201, 403, 403, 201, 403],
        ),
        (
            "GET",
            "/api/v1/status".into(),
            None,
            [401, 200, 200, 200, 200, 403],
        ),
        (
            "GET",
            "/api/v1/previews/cam1".into(),
            None,
            [401, 200, 200, 200, 200, 403],
        ),
        (
            "GET",
            "/api/v1/audit".into(),
            None,
            [401, 403, 403, 403, 200, 403],
        ),
        (
            "GET",
            "/api/v1/audit/export".into(),
            None,
            [401, 403, 403, 403, 200, 403],
        ),
    ];
    let mut wrong = Vec::new();
    for (method, path, body, want) in &matrix {
        for ((name, token), want) in who.iter().zip(want) {
            let st = if method == &"GET"
                && (path.ends_with(".ts")
                    || path.contains("/exports/")
                    || path.contains("previews")
                    || path.ends_with("export"))
            {
                match token {
                    Some(t) => d.download(path, t).0,
                    None => d.call("GET", path, None, None).0,
                }
            } else {
                d.call(method, path, *token, body.clone()).0
            };
            if st != *want {
                wrong.push(format!("{name} {method} {path}: {st}, want {want}"));
            }
        }
    }
    assert!(wrong.is_empty(), "refusals differ:\n{}", wrong.join("\n"));

    // Admins manage accounts; nobody else does.
    for t in [&clerk, &judge, &party] {
        let (st, _) = d.call("GET", "/api/v1/users", Some(t), None);
        assert_eq!(st, 403);
    }
    let (st, _) = d.call(
        "POST",
        "/api/v1/users",
        Some(&admin),
        Some(json!({"name": "judge-li", "role": "judge", "password": "long enough"})),
    );
    assert_eq!(st, 204);
    let (st, _) = d.call(
        "POST",
        "/api/v1/users",
        Some(&admin),
        Some(json!({"name": "p", "role": "party", "password": "long enough"})),
    );
    assert_eq!(st, 422);
    let (st, _) = d.call(
        "POST",
        "/api/v1/users",
        Some(&admin),
        Some(json!({"name": "x", "role": "judge", "password": "short"})),
    );
    assert_eq!(st, 422);
    let li = d.login("judge-li", "long enough");
    let users = d.ok("GET", "/api/v1/users", &admin, None);
    assert!(users.to_string().contains("judge-li") && !users.to_string().contains("argon2"));
    let (st, _) = d.call("DELETE", "/api/v1/users/judge-li", Some(&admin), None);
    assert_eq!(st, 204);
    let (st, _) = d.call("GET", "/api/v1/hearings", Some(&li), None);
    assert_eq!(st, 401, "a removed account's logins end");

    // Listings show each caller only what it may see.
    let ids = |t: &str| -> Vec<String> {
        d.ok("GET", "/api/v1/hearings", t, None)["hearings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(ids(&judge2).contains(&p) && !ids(&judge2).contains(&s));
    assert!(ids(&judge).contains(&s));
    assert_eq!(ids(&party), vec![p.clone()]);

    // Revoking the code ends the party's token; an expired code does not open.
    let code_id = code["code_id"].as_str().unwrap();
    let (st, _) = d.call(
        "DELETE",
        &format!("/api/v1/hearings/{p}/access-codes/{code_id}"),
        Some(&judge),
        None,
    );
    assert_eq!(st, 204);
    let (st, _) = d.call("GET", &format!("/api/v1/hearings/{p}"), Some(&party), None);
    assert_eq!(st, 401, "a revoked code's token no longer works");
    let (st, _) = d.call(
        "POST",
        "/api/v1/login/code",
        None,
        Some(json!({"code": code_str})),
    );
    assert_eq!(st, 401);
    let short = d.ok(
        "POST",
        &format!("/api/v1/hearings/{p}/access-codes"),
        &clerk,
        Some(json!({"label": "defendant", "valid_hours": 0.0005})),
    );
    let (st, v) = d.call(
        "POST",
        "/api/v1/login/code",
        None,
        Some(json!({"code": short["code"]})),
    );
    assert_eq!(st, 200, "{v}");
    let short_token = v["token"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_secs(3));
    let (st, _) = d.call(
        "GET",
        &format!("/api/v1/hearings/{p}"),
        Some(&short_token),
        None,
    );
    assert_eq!(st, 401, "an expired code's token no longer works");
    let (st, _) = d.call(
        "POST",
        "/api/v1/login/code",
        None,
        Some(json!({"code": short["code"]})),
    );
    assert_eq!(st, 401);
    // The list never shows codes themselves.
    let list = d.ok(
        "GET",
        &format!("/api/v1/hearings/{p}/access-codes"),
        &judge,
        None,
    );
    assert!(!list.to_string().contains(&code_str));

    // The audit log: who looked at what, from where, chained.
    let a = d.ok("GET", &format!("/api/v1/audit?hearing={s}"), &admin, None);
    assert_eq!(a["chain_intact"], true, "{a}");
    let entries = a["entries"].as_array().unwrap();
    let has = |user: &str, action: &str| {
        entries
            .iter()
            .any(|e| e["user"] == user && e["action"] == action && e["remote"] == "127.0.0.1")
    };
    for (user, action) in [
        ("judge", "view"),
        ("judge", "playlist"),
        ("judge", "segment"),
        ("judge", "export"),
        ("judge", "download"),
        ("admin", "grant"),
    ] {
        assert!(has(user, action), "{user} {action} in {a}");
    }
    assert!(
        !has("judge2", "segment"),
        "refused requests are not served, so not logged as views"
    );
    let log = data.join("audit/audit.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let cut: Vec<&str> = text
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 3)
        .map(|(_, l)| l)
        .collect();
    std::fs::write(&log, cut.join("\n") + "\n").unwrap();
    let a = d.ok("GET", "/api/v1/audit", &admin, None);
    assert_eq!(a["chain_intact"], false, "a removed entry is detected");
}
