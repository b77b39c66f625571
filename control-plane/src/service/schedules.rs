//! Sync schedules: created and deleted by operators, and checked by a loop that plans
//! each due run. A due time whose previous run is unfinished is skipped and counted,
//! so a schedule never overlaps itself; due times missed while the control plane was
//! down are coalesced into the one run of the first check after it; each run's
//! idempotency key names its due time, so a due time plans at most one job.
//!
//! A continuous schedule also runs as its watchers report changes (`watches`): once its
//! previous run ended, the keys reported meanwhile make one run that checks them alone,
//! or that lists everything when a watcher may have missed changes, there are too many
//! keys, or the replica was never synced in full.

use std::time::Duration;

use ferry_proto::v1 as pb;
use ferry_storage::Scheme;
use prost::Message;
use tracing::{info, warn};

use super::{Catalogue, Migrations};
use crate::{
    convert,
    domain::{
        ids::{DatasetId, ScheduleId},
        name::{Name, Ref},
        schedule::{Outcome, SyncSchedule, When, MAX_CHANGED_KEYS},
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
        continuous: bool,
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
        if continuous {
            let site = self.catalogue.get_site(&Ref::Id(dataset.site_id)).await?;
            if site.uri.scheme() != Scheme::File {
                return Err(Error::invalid(
                    "schedule.continuous",
                    format!(
                        "dataset {} is on site {} ({}), not a file:// site: only a file \
                         system's changes can be watched; schedule full runs instead",
                        dataset.name, site.name, site.uri
                    ),
                ));
            }
        }
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
            continuous,
            pending_changes: 0,
        };
        self.catalogue.store().insert_schedule(&schedule).await?;
        info!(
            schedule = %schedule.name,
            dataset = %dataset.name,
            cron = schedule.when.pattern(),
            time_zone = schedule.when.time_zone(),
            next_run_at = %schedule.next_run_at,
            continuous,
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
        if self.previous_unfinished(schedule).await? {
            return Ok(Outcome::Skipped);
        }
        self.plan(schedule, schedule.run_key(due), None).await
    }

    /// Whether the schedule's last run has yet to end.
    async fn previous_unfinished(&self, schedule: &SyncSchedule) -> Result<bool> {
        let Some(last) = schedule.last_job else {
            return Ok(false);
        };
        match self.migrations.get(last).await {
            Ok(job) => Ok(!job.state.is_terminal()),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Plans a run of the schedule's sync under `key`: of `keys` alone, or of
    /// everything.
    async fn plan(
        &self,
        schedule: &SyncSchedule,
        key: String,
        keys: Option<Vec<String>>,
    ) -> Result<Outcome> {
        let mut request = stored_sync(schedule)?;
        request.idempotency_key = key;
        let (mut plan, rule) = match convert::plan_sync_request(request) {
            Ok(converted) => converted,
            Err(e) => return Ok(Outcome::Failed(e.to_string())),
        };
        plan.schedule = Some(schedule.id);
        plan.sync_keys = keys;
        match self.migrations.plan_sync(plan, rule).await {
            Ok((job, _)) => Ok(Outcome::Planned(job.id)),
            Err(e @ (Error::Internal(_) | Error::Unavailable(_))) => Err(e),
            Err(e) => Ok(Outcome::Failed(e.to_string())),
        }
    }

    /// Plans a run for each continuous schedule that reported changes wait for, once
    /// its previous run ended: of the changed keys alone, or of everything when a
    /// watcher may have missed changes, there are too many keys, or the replica has no
    /// full sync yet to build on.
    pub async fn run_changes(&self) -> Result<usize> {
        let store = self.catalogue.store();
        let mut planned = 0;
        for id in store.schedules_with_changes().await? {
            let Some(schedule) = store.find_schedule_uncounted(&Ref::Id(id)).await? else {
                continue;
            };
            if !schedule.continuous || self.previous_unfinished(&schedule).await? {
                continue;
            }
            let Some(changes) = store.pending_changes(id, MAX_CHANGED_KEYS).await? else {
                continue;
            };
            let prefix = stored_sync(&schedule)?
                .filter
                .map(|f| f.prefix)
                .unwrap_or_default();
            let mut keys = changes.keys_under(prefix.trim_start_matches('/'));
            if keys.as_ref().is_some_and(Vec::is_empty) {
                // Churn outside what the sync takes: no run.
                store.drop_changes(id, changes.up_to).await?;
                continue;
            }
            if keys.is_some() && !self.replica_synced(&schedule).await? {
                keys = None;
            }
            let checked = keys.as_ref().map_or(0, Vec::len);
            match self
                .plan(&schedule, schedule.changes_key(changes.up_to), keys)
                .await?
            {
                Outcome::Planned(job) => {
                    store.record_changes_planned(id, changes.up_to, job).await?;
                    planned += 1;
                    info!(
                        schedule = %schedule.name,
                        job_id = %job,
                        keys = checked,
                        full = checked == 0,
                        "continuous sync planned for reported changes"
                    );
                }
                Outcome::Failed(reason) => {
                    // The changes wait for the next check; the reason is told once.
                    if schedule.last_error.as_deref() != Some(reason.as_str()) {
                        warn!(schedule = %schedule.name, reason, "continuous sync not planned; the changes wait");
                        store.set_schedule_error(id, &reason).await?;
                    }
                }
                Outcome::Skipped => {}
            }
        }
        Ok(planned)
    }

    /// Whether the replica the schedule keeps has a completed sync: a run of changed
    /// keys alone builds on one.
    async fn replica_synced(&self, schedule: &SyncSchedule) -> Result<bool> {
        let request = stored_sync(schedule)?;
        let dataset = self
            .catalogue
            .get_dataset(&Ref::Id(schedule.dataset_id))
            .await?;
        let path = match request.destination_path.as_str() {
            "" => dataset.path.as_str().to_owned(),
            path => path.to_owned(),
        };
        let replicas = self.catalogue.store().replicas(dataset.id).await?;
        Ok(replicas.iter().any(|r| {
            r.site_id.to_string() == request.destination_site
                && r.path == path
                && r.synced_at.is_some()
        }))
    }
}

/// The sync the schedule plans, as stored.
fn stored_sync(schedule: &SyncSchedule) -> Result<pb::PlanSyncRequest> {
    decode_stored_sync(schedule.id, &schedule.sync)
}

/// The sync a schedule stores (`sync_schedule.sync`), as planned by each of its runs.
pub(super) fn decode_stored_sync(schedule: ScheduleId, sync: &[u8]) -> Result<pb::PlanSyncRequest> {
    pb::PlanSyncRequest::decode(sync)
        .map_err(|e| Error::Internal(format!("schedule {schedule}: stored sync unreadable: {e}")))
}

/// Checks the schedules every `interval`, on the catalogue's clock, as the system.
pub async fn run(schedules: Schedules, interval: Duration) {
    let clock = schedules.catalogue.clock().clone();
    super::every(
        interval,
        "scheduler",
        clock,
        "checking sync schedules",
        || schedules.run_due(),
    )
    .await
}

/// Checks every [`CHANGES_INTERVAL`] for changes continuous syncs' watchers reported,
/// as the system: a continuous sync's lag is its watchers' settling time, this, and
/// the run itself.
pub async fn run_changes(schedules: Schedules) {
    let clock = schedules.catalogue.clock().clone();
    super::every(
        CHANGES_INTERVAL,
        "scheduler",
        clock,
        "checking continuous syncs' changes",
        || schedules.run_changes(),
    )
    .await
}

/// How often reported changes are looked for.
const CHANGES_INTERVAL: Duration = Duration::from_secs(1);
