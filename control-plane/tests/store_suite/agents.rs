//! Agents' heartbeats as the store keeps them: the jobs each agent runs copy tasks of,
//! from which the agents of one job learn how many split its bandwidth limit.

use std::collections::HashMap;

use ferry_control_plane::{
    domain::{
        agent::Agent,
        principal::{Principal, Role, Who},
    },
    domain::{ids::JobId, tier::Tier},
    error::Error,
    service::{Agents, RegisterRequest},
};

use crate::fixture::{by_name, create_site, Fixture};

fn register() -> RegisterRequest {
    RegisterRequest {
        site: by_name("edge"),
        version: "0.1.0".into(),
        hostname: "worker".into(),
        concurrency: 4,
        agent_id: None,
    }
}

/// Calls as the control plane's tests do: with authentication off, as an admin.
fn caller() -> Principal {
    Principal::anonymous()
}

async fn heartbeat(
    agents: &Agents,
    agent: &Agent,
    stopping: bool,
    jobs: &[JobId],
) -> HashMap<JobId, u32> {
    agents
        .heartbeat(&caller(), agent.id, stopping, jobs)
        .await
        .unwrap()
        .job_agents
}

pub async fn heartbeats_record_the_jobs_each_agent_runs(f: &mut Fixture) {
    create_site(&f.catalogue, "edge", "s3://edge", Tier::Hot).await;
    create_site(&f.catalogue, "other", "s3://other", Tier::Hot).await;
    let agents = Agents::new(f.catalogue.clone());
    let a = agents.register(&caller(), register()).await.unwrap();
    let b = agents.register(&caller(), register()).await.unwrap();
    let elsewhere = RegisterRequest {
        site: by_name("other"),
        ..register()
    };
    let c = agents.register(&caller(), elsewhere).await.unwrap();
    let (j, k) = (JobId::new(), JobId::new());

    assert_eq!(
        heartbeat(&agents, &a, false, &[j, k]).await,
        HashMap::from([(j, 1), (k, 1)])
    );
    assert_eq!(
        heartbeat(&agents, &b, false, &[j]).await,
        HashMap::from([(j, 2)]),
        "the caller counts with the agent already on the job"
    );
    // Only agents of the caller's site share its jobs.
    assert_eq!(
        heartbeat(&agents, &c, false, &[j]).await,
        HashMap::from([(j, 1)])
    );
    assert!(heartbeat(&agents, &a, false, &[]).await.is_empty());
    assert_eq!(
        heartbeat(&agents, &a, false, &[j, k]).await,
        HashMap::from([(j, 2), (k, 1)])
    );

    // What the agents run survives a restart of the control plane.
    f.reopen().await;
    let agents = Agents::new(f.catalogue.clone());
    let listed = agents
        .list(&caller(), Some(&by_name("edge")))
        .await
        .unwrap();
    let jobs_of = |id| {
        let agent = listed.iter().find(|l| l.id == id).unwrap();
        let mut jobs = agent.jobs.clone();
        jobs.sort();
        jobs
    };
    let mut both = vec![j, k];
    both.sort();
    assert_eq!(jobs_of(a.id), both);
    assert_eq!(jobs_of(b.id), [j]);

    // A stopping agent leaves its share to the others; an agent token of another site
    // changes nothing.
    assert!(heartbeat(&agents, &a, true, &[]).await.is_empty());
    assert_eq!(
        heartbeat(&agents, &b, false, &[j]).await,
        HashMap::from([(j, 1)])
    );
    let stranger = Principal {
        who: Who::Token("agent-other".into()),
        role: Role::Agent,
        site: Some(c.site_id),
        ..Principal::anonymous()
    };
    let refused = agents.heartbeat(&stranger, b.id, false, &[k]).await;
    assert!(
        matches!(refused, Err(Error::PermissionDenied(_))),
        "{refused:?}"
    );
    let listed = agents
        .list(&caller(), Some(&by_name("edge")))
        .await
        .unwrap();
    let b_now = listed.iter().find(|l| l.id == b.id).unwrap();
    assert_eq!(b_now.jobs, [j]);
}
