//! A policy's cron: each due time claimed once, by a conditional update of its next
//! due time (two control planes checking the same time record it once), whether a
//! migration the policy started is unfinished, and why its last run failed.

use chrono::{DateTime, Utc};
use sea_orm::{sea_query::Expr, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use super::{
    db_error,
    entity::{job, policy},
    jobs::ENDED_STATES,
    Store,
};
use crate::{
    domain::{ids::PolicyId, policy::DueRun},
    error::Result,
};

impl Store {
    /// Moves the policy's due time `due` to `next`, counting it as run or skipped,
    /// unless another check claimed it first (or the policy was rescheduled
    /// meanwhile). Returns whether this check did.
    pub async fn claim_policy_due(
        &self,
        id: PolicyId,
        due: DateTime<Utc>,
        next: Option<DateTime<Utc>>,
        run: DueRun,
    ) -> Result<bool> {
        let counter = match run {
            DueRun::Run => policy::Column::Runs,
            DueRun::Skip => policy::Column::Skipped,
        };
        let claimed = policy::Entity::update_many()
            .col_expr(policy::Column::NextRunAt, Expr::value(next))
            .col_expr(counter, Expr::col(counter).add(1))
            .filter(policy::Column::Id.eq(id.to_string()))
            .filter(policy::Column::NextRunAt.eq(due))
            .exec(&self.db)
            .await
            .map_err(db_error)?;
        Ok(claimed.rows_affected == 1)
    }

    /// Records why the policy's last run failed to start its migrations, or that it
    /// did not fail.
    pub async fn set_policy_error(&self, id: PolicyId, error: Option<&str>) -> Result<()> {
        policy::Entity::update_many()
            .col_expr(
                policy::Column::LastError,
                Expr::value(error.map(str::to_owned)),
            )
            .filter(policy::Column::Id.eq(id.to_string()))
            .exec(&self.db)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// Whether a migration the policy's autopilot started has yet to end.
    pub async fn policy_has_unfinished_jobs(&self, id: PolicyId) -> Result<bool> {
        let unfinished = job::Entity::find()
            .filter(job::Column::PolicyId.eq(id.to_string()))
            .filter(job::Column::State.is_not_in(ENDED_STATES))
            .count(&self.db)
            .await
            .map_err(db_error)?;
        Ok(unfinished > 0)
    }
}
