//! Sync schedules on the wire.

use ferry_proto::{time::to_timestamp, v1 as pb};
use prost::Message;

use crate::{
    domain::schedule::{SyncSchedule, When},
    error::{Error, Result},
};

/// A `CreateSyncScheduleRequest`: its name, the sync to plan, when (checked), and
/// whether it also runs as files change.
pub fn schedule_request(
    req: pb::CreateSyncScheduleRequest,
) -> Result<(String, pb::PlanSyncRequest, When, bool)> {
    let schedule = req
        .schedule
        .ok_or_else(|| Error::invalid("schedule", "is required"))?;
    let sync = schedule
        .sync
        .ok_or_else(|| Error::invalid("schedule.sync", "is required: the sync each run plans"))?;
    let when =
        When::parse(&schedule.cron, &schedule.time_zone).map_err(|e| e.within("schedule"))?;
    Ok((schedule.name, sync, when, schedule.continuous))
}

pub fn schedule_to_pb(s: &SyncSchedule) -> pb::SyncSchedule {
    pb::SyncSchedule {
        id: s.id.to_string(),
        name: s.name.to_string(),
        // Written by this control plane from a checked request: it decodes.
        sync: pb::PlanSyncRequest::decode(s.sync.as_slice()).ok(),
        cron: s.when.pattern().to_owned(),
        time_zone: s.when.time_zone().to_owned(),
        next_run_time: Some(to_timestamp(s.next_run_at)),
        last_job: s.last_job.map(|j| j.to_string()).unwrap_or_default(),
        runs: s.runs,
        skipped: s.skipped,
        last_error: s.last_error.clone().unwrap_or_default(),
        create_time: Some(to_timestamp(s.created_at)),
        continuous: s.continuous,
        pending_changes: s.pending_changes,
    }
}
