//! What the catalogue's gauges read at each scrape of `/metrics`: counts and the few
//! rows (running jobs, live agents, expiring tokens) whose timestamps alerts compare.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter, QuerySelect,
};

use super::{db_error, entity, Store};
use crate::{
    domain::{
        cost::{monthly_cost, MonthlyDemand},
        ids::SiteId,
        job::JobState,
        recommendation::RecommendationState,
    },
    error::Result,
};

/// A job not yet ended and when anything last happened to it.
#[derive(Clone, Debug)]
pub struct RunningJob {
    pub id: String,
    pub dataset_id: String,
    pub last_change: DateTime<Utc>,
    pub objects_total: u64,
    pub objects_done: u64,
    pub objects_failed: u64,
    pub bytes_total: u64,
    pub bytes_done: u64,
}

/// An agent that has not said it stopped.
#[derive(Clone, Debug)]
pub struct LiveAgent {
    pub id: String,
    pub site_id: String,
    pub last_heartbeat_at: DateTime<Utc>,
}

/// A site with what it holds and what that costs a month in storage.
#[derive(Clone, Debug)]
pub struct SiteGauge {
    pub id: String,
    pub name: String,
    pub tier: String,
    pub backend: String,
    pub stored_bytes: u64,
    pub monthly_storage_cost: f64,
}

/// A token that is neither revoked nor unlimited in time.
#[derive(Clone, Debug)]
pub struct ExpiringToken {
    pub id: String,
    pub role: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Default)]
pub struct CatalogueGauges {
    pub jobs_by_state: Vec<(String, u64)>,
    pub running_jobs: Vec<RunningJob>,
    pub agents: Vec<LiveAgent>,
    pub sites: Vec<SiteGauge>,
    pub outbox_unpublished: u64,
    pub recommendations_pending: u64,
    pub tokens: Vec<ExpiringToken>,
}

impl Store {
    pub async fn gauges(&self) -> Result<CatalogueGauges> {
        use entity::{agent, job, outbox, recommendation, site, token};
        #[derive(FromQueryResult)]
        struct StateCount {
            state: String,
            jobs: i64,
        }
        let jobs_by_state = job::Entity::find()
            .select_only()
            .column(job::Column::State)
            .column_as(job::Column::Id.count(), "jobs")
            .group_by(job::Column::State)
            .into_model::<StateCount>()
            .all(&self.db)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(|r| (r.state, r.jobs.max(0) as u64))
            .collect();
        let running_jobs = job::Entity::find()
            .filter(
                job::Column::State.is_not_in(
                    JobState::ALL
                        .into_iter()
                        .filter(|s| s.is_terminal())
                        .map(JobState::as_str),
                ),
            )
            .all(&self.db)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(|j| RunningJob {
                last_change: j
                    .progressed_at
                    .map_or(j.updated_at, |p| p.max(j.updated_at)),
                objects_total: count(j.objects_total),
                objects_done: count(j.objects_done),
                objects_failed: count(j.objects_failed),
                bytes_total: count(j.bytes_total),
                bytes_done: count(j.bytes_done),
                id: j.id,
                dataset_id: j.dataset_id,
            })
            .collect();
        let agents = agent::Entity::find()
            .filter(agent::Column::Stopped.eq(false))
            .all(&self.db)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(|a| LiveAgent {
                id: a.id,
                site_id: a.site_id,
                last_heartbeat_at: a.last_heartbeat_at,
            })
            .collect();
        let sites = site::Entity::find()
            .all(&self.db)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(super::sites::to_domain)
            .collect::<Result<Vec<_>>>()?;
        let ids: Vec<SiteId> = sites.iter().map(|s| s.id).collect();
        let usage = self.site_usage(&ids).await?;
        let sites = sites
            .into_iter()
            .map(|s| {
                let stored_bytes = usage.get(&s.id).map_or(0, |u| u.bytes);
                SiteGauge {
                    id: s.id.to_string(),
                    name: s.name.to_string(),
                    tier: s.tier.as_str().to_owned(),
                    backend: s.uri.scheme().as_str().to_owned(),
                    stored_bytes,
                    // Storage alone: no demand is priced here.
                    monthly_storage_cost: monthly_cost(
                        &s.prices,
                        stored_bytes,
                        MonthlyDemand::default(),
                    ),
                }
            })
            .collect();
        let outbox_unpublished = outbox::Entity::find()
            .filter(outbox::Column::PublishedAt.is_null())
            .count(&self.db)
            .await
            .map_err(db_error)?;
        let recommendations_pending = recommendation::Entity::find()
            .filter(recommendation::Column::State.eq(RecommendationState::Pending.as_str()))
            .count(&self.db)
            .await
            .map_err(db_error)?;
        let tokens = token::Entity::find()
            .filter(token::Column::RevokedAt.is_null())
            .filter(token::Column::ExpiresAt.is_not_null())
            .all(&self.db)
            .await
            .map_err(db_error)?
            .into_iter()
            .filter_map(|t| {
                Some(ExpiringToken {
                    expires_at: t.expires_at?,
                    id: t.id,
                    role: t.role,
                })
            })
            .collect();
        Ok(CatalogueGauges {
            jobs_by_state,
            running_jobs,
            agents,
            sites,
            outbox_unpublished,
            recommendations_pending,
            tokens,
        })
    }
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
