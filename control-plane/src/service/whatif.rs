//! What-if: resolves the datasets, the policy and the range a request names, loads each
//! dataset's recorded access and migrations, and replays them (see
//! [`crate::domain::whatif`]) on the blocking pool, a batch at a time so that memory
//! stays bounded however many datasets are replayed. Nothing is recorded.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};

use super::Catalogue;
use crate::{
    domain::{
        access::hour_of,
        dataset::{Dataset, DatasetFilter},
        ids::{DatasetId, PolicyId},
        labels::Labels,
        name::Ref,
        page::{PageRequest, MAX_PAGE_SIZE},
        placement::TransferRates,
        policy::{effective_policy, PolicyPatch, PolicySpec},
        site::Site,
        whatif::{replay, Outcome, Scenario, Strategy, Subject, LOOKBACK_DAYS},
    },
    error::{Error, Result},
};

/// The longest range one request may replay.
const MAX_RANGE: TimeDelta = TimeDelta::days(400);
/// Datasets loaded and replayed together.
const BATCH: usize = 200;

pub enum PolicyChoice {
    /// Each dataset's governing policy, or the defaults.
    Governing,
    Existing(Ref<PolicyId>),
    Draft(Box<PolicyPatch>),
}

pub struct WhatIfRequest {
    pub datasets: Vec<Ref<DatasetId>>,
    pub labels: Labels,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub policy: PolicyChoice,
    pub step: Option<Duration>,
    pub retrain_every: Option<Duration>,
}

pub struct WhatIfAnswer {
    /// One per strategy, in [`Strategy::ALL`] order.
    pub outcomes: Vec<Outcome>,
    pub datasets: usize,
    pub reads: u64,
    pub elapsed: Duration,
}

#[derive(Clone)]
pub struct WhatIf {
    catalogue: Catalogue,
}

impl WhatIf {
    pub fn new(catalogue: Catalogue) -> Self {
        WhatIf { catalogue }
    }

    pub async fn replay(&self, req: WhatIfRequest) -> Result<WhatIfAnswer> {
        let started = Instant::now();
        let now = self.catalogue.clock().now();
        let (start, end) = (hour_of(req.start), hour_of(req.end));
        if end <= start {
            return Err(Error::invalid(
                "end_time",
                format!("must be at least an hour after start_time ({start})"),
            ));
        }
        if req.end > now {
            return Err(Error::invalid(
                "end_time",
                format!(
                    "{} is in the future: only recorded history replays",
                    req.end
                ),
            ));
        }
        if end - start > MAX_RANGE {
            return Err(Error::invalid(
                "end_time",
                format!("the range may be at most {} days", MAX_RANGE.num_days()),
            ));
        }
        let step_hours = whole_hours("step", req.step.unwrap_or(Duration::from_secs(3600)))?;
        let retrain_every = whole_hours(
            "retrain_every",
            req.retrain_every.unwrap_or(Duration::from_secs(86_400)),
        )?;
        let datasets = self.datasets(&req.datasets, &req.labels).await?;
        let policy = self.policy(req.policy).await?;
        let store = self.catalogue.store();
        let sites: Vec<Site> = store
            .list_sites(None, &PageRequest::first(MAX_PAGE_SIZE))
            .await?
            .items;
        let rates = TransferRates::new(store.transfer_rates().await?);
        let governing = store.all_policies().await?;

        let mut outcomes: Vec<Outcome> = Strategy::ALL.into_iter().map(Outcome::new).collect();
        let mut reads = 0;
        for batch in datasets.chunks(BATCH) {
            let mut subjects = Vec::with_capacity(batch.len());
            for d in batch {
                let policy = match &policy {
                    Some(spec) => Some(spec.clone()),
                    None => effective_policy(&governing, &d.labels).map(|p| p.spec.clone()),
                };
                subjects.push(self.subject(d, policy, start, end).await?);
            }
            reads += subjects
                .iter()
                .flat_map(|s| &s.history)
                .filter(|(h, _)| *h >= start && *h < end)
                .map(|(_, a)| a.reads)
                .sum::<u64>();
            let (sites, rates) = (sites.clone(), rates.clone());
            let batch_outcomes = tokio::task::spawn_blocking(move || {
                let scenario = Scenario {
                    sites: &sites,
                    start,
                    end,
                    step_hours,
                    retrain_every: TimeDelta::hours(retrain_every as i64),
                    rates: &rates,
                };
                subjects
                    .iter()
                    .filter_map(|s| replay(&scenario, s))
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(|e| Error::Internal(format!("what-if replay task: {e}")))?;
            for per_dataset in batch_outcomes {
                for (total, one) in outcomes.iter_mut().zip(&per_dataset) {
                    total.add(one);
                }
            }
        }
        Ok(WhatIfAnswer {
            outcomes,
            datasets: datasets.len(),
            reads,
            elapsed: started.elapsed(),
        })
    }

    async fn datasets(&self, refs: &[Ref<DatasetId>], labels: &Labels) -> Result<Vec<Dataset>> {
        if !refs.is_empty() {
            let mut out = Vec::with_capacity(refs.len());
            for r in refs {
                out.push(self.catalogue.get_dataset(r).await?);
            }
            return Ok(out);
        }
        let filter = DatasetFilter {
            labels: labels.clone(),
            ..DatasetFilter::default()
        };
        let mut out = Vec::new();
        let mut page = PageRequest::first(MAX_PAGE_SIZE);
        loop {
            let datasets = self.catalogue.list_datasets(&filter, &page).await?;
            out.extend(datasets.items);
            if datasets.next_token.is_empty() {
                return Ok(out);
            }
            page = PageRequest::parse(MAX_PAGE_SIZE as i32, &datasets.next_token)?;
        }
    }

    /// The one policy replayed for every dataset, or `None` for each one's governing.
    async fn policy(&self, choice: PolicyChoice) -> Result<Option<PolicySpec>> {
        match choice {
            PolicyChoice::Governing => Ok(None),
            PolicyChoice::Existing(r) => Ok(Some(self.catalogue.get_policy(&r).await?.spec)),
            PolicyChoice::Draft(patch) => {
                let placements = self
                    .catalogue
                    .resolve_placements(&patch)
                    .await
                    .map_err(|e| e.within("draft_policy"))?;
                PolicySpec::draft(&patch, placements)
                    .map(Some)
                    .map_err(|e| e.within("draft_policy"))
            }
        }
    }

    /// A dataset as it stood at `start`: its site then (from its completed migrations),
    /// since when, and what it did up to `end`.
    async fn subject(
        &self,
        d: &Dataset,
        policy: Option<PolicySpec>,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Subject> {
        let store = self.catalogue.store();
        let history = store
            .access_stats(
                d.id,
                Some(start - TimeDelta::days(LOOKBACK_DAYS)),
                Some(end),
            )
            .await?;
        let migrations = store.completed_migrations(d.id).await?;
        let before = migrations.iter().rev().find(|(at, _, _)| *at <= start);
        let after = migrations.iter().find(|(at, _, _)| *at > start);
        let (start_site, arrived_at) = match (before, after) {
            (Some((at, _, to)), _) => (*to, *at),
            (None, Some((_, from, _))) => (*from, d.created_at),
            (None, None) => (d.site_id, d.created_at),
        };
        Ok(Subject {
            dataset: d.clone(),
            policy,
            start_site,
            arrived_at,
            history,
            actual_moves: migrations
                .iter()
                .filter(|(at, _, _)| *at > start && *at < end)
                .map(|(at, _, to)| (*at, *to))
                .collect(),
        })
    }
}

fn whole_hours(field: &str, d: Duration) -> Result<usize> {
    let secs = d.as_secs();
    if secs == 0 || secs % 3600 != 0 || d.subsec_nanos() != 0 {
        return Err(Error::invalid(
            field,
            format!("must be a whole number of hours, got {}s", d.as_secs_f64()),
        ));
    }
    Ok((secs / 3600) as usize)
}
