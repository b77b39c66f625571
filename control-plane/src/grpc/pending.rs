//! Services of the `ferry.v1` API whose capabilities are not in this release yet. They
//! are served (so reflection lists them and clients can be generated against the final
//! shape) and answer every call with `UNIMPLEMENTED`, naming what is missing.

use ferry_proto::v1::{self as pb, recommendation_service_server::RecommendationService};
use tonic::{Request, Response, Status};

/// The handler of every not-yet-available RPC.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pending;

fn unimplemented(rpc: &str, capability: &str) -> Status {
    Status::unimplemented(format!(
        "{rpc} is not implemented in this release of the control plane: {capability} is not \
         available yet"
    ))
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
