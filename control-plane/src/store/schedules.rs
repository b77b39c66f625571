//! Sync schedules: created, listed, deleted, found due, and each due time's outcome
//! recorded with the next due time in one conditional update, so that two checks of
//! the same due time (two control planes) record it once.

use chrono::{DateTime, Utc};
use sea_orm::{
    sea_query::Expr, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
    UpdateMany,
};

use super::{
    audit::record, corrupt, db_error, entity::sync_schedule, is_unique_violation,
    sync_changes::forget_changes, to_u64, Store,
};
use crate::{
    domain::{
        ids::{DatasetId, JobId, ScheduleId},
        name::{Name, Ref},
        schedule::{Outcome, SyncSchedule, When},
    },
    error::{Error, Result},
};

impl Store {
    pub async fn insert_schedule(&self, s: &SyncSchedule) -> Result<()> {
        let txn = self.begin_write().await?;
        let row = sync_schedule::ActiveModel {
            id: Set(s.id.to_string()),
            name: Set(s.name.to_string()),
            dataset_id: Set(s.dataset_id.to_string()),
            sync: Set(s.sync.clone()),
            cron: Set(s.when.pattern().to_owned()),
            time_zone: Set(s.when.time_zone().to_owned()),
            next_run_at: Set(s.next_run_at),
            last_job_id: Set(None),
            runs: Set(0),
            skipped: Set(0),
            last_error: Set(None),
            created_at: Set(s.created_at),
            continuous: Set(s.continuous),
        };
        sync_schedule::Entity::insert(row)
            .exec(&txn)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    Error::already_exists("schedule", &s.name)
                } else {
                    db_error(e)
                }
            })?;
        record(
            &txn,
            format!("schedule:{}", s.name),
            format!(
                "created: `{}` in {}{}",
                s.when.pattern(),
                s.when.time_zone(),
                if s.continuous { ", continuous" } else { "" }
            ),
        )
        .await?;
        txn.commit().await.map_err(db_error)
    }

    pub async fn find_schedule(&self, r: &Ref<ScheduleId>) -> Result<Option<SyncSchedule>> {
        let Some(mut schedule) = self.find_schedule_uncounted(r).await? else {
            return Ok(None);
        };
        if schedule.continuous {
            schedule.pending_changes = self.count_pending_changes(schedule.id).await?;
        }
        Ok(Some(schedule))
    }

    /// A schedule without the count of its pending changes (left 0): for the checks
    /// that read those changes themselves.
    pub async fn find_schedule_uncounted(
        &self,
        r: &Ref<ScheduleId>,
    ) -> Result<Option<SyncSchedule>> {
        let query = match r {
            Ref::Id(id) => sync_schedule::Entity::find_by_id(id.to_string()),
            Ref::Name(name) => {
                sync_schedule::Entity::find().filter(sync_schedule::Column::Name.eq(name.as_str()))
            }
        };
        query
            .one(&self.db)
            .await
            .map_err(db_error)?
            .map(to_domain)
            .transpose()
    }

    /// Every schedule, or a dataset's, by name.
    pub async fn list_schedules(&self, dataset: Option<DatasetId>) -> Result<Vec<SyncSchedule>> {
        let mut query = sync_schedule::Entity::find().order_by_asc(sync_schedule::Column::Name);
        if let Some(dataset) = dataset {
            query = query.filter(sync_schedule::Column::DatasetId.eq(dataset.to_string()));
        }
        let mut schedules = query
            .all(&self.db)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(to_domain)
            .collect::<Result<Vec<_>>>()?;
        for s in schedules.iter_mut().filter(|s| s.continuous) {
            s.pending_changes = self.count_pending_changes(s.id).await?;
        }
        Ok(schedules)
    }

    /// Records why a run of the schedule could not be planned.
    pub async fn set_schedule_error(&self, id: ScheduleId, reason: &str) -> Result<()> {
        sync_schedule::Entity::update_many()
            .col_expr(
                sync_schedule::Column::LastError,
                Expr::value(Some(reason.to_owned())),
            )
            .filter(sync_schedule::Column::Id.eq(id.to_string()))
            .exec(&self.db)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    pub async fn delete_schedule(&self, s: &SyncSchedule) -> Result<()> {
        let txn = self.begin_write().await?;
        forget_changes(&txn, None, Some(s.id)).await?;
        sync_schedule::Entity::delete_by_id(s.id.to_string())
            .exec(&txn)
            .await
            .map_err(db_error)?;
        record(&txn, format!("schedule:{}", s.name), "deleted").await?;
        txn.commit().await.map_err(db_error)
    }

    /// The schedules due at `now`, the most overdue first.
    pub async fn due_schedules(&self, now: DateTime<Utc>) -> Result<Vec<SyncSchedule>> {
        sync_schedule::Entity::find()
            .filter(sync_schedule::Column::NextRunAt.lte(now))
            .order_by_asc(sync_schedule::Column::NextRunAt)
            .all(&self.db)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(to_domain)
            .collect()
    }

    /// Records what the due time `due` of `s` did and moves it to `next`, unless
    /// another check recorded that due time first. Returns whether this one did.
    pub async fn record_due(
        &self,
        s: &SyncSchedule,
        due: DateTime<Utc>,
        outcome: &Outcome,
        next: DateTime<Utc>,
    ) -> Result<bool> {
        let mut update = sync_schedule::Entity::update_many()
            .col_expr(sync_schedule::Column::NextRunAt, Expr::value(next));
        update = match outcome {
            Outcome::Planned(job) => run_planned(update, *job),
            Outcome::Skipped => update.col_expr(
                sync_schedule::Column::Skipped,
                Expr::col(sync_schedule::Column::Skipped).add(1),
            ),
            Outcome::Failed(reason) => update.col_expr(
                sync_schedule::Column::LastError,
                Expr::value(Some(reason.clone())),
            ),
        };
        let done = update
            .filter(sync_schedule::Column::Id.eq(s.id.to_string()))
            .filter(sync_schedule::Column::NextRunAt.eq(due))
            .exec(&self.db)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected == 1)
    }
}

/// `update`, also recording that the schedule planned `job`: its last run, one more
/// run, and no error.
pub(super) fn run_planned(
    update: UpdateMany<sync_schedule::Entity>,
    job: JobId,
) -> UpdateMany<sync_schedule::Entity> {
    update
        .col_expr(
            sync_schedule::Column::LastJobId,
            Expr::value(job.to_string()),
        )
        .col_expr(
            sync_schedule::Column::Runs,
            Expr::col(sync_schedule::Column::Runs).add(1),
        )
        .col_expr(
            sync_schedule::Column::LastError,
            Expr::value(Option::<String>::None),
        )
}

fn to_domain(row: sync_schedule::Model) -> Result<SyncSchedule> {
    let bad = |what: &str, e: String| corrupt("sync_schedules", &row.id, format!("{what}: {e}"));
    Ok(SyncSchedule {
        id: row
            .id
            .parse()
            .map_err(|e: uuid::Error| bad("id", e.to_string()))?,
        name: Name::parse("name", &row.name).map_err(|e| bad("name", e.to_string()))?,
        dataset_id: row
            .dataset_id
            .parse()
            .map_err(|e: uuid::Error| bad("dataset_id", e.to_string()))?,
        when: When::parse(&row.cron, &row.time_zone).map_err(|e| bad("cron", e.to_string()))?,
        last_job: row
            .last_job_id
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e: uuid::Error| bad("last_job_id", e.to_string()))?,
        sync: row.sync,
        next_run_at: row.next_run_at,
        runs: to_u64(row.runs),
        skipped: to_u64(row.skipped),
        last_error: row.last_error,
        created_at: row.created_at,
        continuous: row.continuous,
        pending_changes: 0,
    })
}
