//! Hourly access aggregates. A fold and the stream position it reaches commit together,
//! so an event redelivered after a crash is recognised by its sequence and never counted
//! twice.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sea_orm::{
    sea_query::{Expr, OnConflict},
    ActiveValue::Set,
    ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::{
    db_error, entity::access_hourly, entity::dataset, entity::event_cursor, to_i64, to_u64, Store,
};
use crate::{
    domain::{
        access::{Fold, HourlyAccess},
        ids::DatasetId,
    },
    error::Result,
};

impl Store {
    /// The last stream sequence `consumer` folded (0 before the first).
    pub async fn event_cursor(&self, consumer: &str) -> Result<u64> {
        let row = event_cursor::Entity::find_by_id(consumer.to_owned())
            .one(&self.db)
            .await
            .map_err(db_error)?;
        Ok(row.map_or(0, |r| to_u64(r.last_sequence)))
    }

    /// Which of these datasets still exist.
    pub async fn existing_datasets(&self, ids: &[DatasetId]) -> Result<HashSet<DatasetId>> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let rows: Vec<String> = dataset::Entity::find()
            .select_only()
            .column(dataset::Column::Id)
            .filter(dataset::Column::Id.is_in(ids.iter().map(ToString::to_string)))
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db_error)?;
        Ok(rows.iter().filter_map(|id| id.parse().ok()).collect())
    }

    /// Adds a fold to the aggregates, moves datasets' last access forward, and records
    /// `up_to` as `consumer`'s cursor, all in one transaction.
    pub async fn apply_access(&self, consumer: &str, up_to: u64, fold: &Fold) -> Result<()> {
        let txn = self.begin_write().await?;
        for ((dataset_id, hour), h) in &fold.hours {
            let add = |col: access_hourly::Column, name: &str| {
                (
                    col,
                    Expr::col((access_hourly::Entity, col))
                        .add(Expr::cust(format!("\"excluded\".\"{name}\""))),
                )
            };
            let row = access_hourly::ActiveModel {
                dataset_id: Set(dataset_id.to_string()),
                hour: Set(*hour),
                reads: Set(to_i64(h.reads)),
                writes: Set(to_i64(h.writes)),
                bytes_read: Set(to_i64(h.bytes_read)),
                bytes_written: Set(to_i64(h.bytes_written)),
                latency_ms_sum: Set(h.latency_ms_sum),
            };
            access_hourly::Entity::insert(row)
                .on_conflict(
                    OnConflict::columns([
                        access_hourly::Column::DatasetId,
                        access_hourly::Column::Hour,
                    ])
                    .values([
                        add(access_hourly::Column::Reads, "reads"),
                        add(access_hourly::Column::Writes, "writes"),
                        add(access_hourly::Column::BytesRead, "bytes_read"),
                        add(access_hourly::Column::BytesWritten, "bytes_written"),
                        add(access_hourly::Column::LatencyMsSum, "latency_ms_sum"),
                    ])
                    .to_owned(),
                )
                .exec(&txn)
                .await
                .map_err(db_error)?;
        }
        for (dataset_id, at) in &fold.last_access {
            dataset::Entity::update_many()
                .col_expr(dataset::Column::LastAccessAt, Expr::value(*at))
                .filter(dataset::Column::Id.eq(dataset_id.to_string()))
                .filter(
                    sea_orm::Condition::any()
                        .add(dataset::Column::LastAccessAt.is_null())
                        .add(dataset::Column::LastAccessAt.lt(*at)),
                )
                .exec(&txn)
                .await
                .map_err(db_error)?;
        }
        let cursor = event_cursor::ActiveModel {
            consumer: Set(consumer.to_owned()),
            last_sequence: Set(to_i64(up_to)),
        };
        event_cursor::Entity::insert(cursor)
            .on_conflict(
                OnConflict::column(event_cursor::Column::Consumer)
                    .update_column(event_cursor::Column::LastSequence)
                    .to_owned(),
            )
            .exec(&txn)
            .await
            .map_err(db_error)?;
        txn.commit().await.map_err(db_error)
    }

    /// A dataset's hourly aggregates in `[from, to)`, oldest first.
    pub async fn access_stats(
        &self,
        dataset: DatasetId,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Vec<(DateTime<Utc>, HourlyAccess)>> {
        let mut query = access_hourly::Entity::find()
            .filter(access_hourly::Column::DatasetId.eq(dataset.to_string()))
            .order_by_asc(access_hourly::Column::Hour);
        if let Some(from) = from {
            query = query.filter(access_hourly::Column::Hour.gte(from));
        }
        if let Some(to) = to {
            query = query.filter(access_hourly::Column::Hour.lt(to));
        }
        let rows = query.all(&self.db).await.map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    r.hour,
                    HourlyAccess {
                        reads: to_u64(r.reads),
                        writes: to_u64(r.writes),
                        bytes_read: to_u64(r.bytes_read),
                        bytes_written: to_u64(r.bytes_written),
                        latency_ms_sum: r.latency_ms_sum,
                    },
                )
            })
            .collect())
    }
}
