//! The media timeline of each track: sequence numbers 1, 2, 3... in manifest order,
//! and media from each run's start to its end, except where a signed event explains a
//! gap (a recess, a device fault, a crash). A track with no media at all where it
//! should have some is *missing*, not a gap.
//!
//! Every sum of times here saturates: the numbers come from untrusted files.

use super::report::{Problem, Report};
use super::{CRASH_LAG_NS, FAULT_LAG_NS, GAP_TOLERANCE_NS, KEYFRAME_WAIT_NS};
use crate::records::{Entry, EventKind, EventRecord, Record, SegmentRecord, TrackKind};
use std::collections::BTreeMap;

/// A span of media time in which a track may lack segments, and why.
struct Excuse {
    from_ns: i64,
    to_ns: i64,
    why: String,
    /// Extra time every track may take to come back after `to_ns` (a restarted
    /// pipeline warms up before the first composite frame).
    settle_ns: i64,
}

pub(crate) fn fmt_t(ns: i64) -> String {
    let ms = ns.max(0) / 1_000_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Per track: sequence numbers contiguous in manifest order, and the media timeline
/// covered from each run's start to its end except where an event explains a gap.
/// `clip` limits the check to a clip's range and `only` to its tracks (in a bundle).
pub(crate) fn check(
    entries: &[&Entry],
    clip: Option<(i64, i64)>,
    only: Option<&[String]>,
    r: &mut Report,
) {
    let Some(meta) = entries.first().and_then(|e| match &e.record {
        Record::Event(ev) => ev.meta.clone(),
        _ => None,
    }) else {
        return;
    };
    let events: Vec<&EventRecord> = entries.iter().filter_map(|e| e.event()).collect();
    // Why media may be missing: before the open, after the close, during recesses,
    // device faults and crashes.
    let mut excuses: Vec<Excuse> = Vec::new();
    let mut open_at: Option<i64> = None;
    let mut close_at: Option<i64> = None;
    let mut recess_from: Option<(i64, &EventRecord)> = None;
    let mut faults: BTreeMap<String, (i64, &EventRecord)> = BTreeMap::new();
    for ev in &events {
        let Some(t) = ev.media_time_ns else { continue };
        match ev.kind {
            EventKind::Open => open_at = open_at.or(Some(t)),
            EventKind::Recess => recess_from = Some((t, ev)),
            EventKind::Resume | EventKind::Close => {
                if let Some((from, rec)) = recess_from.take() {
                    excuses.push(Excuse {
                        settle_ns: 0,
                        from_ns: from,
                        to_ns: t,
                        why: format!(
                            "the recess at {} ({})",
                            fmt_t(from),
                            rec.reason
                                .map(|r| format!("{r:?}").to_lowercase())
                                .unwrap_or_else(|| "no reason".into())
                        ),
                    });
                }
                if ev.kind == EventKind::Close {
                    close_at = Some(t);
                }
            }
            EventKind::Recovery => {
                if let (Some(a), Some(b)) = (ev.gap_from_ns, ev.gap_to_ns) {
                    excuses.push(Excuse {
                        from_ns: a.saturating_sub(CRASH_LAG_NS),
                        to_ns: b,
                        settle_ns: KEYFRAME_WAIT_NS,
                        why: format!(
                            "the recovery event at {} (the recorder was down {} to {})",
                            fmt_t(t),
                            fmt_t(a),
                            fmt_t(b)
                        ),
                    });
                    r.note(
                        None,
                        format!(
                            "recovery at {}: {}",
                            fmt_t(t),
                            ev.text.as_deref().unwrap_or("")
                        ),
                    );
                }
            }
            EventKind::DeviceFault => {
                let src = ev.source.clone().unwrap_or_default();
                faults.entry(src).or_insert((t, ev));
            }
            EventKind::DeviceRestored => {
                let src = ev.source.clone().unwrap_or_default();
                if let Some((from, f)) = faults.remove(&src) {
                    excuses.push(Excuse {
                        settle_ns: 0,
                        from_ns: from.saturating_sub(FAULT_LAG_NS),
                        to_ns: t,
                        why: format!(
                            "the device fault of {src} at {} ({})",
                            fmt_t(from),
                            f.text.as_deref().unwrap_or("")
                        ),
                    });
                }
            }
            _ => {}
        }
    }
    for (src, (from, f)) in faults {
        excuses.push(Excuse {
            settle_ns: 0,
            from_ns: from.saturating_sub(FAULT_LAG_NS),
            to_ns: i64::MAX,
            why: format!(
                "the device fault of {src} at {} ({}), never restored",
                fmt_t(from),
                f.text.as_deref().unwrap_or("")
            ),
        });
    }
    let Some(open_at) = open_at else {
        // Never opened: nothing may have been recorded.
        if entries
            .iter()
            .any(|e| matches!(e.record, Record::Segment(_)))
        {
            r.problem(
                Problem::Modified,
                None,
                "segments are recorded but the hearing was never opened",
            );
        }
        return;
    };
    // Runs start at the open, each resume and each recovery that resumed.
    let run_starts: Vec<i64> = events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::Open | EventKind::Resume | EventKind::Recovery
            )
        })
        .filter_map(|e| match e.kind {
            EventKind::Recovery => e.gap_to_ns,
            _ => e.media_time_ns,
        })
        .collect();
    let end_at = close_at.unwrap_or(i64::MAX);
    let (lo, hi) = clip.unwrap_or((open_at, end_at));
    let (lo, hi) = (lo.max(open_at), hi.min(end_at));

    for track in meta
        .tracks
        .iter()
        .filter(|t| only.is_none_or(|o| o.contains(&t.name)))
    {
        let segs: Vec<&SegmentRecord> = entries
            .iter()
            .filter_map(|e| match &e.record {
                Record::Segment(s) if s.track == track.name => Some(s),
                _ => None,
            })
            .collect();
        let sum = r.tracks.entry(track.name.clone()).or_default();
        sum.segments = segs.len() as u64;
        sum.first_seq = segs.first().map_or(0, |s| s.seq);
        sum.last_seq = segs.last().map_or(0, |s| s.seq);
        sum.bytes = segs.iter().fold(0u64, |a, s| a.saturating_add(s.bytes));
        sum.media_duration_ns = segs
            .iter()
            .fold(0u64, |a, s| a.saturating_add(s.media_duration_ns));
        let first_expected = if clip.is_some() { sum.first_seq } else { 1 };
        for (k, s) in segs.iter().enumerate() {
            let want = first_expected.saturating_add(k as u64);
            if s.seq != want {
                r.problem(
                    Problem::MissingOrReordered,
                    Some(&s.file),
                    format!(
                        "track {}: segment #{} where #{want} should be (numbers must run 1, 2, 3... in order)",
                        track.name, s.seq
                    ),
                );
                break;
            }
        }
        let wait = if track.kind != TrackKind::Audio {
            KEYFRAME_WAIT_NS
        } else {
            GAP_TOLERANCE_NS
        };
        // Walk the timeline: each gap longer than the tolerance needs an excuse.
        let mut cursor = lo;
        // What may be missing: every excuse, and the keyframe wait after each run's
        // start. A gap is explained when these together cover it (a recess may run
        // into a device fault, or a run too short to record anything sit between two).
        let mut covers: Vec<(i64, i64, &str)> = excuses
            .iter()
            .map(|x| {
                (
                    x.from_ns,
                    x.to_ns.saturating_add(wait.max(x.settle_ns)),
                    x.why.as_str(),
                )
            })
            .chain(run_starts.iter().map(|&s| {
                (
                    s.saturating_sub(GAP_TOLERANCE_NS),
                    s.saturating_add(wait),
                    "the wait for the first keyframe of a run",
                )
            }))
            .collect();
        covers.sort_by_key(|c| c.0);
        let check_gap = |from: i64, to: i64, missing: bool, r: &mut Report| {
            if to.saturating_sub(from) <= GAP_TOLERANCE_NS {
                return;
            }
            // Walk the covers in order; the longest stretch none covers decides.
            let (mut cur, mut worst, mut why) = (from, (0i64, from, from), Vec::new());
            for &(a, b, w) in &covers {
                if b <= cur || a >= to {
                    continue;
                }
                if a > cur && a.saturating_sub(cur) > worst.0 {
                    worst = (a.saturating_sub(cur), cur, a);
                }
                if !why.contains(&w) && !w.starts_with("the wait") {
                    why.push(w);
                }
                cur = cur.max(b);
                if cur >= to {
                    break;
                }
            }
            if cur < to && to.saturating_sub(cur) > worst.0 {
                worst = (to.saturating_sub(cur), cur, to);
            }
            if worst.0 <= GAP_TOLERANCE_NS {
                if !why.is_empty() {
                    r.note(
                        None,
                        format!(
                            "track {}: no media from {} to {}, explained by {}",
                            track.name,
                            fmt_t(from),
                            fmt_t(to),
                            why.join(" and ")
                        ),
                    );
                }
            } else if missing {
                r.problem(
                    Problem::MissingOrReordered,
                    None,
                    format!(
                        "track {} is missing: not one of its segments is here, from {} to {} ({:.1} s)",
                        track.name,
                        fmt_t(from),
                        fmt_t(to),
                        to.saturating_sub(from) as f64 / 1e9
                    ),
                );
            } else {
                r.problem(
                    Problem::UnexplainedGap,
                    None,
                    format!(
                        "track {}: no media from {} to {} ({:.1} s), and no event explains it",
                        track.name,
                        fmt_t(worst.1),
                        fmt_t(worst.2),
                        worst.0 as f64 / 1e9
                    ),
                );
            }
        };
        let mut in_range = 0usize;
        for s in &segs {
            let start = s.media_start_ns;
            let end = start.saturating_add(i64::try_from(s.media_duration_ns).unwrap_or(i64::MAX));
            if end <= lo || start >= hi {
                continue;
            }
            in_range += 1;
            check_gap(cursor, start, false, r);
            cursor = cursor.max(end);
        }
        if hi != i64::MAX {
            check_gap(cursor, hi, in_range == 0, r);
        }
    }
}
