//! What-if requests and answers.

use ferry_proto::{time::to_duration, v1 as pb};

use super::*;
use crate::{
    domain::{name::Ref, whatif::Outcome},
    error::{Error, Result},
    service::whatif::{PolicyChoice, WhatIfAnswer, WhatIfRequest},
};

pub fn whatif_request(r: pb::WhatIfRequest) -> Result<WhatIfRequest> {
    let required = |field: &str, t: Option<&prost_types::Timestamp>| {
        time(field, t)?.ok_or_else(|| Error::invalid(field, "required"))
    };
    let policy = match (r.policy.is_empty(), r.draft_policy) {
        (false, Some(_)) => {
            return Err(Error::invalid(
                "draft_policy",
                "give either policy or draft_policy, not both",
            ))
        }
        (false, None) => PolicyChoice::Existing(Ref::parse("policy", &r.policy)?),
        (true, Some(draft)) => PolicyChoice::Draft(Box::new(policy_fields(&draft, None).map_err(
            |e| match e {
                Error::InvalidArgument { field, reason } => Error::InvalidArgument {
                    field: format!("draft_{field}"),
                    reason,
                },
                other => other,
            },
        )?)),
        (true, None) => PolicyChoice::Governing,
    };
    Ok(WhatIfRequest {
        datasets: r
            .datasets
            .iter()
            .enumerate()
            .map(|(i, d)| Ref::parse(&format!("datasets[{i}]"), d))
            .collect::<Result<_>>()?,
        labels: labels("labels", r.labels)?,
        start: required("start_time", r.start_time.as_ref())?,
        end: required("end_time", r.end_time.as_ref())?,
        policy,
        step: r.step.as_ref().map(|d| duration("step", d)).transpose()?,
        retrain_every: r
            .retrain_every
            .as_ref()
            .map(|d| duration("retrain_every", d))
            .transpose()?,
    })
}

fn outcome_to_pb(o: Outcome) -> pb::ReplayOutcome {
    pb::ReplayOutcome {
        strategy: o.strategy.as_str().into(),
        storage_cost: o.storage,
        retrieval_cost: o.retrieval,
        request_cost: o.requests,
        move_cost: o.move_cost,
        total_cost: o.total(),
        moves: o.moves,
        slow_reads: o.slow_reads,
        sites: o
            .sites
            .into_iter()
            .map(|(site, c)| pb::SiteCost {
                site: site.to_string(),
                storage_cost: c.storage,
                retrieval_cost: c.retrieval,
                request_cost: c.requests,
            })
            .collect(),
    }
}

pub fn whatif_to_pb(a: WhatIfAnswer) -> pb::WhatIfResponse {
    pb::WhatIfResponse {
        outcomes: a.outcomes.into_iter().map(outcome_to_pb).collect(),
        datasets: u32::try_from(a.datasets).unwrap_or(u32::MAX),
        reads: a.reads,
        elapsed: Some(to_duration(a.elapsed)),
    }
}
