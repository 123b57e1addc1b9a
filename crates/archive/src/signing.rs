//! The device's Ed25519 key and signed notes in the C2SP "signed note" format
//! (<https://c2sp.org/signed-note>), which checkpoints use: a text body, a blank line,
//! then lines "— <key name> <base64(key id || signature)>". Anyone holding the device's
//! verifier key (`courtrec key show`) can check a note offline with standard tools.

use crate::error::{Error, ErrorKind, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

/// Signature type byte of Ed25519 in signed notes.
const ALG_ED25519: u8 = 0x01;

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Invalid, msg)
}

/// The private key of this box.
pub struct DeviceKey {
    name: String,
    key: SigningKey,
}

impl DeviceKey {
    /// Loads the key at `path`, or creates it on first start (mode 0600: only the
    /// daemon's user may read it). A key file others can read is refused: whoever can
    /// read it can sign hearings as this box.
    pub fn load_or_create(path: &Path, name: &str) -> Result<DeviceKey> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let mode = std::fs::metadata(path)
                    .map_err(|e| Error::io(format!("reading {}", path.display()), e))?
                    .permissions()
                    .mode();
                if mode & 0o077 != 0 {
                    return Err(invalid(format!(
                        "device key {} is readable by other users (mode {:o}); run `chmod 600 {}`",
                        path.display(),
                        mode & 0o777,
                        path.display()
                    )));
                }
                let seed: [u8; 32] = hex::decode(text.trim())
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| {
                        invalid(format!(
                            "device key {} is not 64 hex digits",
                            path.display()
                        ))
                    })?;
                Ok(DeviceKey {
                    name: name.to_string(),
                    key: SigningKey::from_bytes(&seed),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
                }
                let seed: [u8; 32] = rand::random();
                // Written to a temporary file, fsynced, then linked into place: a crash
                // leaves either no key (made again at the next start, nothing signed
                // yet) or the whole key, never an empty key file that refuses to load.
                // `hard_link` fails if another process made the key meanwhile.
                let mut tmp = path.as_os_str().to_owned();
                tmp.push(format!(".{}.tmp", std::process::id()));
                let tmp = std::path::PathBuf::from(tmp);
                let _ = std::fs::remove_file(&tmp);
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(|e| Error::io(format!("creating device key {}", tmp.display()), e))?;
                let written = f
                    .write_all(format!("{}\n", hex::encode(seed)).as_bytes())
                    .and_then(|_| f.sync_all())
                    .and_then(|_| std::fs::hard_link(&tmp, path));
                let _ = std::fs::remove_file(&tmp);
                match written {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        return DeviceKey::load_or_create(path, name);
                    }
                    Err(e) => {
                        return Err(Error::io(
                            format!("writing device key {}", path.display()),
                            e,
                        ));
                    }
                }
                if let Some(dir) = path.parent() {
                    crate::sync_dir(dir)?;
                }
                Ok(DeviceKey {
                    name: name.to_string(),
                    key: SigningKey::from_bytes(&seed),
                })
            }
            Err(e) => Err(Error::io(
                format!("reading device key {}", path.display()),
                e,
            )),
        }
    }

    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// Signs `body` (which must end with a newline) as a signed note.
    pub fn sign_note(&self, body: &str) -> Result<String> {
        if !body.ends_with('\n') || body.contains("\n\n") {
            return Err(invalid(
                "a note body ends with one newline and has no blank line",
            ));
        }
        let sig = self.key.sign(body.as_bytes());
        let mut blob = self.verifier().key_id().to_vec();
        blob.extend_from_slice(&sig.to_bytes());
        Ok(format!(
            "{body}\n\u{2014} {} {}\n",
            self.name,
            B64.encode(blob)
        ))
    }
}

/// A public key that checks notes, as C2SP "verifier key" text: `name+keyid+base64`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    pub name: String,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// First four bytes of SHA-256(name || "\n" || 0x01 || public key).
    pub fn key_id(&self) -> [u8; 4] {
        let mut h = Sha256::new();
        h.update(self.name.as_bytes());
        h.update(b"\n");
        h.update([ALG_ED25519]);
        h.update(self.key.as_bytes());
        let d = h.finalize();
        [d[0], d[1], d[2], d[3]]
    }

    /// `name+<key id hex>+<base64(0x01 || public key)>`.
    pub fn to_vkey(&self) -> String {
        let mut blob = vec![ALG_ED25519];
        blob.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.key_id()),
            B64.encode(blob)
        )
    }

    pub fn from_vkey(text: &str) -> Result<NoteVerifier> {
        let bad = || {
            invalid(format!(
                "not a verifier key (name+keyid+base64): {}",
                text.trim()
            ))
        };
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        let blob = B64.decode(b64).map_err(|_| bad())?;
        if blob.len() != 33 || blob[0] != ALG_ED25519 {
            return Err(bad());
        }
        let bytes: [u8; 32] = blob[1..].try_into().map_err(|_| bad())?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| bad())?;
        let v = NoteVerifier {
            name: name.to_string(),
            key,
        };
        if hex::encode(v.key_id()) != id {
            return Err(invalid(format!(
                "verifier key {}: key id does not match the key",
                name
            )));
        }
        Ok(v)
    }

    /// Human-checkable fingerprint of the public key.
    pub fn fingerprint(&self) -> String {
        let d = Sha256::digest(self.key.as_bytes());
        let hexs = hex::encode(&d[..16]);
        let groups: Vec<&str> = (0..hexs.len())
            .step_by(4)
            .map(|i| &hexs[i..i + 4])
            .collect();
        format!("SHA256:{}", groups.join(":"))
    }

    /// Checks a signed note and returns its body. Fails unless one signature line is by
    /// this key and valid.
    pub fn verify_note(&self, note: &str) -> Result<String> {
        let Some(split) = note.rfind("\n\n") else {
            return Err(invalid(
                "not a signed note: no blank line before the signatures",
            ));
        };
        let body = &note[..split + 1];
        let sigs = &note[split + 2..];
        for line in sigs.lines() {
            let Some(rest) = line.strip_prefix("\u{2014} ") else {
                return Err(invalid(format!("malformed signature line: {line}")));
            };
            let Some((name, b64)) = rest.rsplit_once(' ') else {
                return Err(invalid(format!("malformed signature line: {line}")));
            };
            if name != self.name {
                continue;
            }
            let blob = B64
                .decode(b64)
                .map_err(|_| invalid("signature is not base64"))?;
            if blob.len() != 68 || blob[..4] != self.key_id() {
                continue;
            }
            let sig =
                Signature::from_slice(&blob[4..]).map_err(|_| invalid("malformed signature"))?;
            return self
                .key
                .verify(body.as_bytes(), &sig)
                .map(|_| body.to_string())
                .map_err(|_| {
                    Error::new(
                        ErrorKind::PermissionDenied,
                        format!("bad signature by {}", self.name),
                    )
                });
        }
        Err(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "no signature by {} ({})",
                self.name,
                hex::encode(self.key_id())
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn key_is_created_private_and_reloaded() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("keys/device.key");
        let k1 = DeviceKey::load_or_create(&p, "courtrec/dev-1").unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let k2 = DeviceKey::load_or_create(&p, "courtrec/dev-1").unwrap();
        assert_eq!(k1.verifier(), k2.verifier());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = DeviceKey::load_or_create(&p, "courtrec/dev-1")
            .err()
            .unwrap();
        assert!(e.msg.contains("chmod 600"), "{e}");
    }

    #[test]
    fn notes_verify_and_tampering_or_another_key_fails() {
        let tmp = tempfile::tempdir().unwrap();
        let k = DeviceKey::load_or_create(&tmp.path().join("a.key"), "courtrec/dev-1").unwrap();
        let other = DeviceKey::load_or_create(&tmp.path().join("b.key"), "courtrec/dev-1").unwrap();
        let note = k
            .sign_note("courtrec/dev-1/h1\n12\nq6n8oeoiw6bdLI9o9m3yD+UC3xIMWspfoAaNcmUQEoo=\n")
            .unwrap();
        let v = NoteVerifier::from_vkey(&k.verifier().to_vkey()).unwrap();
        assert_eq!(
            v.verify_note(&note).unwrap(),
            "courtrec/dev-1/h1\n12\nq6n8oeoiw6bdLI9o9m3yD+UC3xIMWspfoAaNcmUQEoo=\n"
        );
        assert!(
            v.verify_note(&note.replace("\n12\n", "\n13\n")).is_err(),
            "edited body"
        );
        assert!(other.verifier().verify_note(&note).is_err(), "another key");
        assert!(v.verify_note("no signature").is_err());
        assert!(v.fingerprint().starts_with("SHA256:"));
        assert!(NoteVerifier::from_vkey("x+00000000+AAAA").is_err());
    }
}
