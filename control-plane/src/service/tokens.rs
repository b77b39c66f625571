//! Bearer tokens: making, listing and revoking them, and telling who holds a secret.
//!
//! A secret is `fy_` and 32 random bytes in base64url (256 bits); the catalogue keeps
//! only its SHA-256. A fast hash is enough for secrets of that entropy: nobody can guess
//! one from its hash, and checking a call costs one indexed lookup.

use std::{io::Write, path::Path};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::{DateTime, Utc};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::{sessions::Sessions, Catalogue};
use crate::{
    call,
    domain::{
        audit::{AuditEvent, AuditFilter},
        ids::{SiteId, TokenId},
        name::{Name, Ref},
        page::{Page, PageRequest},
        principal::{Principal, Role, Who},
        token::{NewToken, Token},
    },
    error::{Error, Result},
};

/// What every secret starts with, so that a leaked one is recognisable (and scanners
/// can look for it).
const PREFIX: &str = "fy_";

/// The name of the token made on first start.
const BOOTSTRAP_NAME: &str = "admin";

/// A token to make: the service resolves its site.
pub struct TokenRequest {
    pub name: Name,
    pub role: Role,
    pub site: Option<Ref<SiteId>>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Clone)]
pub struct Tokens {
    catalogue: Catalogue,
    sessions: Sessions,
}

impl Tokens {
    pub fn new(catalogue: Catalogue, sessions: Sessions) -> Self {
        Tokens {
            catalogue,
            sessions,
        }
    }

    /// Makes a token; its secret is in the answer and nowhere else.
    pub async fn create(&self, req: TokenRequest) -> Result<(Token, SecretString)> {
        call::set_target(format!("token:{}", req.name));
        let site = match &req.site {
            Some(r) => Some(self.catalogue.referenced_site("site", r).await?.id),
            None => None,
        };
        let now = self.catalogue.clock().now();
        let new = NewToken {
            name: req.name,
            role: req.role,
            site,
            expires_at: req.expires_at,
        };
        new.validate(now)?;
        let created_by = call::current()
            .map(|c| c.principal.to_string())
            .unwrap_or_else(|| "system:bootstrap".to_owned());
        let token = Token {
            id: TokenId::new(),
            name: new.name,
            role: new.role,
            site: new.site,
            created_at: now,
            expires_at: new.expires_at,
            revoked_at: None,
            created_by,
        };
        let secret = new_secret();
        self.catalogue
            .store()
            .insert_token(&token, &hash(secret.expose_secret()))
            .await?;
        info!(token = %token.name, role = %token.role, "token created");
        Ok((token, secret))
    }

    pub async fn list(&self, include_inactive: bool, page: &PageRequest) -> Result<Page<Token>> {
        let now = self.catalogue.clock().now();
        self.catalogue
            .store()
            .list_tokens(include_inactive, now, page)
            .await
    }

    /// Revokes a token: from now on it is refused, and the streams it opened end
    /// (here at once; on other control planes within a second).
    pub async fn revoke(&self, r: &Ref<TokenId>) -> Result<Token> {
        call::set_target(format!("token:{r}"));
        let store = self.catalogue.store();
        let mut token = store
            .find_token(r)
            .await?
            .ok_or_else(|| Error::not_found("token", r))?;
        if token.revoked_at.is_none() {
            let now = self.catalogue.clock().now();
            // Nobody could make tokens any more, nor read the audit log.
            if token.role == Role::Admin
                && token.is_active(now)
                && store.count_active_tokens(Role::Admin, now).await? <= 1
            {
                return Err(Error::FailedPrecondition(format!(
                    "token {} is the last valid admin token; make another admin token \
                     before revoking it",
                    token.name
                )));
            }
            store.revoke_token(token.id, &token.name, now).await?;
            token.revoked_at = Some(now);
            info!(token = %token.name, "token revoked");
        }
        self.sessions.end(token.id);
        Ok(token)
    }

    /// The audit log, newest first.
    pub async fn audit_events(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditEvent>> {
        self.catalogue.store().list_audit_events(filter, page).await
    }

    /// Who holds `secret`: an active token's holder, or `Unauthenticated`.
    pub async fn authenticate(&self, secret: &str) -> Result<Principal> {
        let unknown = || Error::Unauthenticated("the bearer token is not known".into());
        if !secret.starts_with(PREFIX) {
            return Err(unknown());
        }
        let token = self
            .catalogue
            .store()
            .find_token_by_hash(&hash(secret))
            .await?
            .ok_or_else(unknown)?;
        if token.revoked_at.is_some() {
            return Err(Error::Unauthenticated(format!(
                "token {} has been revoked",
                token.name
            )));
        }
        let now = self.catalogue.clock().now();
        if !token.is_active(now) {
            return Err(Error::Unauthenticated(format!(
                "token {} has expired",
                token.name
            )));
        }
        Ok(Principal {
            who: Who::Token(token.name.to_string()),
            role: token.role,
            token: Some(token.id),
            site: token.site,
            certificate: None,
            expires_at: token.expires_at,
        })
    }

    /// On first start (no token in the catalogue), makes an admin token and writes its
    /// secret to `path`, readable by this user only. The file is written before the
    /// token is stored: a crash in between leaves a file that a second start replaces,
    /// never a token nobody knows the secret of.
    ///
    /// With `seed` (`auth.admin_token_file`, a mounted secret, say) the first admin token
    /// is the secret that file holds, and nothing is written: whoever provisioned the
    /// file has it. A seed is read and checked at every start, so a bad one stops the
    /// control plane whether or not it is still needed.
    pub async fn bootstrap(&self, path: &Path, seed: Option<&Path>) -> Result<()> {
        let seeded = seed.map(read_seed).transpose()?;
        let store = self.catalogue.store();
        if store.has_tokens().await? {
            if seeded.is_none() && path.exists() {
                info!(path = %path.display(), "the first admin token is in this file");
            }
            return Ok(());
        }
        let (secret, path) = match seeded {
            Some(secret) => (secret, seed.unwrap_or(path)),
            None => {
                let secret = new_secret();
                write_private(path, secret.expose_secret()).map_err(|e| {
                    Error::Internal(format!(
                        "writing the admin token to {}: {e}",
                        path.display()
                    ))
                })?;
                (secret, path)
            }
        };
        let now = self.catalogue.clock().now();
        let token = Token {
            id: TokenId::new(),
            name: Name::parse("name", BOOTSTRAP_NAME)?,
            role: Role::Admin,
            site: None,
            created_at: now,
            expires_at: None,
            revoked_at: None,
            created_by: "system:bootstrap".to_owned(),
        };
        match store
            .insert_token(&token, &hash(secret.expose_secret()))
            .await
        {
            Ok(()) if seed.is_some() => {
                info!(path = %path.display(), "first start: the admin token is the one this file holds");
                Ok(())
            }
            Ok(()) => {
                info!(path = %path.display(), "first start: admin token written to this file (mode 0600)");
                Ok(())
            }
            // Another control plane of the same catalogue made it first.
            Err(Error::AlreadyExists(_)) => {
                warn!(path = %path.display(), "another control plane made the first admin token; ask its operator");
                if seed.is_none() {
                    let _ = std::fs::remove_file(path);
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// The shortest seeded admin token after its prefix: as hard to guess as 16 random
/// bytes in hex.
const MIN_SEED_LEN: usize = 32;

/// The first line of the seed file, trimmed, if it is a token: Ferry's prefix (which
/// lets secret scanners find tokens) and enough characters to be a secret.
pub(crate) fn read_seed(path: &Path) -> Result<SecretString> {
    let field = "auth.admin_token_file";
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::invalid(field, format!("reading {}: {e}", path.display())))?;
    let secret = text.lines().next().unwrap_or_default().trim();
    let body = secret.strip_prefix(PREFIX).unwrap_or_default();
    if body.chars().count() < MIN_SEED_LEN || !body.chars().all(|c| c.is_ascii_graphic()) {
        return Err(Error::invalid(
            field,
            format!(
                "{} must hold on its first line a token: {PREFIX} then at least \
                 {MIN_SEED_LEN} characters without spaces (\"{PREFIX}$(openssl rand -hex 24)\")",
                path.display()
            ),
        ));
    }
    Ok(SecretString::from(secret.to_owned()))
}

fn new_secret() -> SecretString {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    SecretString::from(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw)))
}

/// The SHA-256 of a secret in hex: what the catalogue stores.
fn hash(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `contents` (and a newline) to `path` with mode 0600, atomically: a temporary
/// file in the same directory, then a rename over any earlier file.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("token")
    ));
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_carry_256_random_bits_and_hash_to_hex() {
        let a = new_secret();
        let b = new_secret();
        assert_ne!(a.expose_secret(), b.expose_secret());
        let body = a.expose_secret().strip_prefix(PREFIX).unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(body).unwrap().len(), 32);
        let h = hash(a.expose_secret());
        assert_eq!(h.len(), 64);
        assert!(!h.contains(body));
    }

    #[test]
    fn the_admin_token_file_is_private_and_replaced_whole() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        write_private(&path, "fy_first").unwrap();
        write_private(&path, "fy_second").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "fy_second\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
