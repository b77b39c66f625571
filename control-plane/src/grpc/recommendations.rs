use ferry_proto::v1::{self as pb, recommendation_service_server::RecommendationService};
use tonic::{Request, Response, Status};

use crate::convert::{self, job_to_pb};
use crate::{
    domain::{
        dataset::DatasetFilter,
        name::Ref,
        page::{Page, PageRequest},
    },
    service::Recommendations,
};

pub struct RecommendationApi {
    recommendations: Recommendations,
}

impl RecommendationApi {
    pub fn new(recommendations: Recommendations) -> Self {
        RecommendationApi { recommendations }
    }
}

/// Forecast models arrive in a later release; until then these RPCs say so.
fn models_unavailable(rpc: &str) -> Status {
    Status::unimplemented(format!(
        "ferry.v1.RecommendationService/{rpc} is not implemented in this release of the control plane: \
         forecast models are not available yet (recommendations use the recency rules)"
    ))
}

#[tonic::async_trait]
impl RecommendationService for RecommendationApi {
    async fn get_recommendations(
        &self,
        request: Request<pb::GetRecommendationsRequest>,
    ) -> Result<Response<pb::GetRecommendationsResponse>, Status> {
        let req = request.into_inner();
        let page = if req.dataset.is_empty() {
            let page = PageRequest::parse(req.page_size, &req.page_token)?;
            let filter = DatasetFilter {
                site: (!req.site.is_empty())
                    .then(|| Ref::parse("site", &req.site))
                    .transpose()?,
                tier: convert::tier("tier", req.tier)?,
                owner: None,
                labels: convert::labels("labels", req.labels)?,
                name_contains: None,
            };
            self.recommendations.compute(&filter, &page).await?
        } else {
            let r = Ref::parse("dataset", &req.dataset)?;
            let dataset = self.recommendations.dataset(&r).await?;
            Page {
                items: vec![self.recommendations.compute_one(&dataset).await?],
                next_token: String::new(),
            }
        };
        Ok(Response::new(pb::GetRecommendationsResponse {
            recommendations: page
                .items
                .into_iter()
                .map(convert::recommendation_to_pb)
                .collect(),
            next_page_token: page.next_token,
        }))
    }

    async fn list_recommendations(
        &self,
        request: Request<pb::ListRecommendationsRequest>,
    ) -> Result<Response<pb::ListRecommendationsResponse>, Status> {
        let req = request.into_inner();
        let page = PageRequest::parse(req.page_size, &req.page_token)?;
        let dataset = (!req.dataset.is_empty())
            .then(|| Ref::parse("dataset", &req.dataset))
            .transpose()?;
        let history = self
            .recommendations
            .history(dataset.as_ref(), &page)
            .await?;
        Ok(Response::new(pb::ListRecommendationsResponse {
            recommendations: history
                .items
                .into_iter()
                .map(convert::recommendation_to_pb)
                .collect(),
            next_page_token: history.next_token,
        }))
    }

    async fn approve_recommendation(
        &self,
        request: Request<pb::ApproveRecommendationRequest>,
    ) -> Result<Response<pb::ApproveRecommendationResponse>, Status> {
        let id = convert::recommendation_id(&request.into_inner().recommendation)?;
        let (recommendation, job) = self.recommendations.approve(id).await?;
        Ok(Response::new(pb::ApproveRecommendationResponse {
            recommendation: Some(convert::recommendation_to_pb(recommendation)),
            job: Some(job_to_pb(job)),
        }))
    }

    async fn reject_recommendation(
        &self,
        request: Request<pb::RejectRecommendationRequest>,
    ) -> Result<Response<pb::Recommendation>, Status> {
        let id = convert::recommendation_id(&request.into_inner().recommendation)?;
        Ok(Response::new(convert::recommendation_to_pb(
            self.recommendations.reject(id).await?,
        )))
    }

    async fn train_models(
        &self,
        _request: Request<pb::TrainModelsRequest>,
    ) -> Result<Response<pb::TrainModelsResponse>, Status> {
        Err(models_unavailable("TrainModels"))
    }

    async fn list_models(
        &self,
        _request: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        Err(models_unavailable("ListModels"))
    }
}
