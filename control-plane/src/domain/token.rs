//! Bearer tokens: who may call the control plane, with which role, until when. Only a
//! hash of each secret is kept; the secret is shown once, when the token is made.

use chrono::{DateTime, Utc};

use super::{
    ids::{SiteId, TokenId},
    name::Name,
    principal::Role,
};
use crate::error::{Error, Result};

/// A token as the catalogue holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    pub id: TokenId,
    pub name: Name,
    pub role: Role,
    /// The site an agent token is bound to.
    pub site: Option<SiteId>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The principal that made it (`token:admin`).
    pub created_by: String,
}

impl Token {
    /// Whether the token may be used at `now`: not revoked, not expired.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }
}

/// What a new token is made from.
#[derive(Clone, Debug)]
pub struct NewToken {
    pub name: Name,
    pub role: Role,
    pub site: Option<SiteId>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl NewToken {
    /// An agent token needs its site, and no other token has one; an expiry lies ahead.
    pub fn validate(&self, now: DateTime<Utc>) -> Result<()> {
        match (self.role, self.site) {
            (Role::Agent, None) => {
                return Err(Error::invalid(
                    "site",
                    "an agent token needs the site it serves",
                ))
            }
            (role, Some(_)) if role != Role::Agent => {
                return Err(Error::invalid(
                    "site",
                    format!("only agent tokens are bound to a site, not {role} ones"),
                ))
            }
            _ => {}
        }
        if self.expires_at.is_some_and(|at| at <= now) {
            return Err(Error::invalid("expire_time", "must lie in the future"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(role: Role, site: Option<SiteId>) -> NewToken {
        NewToken {
            name: Name::parse("name", "t").unwrap(),
            role,
            site,
            expires_at: None,
        }
    }

    #[test]
    fn agent_tokens_and_only_they_name_a_site() {
        let now = Utc::now();
        assert!(new(Role::Agent, Some(SiteId::new())).validate(now).is_ok());
        assert!(new(Role::Viewer, None).validate(now).is_ok());
        let e = new(Role::Agent, None).validate(now).unwrap_err();
        assert!(e.to_string().starts_with("site: "), "{e}");
        assert!(new(Role::Admin, Some(SiteId::new())).validate(now).is_err());
        let past = NewToken {
            expires_at: Some(now - chrono::Duration::seconds(1)),
            ..new(Role::Viewer, None)
        };
        assert!(past.validate(now).is_err());
    }

    #[test]
    fn revoked_and_expired_tokens_are_inactive() {
        let now = Utc::now();
        let mut token = Token {
            id: TokenId::new(),
            name: Name::parse("name", "t").unwrap(),
            role: Role::Viewer,
            site: None,
            created_at: now,
            expires_at: None,
            revoked_at: None,
            created_by: "token:admin".into(),
        };
        assert!(token.is_active(now));
        token.expires_at = Some(now);
        assert!(!token.is_active(now));
        token.expires_at = None;
        token.revoked_at = Some(now);
        assert!(!token.is_active(now));
    }
}
