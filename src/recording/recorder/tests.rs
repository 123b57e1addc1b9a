use super::*;
use crate::archive::index::Index;
use crate::archive::records::Record;
use crate::capture::FrameSink;
use crate::media::StreamType;
use crate::recording::router::tests::key;

struct NoReport;
impl WriterReport for NoReport {
    fn track_failed(&self, _: &str, _: &crate::error::Error) {}
    fn track_ok(&self, _: &str) {}
    fn frames_dropped(&self, _: &str, _: u64) {}
}

#[test]
fn a_writer_is_stuck_only_with_frames_waiting_and_none_taken() {
    let p = Progress::new();
    std::thread::sleep(Duration::from_millis(30));
    assert!(!p.stuck(Duration::from_millis(10)), "nothing waits: idle");
    p.sent.fetch_add(2, Ordering::Relaxed);
    assert!(
        p.stuck(Duration::from_millis(10)),
        "frames wait, none taken"
    );
    assert!(!p.stuck(Duration::from_secs(5)), "not for long yet");
    p.took();
    assert!(!p.stuck(Duration::from_millis(10)), "just took one");
    p.took();
    std::thread::sleep(Duration::from_millis(30));
    assert!(!p.stuck(Duration::from_millis(10)), "caught up: idle again");
}

/// A one-track session (cam1) writing into a temporary hearing folder.
fn session(tmp: &std::path::Path) -> (Session, Index) {
    session_of(tmp, &["cam1"])
}

/// A session of H.264 tracks named `tracks` writing into a temporary hearing folder.
fn session_of(tmp: &std::path::Path, tracks: &[&str]) -> (Session, Index) {
    let index = Index::open(&tmp.join("index")).unwrap();
    let dir = HearingDir {
        root: tmp.join("h1"),
    };
    let created = crate::recording::fixtures::created_h1();
    let log = Arc::new(Mutex::new(
        HearingLog::create(
            dir.clone(),
            Some(Arc::new(index.clone())),
            Record::Event(created),
            None,
        )
        .unwrap(),
    ));
    let specs: Vec<TrackSpec> = tracks
        .iter()
        .map(|name| TrackSpec {
            info: crate::archive::records::TrackInfo {
                name: name.to_string(),
                ..crate::recording::fixtures::cam1()
            },
            streams: vec![StreamType::H264],
        })
        .collect();
    let session = Session::start(
        "h1",
        dir,
        &specs,
        &vec![1; specs.len()],
        SegmentSettings {
            segment_target_ns: 2_000_000_000,
            fsync_interval_ns: 500_000_000,
            disk_reserve_bytes: 0,
        },
        Duration::from_millis(300),
        Timebase {
            base_rt_ns: 0,
            wall_at_base_unix_ns: 0,
        },
        log,
        "d",
        Arc::new(NoReport),
    );
    (session, index)
}

#[test]
fn a_frame_that_arrives_before_begin_is_kept_if_it_is_at_or_after_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    let (session, index) = session(tmp.path());
    // Frames reach the session before begin(): one before the start, one after it.
    session.route(0, key(900));
    session.route(0, key(1000));
    session.begin(950_000_000, Vec::new());
    session.route(0, key(1066));
    session.stop(2_000_000_000, &NoReport);
    let segs = index.segments("h1", "cam1").unwrap();
    assert_eq!(segs.len(), 1);
    assert_eq!(
        segs[0].media_start_ns, 1_000_000_000,
        "recording starts at the early keyframe at 1.000 s, not before the start"
    );
}

#[test]
fn tracks_sharing_writer_threads_are_each_written_and_sealed_at_the_stop() {
    // Five tracks on two writer threads: one thread writes three of them.
    let tmp = tempfile::tempdir().unwrap();
    let names = ["cam1", "cam2", "cam3", "cam4", "composite"];
    let (session, index) = session_of(tmp.path(), &names);
    session.begin(0, Vec::new());
    for ms in (0..1500).step_by(100) {
        for (t, name) in names.iter().enumerate() {
            // cam4 goes silent at 1 s: nothing of it passes the stop, so only its
            // drain time ends it; the others end at their first frame past the stop.
            if *name == "cam4" && ms >= 1000 {
                continue;
            }
            session.route(t, key(ms));
        }
    }
    let mut ends = session.stop(1_200_000_000, &NoReport);
    ends.sort_by(|a, b| a.track.cmp(&b.track));
    let ended: Vec<_> = ends
        .iter()
        .map(|e| (e.track.as_str(), e.next_seq))
        .collect();
    assert_eq!(
        ended,
        [
            ("cam1", 2),
            ("cam2", 2),
            ("cam3", 2),
            ("cam4", 2),
            ("composite", 2)
        ]
    );
    for name in names {
        let segs = index.segments("h1", name).unwrap();
        assert_eq!(segs.len(), 1, "{name}: one sealed segment");
        assert_eq!(segs[0].media_start_ns, 0, "{name}");
        let last_ms: u64 = if name == "cam4" { 900 } else { 1100 };
        assert!(
            segs[0].media_duration_ns <= 1_200_000_000
                && segs[0].media_duration_ns > last_ms * 1_000_000,
            "{name}: every frame before the stop and none after it: {:?}",
            segs[0]
        );
    }
}

#[test]
fn a_silent_track_is_sealed_at_its_drain_time_while_the_others_keep_sending() {
    let tmp = tempfile::tempdir().unwrap();
    let names = ["cam1", "cam2", "cam3"];
    let (session, index) = session_of(tmp.path(), &names);
    let session = Arc::new(session);
    session.begin(0, Vec::new());
    for ms in (0..1000).step_by(100) {
        for t in 0..names.len() {
            session.route(t, key(ms));
        }
    }
    // cam1 and cam2 keep sending past the stop (the encoders still deliver while a
    // stop is under way); cam3 is silent from 1 s on.
    let sending = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let feeder = {
        let (session, sending) = (session.clone(), sending.clone());
        std::thread::spawn(move || {
            let mut ms = 1000;
            while sending.load(Ordering::Relaxed) {
                session.route(0, key(ms));
                session.route(1, key(ms));
                ms += 1;
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    {
        let session = session.clone();
        std::thread::spawn(move || {
            let _ = done_tx.send(session.stop(1_000_000_000, &NoReport));
        });
    }
    let ends = done_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the stop returns although frames keep coming");
    sending.store(false, Ordering::Relaxed);
    feeder.join().unwrap();
    assert_eq!(ends.len(), 3);
    for name in names {
        let segs = index.segments("h1", name).unwrap();
        assert_eq!(segs.len(), 1, "{name}");
        assert!(
            segs[0].media_duration_ns <= 1_000_000_000,
            "{name}: {:?}",
            segs[0]
        );
    }
}

#[test]
fn a_keyframe_that_went_by_before_the_session_existed_is_recorded() {
    // Frames can reach the router before the clock reads their timestamp: the
    // session must still get a keyframe stamped at or after its start.
    let tmp = tempfile::tempdir().unwrap();
    let (session, index) = session(tmp.path());
    let session = Arc::new(session);
    let router = Router::new(1);
    router.push(0, key(500));
    router.push(0, key(1000));
    let recent = router.install(session.clone());
    router.push(
        0,
        Frame {
            keyframe: false,
            ..key(1066)
        },
    );
    session.begin(950_000_000, recent);
    router.push(
        0,
        Frame {
            keyframe: false,
            ..key(1133)
        },
    );
    session.stop(2_000_000_000, &NoReport);
    router.clear();
    let segs = index.segments("h1", "cam1").unwrap();
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0].media_start_ns, 1_000_000_000);
    assert_eq!(
        segs[0].media_duration_ns,
        1_133_000_000 + 66_666_667 - 1_000_000_000
    );
}

#[test]
fn the_router_counts_silence_only_while_a_session_records() {
    let tmp = tempfile::tempdir().unwrap();
    let (session, _index) = session(tmp.path());
    let session = Arc::new(session);
    let r = Router::new(1);
    r.push(0, key(0));
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(r.silences(), vec![None], "no session: no frame is expected");
    r.install(session.clone());
    assert!(
        r.silences()[0].is_some_and(|d| d < Duration::from_millis(25)),
        "silence counts from the install, not from the last frame before it"
    );
    std::thread::sleep(Duration::from_millis(30));
    let s = r.silences();
    assert!(
        s[0].is_some_and(|d| d >= Duration::from_millis(25)),
        "{s:?}"
    );
    r.push(0, key(40));
    assert!(r.silences()[0].is_some_and(|d| d < Duration::from_millis(25)));
    session.stop(2_000_000_000, &NoReport);
    r.clear();
    assert_eq!(r.silences(), vec![None], "stopped: no frame is expected");
}
