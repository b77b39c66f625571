//! Placement advice: computing recommendations, reading their recorded history and
//! acting on them, built on the `RecommendationService` stub.

use std::collections::HashMap;

use ferry_proto::v1 as pb;

use crate::client::{collect_pages, required, Client, PAGE_SIZE};
use crate::error::Error;

/// Which datasets [`Client::recommendations_for`] advises on. With `dataset` set, only
/// that one; otherwise every dataset matching all the other filters given (all datasets
/// when none is).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecommendationFilter {
    /// One dataset (id or name).
    pub dataset: Option<String>,
    /// The site (id or name) holding the dataset's primary replica.
    pub site: Option<String>,
    /// The dataset's current tier.
    pub tier: Option<pb::Tier>,
    /// Labels the dataset must carry, each with exactly this value.
    pub labels: HashMap<String, String>,
}

impl Client {
    // Recommendations.

    /// Computes fresh recommendations for the datasets `filter` selects, fetching all
    /// pages.
    ///
    /// Every recommendation returned is also recorded by the server (see
    /// [`Client::recommendation_history`]); a dataset already where it should be gets one
    /// in state `NoAction`. A newer pending recommendation supersedes an older one for
    /// the same dataset.
    pub async fn recommendations_for(
        &self,
        filter: &RecommendationFilter,
    ) -> Result<Vec<pb::Recommendation>, Error> {
        let dataset = filter.dataset.clone().unwrap_or_default();
        let site = filter.site.clone().unwrap_or_default();
        let tier = filter.tier.map_or(0, i32::from);
        collect_pages(|page_token| {
            let mut stub = self.recommendations();
            let request = pb::GetRecommendationsRequest {
                dataset: dataset.clone(),
                site: site.clone(),
                tier,
                labels: filter.labels.clone(),
                page_size: PAGE_SIZE,
                page_token,
            };
            async move {
                let page = stub.get_recommendations(request).await?.into_inner();
                Ok((page.recommendations, page.next_page_token))
            }
        })
        .await
    }

    /// Trains the demand model of `dataset` (id or name), or of every dataset when
    /// `None`. The answer holds each new model (for up to 1,000 datasets) and counts.
    pub async fn train_models(
        &self,
        dataset: Option<&str>,
    ) -> Result<pb::TrainModelsResponse, Error> {
        let request = pb::TrainModelsRequest {
            dataset: dataset.unwrap_or_default().to_owned(),
        };
        Ok(self
            .recommendations()
            .train_models(request)
            .await?
            .into_inner())
    }

    /// Every dataset's latest demand model, or, for `dataset`, its kept versions newest
    /// first; fetching all pages.
    pub async fn list_models(&self, dataset: Option<&str>) -> Result<Vec<pb::ModelInfo>, Error> {
        let dataset = dataset.unwrap_or_default().to_owned();
        collect_pages(|page_token| {
            let mut stub = self.recommendations();
            let request = pb::ListModelsRequest {
                dataset: dataset.clone(),
                page_size: PAGE_SIZE,
                page_token,
            };
            async move {
                let page = stub.list_models(request).await?.into_inner();
                Ok((page.models, page.next_page_token))
            }
        })
        .await
    }

    /// Replays recorded access under a policy and prices each strategy (see the
    /// `WhatIf` RPC); nothing is recorded.
    pub async fn what_if(&self, request: pb::WhatIfRequest) -> Result<pb::WhatIfResponse, Error> {
        Ok(self.recommendations().what_if(request).await?.into_inner())
    }

    /// Every recorded recommendation, or only those for `dataset` (id or name), newest
    /// first, fetching all pages. Nothing is computed.
    pub async fn recommendation_history(
        &self,
        dataset: Option<&str>,
    ) -> Result<Vec<pb::Recommendation>, Error> {
        let dataset = dataset.unwrap_or_default().to_owned();
        collect_pages(|page_token| {
            let mut stub = self.recommendations();
            let request = pb::ListRecommendationsRequest {
                dataset: dataset.clone(),
                page_size: PAGE_SIZE,
                page_token,
            };
            async move {
                let page = stub.list_recommendations(request).await?.into_inner();
                Ok((page.recommendations, page.next_page_token))
            }
        })
        .await
    }

    /// Approves a pending recommendation: the server plans the migration it advises and
    /// answers with the recommendation (now approved, naming the job) and the job.
    ///
    /// Approving again returns the same job, as the plan is keyed by the recommendation.
    /// The server refuses with `FailedPrecondition` a recommendation that is not pending
    /// or approved. Fails with [`Error::Protocol`] when the answer lacks the
    /// recommendation or the job.
    pub async fn approve_recommendation(
        &self,
        recommendation: &str,
    ) -> Result<pb::ApproveRecommendationResponse, Error> {
        let recommendation = required("recommendation id", recommendation)?;
        let request = pb::ApproveRecommendationRequest { recommendation };
        let answer = self
            .recommendations()
            .approve_recommendation(request)
            .await?
            .into_inner();
        if answer.recommendation.is_none() {
            return Err(Error::Protocol(
                "ApproveRecommendation answered without the recommendation".into(),
            ));
        }
        if answer.job.is_none() {
            return Err(Error::Protocol(
                "ApproveRecommendation answered without a job".into(),
            ));
        }
        Ok(answer)
    }

    /// Rejects a pending recommendation, recording `reason` (which may be empty); the
    /// answer is the recommendation as it stands after. The server refuses with
    /// `FailedPrecondition` one that is no longer pending.
    pub async fn reject_recommendation(
        &self,
        recommendation: &str,
        reason: &str,
    ) -> Result<pb::Recommendation, Error> {
        let recommendation = required("recommendation id", recommendation)?;
        let request = pb::RejectRecommendationRequest {
            recommendation,
            reason: reason.to_owned(),
        };
        Ok(self
            .recommendations()
            .reject_recommendation(request)
            .await?
            .into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lazy_client() -> Client {
        match Client::connect_lazy("127.0.0.1:1") {
            Ok(client) => client,
            Err(e) => panic!("a lazy client needs no server: {e}"),
        }
    }

    #[tokio::test]
    async fn recommendation_calls_refuse_an_empty_id_before_sending() {
        let client = lazy_client();
        assert!(matches!(
            client.approve_recommendation(" ").await,
            Err(Error::InvalidInput(m)) if m.contains("recommendation id")
        ));
        assert!(matches!(
            client.reject_recommendation("", "too soon").await,
            Err(Error::InvalidInput(_))
        ));
    }
}
