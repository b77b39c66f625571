//! `ferry site`: register, inspect, change and remove storage locations.

use std::collections::HashMap;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use ferry_sdk::{pb, Client, Error};

use crate::enums::{display, parse_tier};
use crate::json::{self, ToJson};
use crate::output::{self, Fields};
use crate::parse::{into_map, parse_key_value, parse_price, parse_rate, read_credentials_file};
use crate::Context;

#[derive(Debug, Subcommand)]
pub enum SiteCommand {
    /// Register a site
    Create {
        /// Unique, immutable name: lowercase letters, digits, '-', '_' and '.'
        name: String,
        /// Where the site's data lives: file:///abs/path, s3://bucket/prefix,
        /// gs://bucket/prefix, azblob://container/prefix or memory://
        #[arg(long)]
        uri: String,
        #[command(flatten)]
        spec: SiteSpec,
    },
    /// Show one site
    Get {
        /// The site's id or name
        site: String,
    },
    /// List sites
    List {
        /// Only sites of this tier: hot, warm or cold
        #[arg(long, value_parser = parse_tier, value_name = "TIER")]
        tier: Option<pb::Tier>,
    },
    /// Change a site; only the fields given are changed
    Update {
        /// The site's id or name
        site: String,
        #[command(flatten)]
        spec: SiteSpec,
    },
    /// Remove a site that no dataset or policy refers to
    Delete {
        /// The site's id or name
        site: String,
    },
}

/// Writes one price into a site's prices.
type SetPrice = fn(&mut pb::Prices, f64);

/// The settable fields of a site, shared by `create` and `update`.
#[derive(Debug, Args)]
pub struct SiteSpec {
    /// Storage tier: hot, warm or cold
    #[arg(long, value_parser = parse_tier, value_name = "TIER")]
    tier: Option<pb::Tier>,
    /// Typical first-byte latency of a read, in milliseconds
    #[arg(long, value_name = "N")]
    latency_ms: Option<u32>,
    /// Bytes per second all agents of the site share, e.g. 100MB; 0 means unlimited
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    bandwidth_limit: Option<u64>,
    /// Default storage class of objects written here (e.g. STANDARD_IA)
    #[arg(long, value_name = "CLASS")]
    storage_class: Option<String>,
    /// Backend setting that is not secret (endpoint, region, ...); repeatable.
    /// On update, the given options replace all options
    #[arg(long = "option", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    options: Vec<(String, String)>,
    /// Credential (s3: access_key_id, secret_access_key, session_token; gs: credential;
    /// azblob: account_key or sas_token); repeatable. Stored encrypted, never shown.
    /// On update, replaces all stored credentials
    #[arg(long = "credential", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    credentials: Vec<(String, String)>,
    /// File of credentials, KEY=VALUE lines or a JSON object ("-" reads standard input);
    /// --credential flags override its keys
    #[arg(long, value_name = "FILE")]
    credentials_file: Option<PathBuf>,
    /// Storage price, US dollars per GB-month
    #[arg(long = "price-storage-gb-month", value_name = "USD", value_parser = parse_price)]
    price_storage_gb_month: Option<f64>,
    /// Retrieval price, US dollars per GB read
    #[arg(long = "price-retrieval-gb", value_name = "USD", value_parser = parse_price)]
    price_retrieval_gb: Option<f64>,
    /// Egress price, US dollars per GB leaving the site
    #[arg(long = "price-egress-gb", value_name = "USD", value_parser = parse_price)]
    price_egress_gb: Option<f64>,
    /// Request price, US dollars per 1000 requests
    #[arg(long = "price-per-1000-requests", value_name = "USD", value_parser = parse_price)]
    price_per_1000_requests: Option<f64>,
    /// Objects deleted earlier are billed as if kept this many days
    #[arg(long, value_name = "DAYS")]
    min_storage_days: Option<u32>,
}

impl SiteSpec {
    /// Sets the given fields on `site` and returns their update-mask paths.
    fn apply(&self, site: &mut pb::Site) -> Result<Vec<&'static str>, Error> {
        let mut mask = Vec::new();
        if let Some(tier) = self.tier {
            site.tier = tier.into();
            mask.push("tier");
        }
        if let Some(latency) = self.latency_ms {
            site.latency_ms = latency;
            mask.push("latency_ms");
        }
        if let Some(limit) = self.bandwidth_limit {
            site.bandwidth_limit_bytes_per_sec = limit;
            mask.push("bandwidth_limit_bytes_per_sec");
        }
        if let Some(class) = &self.storage_class {
            site.default_storage_class = class.clone();
            mask.push("default_storage_class");
        }
        if !self.options.is_empty() {
            site.options = into_map(&self.options, "option")?;
            mask.push("options");
        }
        let prices: [(Option<f64>, &'static str, SetPrice); 4] = [
            (
                self.price_storage_gb_month,
                "prices.storage_per_gb_month",
                |p, v| p.storage_per_gb_month = v,
            ),
            (
                self.price_retrieval_gb,
                "prices.retrieval_per_gb",
                |p, v| p.retrieval_per_gb = v,
            ),
            (self.price_egress_gb, "prices.egress_per_gb", |p, v| {
                p.egress_per_gb = v
            }),
            (
                self.price_per_1000_requests,
                "prices.per_1000_requests",
                |p, v| p.per_1000_requests = v,
            ),
        ];
        for (value, path, set) in prices {
            if let Some(value) = value {
                set(site.prices.get_or_insert_with(Default::default), value);
                mask.push(path);
            }
        }
        if let Some(days) = self.min_storage_days {
            site.prices
                .get_or_insert_with(Default::default)
                .min_storage_days = days;
            mask.push("prices.min_storage_days");
        }
        Ok(mask)
    }

    /// The credentials to store, `None` when no credential flag was given. Flags win over
    /// the file's keys.
    fn credentials(&self) -> Result<Option<HashMap<String, String>>, Error> {
        if self.credentials_file.is_none() && self.credentials.is_empty() {
            return Ok(None);
        }
        let mut credentials = match &self.credentials_file {
            Some(path) => read_credentials_file(path)?,
            None => HashMap::new(),
        };
        credentials.extend(into_map(&self.credentials, "credential")?);
        Ok(Some(credentials))
    }
}

pub async fn run(command: SiteCommand, ctx: &Context) -> Result<String, Error> {
    match command {
        SiteCommand::Create { name, uri, spec } => {
            let mut site = pb::Site {
                name,
                uri,
                ..Default::default()
            };
            spec.apply(&mut site)?;
            let credentials = spec.credentials()?.unwrap_or_default();
            let created = ctx.client().await?.create_site(site, credentials).await?;
            Ok(show(&created, ctx))
        }
        SiteCommand::Get { site } => {
            let found = ctx.client().await?.get_site(&site).await?;
            Ok(show(&found, ctx))
        }
        SiteCommand::List { tier } => {
            let sites = ctx.client().await?.list_sites(tier).await?;
            Ok(list(&sites, ctx))
        }
        SiteCommand::Update { site, spec } => {
            let mut changes = pb::Site::default();
            let mask = spec.apply(&mut changes)?;
            let credentials = spec.credentials()?;
            if mask.is_empty() && credentials.is_none() {
                return Err(Error::InvalidInput(
                    "nothing to update: give at least one flag, e.g. --tier or --latency-ms".into(),
                ));
            }
            let client = ctx.client().await?;
            let current = client.get_site(&site).await?;
            changes.id = current.id;
            changes.name = current.name;
            let updated = client.update_site(changes, mask, credentials).await?;
            Ok(show(&updated, ctx))
        }
        SiteCommand::Delete { site } => {
            ctx.client().await?.delete_site(&site).await?;
            Ok(if ctx.json() {
                "{}".to_owned()
            } else {
                format!("deleted site {site}")
            })
        }
    }
}

/// Site names by id, so tables of datasets and policies can show names.
pub async fn names_by_id(client: &Client) -> Result<HashMap<String, String>, Error> {
    let sites = client.list_sites(None).await?;
    Ok(sites.into_iter().map(|s| (s.id, s.name)).collect())
}

/// The name of the site `reference` (an id or a name) when known, else `reference`.
pub fn name_of(names: &HashMap<String, String>, reference: &str) -> String {
    names
        .get(reference)
        .cloned()
        .unwrap_or_else(|| output::or_none(reference))
}

fn show(site: &pb::Site, ctx: &Context) -> String {
    if ctx.json() {
        return json::render(&site.to_json());
    }
    let mut fields = Fields::new();
    fields
        .add("name", &site.name)
        .add("id", &site.id)
        .add("uri", &site.uri)
        .add("tier", display::<pb::Tier>(site.tier))
        .add("latency", format!("{} ms", site.latency_ms))
        .add(
            "bandwidth limit",
            output::bandwidth(site.bandwidth_limit_bytes_per_sec),
        )
        .add(
            "storage class",
            output::or_none(&site.default_storage_class),
        )
        .add("options", output::pairs(&site.options))
        .add("credentials", credential_keys(site))
        .add(
            "stored",
            format!(
                "{} in {} dataset(s)",
                output::bytes(site.bytes_stored),
                site.dataset_count
            ),
        );
    match &site.prices {
        Some(prices) => {
            fields
                .add(
                    "storage price",
                    format!(
                        "{} per GB-month",
                        output::dollars(prices.storage_per_gb_month)
                    ),
                )
                .add(
                    "retrieval price",
                    format!("{} per GB", output::dollars(prices.retrieval_per_gb)),
                )
                .add(
                    "egress price",
                    format!("{} per GB", output::dollars(prices.egress_per_gb)),
                )
                .add(
                    "request price",
                    format!("{} per 1000", output::dollars(prices.per_1000_requests)),
                )
                .add("min storage", format!("{} days", prices.min_storage_days));
        }
        None => {
            fields.add("prices", output::NONE);
        }
    }
    fields
        .add("created", output::timestamp(site.create_time.as_ref()))
        .add("updated", output::timestamp(site.update_time.as_ref()));
    fields.render()
}

/// The stored credentials' key names; the values never leave the server.
fn credential_keys(site: &pb::Site) -> String {
    if site.credential_keys.is_empty() {
        return output::NONE.to_owned();
    }
    let mut keys = site.credential_keys.clone();
    keys.sort();
    keys.join(", ")
}

fn list(sites: &[pb::Site], ctx: &Context) -> String {
    if ctx.json() {
        return json::render(&json::array(sites));
    }
    if sites.is_empty() {
        return "no sites".to_owned();
    }
    let rows = sites
        .iter()
        .map(|site| {
            vec![
                site.name.clone(),
                display::<pb::Tier>(site.tier),
                site.uri.clone(),
                format!("{} ms", site.latency_ms),
                output::or_none(&site.default_storage_class),
                site.id.clone(),
            ]
        })
        .collect();
    output::table(
        &["NAME", "TIER", "URI", "LATENCY", "STORAGE CLASS", "ID"],
        rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        spec: SiteSpec,
    }

    fn spec(args: &[&str]) -> SiteSpec {
        let argv = std::iter::once("probe").chain(args.iter().copied());
        match Probe::try_parse_from(argv) {
            Ok(probe) => probe.spec,
            Err(e) => panic!("{args:?} should parse: {e}"),
        }
    }

    #[test]
    fn the_mask_names_only_the_flags_given() -> Result<(), Error> {
        let given = spec(&[
            "--tier",
            "warm",
            "--price-egress-gb",
            "0.09",
            "--option",
            "region=eu",
        ]);
        let mut site = pb::Site::default();
        let mask = given.apply(&mut site)?;
        assert_eq!(mask, ["tier", "options", "prices.egress_per_gb"]);
        assert_eq!(site.tier, i32::from(pb::Tier::Warm));
        assert_eq!(site.prices.map(|p| p.egress_per_gb), Some(0.09));
        assert_eq!(site.options.get("region").map(String::as_str), Some("eu"));
        assert_eq!(given.credentials()?, None);
        Ok(())
    }

    #[test]
    fn no_price_flag_leaves_prices_unset() -> Result<(), Error> {
        let mut site = pb::Site::default();
        let mask = spec(&["--latency-ms", "3"]).apply(&mut site)?;
        assert_eq!(mask, ["latency_ms"]);
        assert_eq!(site.prices, None);
        Ok(())
    }

    #[test]
    fn a_bandwidth_limit_takes_units_and_zero_lifts_it() -> Result<(), Error> {
        let mut site = pb::Site::default();
        let mask = spec(&["--bandwidth-limit", "100MB"]).apply(&mut site)?;
        assert_eq!(mask, ["bandwidth_limit_bytes_per_sec"]);
        assert_eq!(site.bandwidth_limit_bytes_per_sec, 100_000_000);
        spec(&["--bandwidth-limit", "0"]).apply(&mut site)?;
        assert_eq!(site.bandwidth_limit_bytes_per_sec, 0);
        Ok(())
    }

    #[test]
    fn credential_flags_are_collected() -> Result<(), Error> {
        let given = spec(&[
            "--credential",
            "access_key_id=AK",
            "--credential",
            "secret_access_key=S",
        ]);
        let credentials = given.credentials()?.unwrap_or_default();
        assert_eq!(credentials.len(), 2);
        assert_eq!(
            credentials.get("access_key_id").map(String::as_str),
            Some("AK")
        );
        Ok(())
    }

    #[test]
    fn negative_prices_are_usage_errors() {
        let argv = ["probe", "--price-storage-gb-month", "-1"];
        assert!(Probe::try_parse_from(argv).is_err());
    }
}
