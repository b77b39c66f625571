//! Migration use cases: planning with idempotency ([`plan`]), the lifecycle driven by
//! agents' reports, fenced by attempt ([`progress`]), the switch, cancellation and
//! retry.

mod plan;
mod progress;
mod sync;

use std::sync::Arc;

use tokio::sync::{broadcast, Notify};
use tracing::info;

pub(super) use self::plan::check_destination;
pub use self::plan::PlanRequest;
use super::Catalogue;
use crate::{
    bus::messages,
    domain::{
        ids::{DatasetId, JobId, PolicyId, ScheduleId, SiteId},
        job::{Job, JobObject, JobState, ObjectStatus},
        name::Ref,
        page::{Page, PageRequest},
        report::DELETE_TASK_PREFIX,
    },
    error::{Error, Result},
    store::{active_job_error, JobFilter, OutboxMessage, Store},
};

use self::progress::abort_uploads;

/// How often a read-modify-write of a job is retried after losing a race.
const JOB_UPDATE_ATTEMPTS: usize = 16;

/// What a job transition writes besides the job and its outbox messages.
#[derive(Clone, Copy)]
enum Commit {
    /// Nothing else.
    State,
    /// A retry: the objects the ended attempt left unfinished are forgotten.
    Retry,
}

/// The migration service. Cheap to clone.
#[derive(Clone)]
pub struct Migrations {
    catalogue: Catalogue,
    store: Store,
    /// Wakes the outbox relay after a commit that wrote messages.
    relay: Arc<Notify>,
    /// Announces that a job changed, for `WatchJob`.
    changes: broadcast::Sender<JobId>,
}

impl Migrations {
    pub fn new(catalogue: Catalogue, relay: Arc<Notify>) -> Self {
        let store = catalogue.store().clone();
        let (changes, _) = broadcast::channel(1024);
        Migrations {
            catalogue,
            store,
            relay,
            changes,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// Subscribes to job changes (their ids); lagging subscribers simply reload.
    pub fn subscribe(&self) -> broadcast::Receiver<JobId> {
        self.changes.subscribe()
    }

    fn changed(&self, job: JobId, wrote_outbox: bool) {
        let _ = self.changes.send(job);
        if wrote_outbox {
            self.relay.notify_one();
        }
    }

    pub async fn get(&self, id: JobId) -> Result<Job> {
        self.store
            .find_job(id)
            .await?
            .ok_or_else(|| Error::not_found("job", id))
    }

    pub async fn list(
        &self,
        dataset: Option<&Ref<DatasetId>>,
        state: Option<JobState>,
        site: Option<&Ref<SiteId>>,
        schedule: Option<&Ref<ScheduleId>>,
        policy: Option<&Ref<PolicyId>>,
        page: &PageRequest,
    ) -> Result<Page<Job>> {
        let policy = match policy {
            Some(r) => Some(
                self.store
                    .find_policy(r)
                    .await?
                    .ok_or_else(|| Error::invalid("policy", format!("policy {r} does not exist")))?
                    .id,
            ),
            None => None,
        };
        let schedule = match schedule {
            Some(r) => Some(
                self.store
                    .find_schedule(r)
                    .await?
                    .ok_or_else(|| {
                        Error::invalid("schedule", format!("schedule {r} does not exist"))
                    })?
                    .id,
            ),
            None => None,
        };
        let dataset = match dataset {
            Some(r) => Some(
                self.store
                    .find_dataset(r)
                    .await?
                    .ok_or_else(|| {
                        Error::invalid("dataset", format!("dataset {r} does not exist"))
                    })?
                    .id,
            ),
            None => None,
        };
        let site = self.catalogue.referenced_site_id("site", site).await?;
        self.store
            .list_jobs(
                &JobFilter {
                    dataset,
                    state,
                    site,
                    schedule,
                    policy,
                },
                page,
            )
            .await
    }

    pub async fn objects(
        &self,
        id: JobId,
        status: Option<ObjectStatus>,
        task: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<JobObject>> {
        self.get(id).await?;
        self.store.list_job_objects(id, status, task, page).await
    }

    pub async fn recent_errors(&self, id: JobId) -> Result<Vec<JobObject>> {
        self.store.recent_object_errors(id, 10).await
    }

    pub async fn cancel(&self, id: JobId) -> Result<Job> {
        crate::call::set_target(format!("job:{id}"));
        let uploads = self.store.recorded_uploads(id).await?;
        self.transition(id, |job| {
            job.state = job
                .state
                .cancel()
                .map_err(|e| Error::FailedPrecondition(e.to_string()))?;
            job.ended_at = Some(self.catalogue.clock().now());
            Ok(abort_uploads(job, &uploads))
        })
        .await
        .inspect(|job| info!(job_id = %job.id, "migration cancelled"))
    }

    /// Starts a failed or cancelled job over under the next attempt; objects verified
    /// by earlier attempts are kept and skipped.
    pub async fn retry(&self, id: JobId) -> Result<Job> {
        crate::call::set_target(format!("job:{id}"));
        let job = self.get(id).await?;
        if let Some(active) = self.store.has_active_job(job.dataset_id).await? {
            if active.id != id {
                return Err(active_job_error(&active));
            }
        }
        let retry = |job: &mut Job| {
            job.state = job
                .state
                .retry()
                .map_err(|e| Error::FailedPrecondition(e.to_string()))?;
            job.attempt += 1;
            job.error = None;
            job.ended_at = None;
            job.listed = false;
            job.final_pass = false;
            Ok(vec![messages::dispatch_list(job)])
        };
        self.transition_committing(id, retry, Commit::Retry)
            .await
            .inspect(|job| info!(job_id = %job.id, attempt = job.attempt, "migration retried"))
    }

    pub async fn set_bandwidth_limit(&self, id: JobId, limit: Option<u64>) -> Result<Job> {
        crate::call::set_target(format!("job:{id}"));
        self.transition(id, |job| {
            if job.state.is_terminal() {
                return Err(Error::FailedPrecondition(format!(
                    "job {} has ended",
                    job.id
                )));
            }
            job.bandwidth_limit = limit;
            Ok(Vec::new())
        })
        .await
    }

    /// Re-dispatches a job's current tasks (the reconciler's tool) and marks the job
    /// touched, so it is not re-dispatched again before it had a chance to move: the
    /// listing while it has not finished, then every copy task with unfinished objects,
    /// the retirement once switched. Message ids repeat the originals': each dispatch is
    /// the same command.
    pub async fn touch_and_redispatch(&self, id: JobId) -> Result<Job> {
        let tasks = self.store.unfinished_tasks(id).await?;
        self.transition(id, |job| {
            Ok(match job.state {
                s if s.is_terminal() => Vec::new(),
                JobState::Switching => vec![messages::dispatch_retire(job)],
                _ if !job.listed => vec![messages::dispatch_list(job)],
                _ => tasks
                    .iter()
                    // Without etags: a server-side copy then HEADs each source object.
                    .map(|(task, objects)| {
                        if task.starts_with(DELETE_TASK_PREFIX) {
                            messages::dispatch_delete(job, task, objects)
                        } else {
                            messages::dispatch_copy(
                                job,
                                task,
                                objects,
                                &Default::default(),
                                false,
                                false,
                            )
                        }
                    })
                    .collect(),
            })
        })
        .await
    }

    /// Read-modify-write of one job with optimistic concurrency. `change` edits the job
    /// and returns the messages to publish with it.
    async fn transition(
        &self,
        id: JobId,
        change: impl Fn(&mut Job) -> Result<Vec<OutboxMessage>>,
    ) -> Result<Job> {
        self.transition_committing(id, change, Commit::State).await
    }

    async fn transition_committing(
        &self,
        id: JobId,
        change: impl Fn(&mut Job) -> Result<Vec<OutboxMessage>>,
        commit: Commit,
    ) -> Result<Job> {
        for _ in 0..JOB_UPDATE_ATTEMPTS {
            let mut job = self.get(id).await?;
            let read_at = job.updated_at;
            let outbox = change(&mut job)?;
            job.updated_at = self.catalogue.clock().next_update(read_at);
            let committed = match commit {
                Commit::State => self.store.update_job(&job, read_at, &outbox).await?,
                Commit::Retry => self.store.commit_retry(&job, read_at, &outbox).await?,
            };
            if committed {
                self.changed(id, !outbox.is_empty());
                return Ok(job);
            }
        }
        Err(Error::Conflict(format!(
            "job {id} is being changed concurrently; retry"
        )))
    }
}
