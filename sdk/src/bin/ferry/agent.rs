//! `ferry agent`: the agents registered to move bytes near each site.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use clap::Subcommand;
use ferry_sdk::{pb, Error};

use crate::enums::display;
use crate::json;
use crate::output;
use crate::{site, Context};

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// List registered agents with their liveness
    List {
        /// Only agents serving this site (id or name)
        #[arg(long)]
        site: Option<String>,
    },
}

pub async fn run(command: AgentCommand, ctx: &Context) -> Result<String, Error> {
    match command {
        AgentCommand::List { site } => {
            let client = ctx.client().await?;
            let agents = client.list_agents(site.as_deref()).await?;
            if ctx.json() {
                return Ok(json::render(&json::array(&agents)));
            }
            if agents.is_empty() {
                return Ok("no agents".to_owned());
            }
            let sites = site::names_by_id(client).await?;
            Ok(table(&agents, &sites, Utc::now()))
        }
    }
}

/// The agents as a table; `now` dates the heartbeats ("3s ago").
fn table(agents: &[pb::Agent], sites: &HashMap<String, String>, now: DateTime<Utc>) -> String {
    let rows = agents
        .iter()
        .map(|agent| {
            vec![
                agent.id.clone(),
                site::name_of(sites, &agent.site),
                output::or_none(&agent.version),
                output::or_none(&agent.hostname),
                display::<pb::AgentState>(agent.state),
                output::ago(agent.last_heartbeat_time.as_ref(), now),
                agent.concurrency.to_string(),
                agent.jobs.len().to_string(),
            ]
        })
        .collect();
    output::table(
        &[
            "ID",
            "SITE",
            "VERSION",
            "HOST",
            "STATE",
            "LAST HEARTBEAT",
            "CONCURRENCY",
            "JOBS",
        ],
        rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_show_site_names_and_heartbeat_ages() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let agent = pb::Agent {
            id: "agt-1".into(),
            site: "0193".into(),
            version: "0.1.0".into(),
            hostname: "worker-3".into(),
            state: pb::AgentState::Stale.into(),
            concurrency: 8,
            last_heartbeat_time: Some(prost_types::Timestamp {
                seconds: 1_700_000_000 - 95,
                nanos: 0,
            }),
            register_time: None,
            jobs: vec!["job-1".into(), "job-2".into()],
        };
        let sites = HashMap::from([("0193".to_owned(), "nvme-a".to_owned())]);
        let rendered = table(&[agent], &sites, now);
        let lines: Vec<&str> = rendered.lines().collect();
        assert_eq!(lines.len(), 2, "{rendered}");
        let cells: Vec<&str> = lines[1].split("   ").map(str::trim).collect();
        let cells: Vec<&str> = cells.into_iter().filter(|c| !c.is_empty()).collect();
        assert_eq!(
            cells,
            ["agt-1", "nvme-a", "0.1.0", "worker-3", "stale", "1m ago", "8", "2"]
        );
    }
}
