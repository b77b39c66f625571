//! Migration jobs (plan, follow, steer, inspect) and the agents that run them, built on
//! the `JobService` and `AgentService` stubs.

use futures::{Stream, TryFutureExt, TryStreamExt};

use ferry_proto::v1 as pb;

use crate::client::{collect_pages, required, Client, PAGE_SIZE};
use crate::error::Error;

/// Filters of [`Client::list_jobs`]; each one set narrows the result.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// The dataset (id or name) being migrated.
    pub dataset: Option<String>,
    /// The job's current state.
    pub state: Option<pb::JobState>,
    /// A site (id or name) the job reads from or writes to.
    pub site: Option<String>,
    /// The sync schedule (id or name) that planned the job: its runs.
    pub schedule: Option<String>,
    /// The policy (id or name) whose autopilot started the migration.
    pub policy: Option<String>,
}

impl Client {
    // Jobs.

    /// Plans a sync of a dataset to a secondary replica at `request.destination_site`.
    ///
    /// Fails with [`Error::InvalidInput`] when the dataset or the destination site is
    /// missing, and with [`Error::Protocol`] when the answer lacks the job.
    pub async fn plan_sync(
        &self,
        request: pb::PlanSyncRequest,
    ) -> Result<pb::PlanSyncResponse, Error> {
        required("dataset id or name", &request.dataset)?;
        required("destination site", &request.destination_site)?;
        let answer = self.jobs().plan_sync(request).await?.into_inner();
        if answer.job.is_none() {
            return Err(Error::Protocol("PlanSync answered without a job".into()));
        }
        Ok(answer)
    }

    /// Plans a migration of `request.dataset` to `request.destination_site`.
    ///
    /// With `dry_run`, nothing is planned and the answer carries only the report of what
    /// would move; otherwise it carries the job. A request repeating an earlier
    /// `idempotency_key` returns the job planned then, with `created` false. Fails with
    /// [`Error::InvalidInput`] before sending when the dataset or the destination is
    /// missing, and with [`Error::Protocol`] when the answer lacks the job (or the report,
    /// on a dry run).
    pub async fn plan_migration(
        &self,
        request: pb::PlanMigrationRequest,
    ) -> Result<pb::PlanMigrationResponse, Error> {
        required("dataset id or name", &request.dataset)?;
        required("destination site", &request.destination_site)?;
        let dry_run = request.dry_run;
        let answer = self.jobs().plan_migration(request).await?.into_inner();
        if dry_run && answer.dry_run.is_none() {
            return Err(Error::Protocol(
                "PlanMigration answered a dry run without a report".into(),
            ));
        }
        if !dry_run && answer.job.is_none() {
            return Err(Error::Protocol(
                "PlanMigration answered without a job".into(),
            ));
        }
        Ok(answer)
    }

    /// The job with this id.
    pub async fn get_job(&self, job: &str) -> Result<pb::Job, Error> {
        let job = required("job id", job)?;
        Ok(self
            .jobs()
            .get_job(pb::GetJobRequest { job })
            .await?
            .into_inner())
    }

    /// Every job matching `filter`, fetching all pages, in the server's order (newest
    /// first).
    pub async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<pb::Job>, Error> {
        let dataset = filter.dataset.clone().unwrap_or_default();
        let state = filter.state.map_or(0, i32::from);
        let site = filter.site.clone().unwrap_or_default();
        let schedule = filter.schedule.clone().unwrap_or_default();
        let policy = filter.policy.clone().unwrap_or_default();
        collect_pages(|page_token| {
            let mut stub = self.jobs();
            let request = pb::ListJobsRequest {
                page_size: PAGE_SIZE,
                page_token,
                dataset: dataset.clone(),
                state,
                site: site.clone(),
                schedule: schedule.clone(),
                policy: policy.clone(),
            };
            async move {
                let page = stub.list_jobs(request).await?.into_inner();
                Ok((page.jobs, page.next_page_token))
            }
        })
        .await
    }

    /// Schedules `schedule.sync` at the times its cron expression names.
    pub async fn create_sync_schedule(
        &self,
        schedule: pb::SyncSchedule,
    ) -> Result<pb::SyncSchedule, Error> {
        required("schedule name", &schedule.name)?;
        required("cron expression", &schedule.cron)?;
        let request = pb::CreateSyncScheduleRequest {
            schedule: Some(schedule),
        };
        Ok(self
            .jobs()
            .create_sync_schedule(request)
            .await?
            .into_inner())
    }

    /// Every sync schedule, or a dataset's (id or name).
    pub async fn list_sync_schedules(
        &self,
        dataset: Option<&str>,
    ) -> Result<Vec<pb::SyncSchedule>, Error> {
        let request = pb::ListSyncSchedulesRequest {
            dataset: dataset.unwrap_or_default().to_owned(),
        };
        Ok(self
            .jobs()
            .list_sync_schedules(request)
            .await?
            .into_inner()
            .schedules)
    }

    /// Deletes a sync schedule (id or name); its runs stay.
    pub async fn delete_sync_schedule(&self, schedule: &str) -> Result<(), Error> {
        let schedule = required("schedule id or name", schedule)?;
        self.jobs()
            .delete_sync_schedule(pb::DeleteSyncScheduleRequest { schedule })
            .await?;
        Ok(())
    }

    /// Follows a job: the stream yields its progress now, then once per change, and ends
    /// after the job reaches a final state (completed, failed or cancelled).
    ///
    /// The call is made when the stream is first polled; a failure to start it (an empty
    /// id, an unknown job, no connection) is the stream's first and only item. A broken
    /// connection shows as an error item, after which the stream ends: watching again
    /// starts with the job's current progress, so nothing is lost by reconnecting. A stream
    /// may also end early without an error when the server shuts down; callers that need
    /// the outcome should check that the last job seen is in a final state.
    pub fn watch_job(
        &self,
        job: &str,
    ) -> impl Stream<Item = Result<pb::JobProgress, Error>> + Send + Unpin + 'static {
        let mut stub = self.jobs();
        let job = required("job id", job);
        let opened = async move {
            let request = pb::WatchJobRequest { job: job? };
            let updates = stub.watch_job(request).await?.into_inner();
            Ok::<_, Error>(updates.map_err(Error::from))
        };
        Box::pin(opened.try_flatten_stream())
    }

    /// Cancels a job that has not finished; the answer is the job as it stands after.
    pub async fn cancel_job(&self, job: &str) -> Result<pb::Job, Error> {
        let job = required("job id", job)?;
        Ok(self
            .jobs()
            .cancel_job(pb::CancelJobRequest { job })
            .await?
            .into_inner())
    }

    /// Starts a failed or cancelled job again under the next attempt number; objects
    /// already verified are kept.
    pub async fn retry_job(&self, job: &str) -> Result<pb::Job, Error> {
        let job = required("job id", job)?;
        Ok(self
            .jobs()
            .retry_job(pb::RetryJobRequest { job })
            .await?
            .into_inner())
    }

    /// Sets the bandwidth limit of a job, in bytes per second; 0 removes the limit. A
    /// running job applies it without restarting.
    pub async fn update_job(
        &self,
        job: &str,
        bandwidth_limit_bytes_per_sec: u64,
    ) -> Result<pb::Job, Error> {
        let job = required("job id", job)?;
        let request = pb::UpdateJobRequest {
            job,
            bandwidth_limit_bytes_per_sec,
        };
        Ok(self.jobs().update_job(request).await?.into_inner())
    }

    /// Every object of a job, or only those with `status`, fetching all pages.
    pub async fn list_job_objects(
        &self,
        job: &str,
        status: Option<pb::ObjectStatus>,
    ) -> Result<Vec<pb::JobObject>, Error> {
        let job = required("job id", job)?;
        let status = status.map_or(0, i32::from);
        collect_pages(|page_token| {
            let mut stub = self.jobs();
            let request = pb::ListJobObjectsRequest {
                job: job.clone(),
                page_size: PAGE_SIZE,
                page_token,
                status,
                ..Default::default()
            };
            async move {
                let page = stub.list_job_objects(request).await?.into_inner();
                Ok((page.objects, page.next_page_token))
            }
        })
        .await
    }

    /// Visits a job's objects page by page, in key order, without holding them all: a
    /// bucket-sized job has millions.
    /// `visit` may fail with its own error type, which ends the walk.
    pub async fn for_each_job_object_page<E: From<Error>>(
        &self,
        job: &str,
        status: Option<pb::ObjectStatus>,
        mut visit: impl FnMut(&[pb::JobObject]) -> Result<(), E>,
    ) -> Result<(), E> {
        let job = required("job id", job)?;
        let status = status.map_or(0, i32::from);
        let mut page_token = String::new();
        loop {
            let page = self
                .jobs()
                .list_job_objects(pb::ListJobObjectsRequest {
                    job: job.clone(),
                    page_size: PAGE_SIZE,
                    page_token: page_token.clone(),
                    status,
                    ..Default::default()
                })
                .await
                .map_err(Error::from)?
                .into_inner();
            visit(&page.objects)?;
            if page.next_page_token.is_empty() {
                return Ok(());
            }
            if page.next_page_token == page_token {
                return Err(Error::Protocol(format!(
                    "page token {page_token:?} was returned twice"
                ))
                .into());
            }
            page_token = page.next_page_token;
        }
    }

    // Agents.

    /// Every registered agent, or only those serving `site` (id or name).
    pub async fn list_agents(&self, site: Option<&str>) -> Result<Vec<pb::Agent>, Error> {
        let request = pb::ListAgentsRequest {
            site: site.unwrap_or_default().to_owned(),
        };
        Ok(self
            .agents()
            .list_agents(request)
            .await?
            .into_inner()
            .agents)
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    fn lazy_client() -> Client {
        match Client::connect_lazy("127.0.0.1:1") {
            Ok(client) => client,
            Err(e) => panic!("a lazy client needs no server: {e}"),
        }
    }

    #[tokio::test]
    async fn plans_need_a_dataset_and_a_destination() {
        let client = lazy_client();
        let no_dataset = pb::PlanMigrationRequest {
            destination_site: "archive".into(),
            ..Default::default()
        };
        let result = client.plan_migration(no_dataset).await;
        assert!(matches!(result, Err(Error::InvalidInput(m)) if m.contains("dataset")));
        let no_destination = pb::PlanMigrationRequest {
            dataset: "genome".into(),
            ..Default::default()
        };
        let result = client.plan_migration(no_destination).await;
        assert!(matches!(result, Err(Error::InvalidInput(m)) if m.contains("destination")));
    }

    #[tokio::test]
    async fn job_calls_refuse_an_empty_id_before_sending() {
        let client = lazy_client();
        assert!(matches!(
            client.get_job(" ").await,
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            client.update_job("", 5).await,
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            client.list_job_objects("", None).await,
            Err(Error::InvalidInput(_))
        ));
    }

    #[tokio::test]
    async fn a_watch_that_cannot_start_yields_one_error_then_ends() {
        let client = lazy_client();
        let mut updates = client.watch_job("");
        assert!(matches!(
            updates.next().await,
            Some(Err(Error::InvalidInput(_)))
        ));
        assert!(updates.next().await.is_none());
    }
}
