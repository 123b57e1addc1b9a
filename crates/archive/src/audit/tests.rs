use super::*;
use crate::verify::{Problem, Trust, verify};

fn ev(action: &str) -> AuditEvent {
    AuditEvent {
        user: "judge".into(),
        role: "judge".into(),
        hearing: Some("h1".into()),
        action: action.into(),
        ..AuditEvent::default()
    }
}

fn signed_log(dir: &Path) -> (AuditLog, Arc<DeviceKey>) {
    let key =
        Arc::new(DeviceKey::load_or_create(&dir.join("../device.key"), "courtrec/dev-1").unwrap());
    (
        AuditLog::open(dir, Some((key.clone(), "dev-1".into()))).unwrap(),
        key,
    )
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Rewrites the log with `keep` (indices of the original lines), rebuilding the chain
/// as a forger without the key would.
fn rebuild(p: &Path, keep: &[usize], edit: Option<(&str, &str)>) {
    let old = lines(p);
    let mut prev = GENESIS_PREV.to_string();
    let mut out = String::new();
    for (n, &i) in keep.iter().enumerate() {
        let mut e: AuditEntry = serde_json::from_str(&old[i]).unwrap();
        e.n = n as u64;
        e.prev = prev.clone();
        if let Some((from, to)) = edit
            && e.action == from
        {
            e.action = to.into();
        }
        let l = serde_json::to_string(&e).unwrap();
        prev = crate::sha256_hex(l.as_bytes());
        out.push_str(&l);
        out.push('\n');
    }
    std::fs::write(p, out).unwrap();
}

#[test]
fn chained_signed_and_every_kind_of_tampering_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let (log, key) = signed_log(&dir);
    for a in ["view", "segment", "export"] {
        log.record(ev(a)).unwrap();
    }
    log.record(AuditEvent {
        sign_now: true,
        ..ev("grant")
    })
    .unwrap();
    drop(log);
    // Reopened, the chain continues from the bytes on disk.
    let (log, _) = signed_log(&dir);
    log.record(AuditEvent {
        sign_now: true,
        ..ev("login")
    })
    .unwrap();
    let (entries, broken) = read(log.path()).unwrap();
    assert_eq!((entries.len(), broken), (5, None));
    let trust = Trust {
        keys: vec![key.verifier()],
        ..Trust::default()
    };
    let clean = verify(&dir, &trust);
    assert_eq!(clean.exit_code, 0, "{}", clean.to_text());
    assert_eq!(clean.kind, "audit-log");

    let path = log.path().to_path_buf();
    drop(log);
    let original = std::fs::read(&path).unwrap();
    type Case<'a> = (&'a str, Box<dyn Fn() + 'a>, Problem);
    let cases: Vec<Case> = vec![
        (
            "an entry removed, chain rebuilt",
            Box::new(|| rebuild(&path, &[0, 2, 3, 4], None)),
            Problem::Modified,
        ),
        (
            "an entry edited, chain rebuilt",
            Box::new(|| rebuild(&path, &[0, 1, 2, 3, 4], Some(("export", "view")))),
            Problem::Modified,
        ),
        (
            "entries reordered, chain rebuilt",
            Box::new(|| rebuild(&path, &[1, 0, 2, 3, 4], None)),
            Problem::Modified,
        ),
        (
            "the end cut off",
            Box::new(|| rebuild(&path, &[0, 1, 2], None)),
            Problem::MissingOrReordered,
        ),
        (
            "an entry edited, chain left broken",
            Box::new(|| {
                let t = String::from_utf8(original.clone()).unwrap();
                std::fs::write(&path, t.replacen("\"segment\"", "\"view\"", 1)).unwrap();
            }),
            Problem::Modified,
        ),
    ];
    for (what, tamper, want) in cases {
        std::fs::write(&path, &original).unwrap();
        tamper();
        let r = verify(&dir, &trust);
        assert_eq!(r.worst(), Some(want), "{what}:\n{}", r.to_text());
        // The box, reopening it, sees it too, and never signs over it.
        let (log, _) = signed_log(&dir);
        assert!(log.tampered().is_some(), "{what}");
        let heads = crate::checkpoint::sizes_in(&dir.join("checkpoints"));
        log.record(AuditEvent {
            sign_now: true,
            ..ev("view")
        })
        .unwrap();
        assert_eq!(
            crate::checkpoint::sizes_in(&dir.join("checkpoints")),
            heads,
            "{what}"
        );
    }
}

#[test]
fn a_failed_append_is_undone_and_nothing_is_acknowledged_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let (log, _) = signed_log(&dir);
    log.record(ev("view")).unwrap();
    let before = std::fs::read(log.path()).unwrap();
    for site in ["audit.write", "audit.sync"] {
        crate::fault::arm_scoped(site, 1, false, Some(&dir));
        assert!(log.record(ev("lost")).is_err(), "{site}");
        assert_eq!(
            std::fs::read(log.path()).unwrap(),
            before,
            "{site}: cut back"
        );
    }
    assert!(!log.unwritable());
    log.record(ev("segment")).unwrap();
    let (entries, broken) = read(log.path()).unwrap();
    assert_eq!((entries.len(), broken), (2, None));
}
