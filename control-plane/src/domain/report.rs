//! What agents report about the jobs they run.

use super::{
    ids::{AgentId, JobId},
    job::{JobObject, JobState, MultipartUpload},
    sync::ComparedObject,
};

/// The task of a job that lists its source into copy tasks.
pub const LIST_TASK: &str = "list";
/// The single task that copied and verified a whole job before jobs were split; its
/// reports are still understood.
pub const COPY_TASK: &str = "copy";
/// The task that aborts a job's unfinished multipart uploads once it ended.
pub const ABORT_UPLOADS_TASK: &str = "abort-uploads";
/// The task that deletes the source after the switch.
pub const RETIRE_TASK: &str = "retire";
/// The prefix of the tasks that delete a sync's extras at the destination.
pub const DELETE_TASK_PREFIX: &str = "delete-";

#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub job_id: JobId,
    /// The fencing token: a report of another attempt than the job's current one is
    /// ignored, so an agent that wakes up late cannot move a job that moved on.
    pub attempt: u32,
    pub task_id: String,
    pub agent_id: Option<AgentId>,
    pub event: ReportEvent,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ReportEvent {
    Started,
    Listed {
        objects: u64,
        bytes: u64,
    },
    Objects(Vec<JobObject>),
    /// A page of the listing, to record and dispatch as the copy task `task`.
    TaskListed {
        task: String,
        /// Each object with its etag and modification time where its store lists them:
        /// the etag goes to the copy task, so that a server-side copy needs no HEAD,
        /// and a later listing (the final pass, a retry) copies again what changed.
        /// What the destination holds is not known (`destination_size` is `None`).
        objects: Vec<ComparedObject>,
        /// The destination held nothing when the listing began: passed on to the copy
        /// task so that its first run does not list the destination.
        destination_empty: bool,
    },
    /// A page of a sync's listing, to compare with the replica's manifest: the objects
    /// that changed become the copy task `task`.
    Compared {
        task: String,
        objects: Vec<ComparedObject>,
        /// Objects (key, size) at the destination only.
        destination_only: Vec<(String, u64)>,
        /// Keys the replica's manifest records that neither side holds any more.
        manifest_only: Vec<String>,
        destination_empty: bool,
    },
    /// The end of a sync's listing that the agent compared with the replica's
    /// manifest: the source objects it found unchanged, and did not report one by one.
    ManifestCompared {
        unchanged_objects: u64,
        unchanged_bytes: u64,
    },
    /// A multipart upload of `key` started or stored more parts.
    Upload {
        key: String,
        upload: MultipartUpload,
    },
    Phase(JobState),
    Finished {
        success: bool,
        error: Option<String>,
    },
}

impl ReportEvent {
    /// What kind of report this is, for logs and the audit log.
    pub fn kind(&self) -> &'static str {
        match self {
            ReportEvent::Started => "started",
            ReportEvent::Listed { .. } => "listed",
            ReportEvent::Objects(_) => "objects",
            ReportEvent::TaskListed { .. } => "task listed",
            ReportEvent::Compared { .. } => "task compared",
            ReportEvent::ManifestCompared { .. } => "manifest compared",
            ReportEvent::Upload { .. } => "upload",
            ReportEvent::Phase(_) => "phase",
            ReportEvent::Finished { .. } => "finished",
        }
    }
}
