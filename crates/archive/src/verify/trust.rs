//! Whom the verifier trusts: the court's copies of its boxes' verifier keys (`--key`,
//! `--ca`), and the time-stamping authorities' certificates (`--tsa-ca`). A key vouches
//! only for the device it is named for: a checkpoint whose origin names device X is
//! never accepted on device Y's key, however trusted Y is.

use crate::signing::NoteVerifier;
use std::path::{Path, PathBuf};

/// The key name a device signs with.
pub fn key_name(device_id: &str) -> String {
    format!("courtrec/{device_id}")
}

/// Trusted keys for the signer check.
#[derive(Debug, Default, Clone)]
pub struct Trust {
    pub keys: Vec<NoteVerifier>,
    /// Certificates (PEM) of the time-stamping authorities the court trusts, for
    /// `openssl ts -verify`.
    pub tsa_ca: Vec<PathBuf>,
}

impl Trust {
    /// Reads `--key` values (a verifier key, or a file holding one) and `--ca` files
    /// (a court's list: one verifier key per line, `#` comments).
    pub fn load(keys: &[String], lists: &[PathBuf], tsa_ca: &[PathBuf]) -> Result<Trust, String> {
        let mut t = Trust::default();
        for ca in tsa_ca {
            if !ca.is_file() {
                return Err(format!("--tsa-ca {}: no such file", ca.display()));
            }
            t.tsa_ca.push(ca.clone());
        }
        for k in keys {
            let text = if Path::new(k).is_file() {
                std::fs::read_to_string(k).map_err(|e| format!("reading key file {k}: {e}"))?
            } else {
                k.clone()
            };
            t.keys
                .push(NoteVerifier::from_vkey(text.trim()).map_err(|e| format!("--key {k}: {e}"))?);
        }
        for list in lists {
            let text = std::fs::read_to_string(list)
                .map_err(|e| format!("reading trusted key list {}: {e}", list.display()))?;
            for (i, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                t.keys.push(
                    NoteVerifier::from_vkey(line)
                        .map_err(|e| format!("{} line {}: {e}", list.display(), i + 1))?,
                );
            }
        }
        Ok(t)
    }
}

impl Trust {
    /// Whether court-trusted keys were given (else only the folder's own key is used).
    pub fn given(&self) -> bool {
        !self.keys.is_empty()
    }
}
