//! Fills an archive server's index for `scripts/bench-archive`:
//! `synth_archive_index DATA_DIR COURTROOMS HEARINGS_PER_COURTROOM`.
//!
//! Writes what the archive server's scan writes for each hearing it finds in the
//! bucket (a record derived from a manifest, under a qualified id `room-N~<id>`),
//! without the bucket: making a court's hundred thousand hearings through a store on
//! a 2-core machine would take far longer than searching them. Run it with the
//! archive server stopped.

use courtrec::archive::index::{HearingDoc, Index};
use courtrec::archive::records::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: synth_archive_index DATA_DIR COURTROOMS HEARINGS_PER_COURTROOM");
        std::process::exit(2);
    }
    let data = courtrec::archive::DataDir::mirrored(&args[1]);
    data.init()?;
    let rooms: usize = args[2].parse()?;
    let per: usize = args[3].parse()?;
    let index = Index::open(&data.index())?;
    let base =
        chrono::DateTime::parse_from_rfc3339("2025-01-06T01:30:00Z")?.with_timezone(&chrono::Utc);
    let tracks = vec![
        TrackInfo {
            name: "composite".into(),
            kind: TrackKind::Composite,
            role: "composite".into(),
            label: "Composite".into(),
        },
        TrackInfo {
            name: "cam1".into(),
            kind: TrackKind::Video,
            role: "judge".into(),
            label: "Judge".into(),
        },
    ];
    for r in 0..rooms {
        for i in 0..per {
            let n = r * per + i;
            let id = format!("2025{:04}-{:06}-{:06x}", 101 + (i % 300), r, n);
            let wall = format_wall(base + chrono::Duration::minutes((i * 97 + r) as i64));
            let dev = format!("dev-room{r}");
            let mut created = EventRecord::new(&id, &dev, EventKind::Created, wall.clone());
            created.meta = Some(HearingMeta {
                case_number: format!("(2025)A{:04}民初{}号", r + 1, 1000 + i),
                title: format!("hearing {i} of courtroom {r}: contract dispute"),
                courtroom: format!("room-{r}"),
                visibility: if i % 10 == 0 {
                    Visibility::Sealed
                } else {
                    Visibility::Public
                },
                scheduled_start: Some(wall.clone()),
                tracks: tracks.clone(),
            });
            let mut open = EventRecord::new(&id, &dev, EventKind::Open, wall.clone());
            open.media_time_ns = Some(0);
            let mut close = EventRecord::new(&id, &dev, EventKind::Close, wall.clone());
            close.media_time_ns = Some(3_600_000_000_000);
            let entries: Vec<Entry> = [created, open, close]
                .into_iter()
                .enumerate()
                .map(|(k, e)| Entry {
                    n: k as u64,
                    prev: String::new(),
                    record: Record::Event(e),
                })
                .collect();
            let mut doc = HearingDoc::from_entries(&entries)?;
            doc.id = format!("room-{r}~{id}");
            index.put_hearing(&doc)?;
        }
        eprintln!("{} courtroom(s)", r + 1);
    }
    index.flush()?;
    Ok(())
}
