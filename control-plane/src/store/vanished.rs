//! Objects a migration copied that its final pass no longer found at the source:
//! deleted there during the copy, they leave the job's figures and wait, `extra`, for
//! the deletion at the destination that comes before the switch.

use chrono::{DateTime, Utc};
use sea_orm::{sea_query::Expr, ColumnTrait, EntityTrait, QueryFilter};

use super::{
    db_error,
    entity::{job, job_object},
    job_counters::{update_counters, Tally},
    jobs::lock_job,
    Store,
};
use crate::{
    domain::{ids::JobId, job::ObjectStatus},
    error::Result,
};

/// What a migration wrote at (or found already at) the destination.
const WRITTEN: [ObjectStatus; 2] = [ObjectStatus::Verified, ObjectStatus::Skipped];

impl Store {
    /// Of `keys`, found at the destination only, records those the migration wrote
    /// there as `extra` and changed at the source, in one transaction: they no longer
    /// count in its totals, and `source_changes` counts them. Keys it did not write (the
    /// destination held them before) are left alone. Returns how many it recorded.
    pub async fn record_vanished(
        &self,
        id: JobId,
        keys: &[String],
        at: DateTime<Utc>,
    ) -> Result<u64> {
        let txn = self.begin_write().await?;
        lock_job(&txn, id).await?;
        let (mut change, mut objects, mut bytes) = (Tally::default(), 0i64, 0i64);
        for chunk in keys.chunks(500) {
            let rows = job_object::Entity::find()
                .filter(job_object::Column::JobId.eq(id.to_string()))
                .filter(job_object::Column::Key.is_in(chunk.iter().cloned()))
                .filter(job_object::Column::Status.is_in(WRITTEN.map(ObjectStatus::as_str)))
                .all(&txn)
                .await
                .map_err(db_error)?;
            if rows.is_empty() {
                continue;
            }
            for row in &rows {
                change -= Tally::of_row(row);
                objects += 1;
                bytes += row.size;
            }
            job_object::Entity::update_many()
                .col_expr(
                    job_object::Column::Status,
                    Expr::value(ObjectStatus::Extra.as_str()),
                )
                .col_expr(job_object::Column::SourceChanged, Expr::value(true))
                .col_expr(job_object::Column::UpdatedAt, Expr::value(at))
                .filter(job_object::Column::JobId.eq(id.to_string()))
                .filter(job_object::Column::Key.is_in(rows.iter().map(|r| r.key.clone())))
                .exec(&txn)
                .await
                .map_err(db_error)?;
        }
        if objects > 0 {
            job::Entity::update_many()
                .col_expr(
                    job::Column::ObjectsTotal,
                    Expr::col(job::Column::ObjectsTotal).sub(objects),
                )
                .col_expr(
                    job::Column::BytesTotal,
                    Expr::col(job::Column::BytesTotal).sub(bytes),
                )
                .col_expr(
                    job::Column::SourceChanges,
                    Expr::col(job::Column::SourceChanges).add(objects),
                )
                .filter(job::Column::Id.eq(id.to_string()))
                .exec(&txn)
                .await
                .map_err(db_error)?;
            update_counters(&txn, id, change, Some(at)).await?;
        }
        txn.commit().await.map_err(db_error)?;
        Ok(objects as u64)
    }
}
