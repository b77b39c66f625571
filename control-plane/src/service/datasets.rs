use tracing::info;

use super::{conflict, Catalogue, UPDATE_ATTEMPTS};
use crate::{
    domain::{
        dataset::{Dataset, DatasetFilter, DatasetPatch, NewDataset, Replica},
        ids::DatasetId,
        name::Ref,
        page::{Page, PageRequest},
        policy::{effective_policy, Policy},
    },
    error::{Error, Result},
};

/// A dataset with what `GetDataset` shows beside it.
pub struct DatasetDetails {
    pub dataset: Dataset,
    pub replicas: Vec<Replica>,
    pub effective_policy: Option<Policy>,
}

impl Catalogue {
    pub async fn create_dataset(&self, new: NewDataset) -> Result<Dataset> {
        crate::call::set_target(format!("dataset:{}", new.name));
        new.validate()?;
        let site = self.referenced_site("site", &new.site).await?;
        let now = self.clock().now();
        let dataset = Dataset {
            id: DatasetId::new(),
            name: new.name,
            site_id: site.id,
            path: new.path,
            current_tier: new.current_tier.unwrap_or(site.tier),
            latency_slo_ms: new.latency_slo_ms,
            size_bytes: new.size_bytes,
            object_count: new.object_count,
            owner: new.owner,
            labels: new.labels,
            last_access_at: None,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_dataset(&dataset).await?;
        info!(
            dataset = %dataset.name,
            dataset_id = %dataset.id,
            site = %site.name,
            path = dataset.path.as_str(),
            "dataset created"
        );
        Ok(dataset)
    }

    pub async fn get_dataset(&self, r: &Ref<DatasetId>) -> Result<Dataset> {
        self.store
            .find_dataset(r)
            .await?
            .ok_or_else(|| Error::not_found("dataset", r))
    }

    pub async fn dataset_details(&self, r: &Ref<DatasetId>) -> Result<DatasetDetails> {
        let dataset = self.get_dataset(r).await?;
        let replicas = self.store.replicas(dataset.id).await?;
        let policies = self.store.all_policies().await?;
        let effective_policy = effective_policy(&policies, &dataset.labels).cloned();
        Ok(DatasetDetails {
            dataset,
            replicas,
            effective_policy,
        })
    }

    pub async fn list_datasets(
        &self,
        filter: &DatasetFilter,
        page: &PageRequest,
    ) -> Result<Page<Dataset>> {
        let site = self
            .referenced_site_id("site", filter.site.as_ref())
            .await?;
        self.store.list_datasets(site, filter, page).await
    }

    pub async fn update_dataset(
        &self,
        r: &Ref<DatasetId>,
        patch: &DatasetPatch,
    ) -> Result<Dataset> {
        crate::call::set_target(format!("dataset:{r}"));
        for _ in 0..UPDATE_ATTEMPTS {
            let mut dataset = self.get_dataset(r).await?;
            let read_at = dataset.updated_at;
            dataset.apply(patch)?;
            dataset.updated_at = self.clock().next_update(read_at);
            if self
                .store
                .update_dataset(&dataset, read_at, &patch.describe())
                .await?
            {
                info!(dataset = %dataset.name, dataset_id = %dataset.id, "dataset updated");
                return Ok(dataset);
            }
        }
        Err(conflict("dataset", r))
    }

    /// Removes the dataset from the catalogue. Its bytes stay where they are.
    pub async fn delete_dataset(&self, r: &Ref<DatasetId>) -> Result<()> {
        crate::call::set_target(format!("dataset:{r}"));
        let dataset = self.get_dataset(r).await?;
        if let Some(active) = self.store.has_active_job(dataset.id).await? {
            return Err(crate::store::active_job_error(&active));
        }
        if !self.store.delete_dataset(&dataset).await? {
            return Err(Error::not_found("dataset", r));
        }
        info!(dataset = %dataset.name, dataset_id = %dataset.id, "dataset deleted");
        Ok(())
    }
}
