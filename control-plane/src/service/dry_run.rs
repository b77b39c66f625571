//! Dry runs of a migration plan: what would move and what it would cost. The source is
//! listed by one of its site's agents, through the plan's filter, since in a real
//! deployment only an agent near the site can see it (an on-prem path, a bucket behind
//! a private endpoint); the control plane asks over NATS and prices the answer.

use std::time::Duration;

use prost::Message;
use tracing::info;

use super::{migrations::check_destination, Catalogue, PlanRequest};
use crate::{
    bus::{dry_run_subject, Bus, NoAnswer},
    convert::{dry_run_answer, dry_run_question},
    domain::{agent::Liveness, cost::move_cost, name::Ref, site::Site},
    error::{Error, Result},
};

/// Objects named in a dry run's answer, at most.
const SAMPLE: u32 = 20;

pub struct DryRun {
    pub objects: u64,
    pub bytes: u64,
    pub sample: Vec<(String, u64)>,
    pub estimated_cost: f64,
}

/// The dry-run use case: the catalogue to check the plan, the bus to ask an agent.
#[derive(Clone)]
pub struct DryRuns {
    catalogue: Catalogue,
    bus: Bus,
    /// How long an agent may list before the dry run gives up.
    timeout: Duration,
}

impl DryRuns {
    pub fn new(catalogue: Catalogue, bus: Bus, timeout: Duration) -> Self {
        DryRuns {
            catalogue,
            bus,
            timeout,
        }
    }

    /// Checks the plan as `PlanMigration` would, then has an agent of the source site
    /// list the dataset through the plan's filter. `FAILED_PRECONDITION` names the site
    /// when none of its agents is online.
    pub async fn run(&self, req: &PlanRequest) -> Result<DryRun> {
        crate::call::set_target(format!("dataset:{}", req.dataset));
        let dataset = self.catalogue.get_dataset(&req.dataset).await?;
        let source = self.catalogue.get_site(&Ref::Id(dataset.site_id)).await?;
        let destination = self
            .catalogue
            .referenced_site("destination_site", &req.destination_site)
            .await?;
        check_destination(req, &dataset, &source, &destination)?;
        self.ensure_an_agent_is_online(&source).await?;
        let question = dry_run_question(dataset.path.as_str(), &req.filter, SAMPLE);
        let answer = self
            .bus
            .request(
                dry_run_subject(source.id),
                question.encode_to_vec(),
                self.timeout,
            )
            .await
            .map_err(|e| match e {
                NoAnswer::NoResponders => no_agent(&source),
                NoAnswer::TimedOut => Error::Unavailable(format!(
                    "no agent of site {} finished listing the source within {} s",
                    source.name,
                    self.timeout.as_secs()
                )),
                NoAnswer::Unavailable(why) => {
                    Error::Unavailable(format!("asking an agent of site {}: {why}", source.name))
                }
            })?;
        let listed = dry_run_answer(&answer)?.map_err(|why| {
            Error::FailedPrecondition(format!("listing the source on site {}: {why}", source.name))
        })?;
        info!(
            dataset = %dataset.name,
            site = %source.name,
            objects = listed.objects,
            bytes = listed.bytes,
            "dry run listed by an agent"
        );
        // Early deletion does not apply: a dry run plans a copy, the source stays.
        let estimated_cost = move_cost(
            &source.prices,
            &destination.prices,
            listed.bytes,
            listed.objects,
            f64::INFINITY,
        );
        Ok(DryRun {
            objects: listed.objects,
            bytes: listed.bytes,
            sample: listed.sample,
            estimated_cost,
        })
    }

    async fn ensure_an_agent_is_online(&self, site: &Site) -> Result<()> {
        let now = self.catalogue.clock().now();
        let agents = self.catalogue.store().list_agents(Some(site.id)).await?;
        if agents.iter().any(|a| a.liveness(now) == Liveness::Alive) {
            Ok(())
        } else {
            Err(no_agent(site))
        }
    }
}

fn no_agent(site: &Site) -> Error {
    Error::FailedPrecondition(format!(
        "no agent of site {} is online to list the source; start one with \
         `ferry-agent --site {}`",
        site.name, site.name
    ))
}
