//! What continuous syncs' watchers report: keys that changed, one row per report (the
//! empty key when a watcher may have missed changes), until a run takes them. A run
//! takes the rows up to an id and deletes those in the transaction that records it,
//! so a key reported again meanwhile stays for the next run.

use std::collections::BTreeSet;

use sea_orm::{
    sea_query::Query, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};

use super::{
    db_error,
    entity::{dataset, sync_change, sync_schedule},
    schedules::run_planned,
    Store,
};
use crate::{
    domain::{
        ids::{DatasetId, JobId, ScheduleId, SiteId},
        schedule::{Changes, RESCAN_KEY},
    },
    error::Result,
};

impl Store {
    /// Records keys a watcher of `schedule` reported changed, and with `rescan` that it
    /// may have missed some.
    pub async fn record_changes(
        &self,
        schedule: ScheduleId,
        keys: &[String],
        rescan: bool,
    ) -> Result<()> {
        let rows: Vec<sync_change::ActiveModel> = keys
            .iter()
            .map(String::as_str)
            .chain(rescan.then_some(RESCAN_KEY))
            .collect::<BTreeSet<&str>>()
            .into_iter()
            .map(|key| sync_change::ActiveModel {
                schedule_id: Set(schedule.to_string()),
                key: Set(key.to_owned()),
                ..Default::default()
            })
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        let txn = self.begin_write().await?;
        for chunk in rows.chunks(500) {
            sync_change::Entity::insert_many(chunk.to_vec())
                .exec(&txn)
                .await
                .map_err(db_error)?;
        }
        txn.commit().await.map_err(db_error)
    }

    /// The changes waiting for a run of `schedule`: up to `limit` distinct keys (one
    /// more when there are more), and the last row they cover. `None` when none wait.
    pub async fn pending_changes(
        &self,
        schedule: ScheduleId,
        limit: u64,
    ) -> Result<Option<Changes>> {
        let last: Option<i64> = sync_change::Entity::find()
            .select_only()
            .column_as(sync_change::Column::Id.max(), "last")
            .filter(sync_change::Column::ScheduleId.eq(schedule.to_string()))
            .into_tuple()
            .one(&self.db)
            .await
            .map_err(db_error)?
            .flatten();
        let Some(up_to) = last else {
            return Ok(None);
        };
        let keys: Vec<String> = sync_change::Entity::find()
            .select_only()
            .column(sync_change::Column::Key)
            .distinct()
            .filter(sync_change::Column::ScheduleId.eq(schedule.to_string()))
            .filter(sync_change::Column::Id.lte(up_to))
            .order_by_asc(sync_change::Column::Key)
            .limit(limit + 1)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db_error)?;
        Ok(Some(Changes::new(up_to, keys)))
    }

    /// How many distinct keys wait for a run of `schedule`.
    pub async fn count_pending_changes(&self, schedule: ScheduleId) -> Result<u64> {
        sync_change::Entity::find()
            .select_only()
            .column(sync_change::Column::Key)
            .distinct()
            .filter(sync_change::Column::ScheduleId.eq(schedule.to_string()))
            .filter(sync_change::Column::Key.ne(RESCAN_KEY))
            .count(&self.db)
            .await
            .map_err(db_error)
    }

    /// The continuous schedules some change waits for.
    pub async fn schedules_with_changes(&self) -> Result<Vec<ScheduleId>> {
        let ids: Vec<String> = sync_change::Entity::find()
            .select_only()
            .column(sync_change::Column::ScheduleId)
            .distinct()
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db_error)?;
        Ok(ids.iter().filter_map(|id| id.parse().ok()).collect())
    }

    /// Records the run `job` planned for `schedule`'s changes up to row `up_to`, in
    /// one transaction: those rows are deleted, and the run counted as the schedule's
    /// last.
    pub async fn record_changes_planned(
        &self,
        schedule: ScheduleId,
        up_to: i64,
        job: JobId,
    ) -> Result<()> {
        let txn = self.begin_write().await?;
        forget_changes_up_to(&txn, schedule, up_to).await?;
        run_planned(sync_schedule::Entity::update_many(), job)
            .filter(sync_schedule::Column::Id.eq(schedule.to_string()))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        txn.commit().await.map_err(db_error)
    }

    /// Drops `schedule`'s changes up to row `up_to` without a run: none of them can
    /// touch what the sync takes.
    pub async fn drop_changes(&self, schedule: ScheduleId, up_to: i64) -> Result<()> {
        forget_changes_up_to(&self.db, schedule, up_to).await
    }

    /// The continuous schedules of the datasets at `site`, with each dataset's path
    /// and the schedule's stored sync (its filter): what the site's agents watch.
    pub async fn watches_at(&self, site: SiteId) -> Result<Vec<(ScheduleId, String, Vec<u8>)>> {
        let rows: Vec<(String, String, Vec<u8>)> = sync_schedule::Entity::find()
            .select_only()
            .column(sync_schedule::Column::Id)
            .column(dataset::Column::Path)
            .column(sync_schedule::Column::Sync)
            .join(
                sea_orm::JoinType::InnerJoin,
                sync_schedule::Entity::belongs_to(dataset::Entity)
                    .from(sync_schedule::Column::DatasetId)
                    .to(dataset::Column::Id)
                    .into(),
            )
            .filter(sync_schedule::Column::Continuous.eq(true))
            .filter(dataset::Column::SiteId.eq(site.to_string()))
            .order_by_asc(sync_schedule::Column::Id)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, path, sync)| Some((id.parse().ok()?, path, sync)))
            .collect())
    }
}

/// Forgets the changes waiting for a schedule, or for every schedule of a dataset:
/// they are being deleted. (SQLite does not enforce the foreign key that would cascade
/// it.)
async fn forget_changes_up_to(
    db: &impl ConnectionTrait,
    schedule: ScheduleId,
    up_to: i64,
) -> Result<()> {
    sync_change::Entity::delete_many()
        .filter(sync_change::Column::ScheduleId.eq(schedule.to_string()))
        .filter(sync_change::Column::Id.lte(up_to))
        .exec(db)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub(super) async fn forget_changes(
    db: &impl ConnectionTrait,
    dataset: Option<DatasetId>,
    schedule: Option<ScheduleId>,
) -> Result<()> {
    let mut delete = sync_change::Entity::delete_many();
    if let Some(schedule) = schedule {
        delete = delete.filter(sync_change::Column::ScheduleId.eq(schedule.to_string()));
    }
    if let Some(dataset) = dataset {
        delete = delete.filter(
            sync_change::Column::ScheduleId.in_subquery(
                Query::select()
                    .column(sync_schedule::Column::Id)
                    .from(sync_schedule::Entity)
                    .and_where(sync_schedule::Column::DatasetId.eq(dataset.to_string()))
                    .to_owned(),
            ),
        );
    }
    delete.exec(db).await.map_err(db_error)?;
    Ok(())
}
