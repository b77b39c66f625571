//! Recommendation use cases: compute (and record) advice from recent access, site prices
//! and the governing policy; approve it into a migration; reject it.

use chrono::TimeDelta;
use tracing::info;

use super::{Catalogue, Migrations, PlanRequest};
use crate::{
    domain::{
        access::hour_of,
        cost::MonthlyDemand,
        dataset::{Dataset, DatasetFilter},
        ids::{PolicyId, RecommendationId},
        name::Ref,
        page::{Page, PageRequest},
        placement::{recommend, Inputs, TransferRates, MODEL_VERSION},
        policy::{effective_policy, Policy},
        recommendation::{Recommendation, RecommendationState},
        site::Site,
    },
    error::{Error, Result},
    metrics,
};

/// Access history the demand projection looks at.
const DEMAND_WINDOW_DAYS: i64 = 7;

/// What advice for any dataset reads besides the dataset's own history: loaded once for
/// a page of datasets.
struct Context {
    sites: Vec<Site>,
    policies: Vec<Policy>,
    rates: TransferRates,
}

#[derive(Clone)]
pub struct Recommendations {
    catalogue: Catalogue,
    migrations: Migrations,
}

impl Recommendations {
    pub fn new(catalogue: Catalogue, migrations: Migrations) -> Self {
        Recommendations {
            catalogue,
            migrations,
        }
    }

    /// Fresh advice for one page of datasets matching `filter`, each recorded.
    pub async fn compute(
        &self,
        filter: &DatasetFilter,
        page: &PageRequest,
    ) -> Result<Page<Recommendation>> {
        let datasets = self.catalogue.list_datasets(filter, page).await?;
        let context = self.context().await?;
        let mut out = Vec::with_capacity(datasets.items.len());
        for d in &datasets.items {
            let recommendation = self.advise_in(&context, d).await?;
            self.record(&recommendation).await?;
            out.push(recommendation);
        }
        Ok(Page {
            items: out,
            next_token: datasets.next_token,
        })
    }

    /// Computes and records advice for one dataset.
    pub async fn compute_one(&self, dataset: &Dataset) -> Result<Recommendation> {
        let recommendation = self.advise(dataset).await?;
        self.record(&recommendation).await?;
        Ok(recommendation)
    }

    /// Computes advice without recording it (the autopilot records only what it acts on).
    pub async fn advise(&self, dataset: &Dataset) -> Result<Recommendation> {
        let context = self.context().await?;
        self.advise_in(&context, dataset).await
    }

    async fn context(&self) -> Result<Context> {
        let store = self.catalogue.store();
        Ok(Context {
            sites: store
                .list_sites(
                    None,
                    &PageRequest::first(crate::domain::page::MAX_PAGE_SIZE),
                )
                .await?
                .items,
            policies: store.all_policies().await?,
            rates: TransferRates::new(store.transfer_rates().await?),
        })
    }

    async fn advise_in(&self, context: &Context, dataset: &Dataset) -> Result<Recommendation> {
        let store = self.catalogue.store();
        let now = self.catalogue.clock().now();
        let policy = effective_policy(&context.policies, &dataset.labels).map(|p| &p.spec);
        let since = now - TimeDelta::days(DEMAND_WINDOW_DAYS);
        let hours = store
            .access_stats(dataset.id, Some(hour_of(since)), None)
            .await?;
        let (requests, bytes_read) = hours.iter().fold((0, 0), |(r, b), (_, h)| {
            (r + h.reads + h.writes, b + h.bytes_read)
        });
        let this_hour = hour_of(now - TimeDelta::hours(1));
        let reads_last_hour = hours
            .iter()
            .filter(|(h, _)| *h >= this_hour)
            .map(|(_, h)| h.reads)
            .sum();
        let since_yesterday = hour_of(now - TimeDelta::hours(24));
        let bytes_read_last_day = hours
            .iter()
            .filter(|(h, _)| *h >= since_yesterday)
            .map(|(_, h)| h.bytes_read)
            .sum();
        let arrived_at = store
            .last_arrival(dataset.id)
            .await?
            .unwrap_or(dataset.created_at);
        let model = store.latest_model(dataset.id).await?;
        let trained = model.is_some();
        let outlook = model.and_then(|m| m.outlook(now));
        let advice = recommend(&Inputs {
            dataset,
            sites: &context.sites,
            policy,
            demand: MonthlyDemand::project(requests, bytes_read, DEMAND_WINDOW_DAYS as f64),
            reads_last_hour,
            bytes_read_last_day,
            arrived_at,
            now,
            outlook: outlook.as_ref(),
            rates: &context.rates,
            trained,
        })
        .ok_or_else(|| {
            Error::Internal(format!("dataset {} refers to a missing site", dataset.id))
        })?;
        let moves = advice.moves(dataset);
        let recommendation = Recommendation {
            id: RecommendationId::new(),
            dataset_id: dataset.id,
            current_tier: dataset.current_tier,
            current_site_id: dataset.site_id,
            recommended_tier: advice.tier,
            recommended_site_id: advice.site_id,
            reasons: advice.reasons,
            cost: advice.cost,
            // A forecast in use shapes the advice: its version is the one to name.
            model_version: outlook.map_or_else(|| MODEL_VERSION.into(), |o| o.version),
            state: if moves {
                RecommendationState::Pending
            } else {
                RecommendationState::NoAction
            },
            job_id: None,
            created_at: now,
        };
        Ok(recommendation)
    }

    /// Records advice computed with [`Recommendations::advise`].
    pub async fn record(&self, recommendation: &Recommendation) -> Result<()> {
        self.catalogue
            .store()
            .insert_recommendation(recommendation)
            .await?;
        metrics::RECOMMENDATIONS_COMPUTED.inc();
        Ok(())
    }

    pub async fn history(
        &self,
        dataset: Option<&Ref<crate::domain::ids::DatasetId>>,
        page: &PageRequest,
    ) -> Result<Page<Recommendation>> {
        let dataset = match dataset {
            Some(r) => Some(self.catalogue.get_dataset(r).await?.id),
            None => None,
        };
        self.catalogue
            .store()
            .list_recommendations(dataset, page)
            .await
    }

    pub async fn dataset(&self, r: &Ref<crate::domain::ids::DatasetId>) -> Result<Dataset> {
        self.catalogue.get_dataset(r).await
    }

    async fn get(&self, id: RecommendationId) -> Result<Recommendation> {
        self.catalogue
            .store()
            .find_recommendation(id)
            .await?
            .ok_or_else(|| Error::not_found("recommendation", id))
    }

    /// Turns a pending recommendation into a migration. Approving it again returns the
    /// same job: the plan's idempotency key is the recommendation's.
    pub async fn approve(
        &self,
        id: RecommendationId,
    ) -> Result<(Recommendation, crate::domain::job::Job)> {
        self.approve_for(id, None).await
    }

    /// Approves as [`Self::approve`] does; the job is tagged with `policy`, the policy
    /// whose autopilot approved it, if one did.
    pub async fn approve_for(
        &self,
        id: RecommendationId,
        policy: Option<PolicyId>,
    ) -> Result<(Recommendation, crate::domain::job::Job)> {
        crate::call::set_target(format!("recommendation:{id}"));
        let rec = self.get(id).await?;
        if !matches!(
            rec.state,
            RecommendationState::Pending | RecommendationState::Approved
        ) {
            return Err(Error::FailedPrecondition(format!(
                "recommendation {id} is {}; only a pending one can be approved",
                rec.state.as_str()
            )));
        }
        let dataset = self.catalogue.get_dataset(&Ref::Id(rec.dataset_id)).await?;
        let policies = self.catalogue.store().all_policies().await?;
        let spec = effective_policy(&policies, &dataset.labels).map(|p| p.spec.clone());
        let (job, _) = self
            .migrations
            .plan(PlanRequest {
                verify_mode: spec.as_ref().map(|p| p.verify_mode),
                retire_source: spec.as_ref().is_some_and(|p| p.retire_source),
                idempotency_key: Some(format!("recommendation:{id}")),
                bandwidth_limit: spec.as_ref().and_then(|p| p.bandwidth_limit),
                policy,
                ..PlanRequest::new(Ref::Id(rec.dataset_id), Ref::Id(rec.recommended_site_id))
            })
            .await?;
        self.catalogue
            .store()
            .set_recommendation_state(id, rec.state, RecommendationState::Approved, Some(job.id))
            .await?;
        info!(recommendation_id = %id, job_id = %job.id, "recommendation approved");
        Ok((self.get(id).await?, job))
    }

    pub async fn reject(&self, id: RecommendationId) -> Result<Recommendation> {
        crate::call::set_target(format!("recommendation:{id}"));
        let rec = self.get(id).await?;
        let rejected = self
            .catalogue
            .store()
            .set_recommendation_state(
                id,
                RecommendationState::Pending,
                RecommendationState::Rejected,
                None,
            )
            .await?;
        if !rejected {
            return Err(Error::FailedPrecondition(format!(
                "recommendation {id} is {}; only a pending one can be rejected",
                rec.state.as_str()
            )));
        }
        self.get(id).await
    }
}
