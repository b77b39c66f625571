//! Recommendations.

use super::*;

use ferry_proto::{time::to_timestamp, v1 as pb};

use super::tier_to_pb;
use crate::{
    domain::{
        ids::RecommendationId,
        recommendation::{Recommendation, RecommendationState},
    },
    error::Error,
};

pub fn recommendation_id(s: &str) -> Result<RecommendationId, Error> {
    s.parse().map_err(|_| {
        Error::invalid(
            "recommendation",
            format!("'{s}' is not a recommendation id"),
        )
    })
}

pub fn recommendation_to_pb(r: Recommendation) -> pb::Recommendation {
    pb::Recommendation {
        id: r.id.to_string(),
        dataset: r.dataset_id.to_string(),
        current_tier: tier_to_pb(r.current_tier),
        current_site: r.current_site_id.to_string(),
        recommended_tier: tier_to_pb(r.recommended_tier),
        recommended_site: r.recommended_site_id.to_string(),
        reasons: r
            .reasons
            .into_iter()
            .map(|x| pb::Reason {
                code: x.code,
                message: x.message,
            })
            .collect(),
        cost: Some(pb::CostEstimate {
            monthly_cost_now: r.cost.monthly_now,
            monthly_cost_after: r.cost.monthly_after,
            move_cost: r.cost.move_cost,
            payback_days: r.cost.payback_days.unwrap_or(0.0),
        }),
        model_version: r.model_version,
        state: match r.state {
            RecommendationState::Pending => pb::RecommendationState::Pending,
            RecommendationState::Approved => pb::RecommendationState::Approved,
            RecommendationState::Rejected => pb::RecommendationState::Rejected,
            RecommendationState::Superseded => pb::RecommendationState::Superseded,
            RecommendationState::NoAction => pb::RecommendationState::NoAction,
        }
        .into(),
        job_id: r.job_id.map(|j| j.to_string()).unwrap_or_default(),
        create_time: Some(to_timestamp(r.created_at)),
    }
}
