//! What sync jobs keep: the replica's manifest they compare listings with, the objects
//! they find at the destination only, the deletion of those, and the commit that makes
//! a run's objects the replica's new manifest.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    sea_query::{Expr, Query},
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
};

use super::{
    db_error,
    entity::{job, job_object, replica, replica_object},
    job_objects::insert_new_objects,
    jobs::{lock_job, update_job_row, upsert_replica},
    outbox::{insert_outbox, OutboxMessage},
    to_i64, to_u64, Store,
};
use crate::{
    domain::{
        ids::{DatasetId, JobId, SiteId},
        job::{Job, ObjectStatus},
        sync::ManifestEntry,
    },
    error::Result,
};

/// Statuses of the objects a completed sync leaves at the destination as the source
/// held them: its manifest.
const IN_STEP: [ObjectStatus; 3] = [
    ObjectStatus::Verified,
    ObjectStatus::Skipped,
    ObjectStatus::Unchanged,
];

impl Store {
    /// The manifest entries of the sync job's replica for these keys (those it has).
    pub async fn manifest_entries(
        &self,
        job: &Job,
        keys: &[&str],
    ) -> Result<HashMap<String, ManifestEntry>> {
        let mut entries = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(500) {
            let rows = replica_object::Entity::find()
                .filter(replica_of(job))
                .filter(replica_object::Column::Key.is_in(chunk.iter().copied()))
                .all(&self.db)
                .await
                .map_err(db_error)?;
            entries.extend(rows.into_iter().map(|r| {
                (
                    r.key,
                    ManifestEntry {
                        size: to_u64(r.size),
                        modified: r.modified,
                        etag: r.etag,
                        xxh3: r.xxh3,
                    },
                )
            }));
        }
        Ok(entries)
    }

    /// Forgets the manifest entries of the sync job's replica for `keys`: objects a
    /// listing found at neither side any more. The replica does not hold them, so no
    /// later run can wrongly take one for unchanged.
    pub async fn forget_manifest_keys(&self, job: &Job, keys: &[String]) -> Result<()> {
        for chunk in keys.chunks(500) {
            replica_object::Entity::delete_many()
                .filter(replica_of(job))
                .filter(replica_object::Column::Key.is_in(chunk.iter().cloned()))
                .exec(&self.db)
                .await
                .map_err(db_error)?;
        }
        Ok(())
    }

    /// Sets how many source objects (and bytes) the agent found unchanged against the
    /// replica's manifest, in one transaction: the job's totals, done counters and
    /// unchanged figure move by the difference from what was last set, so a report
    /// applied twice counts once.
    pub async fn set_manifest_unchanged(
        &self,
        id: JobId,
        objects: u64,
        bytes: u64,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let txn = self.begin_write().await?;
        lock_job(&txn, id).await?;
        let row = job::Entity::find_by_id(id.to_string())
            .one(&txn)
            .await
            .map_err(db_error)?
            .ok_or_else(|| crate::error::Error::not_found("job", id))?;
        let objects = to_i64(objects) - row.manifest_unchanged;
        let bytes = to_i64(bytes) - row.manifest_unchanged_bytes;
        add_to_job(
            &txn,
            id,
            &[
                (job::Column::ManifestUnchanged, objects),
                (job::Column::ManifestUnchangedBytes, bytes),
                (job::Column::ObjectsUnchanged, objects),
                (job::Column::ObjectsTotal, objects),
                (job::Column::ObjectsDone, objects),
                (job::Column::BytesTotal, bytes),
                (job::Column::BytesDone, bytes),
            ],
            at,
        )
        .await?;
        txn.commit().await.map_err(db_error)?;
        Ok(())
    }

    /// Records objects (key, size) a sync found at the destination only as `extra`;
    /// one already recorded (by an earlier attempt) keeps its status.
    pub async fn record_extras(
        &self,
        id: JobId,
        extras: &[(String, u64)],
        at: DateTime<Utc>,
    ) -> Result<()> {
        let txn = self.begin_write().await?;
        lock_job(&txn, id).await?;
        let mut added = 0i64;
        for chunk in extras.chunks(500) {
            let known: Vec<String> = job_object::Entity::find()
                .select_only()
                .column(job_object::Column::Key)
                .filter(job_object::Column::JobId.eq(id.to_string()))
                .filter(job_object::Column::Key.is_in(chunk.iter().map(|(k, _)| k.clone())))
                .into_tuple()
                .all(&txn)
                .await
                .map_err(db_error)?;
            let rows: Vec<_> = chunk
                .iter()
                .filter(|(key, _)| !known.contains(key))
                .map(|(key, size)| job_object::ActiveModel {
                    job_id: Set(id.to_string()),
                    key: Set(key.clone()),
                    size: Set(to_i64(*size)),
                    status: Set(ObjectStatus::Extra.as_str().to_owned()),
                    source_xxh3: Set(None),
                    destination_xxh3: Set(None),
                    attempts: Set(0),
                    error: Set(None),
                    operation: Set(None),
                    updated_at: Set(at),
                    task: Set(None),
                    upload: Set(None),
                    source_modified: Set(None),
                    source_etag: Set(None),
                    source_changed: Set(false),
                })
                .collect();
            added += rows.len() as i64;
            insert_new_objects(&txn, rows).await?;
        }
        add_to_job(&txn, id, &[(job::Column::ExtrasFound, added)], at).await?;
        txn.commit().await.map_err(db_error)?;
        Ok(())
    }

    /// The objects (key, size) of a job still `extra`: what its deletion step deletes.
    pub async fn extras(&self, id: JobId) -> Result<Vec<(String, u64)>> {
        let rows: Vec<(String, i64)> = job_object::Entity::find()
            .select_only()
            .column(job_object::Column::Key)
            .column(job_object::Column::Size)
            .filter(job_object::Column::JobId.eq(id.to_string()))
            .filter(job_object::Column::Status.eq(ObjectStatus::Extra.as_str()))
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db_error)?;
        Ok(rows.into_iter().map(|(k, s)| (k, to_u64(s))).collect())
    }

    /// Starts a sync's deletion step in one transaction: each extra becomes `pending`
    /// in its delete task, and the tasks' messages are written.
    pub async fn schedule_deletions(
        &self,
        id: JobId,
        tasks: &[(String, Vec<(String, u64)>)],
        outbox: &[OutboxMessage],
    ) -> Result<()> {
        let txn = self.begin_write().await?;
        lock_job(&txn, id).await?;
        for (task, objects) in tasks {
            for chunk in objects.chunks(500) {
                job_object::Entity::update_many()
                    .col_expr(
                        job_object::Column::Status,
                        Expr::value(ObjectStatus::Pending.as_str()),
                    )
                    .col_expr(job_object::Column::Task, Expr::value(task.clone()))
                    .filter(job_object::Column::JobId.eq(id.to_string()))
                    .filter(job_object::Column::Status.eq(ObjectStatus::Extra.as_str()))
                    .filter(job_object::Column::Key.is_in(chunk.iter().map(|(k, _)| k.clone())))
                    .exec(&txn)
                    .await
                    .map_err(db_error)?;
            }
        }
        insert_outbox(&txn, outbox).await?;
        txn.commit().await.map_err(db_error)?;
        Ok(())
    }

    /// A sync's end, in one transaction: the job's new state and figures, the replica
    /// recorded (secondary, ready, verified at `at`, holding what the source held at
    /// `synced_at`), and its manifest replaced by the run's objects that are in step
    /// (for a run of a continuous sync's changes, the entries of its keys only).
    /// False when the job changed meanwhile.
    pub async fn commit_sync(
        &self,
        j: &Job,
        read_at: DateTime<Utc>,
        at: DateTime<Utc>,
        synced_at: DateTime<Utc>,
    ) -> Result<bool> {
        let txn = self.begin_write().await?;
        if !update_job_row(&txn, j, read_at).await? {
            return Ok(false);
        }
        let deleted = job_object::Entity::find()
            .filter(job_object::Column::JobId.eq(j.id.to_string()))
            .filter(job_object::Column::Status.eq(ObjectStatus::Deleted.as_str()))
            .count(&txn)
            .await
            .map_err(db_error)?;
        job::Entity::update_many()
            .col_expr(job::Column::ExtrasDeleted, Expr::value(to_i64(deleted)))
            .filter(job::Column::Id.eq(j.id.to_string()))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        let (dataset, site, path) = (
            j.dataset_id.to_string(),
            j.destination_site_id.to_string(),
            j.destination_path.clone(),
        );
        let row = replica::ActiveModel {
            dataset_id: Set(dataset.clone()),
            site_id: Set(site.clone()),
            path: Set(path.clone()),
            role: Set("secondary".into()),
            state: Set("ready".into()),
            verified_at: Set(Some(at)),
            manifest: Set(Some(format!("job:{}", j.id))),
            created_at: Set(at),
            synced_at: Set(Some(synced_at)),
        };
        // An existing replica there (a migration's old source) keeps its role.
        upsert_replica(
            &txn,
            row,
            [
                replica::Column::State,
                replica::Column::VerifiedAt,
                replica::Column::Manifest,
                replica::Column::SyncedAt,
            ],
        )
        .await?;
        // Only the keys the run recorded are replaced: a run of a continuous sync's
        // changes checked its keys alone, and a full run recorded only what was not
        // found unchanged (the agent compared the rest with this manifest, and counted
        // it), so every other entry stands. Keys neither side holds any more were
        // forgotten as the listing found them.
        let replaced = replica_object::Entity::delete_many().filter(replica_of(j));
        match &j.sync_keys {
            Some(keys) => {
                for chunk in keys.chunks(500) {
                    replaced
                        .clone()
                        .filter(replica_object::Column::Key.is_in(chunk.iter().cloned()))
                        .exec(&txn)
                        .await
                        .map_err(db_error)?;
                }
            }
            None => {
                let recorded = Query::select()
                    .column(job_object::Column::Key)
                    .from(job_object::Entity)
                    .and_where(job_object::Column::JobId.eq(j.id.to_string()))
                    .to_owned();
                replaced
                    .filter(replica_object::Column::Key.in_subquery(recorded))
                    .exec(&txn)
                    .await
                    .map_err(db_error)?;
            }
        }
        let in_step = Query::select()
            .expr(Expr::val(dataset))
            .expr(Expr::val(site))
            .expr(Expr::val(path))
            .columns([
                job_object::Column::Key,
                job_object::Column::Size,
                job_object::Column::SourceModified,
                job_object::Column::SourceEtag,
                job_object::Column::SourceXxh3,
            ])
            .from(job_object::Entity)
            .and_where(job_object::Column::JobId.eq(j.id.to_string()))
            .and_where(job_object::Column::Status.is_in(IN_STEP.map(ObjectStatus::as_str)))
            .to_owned();
        let insert = Query::insert()
            .into_table(replica_object::Entity)
            .columns([
                replica_object::Column::DatasetId,
                replica_object::Column::SiteId,
                replica_object::Column::Path,
                replica_object::Column::Key,
                replica_object::Column::Size,
                replica_object::Column::Modified,
                replica_object::Column::Etag,
                replica_object::Column::Xxh3,
            ])
            .select_from(in_step)
            .map_err(|e| crate::error::Error::Internal(format!("building the manifest: {e}")))?
            .to_owned();
        let backend = txn.get_database_backend();
        txn.execute(backend.build(&insert))
            .await
            .map_err(db_error)?;
        txn.commit().await.map_err(db_error)?;
        Ok(true)
    }
}

/// Adds to the job's counters `columns` (column, amount), as progress made at `at`.
async fn add_to_job(
    txn: &impl ConnectionTrait,
    id: JobId,
    columns: &[(job::Column, i64)],
    at: DateTime<Utc>,
) -> Result<()> {
    let mut update = job::Entity::update_many();
    for &(col, by) in columns {
        update = update.col_expr(col, Expr::col(col).add(by));
    }
    update
        .col_expr(job::Column::ProgressedAt, Expr::value(at))
        .filter(job::Column::Id.eq(id.to_string()))
        .exec(txn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// The manifest entries of the replica the sync job `job` keeps in step.
pub(super) fn replica_of(job: &Job) -> Condition {
    Condition::all()
        .add(replica_object::Column::DatasetId.eq(job.dataset_id.to_string()))
        .add(replica_object::Column::SiteId.eq(job.destination_site_id.to_string()))
        .add(replica_object::Column::Path.eq(job.destination_path.clone()))
}

/// Forgets the manifest of a dataset's replica at `site` and `path`, or of all its
/// replicas: the replica is gone, or no longer one a sync keeps. (SQLite does not
/// enforce the foreign key that would cascade it.)
pub(super) async fn forget_manifest(
    db: &impl ConnectionTrait,
    dataset: DatasetId,
    replica: Option<(SiteId, &str)>,
) -> Result<()> {
    let mut delete = replica_object::Entity::delete_many()
        .filter(replica_object::Column::DatasetId.eq(dataset.to_string()));
    if let Some((site, path)) = replica {
        delete = delete
            .filter(replica_object::Column::SiteId.eq(site.to_string()))
            .filter(replica_object::Column::Path.eq(path));
    }
    delete.exec(db).await.map_err(db_error)?;
    Ok(())
}
