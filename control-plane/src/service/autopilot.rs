//! The autopilot: for policies with auto-migrate on, periodically acts on the
//! recommendations of the datasets they govern — inside the policy's schedule window and
//! within its cap on concurrent migrations. What it acts on is recorded and approved
//! through the same path as a person's approval; a dataset never gets a second job while
//! one is unfinished (the store enforces it), so restarts cannot double-migrate.

use std::time::Duration;

use chrono::Timelike;
use tracing::{info, warn};

use super::{Catalogue, Recommendations};
use crate::{
    call::Call,
    domain::{
        dataset::DatasetFilter,
        page::{PageRequest, MAX_PAGE_SIZE},
        policy::effective_policy,
        principal::Principal,
        recommendation::RecommendationState,
    },
    error::{Error, Result},
    metrics,
};

pub async fn run(catalogue: Catalogue, recommendations: Recommendations, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // What the autopilot changes is recorded in the audit log as its own.
        let call = Call::new(
            Principal::system("autopilot"),
            "autopilot",
            catalogue.clock().now(),
        );
        if let Err(e) = call.scope(round(&catalogue, &recommendations)).await {
            warn!(error = %e, "autopilot round failed");
        }
    }
}

async fn round(catalogue: &Catalogue, recommendations: &Recommendations) -> Result<()> {
    let store = catalogue.store();
    let policies = store.all_policies().await?;
    let now = catalogue.clock().now();
    let minute = u16::try_from(now.hour() * 60 + now.minute()).unwrap_or(0);
    for policy in policies.iter().filter(|p| p.spec.auto_migrate) {
        if policy
            .spec
            .schedule_window
            .is_some_and(|w| !w.contains(minute))
        {
            continue;
        }
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
                if effective_policy(&policies, &d.labels).is_some_and(|e| e.id == policy.id) {
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
            match recommendations.approve(advice.id).await {
                Ok((_, job)) => {
                    running += 1;
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
    }
    Ok(())
}
