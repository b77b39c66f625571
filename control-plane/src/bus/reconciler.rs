//! The reconciler: re-dispatches jobs that should be moving but are not — queued with
//! no agent having taken them, or held by an agent that stopped heartbeating — so that
//! a lost message or a dead agent never strands a job.

use std::time::Duration;

use chrono::TimeDelta;
use tracing::{info, warn};

use crate::{
    domain::{agent::Liveness, job::JobState},
    service::Migrations,
};

const TICK: Duration = Duration::from_secs(15);
/// Longer than the JetStream dedupe window, so that a re-dispatch is not dropped.
const STUCK_AFTER: TimeDelta = TimeDelta::minutes(3);

pub async fn run(migrations: Migrations) {
    let mut tick = tokio::time::interval(TICK);
    loop {
        tick.tick().await;
        if let Err(e) = reconcile(&migrations).await {
            warn!(error = %e, "reconciliation failed");
        }
    }
}

async fn reconcile(migrations: &Migrations) -> crate::error::Result<()> {
    let store = migrations.store();
    let now = migrations.catalogue().clock().now();
    for state in [
        JobState::Queued,
        JobState::Copying,
        JobState::Verifying,
        JobState::Switching,
    ] {
        for job in store.stale_jobs(state, now - STUCK_AFTER, 100).await? {
            if state != JobState::Queued {
                // A job in progress is fine while its agent is alive.
                if let Some(holder) = store.job_holder(job.id).await? {
                    if let Some((agent, _)) = store.find_agent(holder).await? {
                        if agent.liveness(now) == Liveness::Alive {
                            continue;
                        }
                    }
                }
            }
            info!(job_id = %job.id, state = %job.state, "re-dispatching a stuck job");
            migrations.touch_and_redispatch(job.id).await?;
        }
    }
    Ok(())
}
