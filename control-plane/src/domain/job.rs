//! Migration jobs: their lifecycle as a state machine, and what a plan asks for.
//!
//! `queued → copying → verifying → switching → completed`, or `failed` / `cancelled`.
//! Until the switch commits, the source stays the primary replica; after it, nothing can
//! fail or cancel the job (a failed source retirement is recorded, not fatal).

use std::fmt;

use chrono::{DateTime, Utc};
use ferry_storage::Scheme;

use super::{
    ids::{DatasetId, JobId, PolicyId, ScheduleId, SiteId},
    sync::{JobKind, SyncFigures},
    tier::VerifyMode,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobState {
    Queued,
    Copying,
    Verifying,
    Switching,
    Completed,
    Failed,
    Cancelled,
}

/// A transition the current state does not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidTransition {
    pub from: JobState,
    pub action: &'static str,
}

impl fmt::Display for InvalidTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} job cannot {}", self.from, self.action)
    }
}

type Transition = Result<JobState, InvalidTransition>;

impl JobState {
    /// Every state, in the order a job goes through them.
    pub const ALL: [JobState; 7] = [
        JobState::Queued,
        JobState::Copying,
        JobState::Verifying,
        JobState::Switching,
        JobState::Completed,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Copying => "copying",
            JobState::Verifying => "verifying",
            JobState::Switching => "switching",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed | JobState::Cancelled
        )
    }

    fn refuse(self, action: &'static str) -> Transition {
        Err(InvalidTransition { from: self, action })
    }

    /// An agent took the job. Repeating it (a redelivered task) is harmless.
    pub fn start_copy(self) -> Transition {
        match self {
            JobState::Queued | JobState::Copying => Ok(JobState::Copying),
            other => other.refuse("start copying"),
        }
    }

    /// Every object is copied; the destination is being checked.
    pub fn start_verify(self) -> Transition {
        match self {
            JobState::Copying | JobState::Verifying => Ok(JobState::Verifying),
            other => other.refuse("start verifying"),
        }
    }

    /// Every object is verified; the switch transaction may run.
    pub fn start_switch(self) -> Transition {
        match self {
            JobState::Copying | JobState::Verifying => Ok(JobState::Switching),
            other => other.refuse("switch"),
        }
    }

    pub fn complete(self) -> Transition {
        match self {
            JobState::Switching => Ok(JobState::Completed),
            other => other.refuse("complete"),
        }
    }

    /// A sync ends once every object is in step and its extras are dealt with: it has
    /// no switch.
    pub fn complete_sync(self) -> Transition {
        match self {
            JobState::Copying | JobState::Verifying => Ok(JobState::Completed),
            other => other.refuse("complete a sync"),
        }
    }

    /// Failing is only possible before the switch: afterwards the data already lives at
    /// the destination.
    pub fn fail(self) -> Transition {
        match self {
            JobState::Queued | JobState::Copying | JobState::Verifying => Ok(JobState::Failed),
            other => other.refuse("fail"),
        }
    }

    pub fn cancel(self) -> Transition {
        match self {
            JobState::Queued | JobState::Copying | JobState::Verifying => Ok(JobState::Cancelled),
            other => other.refuse("be cancelled"),
        }
    }

    /// Starts a failed or cancelled job over under a new attempt.
    pub fn retry(self) -> Transition {
        match self {
            JobState::Failed | JobState::Cancelled => Ok(JobState::Queued),
            other => other.refuse("be retried"),
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "queued" => JobState::Queued,
            "copying" => JobState::Copying,
            "verifying" => JobState::Verifying,
            "switching" => JobState::Switching,
            "completed" => JobState::Completed,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            other => return Err(format!("unknown job state '{other}'")),
        })
    }
}

/// Which source objects a migration takes: the storage layer's filter, which agents
/// apply to their listings and the control plane checks when a plan is made.
pub type ObjectFilter = ferry_storage::FilterSpec;

#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub id: JobId,
    pub idempotency_key: String,
    pub dataset_id: DatasetId,
    pub source_site_id: SiteId,
    pub source_path: String,
    pub destination_site_id: SiteId,
    pub destination_path: String,
    pub executing_site_id: SiteId,
    pub storage_class: String,
    pub verify_mode: VerifyMode,
    pub retire_source: bool,
    pub filter: ObjectFilter,
    pub state: JobState,
    /// The fencing token: bumped by every retry; reports of other attempts are ignored.
    pub attempt: u32,
    pub error: Option<String>,
    pub counters: Counters,
    pub bandwidth_limit: Option<u64>,
    pub source_retired: bool,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// The current attempt's listing of the source ran to its end: once every listed
    /// object is finished, the job can switch or fail.
    pub listed: bool,
    /// The W3C `traceparent` of the call that started the job: its tasks, reports and
    /// switch join that trace.
    pub trace_parent: Option<String>,
    /// A migration, or a sync with its deletion rule.
    pub kind: JobKind,
    /// What a sync found besides the common counters; zero for a migration.
    pub sync: SyncFigures,
    /// A migration's final listing of the source, once every object is verified and
    /// before the switch, began: what changed meanwhile is copied before switching.
    pub final_pass: bool,
    /// Objects found changed at the source after they were copied, and copied again.
    pub source_changes: u64,
    /// The sync schedule that planned the job, if one did.
    pub schedule_id: Option<ScheduleId>,
    /// The policy whose autopilot started the migration, if one did.
    pub policy_id: Option<PolicyId>,
    /// A continuous sync's run of reported changes: the keys it checks at both ends
    /// instead of listing them. `None`: the run lists everything.
    pub sync_keys: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub objects_total: u64,
    pub objects_done: u64,
    pub objects_failed: u64,
    pub bytes_total: u64,
    pub bytes_done: u64,
}

/// The site whose agents run a migration: the file-system side when exactly one side
/// is a file system (only an agent on that host can reach it), else the source.
pub fn executing_site(source: (SiteId, Scheme), destination: (SiteId, Scheme)) -> SiteId {
    match (source.1, destination.1) {
        (Scheme::File, _) => source.0,
        (_, Scheme::File) => destination.0,
        _ => source.0,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectStatus {
    Pending,
    Copying,
    Copied,
    Verified,
    Skipped,
    Failed,
    /// A sync found it as the replica's manifest recorded it: nothing to copy.
    Unchanged,
    /// At the destination only (a sync): kept, or about to be deleted.
    Extra,
    /// At the destination only, and deleted by a sync.
    Deleted,
}

impl ObjectStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectStatus::Pending => "pending",
            ObjectStatus::Copying => "copying",
            ObjectStatus::Copied => "copied",
            ObjectStatus::Verified => "verified",
            ObjectStatus::Skipped => "skipped",
            ObjectStatus::Failed => "failed",
            ObjectStatus::Unchanged => "unchanged",
            ObjectStatus::Extra => "extra",
            ObjectStatus::Deleted => "deleted",
        }
    }

    /// The statuses of an object that needs no more work in its job.
    pub const DONE: [ObjectStatus; 3] = [
        ObjectStatus::Verified,
        ObjectStatus::Skipped,
        ObjectStatus::Unchanged,
    ];

    /// Whether the object needs no more work in this job.
    pub fn is_done(self) -> bool {
        Self::DONE.contains(&self)
    }
}

impl std::str::FromStr for ObjectStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "pending" => ObjectStatus::Pending,
            "copying" => ObjectStatus::Copying,
            "copied" => ObjectStatus::Copied,
            "verified" => ObjectStatus::Verified,
            "skipped" => ObjectStatus::Skipped,
            "failed" => ObjectStatus::Failed,
            "unchanged" => ObjectStatus::Unchanged,
            "extra" => ObjectStatus::Extra,
            "deleted" => ObjectStatus::Deleted,
            other => return Err(format!("unknown object status '{other}'")),
        })
    }
}

/// One object of a job, as its agent last reported it.
#[derive(Clone, Debug, PartialEq)]
pub struct JobObject {
    pub key: String,
    pub size: u64,
    pub status: ObjectStatus,
    pub source_xxh3: Option<String>,
    pub destination_xxh3: Option<String>,
    pub attempts: u32,
    pub error: Option<String>,
    pub operation: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// The copy task of the current attempt the object belongs to.
    pub task: Option<String>,
    /// An unfinished multipart upload of the object, to resume.
    pub upload: Option<MultipartUpload>,
    /// The source changed after the object was copied; it was copied again.
    pub source_changed: bool,
}

impl Job {
    /// Whether the job rewrites the objects where they are (a storage-class change):
    /// its source and destination are one.
    pub fn in_place(&self) -> bool {
        self.source_site_id == self.destination_site_id && self.source_path == self.destination_path
    }

    /// Whether the job lists its source once more before switching: a migration that
    /// has not yet, unless it rewrites the objects in place (its own copies would look
    /// like changes).
    pub fn needs_final_pass(&self) -> bool {
        self.kind == JobKind::Migration && !self.final_pass && !self.in_place()
    }
}

/// A multipart upload in progress at an S3 destination: its id and the parts stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MultipartUpload {
    pub upload_id: String,
    pub part_size: u64,
    pub parts: Vec<UploadedPart>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UploadedPart {
    pub number: u32,
    pub size: u64,
    pub etag: String,
    /// xxh3-128 of the part, 32 lowercase hex digits.
    pub xxh3: String,
}

impl MultipartUpload {
    /// Adds what a report says: parts of the same upload are merged by number; another
    /// upload id replaces the record (the agent started over).
    pub fn merge(self, update: MultipartUpload) -> MultipartUpload {
        if self.upload_id != update.upload_id || self.part_size != update.part_size {
            return update;
        }
        let mut parts = self.parts;
        for part in update.parts {
            match parts.iter_mut().find(|p| p.number == part.number) {
                Some(existing) => *existing = part,
                None => parts.push(part),
            }
        }
        parts.sort_by_key(|p| p.number);
        MultipartUpload { parts, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_happy_path_is_linear() {
        let s = JobState::Queued.start_copy().unwrap();
        let s = s.start_verify().unwrap();
        let s = s.start_switch().unwrap();
        assert_eq!(s.complete().unwrap(), JobState::Completed);
    }

    #[test]
    fn nothing_fails_or_cancels_after_the_switch() {
        for s in [JobState::Switching, JobState::Completed] {
            assert!(s.fail().is_err());
            assert!(s.cancel().is_err());
        }
        let err = JobState::Switching.cancel().unwrap_err();
        assert_eq!(err.to_string(), "a switching job cannot be cancelled");
    }

    #[test]
    fn only_ended_jobs_are_retried() {
        assert_eq!(JobState::Failed.retry().unwrap(), JobState::Queued);
        assert_eq!(JobState::Cancelled.retry().unwrap(), JobState::Queued);
        assert!(JobState::Copying.retry().is_err());
        assert!(JobState::Completed.retry().is_err());
    }

    #[test]
    fn redelivered_starts_are_harmless() {
        assert_eq!(JobState::Copying.start_copy().unwrap(), JobState::Copying);
        assert!(JobState::Completed.start_copy().is_err());
    }

    #[test]
    fn the_file_system_side_executes() {
        let (a, b) = (SiteId::new(), SiteId::new());
        assert_eq!(executing_site((a, Scheme::S3), (b, Scheme::File)), b);
        assert_eq!(executing_site((a, Scheme::File), (b, Scheme::S3)), a);
        assert_eq!(executing_site((a, Scheme::S3), (b, Scheme::S3)), a);
    }
}
