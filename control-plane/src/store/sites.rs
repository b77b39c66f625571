//! Site rows.

use chrono::{DateTime, Utc};
use sea_orm::{
    sea_query::Expr, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::{
    audit::record,
    corrupt, db_error,
    entity::{dataset, job, policy, policy_placement, replica, site},
    is_foreign_key_violation, is_unique_violation, json_map, parse_json_map, Store,
};
use crate::{
    domain::{
        ids::SiteId,
        name::{Name, Ref},
        page::{Page, PageRequest},
        site::{Prices, Site},
        tier::Tier,
    },
    error::{Error, Result},
};

/// What an update does to a site's sealed credentials.
pub enum CredentialsUpdate {
    Keep,
    /// Replace them; `None` removes them.
    Replace(Option<Vec<u8>>),
}

impl Store {
    /// Inserts a site and records it in the audit log.
    pub async fn insert_site(&self, s: &Site, sealed: Option<Vec<u8>>) -> Result<()> {
        let txn = self.begin_write().await?;
        let row = site::ActiveModel {
            id: Set(s.id.to_string()),
            name: Set(s.name.to_string()),
            credentials: Set(sealed),
            ..active(s)
        };
        site::Entity::insert(row).exec(&txn).await.map_err(|e| {
            if is_unique_violation(&e) {
                Error::already_exists("site", &s.name)
            } else {
                db_error(e)
            }
        })?;
        record(&txn, resource(s), format!("created: {}", s.describe())).await?;
        txn.commit().await.map_err(db_error)
    }

    pub async fn find_site(&self, r: &Ref<SiteId>) -> Result<Option<Site>> {
        let query = match r {
            Ref::Id(id) => site::Entity::find_by_id(id.to_string()),
            Ref::Name(name) => site::Entity::find().filter(site::Column::Name.eq(name.as_str())),
        };
        query
            .one(&self.db)
            .await
            .map_err(db_error)?
            .map(to_domain)
            .transpose()
    }

    pub async fn list_sites(&self, tier: Option<Tier>, page: &PageRequest) -> Result<Page<Site>> {
        let mut query = site::Entity::find().order_by_asc(site::Column::Name);
        if let Some(tier) = tier {
            query = query.filter(site::Column::Tier.eq(tier.as_str()));
        }
        if let Some(after) = &page.after {
            query = query.filter(site::Column::Name.gt(after.as_str()));
        }
        let rows = query
            .limit(page.size + 1)
            .all(&self.db)
            .await
            .map_err(db_error)?;
        let sites = rows
            .into_iter()
            .map(to_domain)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(sites, page.size, |s| s.name.to_string()))
    }

    /// Writes a modified site if nobody changed it since it was read at `read_at`
    /// (optimistic concurrency), recording `change` in the audit log. Returns false when
    /// it lost that race.
    pub async fn update_site(
        &self,
        s: &Site,
        read_at: DateTime<Utc>,
        credentials: CredentialsUpdate,
        change: &str,
    ) -> Result<bool> {
        let txn = self.begin_write().await?;
        let mut row = active(s);
        if let CredentialsUpdate::Replace(sealed) = credentials {
            row.credentials = Set(sealed);
        }
        let result = site::Entity::update_many()
            .set(row)
            .filter(site::Column::Id.eq(s.id.to_string()))
            .filter(site::Column::UpdatedAt.eq(read_at))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        if result.rows_affected != 1 {
            return Ok(false);
        }
        record(&txn, resource(s), format!("updated: {change}")).await?;
        txn.commit().await.map_err(db_error)?;
        Ok(true)
    }

    /// The sealed credentials of a site, if it has any.
    pub async fn site_credentials(&self, id: SiteId) -> Result<Option<Vec<u8>>> {
        let row = site::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
            .map_err(db_error)?
            .ok_or_else(|| Error::not_found("site", id))?;
        Ok(row.credentials)
    }

    /// Deletes a site that nothing refers to. Datasets, replicas and policy placements
    /// on it make this a `FailedPrecondition` naming them.
    pub async fn delete_site(&self, s: &Site) -> Result<()> {
        let txn = self.begin_write().await?;
        let id = s.id.to_string();
        let datasets: Vec<String> = dataset::Entity::find()
            .select_only()
            .column(dataset::Column::Name)
            .filter(
                Expr::col(dataset::Column::Id).in_subquery(
                    sea_orm::sea_query::Query::select()
                        .column(replica::Column::DatasetId)
                        .from(replica::Entity)
                        .and_where(Expr::col(replica::Column::SiteId).eq(id.clone()))
                        .to_owned(),
                ),
            )
            .order_by_asc(dataset::Column::Name)
            .limit(5)
            .into_tuple()
            .all(&txn)
            .await
            .map_err(db_error)?;
        if !datasets.is_empty() {
            let total = replica::Entity::find()
                .filter(replica::Column::SiteId.eq(id.clone()))
                .count(&txn)
                .await
                .map_err(db_error)?;
            return Err(Error::FailedPrecondition(format!(
                "site {} still holds {total} dataset replica(s) ({}); migrate or delete them first",
                s.name,
                datasets.join(", ")
            )));
        }
        let active_jobs: Vec<String> = job::Entity::find()
            .select_only()
            .column(job::Column::Id)
            .filter(
                sea_orm::Condition::any()
                    .add(job::Column::SourceSiteId.eq(id.clone()))
                    .add(job::Column::DestinationSiteId.eq(id.clone())),
            )
            .filter(job::Column::State.is_not_in(super::jobs::ENDED_STATES))
            .limit(5)
            .into_tuple()
            .all(&txn)
            .await
            .map_err(db_error)?;
        if !active_jobs.is_empty() {
            return Err(Error::FailedPrecondition(format!(
                "site {} is used by unfinished migration job(s) {}",
                s.name,
                active_jobs.join(", ")
            )));
        }
        let policies: Vec<String> = policy::Entity::find()
            .select_only()
            .column(policy::Column::Name)
            .filter(
                Expr::col(policy::Column::Id).in_subquery(
                    sea_orm::sea_query::Query::select()
                        .column(policy_placement::Column::PolicyId)
                        .from(policy_placement::Entity)
                        .and_where(Expr::col(policy_placement::Column::SiteId).eq(id.clone()))
                        .to_owned(),
                ),
            )
            .order_by_asc(policy::Column::Name)
            .into_tuple()
            .all(&txn)
            .await
            .map_err(db_error)?;
        if !policies.is_empty() {
            return Err(Error::FailedPrecondition(format!(
                "site {} is a tier placement of policy {}; change the policy first",
                s.name,
                policies.join(", ")
            )));
        }
        let deleted = site::Entity::delete_by_id(id)
            .exec(&txn)
            .await
            .map_err(|e| {
                if is_foreign_key_violation(&e) {
                    Error::FailedPrecondition(format!("site {} is still in use", s.name))
                } else {
                    db_error(e)
                }
            })?;
        if deleted.rows_affected == 0 {
            return Err(Error::not_found("site", &s.name));
        }
        record(&txn, resource(s), format!("deleted: {}", s.uri)).await?;
        txn.commit().await.map_err(db_error)
    }
}

/// How the audit log names a site.
fn resource(s: &Site) -> String {
    format!("site:{}", s.name)
}

/// The columns every write sets (all but id, name and credentials).
fn active(s: &Site) -> site::ActiveModel {
    site::ActiveModel {
        uri: Set(s.uri.to_string()),
        options: Set(json_map(&s.options)),
        tier: Set(s.tier.as_str().to_owned()),
        default_storage_class: Set(s.default_storage_class.clone()),
        latency_ms: Set(i64::from(s.latency_ms)),
        price_storage_gb_month: Set(s.prices.storage_per_gb_month),
        price_retrieval_gb: Set(s.prices.retrieval_per_gb),
        price_egress_gb: Set(s.prices.egress_per_gb),
        price_per_1000_requests: Set(s.prices.per_1000_requests),
        min_storage_days: Set(i64::from(s.prices.min_storage_days)),
        bandwidth_limit: Set(s.bandwidth_limit.map(super::to_i64)),
        credential_keys: Set(serde_json::to_string(&s.credential_keys).unwrap_or_default()),
        created_at: Set(s.created_at),
        updated_at: Set(s.updated_at),
        ..Default::default()
    }
}

pub(super) fn to_domain(row: site::Model) -> Result<Site> {
    let bad = |what: String| corrupt("sites", &row.id, what);
    Ok(Site {
        id: row.id.parse().map_err(|e| bad(format!("id: {e}")))?,
        name: Name::parse("name", &row.name).map_err(|e| bad(e.to_string()))?,
        uri: ferry_storage::SiteUri::parse(&row.uri).map_err(|e| bad(e.to_string()))?,
        options: parse_json_map("sites", &row.id, &row.options)?,
        tier: row.tier.parse().map_err(bad)?,
        default_storage_class: row.default_storage_class,
        latency_ms: u32::try_from(row.latency_ms).map_err(|e| bad(format!("latency_ms: {e}")))?,
        prices: Prices {
            storage_per_gb_month: row.price_storage_gb_month,
            retrieval_per_gb: row.price_retrieval_gb,
            egress_per_gb: row.price_egress_gb,
            per_1000_requests: row.price_per_1000_requests,
            min_storage_days: u32::try_from(row.min_storage_days)
                .map_err(|e| bad(format!("min_storage_days: {e}")))?,
        },
        bandwidth_limit: row.bandwidth_limit.map(super::to_u64),
        credential_keys: serde_json::from_str(&row.credential_keys)
            .map_err(|e| bad(format!("credential_keys: {e}")))?,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// What a site holds: the bytes of the datasets with a replica there (each replica
/// counts its dataset's size) and how many datasets those are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SiteUsage {
    pub bytes: u64,
    pub datasets: u32,
}

impl Store {
    /// The usage of each of `sites` that holds any replica.
    pub async fn site_usage(
        &self,
        sites: &[SiteId],
    ) -> Result<std::collections::HashMap<SiteId, SiteUsage>> {
        use sea_orm::{FromQueryResult, JoinType};
        #[derive(FromQueryResult)]
        struct Row {
            site_id: String,
            bytes: Option<i64>,
            datasets: i64,
        }
        if sites.is_empty() {
            return Ok(Default::default());
        }
        let ids: Vec<String> = sites.iter().map(ToString::to_string).collect();
        let rows = replica::Entity::find()
            .select_only()
            .column(replica::Column::SiteId)
            // CAST: PostgreSQL sums BIGINTs into NUMERIC.
            .column_as(
                Expr::cust("CAST(SUM(datasets.size_bytes) AS BIGINT)"),
                "bytes",
            )
            .column_as(
                Expr::cust("COUNT(DISTINCT replicas.dataset_id)"),
                "datasets",
            )
            .join_rev(
                JoinType::InnerJoin,
                dataset::Entity::belongs_to(replica::Entity)
                    .from(dataset::Column::Id)
                    .to(replica::Column::DatasetId)
                    .into(),
            )
            .filter(replica::Column::SiteId.is_in(ids))
            .group_by(replica::Column::SiteId)
            .into_model::<Row>()
            .all(&self.db)
            .await
            .map_err(db_error)?;
        rows.into_iter()
            .map(|r| {
                let id = r
                    .site_id
                    .parse()
                    .map_err(|_| corrupt("replicas", &r.site_id, "site_id is not a site id"))?;
                let usage = SiteUsage {
                    bytes: r.bytes.unwrap_or(0).max(0) as u64,
                    datasets: u32::try_from(r.datasets).unwrap_or(u32::MAX),
                };
                Ok((id, usage))
            })
            .collect()
    }
}
