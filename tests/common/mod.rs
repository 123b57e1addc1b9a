//! Test harness: starts the real `courtrec` daemon on a free loopback port with a fresh
//! data folder, talks to it over HTTP, and checks recordings with ffprobe/ffmpeg.
#![allow(dead_code)]

pub mod evidence;
pub mod garage;
pub mod livestream;
mod recordings;
pub mod replica;

pub use recordings::*;

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
