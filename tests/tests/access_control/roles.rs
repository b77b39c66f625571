//! Each role against every method of every service, table-driven: who gets through the
//! authentication layer, who is refused with `PERMISSION_DENIED` naming the role the
//! method needs, and that every refusal is in the audit log.
//!
//! The expected role of each method is written here from the definition of the
//! roles, independently of the control plane's own table. Every call sends a default
//! (empty) request: one that passes the layer fails in its handler for want of a
//! dataset or a name, so nothing in the catalogue changes between the calls.

use ferry_sdk::{pb, Client};
use futures::stream;
use tonic::{Code, Status};

use ferry_tests::ControlPlane;

/// Who may call a method.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Needs {
    Viewer,
    /// A viewer, or an agent token (a read an agent makes about its own work).
    ViewerOrAgent,
    Operator,
    Admin,
    Agent,
}

impl Needs {
    fn allows(self, role: &str) -> bool {
        let rank = |r: &str| match r {
            "viewer" => 1,
            "operator" => 2,
            "admin" => 3,
            _ => 0,
        };
        match self {
            Needs::Viewer => rank(role) >= 1,
            Needs::ViewerOrAgent => rank(role) >= 1 || role == "agent",
            Needs::Operator => rank(role) >= 2,
            Needs::Admin => rank(role) >= 3,
            Needs::Agent => role == "agent",
        }
    }

    /// How the refusal names what the method takes.
    fn named(self) -> &'static str {
        match self {
            Needs::Viewer => "the viewer role",
            Needs::ViewerOrAgent => "the viewer role or an agent token",
            Needs::Operator => "the operator role",
            Needs::Admin => "the admin role",
            Needs::Agent => "an agent token",
        }
    }
}

/// Calls `method` of the control plane with an empty request as `client`; the status
/// it failed with, or OK.
async fn call(client: &Client, method: &str) -> Status {
    macro_rules! unary {
        ($stub:ident, $rpc:ident, $request:ident) => {
            client.$stub().$rpc(pb::$request::default()).await.map(drop)
        };
    }
    let result = match method {
        "SiteService/CreateSite" => unary!(sites, create_site, CreateSiteRequest),
        "SiteService/GetSite" => unary!(sites, get_site, GetSiteRequest),
        "SiteService/ListSites" => unary!(sites, list_sites, ListSitesRequest),
        "SiteService/UpdateSite" => unary!(sites, update_site, UpdateSiteRequest),
        "SiteService/DeleteSite" => unary!(sites, delete_site, DeleteSiteRequest),
        "DatasetService/CreateDataset" => unary!(datasets, create_dataset, CreateDatasetRequest),
        "DatasetService/GetDataset" => unary!(datasets, get_dataset, GetDatasetRequest),
        "DatasetService/ListDatasets" => unary!(datasets, list_datasets, ListDatasetsRequest),
        "DatasetService/UpdateDataset" => unary!(datasets, update_dataset, UpdateDatasetRequest),
        "DatasetService/DeleteDataset" => unary!(datasets, delete_dataset, DeleteDatasetRequest),
        "PolicyService/CreatePolicy" => unary!(policies, create_policy, CreatePolicyRequest),
        "PolicyService/GetPolicy" => unary!(policies, get_policy, GetPolicyRequest),
        "PolicyService/ListPolicies" => unary!(policies, list_policies, ListPoliciesRequest),
        "PolicyService/UpdatePolicy" => unary!(policies, update_policy, UpdatePolicyRequest),
        "PolicyService/DeletePolicy" => unary!(policies, delete_policy, DeletePolicyRequest),
        "AccessEventService/RecordAccessEvents" => unary!(
            access_events,
            record_access_events,
            RecordAccessEventsRequest
        ),
        "AccessEventService/StreamAccessEvents" => client
            .access_events()
            .stream_access_events(stream::iter([pb::RecordAccessEventsRequest {
                events: vec![pb::AccessEvent::default()],
            }]))
            .await
            .map(drop),
        "AccessEventService/GetAccessStats" => {
            unary!(access_events, get_access_stats, GetAccessStatsRequest)
        }
        "RecommendationService/GetRecommendations" => unary!(
            recommendations,
            get_recommendations,
            GetRecommendationsRequest
        ),
        "RecommendationService/ListRecommendations" => unary!(
            recommendations,
            list_recommendations,
            ListRecommendationsRequest
        ),
        "RecommendationService/ApproveRecommendation" => unary!(
            recommendations,
            approve_recommendation,
            ApproveRecommendationRequest
        ),
        "RecommendationService/RejectRecommendation" => unary!(
            recommendations,
            reject_recommendation,
            RejectRecommendationRequest
        ),
        "RecommendationService/TrainModels" => {
            unary!(recommendations, train_models, TrainModelsRequest)
        }
        "RecommendationService/ListModels" => {
            unary!(recommendations, list_models, ListModelsRequest)
        }
        "RecommendationService/WhatIf" => {
            unary!(recommendations, what_if, WhatIfRequest)
        }
        "JobService/PlanMigration" => unary!(jobs, plan_migration, PlanMigrationRequest),
        "JobService/PlanSync" => unary!(jobs, plan_sync, PlanSyncRequest),
        "JobService/CreateSyncSchedule" => {
            unary!(jobs, create_sync_schedule, CreateSyncScheduleRequest)
        }
        "JobService/ListSyncSchedules" => {
            unary!(jobs, list_sync_schedules, ListSyncSchedulesRequest)
        }
        "JobService/DeleteSyncSchedule" => {
            unary!(jobs, delete_sync_schedule, DeleteSyncScheduleRequest)
        }
        "JobService/GetJob" => unary!(jobs, get_job, GetJobRequest),
        "JobService/ListJobs" => unary!(jobs, list_jobs, ListJobsRequest),
        "JobService/WatchJob" => unary!(jobs, watch_job, WatchJobRequest),
        "JobService/CancelJob" => unary!(jobs, cancel_job, CancelJobRequest),
        "JobService/RetryJob" => unary!(jobs, retry_job, RetryJobRequest),
        "JobService/UpdateJob" => unary!(jobs, update_job, UpdateJobRequest),
        "JobService/ListJobObjects" => unary!(jobs, list_job_objects, ListJobObjectsRequest),
        "AgentService/RegisterAgent" => unary!(agents, register_agent, RegisterAgentRequest),
        "AgentService/Heartbeat" => unary!(agents, heartbeat, HeartbeatRequest),
        "AgentService/ListAgents" => unary!(agents, list_agents, ListAgentsRequest),
        "AgentService/GetJobAccess" => unary!(agents, get_job_access, GetJobAccessRequest),
        "AgentService/GetSiteAccess" => unary!(agents, get_site_access, GetSiteAccessRequest),
        "AgentService/ReportChanges" => unary!(agents, report_changes, ReportChangesRequest),
        "AgentService/ReadSyncManifest" => {
            unary!(agents, read_sync_manifest, ReadSyncManifestRequest)
        }
        "AdminService/CreateToken" => unary!(admin, create_token, CreateTokenRequest),
        "AdminService/ListTokens" => unary!(admin, list_tokens, ListTokensRequest),
        "AdminService/RevokeToken" => unary!(admin, revoke_token, RevokeTokenRequest),
        "AdminService/ListAuditEvents" => unary!(admin, list_audit_events, ListAuditEventsRequest),
        "AdminService/WhoAmI" => unary!(admin, who_am_i, WhoAmIRequest),
        other => panic!("no call for {other}: add it to this table"),
    };
    match result {
        Ok(()) => Status::ok(""),
        Err(status) => status,
    }
}

/// Every method and who may call it, as the issue defines the roles.
const TABLE: &[(&str, Needs)] = &[
    ("SiteService/CreateSite", Needs::Admin),
    ("SiteService/GetSite", Needs::ViewerOrAgent),
    ("SiteService/ListSites", Needs::Viewer),
    ("SiteService/UpdateSite", Needs::Admin),
    ("SiteService/DeleteSite", Needs::Admin),
    ("DatasetService/CreateDataset", Needs::Admin),
    ("DatasetService/GetDataset", Needs::Viewer),
    ("DatasetService/ListDatasets", Needs::Viewer),
    ("DatasetService/UpdateDataset", Needs::Admin),
    ("DatasetService/DeleteDataset", Needs::Admin),
    ("PolicyService/CreatePolicy", Needs::Admin),
    ("PolicyService/GetPolicy", Needs::Viewer),
    ("PolicyService/ListPolicies", Needs::Viewer),
    ("PolicyService/UpdatePolicy", Needs::Admin),
    ("PolicyService/DeletePolicy", Needs::Admin),
    ("AccessEventService/RecordAccessEvents", Needs::Operator),
    ("AccessEventService/StreamAccessEvents", Needs::Operator),
    ("AccessEventService/GetAccessStats", Needs::Viewer),
    ("RecommendationService/GetRecommendations", Needs::Viewer),
    ("RecommendationService/ListRecommendations", Needs::Viewer),
    (
        "RecommendationService/ApproveRecommendation",
        Needs::Operator,
    ),
    (
        "RecommendationService/RejectRecommendation",
        Needs::Operator,
    ),
    ("RecommendationService/TrainModels", Needs::Operator),
    ("RecommendationService/ListModels", Needs::Viewer),
    ("RecommendationService/WhatIf", Needs::Viewer),
    ("JobService/PlanMigration", Needs::Operator),
    ("JobService/PlanSync", Needs::Operator),
    ("JobService/CreateSyncSchedule", Needs::Operator),
    ("JobService/ListSyncSchedules", Needs::Viewer),
    ("JobService/DeleteSyncSchedule", Needs::Operator),
    ("JobService/GetJob", Needs::ViewerOrAgent),
    ("JobService/ListJobs", Needs::Viewer),
    ("JobService/WatchJob", Needs::Viewer),
    ("JobService/CancelJob", Needs::Operator),
    ("JobService/RetryJob", Needs::Operator),
    ("JobService/UpdateJob", Needs::Operator),
    ("JobService/ListJobObjects", Needs::ViewerOrAgent),
    ("AgentService/RegisterAgent", Needs::Agent),
    ("AgentService/Heartbeat", Needs::Agent),
    ("AgentService/ListAgents", Needs::ViewerOrAgent),
    ("AgentService/GetJobAccess", Needs::Agent),
    ("AgentService/GetSiteAccess", Needs::Agent),
    ("AgentService/ReportChanges", Needs::Agent),
    ("AgentService/ReadSyncManifest", Needs::Agent),
    ("AdminService/CreateToken", Needs::Admin),
    ("AdminService/ListTokens", Needs::Admin),
    ("AdminService/RevokeToken", Needs::Admin),
    ("AdminService/ListAuditEvents", Needs::Admin),
    ("AdminService/WhoAmI", Needs::ViewerOrAgent),
];

#[tokio::test]
async fn each_role_reaches_exactly_the_methods_of_its_role() {
    let cp = ControlPlane::start().await;
    let admin = cp.client().await;
    admin
        .create_site(
            pb::Site {
                name: "edge".into(),
                uri: "memory:///edge".into(),
                tier: pb::Tier::Hot.into(),
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .unwrap();
    let mut callers = vec![("admin", admin.clone())];
    for (role, pb_role, site) in [
        ("viewer", pb::Role::Viewer, None),
        ("operator", pb::Role::Operator, None),
        ("agent", pb::Role::Agent, Some("edge")),
    ] {
        let token = cp.token(&format!("as-{role}"), pb_role, site).await;
        callers.push((role, cp.client_with(&token).await));
    }
    let stranger = cp.client_with("fy_not-a-token-anyone-made").await;

    // The table names every method the control plane serves.
    let served = served_methods();
    let listed: Vec<String> = TABLE.iter().map(|(m, _)| format!("ferry.v1.{m}")).collect();
    assert_eq!(
        {
            let mut l = listed.clone();
            l.sort();
            l
        },
        served,
        "this test's table and the served methods differ"
    );

    let mut denials = Vec::new();
    for (method, needs) in TABLE {
        let full = format!("ferry.v1.{method}");
        for (role, client) in &callers {
            let status = call(client, method).await;
            if needs.allows(role) {
                assert!(
                    !matches!(
                        status.code(),
                        Code::PermissionDenied | Code::Unauthenticated
                    ),
                    "{role} should reach {method}: {status:?}"
                );
            } else {
                let principal = match *role {
                    "admin" => "token:admin".to_owned(),
                    role => format!("token:as-{role}"),
                };
                denials.push((principal, full.clone()));
                assert_eq!(
                    status.code(),
                    Code::PermissionDenied,
                    "{role} calling {method}: {status:?}"
                );
                let expected = format!("{full} needs {}; token:", needs.named());
                assert!(
                    status.message().starts_with(&expected)
                        && status.message().ends_with(&format!("has the {role} role")),
                    "{role} calling {method}: {}",
                    status.message()
                );
            }
        }
        let status = call(&stranger, method).await;
        assert_eq!(status.code(), Code::Unauthenticated, "{method}: {status:?}");
        assert_eq!(status.message(), "the bearer token is not known");
    }
    assert!(
        denials.len() > 40,
        "only {} refusals: the table allows too much",
        denials.len()
    );

    // Every refusal is on record, with the caller and the method.
    let refused: Vec<pb::AuditEvent> = admin
        .list_audit_events(&Default::default(), 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| {
            e.outcome.starts_with("denied: ")
                && (e.principal.starts_with("token:as-") || e.principal == "token:admin")
        })
        .collect();
    let mut recorded: Vec<(String, String)> = refused
        .iter()
        .map(|e| (e.principal.clone(), e.method.clone()))
        .collect();
    recorded.sort();
    denials.sort();
    assert_eq!(recorded, denials);
    let viewer_create = refused
        .iter()
        .find(|e| e.principal == "token:as-viewer" && e.method == "ferry.v1.SiteService/CreateSite")
        .expect("the viewer's CreateSite refusal is recorded");
    assert_eq!(viewer_create.role, pb::Role::Viewer as i32);
    // Strangers are recorded too, as unknown callers.
    let unknown = admin
        .list_audit_events(
            &ferry_sdk::AuditFilter {
                principal: Some("unknown".into()),
                ..Default::default()
            },
            10_000,
        )
        .await
        .unwrap();
    assert_eq!(unknown.len(), TABLE.len(), "{unknown:#?}");
}

/// `ferry.v1.Service/Method` of every method in the descriptor set, sorted.
fn served_methods() -> Vec<String> {
    use prost::Message;
    let set = prost_types::FileDescriptorSet::decode(ferry_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut methods: Vec<String> = set
        .file
        .iter()
        .filter(|f| f.package() == "ferry.v1")
        .flat_map(|f| {
            f.service.iter().flat_map(|s| {
                s.method
                    .iter()
                    .map(move |m| format!("ferry.v1.{}/{}", s.name(), m.name()))
            })
        })
        .collect();
    methods.sort();
    methods
}
