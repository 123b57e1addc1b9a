//! Fills a data folder with an archive for `scripts/bench-review`:
//! `synth_archive DATA_DIR N_HEARINGS HOURS SOURCE_HEARING_DIR`.
//!
//! - N small closed hearings (created, open, close; no media), so listing and
//!   searching run over a court's worth of hearings;
//! - one closed hearing of HOURS hours, made by repeating the segments of a real
//!   recorded hearing (hard links: no extra disk), with a rewritten, signed manifest
//!   whose sequence numbers, media times and wall-clock times run on.
//!
//! It writes through the same `HearingLog` as the recorder, into the daemon's own
//! index (run it with the daemon stopped). Prints the long hearing's id.

use courtrec::archive::index::{HearingDoc, Index};
use courtrec::archive::log::{DocSink, HearingLog, Signer};
use courtrec::archive::records::*;
use courtrec::archive::signing::DeviceKey;
use courtrec::archive::{DataDir, HearingDir, manifest};
use std::sync::Arc;

fn event(h: &str, dev: &str, kind: EventKind, t_ns: Option<i64>, wall: &str) -> EventRecord {
    let mut e = EventRecord::new(h, dev, kind, wall.to_string());
    e.media_time_ns = t_ns;
    e.actor = Some("bench".into());
    e
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: synth_archive DATA_DIR N_HEARINGS HOURS SOURCE_HEARING_DIR");
        std::process::exit(2);
    }
    let data = DataDir::new(&args[1]);
    let n: usize = args[2].parse()?;
    let hours: f64 = args[3].parse()?;
    let source = std::path::PathBuf::from(&args[4]);
    let device_id = data.init()?;
    let index = Index::open(&data.index())?;
    let key = Arc::new(DeviceKey::load_or_create(
        &data.root.join("device.key"),
        &format!("courtrec/{device_id}"),
    )?);
    let signer = Signer {
        key: key.clone(),
        devlog: Some(Arc::new(courtrec::archive::devlog::DeviceLog::open(
            &data.root.join("device-log"),
            &device_id,
            key.clone(),
        )?)),
    };
    let sink: Arc<dyn DocSink> = Arc::new(index.clone());
    let src: manifest::ReadReport = manifest::read(&source.join("manifest.jsonl"))?;
    let src_doc = HearingDoc::from_entries(&src.entries)?;
    let base =
        chrono::DateTime::parse_from_rfc3339("2026-01-05T01:30:00Z")?.with_timezone(&chrono::Utc);

    // Many small hearings, one a day-slot apart, so date searches have something to do.
    for i in 0..n {
        let id = format!("2026{:04}-000000-{i:06}", (i % 300) + 101);
        let wall = format_wall(base + chrono::Duration::minutes(i as i64 * 37));
        let mut created = event(&id, &device_id, EventKind::Created, None, &wall);
        created.meta = Some(HearingMeta {
            case_number: format!("(2026)X0101民初{}号", 10_000 + i),
            title: format!("synthetic hearing {i}: loan dispute"),
            courtroom: src_doc.meta.courtroom.clone(),
            visibility: Visibility::Public,
            scheduled_start: Some(wall.clone()),
            tracks: src_doc.meta.tracks.clone(),
        });
        let dir = HearingDir {
            root: data.hearings().join(&id),
        };
        let mut log = HearingLog::create(
            dir,
            Some(sink.clone()),
            Record::Event(created),
            Some(signer.clone()),
        )?;
        log.append(Record::Event(event(
            &id,
            &device_id,
            EventKind::Open,
            Some(0),
            &wall,
        )))?;
        log.append(Record::Event(event(
            &id,
            &device_id,
            EventKind::Close,
            Some(3_600_000_000_000),
            &wall,
        )))?;
        if i % 1000 == 999 {
            eprintln!("{} hearings", i + 1);
        }
    }

    // The long hearing: the source's segments, over and over.
    let id = "20260105-013000-longhr".to_string();
    let wall0 = base;
    let mut created = event(
        &id,
        &device_id,
        EventKind::Created,
        None,
        &format_wall(wall0),
    );
    created.meta = Some(HearingMeta {
        case_number: "(2026)X0101民初99999号".into(),
        title: format!("a {hours} hour hearing"),
        ..src_doc.meta.clone()
    });
    let dir = HearingDir {
        root: data.hearings().join(&id),
    };
    let mut log = HearingLog::create(
        dir.clone(),
        Some(sink.clone()),
        Record::Event(created),
        Some(signer.clone()),
    )?;
    log.append(Record::Event(event(
        &id,
        &device_id,
        EventKind::Open,
        Some(0),
        &format_wall(wall0),
    )))?;
    let target_ns = (hours * 3600e9) as i64;
    // The close at the earliest track end: every track then runs to it (each fills to
    // the target and overshoots by less than one of its segments, so closing at the
    // latest end would leave the others short of it, an unexplained gap).
    let mut end_ns = i64::MAX;
    for t in &src_doc.meta.tracks {
        let segs: Vec<&SegmentRecord> = src
            .entries
            .iter()
            .filter_map(|e| match &e.record {
                Record::Segment(s) if s.track == t.name && !s.partial => Some(s),
                _ => None,
            })
            .collect();
        if segs.is_empty() {
            continue;
        }
        std::fs::create_dir_all(dir.track_dir(&t.name))?;
        let (mut seq, mut at) = (1u64, 0i64);
        'fill: loop {
            for s in &segs {
                if at >= target_ns {
                    break 'fill;
                }
                let rel = HearingDir::segment_rel(&t.name, seq);
                std::fs::hard_link(source.join(&s.file), dir.root.join(&rel))?;
                log.append(Record::Segment(SegmentRecord {
                    hearing_id: id.clone(),
                    device_id: device_id.clone(),
                    track: t.name.clone(),
                    seq,
                    file: rel,
                    bytes: s.bytes,
                    sha256: s.sha256.clone(),
                    media_start_ns: at,
                    media_duration_ns: s.media_duration_ns,
                    wall_start: format_wall(wall0 + chrono::Duration::nanoseconds(at)),
                    partial: false,
                }))?;
                at += s.media_duration_ns as i64;
                seq += 1;
            }
        }
        end_ns = end_ns.min(at);
        eprintln!("track {}: {} segments", t.name, seq - 1);
    }
    if end_ns == i64::MAX {
        end_ns = 0;
    }
    log.append(Record::Event(event(
        &id,
        &device_id,
        EventKind::Close,
        Some(end_ns),
        &format_wall(wall0 + chrono::Duration::nanoseconds(end_ns)),
    )))?;
    index.flush()?;
    println!("{id}");
    Ok(())
}
