//! Migration job rows, their per-object records, and the switch transaction.

use chrono::{DateTime, Utc};
use sea_orm::{
    sea_query::{Expr, OnConflict},
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::{
    corrupt, db_error,
    entity::{dataset, job, job_object, replica},
    is_unique_violation,
    outbox::{insert_outbox, OutboxMessage},
    to_i64, to_u64, Store,
};
use crate::{
    domain::{
        ids::{AgentId, DatasetId, JobId, SiteId},
        job::{Counters, Job, JobObject, JobState, MultipartUpload, ObjectStatus},
        page::{Page, PageRequest},
        tier::Tier,
    },
    error::{Error, Result},
};

/// Statuses of an object that still needs work in its job.
const UNFINISHED: [ObjectStatus; 3] = [
    ObjectStatus::Pending,
    ObjectStatus::Copying,
    ObjectStatus::Copied,
];

/// What planning a job with an idempotency key produced.
pub enum Planned {
    Created(Job),
    /// A job with this key existed already.
    Existing(Job),
}

/// Filters of a job listing.
#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    pub dataset: Option<DatasetId>,
    pub state: Option<JobState>,
    /// Jobs whose source or destination is this site.
    pub site: Option<SiteId>,
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
            .filter(job::Column::State.is_not_in(["completed", "failed", "cancelled"]))
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
        for chunk in latest.chunks(100) {
            let existing: std::collections::HashMap<String, job_object::Model> =
                job_object::Entity::find()
                    .filter(job_object::Column::JobId.eq(id.to_string()))
                    .filter(job_object::Column::Key.is_in(chunk.iter().map(|o| o.key.clone())))
                    .all(&txn)
                    .await
                    .map_err(db_error)?
                    .into_iter()
                    .map(|row| (row.key.clone(), row))
                    .collect();
            for o in chunk {
                change += Tally::of(o.status, to_i64(o.size));
                if let Some(row) = existing.get(&o.key) {
                    change -= Tally::of_row(row);
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

    pub async fn job_counters(&self, id: JobId) -> Result<Counters> {
        let row = job::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
            .map_err(db_error)?
            .ok_or_else(|| Error::not_found("job", id))?;
        Ok(counters(&row))
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
    /// listing) stay as they are and are left out of the task; the others become
    /// `pending` in it, keeping an unfinished upload of the same size to resume. Returns
    /// how many objects the task carries; with none, nothing is dispatched.
    pub async fn record_listed_task(
        &self,
        id: JobId,
        task: &str,
        objects: &[(String, u64)],
        at: DateTime<Utc>,
        dispatch: impl FnOnce(&[(String, u64)]) -> OutboxMessage,
    ) -> Result<usize> {
        let txn = self.begin_write().await?;
        lock_job(&txn, id).await?;
        let mut existing = std::collections::HashMap::new();
        for keys in objects.chunks(500) {
            let rows = job_object::Entity::find()
                .filter(job_object::Column::JobId.eq(id.to_string()))
                .filter(job_object::Column::Key.is_in(keys.iter().map(|(k, _)| k.clone())))
                .all(&txn)
                .await
                .map_err(db_error)?;
            existing.extend(rows.into_iter().map(|r| (r.key.clone(), r)));
        }
        let (mut to_copy, mut new_rows) = (Vec::new(), Vec::new());
        let (mut added_objects, mut added_bytes) = (0i64, 0i64);
        // Objects listed again are pending again: what they counted for goes.
        let mut change = Tally::default();
        for (key, size) in objects {
            let size_i64 = to_i64(*size);
            match existing.remove(key) {
                Some(row) => {
                    let done = row
                        .status
                        .parse::<ObjectStatus>()
                        .is_ok_and(ObjectStatus::is_done);
                    if done && row.size == size_i64 {
                        continue;
                    }
                    added_bytes += size_i64 - row.size;
                    change -= Tally::of_row(&row);
                    let upload = row.upload.clone().filter(|_| row.size == size_i64);
                    job_object::ActiveModel {
                        job_id: Set(row.job_id),
                        key: Set(row.key),
                        size: Set(size_i64),
                        status: Set(ObjectStatus::Pending.as_str().to_owned()),
                        error: Set(None),
                        task: Set(Some(task.to_owned())),
                        upload: Set(upload),
                        updated_at: Set(at),
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
                        status: Set(ObjectStatus::Pending.as_str().to_owned()),
                        source_xxh3: Set(None),
                        destination_xxh3: Set(None),
                        attempts: Set(0),
                        error: Set(None),
                        operation: Set(None),
                        updated_at: Set(at),
                        task: Set(Some(task.to_owned())),
                        upload: Set(None),
                    });
                }
            }
            to_copy.push((key.clone(), *size));
        }
        for rows in new_rows.chunks(200) {
            job_object::Entity::insert_many(rows.to_vec())
                .on_conflict(
                    OnConflict::columns([job_object::Column::JobId, job_object::Column::Key])
                        .do_nothing()
                        .to_owned(),
                )
                .do_nothing()
                .exec(&txn)
                .await
                .map_err(db_error)?;
        }
        job::Entity::update_many()
            .col_expr(
                job::Column::ObjectsTotal,
                Expr::col(job::Column::ObjectsTotal).add(added_objects),
            )
            .col_expr(
                job::Column::BytesTotal,
                Expr::col(job::Column::BytesTotal).add(added_bytes),
            )
            .filter(job::Column::Id.eq(id.to_string()))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        update_counters(&txn, id, change, Some(at)).await?;
        if !to_copy.is_empty() {
            insert_outbox(&txn, &[dispatch(&to_copy)]).await?;
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
        };
        replica::Entity::insert(destination)
            .on_conflict(
                OnConflict::columns([
                    replica::Column::DatasetId,
                    replica::Column::SiteId,
                    replica::Column::Path,
                ])
                .update_columns([
                    replica::Column::Role,
                    replica::Column::State,
                    replica::Column::VerifiedAt,
                    replica::Column::Manifest,
                ])
                .to_owned(),
            )
            .exec(&txn)
            .await
            .map_err(db_error)?;
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
        txn.commit().await.map_err(db_error)?;
        Ok(true)
    }
}

impl Store {
    /// Commits a retry: the job's new attempt and its listing dispatch, and forgets the
    /// objects the ended attempt left unfinished, in one transaction. The new listing
    /// records again whatever of them is still at the source; one that has left it
    /// would otherwise stay unfinished and keep the job from ever settling. Nothing
    /// resumable is lost: the uploads of an ended job are aborted. Verified and skipped
    /// objects stay, and are not copied again.
    pub async fn commit_retry(
        &self,
        j: &Job,
        read_at: DateTime<Utc>,
        outbox: &[OutboxMessage],
    ) -> Result<bool> {
        let txn = self.begin_write().await?;
        if !update_job_row(&txn, j, read_at).await? {
            return Ok(false);
        }
        let done = [ObjectStatus::Verified, ObjectStatus::Skipped].map(|s| s.as_str());
        job_object::Entity::delete_many()
            .filter(job_object::Column::JobId.eq(j.id.to_string()))
            .filter(job_object::Column::Status.is_not_in(done))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        let (objects, bytes): (i64, Option<i64>) = job_object::Entity::find()
            .select_only()
            .column_as(job_object::Column::Key.count(), "n")
            .column_as(job_object::Column::Size.sum(), "bytes")
            .filter(job_object::Column::JobId.eq(j.id.to_string()))
            .into_tuple()
            .one(&txn)
            .await
            .map_err(db_error)?
            .unwrap_or((0, None));
        job::Entity::update_many()
            .col_expr(job::Column::ObjectsTotal, Expr::value(objects))
            .col_expr(job::Column::BytesTotal, Expr::value(bytes.unwrap_or(0)))
            .filter(job::Column::Id.eq(j.id.to_string()))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        refresh_counters(&txn, j.id).await?;
        insert_outbox(&txn, outbox).await?;
        txn.commit().await.map_err(db_error)?;
        Ok(true)
    }
}

async fn update_job_row(
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
async fn lock_job(txn: &DatabaseTransaction, id: JobId) -> Result<()> {
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

/// What an object counts for in its job's counters: done objects, failed objects and
/// done bytes (a copied object's bytes are done before the object is).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    done: i64,
    failed: i64,
    bytes_done: i64,
}

impl Tally {
    fn of(status: ObjectStatus, size: i64) -> Tally {
        match status {
            s if s.is_done() => Tally {
                done: 1,
                failed: 0,
                bytes_done: size,
            },
            ObjectStatus::Copied => Tally {
                bytes_done: size,
                ..Tally::default()
            },
            ObjectStatus::Failed => Tally {
                failed: 1,
                ..Tally::default()
            },
            _ => Tally::default(),
        }
    }

    /// An unknown stored status counts for nothing, as it did when it was written.
    fn of_stored(status: &str, size: i64) -> Tally {
        status
            .parse::<ObjectStatus>()
            .map_or(Tally::default(), |s| Tally::of(s, size))
    }

    fn of_row(row: &job_object::Model) -> Tally {
        Tally::of_stored(&row.status, row.size)
    }

    /// What `count` objects of one stored status, of `bytes` in all, count for.
    fn of_group(status: &str, count: i64, bytes: i64) -> Tally {
        let each = Tally::of_stored(status, bytes);
        Tally {
            done: each.done * count,
            failed: each.failed * count,
            bytes_done: each.bytes_done,
        }
    }
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Tally) {
        self.done += other.done;
        self.failed += other.failed;
        self.bytes_done += other.bytes_done;
    }
}

impl std::ops::SubAssign for Tally {
    fn sub_assign(&mut self, other: Tally) {
        self.done -= other.done;
        self.failed -= other.failed;
        self.bytes_done -= other.bytes_done;
    }
}

/// Moves a job's counters by what a transaction changed, computed from the object
/// records it replaced: a report applied again replaces a record with its equal and
/// moves nothing. Reports arrive in batches of a few hundred objects, so this keeps
/// each batch's cost independent of the job's size, where recounting read every
/// object of the job. With `progressed_at`, the change was an agent's progress.
async fn update_counters(
    txn: &DatabaseTransaction,
    id: JobId,
    change: Tally,
    progressed_at: Option<DateTime<Utc>>,
) -> Result<()> {
    if change == Tally::default() && progressed_at.is_none() {
        return Ok(());
    }
    let mut update = job::Entity::update_many();
    if let Some(at) = progressed_at {
        update = update.col_expr(job::Column::ProgressedAt, Expr::value(at));
    }
    update
        .col_expr(
            job::Column::ObjectsDone,
            Expr::col(job::Column::ObjectsDone).add(change.done),
        )
        .col_expr(
            job::Column::ObjectsFailed,
            Expr::col(job::Column::ObjectsFailed).add(change.failed),
        )
        .col_expr(
            job::Column::BytesDone,
            Expr::col(job::Column::BytesDone).add(change.bytes_done),
        )
        .filter(job::Column::Id.eq(id.to_string()))
        .exec(txn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Recomputes a job's counters from its object records: after a retry forgot the
/// objects its ended attempt left unfinished.
async fn refresh_counters(db: &impl ConnectionTrait, id: JobId) -> Result<()> {
    let rows: Vec<(String, i64, Option<i64>)> = job_object::Entity::find()
        .select_only()
        .column(job_object::Column::Status)
        .column_as(job_object::Column::Key.count(), "n")
        .column_as(job_object::Column::Size.sum(), "bytes")
        .filter(job_object::Column::JobId.eq(id.to_string()))
        .group_by(job_object::Column::Status)
        .into_tuple()
        .all(db)
        .await
        .map_err(db_error)?;
    let mut total = Tally::default();
    for (status, count, bytes) in rows {
        total += Tally::of_group(&status, count, bytes.unwrap_or(0));
    }
    job::Entity::update_many()
        .col_expr(job::Column::ObjectsDone, Expr::value(total.done))
        .col_expr(job::Column::ObjectsFailed, Expr::value(total.failed))
        .col_expr(job::Column::BytesDone, Expr::value(total.bytes_done))
        .filter(job::Column::Id.eq(id.to_string()))
        .exec(db)
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
    })
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
    })
}
