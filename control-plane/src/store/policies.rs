//! Policy rows and their tier placements.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::{
    audit::record,
    corrupt, db_error,
    entity::{policy, policy_placement},
    is_foreign_key_violation, is_unique_violation, json_map, parse_json_map, to_i64, to_u64, Store,
};
use crate::{
    domain::{
        ids::{PolicyId, SiteId},
        labels::Labels,
        name::{Name, Ref},
        page::{Page, PageRequest},
        policy::{Policy, PolicyRuns, PolicySpec, ScheduleWindow},
        schedule::When,
        tier::Tier,
    },
    error::{Error, Result},
};

impl Store {
    pub async fn insert_policy(&self, p: &Policy) -> Result<()> {
        let txn = self.begin_write().await?;
        let row = policy::ActiveModel {
            id: Set(p.id.to_string()),
            name: Set(p.name.to_string()),
            created_at: Set(p.created_at),
            next_run_at: Set(p.runs.next_run_at),
            runs: Set(0),
            skipped: Set(0),
            last_error: Set(None),
            ..active(p)
        };
        policy::Entity::insert(row).exec(&txn).await.map_err(|e| {
            if is_unique_violation(&e) {
                Error::already_exists("policy", &p.name)
            } else {
                db_error(e)
            }
        })?;
        insert_placements(&txn, p).await?;
        record(
            &txn,
            resource(&p.name),
            format!("created: {}", p.describe()),
        )
        .await?;
        txn.commit().await.map_err(db_error)
    }

    pub async fn find_policy(&self, r: &Ref<PolicyId>) -> Result<Option<Policy>> {
        let query = match r {
            Ref::Id(id) => policy::Entity::find_by_id(id.to_string()),
            Ref::Name(name) => {
                policy::Entity::find().filter(policy::Column::Name.eq(name.as_str()))
            }
        };
        let Some(row) = query.one(&self.db).await.map_err(db_error)? else {
            return Ok(None);
        };
        let mut placements = self.placements_of(std::slice::from_ref(&row.id)).await?;
        let placements = placements.remove(&row.id).unwrap_or_default();
        to_domain(row, placements).map(Some)
    }

    /// Policies in name order after `page.after`, up to `page.size + 1` of them.
    pub async fn list_policies(&self, page: &PageRequest) -> Result<Vec<Policy>> {
        let mut query = policy::Entity::find().order_by_asc(policy::Column::Name);
        if let Some(after) = &page.after {
            query = query.filter(policy::Column::Name.gt(after.as_str()));
        }
        let rows = query
            .limit(page.size + 1)
            .all(&self.db)
            .await
            .map_err(db_error)?;
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let mut placements = self.placements_of(&ids).await?;
        rows.into_iter()
            .map(|row| {
                let p = placements.remove(&row.id).unwrap_or_default();
                to_domain(row, p)
            })
            .collect()
    }

    /// Every policy; there are few, written by hand.
    pub async fn all_policies(&self) -> Result<Vec<Policy>> {
        let rows = policy::Entity::find()
            .order_by_asc(policy::Column::Name)
            .all(&self.db)
            .await
            .map_err(db_error)?;
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let mut placements = self.placements_of(&ids).await?;
        rows.into_iter()
            .map(|row| {
                let p = placements.remove(&row.id).unwrap_or_default();
                to_domain(row, p)
            })
            .collect()
    }

    /// A page of policies in name order.
    pub async fn page_policies(&self, page: &PageRequest) -> Result<Page<Policy>> {
        let rows = self.list_policies(page).await?;
        Ok(Page::from_rows(rows, page.size, |p| p.name.to_string()))
    }

    /// Writes a modified policy (and replaces its placements) if nobody changed it since
    /// it was read at `read_at`, recording `change`; with `rescheduled` (its cron or
    /// automatic migrations changed), also its next due time. Returns false when it lost
    /// that race.
    pub async fn update_policy(
        &self,
        p: &Policy,
        read_at: DateTime<Utc>,
        change: &str,
        rescheduled: bool,
    ) -> Result<bool> {
        let txn = self.begin_write().await?;
        let mut row = active(p);
        if rescheduled {
            // Otherwise left alone: the autopilot moves it without touching updated_at.
            row.next_run_at = Set(p.runs.next_run_at);
        }
        let result = policy::Entity::update_many()
            .set(row)
            .filter(policy::Column::Id.eq(p.id.to_string()))
            .filter(policy::Column::UpdatedAt.eq(read_at))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        if result.rows_affected != 1 {
            return Ok(false);
        }
        policy_placement::Entity::delete_many()
            .filter(policy_placement::Column::PolicyId.eq(p.id.to_string()))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        insert_placements(&txn, p).await?;
        record(&txn, resource(&p.name), format!("updated: {change}")).await?;
        txn.commit().await.map_err(db_error)?;
        Ok(true)
    }

    pub async fn delete_policy(&self, p: &Policy) -> Result<bool> {
        let txn = self.begin_write().await?;
        policy_placement::Entity::delete_many()
            .filter(policy_placement::Column::PolicyId.eq(p.id.to_string()))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        let deleted = policy::Entity::delete_by_id(p.id.to_string())
            .exec(&txn)
            .await
            .map_err(db_error)?;
        if deleted.rows_affected != 1 {
            return Ok(false);
        }
        record(&txn, resource(&p.name), "deleted").await?;
        txn.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn placements_of(
        &self,
        ids: &[String],
    ) -> Result<BTreeMap<String, Vec<policy_placement::Model>>> {
        if ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        let rows = policy_placement::Entity::find()
            .filter(policy_placement::Column::PolicyId.is_in(ids.iter().cloned()))
            .all(&self.db)
            .await
            .map_err(db_error)?;
        let mut by_policy: BTreeMap<String, Vec<policy_placement::Model>> = BTreeMap::new();
        for row in rows {
            by_policy
                .entry(row.policy_id.clone())
                .or_default()
                .push(row);
        }
        Ok(by_policy)
    }
}

async fn insert_placements(db: &impl ConnectionTrait, p: &Policy) -> Result<()> {
    if p.spec.placements.is_empty() {
        return Ok(());
    }
    let rows = p
        .spec
        .placements
        .iter()
        .map(|(tier, site)| policy_placement::ActiveModel {
            policy_id: Set(p.id.to_string()),
            tier: Set(tier.as_str().to_owned()),
            site_id: Set(site.to_string()),
        });
    policy_placement::Entity::insert_many(rows)
        .exec(db)
        .await
        .map_err(|e| {
            if is_foreign_key_violation(&e) {
                Error::FailedPrecondition(format!(
                    "a site placed by policy {} was deleted meanwhile",
                    p.name
                ))
            } else {
                db_error(e)
            }
        })?;
    Ok(())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn active(p: &Policy) -> policy::ActiveModel {
    let s = &p.spec;
    policy::ActiveModel {
        description: Set(s.description.clone()),
        selector: Set(json_map(s.selector.as_map())),
        priority: Set(s.priority),
        hot_after_ms: Set(millis(s.hot_after)),
        warm_after_ms: Set(millis(s.warm_after)),
        latency_slo_ms: Set(s.latency_slo_ms.map(i64::from)),
        monthly_cost_target: Set(s.monthly_cost_target),
        min_residency_ms: Set(millis(s.min_residency)),
        auto_migrate: Set(s.auto_migrate),
        retire_source: Set(s.retire_source),
        verify_mode: Set(s.verify_mode.as_str().to_owned()),
        window_start: Set(s.schedule_window.map(|w| i32::from(w.start_minute))),
        window_end: Set(s.schedule_window.map(|w| i32::from(w.end_minute))),
        bandwidth_limit: Set(s.bandwidth_limit.map(to_i64)),
        max_concurrent_migrations: Set(s.max_concurrent_migrations.map(i64::from)),
        cron: Set(s.cron.as_ref().map(|c| c.pattern().to_owned())),
        time_zone: Set(s.cron.as_ref().map(|c| c.time_zone().to_owned())),
        updated_at: Set(p.updated_at),
        ..Default::default()
    }
}

fn to_domain(row: policy::Model, placements: Vec<policy_placement::Model>) -> Result<Policy> {
    let bad = |what: String| corrupt("policies", &row.id, what);
    let duration = |ms: i64, what: &str| {
        u64::try_from(ms)
            .map(Duration::from_millis)
            .map_err(|_| bad(format!("{what}: {ms}")))
    };
    let minute = |m: i32| u16::try_from(m).map_err(|_| bad(format!("window minute {m}")));
    let schedule_window = match (row.window_start, row.window_end) {
        (Some(start), Some(end)) => Some(ScheduleWindow {
            start_minute: minute(start)?,
            end_minute: minute(end)?,
        }),
        _ => None,
    };
    let placements = placements
        .into_iter()
        .map(|p| {
            let tier: Tier = p.tier.parse().map_err(bad)?;
            let site: SiteId = p
                .site_id
                .parse()
                .map_err(|e| bad(format!("placement: {e}")))?;
            Ok((tier, site))
        })
        .collect::<Result<BTreeMap<_, _>>>()?;
    let spec = PolicySpec {
        description: row.description.clone(),
        selector: Labels::from_trusted(parse_json_map("policies", &row.id, &row.selector)?),
        priority: row.priority,
        hot_after: duration(row.hot_after_ms, "hot_after_ms")?,
        warm_after: duration(row.warm_after_ms, "warm_after_ms")?,
        placements,
        latency_slo_ms: row
            .latency_slo_ms
            .map(u32::try_from)
            .transpose()
            .map_err(|e| bad(format!("latency_slo_ms: {e}")))?,
        monthly_cost_target: row.monthly_cost_target,
        min_residency: duration(row.min_residency_ms, "min_residency_ms")?,
        auto_migrate: row.auto_migrate,
        retire_source: row.retire_source,
        verify_mode: row.verify_mode.parse().map_err(bad)?,
        schedule_window,
        bandwidth_limit: row.bandwidth_limit.map(|b| u64::try_from(b).unwrap_or(0)),
        max_concurrent_migrations: row
            .max_concurrent_migrations
            .map(u32::try_from)
            .transpose()
            .map_err(|e| bad(format!("max_concurrent_migrations: {e}")))?,
        cron: row
            .cron
            .as_deref()
            .map(|cron| When::parse(cron, row.time_zone.as_deref().unwrap_or_default()))
            .transpose()
            .map_err(|e| bad(format!("cron: {e}")))?,
    };
    Ok(Policy {
        id: row.id.parse().map_err(|e| bad(format!("id: {e}")))?,
        name: Name::parse("name", &row.name).map_err(|e| bad(e.to_string()))?,
        spec,
        created_at: row.created_at,
        updated_at: row.updated_at,
        runs: PolicyRuns {
            next_run_at: row.next_run_at,
            runs: to_u64(row.runs),
            skipped: to_u64(row.skipped),
            last_error: row.last_error,
        },
    })
}

/// How the audit log names a policy.
fn resource(name: &Name) -> String {
    format!("policy:{name}")
}
