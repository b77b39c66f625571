//! The steps a sync adds to a job's lifecycle: its listing compared with the replica's
//! manifest (only what changed is copied), its deletion step within the cap, and its
//! end, which records the replica and its new manifest in one transaction. A
//! migration's final pass borrows the deletion step for the objects it copied that
//! were deleted at the source meanwhile.

use tracing::{info, Instrument};

use super::{Migrations, JOB_UPDATE_ATTEMPTS};
use crate::{
    bus::messages,
    domain::{
        ids::JobId,
        job::Job,
        report::DELETE_TASK_PREFIX,
        sync::{ComparedObject, Deletion, SyncRule},
    },
    error::{Error, Result},
    store::ListedRecord,
};

/// Extras per delete task, at most.
const DELETE_TASK_OBJECTS: usize = 1000;

/// A page of a sync's listing, as its agent compared it.
pub(super) struct ComparedPage {
    /// The copy task the page's objects to copy become.
    pub task: String,
    /// Source objects, with what the destination holds under their keys.
    pub objects: Vec<ComparedObject>,
    /// Objects (key, size) at the destination only.
    pub destination_only: Vec<(String, u64)>,
    /// Keys the replica's manifest records that neither side holds any more.
    pub manifest_only: Vec<String>,
    pub destination_empty: bool,
}

impl Migrations {
    /// Records a page of a sync's listing: objects the replica's manifest shows
    /// unchanged, and still present at the destination, are recorded `unchanged`; the
    /// others become the copy task `task`. Objects found at the destination only are
    /// recorded as extras; keys found at neither side leave the manifest.
    ///
    /// The agent compares a full listing with the manifest itself and sends only what
    /// changed (the unchanged objects come as one count at the end), so this second
    /// look is cheap; a run of a continuous sync's changes is compared here alone.
    pub(super) async fn record_compared(&self, job: &Job, page: ComparedPage) -> Result<()> {
        let ComparedPage {
            task,
            objects,
            destination_only,
            manifest_only,
            destination_empty,
        } = page;
        let task = task.as_str();
        if !manifest_only.is_empty() {
            self.store.forget_manifest_keys(job, &manifest_only).await?;
            info!(job_id = %job.id, forgotten = manifest_only.len(), "manifest entries of objects gone from both sides forgotten");
        }
        let now = self.catalogue.clock().now();
        if !destination_only.is_empty() {
            self.store
                .record_extras(job.id, &destination_only, now)
                .await?;
            info!(job_id = %job.id, extras = destination_only.len(), "extras recorded");
        }
        if objects.is_empty() {
            self.changed(job.id, false);
            return Ok(());
        }
        let keys: Vec<&str> = objects.iter().map(|o| o.key.as_str()).collect();
        let manifest = self.store.manifest_entries(job, &keys).await?;
        let records: Vec<ListedRecord> = objects
            .into_iter()
            .map(|o| {
                let recorded = manifest.get(&o.key).filter(|e| o.unchanged_since(e));
                ListedRecord {
                    unchanged: recorded.is_some(),
                    xxh3: recorded.and_then(|e| e.xxh3.clone()),
                    ..ListedRecord::from(o)
                }
            })
            .collect();
        let unchanged = records.iter().filter(|r| r.unchanged).count();
        let dispatched = self
            .record_page(job, task, &records, destination_empty)
            .await?;
        info!(
            job_id = %job.id,
            task,
            listed = records.len(),
            unchanged,
            dispatched,
            "sync page compared"
        );
        Ok(())
    }

    /// Records a listing page as the copy task `task` and dispatches what it leaves
    /// to copy, with the source's etags as listed; returns how many objects that is.
    pub(super) async fn record_page(
        &self,
        job: &Job,
        task: &str,
        records: &[ListedRecord],
        destination_empty: bool,
    ) -> Result<usize> {
        let etags = records
            .iter()
            .filter_map(|r| Some((r.key.clone(), r.etag.clone()?)))
            .collect();
        let now = self.catalogue.clock().now();
        let dispatched = self
            .store
            .record_listed_task(job.id, task, records, now, |todo, first| {
                messages::dispatch_copy(job, task, todo, &etags, destination_empty, first)
            })
            .await?;
        self.changed(job.id, dispatched > 0);
        Ok(dispatched)
    }

    /// Once every source object is in step: the deletion step when the rule deletes
    /// and there are extras (refused whole beyond the cap, before anything is
    /// deleted), else the end of the sync.
    pub(super) async fn finish_sync(&self, id: JobId, attempt: u32, rule: SyncRule) -> Result<()> {
        if rule.deletion == Deletion::Delete {
            let extras = self.store.extras(id).await?;
            if !extras.is_empty() {
                if let Err(over) = rule.check_deletions(extras.len() as u64) {
                    return self.fail(id, attempt, &over.to_string()).await;
                }
                return self.delete_extras(id, attempt, &extras).await;
            }
        }
        let span = tracing::info_span!("record_replica", job_id = %id, attempt);
        self.commit_sync(id, attempt).instrument(span).await
    }

    /// The deletion step: `extras` (key, size), at the destination only, become delete
    /// tasks; the job settles again once they are done.
    pub(super) async fn delete_extras(
        &self,
        id: JobId,
        attempt: u32,
        extras: &[(String, u64)],
    ) -> Result<()> {
        let job = self.get(id).await?;
        if job.attempt != attempt || job.state.is_terminal() {
            return Ok(());
        }
        let tasks: Vec<(String, Vec<(String, u64)>)> = extras
            .chunks(DELETE_TASK_OBJECTS)
            .enumerate()
            .map(|(n, chunk)| (format!("{DELETE_TASK_PREFIX}{n}"), chunk.to_vec()))
            .collect();
        let outbox: Vec<_> = tasks
            .iter()
            .map(|(task, objects)| messages::dispatch_delete(&job, task, objects))
            .collect();
        self.store.schedule_deletions(id, &tasks, &outbox).await?;
        info!(job_id = %id, extras = extras.len(), tasks = tasks.len(), kind = job.kind.as_str(), "deleting extras at the destination");
        self.changed(id, true);
        Ok(())
    }

    /// Records what a migration's final pass found at the destination only: those of
    /// the objects it copied were deleted at the source during the copy, and are
    /// deleted at the destination before the switch, so the new primary does not bring
    /// them back. Objects the destination held before the migration stay.
    pub(super) async fn record_vanished(
        &self,
        job: &Job,
        destination_only: Vec<(String, u64)>,
    ) -> Result<()> {
        let keys: Vec<String> = destination_only.into_iter().map(|(key, _)| key).collect();
        let now = self.catalogue.clock().now();
        let vanished = self.store.record_vanished(job.id, &keys, now).await?;
        if vanished > 0 {
            info!(job_id = %job.id, vanished, "objects deleted at the source during the copy; deleting their copies before the switch");
        }
        self.changed(job.id, false);
        Ok(())
    }

    /// The sync's end: completed, with the replica recorded as holding what the
    /// source held when the job started listing it, and the run's objects as its
    /// manifest.
    async fn commit_sync(&self, id: JobId, attempt: u32) -> Result<()> {
        for _ in 0..JOB_UPDATE_ATTEMPTS {
            let mut job = self.get(id).await?;
            if job.attempt != attempt || job.state.is_terminal() {
                return Ok(());
            }
            let read_at = job.updated_at;
            let now = self.catalogue.clock().next_update(read_at);
            job.state = job
                .state
                .complete_sync()
                .map_err(|e| Error::FailedPrecondition(e.to_string()))?;
            job.updated_at = now;
            job.ended_at = Some(now);
            // Listing began after the job started: the replica holds at least what
            // the source held then.
            let synced_at = job.started_at.unwrap_or(job.created_at);
            if self
                .store
                .commit_sync(&job, read_at, now, synced_at)
                .await?
            {
                info!(
                    job_id = %id,
                    dataset_id = %job.dataset_id,
                    objects = job.counters.objects_total,
                    "sync completed: the replica is in step"
                );
                self.changed(id, false);
                return Ok(());
            }
        }
        Err(Error::Conflict(format!(
            "job {id} is being changed concurrently; retry"
        )))
    }
}
