//! `ferry recommend`: placement advice for datasets, its recorded history, and approving
//! (which plans the migration) or rejecting it.

mod view;

use clap::{Args, Subcommand};
use ferry_sdk::{pb, Client, Error, RecommendationFilter};

use crate::enums::parse_tier;
use crate::job::{all_names, names_for_dataset, names_for_job, WATCH_EXIT};
use crate::json::{self, ToJson};
use crate::parse::{into_map, parse_key_value};
use crate::watch::{self, Mode};
use crate::{Context, Outcome};

use view::{approved, details, history_table, recommendations_table};

/// The arguments of `ferry recommend`: computing advice, or one of the subcommands.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RecommendArgs {
    #[command(subcommand)]
    command: Option<RecommendCommand>,
    #[command(flatten)]
    filter: FilterArgs,
}

/// Which datasets to advise on.
#[derive(Debug, Args)]
struct FilterArgs {
    /// One dataset (id or name), shown in full with all its reasons; without it, every
    /// dataset matching the filters. A dataset named like a subcommand (history,
    /// approve, reject) is given by its id
    dataset: Option<String>,
    /// Only datasets whose primary replica is on this site (id or name)
    #[arg(long)]
    site: Option<String>,
    /// Only datasets currently on this tier: hot, warm or cold
    #[arg(long, value_parser = parse_tier, value_name = "TIER")]
    tier: Option<pb::Tier>,
    /// Only datasets carrying this label with this value; repeatable
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    labels: Vec<(String, String)>,
}

impl FilterArgs {
    /// The filter these arguments ask for; refuses a label given twice.
    fn filter(self) -> Result<RecommendationFilter, Error> {
        Ok(RecommendationFilter {
            labels: into_map(&self.labels, "label")?,
            dataset: self.dataset,
            site: self.site,
            tier: self.tier,
        })
    }
}

#[derive(Debug, Subcommand)]
enum RecommendCommand {
    /// List recorded recommendations, newest first; nothing is computed
    History {
        /// Only recommendations for this dataset (id or name)
        dataset: Option<String>,
    },
    /// Approve a pending recommendation: plans the migration it advises
    ///
    /// Approving again returns the same job. With --watch, follows the job as
    /// `ferry job watch` does.
    #[command(after_help = WATCH_EXIT)]
    Approve {
        /// The recommendation's id
        recommendation: String,
        /// Follow the migration job once planned (with --json, the approval's answer is
        /// the first line)
        #[arg(long)]
        watch: bool,
    },
    /// Reject a pending recommendation
    Reject {
        /// The recommendation's id
        recommendation: String,
        /// Why, for the record
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
}

pub async fn run(args: RecommendArgs, ctx: &Context) -> Result<Outcome, Error> {
    let text = match args.command {
        None => {
            // Arguments are checked before dialling, as elsewhere.
            let filter = args.filter.filter()?;
            let client = ctx.client().await?;
            let recommendations = client.recommendations_for(&filter).await?;
            recommend(&recommendations, filter.dataset.as_deref(), client, ctx).await?
        }
        Some(RecommendCommand::History { dataset }) => {
            let client = ctx.client().await?;
            let history = client.recommendation_history(dataset.as_deref()).await?;
            if ctx.json() {
                json::render(&json::array(&history))
            } else if history.is_empty() {
                "no recommendations recorded".to_owned()
            } else {
                history_table(&history, &all_names(client).await?)
            }
        }
        Some(RecommendCommand::Approve {
            recommendation,
            watch,
        }) => return approve(&recommendation, watch, ctx).await,
        Some(RecommendCommand::Reject {
            recommendation,
            reason,
        }) => {
            let client = ctx.client().await?;
            let rejected = client
                .reject_recommendation(&recommendation, reason.as_deref().unwrap_or_default())
                .await?;
            if ctx.json() {
                json::render(&rejected.to_json())
            } else {
                let names = names_for_dataset(client, &rejected.dataset).await?;
                details(std::slice::from_ref(&rejected), &names)
            }
        }
    };
    Ok(Outcome::print(text))
}

/// Fresh recommendations: one dataset's in full when `dataset` was asked for, else the
/// table with the reasons of those that move data.
async fn recommend(
    recommendations: &[pb::Recommendation],
    dataset: Option<&str>,
    client: &Client,
    ctx: &Context,
) -> Result<String, Error> {
    if ctx.json() {
        return Ok(json::render(&json::array(recommendations)));
    }
    if recommendations.is_empty() {
        return Ok("no recommendations".to_owned());
    }
    Ok(match dataset {
        Some(dataset) => details(recommendations, &names_for_dataset(client, dataset).await?),
        None => recommendations_table(recommendations, &all_names(client).await?),
    })
}

/// Approves, prints the recommendation's state and the job and, with `then_watch`,
/// follows the job.
async fn approve(recommendation: &str, then_watch: bool, ctx: &Context) -> Result<Outcome, Error> {
    let client = ctx.client().await?;
    let answer = client.approve_recommendation(recommendation).await?;
    let Some(job) = answer.job.as_ref() else {
        return Err(Error::Protocol(
            "ApproveRecommendation answered without a job".into(),
        ));
    };
    let text = if ctx.json() {
        // Followed by JSON lines when watching, so one line too.
        if then_watch {
            json::line(&answer.to_json())
        } else {
            json::render(&answer.to_json())
        }
    } else {
        approved(&answer, job, &names_for_job(client, job).await?)
    };
    if !then_watch {
        return Ok(Outcome::print(text));
    }
    if let Err(outcome) = watch::preface(&text) {
        return Ok(outcome);
    }
    watch::watch(client, &job.id, Mode::detect(ctx.json())).await
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        args: RecommendArgs,
    }

    fn parse(args: &[&str]) -> Result<RecommendArgs, clap::Error> {
        Probe::try_parse_from(std::iter::once("probe").chain(args.iter().copied())).map(|p| p.args)
    }

    #[test]
    fn filters_fill_the_request() -> Result<(), Error> {
        let Ok(args) = parse(&[
            "--site", "nvme-a", "--tier", "hot", "--label", "team=bio", "--label", "env=prod",
        ]) else {
            panic!("filters should parse");
        };
        assert!(args.command.is_none());
        let filter = args.filter.filter()?;
        assert_eq!(filter.dataset, None);
        assert_eq!(filter.site.as_deref(), Some("nvme-a"));
        assert_eq!(filter.tier, Some(pb::Tier::Hot));
        assert_eq!(filter.labels.len(), 2);
        assert_eq!(filter.labels.get("team").map(String::as_str), Some("bio"));
        Ok(())
    }

    #[test]
    fn one_dataset_is_a_positional_argument() -> Result<(), Error> {
        let Ok(args) = parse(&["genome"]) else {
            panic!("a dataset should parse");
        };
        assert_eq!(args.filter.filter()?.dataset.as_deref(), Some("genome"));
        Ok(())
    }

    #[test]
    fn subcommands_parse_their_arguments() {
        assert!(matches!(
            parse(&["history", "genome"]).map(|a| a.command),
            Ok(Some(RecommendCommand::History { dataset: Some(d) })) if d == "genome"
        ));
        assert!(matches!(
            parse(&["history"]).map(|a| a.command),
            Ok(Some(RecommendCommand::History { dataset: None }))
        ));
        assert!(matches!(
            parse(&["approve", "rec-1", "--watch"]).map(|a| a.command),
            Ok(Some(RecommendCommand::Approve { recommendation, watch: true })) if recommendation == "rec-1"
        ));
        assert!(matches!(
            parse(&["reject", "rec-1", "--reason", "needed next week"]).map(|a| a.command),
            Ok(Some(RecommendCommand::Reject { reason: Some(r), .. })) if r == "needed next week"
        ));
        assert!(parse(&["approve"]).is_err(), "an id is required");
    }

    #[test]
    fn bad_filters_are_refused() {
        assert!(parse(&["--tier", "lukewarm"]).is_err());
        assert!(parse(&["--label", "novalue"]).is_err());
        assert!(
            parse(&["history", "--site", "a"]).is_err(),
            "filters do not apply to subcommands"
        );
        let Ok(twice) = parse(&["--label", "team=a", "--label", "team=b"]) else {
            panic!("labels should parse");
        };
        assert!(
            matches!(twice.filter.filter(), Err(Error::InvalidInput(m)) if m.contains("twice"))
        );
    }
}
