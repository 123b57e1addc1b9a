//! Wall-clock time on a hearing's media timeline.
//!
//! Media time is counted by the box's monotonic clock; the wall-clock time of any
//! moment of a hearing is an *anchor* (the wall-clock time of media time 0) plus its
//! media time. The open sets the anchor (its event's wall time minus its media time);
//! a `clock_step` event moves it from its media time on, by the step. Resume events
//! carry the anchor in force. The recorder stamps segments, the capture burns the time
//! into the picture, recovery resumes and the verifier checks, all with this one rule,
//! so a clock corrected in the middle of a hearing leaves times that agree with each
//! other and a signed event that says by how much and when.

use crate::records::{EventKind, EventRecord};

/// Unix ns of an RFC 3339 time, as the manifest writes them.
pub fn parse_wall_ns(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()?
        .timestamp_nanos_opt()
}

/// Does this event set the anchor?
fn anchors(ev: &EventRecord) -> bool {
    matches!(
        ev.kind,
        EventKind::Open | EventKind::Resume | EventKind::ClockStep
    )
}

/// A hearing's anchors, read once: (media time from which it holds, anchor), in
/// manifest order.
pub struct Anchors(Vec<(i64, i64)>);

impl Anchors {
    pub fn of<'a>(events: impl IntoIterator<Item = &'a EventRecord>) -> Anchors {
        Anchors(
            events
                .into_iter()
                .filter(|e| anchors(e))
                .filter_map(|e| Some((e.media_time_ns?, parse_wall_ns(&e.wall_time)?)))
                .map(|(t, w)| (t, w.saturating_sub(t)))
                .collect(),
        )
    }

    /// The anchor in force at `media_ns`: the last anchoring event (in manifest order)
    /// at or before it. `None` before the open.
    pub fn at(&self, media_ns: i64) -> Option<i64> {
        let mut anchor = None;
        for (from, a) in &self.0 {
            if *from <= media_ns {
                anchor = Some(*a);
            }
        }
        anchor
    }
}

/// [`Anchors::at`] for one lookup.
pub fn anchor_ns<'a>(
    events: impl IntoIterator<Item = &'a EventRecord>,
    media_ns: i64,
) -> Option<i64> {
    Anchors::of(events).at(media_ns)
}

/// The latest anchor of a hearing (what recording goes on with).
pub fn latest_anchor_ns<'a>(events: impl IntoIterator<Item = &'a EventRecord>) -> Option<i64> {
    anchor_ns(events, i64::MAX)
}

/// The media time a wall-clock time names, read with the anchor in force where it
/// falls. A time the clock showed twice (it was set back) is its later occurrence; a
/// time it skipped (set forward) is where the skip happened. `None` before the open.
pub fn media_of_wall<'a>(
    events: impl IntoIterator<Item = &'a EventRecord>,
    wall_ns: i64,
) -> Option<i64> {
    let spans = Anchors::of(events).0;
    let first = spans.first()?;
    for (i, (from, anchor)) in spans.iter().enumerate().rev() {
        let m = wall_ns.saturating_sub(*anchor);
        if m >= *from && spans.get(i + 1).is_none_or(|next| m < next.0) {
            return Some(m);
        }
    }
    let skipped = spans
        .iter()
        .find(|(from, anchor)| wall_ns < anchor.saturating_add(*from))
        .map(|(from, _)| *from);
    Some(match skipped {
        Some(from) if from > first.0 => from,
        _ => wall_ns.saturating_sub(first.1),
    })
}

/// A step as people read it: "+1 h 0 min 0.0 s", "-10 min 0.0 s", "+2.5 s".
pub fn fmt_step(step_ms: i64) -> String {
    let sign = if step_ms < 0 { '-' } else { '+' };
    // Rounded to the tenth of a second shown first (3599.96 s reads "1 h 0 min 0.0 s").
    let ms = step_ms.unsigned_abs().saturating_add(50) / 100 * 100;
    let (h, m, s) = (
        ms / 3_600_000,
        ms / 60_000 % 60,
        (ms % 60_000) as f64 / 1000.0,
    );
    match (h, m) {
        (0, 0) => format!("{sign}{s:.1} s"),
        (0, _) => format!("{sign}{m} min {s:.1} s"),
        _ => format!("{sign}{h} h {m} min {s:.1} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventKind, wall: &str, media_s: i64) -> EventRecord {
        let mut e = EventRecord::new("h", "d", kind, wall.to_string());
        e.media_time_ns = Some(media_s * 1_000_000_000);
        e
    }

    #[test]
    fn a_step_moves_the_anchor_from_its_media_time_on() {
        let open = ev(EventKind::Open, "2026-12-01T09:00:00.000Z", 0);
        let mark = ev(EventKind::Mark, "2026-12-01T09:00:10.500Z", 10);
        let step = ev(EventKind::ClockStep, "2026-12-01T10:00:20.000Z", 20);
        let events = [open, mark, step];
        let base = parse_wall_ns("2026-12-01T09:00:00.000Z").unwrap();
        // A mark's wall time (read separately from the clock) never moves the anchor.
        assert_eq!(anchor_ns(&events, 15_000_000_000), Some(base));
        assert_eq!(anchor_ns(&events, 19_999_999_999), Some(base));
        assert_eq!(
            anchor_ns(&events, 20_000_000_000),
            Some(base + 3_600_000_000_000)
        );
        assert_eq!(latest_anchor_ns(&events), Some(base + 3_600_000_000_000));
        assert_eq!(anchor_ns(&events[1..], 15_000_000_000), None);
    }

    #[test]
    fn wall_times_map_back_through_the_steps() {
        let ns = |s: i64| s * 1_000_000_000;
        let events = [
            ev(EventKind::Open, "2026-12-01T09:00:00.000Z", 0),
            ev(EventKind::ClockStep, "2026-12-01T10:00:20.000Z", 20),
            ev(EventKind::ClockStep, "2026-12-01T09:50:40.000Z", 40),
        ];
        let at = |w: &str| media_of_wall(&events, parse_wall_ns(w).unwrap());
        assert_eq!(at("2026-12-01T09:00:10.000Z"), Some(ns(10)));
        // Skipped by the step forward: where the step happened.
        assert_eq!(at("2026-12-01T09:30:00.000Z"), Some(ns(20)));
        // Set back by 10 min at 40 s: what the clock showed from 09:50:40 to 10:00:40
        // (at 20-40 s, and before the step forward) it shows again from 40 s on: the
        // later occurrence.
        assert_eq!(at("2026-12-01T09:50:45.000Z"), Some(ns(45)));
        assert_eq!(at("2026-12-01T10:00:25.000Z"), Some(ns(625)));
        assert_eq!(at("2026-12-01T09:00:05.000Z"), Some(ns(5)));
        assert_eq!(media_of_wall(&events[..0], 0), None);
    }

    #[test]
    fn steps_read_in_plain_units() {
        assert_eq!(fmt_step(3_600_000), "+1 h 0 min 0.0 s");
        assert_eq!(fmt_step(-600_000), "-10 min 0.0 s");
        assert_eq!(fmt_step(2_500), "+2.5 s");
        assert_eq!(fmt_step(3_599_987), "+1 h 0 min 0.0 s");
        assert_eq!(fmt_step(-59_960), "-1 min 0.0 s");
    }
}
