//! Encoding of the protobuf messages that travel over NATS: job commands out, progress
//! reports in. None of them carries a credential.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use ferry_proto::v1 as pb;
use prost::Message;

use super::jobs_subject;
use crate::{
    domain::{
        job::{
            Job, JobObject, JobState, MultipartUpload, ObjectFilter, ObjectStatus, UploadedPart,
        },
        report::{Report, ReportEvent, ABORT_UPLOADS_TASK, LIST_TASK, RETIRE_TASK},
        tier::VerifyMode,
    },
    error::{Error, Result},
    store::OutboxMessage,
};

/// The message that hands a job's task to the agents of its executing site. Its id,
/// `<job>.<attempt>.<task>`, lets JetStream drop a repeat of the same dispatch.
fn dispatch(
    job: &Job,
    task: &str,
    kind: pb::TaskKind,
    objects: Vec<pb::ListedObject>,
) -> OutboxMessage {
    to_outbox(job, command(job, task, kind, objects))
}

/// The command for a job's task, with everything the job itself says.
fn command(
    job: &Job,
    task: &str,
    kind: pb::TaskKind,
    objects: Vec<pb::ListedObject>,
) -> pb::JobCommand {
    pb::JobCommand {
        job_id: job.id.to_string(),
        attempt: job.attempt,
        task_id: task.to_owned(),
        kind: kind.into(),
        source_site: job.source_site_id.to_string(),
        source_path: job.source_path.clone(),
        destination_site: job.destination_site_id.to_string(),
        destination_path: job.destination_path.clone(),
        storage_class: job.storage_class.clone(),
        verify_mode: verify_mode_to_pb(job.verify_mode),
        filter: Some(filter_to_pb(&job.filter)),
        keys: Vec::new(),
        bandwidth_limit_bytes_per_sec: job.bandwidth_limit.unwrap_or(0),
        objects,
        destination_was_empty: false,
    }
}

fn to_outbox(job: &Job, command: pb::JobCommand) -> OutboxMessage {
    OutboxMessage {
        subject: jobs_subject(job.executing_site_id),
        message_id: format!("{}.{}.{}", job.id, job.attempt, command.task_id),
        payload: command.encode_to_vec(),
    }
}

/// The task that lists a job's source into copy tasks: the first of every attempt.
pub fn dispatch_list(job: &Job) -> OutboxMessage {
    dispatch(job, LIST_TASK, pb::TaskKind::List, Vec::new())
}

/// A copy task: these objects (key, size) are copied and verified by whichever agent
/// of the site takes it. `etags` are the source's, as listed, where known;
/// `destination_was_empty` is what the listing found at the destination, false when
/// unknown.
pub fn dispatch_copy(
    job: &Job,
    task: &str,
    objects: &[(String, u64)],
    etags: &HashMap<String, String>,
    destination_was_empty: bool,
) -> OutboxMessage {
    let objects = objects
        .iter()
        .map(|(key, size)| pb::ListedObject {
            key: key.clone(),
            size: *size,
            etag: etags.get(key).cloned().unwrap_or_default(),
            ..Default::default()
        })
        .collect();
    let mut command = command(job, task, pb::TaskKind::Copy, objects);
    command.destination_was_empty = destination_was_empty;
    to_outbox(job, command)
}

/// The task that aborts the unfinished multipart uploads (key, upload id) of a job
/// that ended, whichever agent of the site takes it.
pub fn dispatch_abort_uploads(job: &Job, uploads: &[(String, String)]) -> OutboxMessage {
    let objects = uploads
        .iter()
        .map(|(key, upload_id)| pb::ListedObject {
            key: key.clone(),
            upload_id: upload_id.clone(),
            ..Default::default()
        })
        .collect();
    dispatch(job, ABORT_UPLOADS_TASK, pb::TaskKind::AbortUploads, objects)
}

/// The task that deletes the source once the switch committed.
pub fn dispatch_retire(job: &Job) -> OutboxMessage {
    dispatch(job, RETIRE_TASK, pb::TaskKind::Retire, Vec::new())
}

pub fn verify_mode_to_pb(m: VerifyMode) -> i32 {
    match m {
        VerifyMode::Quick => pb::VerifyMode::Quick,
        VerifyMode::Full => pb::VerifyMode::Full,
    }
    .into()
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
    })
}

/// Decodes a progress report. A malformed one is an error for the consumer to drop.
pub fn decode_report(payload: &[u8], now: DateTime<Utc>) -> Result<Report> {
    let bad = |what: String| Error::invalid("progress report", what);
    let r = pb::ProgressReport::decode(payload).map_err(|e| bad(e.to_string()))?;
    let event = match r.event.ok_or_else(|| bad("no event".into()))? {
        pb::progress_report::Event::Started(_) => ReportEvent::Started,
        pb::progress_report::Event::Listed(l) => ReportEvent::Listed {
            objects: l.objects,
            bytes: l.bytes,
        },
        pb::progress_report::Event::Phase(p) => {
            ReportEvent::Phase(match pb::JobState::try_from(p.state) {
                Ok(pb::JobState::Verifying) => JobState::Verifying,
                Ok(pb::JobState::Copying) => JobState::Copying,
                _ => return Err(bad(format!("unexpected phase {}", p.state))),
            })
        }
        pb::progress_report::Event::Objects(o) => ReportEvent::Objects(
            o.results
                .into_iter()
                .map(|o| {
                    let status = object_status_from_pb(o.status)
                        .ok_or_else(|| bad(format!("object {}: status {}", o.key, o.status)))?;
                    let some = |s: String| (!s.is_empty()).then_some(s);
                    Ok(JobObject {
                        key: o.key,
                        size: o.size,
                        status,
                        source_xxh3: some(o.source_xxh3),
                        destination_xxh3: some(o.destination_xxh3),
                        attempts: o.attempts,
                        error: some(o.error),
                        operation: some(o.operation),
                        updated_at: now,
                        task: None,
                        upload: None,
                    })
                })
                .collect::<Result<Vec<_>>>()?,
        ),
        pb::progress_report::Event::TaskListed(t) => {
            if t.copy_task_id.is_empty()
                || t.copy_task_id == LIST_TASK
                || t.copy_task_id == RETIRE_TASK
            {
                return Err(bad(format!("copy task id {:?}", t.copy_task_id)));
            }
            ReportEvent::TaskListed {
                task: t.copy_task_id,
                etags: t
                    .objects
                    .iter()
                    .filter(|o| !o.etag.is_empty())
                    .map(|o| (o.key.clone(), o.etag.clone()))
                    .collect(),
                objects: t.objects.into_iter().map(|o| (o.key, o.size)).collect(),
                destination_empty: t.destination_empty,
            }
        }
        pb::progress_report::Event::Upload(u) => ReportEvent::Upload {
            upload: upload_from_pb(
                u.upload
                    .ok_or_else(|| bad(format!("upload of {}: missing", u.key)))?,
            ),
            key: u.key,
        },
        pb::progress_report::Event::Finished(f) => ReportEvent::Finished {
            success: f.success,
            error: (!f.error.is_empty()).then_some(f.error),
        },
    };
    Ok(Report {
        job_id: r.job_id.parse().map_err(|e| bad(format!("job_id: {e}")))?,
        attempt: r.attempt,
        task_id: r.task_id,
        agent_id: r.agent_id.parse().ok(),
        event,
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
