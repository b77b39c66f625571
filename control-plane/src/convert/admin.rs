//! Tokens, roles and the audit log.

use ferry_proto::{
    time::{from_timestamp, to_timestamp},
    v1 as pb,
};

use crate::{
    domain::{audit::AuditEvent, principal::Role, token::Token},
    error::{Error, Result},
};

pub fn role(field: &str, value: i32) -> Result<Role> {
    match pb::Role::try_from(value) {
        Ok(pb::Role::Viewer) => Ok(Role::Viewer),
        Ok(pb::Role::Operator) => Ok(Role::Operator),
        Ok(pb::Role::Admin) => Ok(Role::Admin),
        Ok(pb::Role::Agent) => Ok(Role::Agent),
        Ok(pb::Role::Unspecified) => Err(Error::invalid(
            field,
            "must be viewer, operator, admin or agent",
        )),
        Err(_) => Err(Error::invalid(field, format!("unknown role {value}"))),
    }
}

pub fn role_to_pb(r: Role) -> i32 {
    match r {
        Role::Viewer => pb::Role::Viewer,
        Role::Operator => pb::Role::Operator,
        Role::Admin => pb::Role::Admin,
        Role::Agent => pb::Role::Agent,
    }
    .into()
}

/// An optional point in time; `None` when unset.
pub fn time(
    field: &str,
    t: Option<&prost_types::Timestamp>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
    t.map(|t| from_timestamp(t).ok_or_else(|| Error::invalid(field, "not a valid timestamp")))
        .transpose()
}

/// A token as clients see it: never its secret, which the catalogue does not have.
pub fn token_to_pb(t: Token) -> pb::Token {
    pb::Token {
        id: t.id.to_string(),
        name: t.name.to_string(),
        role: role_to_pb(t.role),
        site: t.site.map(|s| s.to_string()).unwrap_or_default(),
        create_time: Some(to_timestamp(t.created_at)),
        expire_time: t.expires_at.map(to_timestamp),
        revoke_time: t.revoked_at.map(to_timestamp),
        created_by: t.created_by,
    }
}

pub fn audit_event_to_pb(e: AuditEvent) -> pb::AuditEvent {
    pb::AuditEvent {
        id: e.id.to_string(),
        time: Some(to_timestamp(e.at)),
        principal: e.principal,
        role: role_to_pb(e.role),
        method: e.method,
        resource: e.resource,
        summary: e.summary,
        outcome: e.outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_unspecified_names_the_field() {
        for r in [Role::Viewer, Role::Operator, Role::Admin, Role::Agent] {
            assert_eq!(role("role", role_to_pb(r)).unwrap(), r);
        }
        let e = role("role", 0).unwrap_err().to_string();
        assert_eq!(e, "role: must be viewer, operator, admin or agent");
        assert_eq!(
            role("role", 9).unwrap_err().to_string(),
            "role: unknown role 9"
        );
    }
}
