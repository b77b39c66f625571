use std::{pin::Pin, time::Duration};

use ferry_proto::{
    time::to_duration,
    v1::{self as pb, job_service_server::JobService},
};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::caller::{caller, confine_to_job};
use crate::{
    convert::{
        self, job_id, job_state, job_to_pb, object_status_from_pb, object_to_pb, plan_request,
    },
    domain::{job::Job, name::Ref, page::PageRequest},
    error::{Error, Result},
    service::{DryRuns, Migrations, Schedules},
};

/// How long `WatchJob` waits for a change before re-reading the job anyway.
const WATCH_POLL: Duration = Duration::from_secs(1);

pub struct JobApi {
    migrations: Migrations,
    dry_runs: DryRuns,
    schedules: Schedules,
}

impl JobApi {
    pub fn new(migrations: Migrations, dry_runs: DryRuns, schedules: Schedules) -> Self {
        JobApi {
            migrations,
            dry_runs,
            schedules,
        }
    }
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
            let report = self.dry_runs.run(&plan).await?;
            return Ok(Response::new(pb::PlanMigrationResponse {
                job: None,
                created: false,
                dry_run: Some(convert::dry_run_to_pb(report)),
            }));
        }
        let (job, created) = self.migrations.plan(plan).await?;
        Ok(Response::new(pb::PlanMigrationResponse {
            job: Some(job_to_pb(job)),
            created,
            dry_run: None,
        }))
    }

    async fn plan_sync(
        &self,
        request: Request<pb::PlanSyncRequest>,
    ) -> Result<Response<pb::PlanSyncResponse>, Status> {
        let (plan, rule) = convert::plan_sync_request(request.into_inner())?;
        let (job, created) = self.migrations.plan_sync(plan, rule).await?;
        Ok(Response::new(pb::PlanSyncResponse {
            job: Some(job_to_pb(job)),
            created,
        }))
    }

    async fn get_job(
        &self,
        request: Request<pb::GetJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let caller = caller(&request)?;
        let id = job_id("job", &request.into_inner().job)?;
        let job = self.migrations.get(id).await?;
        confine_to_job(&caller, &job)?;
        Ok(Response::new(job_to_pb(job)))
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
        let schedule = (!req.schedule.is_empty())
            .then(|| Ref::parse("schedule", &req.schedule))
            .transpose()?;
        let policy = (!req.policy.is_empty())
            .then(|| Ref::parse("policy", &req.policy))
            .transpose()?;
        let jobs = self
            .migrations
            .list(
                dataset.as_ref(),
                state,
                site.as_ref(),
                schedule.as_ref(),
                policy.as_ref(),
                &page,
            )
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

    async fn create_sync_schedule(
        &self,
        request: Request<pb::CreateSyncScheduleRequest>,
    ) -> Result<Response<pb::SyncSchedule>, Status> {
        let (name, sync, when, continuous) = convert::schedule_request(request.into_inner())?;
        let schedule = self.schedules.create(&name, sync, when, continuous).await?;
        Ok(Response::new(convert::schedule_to_pb(&schedule)))
    }

    async fn list_sync_schedules(
        &self,
        request: Request<pb::ListSyncSchedulesRequest>,
    ) -> Result<Response<pb::ListSyncSchedulesResponse>, Status> {
        let req = request.into_inner();
        let dataset = (!req.dataset.is_empty())
            .then(|| Ref::parse("dataset", &req.dataset))
            .transpose()?;
        let schedules = self.schedules.list(dataset.as_ref()).await?;
        Ok(Response::new(pb::ListSyncSchedulesResponse {
            schedules: schedules.iter().map(convert::schedule_to_pb).collect(),
        }))
    }

    async fn delete_sync_schedule(
        &self,
        request: Request<pb::DeleteSyncScheduleRequest>,
    ) -> Result<Response<pb::DeleteSyncScheduleResponse>, Status> {
        let schedule = Ref::parse("schedule", &request.into_inner().schedule)?;
        self.schedules.delete(&schedule).await?;
        Ok(Response::new(pb::DeleteSyncScheduleResponse {}))
    }

    async fn list_job_objects(
        &self,
        request: Request<pb::ListJobObjectsRequest>,
    ) -> Result<Response<pb::ListJobObjectsResponse>, Status> {
        let caller = caller(&request)?;
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
        confine_to_job(&caller, &self.migrations.get(id).await?)?;
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
