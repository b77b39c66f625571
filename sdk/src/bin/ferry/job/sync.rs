//! `ferry job sync`: plan a run that brings a secondary replica in step with the
//! dataset's primary.

use clap::Args;
use ferry_sdk::{pb, Error};

use super::{filter::FilterArgs, follow, names_for_job, view::planned, WATCH_EXIT};
use crate::enums::{parse, parse_verify_mode};
use crate::json::{self, ToJson};
use crate::parse::parse_rate;
use crate::{Context, Outcome};

/// The arguments of `ferry job sync`.
#[derive(Debug, Args)]
#[command(after_help = WATCH_EXIT)]
pub struct SyncArgs {
    #[command(flatten)]
    spec: SyncSpec,
    /// Idempotency key: planning again with the same key returns the same job
    #[arg(long = "key", value_name = "IDEMPOTENCY_KEY")]
    key: Option<String>,
    /// Follow the job once planned, as `ferry job watch` does (with --json, the plan's
    /// answer is the first line)
    #[arg(long)]
    pub watch: bool,
}

/// What a sync does, for `job sync` and `schedule create`.
#[derive(Debug, Args)]
pub struct SyncSpec {
    /// The dataset to sync (id or name); its primary replica is the source
    dataset: String,
    /// The site of the replica to keep in step (id or name)
    #[arg(long = "to", value_name = "SITE")]
    to: String,
    /// Path below the site's root; defaults to the dataset's path
    #[arg(long, value_name = "PATH")]
    path: Option<String>,
    /// Storage class of the copies; defaults to the site's default
    #[arg(long, value_name = "CLASS")]
    storage_class: Option<String>,
    /// How copies are checked: quick (size and checksum) or full (read back)
    #[arg(long, value_name = "MODE", value_parser = parse_verify_mode)]
    verify: Option<pb::VerifyMode>,
    /// What to do with objects at the destination the source does not hold: keep
    /// (report them) or delete (once every source object is verified)
    #[arg(long, value_name = "RULE", value_parser = parse::<pb::DeletionRule>, default_value = "keep")]
    deletion: pb::DeletionRule,
    /// With --deletion delete: the most objects one run may delete; a run that finds
    /// more deletes nothing and fails
    #[arg(long, value_name = "N")]
    max_delete: Option<u64>,
    #[command(flatten)]
    filter: FilterArgs,
    /// Bandwidth cap in bytes per second, e.g. 20MB; 0 or absent means none
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    bandwidth_limit: Option<u64>,
}

impl SyncArgs {
    /// The request these arguments ask for.
    pub fn request(&self) -> Result<pb::PlanSyncRequest, Error> {
        Ok(pb::PlanSyncRequest {
            idempotency_key: self.key.clone().unwrap_or_default(),
            ..self.spec.request()?
        })
    }
}

impl SyncSpec {
    /// The request these arguments ask for, without an idempotency key; refuses a cap
    /// on deletions that are not asked for.
    pub fn request(&self) -> Result<pb::PlanSyncRequest, Error> {
        if self.max_delete.is_some() && self.deletion != pb::DeletionRule::Delete {
            return Err(Error::InvalidInput(
                "--max-delete caps deletions: it needs --deletion delete".into(),
            ));
        }
        Ok(pb::PlanSyncRequest {
            dataset: self.dataset.clone(),
            destination_site: self.to.clone(),
            destination_path: self.path.clone().unwrap_or_default(),
            storage_class: self.storage_class.clone().unwrap_or_default(),
            verify_mode: self.verify.map_or(0, i32::from),
            filter: self.filter.filter()?,
            deletion: self.deletion.into(),
            max_delete: self.max_delete.unwrap_or(0),
            idempotency_key: String::new(),
            bandwidth_limit_bytes_per_sec: self.bandwidth_limit.unwrap_or(0),
        })
    }
}

/// Plans, prints the job and, with `then_watch`, follows it.
pub async fn plan(
    request: pb::PlanSyncRequest,
    then_watch: bool,
    ctx: &Context,
) -> Result<Outcome, Error> {
    let client = ctx.client().await?;
    let answer = client.plan_sync(request).await?;
    let job = answer
        .job
        .as_ref()
        .ok_or_else(|| Error::Protocol("PlanSync answered without a job".into()))?;
    let text = if ctx.json() {
        // Followed by JSON lines when watching, so one line too.
        if then_watch {
            json::line(&answer.to_json())
        } else {
            json::render(&answer.to_json())
        }
    } else {
        planned(job, answer.created, &names_for_job(client, job).await?)
    };
    follow(client, Some(job).filter(|_| then_watch), text, ctx).await
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        args: SyncArgs,
    }

    fn parse_args(args: &[&str]) -> Result<SyncArgs, clap::Error> {
        Probe::try_parse_from(std::iter::once("sync").chain(args.iter().copied())).map(|p| p.args)
    }

    #[test]
    fn sync_flags_fill_the_request() -> Result<(), Box<dyn std::error::Error>> {
        let request = parse_args(&[
            "genome",
            "--to",
            "dr",
            "--path",
            "mirror/genome",
            "--deletion",
            "delete",
            "--max-delete",
            "50",
            "--include",
            "*.bam",
            "--verify",
            "full",
        ])?
        .request()?;
        assert_eq!(request.dataset, "genome");
        assert_eq!(request.destination_site, "dr");
        assert_eq!(request.destination_path, "mirror/genome");
        assert_eq!(request.deletion, i32::from(pb::DeletionRule::Delete));
        assert_eq!(request.max_delete, 50);
        assert_eq!(request.verify_mode, i32::from(pb::VerifyMode::Full));
        assert_eq!(request.filter.unwrap_or_default().include, ["*.bam"]);
        Ok(())
    }

    #[test]
    fn deletions_are_kept_unless_asked_for() -> Result<(), Box<dyn std::error::Error>> {
        let request = parse_args(&["genome", "--to", "dr"])?.request()?;
        assert_eq!(request.deletion, i32::from(pb::DeletionRule::Keep));
        assert_eq!(request.max_delete, 0);
        assert_eq!(request.filter, None);
        Ok(())
    }

    #[test]
    fn a_cap_without_deletions_or_a_bad_rule_is_refused() -> Result<(), clap::Error> {
        let capped = parse_args(&["genome", "--to", "dr", "--max-delete", "5"])?;
        assert!(
            matches!(capped.request(), Err(Error::InvalidInput(m)) if m.contains("--deletion delete"))
        );
        assert!(parse_args(&["genome", "--to", "dr", "--deletion", "purge"]).is_err());
        assert!(parse_args(&["genome"]).is_err(), "--to is required");
        Ok(())
    }
}
