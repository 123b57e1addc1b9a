//! The courtroom's configuration: a TOML file naming the courtroom, its cameras and
//! microphones, and the limits behind the alarms. See `docs/config.md`.
//!
//! Errors name the file, the line and the field, because the person reading them is
//! court IT at a console, not a developer with a debugger.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use toml::Spanned;

pub mod archive;
pub mod central;
mod pipeline_text;
mod sources;
mod validate;

pub use sources::{Camera, CameraKind, Microphone, MicrophoneKind, PreviewDecoder, Role, TestWave};

/// A configuration error that points at the file and line it comes from.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {msg}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub msg: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub courtroom: Courtroom,
    #[serde(default)]
    pub server: Server,
    #[serde(default)]
    pub device: Device,
    #[serde(default)]
    pub recording: Recording,
    #[serde(default)]
    pub composite: Composite,
    #[serde(default)]
    pub alarms: Alarms,
    #[serde(default)]
    pub livestream: Livestream,
    #[serde(default)]
    pub exports: Exports,
    #[serde(default)]
    pub login: Login,
    /// The court's central archive (replication); off when absent.
    #[serde(default)]
    pub archive: Option<archive::Archive>,
    #[serde(default)]
    pub metrics: Metrics,
    #[serde(default, rename = "camera")]
    pub cameras: Vec<Spanned<Camera>>,
    #[serde(default, rename = "microphone")]
    pub microphones: Vec<Spanned<Microphone>>,
    /// Users seeded into the index at start-up (password given as an argon2 hash,
    /// made with `courtrec hash-password`). A configured deployment has no default
    /// password.
    #[serde(default, rename = "user")]
    pub users: Vec<Spanned<UserSeed>>,
    /// True only for the built-in demo courtroom: seeds demo users with a known password.
    #[serde(skip)]
    pub demo: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Courtroom {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub court: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// HTTPS: where it listens, and the certificate chain and private key (PEM),
    /// re-read when they change. With both, `listen` only redirects to HTTPS.
    pub tls_listen: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// A client must send a request's headers within this time.
    pub header_timeout_s: u64,
    /// A connection that sends and receives nothing for this long is closed.
    pub idle_timeout_s: u64,
    /// Connections open at once; more are closed at once.
    pub max_connections: usize,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("courtrec-data"),
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            header_timeout_s: 10,
            idle_timeout_s: 120,
            max_connections: 512,
        }
    }
}

/// This box's identity for signing hearings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Device {
    /// The Ed25519 private key (created on first start, mode 0600). Default:
    /// `device.key` in the data folder.
    pub key_path: Option<PathBuf>,
    /// An RFC 3161 time-stamping authority (`http://...`). When set, each hearing's
    /// final checkpoint (and, every `tsa_interval_s`, the latest checkpoint of the open
    /// hearing) gets a trusted timestamp, stored beside it as `<size>.tsr`.
    pub tsa_url: Option<String>,
    /// Timestamp the open hearing's latest checkpoint this often (0: only the final one).
    pub tsa_interval_s: u64,
    /// Retry an unreachable TSA this often.
    pub tsa_retry_s: u64,
}

impl Default for Device {
    fn default() -> Self {
        Device {
            key_path: None,
            tsa_url: None,
            tsa_interval_s: 3600,
            tsa_retry_s: 60,
        }
    }
}

impl Device {
    pub fn key_path(&self, data_dir: &Path) -> PathBuf {
        self.key_path
            .clone()
            .unwrap_or_else(|| data_dir.join("device.key"))
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Recording {
    /// Segments are cut at the first keyframe after this much media (at most 2 s when
    /// the source's keyframe interval is at most 1 s).
    pub segment_target_ms: u64,
    /// Longest time written media may stay in the page cache before an fsync. Bounds
    /// what a power cut can take (the court's limit is 1 s).
    pub fsync_interval_ms: u64,
    /// How long a recess or close waits for the last frames already captured before it
    /// seals each track anyway (a dead source must not hold up a close).
    pub drain_timeout_ms: u64,
    /// Free space the writers leave untouched: below it no segment is started, so the
    /// manifest always has room to log the fault, and no segment is cut off mid-write.
    pub disk_reserve_bytes: u64,
}

/// `[metrics]`: who may read `GET /metrics` besides an admin's login.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// A static bearer token for Prometheus (its `authorization` setting); at least 16
    /// characters. Absent: only admins' logins.
    #[serde(default)]
    pub token: Option<String>,
}

impl Default for Recording {
    fn default() -> Self {
        Recording {
            segment_target_ms: 2000,
            fsync_interval_ms: 500,
            drain_timeout_ms: 3000,
            disk_reserve_bytes: 256 << 20,
        }
    }
}

/// Logins (see `http::throttle`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Login {
    /// Failed logins of one account allowed before it must wait (an address: four
    /// times as many, as a courthouse's users may share one).
    pub free_attempts: u32,
    /// The first wait; each further failure doubles it.
    pub backoff_base_ms: u64,
    /// The longest wait.
    pub backoff_max_s: u64,
    /// Password hashes (Argon2, 7 MiB each) checked at once; more logins wait.
    pub max_hashes: usize,
}

impl Default for Login {
    fn default() -> Self {
        Login {
            free_attempts: 5,
            backoff_base_ms: 1000,
            backoff_max_s: 900,
            max_hashes: 2,
        }
    }
}

/// Exports through the API (see `archive::exports`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Exports {
    /// Exports and verifications run at once, at low priority (1 or 2 on a box).
    pub workers: usize,
    /// Exports one caller may have queued or running at once.
    pub pending_per_caller: usize,
    /// Exports one caller may start in 24 hours.
    pub per_caller_per_day: usize,
    /// Hours a bundle is kept before it is deleted (its export stays in the record).
    pub expire_hours: u64,
}

impl Default for Exports {
    fn default() -> Self {
        Exports {
            workers: 1,
            pending_per_caller: 2,
            per_caller_per_day: 20,
            expire_hours: 72,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Composite {
    /// `false`: no composite track (no multi-pane picture with the time burned in, no
    /// mixed sound): the cameras and microphones are recorded as they are, at the
    /// least CPU. For courts that burn the time in elsewhere (in the cameras); the
    /// review page then plays the first camera as its main picture.
    pub enabled: bool,
    /// Number of panes: 1, 4, 5 (default: judges large) or 6.
    pub layout: u8,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
    pub audio_bitrate_kbps: u32,
}

impl Default for Composite {
    fn default() -> Self {
        Composite {
            enabled: true,
            layout: 5,
            width: 1280,
            height: 720,
            fps: 15,
            bitrate_kbps: 2000,
            audio_bitrate_kbps: 96,
        }
    }
}

/// The public livestream (WHEP).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Livestream {
    /// `false` for a courtroom that never streams: no public picture, mix or encoders
    /// are built (fewer threads, less memory), and approving a hearing's livestream is
    /// refused with a plain reason.
    pub enabled: bool,
    /// Offers (WHEP) whose connection is not up yet, in all and per address: a
    /// flood of offers that never connect must not keep the public out.
    pub max_pending: usize,
    pub max_pending_per_address: usize,
    /// An offer whose connection is not up within this time is dropped.
    pub pending_timeout_s: u64,
    /// Most viewers at once; more get 503 with `Retry-After`.
    pub max_viewers: usize,
    /// STUN/TURN URLs advertised to viewers (WHEP `Link` headers) and used by the box,
    /// e.g. `["stun:stun.court.example:3478"]`. Empty: viewers on the same network.
    pub ice_servers: Vec<String>,
    /// Also push the stream of an approved hearing to this platform
    /// (`rtmp://host/app/stream-key`); reconnects by itself.
    pub rtmp_url: Option<String>,
    /// Also publish it over WebRTC to this WHIP endpoint (RFC 9725), e.g. a court
    /// platform's SFU: `https://live.court.example/whip/room-3`. Same H.264 and Opus
    /// as the viewers get, no second encoding; reconnects by itself.
    pub whip_url: Option<String>,
    /// The bearer token the WHIP endpoint expects, if any.
    pub whip_token: Option<String>,
}

impl Default for Livestream {
    fn default() -> Self {
        Livestream {
            enabled: true,
            max_viewers: 200,
            max_pending: 20,
            max_pending_per_address: 4,
            pending_timeout_s: 15,
            ice_servers: Vec::new(),
            rtmp_url: None,
            whip_url: None,
            whip_token: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Alarms {
    /// A microphone whose peak stays below `mic_silence_dbfs` this long while recording
    /// raises the "microphone silent" alarm.
    pub mic_silence_s: u64,
    pub mic_silence_dbfs: f64,
    /// Free space below this raises "disk nearly full".
    pub disk_free_min_bytes: u64,
    /// A source that delivers nothing for this long is "lost".
    pub source_lost_ms: u64,
    /// A scheduled hearing still not opened this long after its start raises an alarm.
    pub hearing_not_opened_s: u64,
}

impl Default for Alarms {
    fn default() -> Self {
        Alarms {
            mic_silence_s: 30,
            mic_silence_dbfs: -60.0,
            disk_free_min_bytes: 2 << 30,
            source_lost_ms: 2000,
            hearing_not_opened_s: 300,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UserRole {
    Clerk,
    Judge,
    Admin,
    /// A party or their lawyer, logged in with a hearing's access code: sees that
    /// hearing alone. Never a configured account.
    Party,
}

impl UserRole {
    pub fn as_str(self) -> &'static str {
        match self {
            UserRole::Clerk => "clerk",
            UserRole::Judge => "judge",
            UserRole::Admin => "admin",
            UserRole::Party => "party",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserSeed {
    pub name: String,
    pub role: UserRole,
    /// An argon2 PHC string, e.g. from `courtrec hash-password`.
    pub password_hash: String,
}

/// Converts a byte offset in `text` to a 1-based line number.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

pub(crate) fn is_safe_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_all(path).map_err(|mut errors| errors.swap_remove(0))
    }

    /// Reads a config file and names every error in it (`courtrec config check`).
    pub fn load_all(path: &Path) -> Result<Config, Vec<ConfigError>> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![ConfigError {
                file: file.clone(),
                line: 0,
                msg: format!("cannot read config: {e}"),
            }]
        })?;
        Config::parse_all(&file, &text, path.parent())
    }

    /// Parses and validates config text; `base` resolves relative paths. The first
    /// error, in file order of the checks (see [`Config::parse_all`] for every one).
    pub fn parse(file: &str, text: &str, base: Option<&Path>) -> Result<Config, ConfigError> {
        Config::parse_all(file, text, base).map_err(|mut errors| errors.swap_remove(0))
    }

    /// Parses and validates config text, naming every error found (never an empty
    /// list): court IT fixes a file in one pass instead of one error per restart. A
    /// file that is not valid TOML, or has a field of the wrong type, stops at that
    /// first error, since nothing after it can be read.
    pub fn parse_all(
        file: &str,
        text: &str,
        base: Option<&Path>,
    ) -> Result<Config, Vec<ConfigError>> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| {
            vec![ConfigError {
                file: file.to_string(),
                line: e.span().map(|s| line_of(text, s.start)).unwrap_or(0),
                msg: e.message().to_string(),
            }]
        })?;
        let errors = validate::validate(&mut cfg, file, text, base);
        if errors.is_empty() {
            Ok(cfg)
        } else {
            Err(errors)
        }
    }

    /// The built-in demo courtroom: 4 test cameras, 4 test microphones, seeded demo users.
    pub fn demo() -> Config {
        let mut cfg = Config::parse("<built-in demo>", DEMO_CONFIG, None)
            .unwrap_or_else(|e| panic!("built-in demo config is invalid: {e}"));
        cfg.demo = true;
        cfg
    }

    pub fn cameras(&self) -> impl Iterator<Item = &Camera> {
        self.cameras.iter().map(|c| c.get_ref())
    }

    pub fn microphones(&self) -> impl Iterator<Item = &Microphone> {
        self.microphones.iter().map(|m| m.get_ref())
    }
}

/// The demo courtroom, also shipped as `docs/demo.toml` for people to copy.
pub const DEMO_CONFIG: &str = include_str!("../docs/demo.toml");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_config_is_valid() {
        let cfg = Config::demo();
        assert_eq!(cfg.cameras().count(), 4);
        assert_eq!(cfg.microphones().count(), 4);
        assert_eq!(cfg.composite.layout, 5);
    }

    #[test]
    fn unknown_kind_names_line_and_field() {
        let text = "[courtroom]\nid = \"a\"\nname = \"A\"\n\n[[camera]]\nid = \"c1\"\nrole = \"judge\"\nkind = \"webcam\"\n";
        let e = Config::parse("x.toml", text, None).unwrap_err();
        assert_eq!(e.file, "x.toml");
        assert_eq!(e.line, 8, "{e}");
        assert!(e.msg.contains("webcam"), "{e}");
    }

    #[test]
    fn missing_field_is_named() {
        let text =
            "[courtroom]\nid = \"a\"\nname = \"A\"\n[[camera]]\nid = \"c1\"\nkind = \"test\"\n";
        let e = Config::parse("x.toml", text, None).unwrap_err();
        assert!(e.msg.contains("role"), "{e}");
        assert!(e.line >= 4, "{e}");
    }

    #[test]
    fn missing_file_path_is_named_with_line() {
        let text = "[courtroom]\nid = \"a\"\nname = \"A\"\n[[camera]]\nid = \"c1\"\nrole = \"judge\"\nkind = \"file\"\npath = \"/nonexistent/x.mp4\"\n[[microphone]]\nid = \"m1\"\nrole = \"judge\"\nkind = \"test\"\n";
        let e = Config::parse("x.toml", text, None).unwrap_err();
        assert_eq!(e.line, 8, "{e}");
        assert!(e.msg.contains("field `path`"), "{e}");
    }

    #[test]
    fn duplicate_ids_and_typos_rejected() {
        let text = "[courtroom]\nid = \"a\"\nname = \"A\"\n[[camera]]\nid = \"c1\"\nrole = \"judge\"\nkind = \"test\"\n[[microphone]]\nid = \"c1\"\nrole = \"judge\"\nkind = \"test\"\n";
        let e = Config::parse("x.toml", text, None).unwrap_err();
        assert!(e.msg.contains("used twice"), "{e}");
        let text = "[courtroom]\nid = \"a\"\nname = \"A\"\nnmae = \"typo\"\n";
        let e = Config::parse("x.toml", text, None).unwrap_err();
        assert!(e.msg.contains("nmae"), "{e}");
        assert_eq!(e.line, 4);
    }
    #[test]
    fn platform_urls_must_be_of_their_protocol() {
        let base = "[courtroom]\nid = \"a\"\nname = \"A\"\n\
                    [[camera]]\nid = \"c1\"\nrole = \"judge\"\nkind = \"test\"\n\
                    [[microphone]]\nid = \"m1\"\nrole = \"judge\"\nkind = \"test\"\n\
                    [livestream]\n";
        for (field, bad, good) in [
            ("rtmp_url", "http://x/live", "rtmp://x/live/key"),
            ("whip_url", "rtmp://x/live", "https://x/whip/room-1"),
        ] {
            let e =
                Config::parse("x.toml", &format!("{base}{field} = \"{bad}\"\n"), None).unwrap_err();
            assert!(e.msg.contains(field), "{e}");
            assert_eq!(e.line, 13, "{e}");
            Config::parse("x.toml", &format!("{base}{field} = \"{good}\"\n"), None)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn a_preview_decoder_is_one_of_the_two() {
        let base = "[courtroom]\nid = \"a\"\nname = \"A\"\n\
                    [[microphone]]\nid = \"m1\"\nrole = \"judge\"\nkind = \"test\"\n\
                    [[camera]]\nid = \"c1\"\nrole = \"judge\"\nkind = \"rtsp\"\nurl = \"rtsp://cam/1\"\n";
        let cfg = Config::parse("x.toml", base, None).unwrap();
        let cam = cfg.cameras().next().unwrap();
        assert_eq!(cam.preview_decoder, PreviewDecoder::Openh264);
        let cfg = Config::parse(
            "x.toml",
            &format!("{base}preview_decoder = \"libav\"\n"),
            None,
        )
        .unwrap();
        let cam = cfg.cameras().next().unwrap();
        assert_eq!(cam.preview_decoder, PreviewDecoder::Libav);
        let e = Config::parse(
            "x.toml",
            &format!("{base}preview_decoder = \"vaapi\"\n"),
            None,
        )
        .unwrap_err();
        assert_eq!(e.line, 13, "{e}");
        assert!(e.msg.contains("vaapi"), "{e}");
    }
}
