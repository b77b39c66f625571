//! Migration use cases: planning with idempotency, the lifecycle driven by agents'
//! reports (fenced by attempt), the switch, cancellation and retry.

use std::sync::Arc;

use tokio::sync::{broadcast, Notify};
use tracing::{info, warn};

use super::Catalogue;
use crate::{
    bus::messages,
    domain::{
        dataset::{Dataset, DatasetPath},
        ids::{DatasetId, JobId, SiteId},
        job::{executing_site, Job, JobObject, JobState, ObjectFilter, ObjectStatus},
        name::Ref,
        page::{Page, PageRequest},
        report::{Report, ReportEvent, COPY_TASK, LIST_TASK, RETIRE_TASK},
        site::Site,
        tier::VerifyMode,
        uri::Backend,
    },
    error::{Error, Result},
    store::{active_job_error, JobFilter, OutboxMessage, Planned, Store, Switch},
};

/// Refuses a destination that is the dataset's own place, unless the plan is a
/// storage-class change in place (see [`check_in_place`]). Planning and the dry run
/// both apply it, so a dry run answers what planning would.
pub(super) fn check_destination(
    req: &PlanRequest,
    dataset: &Dataset,
    source: &Site,
    destination: &Site,
) -> Result<()> {
    let destination_path = req
        .destination_path
        .as_ref()
        .unwrap_or(&dataset.path)
        .as_str();
    if source.same_location(dataset.path.as_str(), destination, destination_path) {
        check_in_place(req, dataset, source, destination)?;
    }
    Ok(())
}

/// A plan whose destination holds the dataset's own objects can only change their
/// storage class where they are: on the dataset's own S3 site, with a class named, and
/// keeping the objects, since source and destination are one (retiring the source
/// would delete them). The agent then copies each object onto itself server-side, so
/// no byte passes through it.
fn check_in_place(
    req: &PlanRequest,
    dataset: &Dataset,
    source: &Site,
    destination: &Site,
) -> Result<()> {
    let here = format!(
        "dataset {} already lives at {}:{}",
        dataset.name,
        source.name,
        dataset.path.as_str()
    );
    if destination.id != source.id {
        return Err(Error::invalid(
            "destination_site",
            format!(
                "{here}, which site {} names too; to change the objects' storage class, \
                 plan to {} itself",
                destination.name, source.name
            ),
        ));
    }
    if req.storage_class.as_deref().is_none_or(str::is_empty) {
        return Err(Error::invalid(
            "destination_site",
            format!("{here}; name a storage_class to change the objects' class in place"),
        ));
    }
    if source.uri.backend() != Backend::S3 {
        return Err(Error::invalid(
            "storage_class",
            format!(
                "{here}; a storage-class change in place needs an S3 site, not {}://",
                source.uri.backend().scheme()
            ),
        ));
    }
    if req.retire_source {
        return Err(Error::invalid(
            "retire_source",
            format!(
                "{here}; a storage-class change in place keeps the objects where they are, \
                 so there is no source to retire"
            ),
        ));
    }
    Ok(())
}

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

/// What a client asks `PlanMigration` for.
#[derive(Clone, Debug)]
pub struct PlanRequest {
    pub dataset: Ref<DatasetId>,
    pub destination_site: Ref<SiteId>,
    pub destination_path: Option<DatasetPath>,
    pub storage_class: Option<String>,
    pub verify_mode: Option<VerifyMode>,
    pub retire_source: bool,
    pub idempotency_key: Option<String>,
    pub filter: ObjectFilter,
    pub bandwidth_limit: Option<u64>,
}

impl PlanRequest {
    /// A plan to move `dataset` to `destination_site` with every option at its
    /// default: same path, the site's storage class, quick verification, source kept.
    pub fn new(dataset: Ref<DatasetId>, destination_site: Ref<SiteId>) -> Self {
        PlanRequest {
            dataset,
            destination_site,
            destination_path: None,
            storage_class: None,
            verify_mode: None,
            retire_source: false,
            idempotency_key: None,
            filter: ObjectFilter::default(),
            bandwidth_limit: None,
        }
    }
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

    /// Plans a migration. The same idempotency key returns the same job, also under
    /// concurrent calls; a different key while the dataset has an unfinished job fails.
    pub async fn plan(&self, req: PlanRequest) -> Result<(Job, bool)> {
        if let Some(key) = &req.idempotency_key {
            if let Some(existing) = self.store.find_job_by_key(key).await? {
                return self.same_plan(existing, &req).await.map(|job| (job, false));
            }
        }
        let dataset = self.catalogue.get_dataset(&req.dataset).await?;
        let source = self.catalogue.get_site(&Ref::Id(dataset.site_id)).await?;
        let destination = self
            .catalogue
            .referenced_site("destination_site", &req.destination_site)
            .await?;
        let destination_path = req
            .destination_path
            .clone()
            .unwrap_or_else(|| dataset.path.clone());
        check_destination(&req, &dataset, &source, &destination)?;
        if let Some(active) = self.store.has_active_job(dataset.id).await? {
            // A concurrent call with the same key may have just created it.
            if req.idempotency_key.as_deref() == Some(active.idempotency_key.as_str()) {
                return self.same_plan(active, &req).await.map(|job| (job, false));
            }
            return Err(active_job_error(&active));
        }
        let now = self.catalogue.clock().now();
        let id = JobId::new();
        let job = Job {
            id,
            idempotency_key: req
                .idempotency_key
                .clone()
                .unwrap_or_else(|| format!("job:{id}")),
            dataset_id: dataset.id,
            source_site_id: source.id,
            source_path: dataset.path.as_str().to_owned(),
            destination_site_id: destination.id,
            destination_path: destination_path.as_str().to_owned(),
            executing_site_id: executing_site(
                (source.id, source.uri.backend()),
                (destination.id, destination.uri.backend()),
            ),
            storage_class: req
                .storage_class
                .clone()
                .unwrap_or(destination.default_storage_class),
            verify_mode: req.verify_mode.unwrap_or_default(),
            retire_source: req.retire_source,
            filter: req.filter.clone(),
            state: JobState::Queued,
            attempt: 1,
            error: None,
            counters: Default::default(),
            bandwidth_limit: req.bandwidth_limit,
            source_retired: false,
            created_at: now,
            started_at: None,
            updated_at: now,
            ended_at: None,
            listed: false,
        };
        match self
            .store
            .insert_job(&job, &[messages::dispatch_list(&job)])
            .await?
        {
            Planned::Created(job) => {
                info!(
                    job_id = %job.id,
                    dataset = %dataset.name,
                    from = %source.name,
                    to = %destination.name,
                    "migration planned"
                );
                self.changed(job.id, true);
                Ok((job, true))
            }
            Planned::Existing(existing) => {
                self.same_plan(existing, &req).await.map(|job| (job, false))
            }
        }
    }

    /// A key names one plan: reusing it for another dataset or destination is an error.
    async fn same_plan(&self, existing: Job, req: &PlanRequest) -> Result<Job> {
        let dataset = self.catalogue.get_dataset(&req.dataset).await?;
        let destination = self
            .catalogue
            .store()
            .find_site(&req.destination_site)
            .await?;
        let same = existing.dataset_id == dataset.id
            && destination.is_some_and(|d| d.id == existing.destination_site_id);
        if !same {
            return Err(Error::invalid(
                "idempotency_key",
                format!(
                    "already used by job {} for another dataset or destination",
                    existing.id
                ),
            ));
        }
        Ok(existing)
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
        page: &PageRequest,
    ) -> Result<Page<Job>> {
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
            Ok(vec![messages::dispatch_list(job)])
        };
        self.transition_committing(id, retry, Commit::Retry)
            .await
            .inspect(|job| info!(job_id = %job.id, attempt = job.attempt, "migration retried"))
    }

    pub async fn set_bandwidth_limit(&self, id: JobId, limit: Option<u64>) -> Result<Job> {
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
                        messages::dispatch_copy(job, task, objects, &Default::default(), false)
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

    /// Applies one agent report. Reports of another attempt than the job's, or for a job
    /// that has ended, change nothing: that is the fencing that keeps a late agent from
    /// switching or completing a job twice.
    pub async fn apply(&self, report: Report) -> Result<()> {
        let Some(job) = self.store.find_job(report.job_id).await? else {
            warn!(job_id = %report.job_id, "report for an unknown job dropped");
            return Ok(());
        };
        if report.attempt != job.attempt || job.state.is_terminal() {
            info!(
                job_id = %job.id,
                report_attempt = report.attempt,
                job_attempt = job.attempt,
                state = %job.state,
                "stale report ignored"
            );
            return Ok(());
        }
        match report.event {
            ReportEvent::Started => {
                let first_task = report.task_id == LIST_TASK || report.task_id == COPY_TASK;
                if !first_task || job.state != JobState::Queued {
                    return Ok(());
                }
                self.transition(job.id, |j| {
                    if j.attempt == report.attempt && j.state == JobState::Queued {
                        j.state = j
                            .state
                            .start_copy()
                            .map_err(|e| Error::FailedPrecondition(e.to_string()))?;
                        j.started_at.get_or_insert(self.catalogue.clock().now());
                    }
                    Ok(Vec::new())
                })
                .await?;
            }
            ReportEvent::Listed { objects, bytes } => {
                self.store.set_job_totals(job.id, objects, bytes).await?;
                self.changed(job.id, false);
            }
            ReportEvent::Objects(objects) => {
                let now = self.catalogue.clock().now();
                self.store.upsert_job_objects(job.id, &objects, now).await?;
                self.changed(job.id, false);
                if job.listed && job.state == JobState::Copying {
                    self.verifying_once_copied(job.id, report.attempt).await?;
                }
            }
            ReportEvent::TaskListed {
                task,
                objects,
                etags,
                destination_empty,
            } => {
                let dispatched = self
                    .store
                    .record_listed_task(
                        job.id,
                        &task,
                        &objects,
                        self.catalogue.clock().now(),
                        |todo| {
                            messages::dispatch_copy(&job, &task, todo, &etags, destination_empty)
                        },
                    )
                    .await?;
                info!(job_id = %job.id, task, listed = objects.len(), dispatched, "copy task recorded");
                self.changed(job.id, dispatched > 0);
            }
            ReportEvent::Upload { key, upload } => {
                let now = self.catalogue.clock().now();
                self.store.record_upload(job.id, &key, upload, now).await?;
            }
            // Phases follow from the objects' statuses since jobs are split into tasks.
            ReportEvent::Phase(_) => {}
            ReportEvent::Finished { success, error } if report.task_id == RETIRE_TASK => {
                self.finish_retirement(job.id, report.attempt, success, error)
                    .await?;
            }
            ReportEvent::Finished { success, error } if report.task_id == LIST_TASK => {
                if !success {
                    let error = error.unwrap_or_else(|| "the agent reported a failure".into());
                    return self
                        .fail(
                            job.id,
                            report.attempt,
                            &format!("listing the source: {error}"),
                        )
                        .await;
                }
                self.transition(job.id, |j| {
                    if j.attempt == report.attempt {
                        j.listed = true;
                    }
                    Ok(Vec::new())
                })
                .await?;
                self.settle(job.id, report.attempt).await?;
            }
            ReportEvent::Finished { success, error } => {
                if !success {
                    let error = error.unwrap_or_else(|| "the agent reported a failure".into());
                    let now = self.catalogue.clock().now();
                    let failed = self
                        .store
                        .fail_task_objects(job.id, &report.task_id, &error, now)
                        .await?;
                    warn!(job_id = %job.id, task = %report.task_id, failed, error, "copy task failed");
                }
                self.settle(job.id, report.attempt).await?;
            }
        }
        Ok(())
    }

    /// Enters `verifying` once every listed object is copied: what is left is checking.
    async fn verifying_once_copied(&self, id: JobId, attempt: u32) -> Result<()> {
        if self.store.has_objects_not_copied(id).await? {
            return Ok(());
        }
        self.enter_verifying(id, attempt).await
    }

    /// `copying` → `verifying` for the attempt; nothing when it is past that already.
    async fn enter_verifying(&self, id: JobId, attempt: u32) -> Result<()> {
        self.transition(id, |j| {
            if j.attempt == attempt && j.state == JobState::Copying {
                j.state = j
                    .state
                    .start_verify()
                    .map_err(|e| Error::FailedPrecondition(e.to_string()))?;
            }
            Ok(Vec::new())
        })
        .await?;
        Ok(())
    }

    /// Ends the copy of an attempt once its listing finished and no listed object needs
    /// work any more: it switches when every object is verified or skipped, and fails,
    /// source untouched, when any object failed.
    async fn settle(&self, id: JobId, attempt: u32) -> Result<()> {
        let job = self.get(id).await?;
        let copying = matches!(job.state, JobState::Copying | JobState::Verifying);
        if job.attempt != attempt || !job.listed || !copying {
            return Ok(());
        }
        if self.store.has_unfinished_objects(id).await? {
            return Ok(());
        }
        let c = self.store.job_counters(id).await?;
        if c.objects_failed > 0 {
            let first = self.store.recent_object_errors(id, 1).await?;
            let reason = first
                .first()
                .map(|o| {
                    format!(
                        "; last: {}: {}",
                        o.key,
                        o.error.as_deref().unwrap_or("no reason recorded")
                    )
                })
                .unwrap_or_default();
            let error = format!(
                "{} of {} objects failed{reason}; not switching",
                c.objects_failed, c.objects_total
            );
            return self.fail(id, attempt, &error).await;
        }
        self.enter_verifying(id, attempt).await?;
        self.switch(id, attempt).await
    }

    async fn fail(&self, id: JobId, attempt: u32, error: &str) -> Result<()> {
        let uploads = self.store.recorded_uploads(id).await?;
        let job = self
            .transition(id, |j| {
                if j.attempt != attempt || j.state.is_terminal() {
                    return Ok(Vec::new());
                }
                j.state = j
                    .state
                    .fail()
                    .map_err(|e| Error::FailedPrecondition(e.to_string()))?;
                j.error = Some(error.to_owned());
                j.ended_at = Some(self.catalogue.clock().now());
                Ok(abort_uploads(j, &uploads))
            })
            .await?;
        warn!(job_id = %job.id, attempt, error, "migration failed; the source is untouched");
        Ok(())
    }

    /// The switch: only when every object of the attempt is verified. In one
    /// transaction the destination becomes primary and the dataset moves; the source is
    /// retired afterwards, as its own step, only when the plan asked for it.
    async fn switch(&self, id: JobId, attempt: u32) -> Result<()> {
        for _ in 0..JOB_UPDATE_ATTEMPTS {
            let mut job = self.get(id).await?;
            if job.attempt != attempt || job.state.is_terminal() || job.state == JobState::Switching
            {
                return Ok(());
            }
            let c = self.store.job_counters(id).await?;
            if c.objects_failed > 0 || c.objects_done < c.objects_total {
                let error = format!(
                    "{} of {} objects verified, {} failed; not switching",
                    c.objects_done, c.objects_total, c.objects_failed
                );
                return self.fail(id, attempt, &error).await;
            }
            let destination = self
                .catalogue
                .get_site(&Ref::Id(job.destination_site_id))
                .await?;
            let read_at = job.updated_at;
            let now = self.catalogue.clock().next_update(read_at);
            job.state = job
                .state
                .start_switch()
                .map_err(|e| Error::FailedPrecondition(e.to_string()))?;
            let outbox = if job.retire_source {
                vec![messages::dispatch_retire(&job)]
            } else {
                job.state = job
                    .state
                    .complete()
                    .map_err(|e| Error::Internal(e.to_string()))?;
                job.ended_at = Some(now);
                Vec::new()
            };
            job.updated_at = now;
            let switched = self
                .store
                .commit_switch(Switch {
                    job: &job,
                    job_read_at: read_at,
                    destination_tier: destination.tier,
                    at: now,
                    outbox: &outbox,
                })
                .await?;
            if switched {
                info!(
                    job_id = %job.id,
                    dataset_id = %job.dataset_id,
                    to = %destination.name,
                    retire_source = job.retire_source,
                    "switched: the destination is now the primary replica"
                );
                self.changed(id, !outbox.is_empty());
                return Ok(());
            }
        }
        Err(Error::Conflict(format!(
            "job {id} is being changed concurrently; retry"
        )))
    }

    async fn finish_retirement(
        &self,
        id: JobId,
        attempt: u32,
        success: bool,
        error: Option<String>,
    ) -> Result<()> {
        for _ in 0..JOB_UPDATE_ATTEMPTS {
            let mut job = self.get(id).await?;
            if job.attempt != attempt || job.state != JobState::Switching {
                return Ok(());
            }
            let read_at = job.updated_at;
            job.state = job
                .state
                .complete()
                .map_err(|e| Error::Internal(e.to_string()))?;
            job.source_retired = success;
            if !success {
                // The switch committed: the data is safe at the destination. The failed
                // deletion is recorded for the operator, not fatal to the job.
                job.error = Some(format!(
                    "source retirement failed: {}",
                    error.as_deref().unwrap_or("unknown error")
                ));
            }
            job.updated_at = self.catalogue.clock().next_update(read_at);
            job.ended_at = Some(job.updated_at);
            let done = if success {
                self.store.commit_retirement(&job, read_at).await?
            } else {
                self.store.update_job(&job, read_at, &[]).await?
            };
            if done {
                info!(job_id = %job.id, source_retired = success, "migration completed");
                self.changed(id, false);
                return Ok(());
            }
        }
        Err(Error::Conflict(format!(
            "job {id} is being changed concurrently; retry"
        )))
    }
}

/// The task that aborts a job's unfinished multipart uploads, when it has any: once it
/// ended they would never complete, and their parts would stay (and be billed) at the
/// destination. A retry starts those objects over.
fn abort_uploads(job: &Job, uploads: &[(String, String)]) -> Vec<OutboxMessage> {
    if uploads.is_empty() {
        return Vec::new();
    }
    vec![messages::dispatch_abort_uploads(job, uploads)]
}
