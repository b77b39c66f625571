//! Dry runs of a migration plan: what would move and what it would cost, by listing the
//! source from the control plane with the same filter an agent applies.
//!
//! The control plane reaches object stores directly; a `file://` source must be visible
//! at the same path on the control plane's host.

use ferry_agent::{filter::ObjectFilter as ListingFilter, storage, transfer};
use ferry_proto::v1 as pb;
use futures::TryStreamExt;

use super::{Catalogue, PlanRequest};
use crate::{
    bus::messages::filter_to_pb,
    domain::{name::Ref, site::Prices},
    error::{Error, Result},
};

/// Objects named in a dry run's answer, at most.
const SAMPLE: usize = 20;
const GB: f64 = 1e9;

pub struct DryRun {
    pub objects: u64,
    pub bytes: u64,
    pub sample: Vec<(String, u64)>,
    pub estimated_cost: f64,
}

/// The one-time cost of moving `objects` totalling `bytes` out of a site priced
/// `source` into one priced `destination`: egress and retrieval at the source, a read
/// request per object there and a write request per object at the destination.
pub fn move_cost(source: &Prices, destination: &Prices, objects: u64, bytes: u64) -> f64 {
    let gb = bytes as f64 / GB;
    let requests = objects as f64 / 1000.0;
    gb * (source.egress_per_gb + source.retrieval_per_gb)
        + requests * (source.per_1000_requests + destination.per_1000_requests)
}

impl Catalogue {
    pub async fn dry_run(&self, req: &PlanRequest) -> Result<DryRun> {
        let dataset = self.get_dataset(&req.dataset).await?;
        let source = self.get_site(&Ref::Id(dataset.site_id)).await?;
        let destination = self
            .referenced_site("destination_site", &req.destination_site)
            .await?;
        let credentials = self.site_credentials(source.id).await?;
        let access = storage::SiteAccess {
            uri: source.uri.to_string(),
            options: source.options.clone(),
            credentials: credentials.entries().clone(),
            path: dataset.path.as_str().to_owned(),
        };
        let op = storage::operator(&access)
            .map_err(|e| Error::FailedPrecondition(format!("source site {}: {e}", source.name)))?;
        let filter = ListingFilter::from_pb(Some(&filter_to_pb(&req.filter)))
            .map_err(|reason| Error::invalid("filter", reason))?;
        let mut run = DryRun {
            objects: 0,
            bytes: 0,
            sample: Vec::new(),
            estimated_cost: 0.0,
        };
        let mut listing = Box::pin(transfer::list(&op));
        while let Some(object) = listing
            .try_next()
            .await
            .map_err(|e| Error::FailedPrecondition(format!("listing the source: {e}")))?
        {
            if !filter.accepts(&object) {
                continue;
            }
            run.objects += 1;
            run.bytes += object.size;
            if run.sample.len() < SAMPLE {
                run.sample.push((object.key, object.size));
            }
        }
        run.estimated_cost = move_cost(&source.prices, &destination.prices, run.objects, run.bytes);
        Ok(run)
    }
}

pub fn to_pb(run: DryRun) -> pb::DryRunReport {
    pb::DryRunReport {
        objects: run.objects,
        bytes: run.bytes,
        sample: run
            .sample
            .into_iter()
            .map(|(key, size)| pb::PlannedObject { key, size })
            .collect(),
        estimated_cost: run.estimated_cost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn move_cost_adds_egress_retrieval_and_requests() {
        let source = Prices {
            egress_per_gb: 0.09,
            retrieval_per_gb: 0.01,
            per_1000_requests: 0.4,
            ..Prices::default()
        };
        let destination = Prices {
            per_1000_requests: 5.0,
            ..Prices::default()
        };
        // 2 GB and 2,000 objects: 2 × 0.10 + 2 × (0.4 + 5.0) = 11.0
        let cost = move_cost(&source, &destination, 2000, 2_000_000_000);
        assert!((cost - 11.0).abs() < 1e-9, "{cost}");
    }
}
