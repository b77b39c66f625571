//! The per-object records of migration jobs, and the job counters they move: what the
//! listing recorded, what the agents reported, and what a resumed task picks up again.

use chrono::{DateTime, Utc};
use sea_orm::{
    sea_query::{Expr, OnConflict},
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::{
    corrupt, db_error,
    entity::{job, job_object},
    job_counters::{update_counters, Tally},
    jobs::lock_job,
    outbox::{insert_outbox, OutboxMessage},
    recorded::recorded,
    to_i64, to_u64, Store,
};
use crate::{
    domain::{
        ids::JobId,
        job::{JobObject, MultipartUpload, ObjectStatus},
        page::{Page, PageRequest},
        sync::ComparedObject,
    },
    error::{Error, Result},
};

/// Statuses of an object that still needs work in its job.
const UNFINISHED: [ObjectStatus; 3] = [
    ObjectStatus::Pending,
    ObjectStatus::Copying,
    ObjectStatus::Copied,
];

/// An object of a listing page, as its job records it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListedRecord {
    pub key: String,
    pub size: u64,
    /// The source's modification time and etag as listed, where known.
    pub modified: Option<DateTime<Utc>>,
    pub etag: Option<String>,
    /// A sync found it as its replica's manifest recorded it: it is recorded
    /// `unchanged`, with the manifest's xxh3, and not copied.
    pub unchanged: bool,
    pub xxh3: Option<String>,
}

impl From<ComparedObject> for ListedRecord {
    /// A listed object as it is recorded before any comparison with a manifest.
    fn from(o: ComparedObject) -> Self {
        ListedRecord {
            key: o.key,
            size: o.size,
            modified: o.modified,
            etag: o.etag,
            unchanged: false,
            xxh3: None,
        }
    }
}

impl Store {
    /// Inserts or updates per-object records, reported at `at`. `attempts` of a report
    /// add to the stored count; the other fields replace it.
    pub async fn upsert_job_objects(
        &self,
        id: JobId,
        objects: &[JobObject],
        at: DateTime<Utc>,
    ) -> Result<()> {
        if objects.is_empty() {
            return Ok(());
        }
        let txn = self.begin_write().await?;
        lock_job(&txn, id).await?;
        // One read and one multi-row upsert per chunk rather than two statements per
        // object: reports come in batches, and the control plane shares its cores.
        // A key reported twice in one batch is folded into one row first (PostgreSQL
        // refuses to upsert a row twice in one statement): attempts add up, the last
        // report wins the rest.
        let mut latest: Vec<&JobObject> = Vec::with_capacity(objects.len());
        let mut position: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        let mut added: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
        for o in objects {
            *added.entry(o.key.as_str()).or_default() += i64::from(o.attempts);
            match position.get(o.key.as_str()) {
                Some(&i) => latest[i] = o,
                None => {
                    position.insert(o.key.as_str(), latest.len());
                    latest.push(o);
                }
            }
        }
        let mut change = Tally::default();
        // An agent reports up to 512 results at once: one read and one upsert for all of
        // them (16 values a row, well within SQLite's and PostgreSQL's bind limits).
        for chunk in latest.chunks(512) {
            let existing = recorded(&txn, id, chunk.iter().map(|o| o.key.clone())).await?;
            for o in chunk {
                change += Tally::of(o.status, to_i64(o.size));
                if let Some(row) = existing.get(&o.key) {
                    change -= Tally::of_stored(&row.status, row.size);
                }
            }
            let rows = chunk.iter().map(|o| {
                let (attempts, task, upload) = match existing.get(&o.key) {
                    Some(e) => (e.attempts, e.task.clone(), e.upload.clone()),
                    None => (0, None, None),
                };
                job_object::ActiveModel {
                    job_id: Set(id.to_string()),
                    key: Set(o.key.clone()),
                    size: Set(to_i64(o.size)),
                    status: Set(o.status.as_str().to_owned()),
                    source_xxh3: Set(o.source_xxh3.clone()),
                    destination_xxh3: Set(o.destination_xxh3.clone()),
                    attempts: Set(attempts + added.get(o.key.as_str()).copied().unwrap_or(0)),
                    error: Set(o.error.clone()),
                    operation: Set(o.operation.clone()),
                    updated_at: Set(o.updated_at),
                    task: Set(task),
                    // Kept as listed: a conflict updates only the columns named below.
                    source_modified: Set(None),
                    source_etag: Set(None),
                    source_changed: Set(false),
                    // Once the object is stored whole there is no upload left to resume.
                    upload: Set(match o.status {
                        ObjectStatus::Copied | ObjectStatus::Verified | ObjectStatus::Skipped => {
                            None
                        }
                        _ => upload,
                    }),
                }
            });
            job_object::Entity::insert_many(rows)
                .on_conflict(
                    OnConflict::columns([job_object::Column::JobId, job_object::Column::Key])
                        .update_columns([
                            job_object::Column::Size,
                            job_object::Column::Status,
                            job_object::Column::SourceXxh3,
                            job_object::Column::DestinationXxh3,
                            job_object::Column::Attempts,
                            job_object::Column::Error,
                            job_object::Column::Operation,
                            job_object::Column::UpdatedAt,
                            job_object::Column::Upload,
                        ])
                        .to_owned(),
                )
                .exec(&txn)
                .await
                .map_err(db_error)?;
        }
        update_counters(&txn, id, change, Some(at)).await?;
        txn.commit().await.map_err(db_error)
    }

    /// A page of a job's objects in key order, optionally of one status.
    pub async fn list_job_objects(
        &self,
        id: JobId,
        status: Option<ObjectStatus>,
        task: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<JobObject>> {
        let mut query = job_object::Entity::find()
            .filter(job_object::Column::JobId.eq(id.to_string()))
            .order_by_asc(job_object::Column::Key);
        if let Some(task) = task {
            query = query.filter(job_object::Column::Task.eq(task));
        }
        if let Some(status) = status {
            query = query.filter(job_object::Column::Status.eq(status.as_str()));
        }
        if let Some(after) = &page.after {
            query = query.filter(job_object::Column::Key.gt(after.as_str()));
        }
        let rows = query
            .limit(page.size + 1)
            .all(&self.db)
            .await
            .map_err(db_error)?;
        let objects = rows
            .into_iter()
            .map(object_to_domain)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(objects, page.size, |o| o.key.clone()))
    }

    /// Records a page of the source listing as the copy task `task` and writes the
    /// message that dispatches it, in one transaction. Objects already verified or
    /// skipped at their listed size (by an earlier attempt, or by an earlier run of this
    /// listing) stay as they are and are left out of the task; so do those a sync found
    /// unchanged, recorded so; the others become `pending` in it, keeping an unfinished
    /// upload of the same size to resume. `dispatch` gets the objects to copy and
    /// whether none of them was recorded before (the task's first dispatch, of which
    /// nothing can have been reported). Returns how many objects the task carries; with
    /// none, nothing is dispatched.
    pub async fn record_listed_task(
        &self,
        id: JobId,
        task: &str,
        objects: &[ListedRecord],
        at: DateTime<Utc>,
        dispatch: impl FnOnce(&[(String, u64)], bool) -> OutboxMessage,
    ) -> Result<usize> {
        let txn = self.begin_write().await?;
        lock_job(&txn, id).await?;
        let mut existing = std::collections::HashMap::new();
        for keys in objects.chunks(500) {
            let rows = job_object::Entity::find()
                .filter(job_object::Column::JobId.eq(id.to_string()))
                .filter(job_object::Column::Key.is_in(keys.iter().map(|o| o.key.clone())))
                .all(&txn)
                .await
                .map_err(db_error)?;
            existing.extend(rows.into_iter().map(|r| (r.key.clone(), r)));
        }
        let (mut to_copy, mut new_rows) = (Vec::new(), Vec::new());
        // Objects to copy that were recorded before: they may have been dispatched,
        // and reported, already.
        let mut recorded_before = false;
        let (mut added_objects, mut added_bytes, mut unchanged) = (0i64, 0i64, 0i64);
        let mut source_changes = 0i64;
        // Objects listed again are pending again: what they counted for goes.
        let mut change = Tally::default();
        for listed in objects {
            let (key, size_i64) = (&listed.key, to_i64(listed.size));
            let status = if listed.unchanged {
                unchanged += 1;
                change += Tally::of(ObjectStatus::Unchanged, size_i64);
                ObjectStatus::Unchanged
            } else {
                ObjectStatus::Pending
            };
            let xxh3 = listed.xxh3.clone().filter(|_| listed.unchanged);
            match existing.remove(key) {
                Some(row) => {
                    let done = row
                        .status
                        .parse::<ObjectStatus>()
                        .is_ok_and(ObjectStatus::is_done);
                    let same_source = row.size == size_i64
                        // Times to the microsecond the catalogue keeps.
                        && same_source(
                            row.source_modified.map(|t| t.timestamp_micros()),
                            listed.modified.map(|t| t.timestamp_micros()),
                        )
                        && same_source(row.source_etag.as_deref(), listed.etag.as_deref());
                    if done && same_source {
                        if listed.unchanged {
                            unchanged -= 1;
                            change -= Tally::of(ObjectStatus::Unchanged, size_i64);
                        }
                        continue;
                    }
                    // Copied already, and the source is no longer what was copied.
                    let changed = done && !same_source;
                    source_changes += i64::from(changed);
                    if row.status == ObjectStatus::Extra.as_str() {
                        // Deleted at the source once (out of the totals), and back.
                        added_objects += 1;
                        added_bytes += size_i64;
                    } else {
                        added_bytes += size_i64 - row.size;
                    }
                    change -= Tally::of_row(&row);
                    recorded_before |= !listed.unchanged;
                    let upload = row.upload.clone().filter(|_| row.size == size_i64);
                    job_object::ActiveModel {
                        job_id: Set(row.job_id),
                        key: Set(row.key),
                        size: Set(size_i64),
                        status: Set(status.as_str().to_owned()),
                        error: Set(None),
                        task: Set(Some(task.to_owned())),
                        upload: Set(upload),
                        updated_at: Set(at),
                        source_modified: Set(listed.modified),
                        source_etag: Set(listed.etag.clone()),
                        source_xxh3: Set(xxh3),
                        source_changed: Set(row.source_changed || changed),
                        ..Default::default()
                    }
                    .update(&txn)
                    .await
                    .map_err(db_error)?;
                }
                None => {
                    added_objects += 1;
                    added_bytes += size_i64;
                    new_rows.push(job_object::ActiveModel {
                        job_id: Set(id.to_string()),
                        key: Set(key.clone()),
                        size: Set(size_i64),
                        status: Set(status.as_str().to_owned()),
                        source_xxh3: Set(xxh3),
                        destination_xxh3: Set(None),
                        attempts: Set(0),
                        error: Set(None),
                        operation: Set(None),
                        updated_at: Set(at),
                        task: Set(Some(task.to_owned())),
                        upload: Set(None),
                        source_modified: Set(listed.modified),
                        source_etag: Set(listed.etag.clone()),
                        source_changed: Set(false),
                    });
                }
            }
            if !listed.unchanged {
                to_copy.push((key.clone(), listed.size));
            }
        }
        insert_new_objects(&txn, new_rows).await?;
        job::Entity::update_many()
            .col_expr(
                job::Column::ObjectsTotal,
                Expr::col(job::Column::ObjectsTotal).add(added_objects),
            )
            .col_expr(
                job::Column::BytesTotal,
                Expr::col(job::Column::BytesTotal).add(added_bytes),
            )
            .col_expr(
                job::Column::ObjectsUnchanged,
                Expr::col(job::Column::ObjectsUnchanged).add(unchanged),
            )
            .col_expr(
                job::Column::SourceChanges,
                Expr::col(job::Column::SourceChanges).add(source_changes),
            )
            .filter(job::Column::Id.eq(id.to_string()))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        update_counters(&txn, id, change, Some(at)).await?;
        if !to_copy.is_empty() {
            insert_outbox(&txn, &[dispatch(&to_copy, !recorded_before)]).await?;
        }
        txn.commit().await.map_err(db_error)?;
        Ok(to_copy.len())
    }

    /// Marks the unfinished objects of a copy task failed with `error`: the task ended
    /// without reporting them (its agent gave up on the whole batch).
    pub async fn fail_task_objects(
        &self,
        id: JobId,
        task: &str,
        error: &str,
        at: DateTime<Utc>,
    ) -> Result<u64> {
        let txn = self.begin_write().await?;
        lock_job(&txn, id).await?;
        let unfinished = UNFINISHED.map(ObjectStatus::as_str);
        let failing: Vec<(String, i64)> = job_object::Entity::find()
            .select_only()
            .column(job_object::Column::Status)
            .column(job_object::Column::Size)
            .filter(job_object::Column::JobId.eq(id.to_string()))
            .filter(job_object::Column::Task.eq(task))
            .filter(job_object::Column::Status.is_in(unfinished))
            .into_tuple()
            .all(&txn)
            .await
            .map_err(db_error)?;
        let mut change = Tally::default();
        for (status, size) in &failing {
            change -= Tally::of_stored(status, *size);
            change += Tally::of(ObjectStatus::Failed, *size);
        }
        let result = job_object::Entity::update_many()
            .col_expr(
                job_object::Column::Status,
                Expr::value(ObjectStatus::Failed.as_str()),
            )
            .col_expr(job_object::Column::Error, Expr::value(error))
            .col_expr(job_object::Column::UpdatedAt, Expr::value(at))
            .filter(job_object::Column::JobId.eq(id.to_string()))
            .filter(job_object::Column::Task.eq(task))
            .filter(job_object::Column::Status.is_in(unfinished))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        // Giving up is no progress: the reconciler may still find the job stuck.
        update_counters(&txn, id, change, None).await?;
        txn.commit().await.map_err(db_error)?;
        Ok(result.rows_affected)
    }

    /// Whether any of a job's objects still needs work (pending, copying or copied).
    pub async fn has_unfinished_objects(&self, id: JobId) -> Result<bool> {
        self.has_objects_in(id, &UNFINISHED).await
    }

    /// Whether any of a job's objects is not copied yet (pending or copying).
    pub async fn has_objects_not_copied(&self, id: JobId) -> Result<bool> {
        self.has_objects_in(id, &[ObjectStatus::Pending, ObjectStatus::Copying])
            .await
    }

    /// Asked after every report batch: one index probe per status, however large the
    /// job, rather than a count of its objects.
    async fn has_objects_in(&self, id: JobId, statuses: &[ObjectStatus]) -> Result<bool> {
        let found = job_object::Entity::find()
            .select_only()
            .column(job_object::Column::Key)
            .filter(job_object::Column::JobId.eq(id.to_string()))
            .filter(job_object::Column::Status.is_in(statuses.iter().map(|s| s.as_str())))
            .limit(1)
            .into_tuple::<String>()
            .one(&self.db)
            .await
            .map_err(db_error)?;
        Ok(found.is_some())
    }

    /// The copy tasks of a job with unfinished objects, each with those objects (key,
    /// size): what the reconciler dispatches again.
    pub async fn unfinished_tasks(&self, id: JobId) -> Result<Vec<(String, Vec<(String, u64)>)>> {
        let rows: Vec<(Option<String>, String, i64)> = job_object::Entity::find()
            .select_only()
            .column(job_object::Column::Task)
            .column(job_object::Column::Key)
            .column(job_object::Column::Size)
            .filter(job_object::Column::JobId.eq(id.to_string()))
            .filter(job_object::Column::Status.is_in(UNFINISHED.map(ObjectStatus::as_str)))
            .order_by_asc(job_object::Column::Task)
            .order_by_asc(job_object::Column::Key)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db_error)?;
        let mut tasks: Vec<(String, Vec<(String, u64)>)> = Vec::new();
        for (task, key, size) in rows {
            let Some(task) = task else { continue };
            match tasks.last_mut() {
                Some((t, objects)) if *t == task => objects.push((key, to_u64(size))),
                _ => tasks.push((task, vec![(key, to_u64(size))])),
            }
        }
        Ok(tasks)
    }

    /// The unfinished multipart uploads of a job: key and upload id.
    pub async fn recorded_uploads(&self, id: JobId) -> Result<Vec<(String, String)>> {
        let rows: Vec<(String, Option<String>)> = job_object::Entity::find()
            .select_only()
            .column(job_object::Column::Key)
            .column(job_object::Column::Upload)
            .filter(job_object::Column::JobId.eq(id.to_string()))
            .filter(job_object::Column::Upload.is_not_null())
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db_error)?;
        rows.into_iter()
            .filter_map(|(key, upload)| Some((key, upload?)))
            .map(|(key, upload)| {
                let upload: MultipartUpload = serde_json::from_str(&upload)
                    .map_err(|e| corrupt("job_objects", &key, format!("upload: {e}")))?;
                Ok((key, upload.upload_id))
            })
            .collect()
    }

    /// Records that a multipart upload of `key` started or stored more parts.
    pub async fn record_upload(
        &self,
        id: JobId,
        key: &str,
        update: MultipartUpload,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let txn = self.begin_write().await?;
        update_counters(&txn, id, Tally::default(), Some(at)).await?;
        let Some(row) = job_object::Entity::find_by_id((id.to_string(), key.to_owned()))
            .one(&txn)
            .await
            .map_err(db_error)?
        else {
            return Ok(());
        };
        let merged = match row
            .upload
            .as_deref()
            .map(serde_json::from_str::<MultipartUpload>)
        {
            Some(Ok(current)) => current.merge(update),
            _ => update,
        };
        let json = serde_json::to_string(&merged)
            .map_err(|e| Error::Internal(format!("encoding an upload: {e}")))?;
        job_object::ActiveModel {
            job_id: Set(row.job_id),
            key: Set(row.key),
            upload: Set(Some(json)),
            ..Default::default()
        }
        .update(&txn)
        .await
        .map_err(db_error)?;
        txn.commit().await.map_err(db_error)
    }

    /// The most recently failed objects of a job.
    pub async fn recent_object_errors(&self, id: JobId, limit: u64) -> Result<Vec<JobObject>> {
        let rows = job_object::Entity::find()
            .filter(job_object::Column::JobId.eq(id.to_string()))
            .filter(job_object::Column::Status.eq(ObjectStatus::Failed.as_str()))
            .order_by_desc(job_object::Column::UpdatedAt)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(db_error)?;
        rows.into_iter().map(object_to_domain).collect()
    }
}

fn object_to_domain(row: job_object::Model) -> Result<JobObject> {
    let upload = row
        .upload
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| corrupt("job_objects", &row.key, format!("upload: {e}")))?;
    Ok(JobObject {
        status: row
            .status
            .parse()
            .map_err(|e| corrupt("job_objects", &row.key, e))?,
        key: row.key,
        size: to_u64(row.size),
        source_xxh3: row.source_xxh3,
        destination_xxh3: row.destination_xxh3,
        attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
        error: row.error,
        operation: row.operation,
        updated_at: row.updated_at,
        task: row.task,
        upload,
        source_changed: row.source_changed,
    })
}

/// Whether the source, as listed now, is what was recorded when the object was listed
/// before: equal where both are known.
fn same_source<T: PartialEq>(recorded: Option<T>, listed: Option<T>) -> bool {
    match (recorded, listed) {
        (Some(r), Some(l)) => r == l,
        _ => true,
    }
}

/// Inserts object records, 200 to a statement; a key the job already has is left as
/// it is.
pub(super) async fn insert_new_objects(
    txn: &DatabaseTransaction,
    rows: Vec<job_object::ActiveModel>,
) -> Result<()> {
    for chunk in rows.chunks(200) {
        job_object::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([job_object::Column::JobId, job_object::Column::Key])
                    .do_nothing()
                    .to_owned(),
            )
            .do_nothing()
            .exec(txn)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}
