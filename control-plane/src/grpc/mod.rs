//! The gRPC edge: thin handlers that convert and validate wire messages, call one
//! catalogue method, and convert the answer back.

mod access;
mod agents;
mod datasets;
mod jobs;
pub mod peer;
mod policies;
mod recommendations;
mod sites;
pub mod span;
mod status;

use ferry_proto::v1::{
    access_event_service_server::AccessEventServiceServer,
    agent_service_server::AgentServiceServer, dataset_service_server::DatasetServiceServer,
    job_service_server::JobServiceServer, policy_service_server::PolicyServiceServer,
    recommendation_service_server::RecommendationServiceServer,
    site_service_server::SiteServiceServer,
};
use tonic::service::Routes;

use crate::service::{AccessEvents, Agents, Catalogue, DryRuns, Migrations, Recommendations};

/// The use cases the `ferry.v1` services call.
pub struct UseCases {
    pub catalogue: Catalogue,
    pub migrations: Migrations,
    pub dry_runs: DryRuns,
    pub agents: Agents,
    pub events: AccessEvents,
    pub recommendations: Recommendations,
}

/// Every `ferry.v1` service, ready to be served.
pub fn routes(uses: UseCases) -> Routes {
    let UseCases {
        catalogue,
        migrations,
        dry_runs,
        agents,
        events,
        recommendations,
    } = uses;
    Routes::new(SiteServiceServer::new(sites::SiteApi::new(
        catalogue.clone(),
    )))
    .add_service(DatasetServiceServer::new(datasets::DatasetApi::new(
        catalogue.clone(),
    )))
    .add_service(PolicyServiceServer::new(policies::PolicyApi::new(
        catalogue,
    )))
    .add_service(AccessEventServiceServer::new(access::AccessApi::new(
        events,
    )))
    .add_service(RecommendationServiceServer::new(
        recommendations::RecommendationApi::new(recommendations),
    ))
    .add_service(JobServiceServer::new(jobs::JobApi::new(
        migrations, dry_runs,
    )))
    .add_service(AgentServiceServer::new(agents::AgentApi::new(agents)))
}
