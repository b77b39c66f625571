//! Demand model rows: each dataset's trained forecasts, newest marked `latest`, the last
//! few versions kept so a recommendation's model version can be looked up; and the
//! transfer rates completed migrations reached, which time pre-warming.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    sea_query::Expr, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement,
};

use super::{
    audit::record, corrupt, db_error, entity::dataset, entity::demand_model, entity::job, to_i64,
    to_u64, Store,
};
use crate::{
    domain::{
        forecast::{Errors, Forecast, Model, ModelKind},
        ids::{DatasetId, SiteId},
        page::{Page, PageRequest},
    },
    error::Result,
};

/// Versions kept per dataset; older ones are deleted when new ones are saved.
pub const KEPT_VERSIONS: u32 = 5;
/// Rows written per statement when saving a training run.
const CHUNK: usize = 200;
/// Completed migrations per pair of sites whose rates are averaged.
const RATE_SAMPLES: usize = 10;

/// A completed migration's (source, destination, bytes, started, ended).
type JobSpan = (
    String,
    String,
    i64,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredForecast {
    start: DateTime<Utc>,
    reads: Vec<f64>,
    bytes_per_read: f64,
}

impl Store {
    /// Saves a training run's models: each becomes its dataset's latest, the previous
    /// latest keeps its figures but drops its forecast, and versions beyond
    /// [`KEPT_VERSIONS`] are deleted. A dataset deleted while it was being trained is
    /// skipped. The audit log records the run with the last chunk.
    pub async fn save_models(&self, models: &[Model]) -> Result<()> {
        let chunks = models.chunks(CHUNK).count();
        for (n, chunk) in models.chunks(CHUNK).enumerate() {
            let txn = self.begin_write().await?;
            let wanted: Vec<String> = chunk.iter().map(|m| m.dataset_id.to_string()).collect();
            let ids: Vec<String> = dataset::Entity::find()
                .select_only()
                .column(dataset::Column::Id)
                .filter(dataset::Column::Id.is_in(wanted))
                .into_tuple()
                .all(&txn)
                .await
                .map_err(db_error)?;
            let chunk: Vec<&Model> = chunk
                .iter()
                .filter(|m| ids.contains(&m.dataset_id.to_string()))
                .collect();
            demand_model::Entity::update_many()
                .col_expr(demand_model::Column::Latest, Expr::value(false))
                .col_expr(
                    demand_model::Column::Forecast,
                    Expr::value(Option::<String>::None),
                )
                .filter(demand_model::Column::DatasetId.is_in(ids))
                .exec(&txn)
                .await
                .map_err(db_error)?;
            if n + 1 == chunks {
                let in_use = models.iter().filter(|m| m.in_use).count();
                let resource = match models {
                    [one] => format!("dataset:{}", one.dataset_id),
                    _ => "demand_models".to_owned(),
                };
                record(
                    &txn,
                    resource,
                    format!("trained {} model(s), {in_use} in use", models.len()),
                )
                .await?;
            }
            if chunk.is_empty() {
                txn.commit().await.map_err(db_error)?;
                continue;
            }
            let rows = chunk.iter().map(|m| to_row(m));
            demand_model::Entity::insert_many(rows)
                .on_conflict(
                    sea_orm::sea_query::OnConflict::columns([
                        demand_model::Column::DatasetId,
                        demand_model::Column::Version,
                    ])
                    .update_columns([
                        demand_model::Column::Kind,
                        demand_model::Column::Periods,
                        demand_model::Column::BacktestError,
                        demand_model::Column::SeasonalNaiveError,
                        demand_model::Column::HeuristicError,
                        demand_model::Column::InUse,
                        demand_model::Column::Latest,
                        demand_model::Column::Note,
                        demand_model::Column::HistoryHours,
                        demand_model::Column::TrainedAt,
                        demand_model::Column::Forecast,
                    ])
                    .to_owned(),
                )
                .exec(&txn)
                .await
                .map_err(db_error)?;
            txn.commit().await.map_err(db_error)?;
        }
        let backend = self.db.get_database_backend();
        let prune = format!(
            "DELETE FROM demand_models WHERE latest = {no} AND (SELECT COUNT(*) FROM \
             demand_models newer WHERE newer.dataset_id = demand_models.dataset_id AND \
             newer.trained_at > demand_models.trained_at) >= {KEPT_VERSIONS}",
            no = if backend == sea_orm::DbBackend::Sqlite {
                "0"
            } else {
                "false"
            }
        );
        self.db
            .execute(Statement::from_string(backend, prune))
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// When the most recent model was trained, if any was.
    pub async fn last_training(&self) -> Result<Option<DateTime<Utc>>> {
        let at: Option<Option<DateTime<Utc>>> = demand_model::Entity::find()
            .select_only()
            .column_as(demand_model::Column::TrainedAt.max(), "last")
            .into_tuple()
            .one(&self.db)
            .await
            .map_err(db_error)?;
        Ok(at.flatten())
    }

    /// The dataset's latest model, if it was ever trained.
    pub async fn latest_model(&self, dataset: DatasetId) -> Result<Option<Model>> {
        let row = demand_model::Entity::find()
            .filter(demand_model::Column::DatasetId.eq(dataset.to_string()))
            .filter(demand_model::Column::Latest.eq(true))
            .one(&self.db)
            .await
            .map_err(db_error)?;
        row.map(to_domain).transpose()
    }

    /// One dataset's kept versions, newest first.
    pub async fn model_versions(&self, dataset: DatasetId) -> Result<Vec<Model>> {
        demand_model::Entity::find()
            .filter(demand_model::Column::DatasetId.eq(dataset.to_string()))
            .order_by_desc(demand_model::Column::TrainedAt)
            .all(&self.db)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(to_domain)
            .collect()
    }

    /// Every dataset's latest model, by dataset id.
    pub async fn latest_models(&self, page: &PageRequest) -> Result<Page<Model>> {
        let mut query = demand_model::Entity::find()
            .filter(demand_model::Column::Latest.eq(true))
            .order_by_asc(demand_model::Column::DatasetId);
        if let Some(after) = &page.after {
            query = query.filter(demand_model::Column::DatasetId.gt(after.as_str()));
        }
        let rows = query
            .limit(page.size + 1)
            .all(&self.db)
            .await
            .map_err(db_error)?;
        let items = rows
            .into_iter()
            .map(to_domain)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(items, page.size, |m| {
            m.dataset_id.to_string()
        }))
    }

    /// A dataset's completed migrations, oldest first: when each ended, from where, to
    /// where.
    pub async fn completed_migrations(
        &self,
        dataset: DatasetId,
    ) -> Result<Vec<(DateTime<Utc>, SiteId, SiteId)>> {
        let rows: Vec<(Option<DateTime<Utc>>, String, String)> = job::Entity::find()
            .select_only()
            .column(job::Column::EndedAt)
            .column(job::Column::SourceSiteId)
            .column(job::Column::DestinationSiteId)
            .filter(job::Column::DatasetId.eq(dataset.to_string()))
            .filter(job::Column::State.eq("completed"))
            .order_by_asc(job::Column::EndedAt)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db_error)?;
        rows.into_iter()
            .filter_map(|(ended, from, to)| ended.map(|e| (e, from, to)))
            .map(|(ended, from, to)| {
                let bad = |what: String| corrupt("migration_jobs", &dataset.to_string(), what);
                Ok((
                    ended,
                    from.parse()
                        .map_err(|e| bad(format!("source_site_id: {e}")))?,
                    to.parse()
                        .map_err(|e| bad(format!("destination_site_id: {e}")))?,
                ))
            })
            .collect()
    }

    /// Bytes per second each (source, destination) pair of sites reached over its last
    /// completed migrations: bytes copied over the time from start to end.
    pub async fn transfer_rates(&self) -> Result<HashMap<(SiteId, SiteId), f64>> {
        let rows: Vec<JobSpan> = job::Entity::find()
            .select_only()
            .column(job::Column::SourceSiteId)
            .column(job::Column::DestinationSiteId)
            .column(job::Column::BytesDone)
            .column(job::Column::StartedAt)
            .column(job::Column::EndedAt)
            .filter(job::Column::State.eq("completed"))
            .order_by_desc(job::Column::EndedAt)
            .limit(1000)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db_error)?;
        let mut samples: HashMap<(SiteId, SiteId), (usize, f64, f64)> = HashMap::new();
        for (from, to, bytes, started, ended) in rows {
            let (Ok(from), Ok(to), Some(started), Some(ended)) =
                (from.parse(), to.parse(), started, ended)
            else {
                continue;
            };
            let seconds = (ended - started).as_seconds_f64();
            if bytes <= 0 || seconds <= 0.0 {
                continue;
            }
            let (n, b, s) = samples.entry((from, to)).or_default();
            if *n < RATE_SAMPLES {
                *n += 1;
                *b += to_u64(bytes) as f64;
                *s += seconds;
            }
        }
        Ok(samples
            .into_iter()
            .map(|(pair, (_, bytes, seconds))| (pair, bytes / seconds))
            .collect())
    }
}

fn to_row(m: &Model) -> demand_model::ActiveModel {
    let forecast = m.forecast.as_ref().and_then(|f| {
        serde_json::to_string(&StoredForecast {
            start: f.start,
            // Hundredths of a read are precision enough, and keep the row small.
            reads: f
                .reads
                .iter()
                .map(|r| (r * 100.0).round() / 100.0)
                .collect(),
            bytes_per_read: f.bytes_per_read,
        })
        .ok()
    });
    let periods: Vec<String> = m.periods.iter().map(ToString::to_string).collect();
    demand_model::ActiveModel {
        dataset_id: Set(m.dataset_id.to_string()),
        version: Set(m.version.clone()),
        kind: Set(m.kind.as_str().into()),
        periods: Set(periods.join(",")),
        backtest_error: Set(m.errors.map(|e| e.model)),
        seasonal_naive_error: Set(m.errors.map(|e| e.seasonal_naive)),
        heuristic_error: Set(m.errors.map(|e| e.heuristic)),
        in_use: Set(m.in_use),
        latest: Set(true),
        note: Set(m.note.clone()),
        history_hours: Set(to_i64(u64::from(m.history_hours))),
        trained_at: Set(m.trained_at),
        forecast: Set(forecast),
    }
}

fn to_domain(row: demand_model::Model) -> Result<Model> {
    let key = format!("{}/{}", row.dataset_id, row.version);
    let bad = |what: String| corrupt("demand_models", &key, what);
    let periods = row
        .periods
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().map_err(|e| bad(format!("periods: {e}"))))
        .collect::<Result<Vec<usize>>>()?;
    let errors = match (
        row.backtest_error,
        row.seasonal_naive_error,
        row.heuristic_error,
    ) {
        (Some(model), Some(seasonal_naive), Some(heuristic)) => Some(Errors {
            model,
            seasonal_naive,
            heuristic,
        }),
        _ => None,
    };
    let forecast = row
        .forecast
        .as_deref()
        .map(|json| {
            serde_json::from_str::<StoredForecast>(json)
                .map(|f| Forecast {
                    start: f.start,
                    reads: f.reads,
                    bytes_per_read: f.bytes_per_read,
                })
                .map_err(|e| bad(format!("forecast: {e}")))
        })
        .transpose()?;
    Ok(Model {
        dataset_id: row
            .dataset_id
            .parse()
            .map_err(|e| bad(format!("dataset_id: {e}")))?,
        kind: ModelKind::parse(&row.kind).map_err(bad)?,
        version: row.version,
        periods,
        errors,
        in_use: row.in_use,
        note: row.note,
        history_hours: u32::try_from(row.history_hours).unwrap_or(u32::MAX),
        trained_at: row.trained_at,
        forecast,
    })
}
