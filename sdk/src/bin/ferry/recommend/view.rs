//! How recommendations read for people: the table of fresh advice with the reasons of
//! the moves it proposes, the history table, one recommendation in full, and an
//! approval with its job.

use ferry_sdk::pb;

use crate::enums::display;
use crate::job::view::{self as job_view, Names};
use crate::output::{self, Fields, NONE};

const COLUMNS: [&str; 9] = [
    "DATASET",
    "CURRENT",
    "RECOMMENDED",
    "STATE",
    "NOW $/MO",
    "AFTER $/MO",
    "MOVE $",
    "PAYBACK",
    "ID",
];

/// Fresh recommendations as a table, then one indented line per reason of each that
/// moves data (the pending ones): `  genome: last accessed 60m ago: cold (...)`.
pub fn recommendations_table(recommendations: &[pb::Recommendation], names: &Names) -> String {
    let rows = recommendations.iter().map(|r| row(r, names)).collect();
    let mut text = output::table(&COLUMNS, rows);
    let reasons: Vec<String> = recommendations
        .iter()
        .filter(|r| r.state == i32::from(pb::RecommendationState::Pending))
        .flat_map(|r| {
            let dataset = names.dataset(&r.dataset);
            r.reasons
                .iter()
                .map(move |reason| format!("  {dataset}: {}", reason.message))
        })
        .collect();
    if !reasons.is_empty() {
        text.push_str("\n\n");
        text.push_str(&reasons.join("\n"));
    }
    text
}

/// Recorded recommendations as a table, with when each was made.
pub fn history_table(recommendations: &[pb::Recommendation], names: &Names) -> String {
    let rows = recommendations
        .iter()
        .map(|r| {
            let mut cells = row(r, names);
            cells.push(output::timestamp(r.create_time.as_ref()));
            cells
        })
        .collect();
    let mut header = COLUMNS.to_vec();
    header.push("CREATED");
    output::table(&header, rows)
}

fn row(recommendation: &pb::Recommendation, names: &Names) -> Vec<String> {
    let cost = recommendation.cost.as_ref();
    vec![
        names.dataset(&recommendation.dataset),
        placement(
            recommendation.current_tier,
            &recommendation.current_site,
            names,
        ),
        placement(
            recommendation.recommended_tier,
            &recommendation.recommended_site,
            names,
        ),
        display::<pb::RecommendationState>(recommendation.state),
        cost.map_or_else(|| NONE.to_owned(), |c| money(c.monthly_cost_now)),
        cost.map_or_else(|| NONE.to_owned(), |c| money(c.monthly_cost_after)),
        cost.map_or_else(|| NONE.to_owned(), |c| money(c.move_cost)),
        cost.map_or_else(|| NONE.to_owned(), |c| payback(c.payback_days)),
        recommendation.id.clone(),
    ]
}

/// Recommendations in full, one key/value block each, blank lines between.
pub fn details(recommendations: &[pb::Recommendation], names: &Names) -> String {
    recommendations
        .iter()
        .map(|r| fields(r, names).render())
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// One recommendation as a key/value block, its reasons one a line at the end.
pub fn fields(recommendation: &pb::Recommendation, names: &Names) -> Fields {
    let cost = recommendation.cost.as_ref();
    let per_month = |amount: Option<f64>| amount.map_or_else(|| NONE.to_owned(), monthly);
    let mut fields = Fields::new();
    fields
        .add("id", &recommendation.id)
        .add("dataset", names.dataset(&recommendation.dataset))
        .add(
            "current",
            placement(
                recommendation.current_tier,
                &recommendation.current_site,
                names,
            ),
        )
        .add(
            "recommended",
            placement(
                recommendation.recommended_tier,
                &recommendation.recommended_site,
                names,
            ),
        )
        .add(
            "state",
            display::<pb::RecommendationState>(recommendation.state),
        )
        .add("cost now", per_month(cost.map(|c| c.monthly_cost_now)))
        .add("cost after", per_month(cost.map(|c| c.monthly_cost_after)))
        .add(
            "move cost",
            cost.map_or_else(|| NONE.to_owned(), |c| money(c.move_cost)),
        )
        .add(
            "payback",
            cost.map_or_else(|| NONE.to_owned(), |c| payback(c.payback_days)),
        )
        .add("model", output::or_none(&recommendation.model_version))
        .add("job", output::or_none(&recommendation.job_id))
        .add(
            "created",
            output::timestamp(recommendation.create_time.as_ref()),
        );
    let mut reasons = recommendation.reasons.iter();
    match reasons.next() {
        None => {
            fields.add("reasons", NONE);
        }
        Some(first) => {
            fields.add("reasons", reason(first));
            for next in reasons {
                fields.add("", reason(next));
            }
        }
    }
    fields
}

fn reason(reason: &pb::Reason) -> String {
    if reason.code.is_empty() {
        reason.message.clone()
    } else {
        format!("{}: {}", reason.code, reason.message)
    }
}

/// An approval: the recommendation's new state, then the migration job as `ferry job
/// get` shows it.
pub fn approved(
    answer: &pb::ApproveRecommendationResponse,
    job: &pb::Job,
    names: &Names,
) -> String {
    let heading = match &answer.recommendation {
        Some(r) => format!(
            "recommendation {} is {}; migration job:",
            r.id,
            display::<pb::RecommendationState>(r.state)
        ),
        None => "migration job:".to_owned(),
    };
    format!("{heading}\n\n{}", job_view::fields(job, names).render())
}

/// `tier@site`, the site by name when known.
fn placement(tier: i32, site: &str, names: &Names) -> String {
    format!("{}@{}", display::<pb::Tier>(tier), names.site(site))
}

/// A dollar amount; `-` for one that is not a number (nothing could be estimated).
fn money(amount: f64) -> String {
    if amount.is_finite() {
        output::dollars(amount)
    } else {
        NONE.to_owned()
    }
}

fn monthly(amount: f64) -> String {
    if amount.is_finite() {
        format!("{}/month", output::dollars(amount))
    } else {
        NONE.to_owned()
    }
}

/// Days until a move pays for itself; `-` when it never does (0: no saving).
fn payback(days: f64) -> String {
    if !days.is_finite() || days <= 0.0 {
        NONE.to_owned()
    } else if days < 0.1 {
        "< 0.1 days".to_owned()
    } else if days < 10.0 {
        format!("{days:.1} days")
    } else {
        format!("{days:.0} days")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn names() -> Names {
        Names {
            sites: HashMap::from([
                ("s-1".to_owned(), "nvme-a".to_owned()),
                ("s-2".to_owned(), "archive".to_owned()),
            ]),
            datasets: HashMap::from([
                ("ds-1".to_owned(), "genome".to_owned()),
                ("ds-2".to_owned(), "scratch".to_owned()),
            ]),
        }
    }

    fn pending() -> pb::Recommendation {
        pb::Recommendation {
            id: "rec-1".into(),
            dataset: "ds-1".into(),
            current_tier: pb::Tier::Hot.into(),
            current_site: "s-1".into(),
            recommended_tier: pb::Tier::Cold.into(),
            recommended_site: "s-2".into(),
            reasons: vec![
                pb::Reason {
                    code: "recency".into(),
                    message: "last accessed 60m ago: cold (cold after 30m)".into(),
                },
                pb::Reason {
                    code: "cost_target".into(),
                    message: "saves $10.25/month".into(),
                },
            ],
            cost: Some(pb::CostEstimate {
                monthly_cost_now: 12.5,
                monthly_cost_after: 2.25,
                move_cost: 0.5,
                payback_days: 1.46,
            }),
            model_version: "heuristic-v1".into(),
            state: pb::RecommendationState::Pending.into(),
            job_id: String::new(),
            create_time: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
        }
    }

    fn settled() -> pb::Recommendation {
        pb::Recommendation {
            id: "rec-2".into(),
            dataset: "ds-2".into(),
            current_tier: pb::Tier::Warm.into(),
            current_site: "s-1".into(),
            recommended_tier: pb::Tier::Warm.into(),
            recommended_site: "s-1".into(),
            reasons: vec![pb::Reason {
                code: "recency".into(),
                message: "accessed 2m ago: warm".into(),
            }],
            cost: Some(pb::CostEstimate {
                monthly_cost_now: 3.0,
                monthly_cost_after: 3.0,
                move_cost: 0.0,
                payback_days: 0.0,
            }),
            state: pb::RecommendationState::NoAction.into(),
            ..Default::default()
        }
    }

    fn cells(line: &str) -> Vec<&str> {
        line.split("   ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect()
    }

    #[test]
    fn fresh_advice_shows_names_costs_and_the_reasons_of_moves() {
        let rendered = recommendations_table(&[pending(), settled()], &names());
        let lines: Vec<&str> = rendered.lines().collect();
        assert_eq!(cells(lines[0]), COLUMNS, "{rendered}");
        assert_eq!(
            cells(lines[1]),
            [
                "genome",
                "hot@nvme-a",
                "cold@archive",
                "pending",
                "$12.50",
                "$2.25",
                "$0.50",
                "1.5 days",
                "rec-1"
            ]
        );
        assert_eq!(
            cells(lines[2]),
            [
                "scratch",
                "warm@nvme-a",
                "warm@nvme-a",
                "no_action",
                "$3.00",
                "$3.00",
                "$0.00",
                "-",
                "rec-2"
            ]
        );
        assert_eq!(
            &lines[3..],
            [
                "",
                "  genome: last accessed 60m ago: cold (cold after 30m)",
                "  genome: saves $10.25/month",
            ],
            "only moves list their reasons:\n{rendered}"
        );
    }

    #[test]
    fn advice_without_moves_is_just_the_table() {
        let rendered = recommendations_table(&[settled()], &names());
        assert_eq!(rendered.lines().count(), 2, "{rendered}");
        assert!(!rendered.contains("accessed 2m ago"), "{rendered}");
    }

    #[test]
    fn history_adds_the_creation_time_and_keeps_unknown_ids() {
        let mut gone = settled();
        gone.dataset = "ds-9".into();
        gone.cost = None;
        let rendered = history_table(&[pending(), gone], &names());
        let lines: Vec<&str> = rendered.lines().collect();
        assert_eq!(lines.len(), 3, "{rendered}");
        assert_eq!(cells(lines[0]).last(), Some(&"CREATED"));
        assert_eq!(cells(lines[1]).last(), Some(&"2023-11-14T22:13:20Z"));
        assert_eq!(
            cells(lines[2]),
            [
                "ds-9",
                "warm@nvme-a",
                "warm@nvme-a",
                "no_action",
                "-",
                "-",
                "-",
                "-",
                "rec-2",
                "-"
            ]
        );
    }

    #[test]
    fn one_recommendation_in_full_lists_every_reason() {
        let text = details(&[pending()], &names());
        let expected = "\
id            rec-1
dataset       genome
current       hot@nvme-a
recommended   cold@archive
state         pending
cost now      $12.50/month
cost after    $2.25/month
move cost     $0.50
payback       1.5 days
model         heuristic-v1
job           -
created       2023-11-14T22:13:20Z
reasons       recency: last accessed 60m ago: cold (cold after 30m)
              cost_target: saves $10.25/month";
        assert_eq!(text, expected);
        let bare = details(&[pb::Recommendation::default()], &names());
        assert!(bare.lines().any(|l| l == "reasons       -"), "{bare}");
        assert!(bare.lines().any(|l| l == "cost now      -"), "{bare}");
    }

    #[test]
    fn an_approval_shows_the_state_then_the_job() {
        let mut recommendation = pending();
        recommendation.state = pb::RecommendationState::Approved.into();
        let job = pb::Job {
            id: "job-1".into(),
            dataset: "ds-1".into(),
            source_site: "s-1".into(),
            destination_site: "s-2".into(),
            state: pb::JobState::Queued.into(),
            ..Default::default()
        };
        let answer = pb::ApproveRecommendationResponse {
            recommendation: Some(recommendation),
            job: Some(job.clone()),
        };
        let text = approved(&answer, &job, &names());
        assert!(
            text.starts_with("recommendation rec-1 is approved; migration job:\n\nid "),
            "{text}"
        );
        for line in [
            "dataset           genome",
            "to                archive",
            "state             queued",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in\n{text}"
            );
        }
    }

    #[test]
    fn paybacks_read_in_days() {
        assert_eq!(payback(0.0), "-");
        assert_eq!(payback(-1.0), "-");
        assert_eq!(payback(f64::NAN), "-");
        assert_eq!(payback(0.01), "< 0.1 days");
        assert_eq!(payback(2.26), "2.3 days");
        assert_eq!(payback(45.6), "46 days");
        assert_eq!(money(f64::INFINITY), "-");
        assert_eq!(money(0.0004), "$0.0004");
    }
}
