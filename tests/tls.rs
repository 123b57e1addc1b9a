//! HTTPS built in: the daemon serves the API over TLS (rustls) from a certificate and
//! key in its config, checked with curl against the test CA; plain HTTP only redirects
//! to it; a renewed certificate is served without a restart.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server certificate for 127.0.0.1 named `cn`, signed by the test CA, written to
/// `server.pem` / `server.key` (each replaced atomically, as a renewal tool does).
fn server_cert(dir: &Path, cn: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "new.key",
            "-out",
            "new.csr",
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "new.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "new.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
    std::fs::rename(dir.join("new.key"), dir.join("server.key")).unwrap();
    std::fs::rename(dir.join("new.pem"), dir.join("server.pem")).unwrap();
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-s", "-S"])
        .args(args)
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The subject the server presents now.
fn presented(port: u16) -> String {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-brief",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout)
}

#[test]
fn https_is_served_renewed_without_a_restart_and_http_redirects() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Court test CA",
        ],
    );
    server_cert(dir, "courtroom-first");
    let tls_port = free_port();
    let cfg = dir.join("courtroom.toml");
    std::fs::write(
        &cfg,
        format!(
            "[courtroom]\nid = \"tls1\"\nname = \"TLS test\"\n\
             [server]\ntls_listen = \"127.0.0.1:{tls_port}\"\ntls_cert = \"server.pem\"\ntls_key = \"server.key\"\n\
             [[camera]]\nid = \"cam1\"\nkind = \"test\"\nrole = \"judge\"\n\
             [[microphone]]\nid = \"mic1\"\nkind = \"test\"\nrole = \"judge\"\n{}",
            users_toml()
        ),
    )
    .unwrap();
    let d = Daemon::start(&dir.join("data"), Some(&cfg), "tls");
    let https = format!("https://127.0.0.1:{tls_port}");
    let ca = dir.join("ca.pem");
    let ca = ca.to_str().unwrap();

    // The API over TLS, trusted through the court's CA; HSTS on it.
    let login = curl(&[
        "--cacert",
        ca,
        "-i",
        "-H",
        "content-type: application/json",
        "-d",
        r#"{"username":"judge","password":"demo"}"#,
        &format!("{https}/api/v1/login"),
    ]);
    assert!(
        login.contains("200") && login.contains("\"token\""),
        "{login}"
    );
    assert!(
        login.to_lowercase().contains("strict-transport-security"),
        "{login}"
    );
    let anon = curl(&[
        "--cacert",
        ca,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("{https}/api/v1/hearings"),
    ]);
    assert_eq!(anon.trim(), "401");
    // Not trusted without the CA: a real TLS handshake, not plain text.
    let untrusted = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("{https}/healthz"),
    ]);
    assert!(untrusted.contains("000"), "{untrusted}");

    // Plain HTTP redirects to HTTPS (health checks still answer).
    let r = curl(&["-i", &format!("{}/review?x=1", d.base)]);
    assert!(r.starts_with("HTTP/1.1 308"), "{r}");
    assert!(
        r.to_lowercase().contains(&format!(
            "location: https://127.0.0.1:{tls_port}/review?x=1"
        )),
        "{r}"
    );
    assert_eq!(curl(&[&format!("{}/healthz", d.base)]).trim(), "ok");

    // A renewed certificate is served without a restart.
    assert!(presented(tls_port).contains("courtroom-first"));
    server_cert(dir, "courtroom-renewed");
    assert!(
        wait_for(Duration::from_secs(10), || presented(tls_port)
            .contains("courtroom-renewed")),
        "{}",
        presented(tls_port)
    );
    let again = curl(&["--cacert", ca, &format!("{https}/healthz")]);
    assert_eq!(again.trim(), "ok");
}
