//! HLS (RFC 8216) media playlists over a track's recorded segments: what review
//! players, `ffplay`, VLC and browsers (with hls.js) play. Pure text from the segment
//! records; nothing here touches HTTP.

use crate::records::SegmentRecord;

/// Media time between two segments that counts as a cut (a recess, an outage):
/// marked `EXT-X-DISCONTINUITY`, so players do not expect continuous timestamps.
const CUT_NS: i64 = 500_000_000;

/// A media playlist of `segs` (in sequence order). `uri` names each segment.
/// `ended`: a VOD playlist with `EXT-X-ENDLIST` (the hearing is closed); otherwise an
/// EVENT playlist that grows while the hearing is recorded. Every segment carries its
/// `EXT-X-PROGRAM-DATE-TIME`, so players know the wall-clock time of every frame.
pub fn media_playlist(
    segs: &[&SegmentRecord],
    uri: impl Fn(&SegmentRecord) -> String,
    ended: bool,
) -> String {
    let target = segs
        .iter()
        .map(|s| (s.media_duration_ns as f64 / 1e9).round() as u64)
        .max()
        .unwrap_or(2)
        .max(1);
    let mut p = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-PLAYLIST-TYPE:{}\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{}\n",
        if ended { "VOD" } else { "EVENT" },
        segs.first().map_or(1, |s| s.seq)
    );
    let mut prev: Option<(i64, i64)> = None;
    for s in segs {
        // A cut in the media, or a new timestamp epoch (see `ts::EPOCH_NS`): players
        // must not expect continuous timestamps.
        if prev.is_some_and(|(end, epoch)| {
            s.media_start_ns.saturating_sub(end) > CUT_NS
                || crate::ts::epoch_of(s.media_start_ns) != epoch
        }) {
            p.push_str("#EXT-X-DISCONTINUITY\n");
        }
        // A comment (players skip it) with the segment's media time: the review page
        // places events by media time, which never jumps when the clock is corrected
        // (`clock_step`), where the wall-clock time may.
        p.push_str(&format!(
            "#COURTREC-MEDIA-MS:{}\n#EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:{:.3},\n{}\n",
            s.media_start_ns / 1_000_000,
            s.wall_start,
            s.media_duration_ns as f64 / 1e9,
            uri(s)
        ));
        prev = Some((
            s.media_start_ns
                .saturating_add(i64::try_from(s.media_duration_ns).unwrap_or(i64::MAX)),
            crate::ts::epoch_of(s.media_start_ns),
        ));
    }
    if ended {
        p.push_str("#EXT-X-ENDLIST\n");
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(seq: u64, start_s: f64, dur_s: f64) -> SegmentRecord {
        SegmentRecord {
            hearing_id: "h".into(),
            device_id: "d".into(),
            track: "cam1".into(),
            seq,
            file: format!("tracks/cam1/{seq:08}.ts"),
            bytes: 1,
            sha256: String::new(),
            media_start_ns: (start_s * 1e9) as i64,
            media_duration_ns: (dur_s * 1e9) as u64,
            wall_start: "2026-11-27T01:30:00.000Z".into(),
            partial: false,
        }
    }

    #[test]
    fn lists_every_segment_once_with_a_cut_at_the_recess() {
        let s = [seg(1, 0.0, 2.0), seg(2, 2.0, 1.5), seg(3, 60.0, 2.0)];
        let refs: Vec<&SegmentRecord> = s.iter().collect();
        let p = media_playlist(&refs, |s| format!("{}.ts", s.seq), true);
        assert_eq!(p.matches("#EXTINF").count(), 3);
        assert_eq!(p.matches("#EXT-X-DISCONTINUITY").count(), 1);
        assert!(p.contains("#EXT-X-PLAYLIST-TYPE:VOD") && p.ends_with("#EXT-X-ENDLIST\n"));
        assert!(p.find("2.ts").unwrap() < p.find("#EXT-X-DISCONTINUITY").unwrap());
        assert!(p.contains("#EXT-X-TARGETDURATION:2\n"));
        let live = media_playlist(&refs, |s| format!("{}.ts", s.seq), false);
        assert!(live.contains("EVENT") && !live.contains("ENDLIST"));
        // Continuous media across a new timestamp epoch (day 2) is cut for players.
        let day = 24.0 * 3600.0;
        let s = [
            seg(1, day - 2.0, 2.0),
            seg(2, day, 2.0),
            seg(3, day + 2.0, 2.0),
        ];
        let refs: Vec<&SegmentRecord> = s.iter().collect();
        let p = media_playlist(&refs, |s| format!("{}.ts", s.seq), true);
        assert_eq!(p.matches("#EXT-X-DISCONTINUITY").count(), 1);
        assert!(p.find("#EXT-X-DISCONTINUITY").unwrap() < p.find("2.ts").unwrap());
    }
}
