//! Test fixtures shared by the recording's unit tests.

use crate::archive::records::{
    EventKind, EventRecord, HearingMeta, TrackInfo, TrackKind, Visibility,
};

/// The one camera track (cam1) of the test hearing.
pub(crate) fn cam1() -> TrackInfo {
    TrackInfo {
        name: "cam1".into(),
        kind: TrackKind::Video,
        role: "judge".into(),
        label: String::new(),
    }
}

/// The `created` event of test hearing "h1" on device "d", with the track cam1.
pub(crate) fn created_h1() -> EventRecord {
    let mut created = EventRecord::new(
        "h1",
        "d",
        EventKind::Created,
        "2026-01-01T00:00:00.000Z".into(),
    );
    created.meta = Some(HearingMeta {
        case_number: "1".into(),
        title: "t".into(),
        courtroom: "c".into(),
        visibility: Visibility::Public,
        scheduled_start: None,
        tracks: vec![cam1()],
    });
    created
}
