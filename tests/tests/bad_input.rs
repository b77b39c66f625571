//! The real control plane against requests no client should send: messages far above a
//! service's size limit, and page sizes out of range. Each is refused with the code the
//! API documents, and the server goes on answering.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use ferry_proto::v1::{
    self as pb, access_event_service_client::AccessEventServiceClient,
    agent_service_client::AgentServiceClient, dataset_service_client::DatasetServiceClient,
    job_service_client::JobServiceClient, policy_service_client::PolicyServiceClient,
    recommendation_service_client::RecommendationServiceClient,
    site_service_client::SiteServiceClient,
};
use ferry_sdk::Transport;
use ferry_tests::ControlPlane;
use tonic::{Code, Status};

const MIB: usize = 1 << 20;
/// A job id no job has.
const NO_SUCH_JOB: &str = "01890000-0000-7000-8000-000000000000";

/// Every request of this file goes through here; the admin token is added by the
/// clients' transport.
fn request<T>(message: T) -> tonic::Request<T> {
    tonic::Request::new(message)
}

/// The generated clients of every `ferry.v1` service on one channel, none with a limit
/// of its own on what it sends.
struct Clients {
    sites: SiteServiceClient<Transport>,
    datasets: DatasetServiceClient<Transport>,
    policies: PolicyServiceClient<Transport>,
    access: AccessEventServiceClient<Transport>,
    recommendations: RecommendationServiceClient<Transport>,
    jobs: JobServiceClient<Transport>,
    agents: AgentServiceClient<Transport>,
}

impl Clients {
    /// As the admin, so that every call reaches its service.
    async fn connect(cp: &ControlPlane) -> Self {
        let channel = cp.client().await.transport();
        Clients {
            sites: SiteServiceClient::new(channel.clone()),
            datasets: DatasetServiceClient::new(channel.clone()),
            policies: PolicyServiceClient::new(channel.clone()),
            access: AccessEventServiceClient::new(channel.clone()),
            recommendations: RecommendationServiceClient::new(channel.clone()),
            jobs: JobServiceClient::new(channel.clone()),
            agents: AgentServiceClient::new(channel),
        }
    }

    async fn create_site(
        &mut self,
        name: &str,
        options: HashMap<String, String>,
    ) -> Result<(), Status> {
        let site = pb::Site {
            name: name.into(),
            uri: "s3://bucket".into(),
            tier: pb::Tier::Hot.into(),
            options,
            ..Default::default()
        };
        let call = self.sites.create_site(request(pb::CreateSiteRequest {
            site: Some(site),
            ..Default::default()
        }));
        call.await.map(drop)
    }

    async fn list_sites_answers(&mut self) {
        let sites = self
            .sites
            .list_sites(request(pb::ListSitesRequest::default()))
            .await
            .unwrap();
        assert!(sites.into_inner().next_page_token.is_empty());
    }
}

fn assert_too_large(status: &Status, service: &str, limit: &str) {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let message = status.message();
    assert!(message.starts_with("request message of "), "{message}");
    assert!(
        message.ends_with(&format!("larger than ferry.v1.{service} accepts: {limit}")),
        "{message}"
    );
}

/// Events adding up to about `bytes` on the wire.
fn events(bytes: usize) -> pb::RecordAccessEventsRequest {
    let event = pb::AccessEvent {
        dataset: "d".into(),
        op: pb::AccessOp::Read.into(),
        bytes: 1,
        client_id: "x".repeat(1000),
        ..Default::default()
    };
    pb::RecordAccessEventsRequest {
        events: vec![event; bytes / 1000],
    }
}

#[tokio::test]
async fn a_100_mib_message_is_refused_and_the_server_keeps_answering() {
    let cp = ControlPlane::start().await;
    let mut clients = Clients::connect(&cp).await;

    let huge = HashMap::from([("endpoint".to_owned(), "x".repeat(100 * MIB))]);
    let refused = clients.create_site("huge", huge).await.unwrap_err();
    assert_too_large(&refused, "SiteService", "at most 4194304 bytes (4 MiB)");

    let refused = clients
        .access
        .record_access_events(request(events(100 * MIB)))
        .await
        .unwrap_err();
    assert_too_large(
        &refused,
        "AccessEventService",
        "at most 16777216 bytes (16 MiB)",
    );

    // The same connection still serves, and a request below the limit is read and
    // judged on its content.
    clients.list_sites_answers().await;
    let big = HashMap::from([("endpoint".to_owned(), "x".repeat(3 * MIB))]);
    let judged = clients.create_site("big", big).await.unwrap_err();
    assert_eq!(judged.code(), Code::InvalidArgument, "{judged:?}");
    assert!(judged.message().starts_with("site.options[endpoint]: "));
    clients.create_site("small", HashMap::new()).await.unwrap();
    assert!(cp.log().contains("refused an oversized request message"));
}

#[tokio::test]
async fn every_service_refuses_a_message_above_its_limit() {
    let cp = ControlPlane::start().await;
    let mut c = Clients::connect(&cp).await;
    let over = "x".repeat(4 * MIB + 1);
    let four_mib = "at most 4194304 bytes (4 MiB)";

    let dataset = pb::Dataset {
        owner: over.clone(),
        ..Default::default()
    };
    let status = c
        .datasets
        .create_dataset(request(pb::CreateDatasetRequest {
            dataset: Some(dataset),
        }))
        .await
        .unwrap_err();
    assert_too_large(&status, "DatasetService", four_mib);

    let policy = pb::Policy {
        description: over.clone(),
        ..Default::default()
    };
    let status = c
        .policies
        .create_policy(request(pb::CreatePolicyRequest {
            policy: Some(policy),
        }))
        .await
        .unwrap_err();
    assert_too_large(&status, "PolicyService", four_mib);

    let status = c
        .recommendations
        .get_recommendations(request(pb::GetRecommendationsRequest {
            dataset: over.clone(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_too_large(&status, "RecommendationService", four_mib);

    let status = c
        .jobs
        .plan_migration(request(pb::PlanMigrationRequest {
            idempotency_key: over.clone(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_too_large(&status, "JobService", four_mib);

    let status = c
        .agents
        .list_agents(request(pb::ListAgentsRequest { site: over }))
        .await
        .unwrap_err();
    assert_too_large(&status, "AgentService", four_mib);

    // Streamed batches meet the limit one message at a time.
    let batches = tokio_stream::iter([events(17 * MIB)]);
    let status = c
        .access
        .stream_access_events(request(batches))
        .await
        .unwrap_err();
    assert_too_large(
        &status,
        "AccessEventService",
        "at most 16777216 bytes (16 MiB)",
    );

    c.list_sites_answers().await;
}

/// Calls a list RPC with `page_size` (and any other fields given); its name and whether
/// it answered.
macro_rules! list {
    (
        $page_size:expr, $client:expr, $rpc:ident,
        $request:ident $({ $($field:ident: $value:expr),* })?
    ) => {{
        let message = pb::$request {
            page_size: $page_size,
            $($($field: $value,)*)?
            ..Default::default()
        };
        (stringify!($rpc), $client.$rpc(request(message)).await.map(drop))
    }};
}

/// A negative `page_size` is refused and any larger than 1000 is served as 1000, on
/// every RPC that pages.
#[tokio::test]
async fn page_sizes_out_of_range_are_refused_or_capped_on_every_list() {
    let cp = ControlPlane::start().await;
    let mut c = Clients::connect(&cp).await;
    for name in ["a", "b", "c"] {
        c.create_site(name, HashMap::new()).await.unwrap();
    }
    for size in [-1, i32::MIN, 1001, i32::MAX] {
        let answers = [
            list!(size, c.sites, list_sites, ListSitesRequest),
            list!(size, c.datasets, list_datasets, ListDatasetsRequest),
            list!(size, c.policies, list_policies, ListPoliciesRequest),
            list!(size, c.jobs, list_jobs, ListJobsRequest),
            list!(
                size,
                c.jobs,
                list_job_objects,
                ListJobObjectsRequest {
                    job: NO_SUCH_JOB.into()
                }
            ),
            list!(
                size,
                c.recommendations,
                get_recommendations,
                GetRecommendationsRequest
            ),
            list!(
                size,
                c.recommendations,
                list_recommendations,
                ListRecommendationsRequest
            ),
        ];
        for (rpc, answer) in answers {
            match answer {
                Err(status) if size < 0 => {
                    assert_eq!(status.code(), Code::InvalidArgument, "{rpc}: {status:?}");
                    assert_eq!(status.message(), "page_size: must not be negative", "{rpc}");
                }
                // An unknown job is the only thing list_job_objects may object to.
                Err(status) => assert_eq!(status.code(), Code::NotFound, "{rpc}: {status:?}"),
                Ok(()) => assert!(size >= 0, "{rpc} took page_size {size}"),
            }
        }
    }
    let all = c
        .sites
        .list_sites(request(pb::ListSitesRequest {
            page_size: i32::MAX,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((all.sites.len(), all.next_page_token.as_str()), (3, ""));
    let garbage = c
        .sites
        .list_sites(request(pb::ListSitesRequest {
            page_token: "not-a-token".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(
        (garbage.code(), garbage.message()),
        (
            Code::InvalidArgument,
            "page_token: not a token returned by a previous page"
        )
    );
}
