//! Test harness: starts the real `courtrec` daemon on a free loopback port with a fresh
//! data folder, talks to it over HTTP, and checks recordings with ffprobe/ffmpeg.
#![allow(dead_code)]

pub mod evidence;
pub mod garage;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Daemons encode live video: run one at a time, or they starve each other on 2 cores.
pub static ONE_DAEMON_AT_A_TIME: Mutex<()> = Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_DAEMON_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_courtrec")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where tests keep what they leave for people to look at (logs, screenshots).
pub fn artifacts(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test-artifacts")
        .join(name);
    std::fs::create_dir_all(&p).unwrap();
    p
}

pub struct Daemon {
    pub child: Option<Child>,
    pub base: String,
    pub data: PathBuf,
    pub port: u16,
    pub config: Option<PathBuf>,
    pub log: PathBuf,
    /// Extra environment for the daemon (test hooks), kept across restarts.
    pub env: Vec<(String, String)>,
    /// The command: `serve` (a courtroom box) or `archive serve` (the archive server).
    pub command: Vec<&'static str>,
    client: reqwest::blocking::Client,
}

impl Daemon {
    pub fn start(data: &Path, config: Option<&Path>, log_name: &str) -> Daemon {
        Self::start_env(data, config, log_name, &[])
    }

    /// [`Self::start`] with extra environment variables (test hooks such as
    /// `COURTREC_TEST_MEDIA_OFFSET_S` or `COURTREC_FAULTS`).
    pub fn start_env(
        data: &Path,
        config: Option<&Path>,
        log_name: &str,
        env: &[(&str, &str)],
    ) -> Daemon {
        Self::start_env_cmd(data, config, log_name, env, vec!["serve"])
    }

    /// The court's archive server (`courtrec archive serve`) with `config`.
    pub fn start_archive(data: &Path, config: &Path, log_name: &str) -> Daemon {
        Self::start_env_cmd(data, Some(config), log_name, &[], vec!["archive", "serve"])
    }

    fn start_env_cmd(
        data: &Path,
        config: Option<&Path>,
        log_name: &str,
        env: &[(&str, &str)],
        command: Vec<&'static str>,
    ) -> Daemon {
        let port = free_port();
        let log = artifacts("logs").join(format!("{log_name}.log"));
        let _ = std::fs::remove_file(&log);
        let mut d = Daemon {
            child: None,
            base: format!("http://127.0.0.1:{port}"),
            data: data.to_path_buf(),
            port,
            config: config.map(Path::to_path_buf),
            log,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            command,
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        };
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(bin());
        cmd.args(&self.command)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(&self.data);
        if let Some(c) = &self.config {
            cmd.arg("--config").arg(c);
        }
        // This machine keeps no time server: the clock check is told the clock is
        // synchronised unless a test says otherwise (tests/service.rs).
        cmd.env("COURTREC_TEST_CLOCK_SYNC", "synchronised");
        // Logs go to the test's log file even when the suite itself runs under
        // systemd (which would send them to the journal), unless a test says so.
        cmd.env_remove("JOURNAL_STREAM");
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.stdout(Stdio::from(logf.try_clone().unwrap()))
            .stderr(Stdio::from(logf))
            .stdin(Stdio::null());
        self.child = Some(cmd.spawn().expect("start courtrec"));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self.client.get(format!("{}/healthz", self.base)).send()
                && r.status().is_success()
            {
                return;
            }
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "courtrec exited at start-up ({st}); log:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "courtrec did not come up; log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The API helpers for a daemon started elsewhere (the installed package's).
    pub fn attach(base: &str, data: &Path) -> Daemon {
        Daemon {
            child: None,
            base: base.to_string(),
            data: data.to_path_buf(),
            port: base
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(0),
            config: None,
            log: PathBuf::new(),
            env: Vec::new(),
            command: vec!["serve"],
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    /// SIGKILL, as a crash or a power cut of the process would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(Some(st)) = c.try_wait() {
                    assert!(st.success(), "courtrec exited with {st} on SIGTERM");
                    return;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    panic!("courtrec did not stop on SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The daemon log's warnings, errors and lines naming `also`, without colours:
    /// what a failing test prints so that a rare failure on CI explains itself.
    pub fn log_notes(&self, also: &str) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut plain = String::new();
        let mut in_escape = false;
        for ch in text.chars() {
            match (in_escape, ch) {
                (false, '\u{1b}') => in_escape = true,
                (true, c) if c.is_ascii_alphabetic() => in_escape = false,
                (true, _) => {}
                (false, c) => plain.push(c),
            }
        }
        let picked: Vec<&str> = plain
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR ") || l.contains(also))
            .collect();
        picked[picked.len().saturating_sub(80)..].join("\n")
    }

    pub fn restart(&mut self) {
        self.spawn();
    }

    pub fn login(&self, user: &str, password: &str) -> String {
        let (st, v) = self.call(
            "POST",
            "/api/v1/login",
            None,
            Some(json!({"username": user, "password": password})),
        );
        assert_eq!(st, 200, "login {user}: {v}");
        v["token"].as_str().unwrap().to_string()
    }

    /// Sends a request; returns the status and the JSON body (Null if none).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(method.parse().unwrap(), format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().expect("request");
        let st = r.status().as_u16();
        let text = r.text().unwrap_or_default();
        (st, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(method.parse().unwrap(), format!("{}{}", self.base, path))
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(c) = content_type {
            req = req.header("content-type", c);
        }
        let r = req.send().expect("request");
        let st = r.status().as_u16();
        (
            st,
            serde_json::from_str(&r.text().unwrap_or_default()).unwrap_or(Value::Null),
        )
    }

    /// GET with extra headers, returning the status and the raw bytes.
    pub fn fetch(
        &self,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (u16, Vec<u8>) {
        let mut req = self.client.get(format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().expect("request");
        (
            r.status().as_u16(),
            r.bytes().map(|b| b.to_vec()).unwrap_or_default(),
        )
    }

    /// GET returning the raw bytes (downloads).
    pub fn download(&self, path: &str, token: &str) -> (u16, Vec<u8>) {
        let r = self
            .client
            .get(format!("{}{}", self.base, path))
            .bearer_auth(token)
            .send()
            .expect("request");
        let st = r.status().as_u16();
        (st, r.bytes().map(|b| b.to_vec()).unwrap_or_default())
    }

    /// Queues an export (`POST .../exports`, answered 202 with its state) and waits
    /// until it is made; returns its final state (`"state": "done"`, `summary`, the
    /// `download` URL). Panics if it fails or takes over two minutes.
    pub fn export(&self, hearing: &str, token: &str, body: Value) -> Value {
        let (st, job) = self.call(
            "POST",
            &format!("/api/v1/hearings/{hearing}/exports"),
            Some(token),
            Some(body),
        );
        assert_eq!(st, 202, "an export is queued: {job}");
        assert!(
            job["state"] == "queued" || job["state"] == "running" || job["state"] == "done",
            "{job}"
        );
        let url = job["download"].as_str().unwrap().to_string();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let r = self
                .client
                .get(format!("{}{url}", self.base))
                .bearer_auth(token)
                .header("accept", "application/json")
                .send()
                .expect("request");
            assert_eq!(r.status().as_u16(), 200, "export status");
            let v: Value = serde_json::from_str(&r.text().unwrap_or_default()).unwrap();
            match v["state"].as_str() {
                Some("done") => return v,
                Some("failed") => panic!("the export failed: {v}"),
                _ => {}
            }
            let p = v["progress"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&p), "progress is 0-1: {v}");
            assert!(Instant::now() < deadline, "the export takes too long: {v}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn ok(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Value {
        let (st, v) = self.call(method, path, Some(token), body);
        assert!((200..300).contains(&st), "{method} {path}: {st} {v}");
        v
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// What ffprobe says of one file.
#[derive(Debug, Clone)]
pub struct Probe {
    pub start_s: f64,
    pub duration_s: f64,
    pub codecs: Vec<String>,
    pub json: Value,
}

pub fn ffprobe(path: &Path) -> Probe {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_format",
            "-show_streams",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe (apt-get install ffmpeg)");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = |k: &str| {
        v["format"][k]
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    Probe {
        start_s: f("start_time"),
        duration_s: f("duration"),
        codecs: v["streams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["codec_name"].as_str().unwrap_or("?").to_string())
            .collect(),
        json: v,
    }
}

/// Decodes a file completely with ffmpeg; panics with ffmpeg's words on any error.
pub fn assert_decodes(path: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-xerror", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    let err = String::from_utf8_lossy(&out.stderr);
    if !(out.status.success() && err.trim().is_empty()) {
        // Keep the evidence for whoever reads the failure.
        let keep = artifacts("failed-segments").join(
            path.iter()
                .rev()
                .take(3)
                .collect::<Vec<_>>()
                .iter()
                .rev()
                .map(|c| c.to_string_lossy())
                .collect::<Vec<_>>()
                .join("_"),
        );
        let _ = std::fs::copy(path, &keep);
        panic!(
            "{} does not decode cleanly (copy in {}): {err}",
            path.display(),
            keep.display()
        );
    }
}

/// Seconds of media the least-recorded track of a hearing has in sealed segments, read
/// from its manifest as it grows (lines not yet whole are skipped).
pub fn recorded_s(data: &Path, id: &str) -> f64 {
    let text = std::fs::read_to_string(data.join("hearings").join(id).join("manifest.jsonl"))
        .unwrap_or_default();
    let recs: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| v["record"].clone())
        .collect();
    let Some(tracks) = recs.first().and_then(|r| r["meta"]["tracks"].as_array()) else {
        return 0.0;
    };
    tracks
        .iter()
        .map(|t| {
            recs.iter()
                .filter(|r| r["type"] == "segment" && r["track"] == t["name"])
                .filter_map(|r| r["media_duration_ns"].as_u64())
                .sum::<u64>() as f64
                / 1e9
        })
        .fold(f64::INFINITY, f64::min)
}

/// Waits until every track of the hearing has `secs` of sealed media: recording for
/// real rather than sleeping for a guessed time.
pub fn wait_recorded(data: &Path, id: &str, secs: f64) {
    assert!(
        wait_for(Duration::from_secs(60), || recorded_s(data, id) >= secs),
        "hearing {id}: only {:.1} s recorded on some track after 60 s (wanted {secs} s)",
        recorded_s(data, id)
    );
}

/// The records of a hearing's manifest.
pub fn manifest(data: &Path, id: &str) -> Vec<Value> {
    let text =
        std::fs::read_to_string(data.join("hearings").join(id).join("manifest.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["record"].clone())
        .collect()
}

pub fn segments<'a>(records: &'a [Value], track: &str) -> Vec<&'a Value> {
    let mut v: Vec<&Value> = records
        .iter()
        .filter(|r| r["type"] == "segment" && r["track"] == track)
        .collect();
    v.sort_by_key(|r| r["seq"].as_u64());
    v
}

/// The segment files on disk of a track, sorted.
pub fn files(data: &Path, id: &str, track: &str) -> Vec<PathBuf> {
    let dir = data.join("hearings").join(id).join("tracks").join(track);
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

pub fn events_of(h: &Value, kinds: &[&str]) -> Vec<Value> {
    h["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| kinds.contains(&e["kind"].as_str().unwrap_or("")))
        .cloned()
        .collect()
}

pub fn courtrec(args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("run courtrec")
}

/// `[[user]]` entries for a configured courtroom: clerk, judge and admin, password "demo".
pub fn users_toml() -> String {
    let out = Command::new(bin())
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"demo\n")?;
            c.wait_with_output()
        })
        .expect("hash-password");
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
    ["clerk", "judge", "admin"]
        .iter()
        .map(|u| format!("[[user]]\nname = \"{u}\"\nrole = \"{u}\"\npassword_hash = \"{hash}\"\n"))
        .collect()
}

/// Makes a short H.264 test video (no B-frames) with ffmpeg.
pub fn make_video(path: &Path, seconds: u32, size: &str, fps: u32) {
    let st = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc=size={size}:rate={fps}"))
        .args([
            "-t",
            &seconds.to_string(),
            "-c:v",
            "libx264",
            "-g",
            &fps.to_string(),
            "-bf",
            "0",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(path)
        .status()
        .expect("ffmpeg");
    assert!(st.success());
}

/// Mean and brightest luma (0-255) of the frame at `offset_s` into a file, sampled
/// at 160x90: a dark card with white text has a low mean and a bright maximum.
pub fn luma_mean_max_at(path: &Path, offset_s: f64) -> (f64, u8) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &format!("{offset_s:.3}"), "-i"])
        .arg(path)
        .args([
            "-frames:v",
            "1",
            "-vf",
            "scale=160:90",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-",
        ])
        .output()
        .expect("ffmpeg");
    assert_eq!(
        out.stdout.len(),
        160 * 90,
        "no frame at {offset_s} in {}",
        path.display()
    );
    let sum: u64 = out.stdout.iter().map(|&v| v as u64).sum();
    let max = out.stdout.iter().copied().max().unwrap_or(0);
    (sum as f64 / out.stdout.len() as f64, max)
}

/// Polls `f` every 200 ms until it is true or `timeout` passes.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    f()
}

/// Keys of the alarms the daemon reports now.
pub fn alarm_keys(d: &Daemon, token: &str) -> Vec<String> {
    d.ok("GET", "/api/v1/status", token, None)["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap().to_string())
        .collect()
}

/// Runs `courtrec verify` and returns its exit code and report.
pub fn verify(path: &Path, extra: &[&str]) -> (i32, String) {
    let out = Command::new(bin())
        .arg("verify")
        .args(extra)
        .arg(path)
        .output()
        .expect("run courtrec verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("panicked"),
        "verify must never panic: {text}"
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Copies a folder tree (a hearing or a bundle) to a fresh place.
pub fn copy_dir(from: &Path, to: &Path) {
    try_copy_dir(from, to).unwrap()
}

/// [`copy_dir`] that reports a failure (the folder went away meanwhile).
pub fn try_copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dst = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            try_copy_dir(&e.path(), &dst)?;
        } else {
            std::fs::copy(e.path(), &dst)?;
        }
    }
    Ok(())
}
