//! The audit log of every mutating call: one record each, with who, what, a summary of
//! the change that never holds a secret, and the outcome; filtered and paged as
//! `ListAuditEvents` documents.

use std::collections::HashMap;

use chrono::Utc;
use ferry_sdk::{pb, AuditFilter, Client};
use tonic::Code;

use ferry_tests::{dataset::advise, ControlPlane};

const CANARY: &str = "canary-audit-5d0e-never-recorded";

fn site(name: &str, tier: pb::Tier) -> pb::Site {
    pb::Site {
        name: name.into(),
        uri: format!("memory:///{name}"),
        tier: tier.into(),
        ..Default::default()
    }
}

/// The one record of `method` on `resource`; panics unless there is exactly one.
fn one<'a>(events: &'a [pb::AuditEvent], method: &str, resource: &str) -> &'a pb::AuditEvent {
    let found: Vec<&pb::AuditEvent> = events
        .iter()
        .filter(|e| e.method == format!("ferry.v1.{method}") && e.resource == resource)
        .collect();
    assert_eq!(found.len(), 1, "{method} on {resource}: {events:#?}");
    found[0]
}

/// Makes every kind of change as the admin, and one as an operator.
async fn changes(cp: &ControlPlane, admin: &Client) -> (String, String) {
    admin
        .create_site(site("fast", pb::Tier::Hot), HashMap::new())
        .await
        .unwrap();
    let s3 = pb::Site {
        name: "vault".into(),
        uri: "s3://vault/root".into(),
        options: HashMap::from([("region".to_owned(), "eu-west-1".to_owned())]),
        tier: pb::Tier::Cold.into(),
        ..Default::default()
    };
    let credentials = HashMap::from([
        ("access_key_id".to_owned(), "AKIAAUDIT".to_owned()),
        ("secret_access_key".to_owned(), CANARY.to_owned()),
    ]);
    admin.create_site(s3, credentials.clone()).await.unwrap();
    admin
        .update_site(
            pb::Site {
                name: "vault".into(),
                latency_ms: 250,
                ..Default::default()
            },
            ["latency_ms"],
            Some(credentials),
        )
        .await
        .unwrap();
    // A change that fails is recorded as such.
    let e = admin
        .create_site(site("fast", pb::Tier::Hot), HashMap::new())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);

    admin
        .create_dataset(pb::Dataset {
            name: "ledger".into(),
            site: "fast".into(),
            path: "ledger".into(),
            labels: HashMap::from([("team".to_owned(), "finance".to_owned())]),
            ..Default::default()
        })
        .await
        .unwrap();
    admin
        .update_dataset(
            pb::Dataset {
                name: "ledger".into(),
                owner: "finance-ops".into(),
                ..Default::default()
            },
            ["owner"],
        )
        .await
        .unwrap();
    admin
        .create_policy(pb::Policy {
            name: "finance".into(),
            selector: HashMap::from([("team".to_owned(), "finance".to_owned())]),
            placements: vec![pb::TierPlacement {
                tier: pb::Tier::Cold.into(),
                site: "vault".into(),
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    admin
        .update_policy(
            pb::Policy {
                name: "finance".into(),
                priority: 7,
                ..Default::default()
            },
            ["priority"],
        )
        .await
        .unwrap();

    // Never read: cold, so advice to move to the vault; an operator rejects it, then
    // approves the next advice, which plans the move.
    let operator = cp
        .client_with(&cp.token("ops", pb::Role::Operator, None).await)
        .await;
    let rejected = advise(&operator, "ledger").await;
    operator
        .reject_recommendation(&rejected.id, "not before the audit")
        .await
        .unwrap();
    let approved = advise(&operator, "ledger").await;
    let job = operator
        .approve_recommendation(&approved.id)
        .await
        .unwrap()
        .job
        .unwrap();
    admin.update_job(&job.id, 5_000_000).await.unwrap();
    admin.cancel_job(&job.id).await.unwrap();
    admin.retry_job(&job.id).await.unwrap();
    admin.cancel_job(&job.id).await.unwrap();
    // Without an agent of the site, a dry run cannot list it: recorded as failed.
    let e = admin
        .plan_migration(pb::PlanMigrationRequest {
            dataset: "ledger".into(),
            destination_site: "vault".into(),
            dry_run: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e}");

    admin
        .create_token("ci", pb::Role::Operator, None, None)
        .await
        .unwrap();
    admin.revoke_token("ci").await.unwrap();
    admin.delete_policy("finance").await.unwrap();
    admin
        .create_site(site("scratch", pb::Tier::Warm), HashMap::new())
        .await
        .unwrap();
    admin
        .create_dataset(pb::Dataset {
            name: "tmp".into(),
            site: "scratch".into(),
            path: "tmp".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    admin.delete_dataset("tmp").await.unwrap();
    admin.delete_site("scratch").await.unwrap();
    (rejected.id, job.id)
}

#[tokio::test]
async fn every_change_is_recorded_once_with_who_what_and_how_it_went() {
    let cp = ControlPlane::start().await;
    let admin = cp.client().await;
    let started = Utc::now();
    let (rejected, job) = changes(&cp, &admin).await;
    let events = admin
        .list_audit_events(&AuditFilter::default(), 1000)
        .await
        .unwrap();

    let created = one(&events, "SiteService/CreateSite", "site:vault");
    assert_eq!(created.principal, "token:admin");
    assert_eq!(created.role, pb::Role::Admin as i32);
    assert_eq!(created.outcome, "ok");
    assert!(
        created
            .summary
            .starts_with("created: uri=s3://vault/root, tier=cold")
            && created
                .summary
                .ends_with("credentials=[access_key_id secret_access_key]"),
        "{}",
        created.summary
    );
    let updated = one(&events, "SiteService/UpdateSite", "site:vault");
    assert_eq!(
        updated.summary,
        "updated: latency_ms=250, credentials=[access_key_id secret_access_key]"
    );
    let failed: Vec<_> = events
        .iter()
        .filter(|e| e.method == "ferry.v1.SiteService/CreateSite" && e.outcome != "ok")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(
        failed[0].outcome,
        "failed: already_exists: site fast already exists"
    );
    assert_eq!(failed[0].resource, "site:fast");
    assert_eq!(
        one(&events, "DatasetService/UpdateDataset", "dataset:ledger").summary,
        "updated: owner=finance-ops"
    );
    assert!(
        one(&events, "DatasetService/CreateDataset", "dataset:ledger")
            .summary
            .contains("labels={team:finance}")
    );
    assert_eq!(
        one(&events, "PolicyService/UpdatePolicy", "policy:finance").summary,
        "updated: priority=7"
    );
    one(&events, "PolicyService/CreatePolicy", "policy:finance");
    one(&events, "PolicyService/DeletePolicy", "policy:finance");
    assert_eq!(
        one(&events, "DatasetService/DeleteDataset", "dataset:tmp").summary,
        "deleted: its catalogue records (not its bytes)"
    );
    assert_eq!(
        one(&events, "SiteService/DeleteSite", "site:scratch").summary,
        "deleted: memory:///scratch"
    );

    let rejection = one(
        &events,
        "RecommendationService/RejectRecommendation",
        &format!("recommendation:{rejected}"),
    );
    assert_eq!(rejection.principal, "token:ops");
    assert_eq!(rejection.role, pb::Role::Operator as i32);
    assert_eq!(rejection.summary, "rejected (was pending)");
    // Approving plans the job and approves the advice: a record of each change.
    let job_resource = format!("job:{job}");
    let approvals: Vec<_> = events
        .iter()
        .filter(|e| e.method == "ferry.v1.RecommendationService/ApproveRecommendation")
        .collect();
    assert_eq!(approvals.len(), 2, "{approvals:#?}");
    assert!(approvals
        .iter()
        .any(|e| e.resource == job_resource && e.summary.starts_with("planned: dataset=")));
    assert!(approvals
        .iter()
        .any(|e| e.summary.starts_with("approved (was pending), job ")));
    let job_events = admin
        .list_audit_events(
            &AuditFilter {
                resource: Some(job_resource.clone()),
                principal: Some("token:admin".into()),
                ..Default::default()
            },
            100,
        )
        .await
        .unwrap();
    let summaries: Vec<(&str, &str)> = job_events
        .iter()
        .rev()
        .map(|e| {
            (
                e.method.trim_start_matches("ferry.v1.JobService/"),
                e.summary.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summaries,
        [
            (
                "UpdateJob",
                "now state=queued, attempt=1, bandwidth_limit=5000000"
            ),
            (
                "CancelJob",
                "now state=cancelled, attempt=1, bandwidth_limit=5000000"
            ),
            (
                "RetryJob",
                "retried: now state=queued, attempt=2, bandwidth_limit=5000000"
            ),
            (
                "CancelJob",
                "now state=cancelled, attempt=2, bandwidth_limit=5000000"
            ),
        ]
    );
    let dry_run = events
        .iter()
        .find(|e| e.method == "ferry.v1.JobService/PlanMigration")
        .expect("the dry run is recorded");
    assert!(
        dry_run
            .outcome
            .starts_with("failed: failed_precondition: no agent of site fast is online"),
        "{dry_run:?}"
    );
    assert_eq!(dry_run.resource, "dataset:ledger");
    let made = one(&events, "AdminService/CreateToken", "token:ci");
    assert_eq!(made.summary, "created: role operator, expires never");
    assert_eq!(
        one(&events, "AdminService/RevokeToken", "token:ci").summary,
        "revoked"
    );
    one(&events, "AdminService/CreateToken", "token:ops");

    // No secret anywhere in the log: not the site's key, not a token's.
    let text = format!("{events:?}");
    assert!(!text.contains(CANARY));
    assert!(!text.contains("fy_"), "a token secret is in the audit log");

    // Filters and pages: principal, method, resource, time; newest first.
    let by_ops = admin
        .list_audit_events(
            &AuditFilter {
                principal: Some("token:ops".into()),
                ..Default::default()
            },
            100,
        )
        .await
        .unwrap();
    assert!(by_ops.len() >= 3 && by_ops.iter().all(|e| e.principal == "token:ops"));
    assert!(events
        .windows(2)
        .all(|w| w[0].time.as_ref().unwrap().seconds >= w[1].time.as_ref().unwrap().seconds));
    let later = admin
        .list_audit_events(
            &AuditFilter {
                since: Some(Utc::now()),
                ..Default::default()
            },
            100,
        )
        .await
        .unwrap();
    assert!(later.is_empty(), "{later:#?}");
    let all_since_start = admin
        .list_audit_events(
            &AuditFilter {
                since: Some(started),
                until: Some(Utc::now()),
                ..Default::default()
            },
            1000,
        )
        .await
        .unwrap();
    assert_eq!(all_since_start.len(), events.len());
    let mut paged = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = admin
            .admin()
            .list_audit_events(pb::ListAuditEventsRequest {
                page_size: 3,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.events.len() <= 3);
        paged.extend(page.events);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(paged, events);
    let e = admin
        .admin()
        .list_audit_events(pb::ListAuditEventsRequest {
            since: Some(ferry_sdk::time::to_timestamp(Utc::now())),
            until: Some(ferry_sdk::time::to_timestamp(started)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::InvalidArgument, "until: must lie after since")
    );

    // Only an admin reads the log.
    let e = cp
        .client_with(&cp.token("peek", pb::Role::Operator, None).await)
        .await
        .list_audit_events(&AuditFilter::default(), 10)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
}
