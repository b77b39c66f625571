//! Encryption of site credentials at rest: AES-256-GCM under a master key that comes
//! from `FERRY_MASTER_KEY` or a key file created (mode 0600) on first start.
//!
//! A sealed blob is `version (1 byte) || nonce (12 bytes) || ciphertext+tag`. The site id
//! is bound as associated data, so a blob copied onto another site's row fails to open.

use std::{collections::BTreeMap, io::Write, os::unix::fs::OpenOptionsExt, path::Path};

use aes_gcm::{
    aead::{Aead, AeadCore, KeyInit, OsRng, Payload},
    Aes256Gcm, Key, Nonce,
};
use base64::{engine::general_purpose::STANDARD, Engine};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    domain::{ids::SiteId, site::Credentials},
    error::{Error, Result},
};

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

/// Seals and opens credentials. Holds the only copy of the key in memory.
pub struct Vault {
    cipher: Aes256Gcm,
}

impl Vault {
    /// Loads the master key: from `master_key` (base64 of 32 bytes) when given, else from
    /// `key_file`, which is created with fresh random bytes if it does not exist.
    pub fn load(master_key: Option<&SecretString>, key_file: &Path) -> anyhow::Result<Self> {
        let key = match master_key {
            Some(encoded) => decode_key(encoded.expose_secret())
                .map_err(|reason| anyhow::anyhow!("FERRY_MASTER_KEY: {reason}"))?,
            None => load_or_create_key_file(key_file)?,
        };
        Ok(Vault {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)),
        })
    }

    pub fn seal(&self, site: SiteId, credentials: &Credentials) -> Result<Vec<u8>> {
        let plain: BTreeMap<&str, &str> = credentials
            .entries()
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose_secret()))
            .collect();
        let plaintext = serde_json::to_vec(&plain)
            .map_err(|e| Error::Internal(format!("encoding credentials: {e}")))?;
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = site.to_string();
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: &plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| Error::Internal("sealing credentials failed".into()))?;
        let mut blob = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        blob.push(VERSION);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        Ok(blob)
    }

    pub fn open(&self, site: SiteId, blob: &[u8]) -> Result<Credentials> {
        let corrupt = || {
            Error::Internal(format!(
                "credentials of site {site} cannot be opened: wrong master key or corrupt data"
            ))
        };
        if blob.len() < 1 + NONCE_LEN || blob[0] != VERSION {
            return Err(corrupt());
        }
        let (nonce, ciphertext) = blob[1..].split_at(NONCE_LEN);
        let aad = site.to_string();
        let plaintext = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| corrupt())?;
        let map: BTreeMap<String, String> =
            serde_json::from_slice(&plaintext).map_err(|_| corrupt())?;
        Ok(Credentials::new(
            map.into_iter()
                .map(|(k, v)| (k, SecretString::from(v)))
                .collect(),
        ))
    }
}

fn decode_key(encoded: &str) -> std::result::Result<[u8; 32], String> {
    let bytes = STANDARD
        .decode(encoded.trim())
        .map_err(|_| "must be base64 (e.g. the output of `openssl rand -base64 32`)".to_owned())?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| format!("must decode to 32 bytes, got {}", bytes.len()))
}

fn load_or_create_key_file(path: &Path) -> anyhow::Result<[u8; 32]> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                anyhow::bail!(
                    "master key file {} is accessible by group or others (mode {mode:o}); \
                     run `chmod 600 {}`",
                    path.display(),
                    path.display()
                );
            }
            let contents = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("reading master key file {}: {e}", path.display()))?;
            decode_key(&contents)
                .map_err(|reason| anyhow::anyhow!("master key file {}: {reason}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key: [u8; 32] = Aes256Gcm::generate_key(&mut OsRng).into();
            // create_new: if another process created it meanwhile, fail rather than
            // overwrite a key that may already protect data.
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| anyhow::anyhow!("creating master key file {}: {e}", path.display()))?;
            writeln!(file, "{}", STANDARD.encode(key))?;
            file.sync_all()?;
            tracing::warn!(
                path = %path.display(),
                "created a new master key; back it up: without it, stored credentials are lost"
            );
            Ok(key)
        }
        Err(e) => Err(anyhow::anyhow!(
            "reading master key file {}: {e}",
            path.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials::new(BTreeMap::from([
            ("access_key_id".to_string(), SecretString::from("AKIA")),
            (
                "secret_access_key".to_string(),
                SecretString::from("canary-3141"),
            ),
        ]))
    }

    #[test]
    fn seals_and_opens_bound_to_the_site() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::load(None, &dir.path().join("master.key")).unwrap();
        let site = SiteId::new();
        let blob = vault.seal(site, &creds()).unwrap();
        assert!(!blob.windows(11).any(|w| w == b"canary-3141"));
        let opened = vault.open(site, &blob).unwrap();
        assert_eq!(
            opened.entries()["secret_access_key"].expose_secret(),
            "canary-3141"
        );
        assert!(vault.open(SiteId::new(), &blob).is_err());
    }

    #[test]
    fn key_file_is_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let first = Vault::load(None, &path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let site = SiteId::new();
        let blob = first.seal(site, &creds()).unwrap();
        let second = Vault::load(None, &path).unwrap();
        assert!(second.open(site, &blob).is_ok());

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Vault::load(None, &path).err().unwrap().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn env_key_must_be_32_bytes_of_base64() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unused.key");
        let short = SecretString::from(STANDARD.encode([0u8; 16]));
        let err = Vault::load(Some(&short), &path).err().unwrap().to_string();
        assert!(
            err.starts_with("FERRY_MASTER_KEY: must decode to 32 bytes"),
            "{err}"
        );
        let good = SecretString::from(STANDARD.encode([7u8; 32]));
        assert!(Vault::load(Some(&good), &path).is_ok());
        assert!(!path.exists());
    }
}
