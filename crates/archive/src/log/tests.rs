use super::*;
use crate::records::{EventKind, EventRecord, HearingMeta, Visibility};
use std::sync::Mutex;

fn event(kind: EventKind) -> Record {
    let mut ev = EventRecord::new("h1", "dev-1", kind, "2026-01-01T00:00:00.000Z".into());
    ev.media_time_ns = Some(0);
    ev.meta = (kind == EventKind::Created).then(|| HearingMeta {
        case_number: "1".into(),
        title: "t".into(),
        courtroom: "c".into(),
        visibility: Visibility::Public,
        scheduled_start: None,
        tracks: vec![],
    });
    Record::Event(ev)
}

/// A segment record over a real file in the hearing folder.
fn segment(dir: &HearingDir, seq: u64, start_s: i64) -> Record {
    let file = HearingDir::segment_rel("cam1", seq);
    let path = dir.root.join(&file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let bytes = vec![seq as u8; 188];
    std::fs::write(&path, &bytes).unwrap();
    Record::Segment(SegmentRecord {
        hearing_id: "h1".into(),
        device_id: "dev-1".into(),
        track: "cam1".into(),
        seq,
        file,
        bytes: 188,
        sha256: crate::sha256_hex(&bytes),
        media_start_ns: start_s * 1_000_000_000,
        media_duration_ns: 2_000_000_000,
        wall_start: "2026-01-01T00:00:00.000Z".into(),
        partial: false,
    })
}

struct Setup {
    _tmp: tempfile::TempDir,
    dir: HearingDir,
    signer: Signer,
    key: Arc<DeviceKey>,
}

fn setup(with_devlog: bool) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let key = Arc::new(
        DeviceKey::load_or_create(&tmp.path().join("device.key"), "courtrec/dev-1").unwrap(),
    );
    let devlog = with_devlog.then(|| {
        Arc::new(DeviceLog::open(&tmp.path().join("device-log"), "dev-1", key.clone()).unwrap())
    });
    let dir = HearingDir {
        root: tmp.path().join("hearings/h1"),
    };
    Setup {
        dir,
        signer: Signer {
            key: key.clone(),
            devlog,
        },
        key,
        _tmp: tmp,
    }
}

fn lines(dir: &HearingDir) -> Vec<String> {
    std::fs::read_to_string(dir.manifest())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn every_event_is_covered_by_a_signed_checkpoint_of_the_manifest_so_far() {
    let s = setup(true);
    let mut log = HearingLog::create(
        s.dir.clone(),
        None,
        event(EventKind::Created),
        Some(s.signer.clone()),
    )
    .unwrap();
    for k in [EventKind::Open, EventKind::Mark, EventKind::Close] {
        log.append(event(k)).unwrap();
    }
    let leaves: Vec<_> = lines(&s.dir)
        .iter()
        .map(|l| crate::merkle::leaf_hash(l.as_bytes()))
        .collect();
    let verifier = s.key.verifier();
    for size in 1..=4usize {
        let note = std::fs::read_to_string(s.dir.root.join(format!("checkpoints/{size:08}.note")))
            .unwrap();
        let cp = Checkpoint::parse(&verifier.verify_note(&note).unwrap()).unwrap();
        assert_eq!(
            (cp.device_id.as_str(), cp.hearing_id.as_str()),
            ("dev-1", "h1")
        );
        assert_eq!(cp.size, size as u64);
        assert_eq!(cp.prev, size as u64 - 1, "chained to the one before");
        assert_eq!(cp.root, crate::merkle::root(&leaves[..size]));
        assert_eq!(cp.closed, size == 4, "only the last is marked closed");
    }
    assert_eq!(
        std::fs::read_to_string(s.dir.root.join("device.vkey"))
            .unwrap()
            .trim(),
        s.key.verifier().to_vkey()
    );
    let dl = s.signer.devlog.as_ref().unwrap().latest("h1").unwrap();
    assert_eq!(
        (dl.size, dl.closed),
        (4, true),
        "the device log records each checkpoint"
    );
    // Reopened, all of it is vouched for: an export may append and sign.
    drop(log);
    let (mut log, _) = HearingLog::open(s.dir.clone(), None, Some(s.signer.clone())).unwrap();
    assert_eq!((log.tampered(), log.unvouched()), (None, 0));
    log.append(event(EventKind::Export)).unwrap();
}

/// Cuts the manifest back to its first `keep` lines, removes the checkpoints past it,
/// and appends `tail` lines with a valid hash chain (what a forger without the key can
/// do).
fn forge(dir: &HearingDir, keep: usize, tail: Vec<Record>) {
    let mut ls = lines(dir);
    ls.truncate(keep);
    std::fs::write(dir.manifest(), ls.join("\n") + "\n").unwrap();
    for size in crate::checkpoint::sizes_in(&dir.root.join("checkpoints")) {
        if size > keep as u64 {
            std::fs::remove_file(
                dir.root
                    .join("checkpoints")
                    .join(Checkpoint::file_name(size)),
            )
            .unwrap();
        }
    }
    let (mut m, _) = Manifest::<Record>::open(&dir.manifest()).unwrap();
    for r in tail {
        m.append(r).unwrap();
    }
}

#[test]
fn a_manifest_cut_back_and_rewritten_is_never_signed_again() {
    for with_devlog in [true, false] {
        let s = setup(with_devlog);
        let mut log = HearingLog::create(
            s.dir.clone(),
            None,
            event(EventKind::Created),
            Some(s.signer.clone()),
        )
        .unwrap();
        log.append(event(EventKind::Open)).unwrap();
        log.append(segment(&s.dir, 1, 0)).unwrap();
        log.append(event(EventKind::Mark)).unwrap();
        log.append(event(EventKind::Close)).unwrap();
        drop(log);
        // Back to the open, a rewritten mark and the close kept.
        forge(
            &s.dir,
            2,
            vec![
                segment(&s.dir, 1, 0),
                event(EventKind::Mark),
                event(EventKind::Close),
            ],
        );
        let (mut log, report) =
            HearingLog::open(s.dir.clone(), None, Some(s.signer.clone())).unwrap();
        if with_devlog {
            let t = log
                .tampered()
                .expect("the device log reveals the cut")
                .to_string();
            assert!(t.contains("device log"), "{t}");
        } else {
            assert_eq!(log.unvouched(), 3);
            let e = log.append(event(EventKind::Export)).unwrap_err();
            assert!(e.msg.contains("not checked"), "{e}");
            // Two events after the last signature is no crash: not adopted.
            assert!(log.adopt_tail(&report).is_err());
            assert!(
                log.tampered().unwrap().contains("2 events"),
                "{:?}",
                log.tampered()
            );
        }
        let e = log.append(event(EventKind::Export)).unwrap_err();
        assert!(e.msg.contains("read-only"), "{e}");
        assert_eq!(
            crate::checkpoint::sizes_in(&s.dir.root.join("checkpoints")).last(),
            Some(&2),
            "nothing was signed over the forgery"
        );
    }
}

#[test]
fn a_crash_between_a_line_and_its_signature_is_adopted_at_restart() {
    let s = setup(true);
    let mut log = HearingLog::create(
        s.dir.clone(),
        None,
        event(EventKind::Created),
        Some(s.signer.clone()),
    )
    .unwrap();
    log.append(event(EventKind::Open)).unwrap();
    drop(log);
    // Lines written, then the process died before signing them.
    let (mut m, _) = Manifest::<Record>::open(&s.dir.manifest()).unwrap();
    m.append(segment(&s.dir, 1, 0)).unwrap();
    m.append(segment(&s.dir, 2, 2)).unwrap();
    m.append(event(EventKind::Mark)).unwrap();
    drop(m);
    let (mut log, report) = HearingLog::open(s.dir.clone(), None, Some(s.signer.clone())).unwrap();
    assert_eq!((log.tampered(), log.unvouched()), (None, 3));
    assert_eq!(log.adopt_tail(&report).unwrap(), 3);
    assert_eq!(log.last_checkpoint_size(), 5, "signed once adopted");
    log.append(event(EventKind::Close)).unwrap();

    // A segment changed after its line: not adopted.
    let s = setup(false);
    let mut log = HearingLog::create(
        s.dir.clone(),
        None,
        event(EventKind::Created),
        Some(s.signer.clone()),
    )
    .unwrap();
    log.append(event(EventKind::Open)).unwrap();
    drop(log);
    let (mut m, _) = Manifest::<Record>::open(&s.dir.manifest()).unwrap();
    m.append(segment(&s.dir, 1, 0)).unwrap();
    drop(m);
    std::fs::write(s.dir.root.join("tracks/cam1/00000001.ts"), [9u8; 188]).unwrap();
    let (mut log, report) = HearingLog::open(s.dir.clone(), None, Some(s.signer.clone())).unwrap();
    assert!(log.adopt_tail(&report).is_err());
    assert!(log.tampered().unwrap().contains("does not match"));
}

#[test]
fn a_manifest_changed_behind_the_open_log_is_noticed_before_signing() {
    let s = setup(true);
    let mut log = HearingLog::create(
        s.dir.clone(),
        None,
        event(EventKind::Created),
        Some(s.signer.clone()),
    )
    .unwrap();
    log.append(event(EventKind::Open)).unwrap();
    let mut text = std::fs::read(s.dir.manifest()).unwrap();
    text.extend_from_slice(b"{\"junk\":1}\n");
    std::fs::write(s.dir.manifest(), &text).unwrap();
    log.append(event(EventKind::Mark)).unwrap_err();
    assert!(log.tampered().unwrap().contains("changed on disk"));
}

struct FlakySink {
    fail: Mutex<bool>,
    segments: Mutex<Vec<u64>>,
}

impl DocSink for FlakySink {
    fn put(&self, _doc: &HearingDoc, segment: Option<&SegmentRecord>) -> Result<()> {
        if *self.fail.lock().unwrap() {
            crate::bail!(Internal, "index write failed");
        }
        if let Some(s) = segment {
            self.segments.lock().unwrap().push(s.seq);
        }
        Ok(())
    }
}

#[test]
fn an_index_failure_never_fails_the_append_and_is_repaired() {
    let s = setup(false);
    let sink = Arc::new(FlakySink {
        fail: Mutex::new(false),
        segments: Mutex::new(Vec::new()),
    });
    let mut log = HearingLog::create(
        s.dir.clone(),
        Some(sink.clone()),
        event(EventKind::Created),
        Some(s.signer.clone()),
    )
    .unwrap();
    log.append(event(EventKind::Open)).unwrap();
    *sink.fail.lock().unwrap() = true;
    log.append(segment(&s.dir, 1, 0)).unwrap();
    assert!(log.index_error().is_some());
    *sink.fail.lock().unwrap() = false;
    log.append(segment(&s.dir, 2, 2)).unwrap();
    assert_eq!(log.index_error(), None);
    assert_eq!(
        *sink.segments.lock().unwrap(),
        vec![1, 2],
        "the missed segment is indexed"
    );
}
