//! Agent registrations.

use chrono::{DateTime, Utc};
use sea_orm::{
    sea_query::Expr, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
};

use super::{audit::record, corrupt, db_error, entity::agent, Store};
use crate::{
    domain::{
        agent::Agent,
        ids::{AgentId, JobId, SiteId},
    },
    error::Result,
};

impl Store {
    /// Inserts a registration, or refreshes one re-registering under its id, and
    /// records it in the audit log.
    pub async fn upsert_agent(&self, a: &Agent) -> Result<()> {
        let txn = self.begin_write().await?;
        let row = agent::ActiveModel {
            id: Set(a.id.to_string()),
            site_id: Set(a.site_id.to_string()),
            version: Set(a.version.clone()),
            hostname: Set(a.hostname.clone()),
            concurrency: Set(i64::from(a.concurrency)),
            stopped: Set(a.stopped),
            last_heartbeat_at: Set(a.last_heartbeat_at),
            registered_at: Set(a.registered_at),
            jobs: Set(jobs_json(&a.jobs)),
        };
        agent::Entity::insert(row)
            .on_conflict(
                sea_orm::sea_query::OnConflict::column(agent::Column::Id)
                    .update_columns([
                        agent::Column::SiteId,
                        agent::Column::Version,
                        agent::Column::Hostname,
                        agent::Column::Concurrency,
                        agent::Column::Stopped,
                        agent::Column::LastHeartbeatAt,
                        agent::Column::Jobs,
                    ])
                    .to_owned(),
            )
            .exec(&txn)
            .await
            .map_err(db_error)?;
        record(
            &txn,
            format!("agent:{}", a.id),
            format!(
                "registered: site={}, hostname={}, version={}, concurrency={}",
                a.site_id, a.hostname, a.version, a.concurrency
            ),
        )
        .await?;
        txn.commit().await.map_err(db_error)
    }

    pub async fn find_agent(&self, id: AgentId) -> Result<Option<Agent>> {
        let row = agent::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
            .map_err(db_error)?;
        row.map(to_domain).transpose()
    }

    /// Records a heartbeat and the jobs the agent runs copy tasks of.
    pub async fn heartbeat(
        &self,
        id: AgentId,
        at: DateTime<Utc>,
        stopping: bool,
        jobs: &[JobId],
    ) -> Result<()> {
        agent::Entity::update_many()
            .col_expr(agent::Column::LastHeartbeatAt, Expr::value(at))
            .col_expr(agent::Column::Stopped, Expr::value(stopping))
            .col_expr(agent::Column::Jobs, Expr::value(jobs_json(jobs)))
            .filter(agent::Column::Id.eq(id.to_string()))
            .exec(&self.db)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    pub async fn list_agents(&self, site: Option<SiteId>) -> Result<Vec<Agent>> {
        let mut query = agent::Entity::find().order_by_asc(agent::Column::RegisteredAt);
        if let Some(site) = site {
            query = query.filter(agent::Column::SiteId.eq(site.to_string()));
        }
        let rows = query.all(&self.db).await.map_err(db_error)?;
        rows.into_iter().map(to_domain).collect()
    }
}

fn jobs_json(jobs: &[JobId]) -> String {
    let ids: Vec<String> = jobs.iter().map(ToString::to_string).collect();
    serde_json::Value::from(ids).to_string()
}

fn to_domain(row: agent::Model) -> Result<Agent> {
    let bad = |what: String| corrupt("agents", &row.id, what);
    let jobs: Vec<String> =
        serde_json::from_str(&row.jobs).map_err(|e| bad(format!("jobs: {e}")))?;
    let jobs = jobs
        .iter()
        .map(|j| j.parse().map_err(|e| bad(format!("jobs: {j}: {e}"))))
        .collect::<Result<_>>()?;
    Ok(Agent {
        id: row.id.parse().map_err(|e| bad(format!("id: {e}")))?,
        site_id: row
            .site_id
            .parse()
            .map_err(|e| bad(format!("site_id: {e}")))?,
        version: row.version.clone(),
        hostname: row.hostname.clone(),
        concurrency: u32::try_from(row.concurrency).unwrap_or(u32::MAX),
        stopped: row.stopped,
        last_heartbeat_at: row.last_heartbeat_at,
        registered_at: row.registered_at,
        jobs,
    })
}
