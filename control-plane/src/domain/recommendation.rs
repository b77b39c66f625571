//! Recorded recommendations: advice with its context and what became of it.

use chrono::{DateTime, Utc};

use super::{
    ids::{DatasetId, JobId, RecommendationId, SiteId},
    placement::{CostEstimate, Reason},
    tier::Tier,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecommendationState {
    Pending,
    Approved,
    Rejected,
    Superseded,
    NoAction,
}

impl RecommendationState {
    pub fn as_str(self) -> &'static str {
        match self {
            RecommendationState::Pending => "pending",
            RecommendationState::Approved => "approved",
            RecommendationState::Rejected => "rejected",
            RecommendationState::Superseded => "superseded",
            RecommendationState::NoAction => "no_action",
        }
    }
}

impl std::str::FromStr for RecommendationState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "pending" => RecommendationState::Pending,
            "approved" => RecommendationState::Approved,
            "rejected" => RecommendationState::Rejected,
            "superseded" => RecommendationState::Superseded,
            "no_action" => RecommendationState::NoAction,
            other => return Err(format!("unknown recommendation state '{other}'")),
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Recommendation {
    pub id: RecommendationId,
    pub dataset_id: DatasetId,
    pub current_tier: Tier,
    pub current_site_id: SiteId,
    pub recommended_tier: Tier,
    pub recommended_site_id: SiteId,
    pub reasons: Vec<Reason>,
    pub cost: CostEstimate,
    pub model_version: String,
    pub state: RecommendationState,
    pub job_id: Option<JobId>,
    pub created_at: DateTime<Utc>,
}
