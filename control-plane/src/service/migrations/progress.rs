//! The lifecycle of a job as its agents report it: tasks started, objects copied and
//! verified, listings cut into copy tasks, uploads journalled, tasks finished; then the
//! switch, the failure or the retirement of the source. Every report is fenced by the
//! job's attempt, and applied in the job's span.

use tracing::{info, warn, Instrument};

use super::{sync::ComparedPage, Migrations, JOB_UPDATE_ATTEMPTS};
use crate::{
    bus::messages,
    domain::{
        audit::AuditEvent,
        ids::{AuditEventId, JobId, SiteId},
        job::{Job, JobState},
        name::Ref,
        principal::Role,
        report::{Report, ReportEvent, COPY_TASK, LIST_TASK, RETIRE_TASK},
        sync::JobKind,
    },
    error::{Error, Result},
    store::{ListedRecord, OutboxMessage, Switch},
};

impl Migrations {
    /// Applies one agent report. Reports of another attempt than the job's, or for a job
    /// that has ended, change nothing: that is the fencing that keeps a late agent from
    /// switching or completing a job twice.
    ///
    /// `from` is the site the report came from, as its bus subject names it (which
    /// nats-server's permissions vouch for). A report from any other site than the one
    /// that runs the job is refused, audited and changes nothing.
    pub async fn apply(&self, report: Report, from: SiteId) -> Result<()> {
        let Some(job) = self.store.find_job(report.job_id).await? else {
            warn!(job_id = %report.job_id, "report for an unknown job dropped");
            return Ok(());
        };
        let span = job_span(&job);
        if job.executing_site_id != from {
            return self.refuse(&job, &report, from).instrument(span).await;
        }
        self.apply_to(job, report).instrument(span).await
    }

    /// Records a report that came from a site that does not run its job: it is dropped,
    /// and the audit log says who tried.
    async fn refuse(&self, job: &Job, report: &Report, from: SiteId) -> Result<()> {
        let outcome = format!(
            "denied: site {from} does not run job {}; site {} does",
            job.id, job.executing_site_id
        );
        warn!(site = %from, task = %report.task_id, "{outcome}; report dropped");
        self.store
            .append_audit(&AuditEvent {
                id: AuditEventId::new(),
                at: self.catalogue.clock().now(),
                principal: format!("nats:site:{from}"),
                role: Role::Agent,
                method: "bus:progress".into(),
                resource: format!("job:{}", job.id),
                summary: format!(
                    "{} report of task {}",
                    report.event.kind(),
                    report.task_id.chars().take(64).collect::<String>()
                ),
                outcome,
            })
            .await
    }

    async fn apply_to(&self, job: Job, report: Report) -> Result<()> {
        if report.attempt != job.attempt || job.state.is_terminal() {
            info!(
                job_id = %job.id,
                report_attempt = report.attempt,
                job_attempt = job.attempt,
                state = %job.state,
                "stale report ignored"
            );
            return Ok(());
        }
        match report.event {
            ReportEvent::Started => {
                let first_task = report.task_id == LIST_TASK || report.task_id == COPY_TASK;
                if !first_task || job.state != JobState::Queued {
                    return Ok(());
                }
                self.transition(job.id, |j| {
                    if j.attempt == report.attempt && j.state == JobState::Queued {
                        j.state = j
                            .state
                            .start_copy()
                            .map_err(|e| Error::FailedPrecondition(e.to_string()))?;
                        j.started_at.get_or_insert(self.catalogue.clock().now());
                    }
                    Ok(Vec::new())
                })
                .await?;
            }
            ReportEvent::Listed { objects, bytes } => {
                self.store.set_job_totals(job.id, objects, bytes).await?;
                self.changed(job.id, false);
            }
            ReportEvent::Objects(objects) => {
                let now = self.catalogue.clock().now();
                self.store.upsert_job_objects(job.id, &objects, now).await?;
                self.changed(job.id, false);
                if job.listed && job.state == JobState::Copying {
                    self.verifying_once_copied(job.id, report.attempt).await?;
                }
            }
            ReportEvent::Compared {
                task,
                objects,
                destination_only,
                manifest_only,
                destination_empty,
            } => match job.kind {
                // A migration's final pass: what its destination holds beyond the source.
                JobKind::Migration => self.record_vanished(&job, destination_only).await?,
                JobKind::Sync(_) => {
                    let page = ComparedPage {
                        task,
                        objects,
                        destination_only,
                        manifest_only,
                        destination_empty,
                    };
                    self.record_compared(&job, page).await?
                }
            },
            ReportEvent::ManifestCompared {
                unchanged_objects,
                unchanged_bytes,
            } => {
                let now = self.catalogue.clock().now();
                self.store
                    .set_manifest_unchanged(job.id, unchanged_objects, unchanged_bytes, now)
                    .await?;
                info!(job_id = %job.id, unchanged_objects, unchanged_bytes, "objects unchanged since the replica's manifest counted");
                self.changed(job.id, false);
            }
            ReportEvent::TaskListed {
                task,
                objects,
                destination_empty,
            } => {
                let records: Vec<ListedRecord> =
                    objects.into_iter().map(ListedRecord::from).collect();
                let dispatched = self
                    .record_page(&job, &task, &records, destination_empty)
                    .await?;
                info!(job_id = %job.id, task, listed = records.len(), dispatched, "copy task recorded");
            }
            ReportEvent::Upload { key, upload } => {
                let now = self.catalogue.clock().now();
                self.store.record_upload(job.id, &key, upload, now).await?;
            }
            // Phases follow from the objects' statuses since jobs are split into tasks.
            ReportEvent::Phase(_) => {}
            ReportEvent::Finished { success, error } if report.task_id == RETIRE_TASK => {
                self.finish_retirement(job.id, report.attempt, success, error)
                    .await?;
            }
            ReportEvent::Finished { success, error } if report.task_id == LIST_TASK => {
                if !success {
                    let error = error.unwrap_or_else(|| "the agent reported a failure".into());
                    return self
                        .fail(
                            job.id,
                            report.attempt,
                            &format!("listing the source: {error}"),
                        )
                        .await;
                }
                self.transition(job.id, |j| {
                    if j.attempt == report.attempt {
                        j.listed = true;
                    }
                    Ok(Vec::new())
                })
                .await?;
                self.settle(job.id, report.attempt).await?;
            }
            ReportEvent::Finished { success, error } => {
                if !success {
                    let error = error.unwrap_or_else(|| "the agent reported a failure".into());
                    let now = self.catalogue.clock().now();
                    let failed = self
                        .store
                        .fail_task_objects(job.id, &report.task_id, &error, now)
                        .await?;
                    warn!(job_id = %job.id, task = %report.task_id, failed, error, "copy task failed");
                }
                self.settle(job.id, report.attempt).await?;
            }
        }
        Ok(())
    }

    /// Enters `verifying` once every listed object is copied: what is left is checking.
    async fn verifying_once_copied(&self, id: JobId, attempt: u32) -> Result<()> {
        if self.store.has_objects_not_copied(id).await? {
            return Ok(());
        }
        self.enter_verifying(id, attempt).await
    }

    /// `copying` → `verifying` for the attempt; nothing when it is past that already.
    async fn enter_verifying(&self, id: JobId, attempt: u32) -> Result<()> {
        self.transition(id, |j| {
            if j.attempt == attempt && j.state == JobState::Copying {
                j.state = j
                    .state
                    .start_verify()
                    .map_err(|e| Error::FailedPrecondition(e.to_string()))?;
            }
            Ok(Vec::new())
        })
        .await?;
        Ok(())
    }

    /// Ends the copy of an attempt once its listing finished and no listed object needs
    /// work any more: it switches when every object is verified or skipped, and fails,
    /// source untouched, when any object failed.
    async fn settle(&self, id: JobId, attempt: u32) -> Result<()> {
        let job = self.get(id).await?;
        let copying = matches!(job.state, JobState::Copying | JobState::Verifying);
        if job.attempt != attempt || !job.listed || !copying {
            return Ok(());
        }
        if self.store.has_unfinished_objects(id).await? {
            return Ok(());
        }
        let c = self.store.job_counters(id).await?;
        if c.objects_failed > 0 {
            let first = self.store.recent_object_errors(id, 1).await?;
            let reason = first
                .first()
                .map(|o| {
                    format!(
                        "; last: {}: {}",
                        o.key,
                        o.error.as_deref().unwrap_or("no reason recorded")
                    )
                })
                .unwrap_or_default();
            let outcome = match job.kind {
                JobKind::Migration => "not switching",
                JobKind::Sync(_) => "the replica is not in step",
            };
            let error = format!(
                "{} of {} objects failed{reason}; {outcome}",
                c.objects_failed, c.objects_total
            );
            return self.fail(id, attempt, &error).await;
        }
        self.enter_verifying(id, attempt).await?;
        match job.kind {
            JobKind::Migration if job.needs_final_pass() => {
                self.start_final_pass(id, attempt).await
            }
            JobKind::Migration => {
                // Copies of objects the final pass found deleted at the source go first.
                let vanished = self.store.extras(id).await?;
                if vanished.is_empty() {
                    self.switch(id, attempt).await
                } else {
                    self.delete_extras(id, attempt, &vanished).await
                }
            }
            JobKind::Sync(rule) => self.finish_sync(id, attempt, rule).await,
        }
    }

    /// Every object is verified, but the source may have changed since it was listed:
    /// it is listed once more, and what is new or changed (size, time, etag) becomes
    /// copy tasks `final-<n>`; the switch follows when those are verified too.
    async fn start_final_pass(&self, id: JobId, attempt: u32) -> Result<()> {
        let job = self
            .transition(id, |j| {
                if j.attempt != attempt || j.final_pass || j.state.is_terminal() {
                    return Ok(Vec::new());
                }
                j.final_pass = true;
                j.listed = false;
                Ok(vec![messages::dispatch_list(j)])
            })
            .await?;
        info!(job_id = %id, attempt, "final pass: listing the source again before the switch");
        self.changed(job.id, true);
        Ok(())
    }

    pub(super) async fn fail(&self, id: JobId, attempt: u32, error: &str) -> Result<()> {
        let uploads = self.store.recorded_uploads(id).await?;
        let job = self
            .transition(id, |j| {
                if j.attempt != attempt || j.state.is_terminal() {
                    return Ok(Vec::new());
                }
                j.state = j
                    .state
                    .fail()
                    .map_err(|e| Error::FailedPrecondition(e.to_string()))?;
                j.error = Some(error.to_owned());
                j.ended_at = Some(self.catalogue.clock().now());
                Ok(abort_uploads(j, &uploads))
            })
            .await?;
        warn!(job_id = %job.id, attempt, error, kind = job.kind.as_str(), "job failed; the source is untouched");
        Ok(())
    }

    /// The switch: only when every object of the attempt is verified. In one
    /// transaction the destination becomes primary and the dataset moves; the source is
    /// retired afterwards, as its own step, only when the plan asked for it.
    async fn switch(&self, id: JobId, attempt: u32) -> Result<()> {
        let span = tracing::info_span!("switch", job_id = %id, attempt);
        self.switch_in_span(id, attempt).instrument(span).await
    }

    async fn switch_in_span(&self, id: JobId, attempt: u32) -> Result<()> {
        for _ in 0..JOB_UPDATE_ATTEMPTS {
            let mut job = self.get(id).await?;
            if job.attempt != attempt || job.state.is_terminal() || job.state == JobState::Switching
            {
                return Ok(());
            }
            let c = self.store.job_counters(id).await?;
            if c.objects_failed > 0 || c.objects_done < c.objects_total {
                let error = format!(
                    "{} of {} objects verified, {} failed; not switching",
                    c.objects_done, c.objects_total, c.objects_failed
                );
                return self.fail(id, attempt, &error).await;
            }
            let destination = self
                .catalogue
                .get_site(&Ref::Id(job.destination_site_id))
                .await?;
            let read_at = job.updated_at;
            let now = self.catalogue.clock().next_update(read_at);
            job.state = job
                .state
                .start_switch()
                .map_err(|e| Error::FailedPrecondition(e.to_string()))?;
            let outbox = if job.retire_source {
                vec![messages::dispatch_retire(&job)]
            } else {
                job.state = job
                    .state
                    .complete()
                    .map_err(|e| Error::Internal(e.to_string()))?;
                job.ended_at = Some(now);
                Vec::new()
            };
            job.updated_at = now;
            let switched = self
                .store
                .commit_switch(Switch {
                    job: &job,
                    job_read_at: read_at,
                    destination_tier: destination.tier,
                    at: now,
                    outbox: &outbox,
                })
                .await?;
            if switched {
                info!(
                    job_id = %job.id,
                    dataset_id = %job.dataset_id,
                    to = %destination.name,
                    retire_source = job.retire_source,
                    "switched: the destination is now the primary replica"
                );
                self.changed(id, !outbox.is_empty());
                return Ok(());
            }
        }
        Err(Error::Conflict(format!(
            "job {id} is being changed concurrently; retry"
        )))
    }

    async fn finish_retirement(
        &self,
        id: JobId,
        attempt: u32,
        success: bool,
        error: Option<String>,
    ) -> Result<()> {
        for _ in 0..JOB_UPDATE_ATTEMPTS {
            let mut job = self.get(id).await?;
            if job.attempt != attempt || job.state != JobState::Switching {
                return Ok(());
            }
            let read_at = job.updated_at;
            job.state = job
                .state
                .complete()
                .map_err(|e| Error::Internal(e.to_string()))?;
            job.source_retired = success;
            if !success {
                // The switch committed: the data is safe at the destination. The failed
                // deletion is recorded for the operator, not fatal to the job.
                job.error = Some(format!(
                    "source retirement failed: {}",
                    error.as_deref().unwrap_or("unknown error")
                ));
            }
            job.updated_at = self.catalogue.clock().next_update(read_at);
            job.ended_at = Some(job.updated_at);
            let done = if success {
                self.store.commit_retirement(&job, read_at).await?
            } else {
                self.store.update_job(&job, read_at, &[]).await?
            };
            if done {
                info!(job_id = %job.id, source_retired = success, "migration completed");
                self.changed(id, false);
                return Ok(());
            }
        }
        Err(Error::Conflict(format!(
            "job {id} is being changed concurrently; retry"
        )))
    }
}

/// The task that aborts a job's unfinished multipart uploads, when it has any: once it
/// ended they would never complete, and their parts would stay (and be billed) at the
/// destination. A retry starts those objects over.
/// The span of one job's work in the control plane: its id, dataset and both sites.
pub(crate) fn job_span(job: &Job) -> tracing::Span {
    tracing::info_span!(
        "job",
        job_id = %job.id,
        dataset = %job.dataset_id,
        source = %job.source_site_id,
        destination = %job.destination_site_id,
    )
}

pub(super) fn abort_uploads(job: &Job, uploads: &[(String, String)]) -> Vec<OutboxMessage> {
    if uploads.is_empty() {
        return Vec::new();
    }
    vec![messages::dispatch_abort_uploads(job, uploads)]
}
