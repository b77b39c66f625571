//! The audit log: one record per call that changed something, or was refused.

use chrono::{DateTime, Utc};

use super::{ids::AuditEventId, principal::Role};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: AuditEventId,
    pub at: DateTime<Utc>,
    /// `token:<name>` (with ` cert:<subject>`), `system:<loop>`, `anonymous`, `unknown`.
    pub principal: String,
    pub role: Role,
    /// The RPC: `ferry.v1.SiteService/CreateSite`.
    pub method: String,
    /// What it acted on: `site:fast`, `job:<id>`.
    pub resource: String,
    /// What changed; never a secret.
    pub summary: String,
    /// `ok`, `denied: …` or `failed: …`.
    pub outcome: String,
}

/// Which records `ListAuditEvents` returns; each set field narrows them.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub principal: Option<String>,
    pub resource: Option<String>,
    pub method: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}
