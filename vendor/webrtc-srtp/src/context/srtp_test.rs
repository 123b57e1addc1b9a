use bytes::Bytes;
use lazy_static::lazy_static;
use util::marshal::*;

use super::*;

struct RTPTestCase {
    sequence_number: u16,
    encrypted: Bytes,
}

lazy_static! {
    static ref RTP_TEST_CASE_DECRYPTED: Bytes = Bytes::from_static(&[0x00, 0x01, 0x02, 0x03, 0x04, 0x05]);
    static ref RTP_TEST_CASES: Vec<RTPTestCase> = vec![
        RTPTestCase {
            sequence_number: 5000,
            encrypted: Bytes::from_static(&[
                0x6d, 0xd3, 0x7e, 0xd5, 0x99, 0xb7, 0x2d, 0x28, 0xb1, 0xf3, 0xa1, 0xf0, 0xc, 0xfb,
                0xfd, 0x8
            ]),
        },
        RTPTestCase {
            sequence_number: 5001,
            encrypted: Bytes::from_static(&[
                0xda, 0x47, 0xb, 0x2a, 0x74, 0x53, 0x65, 0xbd, 0x2f, 0xeb, 0xdc, 0x4b, 0x6d, 0x23,
                0xf3, 0xde
            ]),
        },
        RTPTestCase {
            sequence_number: 5002,
            encrypted: Bytes::from_static(&[
                0x6e, 0xa7, 0x69, 0x8d, 0x24, 0x6d, 0xdc, 0xbf, 0xec, 0x2, 0x1c, 0xd1, 0x60, 0x76,
                0xc1, 0x0e
            ]),
        },
        RTPTestCase {
            sequence_number: 5003,
            encrypted: Bytes::from_static(&[
                0x24, 0x7e, 0x96, 0xc8, 0x7d, 0x33, 0xa2, 0x92, 0x8d, 0x13, 0x8d, 0xe0, 0x76, 0x9f,
                0x08, 0xdc
            ]),
        },
        RTPTestCase {
            sequence_number: 5004,
            encrypted: Bytes::from_static(&[
                0x75, 0x43, 0x28, 0xe4, 0x3a, 0x77, 0x59, 0x9b, 0x2e, 0xdf, 0x7b, 0x12, 0x68, 0x0b,
                0x57, 0x49
            ]),
        },
        RTPTestCase{
            sequence_number: 65535, // upper boundary
            encrypted: Bytes::from_static(&[
                0xaf, 0xf7, 0xc2, 0x70, 0x37, 0x20, 0x83, 0x9c, 0x2c, 0x63, 0x85, 0x15, 0x0e, 0x44,
                0xca, 0x36
            ]),
        },
    ];
}

fn build_test_context() -> Result<Context> {
    let master_key = Bytes::from_static(&[
        0x0d, 0xcd, 0x21, 0x3e, 0x4c, 0xbc, 0xf2, 0x8f, 0x01, 0x7f, 0x69, 0x94, 0x40, 0x1e, 0x28,
        0x89,
    ]);
    let master_salt = Bytes::from_static(&[
        0x62, 0x77, 0x60, 0x38, 0xc0, 0x6d, 0xc9, 0x41, 0x9f, 0x6d, 0xd9, 0x43, 0x3e, 0x7c,
    ]);

    Context::new(
        &master_key,
        &master_salt,
        ProtectionProfile::Aes128CmHmacSha1_80,
        None,
        None,
    )
}

#[test]
fn test_rtp_invalid_auth() -> Result<()> {
    let master_key = Bytes::from_static(&[
        0x0d, 0xcd, 0x21, 0x3e, 0x4c, 0xbc, 0xf2, 0x8f, 0x01, 0x7f, 0x69, 0x94, 0x40, 0x1e, 0x28,
        0x89,
    ]);
    let invalid_salt = Bytes::from_static(&[
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ]);

    let mut encrypt_context = build_test_context()?;
    let mut invalid_context = Context::new(
        &master_key,
        &invalid_salt,
        ProtectionProfile::Aes128CmHmacSha1_80,
        None,
        None,
    )?;

    for test_case in &*RTP_TEST_CASES {
        let pkt = rtp::packet::Packet {
            header: rtp::header::Header {
                sequence_number: test_case.sequence_number,
                ..Default::default()
            },
            payload: RTP_TEST_CASE_DECRYPTED.clone(),
        };

        let pkt_raw = pkt.marshal()?;
        let out = encrypt_context.encrypt_rtp(&pkt_raw)?;

        let result = invalid_context.decrypt_rtp(&out);
        assert!(
            result.is_err(),
            "Managed to decrypt with incorrect salt for packet with SeqNum: {}",
            test_case.sequence_number
        );
    }

    Ok(())
}

#[test]
fn test_rtp_lifecycle() -> Result<()> {
    let mut encrypt_context = build_test_context()?;
    let mut decrypt_context = build_test_context()?;
    let auth_tag_len = ProtectionProfile::Aes128CmHmacSha1_80.rtp_auth_tag_len();

    for test_case in RTP_TEST_CASES.iter() {
        let decrypted_pkt = rtp::packet::Packet {
            header: rtp::header::Header {
                sequence_number: test_case.sequence_number,
                ..Default::default()
            },
            payload: RTP_TEST_CASE_DECRYPTED.clone(),
        };

        let decrypted_raw = decrypted_pkt.marshal()?;

        let encrypted_pkt = rtp::packet::Packet {
            header: rtp::header::Header {
                sequence_number: test_case.sequence_number,
                ..Default::default()
            },
            payload: test_case.encrypted.clone(),
        };

        let encrypted_raw = encrypted_pkt.marshal()?;
        let actual_encrypted = encrypt_context.encrypt_rtp(&decrypted_raw)?;
        assert_eq!(
            actual_encrypted, encrypted_raw,
            "RTP packet with SeqNum invalid encryption: {}",
            test_case.sequence_number
        );

        let actual_decrypted = decrypt_context.decrypt_rtp(&encrypted_raw)?;
        assert_ne!(
            encrypted_raw[..encrypted_raw.len() - auth_tag_len].to_vec(),
            actual_decrypted,
            "DecryptRTP improperly encrypted in place"
        );

        assert_eq!(
            actual_decrypted, decrypted_raw,
            "RTP packet with SeqNum invalid decryption: {}",
            test_case.sequence_number,
        )
    }

    Ok(())
}

//TODO: BenchmarkEncryptRTP
//TODO: BenchmarkEncryptRTPInPlace
//TODO: BenchmarkDecryptRTP

#[test]
fn test_rtp_max_packets() -> Result<()> {
    let mut context = build_test_context()?;

    context.set_roc(1, u32::MAX);

    let pkt = rtp::packet::Packet {
        header: rtp::header::Header {
            ssrc: 1,
            sequence_number: 0xffff,
            ..Default::default()
        },
        payload: Bytes::from_static(&[]),
    };
    let pkt_raw = pkt.marshal()?;
    context.encrypt_rtp(&pkt_raw)?;

    let pkt = rtp::packet::Packet {
        header: rtp::header::Header {
            ssrc: 1,
            sequence_number: 0x0,
            ..Default::default()
        },
        payload: Bytes::from_static(&[]),
    };
    let pkt_raw = pkt.marshal()?;
    let err = context.encrypt_rtp(&pkt_raw).expect_err("Should be error");
    assert_eq!(err, Error::ErrExceededMaxPackets);

    Ok(())
}

#[test]
fn test_rtp_burst_loss_with_set_roc() -> Result<()> {
    let mut encrypt_context = build_test_context()?;

    encrypt_context.set_roc(1, 3);

    struct PacketWithROC {
        pkt: rtp::packet::Packet,
        raw: Bytes,
        enc: Bytes,
        roc: u32,
    }

    let mut pkts = vec![];
    for i in (0x8c00u32..0x20400u32).step_by(0x100) {
        let pkt = rtp::packet::Packet {
            header: rtp::header::Header {
                version: 2,
                ssrc: 1,
                marker: true,
                sequence_number: i as _,
                ..Default::default()
            },
            payload: vec![(i >> 16) as u8, (i >> 8) as u8, i as u8].into(),
        };
        let raw = pkt.marshal()?;
        let enc = encrypt_context.encrypt_rtp(&raw)?;

        // Only add first and last packets, to simulate bursty loss
        if i <= 0x9000 || i >= 0x20100 {
            let roc = encrypt_context.get_roc(1).unwrap();
            pkts.push(PacketWithROC { pkt, raw, enc, roc });
        }
    }

    let mut decrypt_context = build_test_context()?;
    for p in pkts {
        decrypt_context.set_roc(1, p.roc);
        let dec = decrypt_context.decrypt_rtp(&p.enc)?;
        assert_eq!(p.raw, dec);
    }

    Ok(())
}

#[test]
fn test_decrypt_invalid_srtp() -> Result<()> {
    let mut decrypt_context = build_test_context()?;

    let encrypted = Bytes::from_static(&[
        0x41, 0x02, 0x07, 0xf9, 0xf9, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xb5, 0x73,
        0x19, 0xf6, 0x91, 0xbb, 0x3e, 0xa5, 0x21, 0x07,
    ]);
    decrypt_context
        .decrypt_rtp(&encrypted)
        .expect_err("Should fail");

    Ok(())
}

/// courtrec patch: `encrypt_rtp_in_place` writes, packet after packet in one buffer,
/// exactly what `encrypt_rtp` returns, for an AEAD and a counter-mode profile, across
/// a sequence number wrap (the rollover count moves the same way).
#[test]
fn test_rtp_encrypt_in_place_matches_encrypt() -> Result<()> {
    let profiles = [
        (ProtectionProfile::AeadAes128Gcm, 16, 12),
        (ProtectionProfile::AeadAes256Gcm, 32, 12),
        (ProtectionProfile::Aes128CmHmacSha1_80, 16, 14),
    ];
    for (profile, key_len, salt_len) in profiles {
        let key: Vec<u8> = (0..key_len as u8).collect();
        let salt: Vec<u8> = (100..100 + salt_len as u8).collect();
        let mut one = Context::new(&key, &salt, profile, None, None)?;
        let mut other = Context::new(&key, &salt, profile, None, None)?;
        let mut buf = vec![0xee; 3];
        for (i, seq) in [65533u16, 65534, 65535, 0, 1, 2].into_iter().enumerate() {
            let pkt = rtp::packet::Packet {
                header: rtp::header::Header {
                    version: 2,
                    payload_type: 96,
                    sequence_number: seq,
                    timestamp: 3000 * i as u32,
                    ssrc: 0x1234_5678,
                    ..Default::default()
                },
                payload: Bytes::from(vec![i as u8; 100 + i]),
            };
            let plain = pkt.marshal()?;
            let want = one.encrypt_rtp(&plain)?;
            let start = buf.len();
            buf.extend_from_slice(&plain);
            other.encrypt_rtp_in_place(&mut buf, start)?;
            assert_eq!(&buf[start..], &want[..], "{profile:?} seq {seq}");
        }
        assert_eq!(&buf[..3], &[0xee; 3], "what was before is untouched");
    }
    Ok(())
}
