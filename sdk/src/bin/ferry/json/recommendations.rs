//! `--json` forms of placement recommendations, their reasons and cost estimates, and
//! the answer to an approval, in the conventions of the parent module.

use ferry_sdk::pb;
use serde_json::Value;

use super::{array, enum_value, timestamp, Object, ToJson};

impl ToJson for pb::Reason {
    fn to_json(&self) -> Value {
        Object::new()
            .field("code", self.code.as_str())
            .field("message", self.message.as_str())
            .done()
    }
}

impl ToJson for pb::CostEstimate {
    fn to_json(&self) -> Value {
        Object::new()
            .field("monthly_cost_now", finite(self.monthly_cost_now))
            .field("monthly_cost_after", finite(self.monthly_cost_after))
            .field("move_cost", finite(self.move_cost))
            .field("payback_days", finite(self.payback_days))
            .done()
    }
}

/// A figure as a JSON number; one that is not a number (which JSON cannot hold) is
/// `null`, as it means nothing could be estimated.
fn finite(value: f64) -> Value {
    if value.is_finite() {
        Value::from(value)
    } else {
        Value::Null
    }
}

impl ToJson for pb::Recommendation {
    fn to_json(&self) -> Value {
        Object::new()
            .field("id", self.id.as_str())
            .field("dataset", self.dataset.as_str())
            .field("current_tier", enum_value::<pb::Tier>(self.current_tier))
            .field("current_site", self.current_site.as_str())
            .field(
                "recommended_tier",
                enum_value::<pb::Tier>(self.recommended_tier),
            )
            .field("recommended_site", self.recommended_site.as_str())
            .field("reasons", array(&self.reasons))
            .field("cost", self.cost.as_ref().map(ToJson::to_json))
            .field("model_version", self.model_version.as_str())
            .field("state", enum_value::<pb::RecommendationState>(self.state))
            .field("job_id", self.job_id.as_str())
            .field("create_time", timestamp(self.create_time.as_ref()))
            .done()
    }
}

impl ToJson for pb::ModelInfo {
    fn to_json(&self) -> Value {
        Object::new()
            .field("dataset", self.dataset.as_str())
            .field("version", self.version.as_str())
            .field("kind", self.kind.as_str())
            .field("backtest_error", finite(self.backtest_error))
            .field("heuristic_error", finite(self.heuristic_error))
            .field("seasonal_naive_error", finite(self.seasonal_naive_error))
            .field("in_use", self.in_use)
            .field("train_time", timestamp(self.train_time.as_ref()))
            .field("note", self.note.as_str())
            .field("periods", self.periods.clone())
            .field("history_hours", self.history_hours)
            .field("expected_reads_7d", finite(self.expected_reads_7d))
            .field("peak_time", timestamp(self.peak_time.as_ref()))
            .field("peak_reads", finite(self.peak_reads))
            .done()
    }
}

impl ToJson for pb::TrainModelsResponse {
    fn to_json(&self) -> Value {
        Object::new()
            .field("models", array(&self.models))
            .field("datasets_trained", self.datasets_trained)
            .field("models_in_use", self.models_in_use)
            .field("elapsed", super::duration(self.elapsed.as_ref()))
            .done()
    }
}

impl ToJson for pb::ReplayOutcome {
    fn to_json(&self) -> Value {
        let sites: Vec<Value> = self
            .sites
            .iter()
            .map(|s| {
                Object::new()
                    .field("site", s.site.as_str())
                    .field("storage_cost", finite(s.storage_cost))
                    .field("retrieval_cost", finite(s.retrieval_cost))
                    .field("request_cost", finite(s.request_cost))
                    .done()
            })
            .collect();
        Object::new()
            .field("strategy", self.strategy.as_str())
            .field("storage_cost", finite(self.storage_cost))
            .field("retrieval_cost", finite(self.retrieval_cost))
            .field("request_cost", finite(self.request_cost))
            .field("move_cost", finite(self.move_cost))
            .field("total_cost", finite(self.total_cost))
            .field("moves", self.moves)
            .field("slow_reads", self.slow_reads)
            .field("sites", Value::Array(sites))
            .done()
    }
}

impl ToJson for pb::WhatIfResponse {
    fn to_json(&self) -> Value {
        Object::new()
            .field("outcomes", array(&self.outcomes))
            .field("datasets", self.datasets)
            .field("reads", self.reads)
            .field("elapsed", super::duration(self.elapsed.as_ref()))
            .done()
    }
}

impl ToJson for pb::ApproveRecommendationResponse {
    fn to_json(&self) -> Value {
        Object::new()
            .field(
                "recommendation",
                self.recommendation.as_ref().map(ToJson::to_json),
            )
            .field("job", self.job.as_ref().map(ToJson::to_json))
            .done()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn recommendation() -> pb::Recommendation {
        pb::Recommendation {
            id: "rec-1".into(),
            dataset: "ds-1".into(),
            current_tier: pb::Tier::Hot.into(),
            current_site: "s-1".into(),
            recommended_tier: pb::Tier::Cold.into(),
            recommended_site: "s-2".into(),
            reasons: vec![pb::Reason {
                code: "recency".into(),
                message: "last accessed 60m ago: cold (cold after 30m)".into(),
            }],
            cost: Some(pb::CostEstimate {
                monthly_cost_now: 12.5,
                monthly_cost_after: 2.25,
                move_cost: 0.5,
                payback_days: 1.5,
            }),
            model_version: "heuristic-v1".into(),
            state: pb::RecommendationState::NoAction.into(),
            job_id: String::new(),
            create_time: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
        }
    }

    #[test]
    fn a_recommendation_prints_every_field_with_short_enums() {
        let expected = json!({
            "id": "rec-1",
            "dataset": "ds-1",
            "current_tier": "hot",
            "current_site": "s-1",
            "recommended_tier": "cold",
            "recommended_site": "s-2",
            "reasons": [{
                "code": "recency",
                "message": "last accessed 60m ago: cold (cold after 30m)"
            }],
            "cost": {
                "monthly_cost_now": 12.5,
                "monthly_cost_after": 2.25,
                "move_cost": 0.5,
                "payback_days": 1.5
            },
            "model_version": "heuristic-v1",
            "state": "no_action",
            "job_id": "",
            "create_time": "2023-11-14T22:13:20Z"
        });
        assert_eq!(recommendation().to_json(), expected);
    }

    #[test]
    fn missing_and_unknown_values_stay_visible() {
        let bare = pb::Recommendation {
            state: 42,
            ..Default::default()
        };
        let value = bare.to_json();
        assert_eq!(value["state"], json!(42));
        assert_eq!(value["current_tier"], json!("unspecified"));
        assert_eq!(value["cost"], Value::Null);
        assert_eq!(value["reasons"], json!([]));
        assert_eq!(value["create_time"], Value::Null);
        let unknown = pb::CostEstimate {
            payback_days: f64::INFINITY,
            ..Default::default()
        };
        assert_eq!(unknown.to_json()["payback_days"], Value::Null);
        assert_eq!(unknown.to_json()["move_cost"], json!(0.0));
    }

    #[test]
    fn an_approval_nests_the_recommendation_and_the_job() {
        let mut approved = recommendation();
        approved.state = pb::RecommendationState::Approved.into();
        approved.job_id = "job-1".into();
        let answer = pb::ApproveRecommendationResponse {
            recommendation: Some(approved),
            job: Some(pb::Job {
                id: "job-1".into(),
                state: pb::JobState::Queued.into(),
                ..Default::default()
            }),
        };
        let value = answer.to_json();
        assert_eq!(value["recommendation"]["state"], json!("approved"));
        assert_eq!(value["recommendation"]["job_id"], json!("job-1"));
        assert_eq!(value["job"]["id"], json!("job-1"));
        assert_eq!(value["job"]["state"], json!("queued"));
        let empty = pb::ApproveRecommendationResponse::default().to_json();
        assert_eq!(empty, json!({"recommendation": null, "job": null}));
    }
}
