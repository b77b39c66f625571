//! Migration jobs: plans and their filters, jobs, their objects and uploads, dry runs.

use ferry_proto::{
    time::{from_timestamp, to_timestamp},
    v1 as pb,
};

use super::*;
use crate::{
    domain::{
        dataset::DatasetPath,
        ids::JobId,
        job::{
            Job, JobObject, JobState, MultipartUpload, ObjectFilter, ObjectStatus, UploadedPart,
        },
        name::Ref,
        sync::{Deletion, JobKind, SyncRule},
    },
    error::{Error, Result},
    service::{dry_run::DryRun, PlanRequest},
};

/// A job id from a request field, or `InvalidArgument` naming the field.
pub fn job_id(field: &str, s: &str) -> Result<JobId> {
    s.parse()
        .map_err(|_| Error::invalid(field, format!("'{s}' is not a job id")))
}

pub fn plan_request(req: pb::PlanMigrationRequest) -> Result<PlanRequest> {
    let storage_class = (!req.storage_class.is_empty()).then_some(req.storage_class);
    if let Some(class) = &storage_class {
        if class.len() > 64 || !class.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Error::invalid(
                "storage_class",
                format!("'{class}' is not a storage class"),
            ));
        }
    }
    let key = (!req.idempotency_key.is_empty()).then_some(req.idempotency_key);
    if let Some(key) = &key {
        if key.len() > 200 || key.chars().any(char::is_control) {
            return Err(Error::invalid(
                "idempotency_key",
                "must be at most 200 printable characters",
            ));
        }
    }
    Ok(PlanRequest {
        dataset: Ref::parse("dataset", &req.dataset)?,
        destination_site: Ref::parse("destination_site", &req.destination_site)?,
        destination_path: (!req.destination_path.is_empty())
            .then(|| DatasetPath::parse("destination_path", &req.destination_path))
            .transpose()?,
        storage_class,
        verify_mode: verify_mode("verify_mode", req.verify_mode)?,
        retire_source: req.retire_source,
        idempotency_key: key,
        filter: filter(req.filter.unwrap_or_default())?,
        bandwidth_limit: (req.bandwidth_limit_bytes_per_sec != 0)
            .then_some(req.bandwidth_limit_bytes_per_sec),
        schedule: None,
        sync_keys: None,
        policy: None,
    })
}

pub fn filter(f: pb::ObjectFilter) -> Result<ObjectFilter> {
    let time = |field: &str, t: Option<prost_types::Timestamp>| {
        t.map(|t| from_timestamp(&t).ok_or_else(|| Error::invalid(field, "not a valid timestamp")))
            .transpose()
    };
    let filter = ObjectFilter {
        prefix: f.prefix,
        include: f.include,
        exclude: f.exclude,
        min_size: f.min_size,
        max_size: (f.max_size != 0).then_some(f.max_size),
        modified_before: time("filter.modified_before", f.modified_before)?,
        modified_after: time("filter.modified_after", f.modified_after)?,
    };
    // The agents' own check: a glob they could not compile is refused now.
    ferry_storage::ObjectFilter::new(&filter)?;
    Ok(filter)
}

pub fn job_state(field: &str, value: i32) -> Result<Option<JobState>> {
    Ok(Some(match pb::JobState::try_from(value) {
        Ok(pb::JobState::Unspecified) => return Ok(None),
        Ok(pb::JobState::Queued) => JobState::Queued,
        Ok(pb::JobState::Copying) => JobState::Copying,
        Ok(pb::JobState::Verifying) => JobState::Verifying,
        Ok(pb::JobState::Switching) => JobState::Switching,
        Ok(pb::JobState::Completed) => JobState::Completed,
        Ok(pb::JobState::Failed) => JobState::Failed,
        Ok(pb::JobState::Cancelled) => JobState::Cancelled,
        Err(_) => return Err(Error::invalid(field, format!("unknown job state {value}"))),
    }))
}

pub fn job_state_to_pb(s: JobState) -> i32 {
    match s {
        JobState::Queued => pb::JobState::Queued,
        JobState::Copying => pb::JobState::Copying,
        JobState::Verifying => pb::JobState::Verifying,
        JobState::Switching => pb::JobState::Switching,
        JobState::Completed => pb::JobState::Completed,
        JobState::Failed => pb::JobState::Failed,
        JobState::Cancelled => pb::JobState::Cancelled,
    }
    .into()
}

pub fn job_to_pb(j: Job) -> pb::Job {
    pb::Job {
        id: j.id.to_string(),
        idempotency_key: j.idempotency_key,
        dataset: j.dataset_id.to_string(),
        source_site: j.source_site_id.to_string(),
        source_path: j.source_path,
        destination_site: j.destination_site_id.to_string(),
        destination_path: j.destination_path,
        storage_class: j.storage_class,
        verify_mode: verify_mode_to_pb(j.verify_mode),
        retire_source: j.retire_source,
        filter: Some(filter_to_pb(&j.filter)),
        state: job_state_to_pb(j.state),
        attempt: j.attempt,
        error: j.error.unwrap_or_default(),
        objects_total: j.counters.objects_total,
        objects_done: j.counters.objects_done,
        objects_failed: j.counters.objects_failed,
        bytes_total: j.counters.bytes_total,
        bytes_done: j.counters.bytes_done,
        bandwidth_limit_bytes_per_sec: j.bandwidth_limit.unwrap_or(0),
        source_retired: j.source_retired,
        create_time: Some(to_timestamp(j.created_at)),
        start_time: j.started_at.map(to_timestamp),
        update_time: Some(to_timestamp(j.updated_at)),
        end_time: j.ended_at.map(to_timestamp),
        executing_site: j.executing_site_id.to_string(),
        kind: match j.kind {
            JobKind::Migration => pb::JobKind::Migration,
            JobKind::Sync(_) => pb::JobKind::Sync,
        }
        .into(),
        sync: j.kind.sync().map(|rule| pb::SyncSettings {
            deletion: match rule.deletion {
                Deletion::Keep => pb::DeletionRule::Keep,
                Deletion::Delete => pb::DeletionRule::Delete,
            }
            .into(),
            max_delete: rule.max_delete.unwrap_or(0),
            objects_unchanged: j.sync.unchanged,
            extras_found: j.sync.extras,
            extras_deleted: j.sync.deleted,
            changed_keys: j.sync_keys.as_ref().map_or(0, |k| k.len() as u64),
        }),
        final_pass: j.final_pass,
        source_changes: j.source_changes,
        schedule: j.schedule_id.map(|s| s.to_string()).unwrap_or_default(),
        policy: j.policy_id.map(|p| p.to_string()).unwrap_or_default(),
    }
}

/// A `PlanSync` request: a plan with no retirement, and the sync's deletion rule.
pub fn plan_sync_request(req: pb::PlanSyncRequest) -> Result<(PlanRequest, SyncRule)> {
    let deletion = match pb::DeletionRule::try_from(req.deletion) {
        Ok(pb::DeletionRule::Unspecified | pb::DeletionRule::Keep) => Deletion::Keep,
        Ok(pb::DeletionRule::Delete) => Deletion::Delete,
        Err(_) => {
            return Err(Error::invalid(
                "deletion",
                format!("unknown deletion rule {}", req.deletion),
            ))
        }
    };
    if deletion == Deletion::Keep && req.max_delete != 0 {
        return Err(Error::invalid(
            "max_delete",
            "caps deletions, and deletion is keep: set deletion to DELETION_RULE_DELETE or \
             leave max_delete at 0",
        ));
    }
    let rule = SyncRule {
        deletion,
        max_delete: (req.max_delete != 0).then_some(req.max_delete),
    };
    let plan = plan_request(pb::PlanMigrationRequest {
        dataset: req.dataset,
        destination_site: req.destination_site,
        destination_path: req.destination_path,
        storage_class: req.storage_class,
        verify_mode: req.verify_mode,
        retire_source: false,
        idempotency_key: req.idempotency_key,
        dry_run: false,
        filter: req.filter,
        bandwidth_limit_bytes_per_sec: req.bandwidth_limit_bytes_per_sec,
    })?;
    Ok((plan, rule))
}

pub fn object_to_pb(o: JobObject) -> pb::JobObject {
    pb::JobObject {
        key: o.key,
        size: o.size,
        status: match o.status {
            ObjectStatus::Pending => pb::ObjectStatus::Pending,
            ObjectStatus::Copying => pb::ObjectStatus::Copying,
            ObjectStatus::Copied => pb::ObjectStatus::Copied,
            ObjectStatus::Verified => pb::ObjectStatus::Verified,
            ObjectStatus::Skipped => pb::ObjectStatus::Skipped,
            ObjectStatus::Failed => pb::ObjectStatus::Failed,
            ObjectStatus::Unchanged => pb::ObjectStatus::Unchanged,
            ObjectStatus::Extra => pb::ObjectStatus::Extra,
            ObjectStatus::Deleted => pb::ObjectStatus::Deleted,
        }
        .into(),
        source_xxh3: o.source_xxh3.unwrap_or_default(),
        destination_xxh3: o.destination_xxh3.unwrap_or_default(),
        attempts: o.attempts,
        error: o.error.unwrap_or_default(),
        task: o.task.unwrap_or_default(),
        upload: o.upload.as_ref().map(upload_to_pb),
        operation: o.operation.unwrap_or_default(),
        source_changed: o.source_changed,
    }
}

pub fn filter_to_pb(f: &ObjectFilter) -> pb::ObjectFilter {
    pb::ObjectFilter {
        prefix: f.prefix.clone(),
        include: f.include.clone(),
        exclude: f.exclude.clone(),
        min_size: f.min_size,
        max_size: f.max_size.unwrap_or(0),
        modified_before: f.modified_before.map(ferry_proto::time::to_timestamp),
        modified_after: f.modified_after.map(ferry_proto::time::to_timestamp),
    }
}

pub fn object_status_from_pb(value: i32) -> Option<ObjectStatus> {
    Some(match pb::ObjectStatus::try_from(value).ok()? {
        pb::ObjectStatus::Unspecified => return None,
        pb::ObjectStatus::Pending => ObjectStatus::Pending,
        pb::ObjectStatus::Copying => ObjectStatus::Copying,
        pb::ObjectStatus::Copied => ObjectStatus::Copied,
        pb::ObjectStatus::Verified => ObjectStatus::Verified,
        pb::ObjectStatus::Skipped => ObjectStatus::Skipped,
        pb::ObjectStatus::Failed => ObjectStatus::Failed,
        pb::ObjectStatus::Unchanged => ObjectStatus::Unchanged,
        pb::ObjectStatus::Extra => ObjectStatus::Extra,
        pb::ObjectStatus::Deleted => ObjectStatus::Deleted,
    })
}

pub fn upload_from_pb(u: pb::MultipartUpload) -> MultipartUpload {
    MultipartUpload {
        upload_id: u.upload_id,
        part_size: u.part_size,
        parts: u
            .parts
            .into_iter()
            .map(|p| UploadedPart {
                number: p.number,
                size: p.size,
                etag: p.etag,
                xxh3: p.xxh3,
            })
            .collect(),
    }
}

pub fn upload_to_pb(u: &MultipartUpload) -> pb::MultipartUpload {
    pb::MultipartUpload {
        upload_id: u.upload_id.clone(),
        part_size: u.part_size,
        parts: u
            .parts
            .iter()
            .map(|p| pb::UploadedPart {
                number: p.number,
                size: p.size,
                etag: p.etag.clone(),
                xxh3: p.xxh3.clone(),
            })
            .collect(),
    }
}

pub fn dry_run_to_pb(run: DryRun) -> pb::DryRunReport {
    pb::DryRunReport {
        objects: run.objects,
        bytes: run.bytes,
        sample: run
            .sample
            .into_iter()
            .map(|(key, size)| pb::PlannedObject { key, size })
            .collect(),
        estimated_cost: run.estimated_cost,
    }
}
