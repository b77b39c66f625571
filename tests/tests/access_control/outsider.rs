//! The outsider's path the issue describes: with grpcurl-like calls and no token,
//! nothing; with an agent token of site A, no registration for another site, no job or
//! credentials of a job between sites B and C — each refusal recorded, no secret in any
//! answer.

use std::collections::HashMap;

use ferry_sdk::{pb, AuditFilter, Client};
use tonic::{Code, Status};

use ferry_tests::ControlPlane;

const CANARY: &str = "canary-secret-b7c1-do-not-hand-out";

/// An S3 site no agent ever reaches (no agent runs), with `credentials`.
pub(crate) async fn s3_site(
    admin: &Client,
    name: &str,
    credentials: HashMap<String, String>,
) -> pb::Site {
    admin
        .create_site(
            pb::Site {
                name: name.into(),
                uri: format!("s3://bucket-{name}/root"),
                options: HashMap::from([
                    ("endpoint".to_owned(), "http://127.0.0.1:9".to_owned()),
                    ("region".to_owned(), "us-east-1".to_owned()),
                ]),
                tier: pb::Tier::Hot.into(),
                ..Default::default()
            },
            credentials,
        )
        .await
        .unwrap()
}

/// Registers an agent of `site` as `client`.
async fn register(client: &Client, site: &str) -> Result<pb::Agent, Status> {
    let answer = client
        .agents()
        .register_agent(pb::RegisterAgentRequest {
            site: site.into(),
            version: "test".into(),
            hostname: format!("{site}-host"),
            concurrency: 1,
            ..Default::default()
        })
        .await?;
    Ok(answer.into_inner().agent.unwrap())
}

/// Asks, as `client` and agent `agent_id`, for the access of `job`.
async fn job_access(
    client: &Client,
    agent_id: &str,
    job: &pb::Job,
) -> Result<pb::GetJobAccessResponse, Status> {
    let answer = client
        .agents()
        .get_job_access(pb::GetJobAccessRequest {
            agent_id: agent_id.into(),
            job: job.id.clone(),
            attempt: job.attempt,
            cleanup: false,
        })
        .await?;
    Ok(answer.into_inner())
}

#[tokio::test]
async fn without_a_token_nothing_and_an_agent_of_one_site_gets_nothing_of_another() {
    let cp = ControlPlane::start().await;
    let admin = cp.client().await;
    let keys = |secret: &str| {
        HashMap::from([
            ("access_key_id".to_owned(), "AKIAOUTSIDERTEST".to_owned()),
            ("secret_access_key".to_owned(), secret.to_owned()),
        ])
    };
    s3_site(&admin, "a", keys("secret-of-a")).await;
    s3_site(&admin, "b", keys(CANARY)).await;
    s3_site(&admin, "c", keys(CANARY)).await;
    admin
        .create_dataset(pb::Dataset {
            name: "ledger".into(),
            site: "b".into(),
            path: "ledger".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let job = admin
        .plan_migration(pb::PlanMigrationRequest {
            dataset: "ledger".into(),
            destination_site: "c".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .job
        .unwrap();

    // No token: every call is refused, and says what it needs.
    let nobody = Client::connect(&cp.endpoint()).await.unwrap();
    let e = nobody.list_sites(None).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e}");
    assert!(
        e.to_string().contains("authorization: Bearer <token>"),
        "{e}"
    );
    let e = nobody
        .agents()
        .register_agent(pb::RegisterAgentRequest {
            site: "b".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);

    // An agent token of site A.
    let token_a = cp.agent_token("a").await;
    let agent_a = cp.client_with(&token_a).await;
    let registered = register(&agent_a, "a").await.unwrap();
    let e = register(&agent_a, "b").await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(
        e.message().contains("cannot register an agent of site b"),
        "{e:?}"
    );

    let e = job_access(&agent_a, &registered.id, &job)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(!format!("{e:?}").contains(CANARY), "{e:?}");
    let e = agent_a.get_job(&job.id).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    let e = agent_a.get_site("b").await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    let e = agent_a.list_agents(Some("b")).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    let e = agent_a.list_sites(None).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    // Its own site, it reads.
    assert_eq!(agent_a.get_site("a").await.unwrap().name, "a");

    // Another site's registration cannot be used with A's token either: the agent id
    // of an agent of B is refused, as a stranger's.
    let token_b = cp.agent_token("b").await;
    let agent_b = cp.client_with(&token_b).await;
    let of_b = register(&agent_b, "b").await.unwrap();
    let e = job_access(&agent_a, &of_b.id, &job).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(!format!("{e:?}").contains(CANARY));

    // An agent of B, the site that runs the job, gets its access.
    let access = job_access(&agent_b, &of_b.id, &job).await.unwrap();
    assert_eq!(
        access.destination.unwrap().credentials["secret_access_key"],
        CANARY
    );

    // Each refusal of A's token is on record, naming the job or site it was after.
    let refused = admin
        .list_audit_events(
            &AuditFilter {
                principal: Some("token:agent-a-0".into()),
                ..Default::default()
            },
            100,
        )
        .await
        .unwrap();
    let denied = |method: &str, resource: &str| {
        refused.iter().any(|e| {
            e.method == format!("ferry.v1.{method}")
                && e.resource == resource
                && e.outcome.starts_with("denied: ")
                && e.role == pb::Role::Agent as i32
        })
    };
    let job_resource = format!("job:{}", job.id);
    assert!(
        denied("AgentService/RegisterAgent", "site:b"),
        "{refused:#?}"
    );
    assert!(
        denied("AgentService/GetJobAccess", &job_resource),
        "{refused:#?}"
    );
    assert!(denied("JobService/GetJob", ""), "{refused:#?}");
    assert!(denied("SiteService/ListSites", ""), "{refused:#?}");
    assert_eq!(
        refused
            .iter()
            .filter(|e| e.method == "ferry.v1.AgentService/GetJobAccess")
            .count(),
        2,
        "{refused:#?}"
    );
    for e in &refused {
        assert!(!format!("{e:?}").contains(CANARY), "{e:?}");
    }
}
