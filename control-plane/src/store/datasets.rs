//! Dataset rows, their labels and their replicas.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    sea_query::{Expr, Func, LikeExpr, Query},
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::{
    audit::record,
    corrupt, db_error,
    entity::{dataset, dataset_label, replica, sync_schedule},
    is_unique_violation,
    sync::forget_manifest,
    sync_changes::forget_changes,
    to_i64, to_u64, Store,
};
use crate::{
    domain::{
        dataset::{Dataset, DatasetFilter, DatasetPath, Replica, ReplicaRole, ReplicaState},
        ids::{DatasetId, SiteId},
        labels::Labels,
        name::{Name, Ref},
        page::{Page, PageRequest},
    },
    error::{Error, Result},
};

impl Store {
    /// Inserts a dataset with its labels and its primary replica, in one transaction.
    pub async fn insert_dataset(&self, d: &Dataset) -> Result<()> {
        let txn = self.begin_write().await?;
        let taken = dataset::Entity::find()
            .filter(dataset::Column::SiteId.eq(d.site_id.to_string()))
            .filter(dataset::Column::Path.eq(d.path.as_str()))
            .one(&txn)
            .await
            .map_err(db_error)?;
        if let Some(other) = taken {
            return Err(Error::AlreadyExists(format!(
                "dataset {} already has path {} on that site",
                other.name,
                d.path.as_str()
            )));
        }
        let row = dataset::ActiveModel {
            id: Set(d.id.to_string()),
            name: Set(d.name.to_string()),
            last_access_at: Set(d.last_access_at),
            site_id: Set(d.site_id.to_string()),
            path: Set(d.path.as_str().to_owned()),
            created_at: Set(d.created_at),
            ..active(d)
        };
        dataset::Entity::insert(row).exec(&txn).await.map_err(|e| {
            if is_unique_violation(&e) {
                Error::already_exists("dataset", &d.name)
            } else {
                db_error(e)
            }
        })?;
        insert_labels(&txn, d.id, &d.labels).await?;
        let primary = replica::ActiveModel {
            dataset_id: Set(d.id.to_string()),
            site_id: Set(d.site_id.to_string()),
            path: Set(d.path.as_str().to_owned()),
            role: Set(role_str(ReplicaRole::Primary).to_owned()),
            state: Set(state_str(ReplicaState::Ready).to_owned()),
            verified_at: Set(None),
            manifest: Set(None),
            created_at: Set(d.created_at),
            synced_at: Set(None),
        };
        replica::Entity::insert(primary)
            .exec(&txn)
            .await
            .map_err(db_error)?;
        record(
            &txn,
            resource(&d.name),
            format!("created: {}", d.describe()),
        )
        .await?;
        txn.commit().await.map_err(db_error)
    }

    pub async fn find_dataset(&self, r: &Ref<DatasetId>) -> Result<Option<Dataset>> {
        let query = match r {
            Ref::Id(id) => dataset::Entity::find_by_id(id.to_string()),
            Ref::Name(name) => {
                dataset::Entity::find().filter(dataset::Column::Name.eq(name.as_str()))
            }
        };
        let Some(row) = query.one(&self.db).await.map_err(db_error)? else {
            return Ok(None);
        };
        let mut labels = self.labels_of(std::slice::from_ref(&row.id)).await?;
        let labels = labels.remove(&row.id).unwrap_or_default();
        to_domain(row, labels).map(Some)
    }

    /// Datasets matching `filter`, whose site reference the caller resolved to `site`.
    pub async fn list_datasets(
        &self,
        site: Option<SiteId>,
        filter: &DatasetFilter,
        page: &PageRequest,
    ) -> Result<Page<Dataset>> {
        let mut query = dataset::Entity::find().order_by_asc(dataset::Column::Name);
        if let Some(site) = site {
            query = query.filter(dataset::Column::SiteId.eq(site.to_string()));
        }
        if let Some(tier) = filter.tier {
            query = query.filter(dataset::Column::CurrentTier.eq(tier.as_str()));
        }
        if let Some(owner) = &filter.owner {
            query = query.filter(dataset::Column::Owner.eq(owner.as_str()));
        }
        for (key, value) in filter.labels.iter() {
            query = query.filter(
                Expr::col(dataset::Column::Id).in_subquery(
                    Query::select()
                        .column(dataset_label::Column::DatasetId)
                        .from(dataset_label::Entity)
                        .and_where(Expr::col(dataset_label::Column::Key).eq(key.as_str()))
                        .and_where(Expr::col(dataset_label::Column::Value).eq(value.as_str()))
                        .to_owned(),
                ),
            );
        }
        if let Some(text) = &filter.name_contains {
            // LIKE's own wildcards in the text are matched literally.
            let escaped: String = text
                .chars()
                .flat_map(|c| match c {
                    '%' | '_' | '\\' => vec!['\\', c],
                    c => vec![c],
                })
                .collect();
            query = query.filter(
                Expr::expr(Func::lower(Expr::col(dataset::Column::Name)))
                    .like(LikeExpr::new(format!("%{escaped}%")).escape('\\')),
            );
        }
        if let Some(after) = &page.after {
            query = query.filter(dataset::Column::Name.gt(after.as_str()));
        }
        let rows = query
            .limit(page.size + 1)
            .all(&self.db)
            .await
            .map_err(db_error)?;
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let mut labels = self.labels_of(&ids).await?;
        let datasets = rows
            .into_iter()
            .map(|row| {
                let l = labels.remove(&row.id).unwrap_or_default();
                to_domain(row, l)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(datasets, page.size, |d| d.name.to_string()))
    }

    pub async fn replicas(&self, id: DatasetId) -> Result<Vec<Replica>> {
        let rows = replica::Entity::find()
            .filter(replica::Column::DatasetId.eq(id.to_string()))
            .order_by_asc(replica::Column::CreatedAt)
            .all(&self.db)
            .await
            .map_err(db_error)?;
        rows.into_iter().map(replica_to_domain).collect()
    }

    /// Writes a modified dataset (and replaces its labels) if nobody changed it since it
    /// was read at `read_at`, recording `change`. Returns false when it lost that race.
    pub async fn update_dataset(
        &self,
        d: &Dataset,
        read_at: DateTime<Utc>,
        change: &str,
    ) -> Result<bool> {
        let txn = self.begin_write().await?;
        let result = dataset::Entity::update_many()
            .set(active(d))
            .filter(dataset::Column::Id.eq(d.id.to_string()))
            .filter(dataset::Column::UpdatedAt.eq(read_at))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        if result.rows_affected != 1 {
            return Ok(false);
        }
        dataset_label::Entity::delete_many()
            .filter(dataset_label::Column::DatasetId.eq(d.id.to_string()))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        insert_labels(&txn, d.id, &d.labels).await?;
        record(&txn, resource(&d.name), format!("updated: {change}")).await?;
        txn.commit().await.map_err(db_error)?;
        Ok(true)
    }

    /// Deletes a dataset with its labels and replica records (not the bytes).
    pub async fn delete_dataset(&self, d: &Dataset) -> Result<bool> {
        let txn = self.begin_write().await?;
        let id = d.id.to_string();
        dataset_label::Entity::delete_many()
            .filter(dataset_label::Column::DatasetId.eq(id.clone()))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        forget_manifest(&txn, d.id, None).await?;
        forget_changes(&txn, Some(d.id), None).await?;
        sync_schedule::Entity::delete_many()
            .filter(sync_schedule::Column::DatasetId.eq(id.clone()))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        replica::Entity::delete_many()
            .filter(replica::Column::DatasetId.eq(id.clone()))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        let deleted = dataset::Entity::delete_by_id(id)
            .exec(&txn)
            .await
            .map_err(db_error)?;
        if deleted.rows_affected != 1 {
            return Ok(false);
        }
        record(
            &txn,
            resource(&d.name),
            "deleted: its catalogue records (not its bytes)",
        )
        .await?;
        txn.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn labels_of(&self, ids: &[String]) -> Result<BTreeMap<String, Labels>> {
        if ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        let rows = dataset_label::Entity::find()
            .filter(dataset_label::Column::DatasetId.is_in(ids.iter().cloned()))
            .all(&self.db)
            .await
            .map_err(db_error)?;
        let mut maps: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for row in rows {
            maps.entry(row.dataset_id)
                .or_default()
                .insert(row.key, row.value);
        }
        Ok(maps
            .into_iter()
            .map(|(id, m)| (id, Labels::from_trusted(m)))
            .collect())
    }
}

async fn insert_labels(db: &impl ConnectionTrait, id: DatasetId, labels: &Labels) -> Result<()> {
    if labels.is_empty() {
        return Ok(());
    }
    let rows = labels.iter().map(|(k, v)| dataset_label::ActiveModel {
        dataset_id: Set(id.to_string()),
        key: Set(k.clone()),
        value: Set(v.clone()),
    });
    dataset_label::Entity::insert_many(rows)
        .exec(db)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// The columns an update writes: everything but id, name, site, path and created_at.
fn active(d: &Dataset) -> dataset::ActiveModel {
    dataset::ActiveModel {
        current_tier: Set(d.current_tier.as_str().to_owned()),
        latency_slo_ms: Set(d.latency_slo_ms.map(i64::from)),
        size_bytes: Set(to_i64(d.size_bytes)),
        object_count: Set(to_i64(d.object_count)),
        owner: Set(d.owner.clone()),
        // last_access_at is the aggregator's alone (see `access.rs`): a catalogue update
        // must not write back a value it read before newer events arrived.
        updated_at: Set(d.updated_at),
        ..Default::default()
    }
}

fn to_domain(row: dataset::Model, labels: Labels) -> Result<Dataset> {
    let bad = |what: String| corrupt("datasets", &row.id, what);
    Ok(Dataset {
        id: row.id.parse().map_err(|e| bad(format!("id: {e}")))?,
        name: Name::parse("name", &row.name).map_err(|e| bad(e.to_string()))?,
        site_id: row
            .site_id
            .parse()
            .map_err(|e| bad(format!("site_id: {e}")))?,
        path: DatasetPath::parse("path", &row.path).map_err(|e| bad(e.to_string()))?,
        current_tier: row.current_tier.parse().map_err(bad)?,
        latency_slo_ms: row
            .latency_slo_ms
            .map(u32::try_from)
            .transpose()
            .map_err(|e| bad(format!("latency_slo_ms: {e}")))?,
        size_bytes: to_u64(row.size_bytes),
        object_count: to_u64(row.object_count),
        owner: row.owner,
        labels,
        last_access_at: row.last_access_at,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn role_str(role: ReplicaRole) -> &'static str {
    match role {
        ReplicaRole::Primary => "primary",
        ReplicaRole::Secondary => "secondary",
    }
}

fn state_str(state: ReplicaState) -> &'static str {
    match state {
        ReplicaState::Copying => "copying",
        ReplicaState::Ready => "ready",
        ReplicaState::Retiring => "retiring",
    }
}

fn replica_to_domain(row: replica::Model) -> Result<Replica> {
    let bad = |what: String| corrupt("replicas", &row.dataset_id, what);
    Ok(Replica {
        dataset_id: row
            .dataset_id
            .parse()
            .map_err(|e| bad(format!("dataset_id: {e}")))?,
        site_id: row
            .site_id
            .parse()
            .map_err(|e| bad(format!("site_id: {e}")))?,
        role: match row.role.as_str() {
            "primary" => ReplicaRole::Primary,
            "secondary" => ReplicaRole::Secondary,
            other => return Err(bad(format!("role '{other}'"))),
        },
        state: match row.state.as_str() {
            "copying" => ReplicaState::Copying,
            "ready" => ReplicaState::Ready,
            "retiring" => ReplicaState::Retiring,
            other => return Err(bad(format!("state '{other}'"))),
        },
        path: row.path,
        verified_at: row.verified_at,
        manifest: row.manifest,
        synced_at: row.synced_at,
    })
}

/// How the audit log names a dataset.
fn resource(name: &Name) -> String {
    format!("dataset:{name}")
}
