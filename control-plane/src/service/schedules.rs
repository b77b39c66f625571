//! Sync schedules: created and deleted by operators, and checked by a loop that plans
//! each due run. A due time whose previous run is unfinished is skipped and counted,
//! so a schedule never overlaps itself; due times missed while the control plane was
//! down are coalesced into the one run of the first check after it; each run's
//! idempotency key names its due time, so a due time plans at most one job.

use std::time::Duration;

use ferry_proto::v1 as pb;
use prost::Message;
use tracing::{info, warn};

use super::{Catalogue, Migrations};
use crate::{
    call::Call,
    convert,
    domain::{
        ids::{DatasetId, ScheduleId},
        name::{Name, Ref},
        principal::Principal,
        schedule::{Outcome, SyncSchedule, When},
    },
    error::{Error, Result},
};

#[derive(Clone)]
pub struct Schedules {
    catalogue: Catalogue,
    migrations: Migrations,
}

impl Schedules {
    pub fn new(catalogue: Catalogue, migrations: Migrations) -> Self {
        Schedules {
            catalogue,
            migrations,
        }
    }

    /// Records a schedule of `sync` (checked as `PlanSync` checks it, the dataset and
    /// destination site resolved to ids), first due at the first time after now.
    pub async fn create(
        &self,
        name: &str,
        mut sync: pb::PlanSyncRequest,
        when: When,
    ) -> Result<SyncSchedule> {
        let name = Name::parse("schedule.name", name)?;
        crate::call::set_target(format!("schedule:{name}"));
        if !sync.idempotency_key.is_empty() {
            return Err(Error::invalid(
                "schedule.sync.idempotency_key",
                "is set per run by the schedule; leave it empty",
            ));
        }
        let (plan, _) =
            convert::plan_sync_request(sync.clone()).map_err(|e| e.within("schedule.sync"))?;
        let dataset = self
            .catalogue
            .get_dataset(&plan.dataset)
            .await
            .map_err(|e| match e {
                Error::NotFound { .. } => Error::invalid(
                    "schedule.sync.dataset",
                    format!("dataset {} does not exist", plan.dataset),
                ),
                other => other,
            })?;
        let destination = self
            .catalogue
            .referenced_site("schedule.sync.destination_site", &plan.destination_site)
            .await?;
        sync.dataset = dataset.id.to_string();
        sync.destination_site = destination.id.to_string();
        let now = self.catalogue.clock().now();
        let next_run_at = when
            .next_after(now)
            .ok_or_else(|| Error::invalid("schedule.cron", "never matches after now"))?;
        let schedule = SyncSchedule {
            id: ScheduleId::new(),
            name,
            dataset_id: dataset.id,
            sync: sync.encode_to_vec(),
            when,
            next_run_at,
            last_job: None,
            runs: 0,
            skipped: 0,
            last_error: None,
            created_at: now,
        };
        self.catalogue.store().insert_schedule(&schedule).await?;
        info!(
            schedule = %schedule.name,
            dataset = %dataset.name,
            cron = schedule.when.pattern(),
            time_zone = schedule.when.time_zone(),
            next_run_at = %schedule.next_run_at,
            "sync schedule created"
        );
        Ok(schedule)
    }

    pub async fn list(&self, dataset: Option<&Ref<DatasetId>>) -> Result<Vec<SyncSchedule>> {
        let dataset = match dataset {
            Some(r) => Some(self.catalogue.get_dataset(r).await?.id),
            None => None,
        };
        self.catalogue.store().list_schedules(dataset).await
    }

    pub async fn get(&self, r: &Ref<ScheduleId>) -> Result<SyncSchedule> {
        self.catalogue
            .store()
            .find_schedule(r)
            .await?
            .ok_or_else(|| Error::not_found("schedule", r))
    }

    pub async fn delete(&self, r: &Ref<ScheduleId>) -> Result<()> {
        crate::call::set_target(format!("schedule:{r}"));
        let schedule = self.get(r).await?;
        self.catalogue.store().delete_schedule(&schedule).await?;
        info!(schedule = %schedule.name, "sync schedule deleted");
        Ok(())
    }

    /// Plans the runs due now: one per due schedule, however many of its times passed
    /// since it was last checked, and none while its previous run is unfinished.
    pub async fn run_due(&self) -> Result<usize> {
        let now = self.catalogue.clock().now();
        let mut planned = 0;
        for schedule in self.catalogue.store().due_schedules(now).await? {
            let due = schedule.next_run_at;
            let outcome = self.outcome(&schedule, due).await?;
            // The next time after now: the times missed meanwhile are coalesced.
            let Some(next) = schedule.when.next_after(now) else {
                warn!(schedule = %schedule.name, "the schedule never matches again");
                continue;
            };
            if self
                .catalogue
                .store()
                .record_due(&schedule, due, &outcome, next)
                .await?
            {
                match &outcome {
                    Outcome::Planned(job) => {
                        planned += 1;
                        info!(schedule = %schedule.name, job_id = %job, %due, %next, "scheduled sync planned");
                    }
                    Outcome::Skipped => {
                        info!(schedule = %schedule.name, %due, %next, "scheduled sync skipped: the previous run is unfinished");
                    }
                    Outcome::Failed(reason) => {
                        warn!(schedule = %schedule.name, %due, %next, reason, "scheduled sync not planned");
                    }
                }
            }
        }
        Ok(planned)
    }

    async fn outcome(
        &self,
        schedule: &SyncSchedule,
        due: chrono::DateTime<chrono::Utc>,
    ) -> Result<Outcome> {
        if let Some(last) = schedule.last_job {
            match self.migrations.get(last).await {
                Ok(job) if !job.state.is_terminal() => return Ok(Outcome::Skipped),
                Ok(_) | Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let mut request = pb::PlanSyncRequest::decode(schedule.sync.as_slice()).map_err(|e| {
            Error::Internal(format!(
                "schedule {}: stored sync unreadable: {e}",
                schedule.id
            ))
        })?;
        request.idempotency_key = schedule.run_key(due);
        let (mut plan, rule) = match convert::plan_sync_request(request) {
            Ok(converted) => converted,
            Err(e) => return Ok(Outcome::Failed(e.to_string())),
        };
        plan.schedule = Some(schedule.id);
        match self.migrations.plan_sync(plan, rule).await {
            Ok((job, _)) => Ok(Outcome::Planned(job.id)),
            Err(e @ (Error::Internal(_) | Error::Unavailable(_))) => Err(e),
            Err(e) => Ok(Outcome::Failed(e.to_string())),
        }
    }
}

/// Checks the schedules every `interval`, on the catalogue's clock, as the system.
pub async fn run(schedules: Schedules, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let call = Call::new(
            Principal::system("scheduler"),
            "scheduler",
            schedules.catalogue.clock().now(),
        );
        if let Err(e) = call.scope(schedules.run_due()).await {
            warn!(error = %e, "checking sync schedules failed");
        }
    }
}
