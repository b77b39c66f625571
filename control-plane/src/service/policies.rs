use std::collections::BTreeMap;

use tracing::info;

use super::{conflict, Catalogue, UPDATE_ATTEMPTS};
use crate::{
    domain::{
        dataset::Dataset,
        ids::{DatasetId, PolicyId, SiteId},
        name::{Name, Ref},
        page::{Page, PageRequest},
        policy::{Policy, PolicyPatch, PolicyRuns, PolicySpec},
        tier::Tier,
    },
    error::{Error, Result},
};

impl Catalogue {
    /// Creates a policy from defaults overlaid with `fields`.
    pub async fn create_policy(&self, name: Name, fields: &PolicyPatch) -> Result<Policy> {
        crate::call::set_target(format!("policy:{name}"));
        let placements = self.resolve_placements(fields).await?;
        let mut spec = PolicySpec::default();
        spec.apply(fields, placements)?;
        let now = self.clock().now();
        let policy = Policy {
            id: PolicyId::new(),
            name,
            runs: PolicyRuns {
                next_run_at: spec.next_run_after(now),
                ..PolicyRuns::default()
            },
            spec,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_policy(&policy).await?;
        info!(policy = %policy.name, policy_id = %policy.id, "policy created");
        Ok(policy)
    }

    pub async fn get_policy(&self, r: &Ref<PolicyId>) -> Result<Policy> {
        self.store
            .find_policy(r)
            .await?
            .ok_or_else(|| Error::not_found("policy", r))
    }

    /// Policies in name order; with `dataset`, only those whose selector matches it.
    pub async fn list_policies(
        &self,
        dataset: Option<&Ref<DatasetId>>,
        page: &PageRequest,
    ) -> Result<Page<Policy>> {
        let Some(r) = dataset else {
            return self.store.page_policies(page).await;
        };
        let dataset: Dataset = self
            .store
            .find_dataset(r)
            .await?
            .ok_or_else(|| Error::invalid("dataset", format!("dataset {r} does not exist")))?;
        let matching: Vec<Policy> = self
            .store
            .all_policies()
            .await?
            .into_iter()
            .filter(|p| {
                page.after
                    .as_deref()
                    .is_none_or(|after| p.name.as_str() > after)
            })
            .filter(|p| dataset.labels.matches(&p.spec.selector))
            .collect();
        Ok(Page::from_rows(matching, page.size, |p| p.name.to_string()))
    }

    pub async fn update_policy(&self, r: &Ref<PolicyId>, patch: &PolicyPatch) -> Result<Policy> {
        crate::call::set_target(format!("policy:{r}"));
        let placements = self.resolve_placements(patch).await?;
        for _ in 0..UPDATE_ATTEMPTS {
            let mut policy = self.get_policy(r).await?;
            let read_at = policy.updated_at;
            let before = policy.spec.clone();
            policy.spec.apply(patch, placements.clone())?;
            policy.updated_at = self.clock().next_update(read_at);
            // A new cron, or automatic migrations turned on or off, starts counting
            // due times from now: none missed while off runs on turning it on.
            let rescheduled =
                before.cron != policy.spec.cron || before.auto_migrate != policy.spec.auto_migrate;
            if rescheduled {
                policy.runs.next_run_at = policy.spec.next_run_after(self.clock().now());
            }
            if self
                .store
                .update_policy(&policy, read_at, &patch.describe(), rescheduled)
                .await?
            {
                info!(policy = %policy.name, policy_id = %policy.id, "policy updated");
                return Ok(policy);
            }
        }
        Err(conflict("policy", r))
    }

    pub async fn delete_policy(&self, r: &Ref<PolicyId>) -> Result<()> {
        crate::call::set_target(format!("policy:{r}"));
        let policy = self.get_policy(r).await?;
        if !self.store.delete_policy(&policy).await? {
            return Err(Error::not_found("policy", r));
        }
        info!(policy = %policy.name, policy_id = %policy.id, "policy deleted");
        Ok(())
    }

    pub(super) async fn resolve_placements(
        &self,
        patch: &PolicyPatch,
    ) -> Result<Option<BTreeMap<Tier, SiteId>>> {
        let Some(placements) = &patch.placements else {
            return Ok(None);
        };
        let mut resolved = BTreeMap::new();
        for (tier, site) in placements {
            let field = format!("placements[{tier}].site");
            let site = self.referenced_site(&field, site).await?;
            if resolved.insert(*tier, site.id).is_some() {
                return Err(Error::invalid(
                    format!("placements[{tier}]"),
                    "each tier may be placed only once",
                ));
            }
        }
        Ok(Some(resolved))
    }
}
