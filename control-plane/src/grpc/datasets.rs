use ferry_proto::v1::{self as pb, dataset_service_server::DatasetService};
use tonic::{Request, Response, Status};

use crate::convert;
use crate::{
    domain::{
        dataset::{DatasetFilter, DatasetPatch},
        name::Ref,
        page::PageRequest,
    },
    error::Error,
    service::Catalogue,
};

const MUTABLE: &[&str] = &[
    "current_tier",
    "latency_slo_ms",
    "size_bytes",
    "object_count",
    "owner",
    "labels",
];
const IMMUTABLE: &[&str] = &[
    "id",
    "name",
    "site",
    "path",
    "last_access_time",
    "create_time",
    "update_time",
];

pub struct DatasetApi {
    catalogue: Catalogue,
}

impl DatasetApi {
    pub fn new(catalogue: Catalogue) -> Self {
        DatasetApi { catalogue }
    }
}

#[tonic::async_trait]
impl DatasetService for DatasetApi {
    async fn create_dataset(
        &self,
        request: Request<pb::CreateDatasetRequest>,
    ) -> Result<Response<pb::Dataset>, Status> {
        let new = convert::new_dataset(request.into_inner().dataset)?;
        let dataset = self
            .catalogue
            .create_dataset(new)
            .await
            .map_err(|e| e.within("dataset"))?;
        Ok(Response::new(convert::dataset_to_pb(dataset)))
    }

    async fn get_dataset(
        &self,
        request: Request<pb::GetDatasetRequest>,
    ) -> Result<Response<pb::GetDatasetResponse>, Status> {
        let r = Ref::parse("dataset", &request.into_inner().dataset)?;
        let details = self.catalogue.dataset_details(&r).await?;
        let now = self.catalogue.clock().now();
        Ok(Response::new(pb::GetDatasetResponse {
            dataset: Some(convert::dataset_to_pb(details.dataset)),
            replicas: details
                .replicas
                .into_iter()
                .map(|r| convert::replica_to_pb(r, now))
                .collect(),
            effective_policy: details.effective_policy.map(convert::policy_to_pb),
        }))
    }

    async fn list_datasets(
        &self,
        request: Request<pb::ListDatasetsRequest>,
    ) -> Result<Response<pb::ListDatasetsResponse>, Status> {
        let req = request.into_inner();
        let page = PageRequest::parse(req.page_size, &req.page_token)?;
        let filter = DatasetFilter {
            site: (!req.site.is_empty())
                .then(|| Ref::parse("site", &req.site))
                .transpose()?,
            tier: convert::tier("tier", req.tier)?,
            owner: (!req.owner.is_empty()).then_some(req.owner),
            labels: convert::labels("labels", req.labels)?,
            name_contains: name_contains(&req.name_contains)?,
        };
        let datasets = self.catalogue.list_datasets(&filter, &page).await?;
        Ok(Response::new(pb::ListDatasetsResponse {
            datasets: datasets
                .items
                .into_iter()
                .map(convert::dataset_to_pb)
                .collect(),
            next_page_token: datasets.next_token,
        }))
    }

    async fn update_dataset(
        &self,
        request: Request<pb::UpdateDatasetRequest>,
    ) -> Result<Response<pb::Dataset>, Status> {
        let req = request.into_inner();
        let d = req
            .dataset
            .ok_or_else(|| Error::invalid("dataset", "required"))?;
        let target = convert::target("dataset", &d.id, &d.name)?;
        let paths = convert::check_mask(req.update_mask, MUTABLE, IMMUTABLE)?;
        let has = |p: &str| paths.iter().any(|x| x == p);
        let patch = DatasetPatch {
            current_tier: if has("current_tier") {
                Some(convert::required_tier(
                    "dataset.current_tier",
                    d.current_tier,
                )?)
            } else {
                None
            },
            latency_slo_ms: has("latency_slo_ms")
                .then_some((d.latency_slo_ms != 0).then_some(d.latency_slo_ms)),
            size_bytes: has("size_bytes").then_some(d.size_bytes),
            object_count: has("object_count").then_some(d.object_count),
            owner: has("owner").then_some(d.owner),
            labels: if has("labels") {
                Some(convert::labels("dataset.labels", d.labels)?)
            } else {
                None
            },
        };
        let dataset = self
            .catalogue
            .update_dataset(&target, &patch)
            .await
            .map_err(|e| e.within("dataset"))?;
        Ok(Response::new(convert::dataset_to_pb(dataset)))
    }

    async fn delete_dataset(
        &self,
        request: Request<pb::DeleteDatasetRequest>,
    ) -> Result<Response<pb::DeleteDatasetResponse>, Status> {
        let r = Ref::parse("dataset", &request.into_inner().dataset)?;
        self.catalogue.delete_dataset(&r).await?;
        Ok(Response::new(pb::DeleteDatasetResponse {}))
    }
}

/// The name search of `ListDatasets`: none when empty, lowercased, at most 128 characters.
fn name_contains(text: &str) -> Result<Option<String>, Status> {
    if text.chars().count() > 128 {
        return Err(crate::error::Error::invalid("name_contains", "at most 128 characters").into());
    }
    Ok((!text.is_empty()).then(|| text.to_lowercase()))
}
