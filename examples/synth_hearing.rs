//! Writes a large, valid, sealed hearing folder without recording it, for
//! `scripts/bench-verify`: `synth_hearing DATA_DIR MEGABYTES [TRACKS]`.
//!
//! Segments hold random bytes (verification hashes bytes, it does not decode them),
//! 2 s each on the media timeline, written through the same `HearingLog` the recorder
//! uses, so the manifest and checkpoints are the real thing. Prints the hearing folder.

use courtrec::archive::index::Index;
use courtrec::archive::log::HearingLog;
use courtrec::archive::records::*;
use courtrec::archive::signing::DeviceKey;
use courtrec::archive::{DataDir, HearingDir};
use std::sync::Arc;

fn event(id: &str, kind: EventKind, t_ns: i64) -> EventRecord {
    let mut e = EventRecord::new(id, "dev-bench", kind, format_wall(chrono::Utc::now()));
    e.media_time_ns = Some(t_ns);
    e.actor = Some("bench".into());
    e
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: synth_hearing DATA_DIR MEGABYTES [TRACKS]");
        std::process::exit(2);
    }
    let data = DataDir::new(&args[1]);
    let total_bytes: u64 = args[2].parse::<u64>()? * 1_000_000;
    let n_tracks: usize = args.get(3).map_or(Ok(4), |s| s.parse())?;
    std::fs::create_dir_all(data.hearings())?;
    let index = Index::open(&data.index())?;
    let key = Arc::new(DeviceKey::load_or_create(
        &data.root.join("device.key"),
        "courtrec/dev-bench",
    )?);
    let id = "20261127-000000-bench";
    let tracks: Vec<TrackInfo> = (1..=n_tracks)
        .map(|i| TrackInfo {
            name: format!("cam{i}"),
            kind: TrackKind::Video,
            role: "overview".into(),
            label: format!("Camera {i}"),
        })
        .collect();
    let mut created = event(id, EventKind::Created, 0);
    created.media_time_ns = None;
    created.meta = Some(HearingMeta {
        case_number: "(2026)BENCH1".into(),
        title: "verify benchmark".into(),
        courtroom: "bench".into(),
        visibility: Visibility::NonPublic,
        scheduled_start: None,
        tracks: tracks.clone(),
    });
    let dir = HearingDir {
        root: data.hearings().join(id),
    };
    let signer = courtrec::archive::log::Signer { key, devlog: None };
    let mut log = HearingLog::create(
        dir.clone(),
        Some(Arc::new(index)),
        Record::Event(created),
        Some(signer),
    )?;
    log.append(Record::Event(event(id, EventKind::Open, 0)))?;
    // 4 Mbit/s cameras: 1 MB per 2 s segment.
    let seg_bytes: usize = 1_000_000;
    let seg_ns: i64 = 2_000_000_000;
    let per_track = (total_bytes / seg_bytes as u64 / n_tracks as u64).max(1);
    let mut buf = vec![0u8; seg_bytes];
    for seq in 1..=per_track {
        for t in &tracks {
            rand::fill(&mut buf[..]);
            let rel = HearingDir::segment_rel(&t.name, seq);
            let path = dir.root.join(&rel);
            std::fs::create_dir_all(path.parent().ok_or("no parent")?)?;
            std::fs::write(&path, &buf)?;
            log.append(Record::Segment(SegmentRecord {
                hearing_id: id.into(),
                device_id: "dev-bench".into(),
                track: t.name.clone(),
                seq,
                file: rel,
                bytes: seg_bytes as u64,
                sha256: courtrec::archive::sha256_hex(&buf),
                media_start_ns: (seq as i64 - 1) * seg_ns,
                media_duration_ns: seg_ns as u64,
                wall_start: format_wall(chrono::Utc::now()),
                partial: false,
            }))?;
        }
    }
    log.append(Record::Event(event(
        id,
        EventKind::Close,
        per_track as i64 * seg_ns,
    )))?;
    println!("{}", dir.root.display());
    Ok(())
}
