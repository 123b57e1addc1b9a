//! An MPEG-TS writer (ISO/IEC 13818-1) for recorded segments.
//!
//! Why our own and not GStreamer's `mpegtsmux`: every segment must be a file that plays
//! on its own (it starts with PAT, PMT and a keyframe), timestamps must be on the
//! hearing's media timeline (not the pipeline's, which grows with the box's uptime and
//! would wrap after ~26 h), and the bytes must pass through our hasher as they are
//! written. Owning these ~200 lines makes all three simple and testable; `ffprobe`
//! checks the result in the integration tests.

/// Ticks per second of MPEG-TS timestamps.
pub const CLOCK_HZ: i64 = 90_000;
const PACKET: usize = 188;
const PMT_PID: u16 = 0x1000;
const FIRST_ES_PID: u16 = 0x100;
pub use crate::archive::ts::PTS_OFFSET_90K;
/// How far the PCR runs ahead of (below) the DTS: the decoder's buffering time.
const PCR_DELAY_90K: i64 = CLOCK_HZ / 10;

pub use crate::media::StreamType;

/// MPEG-TS stream_type of a kind (ISO/IEC 13818-1 table 2-34).
fn ts_type(k: StreamType) -> u8 {
    match k {
        StreamType::H264 => 0x1b,
        StreamType::AacAdts => 0x0f,
    }
}

/// PES stream_id of a kind.
fn stream_id(k: StreamType) -> u8 {
    match k {
        StreamType::H264 => 0xe0,
        StreamType::AacAdts => 0xc0,
    }
}

#[derive(Debug)]
struct Stream {
    kind: StreamType,
    pid: u16,
    cc: u8,
}

/// Writes TS packets into a byte buffer. The first stream carries the PCR.
#[derive(Debug)]
pub struct TsMuxer {
    streams: Vec<Stream>,
    pat_cc: u8,
    pmt_cc: u8,
}

impl TsMuxer {
    pub fn new(kinds: &[StreamType]) -> TsMuxer {
        TsMuxer {
            streams: kinds
                .iter()
                .enumerate()
                .map(|(i, &kind)| Stream {
                    kind,
                    pid: FIRST_ES_PID + i as u16,
                    cc: 0,
                })
                .collect(),
            pat_cc: 0,
            pmt_cc: 0,
        }
    }

    /// PAT and PMT: written at the start of every segment so it decodes alone.
    pub fn write_tables(&mut self, out: &mut Vec<u8>) {
        // PAT: one program (1) whose PMT is on PMT_PID.
        let mut pat = vec![
            0x00, // table_id
            0xb0,
            0x0d, // section_syntax_indicator, section_length = 13
            0x00,
            0x01, // transport_stream_id
            0xc1, // version 0, current_next
            0x00,
            0x00, // section numbers
            0x00,
            0x01, // program_number 1
            0xe0 | (PMT_PID >> 8) as u8,
            (PMT_PID & 0xff) as u8,
        ];
        push_crc(&mut pat);
        write_section(out, 0, &mut self.pat_cc, &pat);

        let pcr_pid = self.streams.first().map(|s| s.pid).unwrap_or(0x1fff);
        let mut pmt = vec![
            0x02,
            0xb0,
            0x00, // table_id, section length filled below
            0x00,
            0x01, // program_number
            0xc1,
            0x00,
            0x00,
            0xe0 | (pcr_pid >> 8) as u8,
            (pcr_pid & 0xff) as u8,
            0xf0,
            0x00, // program_info_length 0
        ];
        for s in &self.streams {
            pmt.extend_from_slice(&[
                ts_type(s.kind),
                0xe0 | (s.pid >> 8) as u8,
                (s.pid & 0xff) as u8,
                0xf0,
                0x00,
            ]);
        }
        let section_len = pmt.len() - 3 + 4; // after the length field, plus CRC
        pmt[1] = 0xb0 | ((section_len >> 8) as u8 & 0x0f);
        pmt[2] = (section_len & 0xff) as u8;
        push_crc(&mut pmt);
        write_section(out, PMT_PID, &mut self.pmt_cc, &pmt);
    }

    /// Writes one frame (access unit) of stream `idx` as a PES packet.
    /// `pts_90k`/`dts_90k` are what the segment carries: media time within the
    /// segment's epoch, offset added (`archive::ts::pts_90k`).
    pub fn write_frame(
        &mut self,
        out: &mut Vec<u8>,
        idx: usize,
        pts_90k: i64,
        dts_90k: Option<i64>,
        keyframe: bool,
        data: &[u8],
    ) {
        let Some(stream) = self.streams.get_mut(idx) else {
            return;
        };
        // Callers pass timestamps with the epoch applied and the offset added
        // (`archive::ts::pts_90k`); a 33-bit field keeps its low bits.
        let pts = pts_90k.max(0);
        let dts = dts_90k.map(|d| d.max(0)).filter(|&d| d != pts);
        let mut pes = Vec::with_capacity(data.len() + 19);
        pes.extend_from_slice(&[0, 0, 1, stream_id(stream.kind)]);
        let header_len = if dts.is_some() { 10 } else { 5 };
        let pes_len = 3 + header_len + data.len();
        // Video PES may be longer than 65535 bytes: length 0 means "unbounded".
        let len_field = if stream.kind == StreamType::H264 || pes_len > 0xffff {
            0
        } else {
            pes_len
        };
        pes.extend_from_slice(&[(len_field >> 8) as u8, (len_field & 0xff) as u8]);
        pes.push(0x84); // marker bits, data_alignment_indicator
        pes.push(if dts.is_some() { 0xc0 } else { 0x80 });
        pes.push(header_len as u8);
        put_ts(&mut pes, if dts.is_some() { 0x3 } else { 0x2 }, pts);
        if let Some(d) = dts {
            put_ts(&mut pes, 0x1, d);
        }
        pes.extend_from_slice(data);

        let is_pcr_stream = idx == 0;
        let pcr = if is_pcr_stream {
            Some((dts.unwrap_or(pts) - PCR_DELAY_90K).max(0))
        } else {
            None
        };
        let mut rest: &[u8] = &pes;
        let mut first = true;
        while !rest.is_empty() {
            let mut pkt = [0xffu8; PACKET];
            pkt[0] = 0x47;
            pkt[1] = (if first { 0x40 } else { 0 }) | (stream.pid >> 8) as u8 & 0x1f;
            pkt[2] = (stream.pid & 0xff) as u8;
            // Adaptation field: PCR and random-access flag on the first packet, and
            // stuffing on the last one when the payload does not fill it.
            let mut af: Vec<u8> = Vec::new();
            if first && (pcr.is_some() || keyframe) {
                let mut flags = 0u8;
                if keyframe {
                    flags |= 0x40;
                }
                if pcr.is_some() {
                    flags |= 0x10;
                }
                af.push(flags);
                if let Some(p) = pcr {
                    let base = p as u64;
                    af.extend_from_slice(&[
                        (base >> 25) as u8,
                        (base >> 17) as u8,
                        (base >> 9) as u8,
                        (base >> 1) as u8,
                        (((base & 1) << 7) as u8) | 0x7e,
                        0x00,
                    ]);
                }
            }
            let room = PACKET - 4 - if af.is_empty() { 0 } else { 1 + af.len() };
            let take;
            if rest.len() >= room {
                take = room;
            } else {
                take = rest.len();
                // Pad with adaptation-field stuffing so the packet is exactly 188 bytes.
                let needed = PACKET - 4 - take; // bytes for the whole adaptation field
                if af.is_empty() {
                    if needed >= 2 {
                        af.push(0x00);
                        af.resize(needed - 1, 0xff);
                    }
                    // needed == 1: a zero-length adaptation field (only its length byte)
                } else {
                    af.resize(needed - 1, 0xff);
                }
            }
            let has_af = !af.is_empty() || (take < room && PACKET - 4 - take == 1);
            pkt[3] = (if has_af { 0x30 } else { 0x10 }) | (stream.cc & 0x0f);
            stream.cc = stream.cc.wrapping_add(1) & 0x0f;
            let mut o = 4;
            if has_af {
                pkt[4] = af.len() as u8;
                pkt[5..5 + af.len()].copy_from_slice(&af);
                o = 5 + af.len();
            }
            pkt[o..o + take].copy_from_slice(&rest[..take]);
            debug_assert_eq!(o + take, PACKET);
            out.extend_from_slice(&pkt);
            rest = &rest[take..];
            first = false;
        }
    }
}

fn put_ts(out: &mut Vec<u8>, prefix: u8, ts: i64) {
    let ts = ts as u64 & 0x1_ffff_ffff;
    out.push((prefix << 4) | (((ts >> 30) as u8 & 0x07) << 1) | 1);
    out.push((ts >> 22) as u8);
    out.push((((ts >> 15) as u8) << 1) | 1);
    out.push((ts >> 7) as u8);
    out.push(((ts as u8) << 1) | 1);
}

fn write_section(out: &mut Vec<u8>, pid: u16, cc: &mut u8, section: &[u8]) {
    let mut pkt = [0xffu8; PACKET];
    pkt[0] = 0x47;
    pkt[1] = 0x40 | (pid >> 8) as u8 & 0x1f;
    pkt[2] = (pid & 0xff) as u8;
    pkt[3] = 0x10 | (*cc & 0x0f);
    *cc = cc.wrapping_add(1) & 0x0f;
    pkt[4] = 0; // pointer_field
    pkt[5..5 + section.len()].copy_from_slice(section);
    out.extend_from_slice(&pkt);
}

/// CRC-32/MPEG-2 (polynomial 0x04C11DB7, no reflection), appended big-endian.
fn push_crc(section: &mut Vec<u8>) {
    let mut crc: u32 = 0xffff_ffff;
    for &b in section.iter() {
        crc ^= (b as u32) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    section.extend_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::ts;

    #[test]
    fn crc_of_known_pat() {
        // The PAT every ffmpeg-written TS carries (program 1 on PID 0x1000) ends in 2AB104B2.
        let mut pat = vec![
            0x00, 0xb0, 0x0d, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00, 0x01, 0xf0, 0x00,
        ];
        push_crc(&mut pat);
        assert_eq!(&pat[12..], &[0x2a, 0xb1, 0x04, 0xb2]);
    }

    #[test]
    fn packets_are_whole_and_timestamps_read_back() {
        let mut m = TsMuxer::new(&[StreamType::H264, StreamType::AacAdts]);
        let mut out = Vec::new();
        m.write_tables(&mut out);
        for (i, len) in [1usize, 170, 183, 184, 185, 2000, 70_000]
            .iter()
            .enumerate()
        {
            let data = vec![0xab; *len];
            let t = PTS_OFFSET_90K + i as i64 * 6000;
            m.write_frame(&mut out, 0, t, None, i == 0, &data);
            m.write_frame(
                &mut out,
                1,
                t + 10,
                None,
                false,
                &data[..len.min(&500).to_owned()],
            );
        }
        assert_eq!(out.len() % PACKET, 0);
        let s = ts::summarize(&out);
        assert_eq!(s.bad_sync, 0);
        let (pid, v) = s.main_pid().unwrap();
        assert_eq!(pid, FIRST_ES_PID);
        assert_eq!(v.pes_count, 7);
        assert_eq!(v.random_access_count, 1);
        assert_eq!(v.first_pts_90k, PTS_OFFSET_90K);
        assert_eq!(v.last_pts_90k, PTS_OFFSET_90K + 36_000);
        assert_eq!(
            s.pids[&(FIRST_ES_PID + 1)].first_pts_90k,
            PTS_OFFSET_90K + 10
        );
    }
}
