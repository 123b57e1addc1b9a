//! A small MPEG-TS reader: enough to find the timestamps of the frames in a segment,
//! which recovery needs for a segment cut off by a crash (no manifest line says its
//! media time) and which checks use to compare the manifest with the files.
//! It does not decode media; `ffprobe` does that in the tests.

use std::collections::BTreeMap;

pub const PACKET_BYTES: usize = 188;
/// Ticks per second of MPEG-TS timestamps.
pub const CLOCK_HZ: i64 = 90_000;

/// Timestamps in segments are media time within an *epoch* of this length, plus
/// [`PTS_OFFSET_90K`]. A 33-bit PTS wraps after 26.5 hours, and a hearing held over
/// several days (overnight recesses count on its timeline) runs far past that: each
/// segment takes the epoch its first frame falls in and keeps it to its end (a 2 s
/// segment never reaches the wrap), and playlists mark a discontinuity where the epoch
/// changes, as players expect. The manifest keeps full media time in nanoseconds.
pub const EPOCH_NS: i64 = 24 * 3600 * 1_000_000_000;
/// Added to every timestamp, so that a PCR a little before the first PTS, or a DTS
/// a frame before its segment's start, is still positive.
pub const PTS_OFFSET_90K: i64 = CLOCK_HZ;

/// The epoch media time `media_ns` falls in.
pub fn epoch_of(media_ns: i64) -> i64 {
    media_ns.div_euclid(EPOCH_NS)
}

/// The 90 kHz timestamp written for media time `media_ns` in a segment of `epoch`
/// (widened: `ns * 90_000` overflows an `i64` after 28.4 hours).
pub fn pts_90k(media_ns: i64, epoch: i64) -> i64 {
    let rel = i128::from(media_ns) - i128::from(epoch) * i128::from(EPOCH_NS);
    (rel * i128::from(CLOCK_HZ) / 1_000_000_000) as i64 + PTS_OFFSET_90K
}

/// Media time of a timestamp read from a segment of `epoch`.
pub fn media_ns(pts_90k: i64, epoch: i64) -> i64 {
    let rel = i128::from(pts_90k - PTS_OFFSET_90K) * 1_000_000_000 / i128::from(CLOCK_HZ);
    (rel + i128::from(epoch) * i128::from(EPOCH_NS)).clamp(i64::MIN as i128, i64::MAX as i128)
        as i64
}

/// Media time of a timestamp read from a segment whose epoch is unknown (one cut off
/// by a crash), taking the epoch that puts it nearest to `near_ns` (where the track
/// was last known to be).
pub fn media_ns_near(pts_90k: i64, near_ns: i64) -> i64 {
    let e = epoch_of(near_ns);
    [e - 1, e, e + 1]
        .into_iter()
        .map(|k| media_ns(pts_90k, k))
        .min_by_key(|&m| (i128::from(m) - i128::from(near_ns)).abs())
        .unwrap_or(near_ns)
}

/// Timestamps seen on one PID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidSummary {
    pub first_pts_90k: i64,
    pub last_pts_90k: i64,
    /// Smallest and largest PTS (they differ from first/last when frames are reordered).
    pub min_pts_90k: i64,
    pub max_pts_90k: i64,
    pub pes_count: u64,
    /// PES packets flagged as random access points (keyframes).
    pub random_access_count: u64,
}

#[derive(Debug, Clone, Default)]
pub struct TsSummary {
    pub packets: u64,
    /// Bytes after the last whole packet (a write cut short by a crash).
    pub trailing_bytes: u64,
    /// Packets that did not start with the sync byte.
    pub bad_sync: u64,
    pub pids: BTreeMap<u16, PidSummary>,
}

impl TsSummary {
    /// The PID of the first elementary stream (lowest PID that carries PES).
    pub fn main_pid(&self) -> Option<(u16, PidSummary)> {
        self.pids.iter().next().map(|(k, v)| (*k, *v))
    }
}

fn read_pts(b: &[u8]) -> i64 {
    (((b[0] as i64 >> 1) & 0x07) << 30)
        | ((b[1] as i64) << 22)
        | (((b[2] as i64) >> 1) << 15)
        | ((b[3] as i64) << 7)
        | ((b[4] as i64) >> 1)
}

/// Summarises the PES timestamps in MPEG-TS bytes.
pub fn summarize(data: &[u8]) -> TsSummary {
    let mut s = TsSummary {
        trailing_bytes: (data.len() % PACKET_BYTES) as u64,
        ..Default::default()
    };
    for pkt in data.chunks_exact(PACKET_BYTES) {
        s.packets += 1;
        if pkt[0] != 0x47 {
            s.bad_sync += 1;
            continue;
        }
        let pusi = pkt[1] & 0x40 != 0;
        let pid = (((pkt[1] & 0x1f) as u16) << 8) | pkt[2] as u16;
        let afc = (pkt[3] >> 4) & 0x03;
        let mut off = 4usize;
        let mut random_access = false;
        if afc & 0x02 != 0 {
            let af_len = pkt[4] as usize;
            if af_len > 0 && 5 < PACKET_BYTES {
                random_access = pkt[5] & 0x40 != 0;
            }
            off = 5 + af_len;
        }
        if afc & 0x01 == 0 || off + 14 > PACKET_BYTES || !pusi || pid == 0 {
            continue;
        }
        let p = &pkt[off..];
        if p[0] != 0 || p[1] != 0 || p[2] != 1 {
            continue; // a section (PAT/PMT), not a PES
        }
        let pts_dts_flags = p[7] >> 6;
        if pts_dts_flags & 0x02 == 0 {
            continue;
        }
        let pts = read_pts(&p[9..14]);
        let e = s.pids.entry(pid).or_insert(PidSummary {
            first_pts_90k: pts,
            last_pts_90k: pts,
            min_pts_90k: pts,
            max_pts_90k: pts,
            pes_count: 0,
            random_access_count: 0,
        });
        e.last_pts_90k = pts;
        e.min_pts_90k = e.min_pts_90k.min(pts);
        e.max_pts_90k = e.max_pts_90k.max(pts);
        e.pes_count += 1;
        if random_access {
            e.random_access_count += 1;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_of_a_three_day_hearing_stay_in_33_bits_and_map_back() {
        let h = 3_600_000_000_000i64;
        for media in [
            0,
            5 * h,
            24 * h - 1_000_000,
            24 * h,
            26 * h + 1,
            28 * h + 500_000_000,
            72 * h,
            100 * h,
        ] {
            let e = epoch_of(media);
            let pts = pts_90k(media, e);
            assert!(
                (PTS_OFFSET_90K..(1i64 << 33) - 2 * 3600 * CLOCK_HZ).contains(&pts),
                "{media}: {pts}"
            );
            assert!((media_ns(pts, e) - media).abs() < 20_000, "{media}");
            assert!(
                (media_ns_near(pts, media - 30_000_000_000) - media).abs() < 20_000,
                "{media}"
            );
            // A segment that starts just before an epoch's end keeps its epoch: 2 s more
            // is still far from the wrap.
            assert!(pts_90k(media + 2_000_000_000, e) < 1i64 << 33);
        }
        assert_eq!(
            epoch_of(-1),
            -1,
            "before the origin (never in practice) stays defined"
        );
    }
}
