//! Recommendations.

use super::*;

use ferry_proto::{time::to_timestamp, v1 as pb};

use super::tier_to_pb;
use crate::{
    domain::{
        forecast::{Model, Outlook},
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

/// A demand model on the wire; `outlook` is what it expects from now on, when in use.
pub fn model_to_pb(m: Model, outlook: Option<Outlook>) -> pb::ModelInfo {
    let errors = m.errors;
    let peak = outlook.as_ref().and_then(|o| o.peak);
    pb::ModelInfo {
        dataset: m.dataset_id.to_string(),
        version: m.version,
        kind: m.kind.as_str().into(),
        backtest_error: errors.map_or(0.0, |e| e.model),
        heuristic_error: errors.map_or(0.0, |e| e.heuristic),
        seasonal_naive_error: errors.map_or(0.0, |e| e.seasonal_naive),
        in_use: m.in_use,
        train_time: Some(to_timestamp(m.trained_at)),
        note: m.note,
        periods: m
            .periods
            .into_iter()
            .map(|p| u32::try_from(p).unwrap_or(u32::MAX))
            .collect(),
        history_hours: m.history_hours,
        expected_reads_7d: outlook.as_ref().map_or(0.0, |o| o.reads_next_week),
        peak_time: peak.map(|(at, _)| to_timestamp(at)),
        peak_reads: peak.map_or(0.0, |(_, r)| r),
    }
}
