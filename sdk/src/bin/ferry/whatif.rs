//! `ferry whatif`: replays datasets' recorded access under a policy and compares what
//! Ferry, the recency rule and an Intelligent-Tiering-style rule would have cost with
//! what happened.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use clap::Args;
use ferry_sdk::{pb, Error};

use crate::duration::parse_duration;
use crate::json::{self, ToJson};
use crate::parse::{into_map, parse_key_value};
use crate::{output, Context};

/// The arguments of `ferry whatif`.
#[derive(Debug, Args)]
pub struct WhatIfArgs {
    /// Datasets (ids or names); without any, every dataset carrying the --label
    /// labels (every dataset when none is given)
    datasets: Vec<String>,
    /// Only datasets carrying this label with this value; repeatable
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    labels: Vec<(String, String)>,
    /// Start of the replayed range: RFC 3339 (2026-11-01T00:00:00Z) or how long ago (30d)
    #[arg(long, value_name = "TIME", default_value = "30d", value_parser = parse_time)]
    from: DateTime<Utc>,
    /// End of the range: RFC 3339 or how long ago; the start of the current hour by
    /// default
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    to: Option<DateTime<Utc>>,
    /// Replay under this policy (id or name); by default each dataset's own
    #[arg(long)]
    policy: Option<String>,
    /// How often placement is decided in the replay (whole hours)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    step: Option<std::time::Duration>,
    /// How often demand models are retrained in the replay (whole hours)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    retrain_every: Option<std::time::Duration>,
}

fn parse_time(input: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(input) {
        return Ok(t.to_utc());
    }
    let ago = parse_duration(input)
        .map_err(|_| format!("'{input}' is neither an RFC 3339 time nor a duration such as 30d"))?;
    let ago = TimeDelta::from_std(ago).map_err(|e| format!("'{input}': {e}"))?;
    Ok(this_hour() - ago)
}

fn this_hour() -> DateTime<Utc> {
    let now = Utc::now();
    now.duration_trunc(TimeDelta::hours(1)).unwrap_or(now)
}

pub async fn run(args: WhatIfArgs, ctx: &Context) -> Result<String, Error> {
    let to = args.to.unwrap_or_else(this_hour);
    let request = pb::WhatIfRequest {
        labels: into_map(&args.labels, "label")?,
        datasets: args.datasets,
        start_time: Some(ferry_sdk::time::to_timestamp(args.from)),
        end_time: Some(ferry_sdk::time::to_timestamp(to)),
        policy: args.policy.unwrap_or_default(),
        draft_policy: None,
        step: args.step.map(ferry_sdk::time::to_duration),
        retrain_every: args.retrain_every.map(ferry_sdk::time::to_duration),
    };
    let client = ctx.client().await?;
    let answer = client.what_if(request).await?;
    if ctx.json() {
        return Ok(json::render(&answer.to_json()));
    }
    Ok(format!(
        "replayed {} dataset(s), {} reads, {} → {}, in {}\n\n{}",
        answer.datasets,
        answer.reads,
        args.from.to_rfc3339(),
        to.to_rfc3339(),
        output::duration(answer.elapsed.as_ref()),
        table(&answer.outcomes)
    ))
}

fn table(outcomes: &[pb::ReplayOutcome]) -> String {
    let rows = outcomes
        .iter()
        .map(|o| {
            vec![
                o.strategy.replace('_', "-"),
                output::dollars(o.total_cost),
                output::dollars(o.storage_cost),
                output::dollars(o.retrieval_cost),
                output::dollars(o.request_cost),
                output::dollars(o.move_cost),
                o.moves.to_string(),
                o.slow_reads.to_string(),
            ]
        })
        .collect();
    output::table(
        &[
            "STRATEGY",
            "TOTAL",
            "STORAGE",
            "RETRIEVAL",
            "REQUESTS",
            "MOVES ($)",
            "MOVES",
            "SLOW READS",
        ],
        rows,
    )
}
