//! Runs one task of a job, reporting every step:
//!
//! - LIST lists the source page by page, cutting it into copy tasks that the control
//!   plane records and dispatches to every agent of the site;
//! - COPY copies a batch of objects, then verifies them;
//! - RETIRE deletes the source once the control plane has switched;
//! - ABORT_UPLOADS aborts the resumable uploads a job that is over left unfinished;
//! - DELETE deletes a sync's extras at the destination.
//!
//! The destination is written, never the source, until the retire task.

mod cleanup;
mod copy;
mod delete;
mod list;
mod manifest;
mod place;
mod retire;
mod sites;
mod verify;

use std::{sync::Arc, time::Instant};

use async_nats::jetstream;
use ferry_proto::v1::{self as pb, progress_report::Event};
use ferry_storage::{InvalidField, ObjectError};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::info;

use self::{copy::Cancel, sites::Sites};
use crate::{
    access_cache::{AccessCache, JobAccess},
    bandwidth::{Bandwidth, JobBandwidths},
    budget::MemoryBudget,
    config::AgentConfig,
    control::ControlPlane,
    job_watch::{FetchJob, JobWatches},
    report::{ReportError, Reporter},
};

/// What to do with the job message once the task stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The task ran to an end that is reported: acknowledge the message.
    Done,
    /// The message is stale or belongs to another agent: acknowledge and forget it.
    Dropped(String),
    /// Could not run now (control plane unreachable, shutting down): redeliver it.
    Retry(String),
}

/// Why a task did not succeed; reported as the task's error.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// A site of the job cannot be reached as configured.
    #[error("{side}: {source}")]
    Site {
        side: &'static str,
        #[source]
        source: InvalidField,
    },
    /// The task's progress could not be stored.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// The control plane did not answer a question the task needs answered.
    #[error("asking the control plane {what}: {message}")]
    Control { what: &'static str, message: String },
    /// Listing or deleting failed (the task's own work, not one object's copy).
    #[error(transparent)]
    Object(#[from] ObjectError),
    /// Objects failed to copy; each is recorded with its reason.
    #[error("{count} object(s) could not be copied; first: {first}")]
    Copies { count: usize, first: ObjectError },
    /// Objects could not be deleted; each is recorded with its reason.
    #[error("{count} object(s) could not be deleted; first: {first}")]
    Deletions { count: usize, first: ObjectError },
    /// Objects failed verification; each is recorded with its reason.
    #[error("{count} object(s) failed verification; first: {first}")]
    Verifications { count: usize, first: ObjectError },
    /// The agent is stopping, or the job ended or moved to another attempt.
    #[error("cancelled")]
    Cancelled,
}

pub struct Executor {
    control: Arc<ControlPlane>,
    js: jetstream::Context,
    config: Arc<AgentConfig>,
    /// This agent's share of its site's limit, across all the jobs it runs.
    site_bandwidth: Arc<Bandwidth>,
    /// This agent's share of each job's limit, for all its tasks of the job here.
    job_bandwidths: Arc<JobBandwidths>,
    /// One lookup of each job for all its tasks here: ends them when their attempt is
    /// over, and follows the job's limit.
    job_watches: Arc<JobWatches>,
    /// Bounds the bytes all transfers of this agent hold at once.
    budget: Arc<MemoryBudget>,
    /// Objects in flight across every task this agent runs (`concurrency`).
    object_slots: Arc<Semaphore>,
    /// Batches of small local files copied at once across every task: one per core.
    /// A batch keeps its thread busy from start to end, and more of them than cores
    /// only contend for the locks of the directories they write into.
    batch_slots: Arc<Semaphore>,
    /// The access of the jobs this agent ran tasks of lately.
    access: Arc<AccessCache>,
}

impl Executor {
    pub fn new(
        control: Arc<ControlPlane>,
        js: jetstream::Context,
        config: Arc<AgentConfig>,
        site_bandwidth: Arc<Bandwidth>,
    ) -> Self {
        let budget = Arc::new(MemoryBudget::new(config.memory_budget_mib << 20));
        let object_slots = Arc::new(Semaphore::new(config.concurrency));
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let batch_slots = Arc::new(Semaphore::new(cores.min(config.concurrency)));
        let job_bandwidths = Arc::<JobBandwidths>::default();
        let fetch: FetchJob = {
            let control = control.clone();
            Arc::new(move |job| {
                let control = control.clone();
                Box::pin(async move { control.job(&job).await.ok() })
            })
        };
        Executor {
            control,
            js,
            config,
            site_bandwidth,
            job_watches: JobWatches::new(fetch, job_bandwidths.clone()),
            job_bandwidths,
            budget,
            object_slots,
            batch_slots,
            access: Arc::default(),
        }
    }

    /// Tells the control plane this agent is alive and which jobs it runs copy tasks
    /// of, and takes from the answer how many agents share each job's limit; returns
    /// the continuous syncs this site's agents watch.
    pub async fn heartbeat(&self, stopping: bool) -> Result<Vec<pb::Watch>, tonic::Status> {
        let jobs = self.job_bandwidths.jobs();
        let (agents, watches) = self.control.heartbeat(stopping, jobs).await?;
        for change in self.job_bandwidths.set_agents(&agents) {
            info!(
                job_id = %change.job,
                agents = change.agents,
                bytes_per_sec = change.share.unwrap_or(0),
                hold_ms = change.hold.map_or(0, |h| h.as_millis() as u64),
                "job bandwidth shared among its agents"
            );
        }
        Ok(watches)
    }

    /// Whether a job with a bandwidth limit has a copy task running here.
    pub fn runs_limited_jobs(&self) -> bool {
        self.job_bandwidths.any_limited()
    }

    /// Runs one task of a job to its end, and says what to do with its message. The
    /// caller runs it in the task's span (job, attempt, task, sites).
    pub async fn run(&self, command: &pb::JobCommand, cancel: CancellationToken) -> Outcome {
        let timer = crate::metrics::RunningTask::start(task_kind(command.kind));
        let mut failed = false;
        let outcome = self.run_timed(command, cancel, &mut failed).await;
        timer.finish(match &outcome {
            Outcome::Done if failed => "failed",
            Outcome::Done => "ok",
            Outcome::Dropped(_) => "dropped",
            Outcome::Retry(_) => "handed_back",
        });
        outcome
    }

    /// The job's source and destination: as the control plane handed them for one of
    /// the attempt's tasks lately, else asked for. A cleanup after the job ended is
    /// always asked for: the control plane allows it on terms of its own.
    async fn job_access(
        &self,
        command: &pb::JobCommand,
        cleanup: bool,
    ) -> Result<JobAccess, tonic::Status> {
        let (job, attempt) = (command.job_id.as_str(), command.attempt);
        if !cleanup {
            if let Some(access) = self.access.get(job, attempt, Instant::now()) {
                return Ok(access);
            }
        }
        let access = self.control.job_access(job, attempt, cleanup).await?;
        if !cleanup {
            self.access
                .put(job, attempt, access.clone(), Instant::now());
        }
        Ok(access)
    }

    /// [`Executor::run`]; `failed` tells a task that ran to its end but failed.
    async fn run_timed(
        &self,
        command: &pb::JobCommand,
        cancel: CancellationToken,
        failed: &mut bool,
    ) -> Outcome {
        let cleanup = command.kind == pb::TaskKind::AbortUploads as i32;
        let (source, destination) = match self.job_access(command, cleanup).await {
            Ok(access) => access,
            Err(status) => {
                return match status.code() {
                    tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal => {
                        Outcome::Retry(status.message().to_owned())
                    }
                    _ => Outcome::Dropped(status.message().to_owned()),
                }
            }
        };
        // The plan's storage class applies to what this job writes, on the services that
        // have one.
        let sites = Sites::open(
            &source,
            &destination,
            &command.storage_class,
            &command.job_id,
        );
        if cleanup {
            return match sites {
                Ok(sites) => cleanup::abort_recorded_uploads(command, &sites).await,
                Err(e) => Outcome::Dropped(e.to_string()),
            };
        }
        let reporter = Reporter::new(
            self.js.clone(),
            command,
            self.control.site_id(),
            self.control.agent_id(),
        );
        // Cancelled by the agent's shutdown or when the job is over; `job_over` alone
        // tells the second apart, when unfinished uploads are no use to anyone.
        let cancel = cancel.child_token();
        let job_over = CancellationToken::new();
        let watch = self.job_watches.watch(
            &command.job_id,
            command.attempt,
            &[cancel.clone(), job_over.clone()],
        );
        let result = async {
            let sites = sites?;
            reporter.send(Event::Started(pb::TaskStarted {})).await?;
            match pb::TaskKind::try_from(command.kind) {
                Ok(pb::TaskKind::Retire) => retire::retire_source(&sites.src, &cancel).await,
                Ok(pb::TaskKind::Delete) => {
                    delete::delete_extras(
                        command,
                        &sites,
                        &reporter,
                        &cancel,
                        self.config.concurrency,
                    )
                    .await
                }
                Ok(pb::TaskKind::List) => {
                    self.list_into_tasks(command, &sites, &reporter, &cancel)
                        .await
                }
                _ => {
                    let cancel = Cancel {
                        task: &cancel,
                        job_over: &job_over,
                    };
                    self.copy_and_verify(command, &sites, &reporter, cancel)
                        .await
                }
            }
        }
        .await;
        drop(watch);
        let finished = match result {
            Ok(()) => pb::TaskFinished {
                success: true,
                ..Default::default()
            },
            Err(_) if cancel.is_cancelled() => {
                return Outcome::Dropped("the job was cancelled or moved on".into())
            }
            Err(e) => pb::TaskFinished {
                success: false,
                error: e.to_string(),
                ..Default::default()
            },
        };
        let success = finished.success;
        *failed = !success;
        match reporter.send(Event::Finished(finished)).await {
            Ok(()) => {
                info!(success, "task finished");
                Outcome::Done
            }
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }
}

/// The `kind` label of a task's metrics: `list`, `copy`, `retire`, `abort_uploads`,
/// `delete`.
fn task_kind(kind: i32) -> &'static str {
    match pb::TaskKind::try_from(kind) {
        Ok(pb::TaskKind::List) => "list",
        Ok(pb::TaskKind::Copy) => "copy",
        Ok(pb::TaskKind::Retire) => "retire",
        Ok(pb::TaskKind::AbortUploads) => "abort_uploads",
        Ok(pb::TaskKind::Delete) => "delete",
        Ok(pb::TaskKind::Unspecified) | Err(_) => "unknown",
    }
}
