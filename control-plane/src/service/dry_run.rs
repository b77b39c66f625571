//! Dry runs of a migration plan: what would move and what it would cost, by listing the
//! source from the control plane with the same filter an agent applies.
//!
//! The control plane reaches object stores directly; a `file://` source must be visible
//! at the same path on the control plane's host.

use ferry_agent::{filter::ObjectFilter as ListingFilter, storage, transfer};
use ferry_proto::v1 as pb;
use futures::TryStreamExt;

use super::{migrations::check_destination, Catalogue, PlanRequest};
use crate::{
    bus::messages::filter_to_pb,
    domain::{cost::move_cost, name::Ref},
    error::{Error, Result},
};

/// Objects named in a dry run's answer, at most.
const SAMPLE: usize = 20;

pub struct DryRun {
    pub objects: u64,
    pub bytes: u64,
    pub sample: Vec<(String, u64)>,
    pub estimated_cost: f64,
}

impl Catalogue {
    pub async fn dry_run(&self, req: &PlanRequest) -> Result<DryRun> {
        let dataset = self.get_dataset(&req.dataset).await?;
        let source = self.get_site(&Ref::Id(dataset.site_id)).await?;
        let destination = self
            .referenced_site("destination_site", &req.destination_site)
            .await?;
        check_destination(req, &dataset, &source, &destination)?;
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
        // Early deletion does not apply: a dry run plans a copy, the source stays.
        run.estimated_cost = move_cost(
            &source.prices,
            &destination.prices,
            run.bytes,
            run.objects,
            f64::INFINITY,
        );
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
