//! What agents report about the jobs they run.

use super::{
    ids::{AgentId, JobId},
    job::{JobObject, JobState},
};

/// The task of a job that copies and verifies its objects.
pub const COPY_TASK: &str = "copy";
/// The task that deletes the source after the switch.
pub const RETIRE_TASK: &str = "retire";

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
    Phase(JobState),
    Finished {
        success: bool,
        error: Option<String>,
    },
}
