use std::{pin::Pin, time::Duration};

use ferry_proto::{
    time::{from_timestamp, to_duration, to_timestamp},
    v1::{self as pb, job_service_server::JobService},
};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::convert;
use crate::{
    bus::messages::{filter_to_pb, object_status_from_pb, upload_to_pb, verify_mode_to_pb},
    domain::{
        dataset::DatasetPath,
        ids::JobId,
        job::{Job, JobObject, JobState, ObjectFilter, ObjectStatus},
        name::Ref,
        page::PageRequest,
    },
    error::{Error, Result},
    service::{Migrations, PlanRequest},
};

/// How long `WatchJob` waits for a change before re-reading the job anyway.
const WATCH_POLL: Duration = Duration::from_secs(1);

pub struct JobApi {
    migrations: Migrations,
}

impl JobApi {
    pub fn new(migrations: Migrations) -> Self {
        JobApi { migrations }
    }
}

/// A job id from a request field, or `InvalidArgument` naming the field.
pub(super) fn job_id(field: &str, s: &str) -> Result<JobId> {
    s.parse()
        .map_err(|_| Error::invalid(field, format!("'{s}' is not a job id")))
}

type ProgressStream = Pin<Box<dyn Stream<Item = Result<pb::JobProgress, Status>> + Send>>;

#[tonic::async_trait]
impl JobService for JobApi {
    type WatchJobStream = ProgressStream;

    async fn plan_migration(
        &self,
        request: Request<pb::PlanMigrationRequest>,
    ) -> Result<Response<pb::PlanMigrationResponse>, Status> {
        let req = request.into_inner();
        let dry_run = req.dry_run;
        let plan = plan_request(req)?;
        if dry_run {
            let report = self.migrations.catalogue().dry_run(&plan).await?;
            return Ok(Response::new(pb::PlanMigrationResponse {
                job: None,
                created: false,
                dry_run: Some(crate::service::dry_run::to_pb(report)),
            }));
        }
        let (job, created) = self.migrations.plan(plan).await?;
        Ok(Response::new(pb::PlanMigrationResponse {
            job: Some(job_to_pb(job)),
            created,
            dry_run: None,
        }))
    }

    async fn get_job(
        &self,
        request: Request<pb::GetJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let id = job_id("job", &request.into_inner().job)?;
        Ok(Response::new(job_to_pb(self.migrations.get(id).await?)))
    }

    async fn list_jobs(
        &self,
        request: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        let req = request.into_inner();
        let page = PageRequest::parse(req.page_size, &req.page_token)?;
        let dataset = (!req.dataset.is_empty())
            .then(|| Ref::parse("dataset", &req.dataset))
            .transpose()?;
        let site = (!req.site.is_empty())
            .then(|| Ref::parse("site", &req.site))
            .transpose()?;
        let state = job_state("state", req.state)?;
        let jobs = self
            .migrations
            .list(dataset.as_ref(), state, site.as_ref(), &page)
            .await?;
        Ok(Response::new(pb::ListJobsResponse {
            jobs: jobs.items.into_iter().map(job_to_pb).collect(),
            next_page_token: jobs.next_token,
        }))
    }

    async fn watch_job(
        &self,
        request: Request<pb::WatchJobRequest>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        let id = job_id("job", &request.into_inner().job)?;
        let first = self.migrations.get(id).await?;
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(watch(self.migrations.clone(), first, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn cancel_job(
        &self,
        request: Request<pb::CancelJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let id = job_id("job", &request.into_inner().job)?;
        Ok(Response::new(job_to_pb(self.migrations.cancel(id).await?)))
    }

    async fn retry_job(
        &self,
        request: Request<pb::RetryJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let id = job_id("job", &request.into_inner().job)?;
        Ok(Response::new(job_to_pb(self.migrations.retry(id).await?)))
    }

    async fn update_job(
        &self,
        request: Request<pb::UpdateJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let req = request.into_inner();
        let id = job_id("job", &req.job)?;
        let limit =
            (req.bandwidth_limit_bytes_per_sec != 0).then_some(req.bandwidth_limit_bytes_per_sec);
        Ok(Response::new(job_to_pb(
            self.migrations.set_bandwidth_limit(id, limit).await?,
        )))
    }

    async fn list_job_objects(
        &self,
        request: Request<pb::ListJobObjectsRequest>,
    ) -> Result<Response<pb::ListJobObjectsResponse>, Status> {
        let req = request.into_inner();
        let id = job_id("job", &req.job)?;
        let page = PageRequest::parse(req.page_size, &req.page_token)?;
        let status = match req.status {
            0 => None,
            n => Some(
                object_status_from_pb(n)
                    .ok_or_else(|| Error::invalid("status", format!("unknown status {n}")))?,
            ),
        };
        let task = Some(req.task.as_str()).filter(|t| !t.is_empty());
        let objects = self.migrations.objects(id, status, task, &page).await?;
        Ok(Response::new(pb::ListJobObjectsResponse {
            objects: objects.items.into_iter().map(object_to_pb).collect(),
            next_page_token: objects.next_token,
        }))
    }
}

/// Streams a job's progress: now, then on every change (or every second), until the
/// job ends or the client goes away. Rate is a moving average over the updates.
async fn watch(
    migrations: Migrations,
    mut job: Job,
    tx: mpsc::Sender<Result<pb::JobProgress, Status>>,
) {
    let mut changes = migrations.subscribe();
    let mut last: Option<(tokio::time::Instant, u64)> = None;
    let mut rate = 0.0_f64;
    loop {
        let now = tokio::time::Instant::now();
        if let Some((at, bytes)) = last {
            let secs = now.duration_since(at).as_secs_f64();
            if secs > 0.0 && job.counters.bytes_done >= bytes {
                let instant = (job.counters.bytes_done - bytes) as f64 / secs;
                rate = if rate == 0.0 {
                    instant
                } else {
                    0.7 * rate + 0.3 * instant
                };
            }
        }
        last = Some((now, job.counters.bytes_done));
        let errors = migrations.recent_errors(job.id).await.unwrap_or_default();
        let remaining = job
            .counters
            .bytes_total
            .saturating_sub(job.counters.bytes_done);
        let eta = (rate > 0.0 && !job.state.is_terminal())
            .then(|| to_duration(Duration::from_secs_f64(remaining as f64 / rate)));
        let ended = job.state.is_terminal();
        let progress = pb::JobProgress {
            bytes_per_sec: if ended { 0.0 } else { rate },
            eta,
            recent_errors: errors
                .into_iter()
                .map(|o| pb::ObjectError {
                    key: o.key,
                    operation: o.operation.unwrap_or_default(),
                    message: o.error.unwrap_or_default(),
                    attempts: o.attempts,
                })
                .collect(),
            job: Some(job_to_pb(job.clone())),
        };
        if tx.send(Ok(progress)).await.is_err() || ended {
            return;
        }
        // Wait for a change of this job, or poll: another control plane may have made it.
        let deadline = tokio::time::sleep(WATCH_POLL);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                _ = tx.closed() => return,
                changed = changes.recv() => match changed {
                    Ok(id) if id == job.id => break,
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
            }
        }
        match migrations.get(job.id).await {
            Ok(fresh) => job = fresh,
            Err(e) => {
                let _ = tx.send(Err(e.into())).await;
                return;
            }
        }
    }
}

fn plan_request(req: pb::PlanMigrationRequest) -> Result<PlanRequest> {
    let storage_class = (!req.storage_class.is_empty()).then_some(req.storage_class);
    if let Some(class) = &storage_class {
        if class.len() > 64 || !class.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Error::invalid(
                "storage_class",
                format!("'{class}' is not a storage class"),
            ));
        }
    }
    let key = (!req.idempotency_key.is_empty()).then_some(req.idempotency_key);
    if let Some(key) = &key {
        if key.len() > 200 || key.chars().any(char::is_control) {
            return Err(Error::invalid(
                "idempotency_key",
                "must be at most 200 printable characters",
            ));
        }
    }
    Ok(PlanRequest {
        dataset: Ref::parse("dataset", &req.dataset)?,
        destination_site: Ref::parse("destination_site", &req.destination_site)?,
        destination_path: (!req.destination_path.is_empty())
            .then(|| DatasetPath::parse("destination_path", &req.destination_path))
            .transpose()?,
        storage_class,
        verify_mode: convert::verify_mode("verify_mode", req.verify_mode)?,
        retire_source: req.retire_source,
        idempotency_key: key,
        filter: filter(req.filter.unwrap_or_default())?,
        bandwidth_limit: (req.bandwidth_limit_bytes_per_sec != 0)
            .then_some(req.bandwidth_limit_bytes_per_sec),
    })
}

fn filter(f: pb::ObjectFilter) -> Result<ObjectFilter> {
    let time = |field: &str, t: Option<prost_types::Timestamp>| {
        t.map(|t| from_timestamp(&t).ok_or_else(|| Error::invalid(field, "not a valid timestamp")))
            .transpose()
    };
    let max_size = (f.max_size != 0).then_some(f.max_size);
    if max_size.is_some_and(|max| max < f.min_size) {
        return Err(Error::invalid(
            "filter.max_size",
            "must not be below filter.min_size",
        ));
    }
    Ok(ObjectFilter {
        prefix: f.prefix,
        include: f.include,
        exclude: f.exclude,
        min_size: f.min_size,
        max_size,
        modified_before: time("filter.modified_before", f.modified_before)?,
        modified_after: time("filter.modified_after", f.modified_after)?,
    })
}

fn job_state(field: &str, value: i32) -> Result<Option<JobState>> {
    Ok(Some(match pb::JobState::try_from(value) {
        Ok(pb::JobState::Unspecified) => return Ok(None),
        Ok(pb::JobState::Queued) => JobState::Queued,
        Ok(pb::JobState::Copying) => JobState::Copying,
        Ok(pb::JobState::Verifying) => JobState::Verifying,
        Ok(pb::JobState::Switching) => JobState::Switching,
        Ok(pb::JobState::Completed) => JobState::Completed,
        Ok(pb::JobState::Failed) => JobState::Failed,
        Ok(pb::JobState::Cancelled) => JobState::Cancelled,
        Err(_) => return Err(Error::invalid(field, format!("unknown job state {value}"))),
    }))
}

fn job_state_to_pb(s: JobState) -> i32 {
    match s {
        JobState::Queued => pb::JobState::Queued,
        JobState::Copying => pb::JobState::Copying,
        JobState::Verifying => pb::JobState::Verifying,
        JobState::Switching => pb::JobState::Switching,
        JobState::Completed => pb::JobState::Completed,
        JobState::Failed => pb::JobState::Failed,
        JobState::Cancelled => pb::JobState::Cancelled,
    }
    .into()
}

pub fn job_to_pb(j: Job) -> pb::Job {
    pb::Job {
        id: j.id.to_string(),
        idempotency_key: j.idempotency_key,
        dataset: j.dataset_id.to_string(),
        source_site: j.source_site_id.to_string(),
        source_path: j.source_path,
        destination_site: j.destination_site_id.to_string(),
        destination_path: j.destination_path,
        storage_class: j.storage_class,
        verify_mode: verify_mode_to_pb(j.verify_mode),
        retire_source: j.retire_source,
        filter: Some(filter_to_pb(&j.filter)),
        state: job_state_to_pb(j.state),
        attempt: j.attempt,
        error: j.error.unwrap_or_default(),
        objects_total: j.counters.objects_total,
        objects_done: j.counters.objects_done,
        objects_failed: j.counters.objects_failed,
        bytes_total: j.counters.bytes_total,
        bytes_done: j.counters.bytes_done,
        bandwidth_limit_bytes_per_sec: j.bandwidth_limit.unwrap_or(0),
        source_retired: j.source_retired,
        create_time: Some(to_timestamp(j.created_at)),
        start_time: j.started_at.map(to_timestamp),
        update_time: Some(to_timestamp(j.updated_at)),
        end_time: j.ended_at.map(to_timestamp),
        executing_site: j.executing_site_id.to_string(),
    }
}

fn object_to_pb(o: JobObject) -> pb::JobObject {
    pb::JobObject {
        key: o.key,
        size: o.size,
        status: match o.status {
            ObjectStatus::Pending => pb::ObjectStatus::Pending,
            ObjectStatus::Copying => pb::ObjectStatus::Copying,
            ObjectStatus::Copied => pb::ObjectStatus::Copied,
            ObjectStatus::Verified => pb::ObjectStatus::Verified,
            ObjectStatus::Skipped => pb::ObjectStatus::Skipped,
            ObjectStatus::Failed => pb::ObjectStatus::Failed,
        }
        .into(),
        source_xxh3: o.source_xxh3.unwrap_or_default(),
        destination_xxh3: o.destination_xxh3.unwrap_or_default(),
        attempts: o.attempts,
        error: o.error.unwrap_or_default(),
        task: o.task.unwrap_or_default(),
        upload: o.upload.as_ref().map(upload_to_pb),
    }
}
