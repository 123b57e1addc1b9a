//! Evidence integrity: a real recorded hearing, then every kind of tampering someone
//! with write access to its folder could try, each caught by `courtrec verify` with
//! the exit code of its kind; and export bundles, whole and clipped, verified after
//! being copied elsewhere. Exports through the API: `tests/export.rs`.

mod common;
use common::evidence::*;
use common::*;
use courtrec::archive::checkpoint::Checkpoint;
use courtrec::archive::signing::DeviceKey;

#[test]
fn verify_catches_every_kind_of_tampering_and_bundles_prove_themselves() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let work = tmp.path().join("work");
    // The microphone mixers' time keeping is logged in full: a track with a hole
    // (seen twice, on CI and in a full run, never alone) should explain itself.
    let mut d = Daemon::start_env(
        &data,
        None,
        "integrity",
        &[("RUST_LOG", "info,courtrec::capture::mixtime=debug")],
    );
    let clerk = d.login("clerk", "demo");
    let id = record(&d, &clerk, "(2026)X0101民初55号", 7.0);
    let other = record(&d, &clerk, "(2026)X0101民初56号", 3.0);
    d.stop();
    let hearing = data.join("hearings").join(&id);
    let device_id = std::fs::read_to_string(data.join("device-id"))
        .unwrap()
        .trim()
        .to_string();
    let shown = courtrec(&["key", "show", "--data-dir", data.to_str().unwrap()]);
    let shown = String::from_utf8_lossy(&shown.stdout).to_string();
    let vkey = shown
        .lines()
        .find_map(|l| l.strip_prefix("verifier:"))
        .unwrap()
        .trim()
        .to_string();
    let fingerprint = shown
        .lines()
        .find_map(|l| l.strip_prefix("fingerprint:"))
        .unwrap()
        .trim()
        .to_string();

    // The untouched hearing verifies, with and without the trusted key.
    let (code, text) = verify(&hearing, &[]);
    assert_eq!(
        code,
        OK,
        "clean: exit code\n{text}\nthe daemon's log:\n{}",
        d.log_notes("mixtime")
    );
    let text = expect(&hearing, &[], OK, "all present and unmodified", "clean");
    assert!(
        text.contains(&fingerprint),
        "always prints the signer:\n{text}"
    );
    assert!(text.contains("NOT checked against a trusted key"));
    assert!(text.contains("explained by the recess"), "{text}");
    expect(
        &hearing,
        &["--key", &vkey],
        OK,
        "signed by a trusted key",
        "clean, trusted",
    );
    let list = tmp.path().join("court-keys.txt");
    std::fs::write(&list, format!("# Court X devices\n{vkey}\n")).unwrap();
    expect(
        &hearing,
        &["--ca", list.to_str().unwrap()],
        OK,
        "trusted",
        "clean, court list",
    );
    let (_, json_text) = verify(&hearing, &["--json"]);
    let j: serde_json::Value = serde_json::from_str(&json_text).unwrap();
    assert_eq!(j["exit_code"], 0);
    assert_eq!(j["sealed"], true);
    assert_eq!(j["hearing_id"], id.as_str());

    let n_cam1 = std::fs::read_dir(hearing.join("tracks/cam1"))
        .unwrap()
        .count() as u64;
    assert!(n_cam1 >= 4, "enough segments to tamper with: {n_cam1}");

    // Segments.
    let t = fresh(&hearing, &work, "flip");
    let p = seg(&t, "cam1", 2);
    let mut b = std::fs::read(&p).unwrap();
    b[1000] ^= 0x01;
    std::fs::write(&p, b).unwrap();
    expect(&t, &[], MODIFIED, "tracks/cam1/00000002.ts", "flipped byte");

    let t = fresh(&hearing, &work, "truncate");
    let p = seg(&t, "mic1", 2);
    let len = std::fs::metadata(&p).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(len - 188)
        .unwrap();
    expect(&t, &[], MODIFIED, "truncated", "truncated segment");

    for (name, seq) in [("first", 1), ("middle", 2), ("last", n_cam1)] {
        let t = fresh(&hearing, &work, &format!("delete-{name}"));
        std::fs::remove_file(seg(&t, "cam1", seq)).unwrap();
        expect(
            &t,
            &[],
            MISSING,
            "is missing",
            &format!("deleted {name} segment"),
        );
    }

    let t = fresh(&hearing, &work, "swap-within");
    let (a, b) = (seg(&t, "cam2", 1), seg(&t, "cam2", 2));
    let tmpf = t.join("x");
    std::fs::rename(&a, &tmpf).unwrap();
    std::fs::rename(&b, &a).unwrap();
    std::fs::rename(&tmpf, &b).unwrap();
    expect(
        &t,
        &[],
        MISSING,
        "swapped",
        "two segments swapped within a track",
    );

    let t = fresh(&hearing, &work, "swap-between");
    let (a, b) = (seg(&t, "mic1", 2), seg(&t, "mic2", 2));
    let tmpf = t.join("x");
    std::fs::rename(&a, &tmpf).unwrap();
    std::fs::rename(&b, &a).unwrap();
    std::fs::rename(&tmpf, &b).unwrap();
    expect(
        &t,
        &[],
        MISSING,
        "segment mic2 #2",
        "segments swapped between tracks",
    );

    let t = fresh(&hearing, &work, "foreign");
    std::fs::copy(
        seg(&data.join("hearings").join(&other), "cam1", 1),
        seg(&t, "cam1", 1),
    )
    .unwrap();
    expect(
        &t,
        &[],
        MODIFIED,
        "tracks/cam1/00000001.ts",
        "segment from another hearing",
    );

    let t = fresh(&hearing, &work, "stray");
    std::fs::copy(seg(&t, "cam1", 1), seg(&t, "cam1", 99)).unwrap();
    expect(&t, &[], UNEXPECTED, "not in the manifest", "a file added");

    // Events, edited as a forger would: the hash chain recomputed.
    let ls = lines(&hearing);
    let mark = ls
        .iter()
        .position(|l| l.contains("Exhibit 3 shown"))
        .unwrap();
    let recess = ls
        .iter()
        .position(|l| l.contains("\"kind\":\"recess\""))
        .unwrap();

    let t = fresh(&hearing, &work, "edit-text");
    let mut e = ls.clone();
    e[mark] = e[mark].replace("Exhibit 3 shown", "Exhibit 4 shown");
    std::fs::write(t.join("manifest.jsonl"), e.join("\n") + "\n").unwrap();
    expect(
        &t,
        &[],
        MODIFIED,
        "does not chain",
        "edited mark, chain left",
    );
    write_rechained(&t, &e);
    expect(
        &t,
        &[],
        MODIFIED,
        "not what was signed",
        "edited mark, chain rebuilt",
    );

    let t = fresh(&hearing, &work, "edit-reason");
    let mut e = ls.clone();
    e[recess] = e[recess].replace("\"reason\":\"recess\"", "\"reason\":\"mediation\"");
    assert_ne!(e[recess], ls[recess]);
    write_rechained(&t, &e);
    expect(
        &t,
        &[],
        MODIFIED,
        "not what was signed",
        "edited recess reason",
    );

    let t = fresh(&hearing, &work, "edit-time");
    let mut e = ls.clone();
    let v: serde_json::Value = serde_json::from_str(&e[recess]).unwrap();
    let at = v["record"]["media_time_ns"].as_i64().unwrap();
    e[recess] = e[recess].replace(
        &format!("\"media_time_ns\":{at}"),
        &format!("\"media_time_ns\":{}", at + 1_000_000_000),
    );
    write_rechained(&t, &e);
    expect(
        &t,
        &[],
        MODIFIED,
        "not what was signed",
        "edited event time",
    );

    let t = fresh(&hearing, &work, "remove-event");
    let mut e = ls.clone();
    e.remove(mark);
    write_rechained(&t, &e);
    expect(&t, &[], MODIFIED, "not what was signed", "removed event");

    let t = fresh(&hearing, &work, "add-event");
    let mut e = ls.clone();
    e.insert(
        mark + 1,
        ls[mark].replace("Exhibit 3 shown", "Witness left"),
    );
    write_rechained(&t, &e);
    expect(&t, &[], MODIFIED, "not what was signed", "added event");

    let t = fresh(&hearing, &work, "reorder-lines");
    let mut e = ls.clone();
    e.swap(mark, mark + 1);
    std::fs::write(t.join("manifest.jsonl"), e.join("\n") + "\n").unwrap();
    expect(&t, &[], MISSING, "reordered", "two manifest lines swapped");

    // Rebuilt and re-signed with another key: caught by the trusted key.
    let t = fresh(&hearing, &work, "resigned");
    let mut e = ls.clone();
    e[mark] = e[mark].replace("Exhibit 3 shown", "Exhibit 4 shown");
    write_rechained(&t, &e);
    let forger = DeviceKey::load_or_create(
        &tmp.path().join("forger.key"),
        &format!("courtrec/{device_id}"),
    )
    .unwrap();
    resign(&t, &forger, &device_id, &id);
    let (_, text) = verify(&t, &[]);
    assert!(
        !text.contains(&fingerprint),
        "a re-signed folder shows another signer fingerprint:\n{text}"
    );
    expect(
        &t,
        &["--key", &vkey],
        BAD_SIGNATURE,
        "does not verify",
        "re-signed, --key",
    );
    expect(
        &t,
        &["--ca", list.to_str().unwrap()],
        BAD_SIGNATURE,
        "does not verify",
        "re-signed, --ca",
    );

    // Checkpoints.
    let cps: Vec<u64> = courtrec::archive::checkpoint::sizes_in(&hearing.join("checkpoints"));
    assert!(cps.len() >= 4, "{cps:?}");
    let t = fresh(&hearing, &work, "remove-checkpoint");
    std::fs::remove_file(t.join("checkpoints").join(Checkpoint::file_name(cps[2]))).unwrap();
    expect(
        &t,
        &[],
        MISSING,
        "a checkpoint was removed",
        "removed middle checkpoint",
    );

    let t = fresh(&hearing, &work, "remove-final");
    std::fs::remove_file(
        t.join("checkpoints")
            .join(Checkpoint::file_name(*cps.last().unwrap())),
    )
    .unwrap();
    expect(
        &t,
        &[],
        UNSEALED,
        "not by a signature",
        "removed final checkpoint",
    );

    let t = fresh(&hearing, &work, "bad-sig");
    let p = t.join("checkpoints").join(Checkpoint::file_name(cps[1]));
    let note = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, note.replacen("time 2", "time 1", 1)).unwrap();
    expect(
        &t,
        &[],
        BAD_SIGNATURE,
        "signature does not verify",
        "edited checkpoint",
    );

    // A gap nobody explains: segments and their lines removed, chain rebuilt and
    // re-signed: the trusted key is what catches it; with the forger's key the gap is.
    let t = fresh(&hearing, &work, "gap");
    let e: Vec<String> = ls
        .iter()
        .filter(|l| !(l.contains("\"track\":\"mic3\"") && l.contains("\"seq\":2,")))
        .cloned()
        .collect();
    assert_eq!(e.len(), ls.len() - 1);
    // Renumber the later mic3 segments so the numbering looks contiguous.
    let e: Vec<String> = e
        .into_iter()
        .map(|l| {
            if l.contains("\"track\":\"mic3\"") {
                let v: serde_json::Value = serde_json::from_str(&l).unwrap();
                let s = v["record"]["seq"].as_u64().unwrap();
                if s > 2 {
                    return l.replace(&format!("\"seq\":{s},"), &format!("\"seq\":{},", s - 1));
                }
            }
            l
        })
        .collect();
    write_rechained(&t, &e);
    // (The lines keep naming their files, so the files stay where they are.)
    std::fs::remove_file(seg(&t, "mic3", 2)).unwrap();
    resign(&t, &forger, &device_id, &id);
    expect(
        &t,
        &[],
        GAP,
        "track mic3: no media from",
        "an unexplained gap",
    );
    expect(
        &t,
        &["--key", &vkey],
        BAD_SIGNATURE,
        "does not verify",
        "gap, trusted key",
    );

    // Bad inputs.
    let empty = work.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    expect(
        &empty,
        &[],
        UNUSABLE,
        "not a hearing folder",
        "empty folder",
    );
    expect(
        &hearing.join("manifest.jsonl"),
        &[],
        UNUSABLE,
        "this is a file",
        "a file",
    );
    let t = fresh(&hearing, &work, "random");
    std::fs::write(
        t.join("manifest.jsonl"),
        (0..100_000u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    expect(&t, &[], UNUSABLE, "manifest", "random manifest");
    let t = fresh(&hearing, &work, "huge");
    std::fs::OpenOptions::new()
        .write(true)
        .open(t.join("manifest.jsonl"))
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    expect(
        &t,
        &[],
        UNUSABLE,
        "more than any hearing writes",
        "huge manifest",
    );
    expect(
        &hearing,
        &["--key", "not-a-key"],
        UNUSABLE,
        "not a verifier key",
        "bad --key",
    );

    // Export bundles: the whole hearing and a clip, verified after copying elsewhere;
    // each export is an event of the hearing.
    let whole = work.join("bundle-whole");
    let out = courtrec(&[
        "export",
        &id,
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        whole.to_str().unwrap(),
        "--as",
        "judge-li",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let clip = work.join("bundle-clip");
    let out = courtrec(&[
        "export",
        &id,
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        clip.to_str().unwrap(),
        "--from",
        "00:00:01",
        "--to",
        "00:00:03",
        "--tracks",
        "composite,mic2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        courtrec(&[
            "export",
            &id,
            "--data-dir",
            data.to_str().unwrap(),
            "--out",
            clip.to_str().unwrap()
        ])
        .status
        .code()
            != Some(0),
        "refuses a non-empty folder"
    );
    assert!(
        !courtrec(&[
            "export",
            &id,
            "--data-dir",
            data.to_str().unwrap(),
            "--out",
            work.join("x1").to_str().unwrap(),
            "--tracks",
            "cam9"
        ])
        .status
        .success(),
        "unknown track"
    );
    let moved = tmp.path().join("elsewhere");
    copy_dir(&whole, &moved.join("whole"));
    copy_dir(&clip, &moved.join("clip"));
    std::fs::remove_dir_all(&whole).unwrap();
    let text = expect(
        &moved.join("whole"),
        &["--key", &vkey],
        OK,
        "all present and unmodified",
        "whole bundle",
    );
    assert!(text.contains("judge-li"), "{text}");
    let text = expect(
        &moved.join("clip"),
        &["--key", &vkey],
        OK,
        "clip of hearing",
        "clip bundle",
    );
    assert!(
        text.contains("composite ") && text.contains("mic2 "),
        "{text}"
    );
    assert!(moved.join("clip/VERIFY.txt").is_file());
    // The clip plays on its own.
    let pl = moved.join("clip/play/composite.m3u8");
    let p = ffprobe(&pl);
    assert!(p.duration_s >= 1.5, "clip plays: {p:?}");
    // The hearing itself still verifies, with both exports logged and signed.
    let text = expect(
        &hearing,
        &["--key", &vkey],
        OK,
        "all present",
        "hearing after exports",
    );
    let exports = lines(&hearing)
        .iter()
        .filter(|l| l.contains("\"kind\":\"export\""))
        .count();
    assert_eq!(exports, 2, "{text}");

    // Tampered bundles.
    let t = fresh(&moved.join("clip"), &work, "clip-flip");
    let f = std::fs::read_dir(t.join("tracks/composite"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut b = std::fs::read(&f).unwrap();
    b[500] ^= 0x80;
    std::fs::write(&f, b).unwrap();
    expect(
        &t,
        &[],
        MODIFIED,
        "tracks/composite/",
        "bundle segment flipped",
    );
    let t = fresh(&moved.join("clip"), &work, "clip-edit");
    let desc = std::fs::read_to_string(t.join("bundle.json")).unwrap();
    std::fs::write(
        t.join("bundle.json"),
        desc.replacen("Exhibit 3 shown", "Exhibit 9 shown", 1),
    )
    .unwrap();
    expect(
        &t,
        &[],
        MODIFIED,
        "not in the signed manifest",
        "bundle line edited",
    );
    let t = fresh(&moved.join("clip"), &work, "clip-delete");
    std::fs::remove_file(
        std::fs::read_dir(t.join("tracks/mic2"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path(),
    )
    .unwrap();
    expect(&t, &[], MISSING, "is missing", "bundle segment deleted");
    let t = fresh(&moved.join("clip"), &work, "clip-resign");
    std::fs::write(
        t.join("device.vkey"),
        format!("{}\n", forger.verifier().to_vkey()),
    )
    .unwrap();
    expect(
        &t,
        &[],
        BAD_SIGNATURE,
        "does not verify",
        "bundle with another key",
    );
}
