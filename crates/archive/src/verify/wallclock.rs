//! The wall-clock times of segments against the media timeline (see
//! [`crate::wallclock`]): each segment's `wall_start` must be the anchor in force at
//! its media time plus that media time. A `clock_step` event explains a change of
//! anchor and is reported so a reader knows why the times jump; a segment whose time
//! agrees with no anchor is noted (its wall-clock time is not what the box's clock
//! said when it was recorded, or the clock moved and nothing logged it).
//!
//! These are notes, not problems: the media and its order are checked elsewhere; this
//! says how far a displayed time of day can be trusted.

use super::report::Report;
use super::timeline::fmt_t;
use crate::records::{Entry, EventKind, EventRecord, Record};
use crate::wallclock::{Anchors, fmt_step, parse_wall_ns};
use std::collections::BTreeMap;

/// How far a segment's wall time may stray from its anchor: the manifest keeps
/// milliseconds, and a step smaller than a second is not one (`clock_step`).
const TOLERANCE_NS: i64 = 1_000_000_000;

/// Disagreements reported one by one per track before they are only counted.
const NOTES_PER_TRACK: usize = 3;

pub(crate) fn check(entries: &[&Entry], r: &mut Report) {
    let events: Vec<&EventRecord> = entries.iter().filter_map(|e| e.event()).collect();
    for ev in events.iter().filter(|e| e.kind == EventKind::ClockStep) {
        let step = ev
            .step_ms
            .map_or_else(|| "an unknown amount".into(), fmt_step);
        r.note(
            None,
            format!(
                "the box's clock was corrected by {step} at {} (clock_step event, {}): times of day after it, in the files and burned into the picture, follow the corrected clock",
                ev.media_time_ns.map_or_else(|| "?".into(), fmt_t),
                ev.wall_time
            ),
        );
    }
    let anchors = Anchors::of(events.iter().copied());
    let mut off: BTreeMap<&str, usize> = BTreeMap::new();
    for e in entries {
        let Record::Segment(s) = &e.record else {
            continue;
        };
        let (Some(anchor), Some(wall)) =
            (anchors.at(s.media_start_ns), parse_wall_ns(&s.wall_start))
        else {
            continue;
        };
        let diff_ns = wall.saturating_sub(anchor.saturating_add(s.media_start_ns));
        if diff_ns.abs() <= TOLERANCE_NS {
            continue;
        }
        let n = off.entry(s.track.as_str()).or_insert(0);
        *n += 1;
        if *n <= NOTES_PER_TRACK {
            r.note(
                Some(&s.file),
                format!(
                    "the wall-clock time of {} segment {} ({}) is {} off what its media time {} gives, and no clock_step event explains it: its time of day may be wrong",
                    s.track,
                    s.seq,
                    s.wall_start,
                    fmt_step(diff_ns / 1_000_000),
                    fmt_t(s.media_start_ns)
                ),
            );
        }
    }
    for (track, n) in off {
        if n > NOTES_PER_TRACK {
            r.note(
                None,
                format!("{track}: {n} segments in all have wall-clock times no event explains"),
            );
        }
    }
}
