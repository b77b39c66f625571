//! Migration job rows, the switch and retry transactions. Their per-object records
//! are in `job_objects`.

use chrono::{DateTime, Utc};
use sea_orm::{
    sea_query::{Expr, OnConflict},
    ActiveValue::Set,
    ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::{
    audit::record,
    corrupt, db_error,
    entity::{dataset, job, replica},
    is_unique_violation,
    outbox::{insert_outbox, OutboxMessage},
    sync::forget_manifest,
    to_i64, to_u64, Store,
};
use crate::{
    domain::{
        ids::{AgentId, DatasetId, JobId, PolicyId, ScheduleId, SiteId},
        job::{Counters, Job, JobState},
        page::{Page, PageRequest},
        sync::{JobKind, SyncFigures, SyncRule},
        tier::Tier,
    },
    error::{Error, Result},
};

/// What planning a job with an idempotency key produced.
pub enum Planned {
    Created(Job),
    /// A job with this key existed already.
    Existing(Job),
}

/// The states of a job that has ended, as stored.
pub(super) const ENDED_STATES: [&str; 3] = ["completed", "failed", "cancelled"];

/// Filters of a job listing.
#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    pub dataset: Option<DatasetId>,
    pub state: Option<JobState>,
    /// Jobs whose source or destination is this site.
    pub site: Option<SiteId>,
    /// The runs of this sync schedule.
    pub schedule: Option<ScheduleId>,
    /// The migrations this policy's autopilot started.
    pub policy: Option<PolicyId>,
}

/// The switch: the destination becomes the dataset's primary replica.
pub struct Switch<'a> {
    pub job: &'a Job,
    pub job_read_at: DateTime<Utc>,
    pub destination_tier: Tier,
    pub at: DateTime<Utc>,
    pub outbox: &'a [OutboxMessage],
}

impl Store {
    /// Inserts a job and its dispatch messages in one transaction. A job with the same
    /// idempotency key wins: then nothing is written and that job is returned.
    pub async fn insert_job(&self, j: &Job, outbox: &[OutboxMessage]) -> Result<Planned> {
        let txn = self.begin_write().await?;
        let row = job::ActiveModel {
            id: Set(j.id.to_string()),
            idempotency_key: Set(j.idempotency_key.clone()),
            dataset_id: Set(j.dataset_id.to_string()),
            source_site_id: Set(j.source_site_id.to_string()),
            source_path: Set(j.source_path.clone()),
            destination_site_id: Set(j.destination_site_id.to_string()),
            destination_path: Set(j.destination_path.clone()),
            executing_site_id: Set(j.executing_site_id.to_string()),
            storage_class: Set(j.storage_class.clone()),
            verify_mode: Set(j.verify_mode.as_str().to_owned()),
            retire_source: Set(j.retire_source),
            filter: Set(serde_json::to_string(&j.filter).unwrap_or_else(|_| "{}".into())),
            created_at: Set(j.created_at),
            objects_total: Set(0),
            objects_done: Set(0),
            objects_failed: Set(0),
            bytes_total: Set(0),
            bytes_done: Set(0),
            kind: Set(j.kind.as_str().to_owned()),
            deletion: Set(j.kind.sync().map(|r| r.deletion.as_str().to_owned())),
            max_delete: Set(j.kind.sync().and_then(|r| r.max_delete).map(to_i64)),
            objects_unchanged: Set(0),
            manifest_unchanged: Set(0),
            manifest_unchanged_bytes: Set(0),
            extras_found: Set(0),
            extras_deleted: Set(0),
            final_pass: Set(false),
            source_changes: Set(0),
            schedule_id: Set(j.schedule_id.map(|s| s.to_string())),
            policy_id: Set(j.policy_id.map(|p| p.to_string())),
            sync_keys: Set(j
                .sync_keys
                .as_ref()
                .map(|keys| serde_json::to_string(keys).unwrap_or_else(|_| "[]".into()))),
            ..active(j)
        };
        match job::Entity::insert(row).exec(&txn).await {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                // PostgreSQL aborts the transaction on the violation: read outside it.
                drop(txn);
                if let Some(existing) = self.find_job_by_key(&j.idempotency_key).await? {
                    return Ok(Planned::Existing(existing));
                }
                return Err(match self.has_active_job(j.dataset_id).await? {
                    Some(active) => active_job_error(&active),
                    None => Error::Conflict(format!(
                        "a job for dataset {} is being planned concurrently; retry",
                        j.dataset_id
                    )),
                });
            }
            Err(e) => return Err(db_error(e)),
        }
        insert_outbox(&txn, outbox).await?;
        record(&txn, resource(j), format!("planned: {}", j.describe())).await?;
        txn.commit().await.map_err(db_error)?;
        Ok(Planned::Created(j.clone()))
    }

    pub async fn find_job(&self, id: JobId) -> Result<Option<Job>> {
        let row = job::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
            .map_err(db_error)?;
        row.map(to_domain).transpose()
    }

    pub async fn find_job_by_key(&self, key: &str) -> Result<Option<Job>> {
        let row = job::Entity::find()
            .filter(job::Column::IdempotencyKey.eq(key))
            .one(&self.db)
            .await
            .map_err(db_error)?;
        row.map(to_domain).transpose()
    }

    /// Jobs newest first.
    pub async fn list_jobs(&self, filter: &JobFilter, page: &PageRequest) -> Result<Page<Job>> {
        let mut query = job::Entity::find().order_by_desc(job::Column::Id);
        if let Some(dataset) = filter.dataset {
            query = query.filter(job::Column::DatasetId.eq(dataset.to_string()));
        }
        if let Some(state) = filter.state {
            query = query.filter(job::Column::State.eq(state.as_str()));
        }
        if let Some(schedule) = filter.schedule {
            query = query.filter(job::Column::ScheduleId.eq(schedule.to_string()));
        }
        if let Some(policy) = filter.policy {
            query = query.filter(job::Column::PolicyId.eq(policy.to_string()));
        }
        if let Some(site) = filter.site {
            query = query.filter(
                sea_orm::Condition::any()
                    .add(job::Column::SourceSiteId.eq(site.to_string()))
                    .add(job::Column::DestinationSiteId.eq(site.to_string())),
            );
        }
        if let Some(after) = &page.after {
            query = query.filter(job::Column::Id.lt(after.as_str()));
        }
        let rows = query
            .limit(page.size + 1)
            .all(&self.db)
            .await
            .map_err(db_error)?;
        let jobs = rows
            .into_iter()
            .map(to_domain)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(jobs, page.size, |j| j.id.to_string()))
    }

    /// Jobs in `state` neither changed nor reported on by an agent since `before`,
    /// oldest first.
    pub async fn stale_jobs(
        &self,
        state: JobState,
        before: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<Job>> {
        let rows = job::Entity::find()
            .filter(job::Column::State.eq(state.as_str()))
            .filter(job::Column::UpdatedAt.lt(before))
            .filter(
                sea_orm::Condition::any()
                    .add(job::Column::ProgressedAt.is_null())
                    .add(job::Column::ProgressedAt.lt(before)),
            )
            .order_by_asc(job::Column::UpdatedAt)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(db_error)?;
        rows.into_iter().map(to_domain).collect()
    }

    /// Whether the dataset has a job that has not ended.
    pub async fn has_active_job(&self, dataset: DatasetId) -> Result<Option<Job>> {
        let row = job::Entity::find()
            .filter(job::Column::DatasetId.eq(dataset.to_string()))
            .filter(job::Column::State.is_not_in(ENDED_STATES))
            .one(&self.db)
            .await
            .map_err(db_error)?;
        row.map(to_domain).transpose()
    }

    /// Writes a job's state (not its counters) and its outbox messages, if nobody changed
    /// the job since it was read at `read_at`. Returns false when it lost that race.
    pub async fn update_job(
        &self,
        j: &Job,
        read_at: DateTime<Utc>,
        outbox: &[OutboxMessage],
    ) -> Result<bool> {
        let txn = self.begin_write().await?;
        if !update_job_row(&txn, j, read_at).await? {
            return Ok(false);
        }
        insert_outbox(&txn, outbox).await?;
        record(&txn, resource(j), format!("now {}", j.describe_state())).await?;
        txn.commit().await.map_err(db_error)?;
        Ok(true)
    }

    /// Records the totals the source listing found.
    pub async fn set_job_totals(&self, id: JobId, objects: u64, bytes: u64) -> Result<()> {
        job::Entity::update_many()
            .col_expr(job::Column::ObjectsTotal, Expr::value(to_i64(objects)))
            .col_expr(job::Column::BytesTotal, Expr::value(to_i64(bytes)))
            .filter(job::Column::Id.eq(id.to_string()))
            .exec(&self.db)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    pub async fn job_counters(&self, id: JobId) -> Result<Counters> {
        let row = job::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
            .map_err(db_error)?
            .ok_or_else(|| Error::not_found("job", id))?;
        Ok(counters(&row))
    }

    /// Sets which agent holds a job's current attempt.
    pub async fn set_job_holder(&self, id: JobId, attempt: u32, agent: AgentId) -> Result<()> {
        job::Entity::update_many()
            .col_expr(job::Column::HolderAgentId, Expr::value(agent.to_string()))
            .filter(job::Column::Id.eq(id.to_string()))
            .filter(job::Column::Attempt.eq(i64::from(attempt)))
            .exec(&self.db)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    pub async fn job_holder(&self, id: JobId) -> Result<Option<AgentId>> {
        let row = job::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
            .map_err(db_error)?
            .ok_or_else(|| Error::not_found("job", id))?;
        row.holder_agent_id
            .map(|a| {
                a.parse()
                    .map_err(|e| corrupt("migration_jobs", &row.id, format!("holder: {e}")))
            })
            .transpose()
    }

    /// The switch, in one transaction: the job's new state, the destination replica as
    /// primary (the source demoted to secondary), the dataset's site, path and tier, and
    /// any follow-up messages. False when the job or dataset changed meanwhile.
    pub async fn commit_switch(&self, s: Switch<'_>) -> Result<bool> {
        let j = s.job;
        let txn = self.begin_write().await?;
        if !update_job_row(&txn, j, s.job_read_at).await? {
            return Ok(false);
        }
        let moved = dataset::Entity::update_many()
            .col_expr(
                dataset::Column::SiteId,
                Expr::value(j.destination_site_id.to_string()),
            )
            .col_expr(
                dataset::Column::Path,
                Expr::value(j.destination_path.clone()),
            )
            .col_expr(
                dataset::Column::CurrentTier,
                Expr::value(s.destination_tier.as_str()),
            )
            .col_expr(dataset::Column::UpdatedAt, Expr::value(s.at))
            .filter(dataset::Column::Id.eq(j.dataset_id.to_string()))
            .filter(dataset::Column::SiteId.eq(j.source_site_id.to_string()))
            .filter(dataset::Column::Path.eq(j.source_path.clone()))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        if moved.rows_affected != 1 {
            return Err(Error::FailedPrecondition(format!(
                "dataset {} no longer lives at the job's source; refusing to switch",
                j.dataset_id
            )));
        }
        replica::Entity::update_many()
            .col_expr(replica::Column::Role, Expr::value("secondary"))
            .col_expr(
                replica::Column::State,
                Expr::value(if j.retire_source { "retiring" } else { "ready" }),
            )
            .filter(replica::Column::DatasetId.eq(j.dataset_id.to_string()))
            .filter(replica::Column::Role.eq("primary"))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        let destination = replica::ActiveModel {
            dataset_id: Set(j.dataset_id.to_string()),
            site_id: Set(j.destination_site_id.to_string()),
            path: Set(j.destination_path.clone()),
            role: Set("primary".into()),
            state: Set("ready".into()),
            verified_at: Set(Some(s.at)),
            manifest: Set(Some(format!("job:{}", j.id))),
            created_at: Set(s.at),
            synced_at: Set(None),
        };
        // The new primary is no replica a sync keeps any more.
        forget_manifest(
            &txn,
            j.dataset_id,
            Some((j.destination_site_id, j.destination_path.as_str())),
        )
        .await?;
        upsert_replica(
            &txn,
            destination,
            [
                replica::Column::Role,
                replica::Column::State,
                replica::Column::VerifiedAt,
                replica::Column::Manifest,
            ],
        )
        .await?;
        insert_outbox(&txn, s.outbox).await?;
        txn.commit().await.map_err(db_error)?;
        Ok(true)
    }

    /// After the source was deleted: its replica record goes, the job completes.
    pub async fn commit_retirement(&self, j: &Job, read_at: DateTime<Utc>) -> Result<bool> {
        let txn = self.begin_write().await?;
        if !update_job_row(&txn, j, read_at).await? {
            return Ok(false);
        }
        replica::Entity::delete_many()
            .filter(replica::Column::DatasetId.eq(j.dataset_id.to_string()))
            .filter(replica::Column::SiteId.eq(j.source_site_id.to_string()))
            .filter(replica::Column::Path.eq(j.source_path.clone()))
            .filter(replica::Column::Role.eq("secondary"))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        forget_manifest(
            &txn,
            j.dataset_id,
            Some((j.source_site_id, j.source_path.as_str())),
        )
        .await?;
        txn.commit().await.map_err(db_error)?;
        Ok(true)
    }
}

/// How the audit log names a job.
pub(super) fn resource(j: &Job) -> String {
    format!("job:{}", j.id)
}

pub(super) async fn update_job_row(
    txn: &DatabaseTransaction,
    j: &Job,
    read_at: DateTime<Utc>,
) -> Result<bool> {
    let result = job::Entity::update_many()
        .set(active(j))
        .filter(job::Column::Id.eq(j.id.to_string()))
        .filter(job::Column::UpdatedAt.eq(read_at))
        .exec(txn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                // Only the one-unfinished-job-per-dataset index can be violated here.
                Error::FailedPrecondition(format!(
                    "dataset {} already has an unfinished job",
                    j.dataset_id
                ))
            } else {
                db_error(e)
            }
        })?;
    Ok(result.rows_affected == 1)
}

/// The error for planning while another job of the dataset has not ended.
pub fn active_job_error(active: &Job) -> Error {
    Error::FailedPrecondition(format!(
        "dataset {} already has job {} in state {}; wait for it or cancel it",
        active.dataset_id, active.id, active.state
    ))
}

/// Serialises the transactions that change a job's counters by the objects they
/// change, so that two of them cannot both count the same object's move (PostgreSQL;
/// a SQLite write transaction holds the whole database already).
pub(super) async fn lock_job(txn: &DatabaseTransaction, id: JobId) -> Result<()> {
    job::Entity::find_by_id(id.to_string())
        .select_only()
        .column(job::Column::Id)
        .lock_exclusive()
        .into_tuple::<String>()
        .one(txn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Inserts a replica, or updates `columns` of the one the dataset already has at that
/// site and path.
pub(super) async fn upsert_replica(
    txn: &DatabaseTransaction,
    row: replica::ActiveModel,
    columns: impl IntoIterator<Item = replica::Column>,
) -> Result<()> {
    replica::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([
                replica::Column::DatasetId,
                replica::Column::SiteId,
                replica::Column::Path,
            ])
            .update_columns(columns)
            .to_owned(),
        )
        .exec(txn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// The columns a state update writes; counters and the immutable plan are left alone.
fn active(j: &Job) -> job::ActiveModel {
    job::ActiveModel {
        state: Set(j.state.as_str().to_owned()),
        attempt: Set(i64::from(j.attempt)),
        error: Set(j.error.clone()),
        bandwidth_limit: Set(j.bandwidth_limit.map(to_i64)),
        source_retired: Set(j.source_retired),
        started_at: Set(j.started_at),
        updated_at: Set(j.updated_at),
        ended_at: Set(j.ended_at),
        listed: Set(j.listed),
        final_pass: Set(j.final_pass),
        trace_parent: Set(j.trace_parent.clone()),
        ..Default::default()
    }
}

fn counters(row: &job::Model) -> Counters {
    Counters {
        objects_total: to_u64(row.objects_total),
        objects_done: to_u64(row.objects_done),
        objects_failed: to_u64(row.objects_failed),
        bytes_total: to_u64(row.bytes_total),
        bytes_done: to_u64(row.bytes_done),
    }
}

fn to_domain(row: job::Model) -> Result<Job> {
    let bad = |what: String| corrupt("migration_jobs", &row.id, what);
    fn id<T: std::str::FromStr<Err = uuid::Error>>(
        row: &job::Model,
        s: &str,
        what: &str,
    ) -> Result<T> {
        s.parse()
            .map_err(|e| corrupt("migration_jobs", &row.id, format!("{what}: {e}")))
    }
    Ok(Job {
        id: id(&row, &row.id, "id")?,
        idempotency_key: row.idempotency_key.clone(),
        dataset_id: id(&row, &row.dataset_id, "dataset_id")?,
        source_site_id: id(&row, &row.source_site_id, "source_site_id")?,
        source_path: row.source_path.clone(),
        destination_site_id: id(&row, &row.destination_site_id, "destination_site_id")?,
        destination_path: row.destination_path.clone(),
        executing_site_id: id(&row, &row.executing_site_id, "executing_site_id")?,
        storage_class: row.storage_class.clone(),
        verify_mode: row.verify_mode.parse().map_err(bad)?,
        retire_source: row.retire_source,
        filter: serde_json::from_str(&row.filter).map_err(|e| bad(format!("filter: {e}")))?,
        state: row.state.parse().map_err(bad)?,
        attempt: u32::try_from(row.attempt).map_err(|e| bad(format!("attempt: {e}")))?,
        error: row.error.clone(),
        counters: counters(&row),
        bandwidth_limit: row.bandwidth_limit.map(to_u64),
        source_retired: row.source_retired,
        created_at: row.created_at,
        started_at: row.started_at,
        updated_at: row.updated_at,
        ended_at: row.ended_at,
        listed: row.listed,
        kind: kind(&row).map_err(bad)?,
        sync: SyncFigures {
            unchanged: to_u64(row.objects_unchanged),
            extras: to_u64(row.extras_found),
            deleted: to_u64(row.extras_deleted),
        },
        final_pass: row.final_pass,
        source_changes: to_u64(row.source_changes),
        schedule_id: row
            .schedule_id
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e: uuid::Error| bad(format!("schedule_id: {e}")))?,
        policy_id: row
            .policy_id
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e: uuid::Error| bad(format!("policy_id: {e}")))?,
        sync_keys: row
            .sync_keys
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| bad(format!("sync_keys: {e}")))?,
        trace_parent: row.trace_parent,
    })
}

fn kind(row: &job::Model) -> std::result::Result<JobKind, String> {
    match row.kind.as_str() {
        "migration" => Ok(JobKind::Migration),
        "sync" => Ok(JobKind::Sync(SyncRule {
            deletion: row.deletion.as_deref().unwrap_or("keep").parse()?,
            max_delete: row.max_delete.map(to_u64),
        })),
        other => Err(format!("unknown job kind '{other}'")),
    }
}
