//! The Debian package on this machine itself (as root; systemd is not PID 1 here, so
//! the unit's part is played by running the installed binary as the unit would: as the
//! `courtrec` user, with its config and data folder): built by `scripts/package`,
//! checked by lintian, installed with apt, upgraded over itself with a hearing open
//! (which resumes with a recovery event, config and key kept), removed (data and config
//! kept) and purged (recorded hearings still kept).

mod common;
use common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn run(cmd: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(cmd)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn must(cmd: &str, args: &[&str]) -> String {
    let (ok, text) = run(cmd, args);
    assert!(ok, "{cmd} {args:?} failed:\n{text}");
    text
}

fn mode_owner(p: &str) -> String {
    must("stat", &["-c", "%a %U:%G", p]).trim().to_string()
}

/// The installed daemon as the unit runs it: the `courtrec` user and its groups.
fn start_installed(port: u16, log: &Path) -> Child {
    let logf = std::fs::File::create(log).unwrap();
    Command::new("setpriv")
        .args([
            "--reuid=courtrec",
            "--regid=courtrec",
            "--init-groups",
            "/usr/bin/courtrec",
            "serve",
            "--config",
            "/etc/courtrec/courtrec.toml",
            "--data-dir",
            "/var/lib/courtrec",
            "--listen",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .env("COURTREC_TEST_CLOCK_SYNC", "synchronised")
        .stdout(Stdio::from(logf.try_clone().unwrap()))
        .stderr(Stdio::from(logf))
        .spawn()
        .unwrap()
}

fn sigterm(mut c: Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(c.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = c.wait();
}

/// A daemon handle for the API helpers, on a process started elsewhere.
fn attach(port: u16, log: &Path) -> Daemon {
    let base = format!("http://127.0.0.1:{port}");
    assert!(
        wait_for(Duration::from_secs(60), || reqwest::blocking::get(format!(
            "{base}/healthz"
        ))
        .is_ok_and(|r| r.status().is_success())),
        "the installed daemon did not come up:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    Daemon::attach(&base, Path::new("/var/lib/courtrec"))
}

fn key_fingerprint() -> String {
    must(
        "setpriv",
        &[
            "--reuid=courtrec",
            "--regid=courtrec",
            "--init-groups",
            "/usr/bin/courtrec",
            "key",
            "show",
            "--config",
            "/etc/courtrec/courtrec.toml",
            "--data-dir",
            "/var/lib/courtrec",
        ],
    )
}

#[test]
fn the_package_installs_upgrades_with_a_hearing_open_removes_and_purges() {
    let _g = serial();
    // SAFETY: geteuid has no preconditions.
    assert!(
        unsafe { nix::libc::geteuid() } == 0,
        "the package test installs a .deb: run the suite as root (CI does)"
    );
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // A clean machine: no earlier install of ours, no leftovers.
    let _ = run("apt-get", &["purge", "-y", "courtrec"]);
    let _ = std::fs::remove_dir_all("/var/lib/courtrec");
    let _ = run("deluser", &["--system", "courtrec"]);
    let _ = run("delgroup", &["--system", "courtrec"]);

    must(root.join("scripts/package").to_str().unwrap(), &["--dev"]);
    let deb = std::fs::read_dir(root.join("target/debian"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .expect("scripts/package made a .deb");
    let deb = deb.to_str().unwrap();

    let info = must("dpkg-deb", &["--info", deb]);
    for want in [
        "Depends:",
        "gstreamer1.0-plugins-good",
        "adduser",
        "libgstreamer1.0-0",
    ] {
        assert!(info.contains(want), "{want} in:\n{info}");
    }
    let files = must("dpkg-deb", &["--contents", deb]);
    for want in [
        "./usr/bin/courtrec",
        "./etc/courtrec/courtrec.toml",
        "/systemd/system/courtrec.service",
        "./usr/share/doc/courtrec/operations.md",
    ] {
        assert!(files.contains(want), "{want} in:\n{files}");
    }
    let (ok, lint) = run(
        "lintian",
        &["--fail-on", "error", "--tag-display-limit", "0", deb],
    );
    assert!(ok, "lintian finds errors:\n{lint}");

    // Install: the user in video and audio, the data folder 0750, the config 0640.
    must(
        "apt-get",
        &["install", "-y", "--no-install-recommends", deb],
    );
    let version = must("/usr/bin/courtrec", &["--version"]);
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    must(
        "/usr/bin/courtrec",
        &["config", "check", "/etc/courtrec/courtrec.toml"],
    );
    let groups = must("id", &["-nG", "courtrec"]);
    assert!(
        groups.contains("video") && groups.contains("audio"),
        "{groups}"
    );
    assert_eq!(mode_owner("/var/lib/courtrec"), "750 courtrec:courtrec");
    assert_eq!(
        mode_owner("/etc/courtrec/courtrec.toml"),
        "640 root:courtrec"
    );
    let conffiles = must("dpkg-query", &["--control-show", "courtrec", "conffiles"]);
    assert!(
        conffiles.contains("/etc/courtrec/courtrec.toml"),
        "{conffiles}"
    );

    // Court IT adds its users to the config; a hearing opens on the installed box.
    let cfg = std::fs::read_to_string("/etc/courtrec/courtrec.toml").unwrap();
    std::fs::write(
        "/etc/courtrec/courtrec.toml",
        format!("{cfg}\n{}", users_toml()),
    )
    .unwrap();
    must(
        "/usr/bin/courtrec",
        &["config", "check", "/etc/courtrec/courtrec.toml"],
    );
    let port = free_port();
    let log = artifacts("logs").join("package.log");
    let child = start_installed(port, &log);
    let d = attach(port, &log);
    let key_before = key_fingerprint();
    let clerk = d.login("clerk", "demo");
    let h = d.ok(
        "POST",
        "/api/v1/hearings",
        &clerk,
        Some(json!({"case_number": "(2026)PKG1号", "title": "upgrade", "visibility": "public"})),
    );
    let id = h["id"].as_str().unwrap().to_string();
    d.ok("POST", &format!("/api/v1/hearings/{id}/open"), &clerk, None);
    let data = Path::new("/var/lib/courtrec");
    wait_recorded(data, &id, 2.0);

    // Upgrade over itself while it records; the unit's restart is the stop and start.
    must("apt-get", &["install", "-y", "--reinstall", deb]);
    sigterm(child);
    let cfg_after = std::fs::read_to_string("/etc/courtrec/courtrec.toml").unwrap();
    assert!(
        cfg_after.contains("password_hash"),
        "the config was replaced"
    );
    let child = start_installed(port, &log);
    let d = attach(port, &log);
    assert_eq!(key_fingerprint(), key_before, "the device key changed");
    let clerk = d.login("clerk", "demo");
    // It records again after the restart before it is closed.
    let before = recorded_s(data, &id);
    wait_recorded(data, &id, before + 2.0);
    let h = d.ok(
        "POST",
        &format!("/api/v1/hearings/{id}/close"),
        &clerk,
        None,
    );
    let recovered = events_of(&h, &["recovery"]);
    assert_eq!(recovered.len(), 1, "{h}");
    sigterm(child);
    let (code, out) = verify(&Path::new("/var/lib/courtrec/hearings").join(&id), &[]);
    assert_eq!(code, 0, "{out}");

    // Remove keeps data and config; purge removes the config, never the hearings.
    must("apt-get", &["remove", "-y", "courtrec"]);
    assert!(!Path::new("/usr/bin/courtrec").exists());
    assert!(Path::new("/etc/courtrec/courtrec.toml").exists());
    assert!(Path::new("/var/lib/courtrec/hearings").join(&id).is_dir());
    must("apt-get", &["purge", "-y", "courtrec"]);
    assert!(!Path::new("/etc/courtrec/courtrec.toml").exists());
    assert!(
        Path::new("/var/lib/courtrec/hearings").join(&id).is_dir(),
        "purge deleted a recorded hearing"
    );
    let _ = std::fs::remove_dir_all("/var/lib/courtrec");
    let _ = run("deluser", &["--system", "courtrec"]);
    let _ = run("delgroup", &["--system", "courtrec"]);
}
