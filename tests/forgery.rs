//! The forgery corpus: what someone with write access to the data folder or to a
//! bundle (but not the device key) can try to change what a judge sees, beside the
//! tamper corpus of `tests/integrity.rs`. Each case failed on the code before the
//! "no forgery passes" work; clean copies still verify 0.

mod common;
use common::evidence::*;
use common::*;
use courtrec::archive::checkpoint::{Checkpoint, sizes_in};
use courtrec::archive::signing::DeviceKey;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

/// `courtrec verify` that must finish within `secs` (a hang is a failure).
fn verify_within(path: &Path, extra: &[&str], secs: u64) -> (i32, String) {
    let mut child = std::process::Command::new(bin())
        .arg("verify")
        .args(extra)
        .arg(path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut out = String::new();
            use std::io::Read;
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            return (st.code().unwrap_or(-1), out);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("verify {} hung", path.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The manifest cut back to its first `keep` lines, the checkpoints past them removed,
/// and `tail` appended with a rebuilt hash chain.
fn cut_and_forge(h: &Path, keep: usize, tail: Vec<String>) {
    let mut ls = lines(h);
    ls.truncate(keep);
    ls.extend(tail);
    write_rechained(h, &ls);
    for s in sizes_in(&h.join("checkpoints")) {
        if s > keep as u64 {
            let _ = std::fs::remove_file(h.join("checkpoints").join(Checkpoint::file_name(s)));
            let _ = std::fs::remove_file(h.join("checkpoints").join(Checkpoint::token_name(s)));
        }
    }
}

fn position(ls: &[String], needle: &str) -> usize {
    ls.iter().position(|l| l.contains(needle)).unwrap()
}

/// Edits one line of a bundle's `bundle.json` (`lines[]` entries) with `f`; `None`
/// drops it.
fn edit_bundle(dir: &Path, f: impl Fn(&Value) -> Option<Value>) {
    let p = dir.join("bundle.json");
    let mut desc: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    let kept: Vec<Value> = desc["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(&f)
        .collect();
    desc["lines"] = Value::Array(kept);
    std::fs::write(&p, serde_json::to_vec_pretty(&desc).unwrap()).unwrap();
}

fn export(data: &Path, id: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "export",
        id,
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--as",
        "judge-li",
    ];
    args.extend_from_slice(extra);
    courtrec(&args)
}

#[test]
fn no_forgery_passes_and_clean_copies_still_verify() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let work = tmp.path().join("work");
    let mut d = Daemon::start(&data, None, "forgery");
    let clerk = d.login("clerk", "demo");
    let id = record(&d, &clerk, "(2026)X0101民初81号", 7.0);
    let other = record(&d, &clerk, "(2026)X0101民初82号", 3.0);
    d.stop();
    let hearing = data.join("hearings").join(&id);
    let other_dir = data.join("hearings").join(&other);
    let device_id = std::fs::read_to_string(data.join("device-id"))
        .unwrap()
        .trim()
        .to_string();
    let ls = lines(&hearing);
    let open_n = position(&ls, "\"kind\":\"open\"");
    let resume_n = position(&ls, "\"kind\":\"resume\"");

    // Clean: the hearing beside its device log, the device log and the audit log.
    let text = expect(
        &hearing,
        &[],
        OK,
        "checked against the device log",
        "clean hearing",
    );
    assert!(text.contains("all present and unmodified"), "{text}");
    expect(
        &data.join("device-log"),
        &[],
        OK,
        "all present",
        "clean device log",
    );
    expect(
        &data.join("audit"),
        &[],
        OK,
        "all present",
        "clean audit log",
    );

    // 1. A sealed hearing cut back to a checkpoint and rewritten: a mark changed,
    // segments replaced by another hearing's media, the close kept.
    let forge_tail = |h: &Path| {
        let foreign = seg(&other_dir, "cam1", 1);
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            std::fs::read(&foreign).unwrap(),
        ));
        let bytes = std::fs::metadata(&foreign).unwrap().len();
        let tail: Vec<String> = ls[open_n + 1..]
            .iter()
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).unwrap();
                if v["record"]["type"] == "segment" && v["record"]["track"] == "cam1" {
                    let file = v["record"]["file"].as_str().unwrap().to_string();
                    std::fs::copy(&foreign, h.join(&file)).unwrap();
                    v["record"]["sha256"] = json!(sha);
                    v["record"]["bytes"] = json!(bytes);
                }
                if v["record"]["text"] == "Exhibit 3 shown" {
                    v["record"]["text"] = json!("Exhibit 4 shown");
                }
                serde_json::to_string(&v).unwrap()
            })
            .collect();
        cut_and_forge(h, open_n + 1, tail);
    };
    let f = work.join("forged");
    copy_dir(&data, &f);
    let fh = f.join("hearings").join(&id);
    forge_tail(&fh);
    let text = expect(
        &fh,
        &[],
        MODIFIED,
        "device log",
        "rewritten tail, device log beside",
    );
    assert!(
        !text.contains("NOT SEALED"),
        "it was sealed; its seal was removed:\n{text}"
    );
    let signed_before = sizes_in(&fh.join("checkpoints"));
    let out = export(&f, &id, &work.join("forged-bundle"), &[]);
    assert!(!out.status.success(), "the box must not export a forgery");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("read-only") || err.contains("not checked"),
        "{err}"
    );
    assert_eq!(
        sizes_in(&fh.join("checkpoints")),
        signed_before,
        "nothing was signed over it"
    );
    let out = courtrec(&["check", "--data-dir", f.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!out.status.success(), "check finds it:\n{said}");
    assert!(said.contains(&id) && said.contains("device log"), "{said}");

    // The same without the device log: still never re-sealed; the daemon finds it at
    // start-up, marks it read-only and raises the alarm.
    let g = work.join("forged-nolog");
    copy_dir(&data, &g);
    std::fs::remove_dir_all(g.join("device-log")).unwrap();
    let gh = g.join("hearings").join(&id);
    forge_tail(&gh);
    let out = export(&g, &id, &work.join("forged-bundle2"), &[]);
    assert!(
        !out.status.success(),
        "no export without the device log either"
    );
    let (code, text) = verify(&gh, &[]);
    assert_ne!(code, OK, "{text}");
    let mut d = Daemon::start(&g, None, "forgery-daemon");
    let admin = d.login("admin", "demo");
    let judge = d.login("judge", "demo");
    assert!(
        wait_for(Duration::from_secs(10), || alarm_keys(&d, &admin)
            .iter()
            .any(|k| k.starts_with("hearing_tampered"))),
        "{:?}",
        alarm_keys(&d, &admin)
    );
    let h = d.ok("GET", &format!("/api/v1/hearings/{id}"), &judge, None);
    assert!(h["tampered"].as_str().is_some_and(|t| !t.is_empty()), "{h}");
    let (st, v) = d.call(
        "POST",
        &format!("/api/v1/hearings/{id}/exports"),
        Some(&judge),
        Some(json!({})),
    );
    assert_eq!(st, 409, "read-only: {v}");
    d.stop();
    assert_eq!(
        sizes_in(&gh.join("checkpoints")).last(),
        Some(&(open_n as u64 + 1))
    );

    // 2. The end removed (with its checkpoints), the segment files left: not a crash.
    let t = work.join("cut-end");
    copy_dir(&data, &t);
    let th = t.join("hearings").join(&id);
    cut_and_forge(&th, resume_n + 1, Vec::new());
    expect(
        &th,
        &[],
        MISSING,
        "its end was removed",
        "end removed, device log",
    );
    // Without the device log, the files alone tell a crash (at most two unlisted
    // segments per track, right after the last listed one) from a longer end removed.
    let alone = fresh(&th, &work, "cut-end-alone");
    let mut e = lines(&alone);
    e.truncate(open_n + 1);
    write_rechained(&alone, &e);
    for s in sizes_in(&alone.join("checkpoints")) {
        if s > open_n as u64 + 1 {
            std::fs::remove_file(alone.join("checkpoints").join(Checkpoint::file_name(s))).unwrap();
        }
    }
    expect(
        &alone,
        &[],
        UNEXPECTED,
        "left from an end that was removed",
        "end removed, folder alone",
    );

    // 3. Lines after the seal: a fake export appended; a real export cut off the end.
    let t = fresh(&hearing, &work, "after-seal");
    let mut e = lines(&t);
    let close = e.last().unwrap().clone();
    e.push(close.replace("\"kind\":\"close\"", "\"kind\":\"export\""));
    write_rechained(&t, &e);
    expect(
        &t,
        &[],
        UNEXPECTED,
        "follow the hearing's seal",
        "unsigned line after the seal",
    );
    let t = work.join("export-cut");
    copy_dir(&data, &t);
    assert!(export(&t, &id, &work.join("b0"), &[]).status.success());
    let th = t.join("hearings").join(&id);
    cut_and_forge(&th, ls.len(), Vec::new());
    expect(
        &th,
        &[],
        MISSING,
        "its end was removed",
        "an export and its checkpoint removed",
    );

    // 4. A trusted key of another device does not vouch for this one.
    let t = fresh(&hearing, &work, "other-device");
    let other_key =
        DeviceKey::load_or_create(&tmp.path().join("y.key"), "courtrec/dev-other").unwrap();
    resign(&t, &other_key, &device_id, &id);
    let list = tmp.path().join("court-keys.txt");
    std::fs::write(&list, format!("{}\n", other_key.verifier().to_vkey())).unwrap();
    let text = expect(
        &t,
        &["--ca", list.to_str().unwrap()],
        BAD_SIGNATURE,
        "vouches only for its own device",
        "signer of another device",
    );
    assert!(
        text.contains("NOT a trusted key") && !text.contains("(a trusted key"),
        "{text}"
    );

    // 6. A folder copied in under another hearing's id.
    let t = work.join(&other);
    copy_dir(&hearing, &t);
    expect(
        &t,
        &[],
        UNEXPECTED,
        "named for hearing",
        "folder under another id",
    );

    // 9. Denial of service: FIFOs and a link to /dev/zero never hang verify.
    let t = fresh(&hearing, &work, "fifo");
    std::fs::remove_file(seg(&t, "cam2", 2)).unwrap();
    nix::unistd::mkfifo(&seg(&t, "cam2", 2), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let (code, text) = verify_within(&t, &[], 30);
    assert_eq!(code, UNEXPECTED, "{text}");
    let t = fresh(&hearing, &work, "fifo-key");
    std::fs::remove_file(t.join("device.vkey")).unwrap();
    nix::unistd::mkfifo(&t.join("device.vkey"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let (code, text) = verify_within(&t, &[], 30);
    assert_eq!(code, BAD_SIGNATURE, "{text}");
    let t = fresh(&hearing, &work, "zero");
    std::fs::remove_file(seg(&t, "mic1", 1)).unwrap();
    std::os::unix::fs::symlink("/dev/zero", seg(&t, "mic1", 1)).unwrap();
    let (code, text) = verify_within(&t, &[], 30);
    assert_eq!(code, UNEXPECTED, "{text}");
    assert!(text.contains("symbolic link"), "{text}");

    // 10. Decoys.
    for (name, rel) in [
        ("second-manifest", "manifest.jsonl.bak"),
        ("loose-segment", "evidence.ts"),
        ("junk-checkpoint", "checkpoints/readme.txt"),
    ] {
        let t = fresh(&hearing, &work, name);
        std::fs::copy(hearing.join("manifest.jsonl"), t.join(rel)).unwrap();
        expect(&t, &[], UNEXPECTED, rel, name);
    }

    // 5 and 7. Bundles: what a judge plays and reads is what was verified.
    let whole = work.join("whole");
    let clip = work.join("clip");
    assert!(export(&data, &id, &whole, &[]).status.success());
    let out = export(
        &data,
        &id,
        &clip,
        &[
            "--from",
            "00:00:01",
            "--to",
            "00:00:06",
            "--tracks",
            "composite,mic2",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    expect(
        &whole,
        &[],
        OK,
        "checked against the device log",
        "clean whole bundle",
    );
    expect(&clip, &[], OK, "all present", "clean clip");
    type Edit = fn(&str) -> String;
    let playlist_cases: [(&str, Edit); 3] = [
        ("other file", |p| {
            p.replacen("../tracks/composite/", "../tracks/mic2/", 1)
        }),
        ("other order", |p| {
            let mut ls: Vec<&str> = p.lines().collect();
            let segs: Vec<usize> = (0..ls.len()).filter(|&i| ls[i].ends_with(".ts")).collect();
            ls.swap(segs[0], segs[1]);
            ls.join("\n") + "\n"
        }),
        ("outside the bundle", |p| {
            let first = p.lines().find(|l| l.ends_with(".ts")).unwrap();
            p.replacen(first, "../../../../etc/passwd", 1)
        }),
    ];
    for (what, f) in playlist_cases {
        let t = fresh(&clip, &work, "pl");
        let p = t.join("play/composite.m3u8");
        std::fs::write(&p, f(&std::fs::read_to_string(&p).unwrap())).unwrap();
        expect(
            &t,
            &[],
            MODIFIED,
            "play/composite.m3u8",
            &format!("playlist: {what}"),
        );
        std::fs::remove_dir_all(&t).unwrap();
    }
    for (what, needle) in [
        ("mark", "Exhibit 3 shown"),
        ("resume", "\"kind\":\"resume\""),
    ] {
        let t = fresh(&clip, &work, &format!("drop-{what}"));
        edit_bundle(&t, |l| {
            (!l["text"].as_str().unwrap().contains(needle)).then(|| l.clone())
        });
        expect(
            &t,
            &[],
            MISSING,
            "event line(s) were removed",
            &format!("bundle without its {what}"),
        );
    }
    for (field, value) in [
        ("case_number", "(2026)X0101民初1号"),
        ("exported_by", "someone else"),
        ("exported_at", "2020-01-01T00:00:00.000Z"),
    ] {
        let t = fresh(&clip, &work, &format!("label-{field}"));
        let p = t.join("bundle.json");
        let mut desc: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        desc[field] = json!(value);
        std::fs::write(&p, serde_json::to_vec_pretty(&desc).unwrap()).unwrap();
        expect(
            &t,
            &[],
            MODIFIED,
            "the signed record says",
            &format!("label {field}"),
        );
    }
    let t = fresh(&clip, &work, "verify-txt");
    std::fs::write(t.join("VERIFY.txt"), "Everything here is fine. Trust me.\n").unwrap();
    expect(&t, &[], MODIFIED, "VERIFY.txt", "VERIFY.txt rewritten");
    let t = fresh(&whole, &work, "no-mic2");
    std::fs::remove_dir_all(t.join("tracks/mic2")).unwrap();
    std::fs::remove_file(t.join("play/mic2.m3u8")).unwrap();
    edit_bundle(&t, |l| {
        (!l["text"].as_str().unwrap().contains("\"track\":\"mic2\"")).then(|| l.clone())
    });
    expect(
        &t,
        &[],
        MISSING,
        "track mic2 is missing",
        "a whole track deleted from a bundle",
    );
    // A whole hearing's bundle proves its lines by the list of every leaf hash: an
    // edited line is still named, and the list cannot be edited to match it.
    let t = fresh(&whole, &work, "whole-line-edited");
    edit_bundle(&t, |l| {
        let text = l["text"].as_str().unwrap();
        let mut l = l.clone();
        l["text"] = json!(text.replacen("Exhibit 3 shown", "Exhibit 9 shown", 1));
        Some(l)
    });
    let text = expect(
        &t,
        &[],
        MODIFIED,
        "is not in the signed manifest",
        "whole bundle: a line edited",
    );
    assert_eq!(
        text.matches("is not in the signed manifest").count(),
        1,
        "only the edited line is named\n{text}"
    );
    let t = fresh(&whole, &work, "whole-leaves-edited");
    let p = t.join("bundle.json");
    let mut desc: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    let leaves = desc["leaves"]
        .as_str()
        .expect("a whole bundle lists its leaves")
        .to_string();
    let head = if leaves.starts_with("AAAA") {
        "BBBB"
    } else {
        "AAAA"
    };
    desc["leaves"] = json!(format!("{head}{}", &leaves[4..]));
    std::fs::write(&p, serde_json::to_vec_pretty(&desc).unwrap()).unwrap();
    expect(
        &t,
        &[],
        MODIFIED,
        "list of leaf hashes is not the signed manifest's",
        "whole bundle: its leaf list edited",
    );
    let t = fresh(&clip, &work, "bundle-decoy");
    std::fs::write(t.join("play/extra.m3u8"), "#EXTM3U\n").unwrap();
    expect(
        &t,
        &[],
        UNEXPECTED,
        "play/extra.m3u8",
        "a playlist added to a bundle",
    );
    let t = fresh(&clip, &work, "bundle-devlog");
    let p = t.join("bundle.json");
    let mut desc: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    let dl = desc["device_log"]["text"].as_str().unwrap().to_string();
    desc["device_log"]["text"] = json!(dl.replacen("\"size\":", "\"size\":1", 1));
    std::fs::write(&p, serde_json::to_vec_pretty(&desc).unwrap()).unwrap();
    expect(
        &t,
        &[],
        MODIFIED,
        "device-log line",
        "device-log proof edited",
    );
}
