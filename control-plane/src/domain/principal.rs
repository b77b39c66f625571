//! Who is calling, and what their role lets them do.
//!
//! Every `ferry.v1` call is made by a principal: the holder of a bearer token (with a
//! client certificate's subject when mutual TLS is on), the control plane's own loops
//! (the autopilot), or, with authentication off, an anonymous caller treated as admin.

use std::fmt;

use chrono::{DateTime, Utc};

use super::ids::{SiteId, TokenId};

/// What a token may do. Viewer, operator and admin are ordered, each able to do what
/// the one before it can; an agent token is apart, bound to one site.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Viewer,
    Operator,
    Admin,
    Agent,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
            Role::Agent => "agent",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "viewer" => Role::Viewer,
            "operator" => Role::Operator,
            "admin" => Role::Admin,
            "agent" => Role::Agent,
            _ => return None,
        })
    }

    /// Whether a holder of this role may do what `needed` may.
    pub fn covers(self, needed: Role) -> bool {
        let rank = |r: Role| match r {
            Role::Viewer => Some(1),
            Role::Operator => Some(2),
            Role::Admin => Some(3),
            Role::Agent => None,
        };
        match (rank(self), rank(needed)) {
            (Some(have), Some(need)) => have >= need,
            _ => self == needed,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who makes a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Who {
    /// The holder of a token, by the token's name.
    Token(String),
    /// One of the control plane's own loops (`autopilot`).
    System(&'static str),
    /// Anyone, with authentication off.
    Anonymous,
    /// A caller refused before it was known (no, or no valid, token).
    Unknown,
}

/// A caller and what it may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub who: Who,
    pub role: Role,
    /// The token behind the call, so a revocation can end the streams it opened.
    pub token: Option<TokenId>,
    /// The site an agent token is bound to.
    pub site: Option<SiteId>,
    /// The subject of the client certificate, with mutual TLS.
    pub certificate: Option<String>,
    /// When the token behind the call expires, ending the streams it opened.
    pub expires_at: Option<DateTime<Utc>>,
}

impl Principal {
    /// One of the control plane's own loops: it may do what an admin may.
    pub fn system(name: &'static str) -> Self {
        Principal {
            who: Who::System(name),
            role: Role::Admin,
            token: None,
            site: None,
            certificate: None,
            expires_at: None,
        }
    }

    /// Anyone, when authentication is off: treated as an admin.
    pub fn anonymous() -> Self {
        Principal {
            who: Who::Anonymous,
            ..Principal::system("anonymous")
        }
    }

    /// A caller that did not authenticate, for the audit log of a refusal.
    pub fn unknown() -> Self {
        Principal {
            who: Who::Unknown,
            role: Role::Viewer,
            ..Principal::system("unknown")
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.who {
            Who::Token(name) => write!(f, "token:{name}")?,
            Who::System(name) => write!(f, "system:{name}")?,
            Who::Anonymous => f.write_str("anonymous")?,
            Who::Unknown => f.write_str("unknown")?,
        }
        if let Some(subject) = &self.certificate {
            write!(f, " cert:{subject}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_cover_the_ones_below_them_and_agents_only_agents() {
        assert!(Role::Admin.covers(Role::Operator));
        assert!(Role::Admin.covers(Role::Viewer));
        assert!(Role::Operator.covers(Role::Viewer));
        assert!(!Role::Viewer.covers(Role::Operator));
        assert!(!Role::Operator.covers(Role::Admin));
        assert!(!Role::Admin.covers(Role::Agent));
        assert!(!Role::Agent.covers(Role::Viewer));
        assert!(Role::Agent.covers(Role::Agent));
        for role in [Role::Viewer, Role::Operator, Role::Admin, Role::Agent] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
    }

    #[test]
    fn principals_print_as_the_audit_log_names_them() {
        let mut p = Principal {
            who: Who::Token("ci".into()),
            role: Role::Operator,
            token: None,
            site: None,
            certificate: None,
            expires_at: None,
        };
        assert_eq!(p.to_string(), "token:ci");
        p.certificate = Some("CN=agent-fast".into());
        assert_eq!(p.to_string(), "token:ci cert:CN=agent-fast");
        assert_eq!(
            Principal::system("autopilot").to_string(),
            "system:autopilot"
        );
    }
}
