//! `ferry schedule`: syncs planned on a cron schedule, and their runs.

use clap::{Args, Subcommand};
use ferry_sdk::{pb, Error, JobFilter};

use crate::job::{self, sync::SyncSpec};
use crate::json::{self, ToJson};
use crate::{output, site, Context, Outcome};

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Schedule a sync: at each time the cron expression names, in its time zone, the
    /// control plane plans it
    ///
    /// A run never starts while the schedule's previous run is unfinished: that time
    /// is skipped and counted. Times missed while the control plane was down make one
    /// run at its next check. Each run is a sync job (`ferry job sync` explains what
    /// it does); `ferry schedule runs NAME` lists them.
    ///
    /// With --continuous the sync also runs as files change: the agents of the
    /// dataset's site (a file:// site) watch its directory, and each batch of settled
    /// changes runs as a sync of those keys alone, seconds after the writes. The cron
    /// runs still list everything, catching what a watcher can miss.
    Create(Box<CreateArgs>),
    /// List sync schedules with their next run, runs and skipped times
    List {
        /// Only the schedules of this dataset (id or name)
        #[arg(long)]
        dataset: Option<String>,
    },
    /// Delete a schedule; its runs, finished or not, stay
    Delete {
        /// The schedule (id or name)
        schedule: String,
    },
    /// The runs of a schedule, newest first, with their state and figures
    Runs {
        /// The schedule (id or name)
        schedule: String,
    },
}

/// The arguments of `ferry schedule create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The schedule's name: letters, digits, `-`, `_` and `.`
    name: String,
    /// Five fields: minute hour day-of-month month day-of-week, e.g. "0 2 * * *" for
    /// 02:00 every day or "*/15 * * * *" every quarter of an hour
    #[arg(long, value_name = "EXPR")]
    cron: String,
    /// IANA time zone the cron fields are read in, e.g. Europe/Paris
    #[arg(long, value_name = "ZONE", default_value = "UTC")]
    time_zone: String,
    /// Also sync as files change, between the cron's full runs (file:// datasets)
    #[arg(long)]
    continuous: bool,
    #[command(flatten)]
    sync: SyncSpec,
}

pub async fn run(command: ScheduleCommand, ctx: &Context) -> Result<Outcome, Error> {
    let text = match command {
        ScheduleCommand::Create(args) => {
            let schedule = pb::SyncSchedule {
                name: args.name.clone(),
                cron: args.cron.clone(),
                time_zone: args.time_zone.clone(),
                continuous: args.continuous,
                sync: Some(args.sync.request()?),
                ..Default::default()
            };
            let created = ctx.client().await?.create_sync_schedule(schedule).await?;
            render(std::slice::from_ref(&created), ctx).await?
        }
        ScheduleCommand::List { dataset } => {
            let schedules = ctx
                .client()
                .await?
                .list_sync_schedules(dataset.as_deref())
                .await?;
            render(&schedules, ctx).await?
        }
        ScheduleCommand::Delete { schedule } => {
            ctx.client().await?.delete_sync_schedule(&schedule).await?;
            if ctx.json() {
                json::render(&serde_json::json!({}))
            } else {
                format!("deleted schedule {schedule}")
            }
        }
        ScheduleCommand::Runs { schedule } => {
            let client = ctx.client().await?;
            let filter = JobFilter {
                schedule: Some(schedule),
                ..Default::default()
            };
            job::list(&client.list_jobs(&filter).await?, client, ctx).await?
        }
    };
    Ok(Outcome::print(text))
}

/// Schedules as a table (or JSON): name, what they sync where, when, and their runs.
async fn render(schedules: &[pb::SyncSchedule], ctx: &Context) -> Result<String, Error> {
    if ctx.json() {
        return Ok(json::render(&json::array(schedules)));
    }
    if schedules.is_empty() {
        return Ok("no schedules".to_owned());
    }
    let client = ctx.client().await?;
    let sites = site::names_by_id(client).await?;
    let datasets: std::collections::HashMap<String, String> = client
        .list_datasets(&Default::default())
        .await?
        .into_iter()
        .map(|d| (d.id, d.name))
        .collect();
    let rows = schedules
        .iter()
        .map(|s| {
            let sync = s.sync.clone().unwrap_or_default();
            vec![
                s.name.clone(),
                datasets
                    .get(&sync.dataset)
                    .cloned()
                    .unwrap_or_else(|| sync.dataset.clone()),
                site::name_of(&sites, &sync.destination_site),
                format!("{} ({})", s.cron, s.time_zone),
                if s.continuous {
                    format!("yes ({} pending)", s.pending_changes)
                } else {
                    "no".to_owned()
                },
                output::timestamp(s.next_run_time.as_ref()),
                s.runs.to_string(),
                s.skipped.to_string(),
                output::or_none(&s.last_error),
            ]
        })
        .collect();
    Ok(output::table(
        &[
            "NAME",
            "DATASET",
            "TO",
            "CRON",
            "CONTINUOUS",
            "NEXT RUN",
            "RUNS",
            "SKIPPED",
            "LAST ERROR",
        ],
        rows,
    ))
}

impl ToJson for pb::SyncSchedule {
    fn to_json(&self) -> serde_json::Value {
        let sync = self.sync.clone().unwrap_or_default();
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "dataset": sync.dataset,
            "destination_site": sync.destination_site,
            "destination_path": sync.destination_path,
            "deletion": crate::enums::short_name::<pb::DeletionRule>(sync.deletion),
            "max_delete": sync.max_delete,
            "cron": self.cron,
            "time_zone": self.time_zone,
            "continuous": self.continuous,
            "pending_changes": self.pending_changes,
            "next_run_time": json::timestamp(self.next_run_time.as_ref()),
            "last_job": self.last_job,
            "runs": self.runs,
            "skipped": self.skipped,
            "last_error": self.last_error,
        })
    }
}
