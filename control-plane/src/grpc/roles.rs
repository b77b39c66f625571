//! Who may call what: one table from each `ferry.v1` method to the role it needs and
//! whether a call of it is recorded in the audit log. The authentication layer reads
//! it; a test checks that it names every method of every service, and nothing else.
//!
//! Roles nest (viewer < operator < admin). An agent token is apart: it may call the
//! agent methods, plus the few reads an agent makes about its own work (`agents`).

use crate::domain::principal::Role;

/// What calling one method takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The least role that may call it.
    pub role: Role,
    /// Agent tokens may call it too (confined to their site by the handler).
    pub agents: bool,
    /// It changes something: every call is recorded in the audit log.
    pub audited: bool,
}

impl Rule {
    pub fn allows(&self, role: Role) -> bool {
        role.covers(self.role) || (self.agents && role == Role::Agent)
    }
}

const fn rule(role: Role, agents: bool, audited: bool) -> Rule {
    Rule {
        role,
        agents,
        audited,
    }
}

const VIEW: Rule = rule(Role::Viewer, false, false);
/// A read an agent makes about its own site's work.
const VIEW_AGENT: Rule = rule(Role::Viewer, true, false);
const OPERATE: Rule = rule(Role::Operator, false, true);
/// Operator work that changes nothing in the catalogue, recorded elsewhere.
const OPERATE_UNAUDITED: Rule = rule(Role::Operator, false, false);
const ADMINISTER: Rule = rule(Role::Admin, false, true);
const ADMIN_READ: Rule = rule(Role::Admin, false, false);
const AGENT: Rule = rule(Role::Agent, false, false);
const AGENT_AUDITED: Rule = rule(Role::Agent, false, true);

/// Every `ferry.v1` method (`Service/Method`, without the package) and its rule.
pub const TABLE: &[(&str, Rule)] = &[
    ("SiteService/CreateSite", ADMINISTER),
    ("SiteService/GetSite", VIEW_AGENT),
    ("SiteService/ListSites", VIEW),
    ("SiteService/UpdateSite", ADMINISTER),
    ("SiteService/DeleteSite", ADMINISTER),
    ("DatasetService/CreateDataset", ADMINISTER),
    ("DatasetService/GetDataset", VIEW),
    ("DatasetService/ListDatasets", VIEW),
    ("DatasetService/UpdateDataset", ADMINISTER),
    ("DatasetService/DeleteDataset", ADMINISTER),
    ("PolicyService/CreatePolicy", ADMINISTER),
    ("PolicyService/GetPolicy", VIEW),
    ("PolicyService/ListPolicies", VIEW),
    ("PolicyService/UpdatePolicy", ADMINISTER),
    ("PolicyService/DeletePolicy", ADMINISTER),
    // Access events are data, not changes: their volume would drown the audit log,
    // and the events themselves are the record.
    ("AccessEventService/RecordAccessEvents", OPERATE_UNAUDITED),
    ("AccessEventService/StreamAccessEvents", OPERATE_UNAUDITED),
    ("AccessEventService/GetAccessStats", VIEW),
    // Computes advice from what the catalogue holds; changes no setting.
    ("RecommendationService/GetRecommendations", VIEW),
    ("RecommendationService/ListRecommendations", VIEW),
    ("RecommendationService/ApproveRecommendation", OPERATE),
    ("RecommendationService/RejectRecommendation", OPERATE),
    ("RecommendationService/TrainModels", OPERATE),
    ("RecommendationService/ListModels", VIEW),
    ("RecommendationService/WhatIf", VIEW),
    ("JobService/PlanMigration", OPERATE),
    ("JobService/PlanSync", OPERATE),
    ("JobService/CreateSyncSchedule", OPERATE),
    ("JobService/DeleteSyncSchedule", OPERATE),
    ("JobService/GetJob", VIEW_AGENT),
    ("JobService/ListJobs", VIEW),
    ("JobService/ListSyncSchedules", VIEW),
    ("JobService/WatchJob", VIEW),
    ("JobService/CancelJob", OPERATE),
    ("JobService/RetryJob", OPERATE),
    ("JobService/UpdateJob", OPERATE),
    ("JobService/ListJobObjects", VIEW_AGENT),
    ("AgentService/RegisterAgent", AGENT_AUDITED),
    ("AgentService/Heartbeat", AGENT),
    ("AgentService/ListAgents", VIEW_AGENT),
    ("AgentService/GetJobAccess", AGENT),
    ("AgentService/GetSiteAccess", AGENT),
    ("AgentService/ReportChanges", AGENT),
    ("AgentService/ReadSyncManifest", AGENT),
    ("AdminService/CreateToken", ADMINISTER),
    ("AdminService/ListTokens", ADMIN_READ),
    ("AdminService/RevokeToken", ADMINISTER),
    ("AdminService/ListAuditEvents", ADMIN_READ),
    // Every valid token may ask who it is.
    ("AdminService/WhoAmI", VIEW_AGENT),
];

/// The package every method of the table belongs to.
pub const PACKAGE: &str = "ferry.v1.";

/// A `ferry.v1` method missing from the table needs the admin role: a new method is
/// closed until someone decides who may call it.
const UNLISTED: Rule = ADMINISTER;

/// The rule of a request path (`/ferry.v1.SiteService/CreateSite`); `None` for paths
/// outside `ferry.v1` (health, reflection, `/metrics`), which are open.
pub fn rule_of(path: &str) -> Option<Rule> {
    let method = path.strip_prefix('/')?.strip_prefix(PACKAGE)?;
    Some(
        TABLE
            .iter()
            .find(|(m, _)| *m == method)
            .map_or(UNLISTED, |(_, r)| *r),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use prost::Message;

    use super::*;

    /// Every method of every `ferry.v1` service, from the compiled descriptors.
    fn methods() -> BTreeSet<String> {
        let set = prost_types::FileDescriptorSet::decode(ferry_proto::FILE_DESCRIPTOR_SET)
            .expect("the descriptor set decodes");
        set.file
            .iter()
            .filter(|f| f.package() == "ferry.v1")
            .flat_map(|f| f.service.iter())
            .flat_map(|s| {
                s.method
                    .iter()
                    .map(move |m| format!("{}/{}", s.name(), m.name()))
            })
            .collect()
    }

    #[test]
    fn the_table_names_every_method_of_every_service_once() {
        let methods = methods();
        assert!(methods.len() > 30, "{methods:?}");
        let listed: BTreeSet<String> = TABLE.iter().map(|(m, _)| (*m).to_owned()).collect();
        assert_eq!(listed.len(), TABLE.len(), "a method is listed twice");
        let missing: Vec<_> = methods.difference(&listed).collect();
        let stale: Vec<_> = listed.difference(&methods).collect();
        assert!(missing.is_empty(), "methods without a rule: {missing:?}");
        assert!(stale.is_empty(), "rules for no method: {stale:?}");
    }

    #[test]
    fn reads_are_for_viewers_changes_for_operators_or_admins() {
        for (method, rule) in TABLE {
            let name = method.split('/').nth(1).unwrap();
            // WhatIf replays history and records nothing: a read.
            let read =
                ["Get", "List", "Watch"].iter().any(|p| name.starts_with(p)) || name == "WhatIf";
            if rule.role == Role::Agent || name == "GetRecommendations" || name == "WhoAmI" {
                continue;
            }
            if read && !method.starts_with("AdminService/") {
                assert_eq!(rule.role, Role::Viewer, "{method}");
                assert!(!rule.audited, "{method}");
            } else if !read {
                assert!(rule.role != Role::Viewer, "{method} changes something");
            }
        }
    }

    #[test]
    fn paths_outside_ferry_are_open_and_unlisted_methods_need_admin() {
        assert_eq!(rule_of("/grpc.health.v1.Health/Check"), None);
        assert_eq!(
            rule_of("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            None
        );
        assert_eq!(rule_of("/metrics"), None);
        assert_eq!(rule_of("/ferry.v1.SiteService/GetSite"), Some(VIEW_AGENT));
        assert_eq!(rule_of("/ferry.v1.SiteService/Unheard"), Some(ADMINISTER));
        assert!(VIEW_AGENT.allows(Role::Agent) && VIEW_AGENT.allows(Role::Viewer));
        assert!(!VIEW.allows(Role::Agent));
        assert!(!AGENT.allows(Role::Admin));
        assert!(ADMINISTER.allows(Role::Admin) && !ADMINISTER.allows(Role::Operator));
    }
}
