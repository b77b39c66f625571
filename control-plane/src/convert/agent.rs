//! Agents.

use ferry_proto::{time::to_timestamp, v1 as pb};

use crate::{
    domain::{agent::Liveness, ids::AgentId, sync::ManifestEntry},
    error::{Error, Result},
};

pub fn agent_id(s: &str) -> Result<AgentId> {
    s.parse()
        .map_err(|_| Error::invalid("agent_id", format!("'{s}' is not an agent id")))
}

/// The most keys one `ReportChanges` call carries.
const MAX_REPORTED_KEYS: usize = 1000;
/// The longest key a watcher reports, in bytes (S3's limit).
const MAX_KEY_BYTES: usize = 1024;

/// Keys a watcher reported: relative paths below the dataset's directory, with no
/// empty, `.` or `..` segment, at most [`MAX_REPORTED_KEYS`] of them.
pub fn check_changed_keys(keys: &[String]) -> Result<()> {
    if keys.len() > MAX_REPORTED_KEYS {
        return Err(Error::invalid(
            "keys",
            format!("{} keys; at most {MAX_REPORTED_KEYS} per call", keys.len()),
        ));
    }
    for (i, key) in keys.iter().enumerate() {
        let bad = key.is_empty()
            || key.len() > MAX_KEY_BYTES
            || key.contains('\0')
            || key
                .split('/')
                .any(|segment| segment.is_empty() || segment == "." || segment == "..");
        if bad {
            return Err(Error::invalid(
                format!("keys[{i}]"),
                format!(
                    "{key:?} is not a key below the dataset: a relative path of at most \
                     {MAX_KEY_BYTES} bytes without empty, `.` or `..` segments"
                ),
            ));
        }
    }
    Ok(())
}

pub fn agent_to_pb(
    a: crate::domain::agent::Agent,
    now: chrono::DateTime<chrono::Utc>,
) -> pb::Agent {
    let state = match a.liveness(now) {
        Liveness::Alive => pb::AgentState::Alive,
        Liveness::Stale => pb::AgentState::Stale,
        Liveness::Stopped => pb::AgentState::Stopped,
    };
    pb::Agent {
        id: a.id.to_string(),
        site: a.site_id.to_string(),
        version: a.version,
        hostname: a.hostname,
        state: state.into(),
        concurrency: a.concurrency,
        last_heartbeat_time: Some(to_timestamp(a.last_heartbeat_at)),
        register_time: Some(to_timestamp(a.registered_at)),
        jobs: a.jobs.iter().map(ToString::to_string).collect(),
    }
}

/// A replica's manifest entry, as an agent compares a listing with it.
pub fn manifest_object_to_pb((key, entry): (String, ManifestEntry)) -> pb::ManifestObject {
    pb::ManifestObject {
        key,
        size: entry.size,
        modified: entry.modified.map(to_timestamp),
        etag: entry.etag.unwrap_or_default(),
    }
}
