//! Encoding of the protobuf messages that travel over NATS: job commands out, progress
//! reports in. None of them carries a credential.

use std::collections::HashMap;

use ferry_proto::v1 as pb;
use prost::Message;

use super::jobs_subject;
use crate::convert::command;
use crate::{
    domain::{
        job::Job,
        report::{ABORT_UPLOADS_TASK, LIST_TASK, RETIRE_TASK},
    },
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

fn to_outbox(job: &Job, command: pb::JobCommand) -> OutboxMessage {
    OutboxMessage {
        subject: jobs_subject(job.executing_site_id),
        message_id: format!("{}.{}.{}", job.id, job.attempt, command.task_id),
        payload: command.encode_to_vec(),
        trace_parent: trace_parent(job),
    }
}

/// The context a job's message carries: the current span's when it belongs to the
/// job's trace (a report being applied), else the job's own (a background re-dispatch
/// joins the trace of the call that started the job).
fn trace_parent(job: &Job) -> Option<String> {
    use ferry_telemetry::propagation::{current_traceparent, same_trace};
    match (current_traceparent(), &job.trace_parent) {
        (Some(current), Some(started)) if same_trace(&current, started) => Some(current),
        (current, started) => started.clone().or(current),
    }
}

/// The task that lists a job's source into copy tasks: the first of every attempt.
/// A migration's final pass lists again under its own message id, so JetStream does not
/// take it for a repeat of the first.
pub fn dispatch_list(job: &Job) -> OutboxMessage {
    let mut command = command(job, LIST_TASK, pb::TaskKind::List, Vec::new());
    command.final_pass = job.final_pass;
    command.keys = job.sync_keys.clone().unwrap_or_default();
    let mut message = to_outbox(job, command);
    if job.final_pass {
        message.message_id.push_str(".final");
    }
    message
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
    first_dispatch: bool,
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
    command.first_dispatch = first_dispatch;
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

/// A task that deletes a sync's extras (key, size) at the destination.
pub fn dispatch_delete(job: &Job, task: &str, objects: &[(String, u64)]) -> OutboxMessage {
    let objects = objects
        .iter()
        .map(|(key, size)| pb::ListedObject {
            key: key.clone(),
            size: *size,
            ..Default::default()
        })
        .collect();
    dispatch(job, task, pb::TaskKind::Delete, objects)
}

/// The task that deletes the source once the switch committed.
pub fn dispatch_retire(job: &Job) -> OutboxMessage {
    dispatch(job, RETIRE_TASK, pb::TaskKind::Retire, Vec::new())
}

/// What a listing through a plan's filter found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub objects: u64,
    pub bytes: u64,
    /// The first objects, key and size, in listing order.
    pub sample: Vec<(String, u64)>,
}
