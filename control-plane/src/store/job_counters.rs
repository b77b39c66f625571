//! A job's counters (objects done and failed, bytes done), moved by exactly what each
//! transaction changed in its object records, and recomputed from them after a retry.

use chrono::{DateTime, Utc};
use sea_orm::{
    sea_query::Expr, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QuerySelect,
};

use super::{
    db_error,
    entity::{job, job_object},
};
use crate::{
    domain::{ids::JobId, job::ObjectStatus},
    error::Result,
};

/// What an object counts for in its job's counters: done objects, failed objects and
/// done bytes (a copied object's bytes are done before the object is).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Tally {
    done: i64,
    failed: i64,
    bytes_done: i64,
}

impl Tally {
    pub(super) fn of(status: ObjectStatus, size: i64) -> Tally {
        match status {
            s if s.is_done() => Tally {
                done: 1,
                failed: 0,
                bytes_done: size,
            },
            ObjectStatus::Copied => Tally {
                bytes_done: size,
                ..Tally::default()
            },
            ObjectStatus::Failed => Tally {
                failed: 1,
                ..Tally::default()
            },
            _ => Tally::default(),
        }
    }

    /// An unknown stored status counts for nothing, as it did when it was written.
    pub(super) fn of_stored(status: &str, size: i64) -> Tally {
        status
            .parse::<ObjectStatus>()
            .map_or(Tally::default(), |s| Tally::of(s, size))
    }

    pub(super) fn of_row(row: &job_object::Model) -> Tally {
        Tally::of_stored(&row.status, row.size)
    }

    /// What `count` objects of one stored status, of `bytes` in all, count for.
    fn of_group(status: &str, count: i64, bytes: i64) -> Tally {
        let each = Tally::of_stored(status, bytes);
        Tally {
            done: each.done * count,
            failed: each.failed * count,
            bytes_done: each.bytes_done,
        }
    }
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Tally) {
        self.done += other.done;
        self.failed += other.failed;
        self.bytes_done += other.bytes_done;
    }
}

impl std::ops::SubAssign for Tally {
    fn sub_assign(&mut self, other: Tally) {
        self.done -= other.done;
        self.failed -= other.failed;
        self.bytes_done -= other.bytes_done;
    }
}

/// Moves a job's counters by what a transaction changed, computed from the object
/// records it replaced: a report applied again replaces a record with its equal and
/// moves nothing. Reports arrive in batches of a few hundred objects, so this keeps
/// each batch's cost independent of the job's size, where recounting read every
/// object of the job. With `progressed_at`, the change was an agent's progress.
pub(super) async fn update_counters(
    txn: &DatabaseTransaction,
    id: JobId,
    change: Tally,
    progressed_at: Option<DateTime<Utc>>,
) -> Result<()> {
    if change == Tally::default() && progressed_at.is_none() {
        return Ok(());
    }
    let mut update = job::Entity::update_many();
    if let Some(at) = progressed_at {
        update = update.col_expr(job::Column::ProgressedAt, Expr::value(at));
    }
    update
        .col_expr(
            job::Column::ObjectsDone,
            Expr::col(job::Column::ObjectsDone).add(change.done),
        )
        .col_expr(
            job::Column::ObjectsFailed,
            Expr::col(job::Column::ObjectsFailed).add(change.failed),
        )
        .col_expr(
            job::Column::BytesDone,
            Expr::col(job::Column::BytesDone).add(change.bytes_done),
        )
        .filter(job::Column::Id.eq(id.to_string()))
        .exec(txn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Recomputes a job's counters from its object records: after a retry forgot the
/// objects its ended attempt left unfinished.
pub(super) async fn refresh_counters(db: &impl ConnectionTrait, id: JobId) -> Result<()> {
    let rows: Vec<(String, i64, Option<i64>)> = job_object::Entity::find()
        .select_only()
        .column(job_object::Column::Status)
        .column_as(job_object::Column::Key.count(), "n")
        .column_as(job_object::Column::Size.sum(), "bytes")
        .filter(job_object::Column::JobId.eq(id.to_string()))
        .group_by(job_object::Column::Status)
        .into_tuple()
        .all(db)
        .await
        .map_err(db_error)?;
    let mut total = Tally::default();
    for (status, count, bytes) in rows {
        total += Tally::of_group(&status, count, bytes.unwrap_or(0));
    }
    job::Entity::update_many()
        .col_expr(job::Column::ObjectsDone, Expr::value(total.done))
        .col_expr(job::Column::ObjectsFailed, Expr::value(total.failed))
        .col_expr(job::Column::BytesDone, Expr::value(total.bytes_done))
        .filter(job::Column::Id.eq(id.to_string()))
        .exec(db)
        .await
        .map_err(db_error)?;
    Ok(())
}
