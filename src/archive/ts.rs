//! A small MPEG-TS reader: enough to find the timestamps of the frames in a segment,
//! which recovery needs for a segment cut off by a crash (no manifest line says its
//! media time) and which checks use to compare the manifest with the files.
//! It does not decode media; `ffprobe` does that in the tests.

use std::collections::BTreeMap;

pub const PACKET_BYTES: usize = 188;
/// Ticks per second of MPEG-TS timestamps.
pub const CLOCK_HZ: i64 = 90_000;

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
