//! The archive server's configuration (`courtrec archive serve --config archive.toml`):
//! the same `[archive]` section as a box (its prefix may be a parent: `court-a/` for all
//! of a court's courtrooms), `[[user]]` entries like a box's, and optionally `[server]`,
//! `[device]` (its own key), `[login]`, `[exports]` and the court's list of trusted
//! keys. No courtroom, no cameras: it records nothing.

use super::{
    Config, ConfigError, Courtroom, Device, Exports, Login, Server, UserRole, UserSeed, line_of,
};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveServer {
    /// Shown on the pages (e.g. "Court A archive").
    #[serde(default = "default_name")]
    pub name: String,
    pub archive: super::archive::Archive,
    #[serde(default)]
    pub server: Server,
    #[serde(default)]
    pub device: Device,
    #[serde(default)]
    pub login: Login,
    #[serde(default)]
    pub exports: Exports,
    #[serde(default)]
    pub metrics: super::Metrics,
    /// The court's list of trusted verifier keys (its boxes' and archive servers'),
    /// one per line, as for `courtrec verify --ca`: verifications and exports check
    /// signers against it. Without it they say the signer was not checked.
    #[serde(default)]
    pub trusted_keys: Option<PathBuf>,
    #[serde(default, rename = "user")]
    pub users: Vec<Spanned<UserSeed>>,
}

fn default_name() -> String {
    "Court archive".into()
}

impl ArchiveServer {
    pub fn load(path: &Path) -> Result<ArchiveServer, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            line: 0,
            msg: format!("cannot read config: {e}"),
        })?;
        let mut c: ArchiveServer = toml::from_str(&text).map_err(|e| ConfigError {
            file: file.clone(),
            line: e.span().map(|s| line_of(&text, s.start)).unwrap_or(0),
            msg: e.message().to_string(),
        })?;
        let fail = |key: &str, msg: String| ConfigError {
            file: file.clone(),
            line: line_of(&text, text.find(key).unwrap_or(0)),
            msg,
        };
        let base = path.parent().filter(|b| !b.as_os_str().is_empty());
        c.archive.validate(base).map_err(|m| fail("[archive]", m))?;
        if let Some(base) = base {
            for p in [
                Some(&mut c.server.data_dir),
                c.device.key_path.as_mut(),
                c.trusted_keys.as_mut(),
                c.server.tls_cert.as_mut(),
                c.server.tls_key.as_mut(),
            ]
            .into_iter()
            .flatten()
            {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
        }
        if let Some(t) = &c.trusted_keys
            && let Err(e) = crate::archive::verify::Trust::load(&[], std::slice::from_ref(t), &[])
        {
            return Err(fail("trusted_keys", format!("field `trusted_keys`: {e}")));
        }
        for u in &c.users {
            let u = u.get_ref();
            if u.role == UserRole::Party {
                return Err(fail(
                    &u.name,
                    format!(
                        "user '{}': parties log in with an access code, not an account",
                        u.name
                    ),
                ));
            }
            if argon2::PasswordHash::new(&u.password_hash).is_err() {
                return Err(fail(
                    &u.name,
                    format!(
                        "user '{}' field `password_hash`: not an argon2 hash (make one with `courtrec hash-password`)",
                        u.name
                    ),
                ));
            }
        }
        Ok(c)
    }

    /// The configuration the shared parts (API, access, exports) read.
    pub fn to_config(&self) -> Config {
        Config {
            courtroom: Courtroom {
                id: "archive".into(),
                name: self.name.clone(),
                court: String::new(),
            },
            server: self.server.clone(),
            device: self.device.clone(),
            recording: Default::default(),
            composite: Default::default(),
            alarms: Default::default(),
            livestream: Default::default(),
            exports: self.exports.clone(),
            login: self.login.clone(),
            archive: Some(self.archive.clone()),
            metrics: self.metrics.clone(),
            cameras: Vec::new(),
            microphones: Vec::new(),
            users: self.users.clone(),
            demo: false,
        }
    }
}
