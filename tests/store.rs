//! The archive's S3 client against real stores: Garage on loopback (checksums checked
//! by the store, HEAD, ranges, listings; no Object Lock, reported as such), moto's
//! server for Object Lock, and bad endpoints (wrong key, no bucket, nobody listening,
//! a server answering 500 or garbage): each a clear kind of error, never a panic.

mod common;

use common::garage::{self, Garage};
use courtrec::config::archive::{Archive, Credentials};
use courtrec::store::{Fault, Lock, Store, md5, sha256};
use std::io::{Read, Write};
use std::time::Duration;

fn archive(endpoint: &str, bucket: &str) -> Archive {
    let mut a: Archive = toml::from_str(&format!(
        "endpoint = \"{endpoint}\"\nbucket = \"{bucket}\"\nregion = \"garage\"\n"
    ))
    .unwrap();
    a.validate(None).unwrap();
    a
}

fn creds(id: &str, secret: &str) -> Credentials {
    Credentials {
        access_key_id: id.into(),
        secret_access_key: secret.into(),
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn garage_checks_every_byte_and_errors_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let g = Garage::single(tmp.path());
    let rt = rt();
    let s = Store::new(
        &archive(&g.endpoint(), garage::BUCKET),
        &creds(garage::KEY_ID, garage::SECRET),
    )
    .unwrap();
    rt.block_on(async {
        s.check_bucket().await.unwrap();
        let body = b"segment bytes".repeat(1000);
        assert_eq!(s.head("room/a").await.unwrap(), None);
        s.put("room/a", body.clone(), &sha256(&body), &md5(&body), None)
            .await
            .unwrap();
        let info = s.head("room/a").await.unwrap().unwrap();
        assert_eq!(info.size_bytes, body.len() as u64);
        assert_eq!(info.etag.as_deref(), Some(hex::encode(md5(&body)).as_str()));
        // Garage keeps the SHA-256 it checked and answers it to a HEAD.
        assert_eq!(
            info.sha256_b64.as_deref(),
            Some(courtrec::archive::b64(&sha256(&body)).as_str())
        );
        // Bytes that differ from their checksum are refused by the store.
        let wrong = sha256(b"other");
        let e = s
            .put("room/b", body.clone(), &wrong, &md5(&body), None)
            .await
            .unwrap_err();
        assert_eq!(e.fault, Fault::Rejected, "{e}");
        let e = s
            .put("room/b", body.clone(), &sha256(&body), &md5(b"other"), None)
            .await
            .unwrap_err();
        assert_eq!(e.fault, Fault::Rejected, "{e}");
        assert_eq!(s.head("room/b").await.unwrap(), None, "nothing was stored");
        // Garage accepts the lock headers and ignores them: the store is asked.
        s.put(
            "room/c",
            body.clone(),
            &sha256(&body),
            &md5(&body),
            Some(chrono::Utc::now().timestamp() + 86_400),
        )
        .await
        .unwrap();
        assert_eq!(s.retention("room/c").await.unwrap(), Lock::None);
        // Ranges and listings.
        let mut r = s.get("room/a", Some((10, Some(19)))).await.unwrap();
        assert_eq!(r.len_bytes, 10);
        let mut got = Vec::new();
        while let Some(c) = r.body.next().await {
            got.extend_from_slice(&c.unwrap());
        }
        assert_eq!(&got, &body[10..20]);
        let l = s.list("room/", None).await.unwrap();
        assert_eq!(l.objects.len(), 2);
        let l = s.list("", Some("/")).await.unwrap();
        assert_eq!(l.prefixes, vec!["room/".to_string()]);
        assert!(s.get_bytes("room/a", 100).await.is_err(), "bounded reads");

        // Wrong secret, unknown key, a bucket that is not there.
        let bad = Store::new(
            &archive(&g.endpoint(), garage::BUCKET),
            &creds(garage::KEY_ID, &"f".repeat(64)),
        )
        .unwrap();
        let e = bad
            .put("room/x", body.clone(), &sha256(&body), &md5(&body), None)
            .await
            .unwrap_err();
        assert_eq!(e.fault, Fault::Credentials, "{e}");
        let bad = Store::new(
            &archive(&g.endpoint(), garage::BUCKET),
            &creds("GK000000000000000000000000", &"f".repeat(64)),
        )
        .unwrap();
        let e = bad.check_bucket().await.unwrap_err();
        assert!(matches!(e.fault, Fault::Credentials | Fault::Denied), "{e}");
        let nob = Store::new(
            &archive(&g.endpoint(), "no-such-bucket"),
            &creds(garage::KEY_ID, garage::SECRET),
        )
        .unwrap();
        let e = nob
            .put("x", body.clone(), &sha256(&body), &md5(&body), None)
            .await
            .unwrap_err();
        assert!(matches!(e.fault, Fault::NoBucket | Fault::Denied), "{e}");
    });
}

/// A TCP server that answers every request with `reply`.
fn fake_server(reply: &'static [u8]) -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let _ = c.set_read_timeout(Some(Duration::from_millis(300)));
            let mut buf = [0u8; 65536];
            let _ = c.read(&mut buf);
            let _ = c.write_all(reply);
        }
    });
    port
}

#[test]
fn endpoints_that_are_not_stores_are_named() {
    let rt = rt();
    let c = creds(garage::KEY_ID, garage::SECRET);
    let body = b"x".to_vec();
    let dead = common::free_port();
    let s500 = fake_server(
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\nConnection: close\r\n\r\noops!",
    );
    let junk = fake_server(b"\x00\x01\x02 garbage that is not HTTP at all\r\n\r\n");
    let html = fake_server(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 13\r\nConnection: close\r\n\r\n<html></html>",
    );
    rt.block_on(async {
        for (port, want) in [
            (dead, vec![Fault::Unreachable]),
            (s500, vec![Fault::Server]),
            (junk, vec![Fault::Unreachable, Fault::Garbage]),
        ] {
            let s = Store::new(
                &archive(&format!("http://127.0.0.1:{port}"), garage::BUCKET),
                &c,
            )
            .unwrap();
            let e = s
                .put("k", body.clone(), &sha256(&body), &md5(&body), None)
                .await
                .unwrap_err();
            assert!(want.contains(&e.fault), "port {port}: {e:?}");
            assert!(e.transient(), "{e:?}");
            assert!(!e.plain().is_empty());
            let e = s.head("k").await.unwrap_err();
            assert!(want.contains(&e.fault), "head: {e:?}");
        }
        // A web page where the store should be: a listing is not S3's.
        let s = Store::new(
            &archive(&format!("http://127.0.0.1:{html}"), garage::BUCKET),
            &c,
        )
        .unwrap();
        let e = s.list("", Some("/")).await.unwrap_err();
        assert!(
            matches!(e.fault, Fault::Garbage | Fault::Other),
            "an HTML page is not a listing: {e:?}"
        );
    });
}

/// moto's S3 server implements Object Lock for single uploads: the lock headers are
/// sent right and the retention read back.
#[test]
fn object_lock_is_asked_for_and_read_back() {
    let port = common::free_port();
    let mut moto = std::process::Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("moto_server is installed (scripts/test installs moto[server])");
    let t0 = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(30), "moto did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The bucket with Object Lock, made over moto's plain REST API.
    let client = reqwest::blocking::Client::new();
    let r = client
        .put(format!("http://127.0.0.1:{port}/locked"))
        .header("x-amz-bucket-object-lock-enabled", "true")
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=x",
        )
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text());
    let rt = rt();
    let mut a = archive(&format!("http://127.0.0.1:{port}"), "locked");
    a.region = "us-east-1".into();
    let s = Store::new(&a, &creds("test", "test")).unwrap();
    let until = chrono::Utc::now().timestamp() + 10 * 86_400;
    rt.block_on(async {
        let body = b"evidence".to_vec();
        s.put(
            "h/seg.ts",
            body.clone(),
            &sha256(&body),
            &md5(&body),
            Some(until),
        )
        .await
        .unwrap();
        match s.retention("h/seg.ts").await.unwrap() {
            Lock::Compliance { until_unix_s } => {
                assert!(
                    (until_unix_s - until).abs() <= 1,
                    "{until_unix_s} vs {until}"
                )
            }
            other => panic!("moto keeps the lock: {other:?}"),
        }
        s.put("h/free.ts", body.clone(), &sha256(&body), &md5(&body), None)
            .await
            .unwrap();
        assert_eq!(s.retention("h/free.ts").await.unwrap(), Lock::None);
    });
    let _ = moto.kill();
    let _ = moto.wait();
}
