//! The autopilot: for policies with auto-migrate on, periodically acts on the
//! recommendations of the datasets they govern, within the policy's cap on concurrent
//! migrations: at any time, inside the policy's daily window, or once per due time of
//! its cron. What it acts on is recorded and approved through the same path as a
//! person's approval, the job tagged with the policy; a dataset never gets a second job
//! while one is unfinished (the store enforces it), so restarts cannot double-migrate.
//!
//! A cron's due time is claimed by moving the policy's next due time past now in one
//! conditional update: two control planes checking the same time claim it once, and
//! the times missed while the control plane was down make one run. A due time while a
//! migration the policy started is unfinished is skipped and counted, so the runs of a
//! policy never overlap.

use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use tracing::{info, warn};

use super::{Catalogue, Recommendations};
use crate::{
    domain::{
        dataset::DatasetFilter,
        page::{PageRequest, MAX_PAGE_SIZE},
        policy::{effective_policy, DueRun, Policy},
        recommendation::RecommendationState,
    },
    error::{Error, Result},
    metrics,
};

pub async fn run(catalogue: Catalogue, recommendations: Recommendations, interval: Duration) {
    // What the autopilot changes is recorded in the audit log as its own.
    let clock = catalogue.clock().clone();
    super::every(interval, "autopilot", clock, "autopilot round", || {
        round(&catalogue, &recommendations)
    })
    .await
}

async fn round(catalogue: &Catalogue, recommendations: &Recommendations) -> Result<()> {
    let policies = catalogue.store().all_policies().await?;
    let now = catalogue.clock().now();
    let minute = u16::try_from(now.hour() * 60 + now.minute()).unwrap_or(0);
    for policy in policies.iter().filter(|p| p.spec.auto_migrate) {
        if policy.spec.cron.is_some() {
            run_due(catalogue, recommendations, &policies, policy, now).await?;
        } else if policy
            .spec
            .schedule_window
            .is_none_or(|w| w.contains(minute))
        {
            start_migrations(catalogue, recommendations, &policies, policy).await?;
        }
    }
    Ok(())
}

/// Runs a cron policy's due time, if it has come and this check claims it.
async fn run_due(
    catalogue: &Catalogue,
    recommendations: &Recommendations,
    policies: &[Policy],
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<()> {
    let store = catalogue.store();
    let Some(due) = policy.runs.next_run_at.filter(|due| *due <= now) else {
        return Ok(());
    };
    let run = if store.policy_has_unfinished_jobs(policy.id).await? {
        DueRun::Skip
    } else {
        DueRun::Run
    };
    // The first time after now: the times missed meanwhile are coalesced.
    let next = policy.spec.next_run_after(now);
    if !store.claim_policy_due(policy.id, due, next, run).await? {
        return Ok(());
    }
    if run == DueRun::Skip {
        info!(policy = %policy.name, %due, ?next, "scheduled auto-migration skipped: a migration of its previous run is unfinished");
        return Ok(());
    }
    match start_migrations(catalogue, recommendations, policies, policy).await {
        Ok(started) => {
            info!(policy = %policy.name, %due, ?next, started, "scheduled auto-migration ran");
            store.set_policy_error(policy.id, None).await
        }
        Err(e) => {
            warn!(policy = %policy.name, %due, error = %e, "scheduled auto-migration failed");
            store
                .set_policy_error(policy.id, Some(&e.to_string()))
                .await
        }
    }
}

/// Starts migrations of the datasets `policy` governs whose recommendation is pending,
/// up to its cap on migrations running at once. Returns how many it started.
async fn start_migrations(
    catalogue: &Catalogue,
    recommendations: &Recommendations,
    policies: &[Policy],
    policy: &Policy,
) -> Result<usize> {
    let store = catalogue.store();
    let cap = policy.spec.max_concurrent_migrations.unwrap_or(1) as usize;
    let filter = DatasetFilter {
        labels: policy.spec.selector.clone(),
        ..DatasetFilter::default()
    };
    let mut page = PageRequest::first(MAX_PAGE_SIZE);
    let mut governed = Vec::new();
    loop {
        let datasets = catalogue.list_datasets(&filter, &page).await?;
        for d in datasets.items {
            // Another, higher-priority policy may govern a dataset this one selects.
            if effective_policy(policies, &d.labels).is_some_and(|e| e.id == policy.id) {
                governed.push(d);
            }
        }
        if datasets.next_token.is_empty() {
            break;
        }
        page = PageRequest::parse(MAX_PAGE_SIZE as i32, &datasets.next_token)?;
    }
    let mut running = 0;
    for d in &governed {
        if store.has_active_job(d.id).await?.is_some() {
            running += 1;
        }
    }
    let mut started = 0;
    for d in &governed {
        if running >= cap {
            break;
        }
        if store.has_active_job(d.id).await?.is_some() {
            continue;
        }
        let advice = recommendations.advise(d).await?;
        if advice.state != RecommendationState::Pending {
            continue;
        }
        recommendations.record(&advice).await?;
        match recommendations
            .approve_for(advice.id, Some(policy.id))
            .await
        {
            Ok((_, job)) => {
                running += 1;
                started += 1;
                metrics::AUTOPILOT_MIGRATIONS.inc();
                info!(policy = %policy.name, dataset = %d.name, job_id = %job.id, "auto-migration started");
            }
            // Planned meanwhile by someone else: the dataset is taken care of.
            Err(Error::FailedPrecondition(reason)) => {
                info!(dataset = %d.name, reason, "auto-migration skipped")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(started)
}
