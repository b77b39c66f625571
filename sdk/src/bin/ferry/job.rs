//! `ferry job`: plan migrations, follow and steer them, and inspect their objects.

mod filter;
pub mod sync;
pub mod view;

use std::collections::HashMap;

use clap::{Args, Subcommand};
use ferry_sdk::{pb, Client, Error, JobFilter};
use tonic::Code;

use crate::enums::{parse_job_state, parse_object_status, parse_verify_mode};
use crate::json::{self, ToJson};
use crate::parse::parse_rate;
use crate::watch::{self, Mode};
use crate::{site, Context, Outcome};

use filter::FilterArgs;
use view::{dry_run_report, fields, jobs_table, objects_table, planned, Names};

pub const WATCH_EXIT: &str = "Exit code 0 when the job completed, 1 when it failed or was \
cancelled; connection and server errors have the usual codes (see `ferry --help`).";

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Plan a migration of a dataset to another site, or report what one would move
    Plan(Box<PlanArgs>),
    /// Plan a sync: bring a secondary replica of a dataset in step with its primary
    ///
    /// Copies only the objects new or changed since the replica's last verified sync
    /// (by size, modification time and etag against the replica's manifest), verifies
    /// them, then deals with objects found only at the destination: kept and reported
    /// (--deletion keep, the default), or deleted (--deletion delete) unless there are
    /// more than --max-delete, in which case nothing is deleted and the run fails. The
    /// first sync to a site copies everything. `dataset get` shows each replica's last
    /// sync and lag.
    Sync(Box<sync::SyncArgs>),
    /// Show one job
    Get {
        /// The job's id
        job: String,
    },
    /// List jobs; each filter given narrows the list
    List {
        /// Only jobs migrating this dataset (id or name)
        #[arg(long)]
        dataset: Option<String>,
        /// Only jobs in this state: queued, copying, verifying, switching, completed,
        /// failed or cancelled
        #[arg(long, value_parser = parse_job_state, value_name = "STATE")]
        state: Option<pb::JobState>,
        /// Only jobs reading from or writing to this site (id or name)
        #[arg(long)]
        site: Option<String>,
        /// Only the runs of this sync schedule (id or name): its history
        #[arg(long)]
        schedule: Option<String>,
        /// Only the migrations this policy's autopilot started (id or name)
        #[arg(long)]
        policy: Option<String>,
    },
    /// Follow a job until it ends, with a progress bar on a terminal
    ///
    /// On a terminal, shows a live bar (state, bytes, objects, rate, ETA) with state
    /// changes and object errors printed above it. Otherwise prints one line per update,
    /// or with --json one JSON object per update (a JobProgress) followed by a last line
    /// {"summary": {...}}. Ends with a summary when the job ends. A broken connection
    /// (a control plane restart) is reopened with back-off for about a minute.
    #[command(after_help = WATCH_EXIT)]
    Watch {
        /// The job's id
        job: String,
    },
    /// Cancel a job that has not finished
    Cancel {
        /// The job's id
        job: String,
    },
    /// Start a failed or cancelled job again; verified objects are kept
    Retry {
        /// The job's id
        job: String,
    },
    /// Change a running job's settings
    Update {
        /// The job's id
        job: String,
        /// Bandwidth cap in bytes per second, e.g. 20MB or 512KiB/s; 0 removes the cap
        #[arg(long, value_name = "RATE", value_parser = parse_rate)]
        bandwidth_limit: u64,
    },
    /// List a job's objects with their checksums and errors
    Objects {
        /// The job's id
        job: String,
        /// Only objects in this status: pending, copying, copied, verified, skipped,
        /// failed, or for a sync unchanged, extra or deleted
        #[arg(long, value_parser = parse_object_status, value_name = "STATUS")]
        status: Option<pb::ObjectStatus>,
    },
    /// Export a job's per-object report as JSON lines, one object per line, page by page
    ///
    /// Each line: {"key", "size", "status", "source_xxh3", "destination_xxh3",
    /// "attempts", "operation", "error", "source_changed"}; the error is the last
    /// failure's reason, and source_changed says the source changed after the object
    /// was copied (it was copied again).
    Report {
        /// The job's id
        job: String,
        /// Only objects in this status, e.g. failed
        #[arg(long, value_parser = parse_object_status, value_name = "STATUS")]
        status: Option<pb::ObjectStatus>,
    },
}

/// The arguments of `ferry job plan`.
#[derive(Debug, Args)]
#[command(after_help = WATCH_EXIT)]
pub struct PlanArgs {
    /// The dataset to migrate (id or name)
    dataset: String,
    /// The destination site (id or name)
    #[arg(long = "to", value_name = "SITE")]
    to: String,
    /// Path below the destination's root; defaults to the dataset's current path
    #[arg(long, value_name = "PATH")]
    path: Option<String>,
    /// Storage class of the copies; defaults to the destination's default. To the
    /// dataset's own S3 site, it changes the objects' class in place
    #[arg(long, value_name = "CLASS")]
    storage_class: Option<String>,
    /// How copies are checked: quick (size and checksum) or full (read back)
    #[arg(long, value_name = "MODE", value_parser = parse_verify_mode)]
    verify: Option<pb::VerifyMode>,
    /// Delete the source objects once the dataset has switched to the destination
    #[arg(long)]
    retire_source: bool,
    /// Idempotency key: planning again with the same key returns the same job
    #[arg(long = "key", value_name = "IDEMPOTENCY_KEY")]
    key: Option<String>,
    /// Only report what would move and what it would cost; plan nothing
    #[arg(long, conflicts_with = "watch")]
    dry_run: bool,
    #[command(flatten)]
    filter: FilterArgs,
    /// Bandwidth cap in bytes per second, e.g. 20MB; 0 or absent means none
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    bandwidth_limit: Option<u64>,
    /// Follow the job once planned, as `ferry job watch` does (with --json, the plan's
    /// answer is the first line)
    #[arg(long)]
    watch: bool,
}

impl PlanArgs {
    /// The request these arguments ask for; refuses a minimum size above the maximum.
    fn request(&self) -> Result<pb::PlanMigrationRequest, Error> {
        let filter = self.filter.filter()?;
        Ok(pb::PlanMigrationRequest {
            dataset: self.dataset.clone(),
            destination_site: self.to.clone(),
            destination_path: self.path.clone().unwrap_or_default(),
            storage_class: self.storage_class.clone().unwrap_or_default(),
            verify_mode: self.verify.map_or(0, i32::from),
            retire_source: self.retire_source,
            idempotency_key: self.key.clone().unwrap_or_default(),
            dry_run: self.dry_run,
            filter,
            bandwidth_limit_bytes_per_sec: self.bandwidth_limit.unwrap_or(0),
        })
    }
}

pub async fn run(command: JobCommand, ctx: &Context) -> Result<Outcome, Error> {
    let text = match command {
        JobCommand::Plan(args) => {
            // Arguments are checked before dialling, as elsewhere.
            let request = args.request()?;
            return plan(request, args.watch, ctx).await;
        }
        JobCommand::Sync(args) => {
            let request = args.request()?;
            return sync::plan(request, args.watch, ctx).await;
        }
        JobCommand::Watch { job } => {
            let client = ctx.client().await?;
            return watch::watch(client, &job, Mode::detect(ctx.json())).await;
        }
        JobCommand::Get { job } => {
            let client = ctx.client().await?;
            show(&client.get_job(&job).await?, client, ctx).await?
        }
        JobCommand::List {
            dataset,
            state,
            site,
            schedule,
            policy,
        } => {
            let client = ctx.client().await?;
            let filter = JobFilter {
                dataset,
                state,
                site,
                schedule,
                policy,
            };
            list(&client.list_jobs(&filter).await?, client, ctx).await?
        }
        JobCommand::Cancel { job } => {
            let client = ctx.client().await?;
            show(&client.cancel_job(&job).await?, client, ctx).await?
        }
        JobCommand::Retry { job } => {
            let client = ctx.client().await?;
            show(&client.retry_job(&job).await?, client, ctx).await?
        }
        JobCommand::Update {
            job,
            bandwidth_limit,
        } => {
            let client = ctx.client().await?;
            show(
                &client.update_job(&job, bandwidth_limit).await?,
                client,
                ctx,
            )
            .await?
        }
        JobCommand::Report { job, status } => return report(ctx, &job, status).await,
        JobCommand::Objects { job, status } => {
            let objects = ctx.client().await?.list_job_objects(&job, status).await?;
            if ctx.json() {
                json::render(&json::array(&objects))
            } else {
                objects_table(&objects)
            }
        }
    };
    Ok(Outcome::print(text))
}

/// Why writing a report stopped.
enum ReportStop {
    Api(Error),
    Output(std::io::Error),
}

impl From<Error> for ReportStop {
    fn from(e: Error) -> Self {
        ReportStop::Api(e)
    }
}

/// Streams the per-object report to standard output as JSON lines, a page at a time.
async fn report(
    ctx: &Context,
    job: &str,
    status: Option<pb::ObjectStatus>,
) -> Result<Outcome, Error> {
    use std::io::Write;
    let client = ctx.client().await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = client
        .for_each_job_object_page(job, status, |objects| {
            for o in objects {
                writeln!(out, "{}", json::line(&o.to_json())).map_err(ReportStop::Output)?;
            }
            out.flush().map_err(ReportStop::Output)
        })
        .await;
    match written {
        Ok(()) => Ok(Outcome::quiet(0)),
        Err(ReportStop::Api(e)) => Err(e),
        // The reader went away (`| head`): nothing left to do.
        Err(ReportStop::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            Ok(Outcome::quiet(0))
        }
        Err(ReportStop::Output(e)) => {
            eprintln!("error: writing the report: {e}");
            Ok(Outcome::quiet(1))
        }
    }
}

/// Plans, prints the job (or the dry run's report) and, with `then_watch`, follows it.
async fn plan(
    request: pb::PlanMigrationRequest,
    then_watch: bool,
    ctx: &Context,
) -> Result<Outcome, Error> {
    let client = ctx.client().await?;
    let answer = client.plan_migration(request).await?;
    let text = if ctx.json() {
        // Followed by JSON lines when watching, so one line too.
        if then_watch {
            json::line(&answer.to_json())
        } else {
            json::render(&answer.to_json())
        }
    } else if let Some(report) = &answer.dry_run {
        dry_run_report(report)
    } else if let Some(job) = &answer.job {
        let names = names_for_job(client, job).await?;
        planned(job, answer.created, &names)
    } else {
        return Err(Error::Protocol(
            "PlanMigration answered without a job".into(),
        ));
    };
    follow(
        client,
        answer.job.as_ref().filter(|_| then_watch),
        text,
        ctx,
    )
    .await
}

/// Prints `text` and, when `job` is given, follows it as `ferry job watch` does.
async fn follow(
    client: &Client,
    job: Option<&pb::Job>,
    text: String,
    ctx: &Context,
) -> Result<Outcome, Error> {
    let Some(job) = job else {
        return Ok(Outcome::print(text));
    };
    if let Err(outcome) = watch::preface(&text) {
        return Ok(outcome);
    }
    watch::watch(client, &job.id, Mode::detect(ctx.json())).await
}

/// Every site and every dataset, for tables of many jobs (or recommendations).
pub async fn all_names(client: &Client) -> Result<Names, Error> {
    let sites = site::names_by_id(client).await?;
    let datasets = client
        .list_datasets(&Default::default())
        .await?
        .into_iter()
        .map(|d| (d.id, d.name))
        .collect();
    Ok(Names { sites, datasets })
}

/// Every site, and the one dataset `job` migrates (unless it is gone).
pub async fn names_for_job(client: &Client, job: &pb::Job) -> Result<Names, Error> {
    names_for_dataset(client, &job.dataset).await
}

/// Every site, and the dataset `dataset` (an id or a name) unless it is empty or gone.
pub async fn names_for_dataset(client: &Client, dataset: &str) -> Result<Names, Error> {
    let sites = site::names_by_id(client).await?;
    let mut datasets = HashMap::new();
    if !dataset.is_empty() {
        match client.get_dataset(dataset).await {
            Ok(details) => {
                datasets.insert(details.dataset.id, details.dataset.name);
            }
            Err(e) if e.code() == Code::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Names { sites, datasets })
}

async fn show(job: &pb::Job, client: &Client, ctx: &Context) -> Result<String, Error> {
    if ctx.json() {
        return Ok(json::render(&job.to_json()));
    }
    let names = names_for_job(client, job).await?;
    Ok(fields(job, &names).render())
}

pub async fn list(jobs: &[pb::Job], client: &Client, ctx: &Context) -> Result<String, Error> {
    if ctx.json() {
        return Ok(json::render(&json::array(jobs)));
    }
    if jobs.is_empty() {
        return Ok("no jobs".to_owned());
    }
    let names = all_names(client).await?;
    Ok(jobs_table(jobs, &names))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(subcommand)]
        command: JobCommand,
    }

    fn parse(args: &[&str]) -> Result<JobCommand, clap::Error> {
        Probe::try_parse_from(std::iter::once("probe").chain(args.iter().copied()))
            .map(|p| p.command)
    }

    fn plan_args(args: &[&str]) -> Box<PlanArgs> {
        let argv: Vec<&str> = ["plan"].iter().chain(args).copied().collect();
        match parse(&argv) {
            Ok(JobCommand::Plan(args)) => args,
            other => panic!("{args:?} should parse as a plan: {other:?}"),
        }
    }

    #[test]
    fn plan_flags_fill_the_request() -> Result<(), Error> {
        let request = plan_args(&[
            "genome",
            "--to",
            "archive",
            "--path",
            "cold/genome",
            "--verify",
            "full",
            "--retire-source",
            "--key",
            "nightly-1",
            "--prefix",
            "raw/",
            "--include",
            "*.bam",
            "--include",
            "*.cram",
            "--exclude",
            "*.tmp",
            "--min-size",
            "64KiB",
            "--max-size",
            "2GB",
            "--bandwidth-limit",
            "20MB/s",
        ])
        .request()?;
        assert_eq!(request.dataset, "genome");
        assert_eq!(request.destination_site, "archive");
        assert_eq!(request.destination_path, "cold/genome");
        assert_eq!(request.storage_class, "");
        assert_eq!(request.verify_mode, i32::from(pb::VerifyMode::Full));
        assert!(request.retire_source);
        assert!(!request.dry_run);
        assert_eq!(request.idempotency_key, "nightly-1");
        assert_eq!(request.bandwidth_limit_bytes_per_sec, 20_000_000);
        let filter = request.filter.unwrap_or_default();
        assert_eq!(filter.prefix, "raw/");
        assert_eq!(filter.include, ["*.bam", "*.cram"]);
        assert_eq!(filter.exclude, ["*.tmp"]);
        assert_eq!((filter.min_size, filter.max_size), (65_536, 2_000_000_000));
        Ok(())
    }

    #[test]
    fn a_plan_without_filter_flags_sends_no_filter() -> Result<(), Error> {
        let request = plan_args(&["genome", "--to", "archive", "--dry-run"]).request()?;
        assert!(request.dry_run);
        assert_eq!(request.filter, None);
        assert_eq!(request.verify_mode, 0);
        Ok(())
    }

    #[test]
    fn contradictory_plans_are_refused() {
        let inverted = plan_args(&["d", "--to", "s", "--min-size", "2GB", "--max-size", "1GB"]);
        assert!(
            matches!(inverted.request(), Err(Error::InvalidInput(m)) if m.contains("--min-size"))
        );
        assert!(parse(&["plan", "d", "--to", "s", "--dry-run", "--watch"]).is_err());
        assert!(parse(&["plan", "d"]).is_err(), "--to is required");
        assert!(parse(&["plan", "d", "--to", "s", "--bandwidth-limit", "fast"]).is_err());
        assert!(parse(&["plan", "d", "--to", "s", "--verify", "maybe"]).is_err());
    }

    #[test]
    fn other_commands_parse_their_filters() {
        assert!(matches!(
            parse(&["list", "--state", "failed", "--site", "archive"]),
            Ok(JobCommand::List { state: Some(pb::JobState::Failed), site: Some(s), dataset: None, schedule: None, policy: None }) if s == "archive"
        ));
        assert!(parse(&["list", "--state", "done"]).is_err());
        assert!(matches!(
            parse(&["objects", "job-1", "--status", "verified"]),
            Ok(JobCommand::Objects {
                status: Some(pb::ObjectStatus::Verified),
                ..
            })
        ));
        assert!(matches!(
            parse(&["update", "job-1", "--bandwidth-limit", "512KiB/s"]),
            Ok(JobCommand::Update {
                bandwidth_limit: 524_288,
                ..
            })
        ));
        assert!(parse(&["update", "job-1"]).is_err(), "a limit is required");
    }
}
