//! Agents: processes near a site that move its bytes.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::ids::{AgentId, SiteId};

/// How often agents are asked to heartbeat.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// Missing this many heartbeats makes an agent stale.
const MISSED_HEARTBEATS: u32 = 3;

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
        let window = HEARTBEAT_INTERVAL * MISSED_HEARTBEATS;
        match (now - self.last_heartbeat_at).to_std() {
            Ok(age) if age > window => Liveness::Stale,
            _ => Liveness::Alive,
        }
    }
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
        };
        assert_eq!(agent.liveness(now), Liveness::Alive);
        assert_eq!(
            agent.liveness(now + chrono::TimeDelta::seconds(16)),
            Liveness::Stale
        );
        agent.stopped = true;
        assert_eq!(agent.liveness(now), Liveness::Stopped);
    }
}
