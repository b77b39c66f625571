//! The gRPC edge: thin handlers that convert and validate wire messages, call one
//! catalogue method, and convert the answer back.

mod access;
mod admin;
mod agents;
pub mod auth;
mod caller;
mod datasets;
mod jobs;
pub mod limits;
pub mod peer;
mod policies;
mod recommendations;
mod revocable;
pub mod roles;
mod sites;
pub mod span;
mod status;
pub mod web;

use ferry_proto::v1::{
    access_event_service_server::AccessEventServiceServer,
    admin_service_server::AdminServiceServer, agent_service_server::AgentServiceServer,
    dataset_service_server::DatasetServiceServer, job_service_server::JobServiceServer,
    policy_service_server::PolicyServiceServer,
    recommendation_service_server::RecommendationServiceServer,
    site_service_server::SiteServiceServer,
};
use tonic::service::Routes;

use self::limits::{size_limited, ACCESS_EVENTS_LIMIT, REQUEST_LIMIT};
use crate::service::{
    AccessEvents, Agents, Catalogue, DryRuns, Migrations, Recommendations, Schedules, Tokens,
    Training, WhatIf,
};

/// The use cases the `ferry.v1` services call.
pub struct UseCases {
    pub catalogue: Catalogue,
    pub migrations: Migrations,
    pub dry_runs: DryRuns,
    pub agents: Agents,
    pub events: AccessEvents,
    pub recommendations: Recommendations,
    pub training: Training,
    pub whatif: WhatIf,
    pub tokens: Tokens,
    pub schedules: Schedules,
}

/// Every `ferry.v1` service, ready to be served, each with its request size limit.
pub fn routes(uses: UseCases) -> Routes {
    let UseCases {
        catalogue,
        migrations,
        dry_runs,
        agents,
        events,
        recommendations,
        training,
        whatif,
        tokens,
        schedules,
    } = uses;
    let sites = SiteServiceServer::new(sites::SiteApi::new(catalogue.clone()));
    let datasets = DatasetServiceServer::new(datasets::DatasetApi::new(catalogue.clone()));
    let policies = PolicyServiceServer::new(policies::PolicyApi::new(catalogue));
    let access = AccessEventServiceServer::new(access::AccessApi::new(events));
    let recommendations = RecommendationServiceServer::new(
        recommendations::RecommendationApi::new(recommendations, training, whatif),
    );
    let jobs = JobServiceServer::new(jobs::JobApi::new(migrations, dry_runs, schedules));
    let agents = AgentServiceServer::new(agents::AgentApi::new(agents));
    let admin = AdminServiceServer::new(admin::AdminApi::new(tokens));
    Routes::new(size_limited!(sites, REQUEST_LIMIT))
        .add_service(size_limited!(datasets, REQUEST_LIMIT))
        .add_service(size_limited!(policies, REQUEST_LIMIT))
        .add_service(size_limited!(access, ACCESS_EVENTS_LIMIT))
        .add_service(size_limited!(recommendations, REQUEST_LIMIT))
        .add_service(size_limited!(jobs, REQUEST_LIMIT))
        .add_service(size_limited!(agents, REQUEST_LIMIT))
        .add_service(size_limited!(admin, REQUEST_LIMIT))
}
