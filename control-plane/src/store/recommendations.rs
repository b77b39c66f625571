//! Recommendation rows: the audit trail of placement advice.

use sea_orm::{
    sea_query::Expr, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::{audit::record, corrupt, db_error, entity::job, entity::recommendation, Store};
use crate::{
    domain::{
        ids::{DatasetId, JobId, RecommendationId},
        page::{Page, PageRequest},
        placement::CostEstimate,
        recommendation::{Recommendation, RecommendationState},
    },
    error::Result,
};

impl Store {
    /// Records a recommendation; earlier pending ones of the dataset become superseded.
    pub async fn insert_recommendation(&self, r: &Recommendation) -> Result<()> {
        let txn = self.begin_write().await?;
        recommendation::Entity::update_many()
            .col_expr(
                recommendation::Column::State,
                Expr::value(RecommendationState::Superseded.as_str()),
            )
            .filter(recommendation::Column::DatasetId.eq(r.dataset_id.to_string()))
            .filter(recommendation::Column::State.eq(RecommendationState::Pending.as_str()))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        let row = recommendation::ActiveModel {
            id: Set(r.id.to_string()),
            dataset_id: Set(r.dataset_id.to_string()),
            current_tier: Set(r.current_tier.as_str().into()),
            current_site_id: Set(r.current_site_id.to_string()),
            recommended_tier: Set(r.recommended_tier.as_str().into()),
            recommended_site_id: Set(r.recommended_site_id.to_string()),
            reasons: Set(serde_json::to_string(&r.reasons).unwrap_or_else(|_| "[]".into())),
            monthly_cost_now: Set(r.cost.monthly_now),
            monthly_cost_after: Set(r.cost.monthly_after),
            move_cost: Set(r.cost.move_cost),
            payback_days: Set(r.cost.payback_days),
            model_version: Set(r.model_version.clone()),
            state: Set(r.state.as_str().into()),
            job_id: Set(r.job_id.map(|j| j.to_string())),
            created_at: Set(r.created_at),
        };
        recommendation::Entity::insert(row)
            .exec(&txn)
            .await
            .map_err(db_error)?;
        txn.commit().await.map_err(db_error)
    }

    pub async fn find_recommendation(
        &self,
        id: RecommendationId,
    ) -> Result<Option<Recommendation>> {
        let row = recommendation::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
            .map_err(db_error)?;
        row.map(to_domain).transpose()
    }

    /// A dataset's recommendations (or everyone's), newest first.
    pub async fn list_recommendations(
        &self,
        dataset: Option<DatasetId>,
        page: &PageRequest,
    ) -> Result<Page<Recommendation>> {
        let mut query = recommendation::Entity::find().order_by_desc(recommendation::Column::Id);
        if let Some(d) = dataset {
            query = query.filter(recommendation::Column::DatasetId.eq(d.to_string()));
        }
        if let Some(after) = &page.after {
            query = query.filter(recommendation::Column::Id.lt(after.as_str()));
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
        Ok(Page::from_rows(items, page.size, |r| r.id.to_string()))
    }

    /// Moves a recommendation from `from` to `to`; false when it was not in `from`.
    pub async fn set_recommendation_state(
        &self,
        id: RecommendationId,
        from: RecommendationState,
        to: RecommendationState,
        job: Option<JobId>,
    ) -> Result<bool> {
        let txn = self.begin_write().await?;
        let result = recommendation::Entity::update_many()
            .col_expr(recommendation::Column::State, Expr::value(to.as_str()))
            .col_expr(
                recommendation::Column::JobId,
                Expr::value(job.map(|j| j.to_string())),
            )
            .filter(recommendation::Column::Id.eq(id.to_string()))
            .filter(recommendation::Column::State.eq(from.as_str()))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        if result.rows_affected != 1 {
            return Ok(false);
        }
        let job = job.map(|j| format!(", job {j}")).unwrap_or_default();
        record(
            &txn,
            format!("recommendation:{id}"),
            format!("{} (was {}){job}", to.as_str(), from.as_str()),
        )
        .await?;
        txn.commit().await.map_err(db_error)?;
        Ok(true)
    }

    /// When the dataset's last migration completed, if any.
    pub async fn last_arrival(
        &self,
        dataset: DatasetId,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        let row: Option<Option<chrono::DateTime<chrono::Utc>>> = job::Entity::find()
            .select_only()
            .column(job::Column::EndedAt)
            .filter(job::Column::DatasetId.eq(dataset.to_string()))
            .filter(job::Column::State.eq("completed"))
            .order_by_desc(job::Column::EndedAt)
            .into_tuple()
            .one(&self.db)
            .await
            .map_err(db_error)?;
        Ok(row.flatten())
    }
}

fn to_domain(row: recommendation::Model) -> Result<Recommendation> {
    let bad = |what: String| corrupt("recommendations", &row.id, what);
    Ok(Recommendation {
        id: row.id.parse().map_err(|e| bad(format!("id: {e}")))?,
        dataset_id: row
            .dataset_id
            .parse()
            .map_err(|e| bad(format!("dataset_id: {e}")))?,
        current_tier: row.current_tier.parse().map_err(bad)?,
        current_site_id: row
            .current_site_id
            .parse()
            .map_err(|e| bad(format!("current_site_id: {e}")))?,
        recommended_tier: row.recommended_tier.parse().map_err(bad)?,
        recommended_site_id: row
            .recommended_site_id
            .parse()
            .map_err(|e| bad(format!("recommended_site_id: {e}")))?,
        reasons: serde_json::from_str(&row.reasons).map_err(|e| bad(format!("reasons: {e}")))?,
        cost: CostEstimate {
            monthly_now: row.monthly_cost_now,
            monthly_after: row.monthly_cost_after,
            move_cost: row.move_cost,
            payback_days: row.payback_days,
        },
        model_version: row.model_version.clone(),
        state: row.state.parse().map_err(bad)?,
        job_id: row
            .job_id
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e| bad(format!("job_id: {e}")))?,
        created_at: row.created_at,
    })
}
