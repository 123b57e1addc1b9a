//! RFC 3161 trusted timestamps over checkpoints: the request a box sends, and what a
//! stored reply (`checkpoints/<size>.tsr`, the TSA's whole TimeStampResp, which
//! `openssl ts -reply -in` and `openssl ts -verify` read as is) says.
//!
//! A token binds the SHA-256 of the checkpoint note's bytes to the TSA's time: a
//! manifest rebuilt and re-signed later, even with the device's own key, cannot carry
//! a token from before. Replies are parsed with RustCrypto's ASN.1 types (`der`,
//! `cms`, `x509-tsp`): status, SignedData, the TSTInfo's imprint, genTime and nonce.
//! The TSA's *signature* is checked by `openssl ts -verify` against the court's TSA
//! certificate (`--tsa-ca`), a standard tool the court's expert already trusts.

use cms::signed_data::SignedData;
use der::asn1::{Int, OctetString};
use der::oid::ObjectIdentifier;
use der::{Any, Decode, Encode};
use sha2::{Digest, Sha256};
use x509_tsp::{MessageImprint, TimeStampReq, TimeStampResp, TspVersion, TstInfo};

/// SHA-256 (RFC 5912 id-sha256).
const ID_SHA_256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
/// CMS signed-data content type.
const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// The TSTInfo content type (RFC 3161 id-ct-TSTInfo).
const ID_CT_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");

/// The nonce as a positive DER INTEGER's content bytes (minimal, top bit clear).
fn nonce_bytes(nonce: u64) -> Vec<u8> {
    let be = nonce.to_be_bytes();
    let start = be.iter().position(|&b| b != 0).unwrap_or(be.len() - 1);
    let mut v = be[start..].to_vec();
    if v[0] & 0x80 != 0 {
        v.insert(0, 0);
    }
    v
}

/// A TimeStampReq (RFC 3161 2.4.1) for `data`: version 1, SHA-256 imprint, a nonce,
/// and certReq so the token carries the TSA's certificate.
pub fn request(data: &[u8], nonce: u64) -> Result<Vec<u8>, String> {
    let digest = Sha256::digest(data);
    let req = TimeStampReq {
        version: TspVersion::V1,
        message_imprint: MessageImprint {
            hash_algorithm: spki::AlgorithmIdentifier {
                oid: ID_SHA_256,
                parameters: Some(Any::null()),
            },
            hashed_message: OctetString::new(digest.to_vec()).map_err(|e| e.to_string())?,
        },
        req_policy: None,
        nonce: Some(Int::new(&nonce_bytes(nonce)).map_err(|e| e.to_string())?),
        cert_req: true,
        extensions: None,
    };
    req.to_der()
        .map_err(|e| format!("encoding the timestamp request: {e}"))
}

/// What a granted reply says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// The SHA-256 the TSA stamped.
    pub imprint: [u8; 32],
    /// The TSA's time, RFC 3339 UTC (to the second).
    pub gen_time: String,
    /// The nonce's INTEGER content bytes, if the TSA echoed one.
    pub nonce: Option<Vec<u8>>,
}

/// Parses a TimeStampResp: granted (status 0 or 1), a signed-data token whose content
/// is a TSTInfo with a SHA-256 imprint.
pub fn parse_reply(der: &[u8]) -> Result<TokenInfo, String> {
    let resp = TimeStampResp::from_der(der).map_err(|e| format!("not a TimeStampResp: {e}"))?;
    let status = resp.status.status as u8;
    if status > 1 {
        return Err(format!("the TSA refused (status {status})"));
    }
    let token = resp
        .time_stamp_token
        .ok_or("a granted reply without a token")?;
    if token.content_type != ID_SIGNED_DATA {
        return Err("the token is not CMS signed data".into());
    }
    let sd = SignedData::from_der(&token.content.to_der().map_err(|e| e.to_string())?)
        .map_err(|e| format!("the token's signed data is malformed: {e}"))?;
    if sd.encap_content_info.econtent_type != ID_CT_TST_INFO {
        return Err("the signed content is not a TSTInfo".into());
    }
    let econtent = sd
        .encap_content_info
        .econtent
        .ok_or("the token carries no TSTInfo")?;
    let tst = TstInfo::from_der(econtent.value()).map_err(|e| format!("malformed TSTInfo: {e}"))?;
    if tst.message_imprint.hash_algorithm.oid != ID_SHA_256 {
        return Err("the TSA stamped a hash other than SHA-256".into());
    }
    let imprint: [u8; 32] = tst
        .message_imprint
        .hashed_message
        .as_bytes()
        .try_into()
        .map_err(|_| "the stamped SHA-256 is not 32 bytes")?;
    let secs = tst.gen_time.to_unix_duration().as_secs();
    let gen_time = chrono::DateTime::from_timestamp(i64::try_from(secs).unwrap_or(0), 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    Ok(TokenInfo {
        imprint,
        gen_time,
        nonce: tst.nonce.map(|n| n.as_bytes().to_vec()),
    })
}

/// Parses a reply to [`request`]`(data, nonce)` and checks that it stamps `data` and
/// echoes `nonce` (RFC 3161 2.4.2: a reply to another request is refused).
pub fn check_reply(der: &[u8], data: &[u8], nonce: u64) -> Result<TokenInfo, String> {
    let info = parse_reply(der)?;
    let want: [u8; 32] = Sha256::digest(data).into();
    if info.imprint != want {
        return Err("the TSA stamped another hash than the one asked for".into());
    }
    if info.nonce.as_deref() != Some(nonce_bytes(nonce).as_slice()) {
        return Err(
            "the TSA's reply does not carry the nonce we sent: a replayed or foreign reply".into(),
        );
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply made by `openssl ts -reply` (RustCrypto's x509-tsp test vector).
    const REPLY: &str = "3082028430030201003082027B06092A864886F70D010702A082026C30820268020103310F300D060960864801650304020105003081C9060B2A864886F70D0109100104A081B90481B63081B302010106042A0304013031300D060960864801650304020105000420BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD020104180F32303233303630373131323632365A300A020101800201F48101640101FF0208314CFCE4E0651827A048A4463044310B30090603550406130255533113301106035504080C0A536F6D652D5374617465310D300B060355040A0C04546573743111300F06035504030C0854657374205453413182018430820180020101305C3044310B30090603550406130255533113301106035504080C0A536F6D652D5374617465310D300B060355040A0C04546573743111300F06035504030C08546573742054534102146A0DCC59137C11D1C2B092042B4BC51C0D634D24300D06096086480165030402010500A08198301A06092A864886F70D010903310D060B2A864886F70D0109100104301C06092A864886F70D010905310F170D3233303630373131323632365A302B060B2A864886F70D010910020C311C301A3018301604142F36B1B52456F5AC3A1CA09794AE3D0D64AD38C2302F06092A864886F70D01090431220420BAF4CCF82E9B5B3956EADCC87346B407684F26D82B68D0E7DE0D31EA79AF648C300A06082A8648CE3D0403020467306502305A6E1C175B20A93FAB25D14CC5F5A2836D726D6D4A964B66FFBFFCE46276A96475F1408728B3385DCA37C2BA46BE17E1023100C46B7F08D03409A8ECCFD7637765412C3C5EC050E0D39CF48F0F5015950342CB18D8434FF331BA4463C086297C37D07B";

    #[test]
    fn a_real_reply_is_parsed_and_checked_against_data_and_nonce() {
        let der = hex::decode(REPLY).unwrap();
        let info = parse_reply(&der).unwrap();
        assert_eq!(info.gen_time, "2023-06-07T11:26:26Z");
        assert_eq!(
            info.nonce.as_deref(),
            Some(&hex::decode("314CFCE4E0651827").unwrap()[..])
        );
        // The vector stamps SHA-256("abc") with nonce 0x314CFCE4E0651827.
        let nonce = 0x314C_FCE4_E065_1827u64;
        assert!(check_reply(&der, b"abc", nonce).is_ok());
        assert!(
            check_reply(&der, b"abd", nonce)
                .unwrap_err()
                .contains("another hash")
        );
        assert!(
            check_reply(&der, b"abc", nonce + 1)
                .unwrap_err()
                .contains("nonce")
        );
        assert!(parse_reply(b"garbage").is_err());
        assert!(parse_reply(&der[..100]).is_err());
    }

    #[test]
    fn requests_round_trip_and_nonces_are_positive() {
        let r = request(b"note", 0x80).unwrap();
        let req = TimeStampReq::from_der(&r).unwrap();
        assert_eq!(
            req.message_imprint.hashed_message.as_bytes(),
            Sha256::digest(b"note").as_slice()
        );
        assert_eq!(req.nonce.unwrap().as_bytes(), &[0x00, 0x80]);
        assert!(req.cert_req);
        assert_eq!(nonce_bytes(0), vec![0]);
        assert_eq!(nonce_bytes(u64::MAX)[0], 0);
    }
}
