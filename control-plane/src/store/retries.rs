//! A retry's commit: the job's new attempt and its listing, with the objects its ended
//! attempt left unfinished forgotten and its counters recounted, in one transaction.

use chrono::{DateTime, Utc};
use sea_orm::{
    sea_query::Expr, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
};

use super::{
    audit::record,
    db_error,
    entity::{job, job_object},
    job_counters::refresh_counters,
    jobs::{resource, update_job_row},
    outbox::{insert_outbox, OutboxMessage},
    to_i64, Store,
};
use crate::{
    domain::{
        job::{Job, ObjectStatus},
        sync::JobKind,
    },
    error::Result,
};

impl Store {
    /// Commits a retry: the job's new attempt and its listing dispatch, and forgets the
    /// objects the ended attempt left unfinished, in one transaction. The new listing
    /// records again whatever of them is still at the source; one that has left it
    /// would otherwise stay unfinished and keep the job from ever settling. Nothing
    /// resumable is lost: the uploads of an ended job are aborted. Verified and skipped
    /// objects stay, and are not copied again.
    pub async fn commit_retry(
        &self,
        j: &Job,
        read_at: DateTime<Utc>,
        outbox: &[OutboxMessage],
    ) -> Result<bool> {
        let txn = self.begin_write().await?;
        if !update_job_row(&txn, j, read_at).await? {
            return Ok(false);
        }
        // A sync's extras already deleted stay too: the new listing cannot find them.
        // So do a migration's copies of objects deleted at the source that wait for
        // their deletion: its final pass would take them for the destination's own.
        let mut kept = vec![
            ObjectStatus::Verified,
            ObjectStatus::Skipped,
            ObjectStatus::Deleted,
        ];
        if j.kind == JobKind::Migration {
            kept.push(ObjectStatus::Extra);
        }
        job_object::Entity::delete_many()
            .filter(job_object::Column::JobId.eq(j.id.to_string()))
            .filter(job_object::Column::Status.is_not_in(kept.iter().map(|s| s.as_str())))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        let deleted = ObjectStatus::Deleted.as_str();
        let (objects, bytes): (i64, Option<i64>) = job_object::Entity::find()
            .select_only()
            .column_as(job_object::Column::Key.count(), "n")
            .column_as(job_object::Column::Size.sum(), "bytes")
            .filter(job_object::Column::JobId.eq(j.id.to_string()))
            .filter(job_object::Column::Status.is_not_in([deleted, ObjectStatus::Extra.as_str()]))
            .into_tuple()
            .one(&txn)
            .await
            .map_err(db_error)?
            .unwrap_or((0, None));
        let extras_deleted = job_object::Entity::find()
            .filter(job_object::Column::JobId.eq(j.id.to_string()))
            .filter(job_object::Column::Status.eq(deleted))
            .count(&txn)
            .await
            .map_err(db_error)?;
        // Unchanged objects and extras not yet deleted are found again by the listing.
        job::Entity::update_many()
            .col_expr(job::Column::ObjectsTotal, Expr::value(objects))
            .col_expr(job::Column::BytesTotal, Expr::value(bytes.unwrap_or(0)))
            .col_expr(job::Column::ObjectsUnchanged, Expr::value(0i64))
            .col_expr(job::Column::ManifestUnchanged, Expr::value(0i64))
            .col_expr(job::Column::ManifestUnchangedBytes, Expr::value(0i64))
            .col_expr(
                job::Column::ExtrasFound,
                Expr::value(to_i64(extras_deleted)),
            )
            .col_expr(
                job::Column::ExtrasDeleted,
                Expr::value(to_i64(extras_deleted)),
            )
            .filter(job::Column::Id.eq(j.id.to_string()))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        refresh_counters(&txn, j.id).await?;
        insert_outbox(&txn, outbox).await?;
        record(
            &txn,
            resource(j),
            format!("retried: now {}", j.describe_state()),
        )
        .await?;
        txn.commit().await.map_err(db_error)?;
        Ok(true)
    }
}
