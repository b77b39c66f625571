//! Services of the `ferry.v1` API whose capabilities are not in this release yet. They
//! are served (so reflection lists them and clients can be generated against the final
//! shape) and answer every call with `UNIMPLEMENTED`, naming what is missing.

use std::pin::Pin;

use ferry_proto::v1::{
    self as pb, access_event_service_server::AccessEventService,
    agent_service_server::AgentService, job_service_server::JobService,
    recommendation_service_server::RecommendationService,
};
use futures::Stream;
use tonic::{Request, Response, Status, Streaming};

/// The handler of every not-yet-available RPC.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pending;

fn unimplemented(rpc: &str, capability: &str) -> Status {
    Status::unimplemented(format!(
        "{rpc} is not implemented in this release of the control plane: {capability} is not \
         available yet"
    ))
}

type ProgressStream = Pin<Box<dyn Stream<Item = Result<pb::JobProgress, Status>> + Send>>;

#[tonic::async_trait]
impl JobService for Pending {
    type WatchJobStream = ProgressStream;

    async fn plan_migration(
        &self,
        _request: Request<pb::PlanMigrationRequest>,
    ) -> Result<Response<pb::PlanMigrationResponse>, Status> {
        Err(unimplemented(
            "ferry.v1.JobService/PlanMigration",
            "migration (planning, dispatch to agents, progress)",
        ))
    }

    async fn get_job(
        &self,
        _request: Request<pb::GetJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        Err(unimplemented(
            "ferry.v1.JobService/GetJob",
            "migration (planning, dispatch to agents, progress)",
        ))
    }

    async fn list_jobs(
        &self,
        _request: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        Err(unimplemented(
            "ferry.v1.JobService/ListJobs",
            "migration (planning, dispatch to agents, progress)",
        ))
    }

    async fn watch_job(
        &self,
        _request: Request<pb::WatchJobRequest>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        Err(unimplemented(
            "ferry.v1.JobService/WatchJob",
            "migration (planning, dispatch to agents, progress)",
        ))
    }

    async fn cancel_job(
        &self,
        _request: Request<pb::CancelJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        Err(unimplemented(
            "ferry.v1.JobService/CancelJob",
            "migration (planning, dispatch to agents, progress)",
        ))
    }

    async fn retry_job(
        &self,
        _request: Request<pb::RetryJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        Err(unimplemented(
            "ferry.v1.JobService/RetryJob",
            "migration (planning, dispatch to agents, progress)",
        ))
    }

    async fn update_job(
        &self,
        _request: Request<pb::UpdateJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        Err(unimplemented(
            "ferry.v1.JobService/UpdateJob",
            "migration (planning, dispatch to agents, progress)",
        ))
    }

    async fn list_job_objects(
        &self,
        _request: Request<pb::ListJobObjectsRequest>,
    ) -> Result<Response<pb::ListJobObjectsResponse>, Status> {
        Err(unimplemented(
            "ferry.v1.JobService/ListJobObjects",
            "migration (planning, dispatch to agents, progress)",
        ))
    }
}

#[tonic::async_trait]
impl AgentService for Pending {
    async fn register_agent(
        &self,
        _request: Request<pb::RegisterAgentRequest>,
    ) -> Result<Response<pb::RegisterAgentResponse>, Status> {
        Err(unimplemented(
            "ferry.v1.AgentService/RegisterAgent",
            "agent registration and job access",
        ))
    }

    async fn heartbeat(
        &self,
        _request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        Err(unimplemented(
            "ferry.v1.AgentService/Heartbeat",
            "agent registration and job access",
        ))
    }

    async fn list_agents(
        &self,
        _request: Request<pb::ListAgentsRequest>,
    ) -> Result<Response<pb::ListAgentsResponse>, Status> {
        Err(unimplemented(
            "ferry.v1.AgentService/ListAgents",
            "agent registration and job access",
        ))
    }

    async fn get_job_access(
        &self,
        _request: Request<pb::GetJobAccessRequest>,
    ) -> Result<Response<pb::GetJobAccessResponse>, Status> {
        Err(unimplemented(
            "ferry.v1.AgentService/GetJobAccess",
            "agent registration and job access",
        ))
    }
}

#[tonic::async_trait]
impl AccessEventService for Pending {
    async fn record_access_events(
        &self,
        _request: Request<pb::RecordAccessEventsRequest>,
    ) -> Result<Response<pb::RecordAccessEventsResponse>, Status> {
        Err(unimplemented(
            "ferry.v1.AccessEventService/RecordAccessEvents",
            "access telemetry",
        ))
    }

    async fn get_access_stats(
        &self,
        _request: Request<pb::GetAccessStatsRequest>,
    ) -> Result<Response<pb::GetAccessStatsResponse>, Status> {
        Err(unimplemented(
            "ferry.v1.AccessEventService/GetAccessStats",
            "access telemetry",
        ))
    }

    async fn stream_access_events(
        &self,
        _request: Request<Streaming<pb::RecordAccessEventsRequest>>,
    ) -> Result<Response<pb::RecordAccessEventsResponse>, Status> {
        Err(unimplemented(
            "ferry.v1.AccessEventService/StreamAccessEvents",
            "access telemetry",
        ))
    }
}

#[tonic::async_trait]
impl RecommendationService for Pending {
    async fn get_recommendations(
        &self,
        _request: Request<pb::GetRecommendationsRequest>,
    ) -> Result<Response<pb::GetRecommendationsResponse>, Status> {
        Err(unimplemented(
            "ferry.v1.RecommendationService/GetRecommendations",
            "placement recommendations",
        ))
    }

    async fn list_recommendations(
        &self,
        _request: Request<pb::ListRecommendationsRequest>,
    ) -> Result<Response<pb::ListRecommendationsResponse>, Status> {
        Err(unimplemented(
            "ferry.v1.RecommendationService/ListRecommendations",
            "placement recommendations",
        ))
    }

    async fn approve_recommendation(
        &self,
        _request: Request<pb::ApproveRecommendationRequest>,
    ) -> Result<Response<pb::ApproveRecommendationResponse>, Status> {
        Err(unimplemented(
            "ferry.v1.RecommendationService/ApproveRecommendation",
            "placement recommendations",
        ))
    }

    async fn reject_recommendation(
        &self,
        _request: Request<pb::RejectRecommendationRequest>,
    ) -> Result<Response<pb::Recommendation>, Status> {
        Err(unimplemented(
            "ferry.v1.RecommendationService/RejectRecommendation",
            "placement recommendations",
        ))
    }

    async fn train_models(
        &self,
        _request: Request<pb::TrainModelsRequest>,
    ) -> Result<Response<pb::TrainModelsResponse>, Status> {
        Err(unimplemented(
            "ferry.v1.RecommendationService/TrainModels",
            "placement recommendations",
        ))
    }

    async fn list_models(
        &self,
        _request: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        Err(unimplemented(
            "ferry.v1.RecommendationService/ListModels",
            "placement recommendations",
        ))
    }
}
