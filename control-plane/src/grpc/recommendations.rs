use ferry_proto::v1::{self as pb, recommendation_service_server::RecommendationService};
use tonic::{Request, Response, Status};

use crate::convert::{self, job_to_pb};
use crate::{
    domain::{
        dataset::DatasetFilter,
        name::Ref,
        page::{Page, PageRequest},
    },
    service::{Recommendations, Training, WhatIf},
};

pub struct RecommendationApi {
    recommendations: Recommendations,
    training: Training,
    whatif: WhatIf,
}

impl RecommendationApi {
    pub fn new(recommendations: Recommendations, training: Training, whatif: WhatIf) -> Self {
        RecommendationApi {
            recommendations,
            training,
            whatif,
        }
    }
}

fn dataset_ref(s: &str) -> Result<Option<Ref<crate::domain::ids::DatasetId>>, Status> {
    Ok((!s.is_empty())
        .then(|| Ref::parse("dataset", s))
        .transpose()?)
}

/// Models on the wire, each with what it expects from `now` on.
fn models_to_pb(
    models: Vec<crate::domain::forecast::Model>,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<pb::ModelInfo> {
    models
        .into_iter()
        .map(|m| {
            let outlook = m.outlook(now);
            convert::model_to_pb(m, outlook)
        })
        .collect()
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
        request: Request<pb::TrainModelsRequest>,
    ) -> Result<Response<pb::TrainModelsResponse>, Status> {
        let dataset = dataset_ref(&request.into_inner().dataset)?;
        let run = self.training.train(dataset.as_ref()).await?;
        let now = self.training.now();
        Ok(Response::new(pb::TrainModelsResponse {
            datasets_trained: u32::try_from(run.datasets).unwrap_or(u32::MAX),
            models_in_use: u32::try_from(run.in_use).unwrap_or(u32::MAX),
            elapsed: Some(ferry_proto::time::to_duration(run.elapsed)),
            models: models_to_pb(run.models, now),
        }))
    }

    async fn list_models(
        &self,
        request: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        let req = request.into_inner();
        let dataset = dataset_ref(&req.dataset)?;
        let page = PageRequest::parse(req.page_size, &req.page_token)?;
        let models = self.training.list(dataset.as_ref(), &page).await?;
        let now = self.training.now();
        Ok(Response::new(pb::ListModelsResponse {
            models: models_to_pb(models.items, now),
            next_page_token: models.next_token,
        }))
    }

    async fn what_if(
        &self,
        request: Request<pb::WhatIfRequest>,
    ) -> Result<Response<pb::WhatIfResponse>, Status> {
        let req = convert::whatif_request(request.into_inner())?;
        Ok(Response::new(convert::whatif_to_pb(
            self.whatif.replay(req).await?,
        )))
    }
}
