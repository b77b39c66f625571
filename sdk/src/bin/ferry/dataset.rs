//! `ferry dataset`: register, inspect, change and remove datasets.

use std::collections::HashMap;

use clap::{Args, Subcommand};
use ferry_sdk::{pb, DatasetDetails, DatasetFilter, Error};

use crate::enums::{display, parse_tier};
use crate::json::{self, ToJson};
use crate::output::{self, Fields};
use crate::parse::{into_map, parse_bytes, parse_key_value};
use crate::{policy, site, Context};

#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Register a dataset at a path below a site
    Create {
        /// Unique, immutable name; same rules as a site name
        name: String,
        /// The site (id or name) holding the dataset
        #[arg(long)]
        site: String,
        /// Path below the site's root, e.g. projects/genome
        #[arg(long)]
        path: String,
        #[command(flatten)]
        spec: DatasetSpec,
    },
    /// Show a dataset, its replicas and the policy that governs it
    Get {
        /// The dataset's id or name
        dataset: String,
    },
    /// List datasets; each filter given narrows the list
    List {
        /// Only datasets whose primary replica is on this site (id or name)
        #[arg(long)]
        site: Option<String>,
        /// Only datasets currently on this tier: hot, warm or cold
        #[arg(long, value_parser = parse_tier, value_name = "TIER")]
        tier: Option<pb::Tier>,
        /// Only datasets of this owner
        #[arg(long)]
        owner: Option<String>,
        /// Only datasets carrying this label with this value; repeatable
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        labels: Vec<(String, String)>,
        /// Only datasets whose name contains this text, in any case
        #[arg(long, value_name = "TEXT")]
        name: Option<String>,
    },
    /// Change a dataset; only the fields given are changed
    Update {
        /// The dataset's id or name
        dataset: String,
        #[command(flatten)]
        spec: DatasetSpec,
    },
    /// Remove a dataset from the catalogue (its bytes stay where they are)
    Delete {
        /// The dataset's id or name
        dataset: String,
    },
}

/// The settable fields of a dataset, shared by `create` and `update`.
#[derive(Debug, Args)]
pub struct DatasetSpec {
    /// Current tier: hot, warm or cold (defaults to the site's tier on create)
    #[arg(long, value_parser = parse_tier, value_name = "TIER")]
    tier: Option<pb::Tier>,
    /// Latency objective of reads, in milliseconds; 0 means none
    #[arg(long, value_name = "MS")]
    slo_ms: Option<u32>,
    /// Size of the dataset, e.g. 1073741824 or 1GiB
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    size_bytes: Option<u64>,
    /// Number of objects in the dataset
    #[arg(long, value_name = "N")]
    object_count: Option<u64>,
    /// Who owns the dataset
    #[arg(long)]
    owner: Option<String>,
    /// Label that policies select on; repeatable. On update, the given labels replace all
    /// labels
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    labels: Vec<(String, String)>,
}

impl DatasetSpec {
    /// Sets the given fields on `dataset` and returns their update-mask paths.
    fn apply(&self, dataset: &mut pb::Dataset) -> Result<Vec<&'static str>, Error> {
        let mut mask = Vec::new();
        if let Some(tier) = self.tier {
            dataset.current_tier = tier.into();
            mask.push("current_tier");
        }
        if let Some(slo) = self.slo_ms {
            dataset.latency_slo_ms = slo;
            mask.push("latency_slo_ms");
        }
        if let Some(size) = self.size_bytes {
            dataset.size_bytes = size;
            mask.push("size_bytes");
        }
        if let Some(count) = self.object_count {
            dataset.object_count = count;
            mask.push("object_count");
        }
        if let Some(owner) = &self.owner {
            dataset.owner = owner.clone();
            mask.push("owner");
        }
        if !self.labels.is_empty() {
            dataset.labels = into_map(&self.labels, "label")?;
            mask.push("labels");
        }
        Ok(mask)
    }
}

pub async fn run(command: DatasetCommand, ctx: &Context) -> Result<String, Error> {
    match command {
        DatasetCommand::Create {
            name,
            site,
            path,
            spec,
        } => {
            let mut dataset = pb::Dataset {
                name,
                site,
                path,
                ..Default::default()
            };
            spec.apply(&mut dataset)?;
            let created = ctx.client().await?.create_dataset(dataset).await?;
            show(&created, ctx).await
        }
        DatasetCommand::Get { dataset } => {
            let details = ctx.client().await?.get_dataset(&dataset).await?;
            show_details(&details, ctx).await
        }
        DatasetCommand::List {
            site,
            tier,
            owner,
            labels,
            name,
        } => {
            let filter = DatasetFilter {
                site,
                tier,
                owner,
                labels: into_map(&labels, "label")?,
                name_contains: name,
            };
            let datasets = ctx.client().await?.list_datasets(&filter).await?;
            list(&datasets, ctx).await
        }
        DatasetCommand::Update { dataset, spec } => {
            let mut changes = pb::Dataset::default();
            let mask = spec.apply(&mut changes)?;
            if mask.is_empty() {
                return Err(Error::InvalidInput(
                    "nothing to update: give at least one flag, e.g. --tier or --label".into(),
                ));
            }
            let client = ctx.client().await?;
            let current = client.get_dataset(&dataset).await?.dataset;
            changes.id = current.id;
            changes.name = current.name;
            let updated = client.update_dataset(changes, mask).await?;
            show(&updated, ctx).await
        }
        DatasetCommand::Delete { dataset } => {
            ctx.client().await?.delete_dataset(&dataset).await?;
            Ok(if ctx.json() {
                "{}".to_owned()
            } else {
                format!("deleted dataset {dataset}")
            })
        }
    }
}

async fn show(dataset: &pb::Dataset, ctx: &Context) -> Result<String, Error> {
    if ctx.json() {
        return Ok(json::render(&dataset.to_json()));
    }
    let sites = site::names_by_id(ctx.client().await?).await?;
    Ok(fields(dataset, &sites).render())
}

async fn show_details(details: &DatasetDetails, ctx: &Context) -> Result<String, Error> {
    if ctx.json() {
        return Ok(json::render(&details.to_json()));
    }
    let sites = site::names_by_id(ctx.client().await?).await?;
    let mut sections = vec![fields(&details.dataset, &sites).render()];
    if details.replicas.is_empty() {
        sections.push("replicas: none".to_owned());
    } else {
        let rows = details
            .replicas
            .iter()
            .map(|replica| {
                vec![
                    site::name_of(&sites, &replica.site),
                    output::or_none(&replica.path),
                    display::<pb::ReplicaRole>(replica.role),
                    display::<pb::ReplicaState>(replica.state),
                    output::timestamp(replica.verify_time.as_ref()),
                    output::or_none(&replica.manifest),
                    output::timestamp(replica.sync_time.as_ref()),
                    output::duration(replica.lag.as_ref()),
                ]
            })
            .collect();
        let table = output::table(
            &[
                "SITE", "PATH", "ROLE", "STATE", "VERIFIED", "MANIFEST", "SYNCED", "LAG",
            ],
            rows,
        );
        sections.push(format!("replicas:\n{table}"));
    }
    match &details.effective_policy {
        Some(governing) => sections.push(format!(
            "effective policy:\n{}",
            policy::fields(governing, &sites).render()
        )),
        None => sections.push("effective policy: none (no policy selects this dataset)".into()),
    }
    Ok(sections.join("\n\n"))
}

fn fields(dataset: &pb::Dataset, sites: &HashMap<String, String>) -> Fields {
    let mut fields = Fields::new();
    fields
        .add("name", &dataset.name)
        .add("id", &dataset.id)
        .add("site", site::name_of(sites, &dataset.site))
        .add("path", &dataset.path)
        .add("tier", display::<pb::Tier>(dataset.current_tier))
        .add("latency slo", latency_slo(dataset.latency_slo_ms))
        .add(
            "size",
            format!(
                "{} ({} bytes)",
                output::bytes(dataset.size_bytes),
                dataset.size_bytes
            ),
        )
        .add("objects", dataset.object_count.to_string())
        .add("owner", output::or_none(&dataset.owner))
        .add("labels", output::pairs(&dataset.labels))
        .add(
            "last access",
            output::timestamp(dataset.last_access_time.as_ref()),
        )
        .add("created", output::timestamp(dataset.create_time.as_ref()))
        .add("updated", output::timestamp(dataset.update_time.as_ref()));
    fields
}

/// A latency objective in milliseconds, where 0 means there is none.
pub fn latency_slo(ms: u32) -> String {
    if ms == 0 {
        "none".to_owned()
    } else {
        format!("{ms} ms")
    }
}

async fn list(datasets: &[pb::Dataset], ctx: &Context) -> Result<String, Error> {
    if ctx.json() {
        return Ok(json::render(&json::array(datasets)));
    }
    if datasets.is_empty() {
        return Ok("no datasets".to_owned());
    }
    let sites = site::names_by_id(ctx.client().await?).await?;
    let rows = datasets
        .iter()
        .map(|dataset| {
            vec![
                dataset.name.clone(),
                site::name_of(&sites, &dataset.site),
                dataset.path.clone(),
                display::<pb::Tier>(dataset.current_tier),
                output::bytes(dataset.size_bytes),
                dataset.object_count.to_string(),
                output::or_none(&dataset.owner),
                output::pairs(&dataset.labels),
                dataset.id.clone(),
            ]
        })
        .collect();
    Ok(output::table(
        &[
            "NAME", "SITE", "PATH", "TIER", "SIZE", "OBJECTS", "OWNER", "LABELS", "ID",
        ],
        rows,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        spec: DatasetSpec,
    }

    #[test]
    fn the_mask_names_only_the_flags_given() -> Result<(), Error> {
        let argv = [
            "probe",
            "--size-bytes",
            "2GiB",
            "--label",
            "team=bio",
            "--owner",
            "ana",
        ];
        let probe = Probe::try_parse_from(argv).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let mut dataset = pb::Dataset::default();
        let mask = probe.spec.apply(&mut dataset)?;
        assert_eq!(mask, ["size_bytes", "owner", "labels"]);
        assert_eq!(dataset.size_bytes, 2 << 30);
        assert_eq!(dataset.owner, "ana");
        assert_eq!(dataset.labels.get("team").map(String::as_str), Some("bio"));
        Ok(())
    }

    #[test]
    fn a_label_given_twice_is_refused() {
        let argv = ["probe", "--label", "team=a", "--label", "team=b"];
        let spec = Probe::try_parse_from(argv).map(|p| p.spec);
        let Ok(spec) = spec else {
            panic!("two --label flags should parse");
        };
        let result = spec.apply(&mut pb::Dataset::default());
        assert!(matches!(result, Err(Error::InvalidInput(_))));
    }
}
