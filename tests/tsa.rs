//! Trusted timestamps (RFC 3161): a local TSA on loopback (`openssl ts -reply` behind a
//! tiny HTTP server in this test) stamps each hearing's final checkpoint; verify checks
//! the token against the TSA's certificate. With the TSA down the hearing is still
//! sealed, an alarm says so, and the stamp is made once the TSA is back.

mod common;
use common::*;
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// A throwaway TSA: key, certificate (extendedKeyUsage timeStamping) and openssl config.
fn make_tsa(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let ok = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=courtrec test TSA"])
        .args(["-addext", "extendedKeyUsage=critical,timeStamping"])
        .arg("-keyout")
        .arg(dir.join("tsa.key"))
        .arg("-out")
        .arg(dir.join("tsa.crt"))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    std::fs::write(dir.join("serial"), "01\n").unwrap();
    std::fs::write(
        dir.join("tsa.cnf"),
        format!(
            "[ tsa ]\ndefault_tsa = tsa1\n[ tsa1 ]\nserial = {}\ncrypto_device = builtin\n\
             signer_digest = sha256\ndefault_policy = 1.2.3.4.1\ndigests = sha256\n\
             accuracy = secs:1\nordering = yes\ntsa_name = no\ness_cert_id_chain = no\n\
             ess_cert_id_alg = sha256\n",
            dir.join("serial").display()
        ),
    )
    .unwrap();
    dir.join("tsa.crt")
}

/// Serves RFC 3161 over HTTP on `port` while `up` is true; counts the stamps made.
fn serve_tsa(dir: PathBuf, port: u16, up: Arc<AtomicBool>, stamps: Arc<AtomicUsize>) {
    std::thread::spawn(move || {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let mut n = 0;
        while up.load(Ordering::SeqCst) {
            let Ok((stream, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            stream.set_nonblocking(false).unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body).unwrap();
            n += 1;
            let q = dir.join(format!("q{n}.tsq"));
            let r = dir.join(format!("r{n}.tsr"));
            std::fs::write(&q, &body).unwrap();
            let out = Command::new("openssl")
                .args(["ts", "-reply", "-config"])
                .arg(dir.join("tsa.cnf"))
                .arg("-queryfile")
                .arg(&q)
                .arg("-signer")
                .arg(dir.join("tsa.crt"))
                .arg("-inkey")
                .arg(dir.join("tsa.key"))
                .arg("-out")
                .arg(&r)
                .output()
                .unwrap();
            let mut stream = stream;
            if out.status.success() {
                let reply = std::fs::read(&r).unwrap();
                stamps.fetch_add(1, Ordering::SeqCst);
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/timestamp-reply\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    reply.len()
                );
                let _ = stream.write_all(&reply);
            } else {
                let _ = write!(
                    stream,
                    "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                eprintln!(
                    "openssl ts -reply: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    });
}

fn config(dir: &Path, tsa_port: u16) -> PathBuf {
    let cfg = dir.join("courtroom.toml");
    std::fs::write(
        &cfg,
        format!(
            "[courtroom]\nid = \"t1\"\nname = \"TSA test\"\n\
             [device]\ntsa_url = \"http://127.0.0.1:{tsa_port}/tsa\"\ntsa_retry_s = 1\n\
             [[camera]]\nid = \"cam1\"\nkind = \"test\"\nrole = \"judge\"\n\
             [[microphone]]\nid = \"mic1\"\nkind = \"test\"\nrole = \"judge\"\n{}",
            users_toml()
        ),
    )
    .unwrap();
    cfg
}

fn hearing(d: &Daemon, token: &str, case: &str) -> String {
    let h = d.ok(
        "POST",
        "/api/v1/hearings",
        token,
        Some(json!({"case_number": case, "title": "tsa", "visibility": "public"})),
    );
    let id = h["id"].as_str().unwrap().to_string();
    d.ok("POST", &format!("/api/v1/hearings/{id}/open"), token, None);
    std::thread::sleep(Duration::from_secs(2));
    d.ok("POST", &format!("/api/v1/hearings/{id}/close"), token, None);
    id
}

fn final_token(data: &Path, id: &str) -> Option<PathBuf> {
    let dir = data.join("hearings").join(id).join("checkpoints");
    let size = *courtrec::archive::checkpoint::sizes_in(&dir).last()?;
    let p = dir.join(courtrec::archive::checkpoint::Checkpoint::token_name(size));
    p.exists().then_some(p)
}

#[test]
fn final_checkpoints_get_trusted_timestamps_even_when_the_tsa_was_down() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let tsa_dir = tmp.path().join("tsa");
    let tsa_crt = make_tsa(&tsa_dir);
    let port = free_port();
    let up = Arc::new(AtomicBool::new(true));
    let stamps = Arc::new(AtomicUsize::new(0));
    serve_tsa(tsa_dir.clone(), port, up.clone(), stamps.clone());

    let data = tmp.path().join("data");
    let cfg = config(tmp.path(), port);
    let mut d = Daemon::start(&data, Some(&cfg), "tsa");
    let clerk = d.login("clerk", "demo");

    // TSA up: the final checkpoint is stamped, and verify checks the token.
    let id = hearing(&d, &clerk, "(2026)X0101民初90号");
    assert!(
        wait_for(Duration::from_secs(20), || final_token(&data, &id)
            .is_some()),
        "the final checkpoint gets a token"
    );
    let folder = data.join("hearings").join(&id);
    let ca = tsa_crt.to_str().unwrap();
    let (code, text) = verify(&folder, &["--tsa-ca", ca]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("trusted timestamps:"), "{text}");
    assert!(text.contains("signed by a TSA certified by"), "{text}");
    let (code, text) = verify(&folder, &[]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("signature was not checked"), "{text}");

    // A token from another TSA does not verify against the court's TSA certificate.
    let other = make_tsa(&tmp.path().join("other-tsa"));
    let (code, text) = verify(&folder, &["--tsa-ca", other.to_str().unwrap()]);
    assert_eq!(code, 14, "{text}");

    // The checkpoint rewritten after the stamp (even by the device itself): caught.
    let t = tmp.path().join("rewritten");
    copy_dir(&folder, &t);
    let token = final_token(&data, &id).unwrap();
    let note_path = token.with_extension("note");
    let t_note = t.join("checkpoints").join(note_path.file_name().unwrap());
    let key = courtrec::archive::signing::DeviceKey::load_or_create(
        &data.join("device.key"),
        &format!(
            "courtrec/{}",
            std::fs::read_to_string(data.join("device-id"))
                .unwrap()
                .trim()
        ),
    )
    .unwrap();
    let body = key
        .verifier()
        .verify_note(&std::fs::read_to_string(&t_note).unwrap())
        .unwrap();
    let mut cp = courtrec::archive::checkpoint::Checkpoint::parse(&body).unwrap();
    cp.time = "2026-12-01T00:00:00.000Z".into();
    std::fs::write(&t_note, key.sign_note(&cp.body()).unwrap()).unwrap();
    let (code, text) = verify(&t, &[]);
    assert_eq!(code, 10, "{text}");
    assert!(
        text.contains("rewritten after the TSA stamped it"),
        "{text}"
    );

    // TSA down: the hearing is still closed and sealed, an alarm says so...
    up.store(false, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(200));
    let id2 = hearing(&d, &clerk, "(2026)X0101民初91号");
    assert!(
        wait_for(Duration::from_secs(20), || alarm_keys(&d, &clerk)
            .contains(&"tsa_unreachable".to_string())),
        "alarm when the TSA is down: {:?}",
        alarm_keys(&d, &clerk)
    );
    let h = d.ok("GET", &format!("/api/v1/hearings/{id2}"), &clerk, None);
    assert_eq!(h["state"], "closed");
    let folder2 = data.join("hearings").join(&id2);
    let (code, text) = verify(&folder2, &[]);
    assert_eq!(code, 0, "sealed without the TSA: {text}");
    assert!(final_token(&data, &id2).is_none());

    // ...and the stamp is made once the TSA is back, and the alarm clears.
    let up2 = Arc::new(AtomicBool::new(true));
    serve_tsa(tsa_dir.clone(), port, up2.clone(), stamps.clone());
    assert!(
        wait_for(Duration::from_secs(20), || final_token(&data, &id2)
            .is_some()),
        "the stamp is retried until it is made"
    );
    assert!(
        wait_for(Duration::from_secs(10), || !alarm_keys(&d, &clerk)
            .contains(&"tsa_unreachable".to_string())),
        "the alarm clears"
    );
    let (code, text) = verify(&folder2, &["--tsa-ca", ca]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("trusted timestamps:"), "{text}");

    // A hearing closed while the TSA is down and the daemon then restarted: found on
    // disk and stamped after the restart.
    up2.store(false, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(200));
    let id3 = hearing(&d, &clerk, "(2026)X0101民初92号");
    d.stop();
    assert!(final_token(&data, &id3).is_none());
    let up3 = Arc::new(AtomicBool::new(true));
    serve_tsa(tsa_dir, port, up3.clone(), stamps.clone());
    d.restart();
    assert!(
        wait_for(Duration::from_secs(20), || final_token(&data, &id3)
            .is_some()),
        "stamped after the restart"
    );
    up3.store(false, Ordering::SeqCst);
}
