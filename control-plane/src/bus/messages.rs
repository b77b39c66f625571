//! Encoding of the protobuf messages that travel over NATS: job commands out, progress
//! reports in. None of them carries a credential.

use chrono::{DateTime, Utc};
use ferry_proto::v1 as pb;
use prost::Message;

use super::jobs_subject;
use crate::{
    domain::{
        job::{Job, JobObject, JobState, ObjectFilter, ObjectStatus},
        report::{Report, ReportEvent, COPY_TASK, RETIRE_TASK},
        tier::VerifyMode,
    },
    error::{Error, Result},
    store::OutboxMessage,
};

/// The message that hands a job's task to the agents of its executing site. Its id,
/// `<job>.<attempt>.<task>`, lets JetStream drop a repeat of the same dispatch.
pub fn dispatch(job: &Job, task: &str) -> OutboxMessage {
    let kind = match task {
        RETIRE_TASK => pb::TaskKind::Retire,
        _ => pb::TaskKind::Copy,
    };
    let command = pb::JobCommand {
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
    };
    OutboxMessage {
        subject: jobs_subject(job.executing_site_id),
        message_id: format!("{}.{}.{task}", job.id, job.attempt),
        payload: command.encode_to_vec(),
    }
}

/// The copy task of a job.
pub fn dispatch_copy(job: &Job) -> OutboxMessage {
    dispatch(job, COPY_TASK)
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
                    })
                })
                .collect::<Result<Vec<_>>>()?,
        ),
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
