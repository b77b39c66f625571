//! Agents' heartbeats as the store keeps them: the jobs each agent runs copy tasks of,
//! from which the agents of one job learn how many split its bandwidth limit.

use std::collections::HashMap;

use ferry_control_plane::{
    domain::{ids::JobId, tier::Tier},
    error::Error,
    service::{Agents, RegisterRequest, Registration},
};
use secrecy::ExposeSecret;

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

async fn heartbeat(
    agents: &Agents,
    agent: &Registration,
    stopping: bool,
    jobs: &[JobId],
) -> HashMap<JobId, u32> {
    let token = agent.token.expose_secret();
    agents
        .heartbeat(agent.agent.id, Some(token), stopping, jobs)
        .await
        .unwrap()
}

pub async fn heartbeats_record_the_jobs_each_agent_runs(f: &mut Fixture) {
    create_site(&f.catalogue, "edge", "s3://edge", Tier::Hot).await;
    create_site(&f.catalogue, "other", "s3://other", Tier::Hot).await;
    let agents = Agents::new(f.catalogue.clone(), None);
    let a = agents.register(None, register()).await.unwrap();
    let b = agents.register(None, register()).await.unwrap();
    let elsewhere = RegisterRequest {
        site: by_name("other"),
        ..register()
    };
    let c = agents.register(None, elsewhere).await.unwrap();
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
    let agents = Agents::new(f.catalogue.clone(), None);
    let listed = agents.list(Some(&by_name("edge"))).await.unwrap();
    let jobs_of = |id| {
        let agent = listed.iter().find(|l| l.id == id).unwrap();
        let mut jobs = agent.jobs.clone();
        jobs.sort();
        jobs
    };
    let mut both = vec![j, k];
    both.sort();
    assert_eq!(jobs_of(a.agent.id), both);
    assert_eq!(jobs_of(b.agent.id), [j]);

    // A stopping agent leaves its share to the others; a wrong token changes nothing.
    assert!(heartbeat(&agents, &a, true, &[]).await.is_empty());
    assert_eq!(
        heartbeat(&agents, &b, false, &[j]).await,
        HashMap::from([(j, 1)])
    );
    let refused = agents
        .heartbeat(b.agent.id, Some("wrong"), false, &[k])
        .await;
    assert!(
        matches!(refused, Err(Error::Unauthenticated(_))),
        "{refused:?}"
    );
    let listed = agents.list(Some(&by_name("edge"))).await.unwrap();
    let b_now = listed.iter().find(|l| l.id == b.agent.id).unwrap();
    assert_eq!(b_now.jobs, [j]);
}
