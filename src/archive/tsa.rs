//! RFC 3161 trusted timestamps over checkpoints: the request a box sends, and what the
//! verifier reads from a stored reply (`checkpoints/<size>.tsr`, the TSA's whole
//! TimeStampResp, which `openssl ts -reply -in` and `openssl ts -verify` read as is).
//!
//! A token binds the SHA-256 of the checkpoint note's bytes to the TSA's time: a
//! manifest rebuilt and re-signed later, even with the device's own key, cannot carry
//! a token from before. The verifier checks the imprint and reads the time here; the
//! TSA's signature is checked by `openssl ts -verify` against the court's TSA
//! certificate (`--tsa-ca`), a standard tool the court's expert already trusts.
//!
//! Only the few DER shapes needed are handled, by hand (no ASN.1 dependency).

use sha2::{Digest, Sha256};

/// DER of OID 2.16.840.1.101.3.4.2.1 (SHA-256), with its tag and length.
const SHA256_OID: [u8; 11] = [
    0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
];

fn der_len(n: usize) -> Vec<u8> {
    if n < 0x80 {
        vec![n as u8]
    } else if n < 0x100 {
        vec![0x81, n as u8]
    } else {
        vec![0x82, (n >> 8) as u8, n as u8]
    }
}

fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend(der_len(body.len()));
    v.extend_from_slice(body);
    v
}

/// A TimeStampReq (RFC 3161 2.4.1) for `data`: version 1, SHA-256 imprint, a nonce,
/// and certReq so the token carries the TSA's certificate.
pub fn request(data: &[u8], nonce: u64) -> Vec<u8> {
    let digest = Sha256::digest(data);
    let mut alg = SHA256_OID.to_vec();
    alg.extend([0x05, 0x00]);
    let mut imprint = tlv(0x30, &alg);
    imprint.extend(tlv(0x04, &digest));
    let mut body = tlv(0x02, &[0x01]);
    body.extend(tlv(0x30, &imprint));
    // A positive INTEGER: a leading zero byte keeps the top bit clear.
    let mut n = vec![0x00];
    n.extend(nonce.to_be_bytes());
    body.extend(tlv(0x02, &n));
    body.extend(tlv(0x01, &[0xff]));
    tlv(0x30, &body)
}

/// Reads one TLV at `pos`: (tag, start of value, end of value).
fn read_tlv(der: &[u8], pos: usize) -> Option<(u8, usize, usize)> {
    let tag = *der.get(pos)?;
    let first = *der.get(pos + 1)? as usize;
    let (len, hdr) = if first < 0x80 {
        (first, 2)
    } else {
        let k = first & 0x7f;
        if k == 0 || k > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..k {
            len = (len << 8) | *der.get(pos + 2 + i)? as usize;
        }
        (len, 2 + k)
    };
    let start = pos + hdr;
    let end = start.checked_add(len)?;
    (end <= der.len()).then_some((tag, start, end))
}

/// The PKIStatus of a TimeStampResp: 0 granted, 1 granted with modifications, 2+
/// refused. None if it is not a TimeStampResp.
pub fn response_status(der: &[u8]) -> Option<u64> {
    let (t, s, _) = read_tlv(der, 0)?;
    if t != 0x30 {
        return None;
    }
    let (t, si, _) = read_tlv(der, s)?;
    if t != 0x30 {
        return None;
    }
    let (t, vs, ve) = read_tlv(der, si)?;
    if t != 0x02 || ve - vs > 8 {
        return None;
    }
    Some(der[vs..ve].iter().fold(0u64, |a, b| (a << 8) | *b as u64))
}

/// What a stored token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// The SHA-256 the TSA stamped.
    pub imprint: [u8; 32],
    /// The TSA's time (GeneralizedTime text, e.g. `20261127101500Z`).
    pub gen_time: String,
}

/// Finds the TSTInfo's SHA-256 messageImprint and genTime in a reply or token. The
/// TSTInfo is the only place a SHA-256 AlgorithmIdentifier is followed by a 32-byte
/// OCTET STRING; its genTime is the first GeneralizedTime after it.
pub fn token_info(der: &[u8]) -> Option<TokenInfo> {
    let mut i = 0;
    while let Some(off) = der[i..]
        .windows(SHA256_OID.len())
        .position(|w| w == SHA256_OID)
    {
        let at = i + off + SHA256_OID.len();
        let mut p = at;
        if der.get(p..p + 2) == Some(&[0x05, 0x00]) {
            p += 2;
        }
        if der.get(p..p + 2) == Some(&[0x04, 0x20])
            && let Some(h) = der.get(p + 2..p + 34)
        {
            let imprint: [u8; 32] = h.try_into().ok()?;
            let mut q = p + 34;
            while q + 2 < der.len() {
                if der[q] == 0x18
                    && let Some((_, s, e)) = read_tlv(der, q)
                    && (15..=30).contains(&(e - s))
                {
                    let gen_time = String::from_utf8(der[s..e].to_vec()).ok()?;
                    return Some(TokenInfo { imprint, gen_time });
                }
                q += 1;
            }
            return None;
        }
        i = at;
    }
    None
}

/// `20261127101500Z` (or with fractions) as RFC 3339 `2026-11-27T10:15:00Z`.
pub fn gen_time_rfc3339(t: &str) -> String {
    let d = t.as_bytes();
    if d.len() < 14 || !d[..14].iter().all(u8::is_ascii_digit) {
        return t.to_string();
    }
    format!(
        "{}-{}-{}T{}:{}:{}Z",
        &t[0..4],
        &t[4..6],
        &t[6..8],
        &t[8..10],
        &t[10..12],
        &t[12..14]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_well_formed_der() {
        let r = request(b"note", 7);
        let (t, s, e) = read_tlv(&r, 0).unwrap();
        assert_eq!((t, e), (0x30, r.len()));
        let (t, vs, ve) = read_tlv(&r, s).unwrap();
        assert_eq!((t, &r[vs..ve]), (0x02, &[1u8][..]));
        let digest = Sha256::digest(b"note");
        assert!(r.windows(32).any(|w| w == digest.as_slice()));
        assert_eq!(gen_time_rfc3339("20261127101500Z"), "2026-11-27T10:15:00Z");
        assert_eq!(
            response_status(&[0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x02]),
            Some(2)
        );
        assert_eq!(response_status(b"garbage"), None);
        assert_eq!(token_info(b"garbage"), None);
    }
}
