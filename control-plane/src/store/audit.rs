//! The audit log's rows. A change records itself with [`record`], inside the
//! transaction that makes it, so a crash cannot leave a change without its record; a
//! call refused or failed is recorded on its own by the gRPC layer.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::{corrupt, db_error, entity::audit_event, Store};
use crate::{
    call,
    domain::{
        audit::{AuditEvent, AuditFilter},
        ids::AuditEventId,
        page::{Page, PageRequest},
        principal::Role,
    },
    error::Result,
};

/// Records a change of the current call (if the task serves one) as done: `resource`
/// names what it acted on (`site:fast`), `summary` what changed, never a secret.
pub(super) async fn record(
    db: &impl ConnectionTrait,
    resource: impl Into<String>,
    summary: impl Into<String>,
) -> Result<()> {
    let Some(call) = call::current() else {
        return Ok(());
    };
    let event = AuditEvent {
        id: AuditEventId::new(),
        at: call.at,
        principal: call.principal.to_string(),
        role: call.principal.role,
        method: call.method.clone(),
        resource: resource.into(),
        summary: summary.into(),
        outcome: "ok".into(),
    };
    insert(db, &event).await?;
    call.mark_recorded();
    Ok(())
}

async fn insert(db: &impl ConnectionTrait, e: &AuditEvent) -> Result<()> {
    let row = audit_event::ActiveModel {
        id: Set(e.id.to_string()),
        at: Set(e.at),
        principal: Set(e.principal.clone()),
        role: Set(e.role.as_str().to_owned()),
        method: Set(e.method.clone()),
        resource: Set(e.resource.clone()),
        summary: Set(e.summary.clone()),
        outcome: Set(e.outcome.clone()),
    };
    audit_event::Entity::insert(row)
        .exec(db)
        .await
        .map_err(db_error)?;
    Ok(())
}

impl Store {
    /// Records a call on its own: a refusal, a failure, or a call that changed nothing.
    pub async fn append_audit(&self, e: &AuditEvent) -> Result<()> {
        insert(&self.db, e).await
    }

    /// The audit log, newest first, through `filter`.
    pub async fn list_audit_events(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditEvent>> {
        let mut query = audit_event::Entity::find().order_by_desc(audit_event::Column::Id);
        if let Some(principal) = &filter.principal {
            query = query.filter(audit_event::Column::Principal.eq(principal.as_str()));
        }
        if let Some(resource) = &filter.resource {
            query = query.filter(audit_event::Column::Resource.eq(resource.as_str()));
        }
        if let Some(method) = &filter.method {
            query = query.filter(audit_event::Column::Method.eq(method.as_str()));
        }
        if let Some(since) = filter.since {
            query = query.filter(audit_event::Column::At.gte(since));
        }
        if let Some(until) = filter.until {
            query = query.filter(audit_event::Column::At.lt(until));
        }
        if let Some(after) = &page.after {
            query = query.filter(audit_event::Column::Id.lt(after.as_str()));
        }
        let rows = query
            .limit(page.size + 1)
            .all(&self.db)
            .await
            .map_err(db_error)?;
        let events = rows
            .into_iter()
            .map(to_domain)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(events, page.size, |e| e.id.to_string()))
    }
}

fn to_domain(row: audit_event::Model) -> Result<AuditEvent> {
    let bad = |what: String| corrupt("audit_events", &row.id, what);
    Ok(AuditEvent {
        id: row.id.parse().map_err(|e| bad(format!("id: {e}")))?,
        at: row.at,
        role: Role::parse(&row.role).ok_or_else(|| bad(format!("role {}", row.role)))?,
        principal: row.principal,
        method: row.method,
        resource: row.resource,
        summary: row.summary,
        outcome: row.outcome,
    })
}

/// When `at` falls, for a summary: RFC 3339 to the second.
pub(super) fn when(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
