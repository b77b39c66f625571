//! Agents: processes near a site that move its bytes.

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};

use super::ids::{AgentId, JobId, SiteId};

/// How often agents are asked to heartbeat.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// Missing this many heartbeats makes an agent stale.
const MISSED_HEARTBEATS: u32 = 3;
/// Silence after which an agent is stale: its jobs' tasks go to others.
pub const STALE_AFTER: Duration =
    Duration::from_secs(HEARTBEAT_INTERVAL.as_secs() * MISSED_HEARTBEATS as u64);

#[derive(Clone, Debug, PartialEq)]
pub struct Agent {
    pub id: AgentId,
    pub site_id: SiteId,
    pub version: String,
    pub hostname: String,
    pub concurrency: u32,
    pub stopped: bool,
    pub last_heartbeat_at: DateTime<Utc>,
    pub registered_at: DateTime<Utc>,
    /// Jobs it runs copy tasks of, as of its last heartbeat.
    pub jobs: Vec<JobId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Stale,
    Stopped,
}

impl Agent {
    pub fn liveness(&self, now: DateTime<Utc>) -> Liveness {
        if self.stopped {
            return Liveness::Stopped;
        }
        match (now - self.last_heartbeat_at).to_std() {
            Ok(age) if age > STALE_AFTER => Liveness::Stale,
            _ => Liveness::Alive,
        }
    }
}

/// For each of `jobs`, how many live agents among `agents` run copy tasks of it: the
/// agents that split the job's bandwidth limit.
pub fn agents_per_job(agents: &[Agent], jobs: &[JobId], now: DateTime<Utc>) -> HashMap<JobId, u32> {
    let live: Vec<&Agent> = agents
        .iter()
        .filter(|a| a.liveness(now) == Liveness::Alive)
        .collect();
    jobs.iter()
        .map(|job| {
            let count = live.iter().filter(|a| a.jobs.contains(job)).count();
            (*job, u32::try_from(count).unwrap_or(u32::MAX))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_makes_an_agent_stale() {
        let now = Utc::now();
        let mut agent = Agent {
            id: AgentId::new(),
            site_id: SiteId::new(),
            version: "0.1.0".into(),
            hostname: "h".into(),
            concurrency: 4,
            stopped: false,
            last_heartbeat_at: now,
            registered_at: now,
            jobs: Vec::new(),
        };
        assert_eq!(agent.liveness(now), Liveness::Alive);
        assert_eq!(
            agent.liveness(now + chrono::TimeDelta::seconds(16)),
            Liveness::Stale
        );
        agent.stopped = true;
        assert_eq!(agent.liveness(now), Liveness::Stopped);
    }

    #[test]
    fn a_jobs_agents_are_the_live_ones_running_its_tasks() {
        let now = Utc::now();
        let (j, k, idle) = (JobId::new(), JobId::new(), JobId::new());
        let agent = |jobs: Vec<JobId>, heartbeat_ago: i64, stopped: bool| Agent {
            id: AgentId::new(),
            site_id: SiteId::new(),
            version: "0.1.0".into(),
            hostname: "h".into(),
            concurrency: 4,
            stopped,
            last_heartbeat_at: now - chrono::TimeDelta::seconds(heartbeat_ago),
            registered_at: now,
            jobs,
        };
        let agents = [
            agent(vec![j, k], 0, false),
            agent(vec![j], 4, false),
            // Silent too long, or stopped: its share goes back to the others.
            agent(vec![j, k], 60, false),
            agent(vec![j], 0, true),
            agent(Vec::new(), 0, false),
        ];
        let counts = agents_per_job(&agents, &[j, k, idle], now);
        assert_eq!(counts, HashMap::from([(j, 2), (k, 1), (idle, 0)]));
    }
}
