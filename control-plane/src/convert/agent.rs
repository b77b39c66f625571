//! Agents.

use ferry_proto::{time::to_timestamp, v1 as pb};

use crate::{
    domain::{agent::Liveness, ids::AgentId},
    error::{Error, Result},
};

pub fn agent_id(s: &str) -> Result<AgentId> {
    s.parse()
        .map_err(|_| Error::invalid("agent_id", format!("'{s}' is not an agent id")))
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
