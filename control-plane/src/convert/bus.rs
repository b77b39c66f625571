//! The messages that travel over NATS: task commands out, progress reports and dry-run
//! answers in. None of them carries a credential.

use chrono::{DateTime, Utc};
use ferry_proto::{time::from_timestamp, v1 as pb};
use prost::Message;

use super::*;
use crate::{
    domain::{
        job::{Job, JobObject, JobState, ObjectFilter},
        report::{Report, ReportEvent, LIST_TASK, RETIRE_TASK},
        sync::{ComparedObject, JobKind},
    },
    error::{Error, Result},
};

/// What a listing through a plan's filter found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub objects: u64,
    pub bytes: u64,
    /// The first objects, key and size, in listing order.
    pub sample: Vec<(String, u64)>,
}

/// The command for a job's task, with everything the job itself says.
pub fn command(
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
        dataset_id: job.dataset_id.to_string(),
        job_kind: match job.kind {
            JobKind::Migration => pb::JobKind::Migration,
            JobKind::Sync(_) => pb::JobKind::Sync,
        }
        .into(),
        // Set on the final pass's listing only (see `dispatch_list`).
        final_pass: false,
        // Set on a copy task's first dispatch only (see `dispatch_copy`).
        first_dispatch: false,
    }
}

/// What a dry run asks an agent of the source site: the dataset's path and the plan's
/// filter, and how many objects to name.
pub fn dry_run_question(path: &str, filter: &ObjectFilter, sample: u32) -> pb::DryRunQuestion {
    pb::DryRunQuestion {
        path: path.to_owned(),
        filter: Some(filter_to_pb(filter)),
        sample,
    }
}

/// An agent's answer to a dry run: what would move, or why the source could not be
/// listed.
pub fn dry_run_answer(payload: &[u8]) -> Result<std::result::Result<Listed, String>> {
    let answer = pb::DryRunAnswer::decode(payload)
        .map_err(|e| Error::Internal(format!("decoding a dry run's answer: {e}")))?;
    if !answer.error.is_empty() {
        return Ok(Err(answer.error));
    }
    Ok(Ok(Listed {
        objects: answer.objects,
        bytes: answer.bytes,
        sample: answer.sample.into_iter().map(|o| (o.key, o.size)).collect(),
    }))
}

/// A source object as a listing reports it: what the destination holds under its key is
/// known in a sync's listing only.
fn listed_object(o: pb::ListedObject) -> ComparedObject {
    ComparedObject {
        modified: o.modified.as_ref().and_then(from_timestamp),
        destination_size: o.at_destination.then_some(o.destination_size),
        etag: (!o.etag.is_empty()).then_some(o.etag),
        size: o.size,
        key: o.key,
    }
}

/// A page of a sync's listing: source objects with what the destination holds, or the
/// destination's objects the source does not hold.
fn compared_page(t: pb::TaskListed) -> ReportEvent {
    ReportEvent::Compared {
        task: t.copy_task_id,
        objects: t.objects.into_iter().map(listed_object).collect(),
        destination_only: t
            .destination_only
            .into_iter()
            .map(|o| (o.key, o.size))
            .collect(),
        manifest_only: t.manifest_only,
        destination_empty: t.destination_empty,
    }
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
                        source_changed: false,
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
            if t.compared {
                return Ok(Report {
                    job_id: r.job_id.parse().map_err(|e| bad(format!("job_id: {e}")))?,
                    attempt: r.attempt,
                    task_id: r.task_id,
                    agent_id: r.agent_id.parse().ok(),
                    event: compared_page(t),
                });
            }
            ReportEvent::TaskListed {
                task: t.copy_task_id,
                objects: t.objects.into_iter().map(listed_object).collect(),
                destination_empty: t.destination_empty,
            }
        }
        pb::progress_report::Event::ManifestCompared(m) => ReportEvent::ManifestCompared {
            unchanged_objects: m.unchanged_objects,
            unchanged_bytes: m.unchanged_bytes,
        },
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
