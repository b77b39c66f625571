//! Sites, their prices and credentials, and the access an agent gets to one.

use std::collections::BTreeMap;

use ferry_proto::{time::to_timestamp, v1 as pb};
use secrecy::{ExposeSecret, SecretString};

use super::*;
use crate::{
    domain::{
        name::Name,
        site::{Credentials, NewSite, Prices, PricesPatch, Site, SitePatch},
    },
    error::{Error, Result},
    service::SiteAccess,
};

pub fn credentials(map: BTreeMap<String, String>) -> Credentials {
    Credentials::new(
        map.into_iter()
            .map(|(k, v)| (k, SecretString::from(v)))
            .collect(),
    )
}

pub fn new_site(site: Option<pb::Site>) -> Result<NewSite> {
    let s = site.ok_or_else(|| Error::invalid("site", "required"))?;
    let new = NewSite {
        name: Name::parse("site.name", &s.name)?,
        uri: ferry_storage::SiteUri::parse(&s.uri).map_err(|e| Error::from(e).within("site"))?,
        options: to_btree(s.options),
        tier: required_tier("site.tier", s.tier)?,
        default_storage_class: s.default_storage_class,
        latency_ms: s.latency_ms,
        prices: s.prices.map(prices).unwrap_or_default(),
        bandwidth_limit: nonzero(s.bandwidth_limit_bytes_per_sec),
    };
    new.validate().map_err(|e| e.within("site"))?;
    Ok(new)
}

pub fn prices(p: pb::Prices) -> Prices {
    Prices {
        storage_per_gb_month: p.storage_per_gb_month,
        retrieval_per_gb: p.retrieval_per_gb,
        egress_per_gb: p.egress_per_gb,
        per_1000_requests: p.per_1000_requests,
        min_storage_days: p.min_storage_days,
    }
}

/// A site on the wire, with what it holds (`usage`, from its replicas).
pub fn site_to_pb(s: Site, usage: crate::store::SiteUsage) -> pb::Site {
    pb::Site {
        bytes_stored: usage.bytes,
        dataset_count: usage.datasets,
        id: s.id.to_string(),
        name: s.name.to_string(),
        uri: s.uri.to_string(),
        options: s.options.into_iter().collect(),
        tier: tier_to_pb(s.tier),
        default_storage_class: s.default_storage_class,
        latency_ms: s.latency_ms,
        bandwidth_limit_bytes_per_sec: s.bandwidth_limit.unwrap_or(0),
        prices: Some(pb::Prices {
            storage_per_gb_month: s.prices.storage_per_gb_month,
            retrieval_per_gb: s.prices.retrieval_per_gb,
            egress_per_gb: s.prices.egress_per_gb,
            per_1000_requests: s.prices.per_1000_requests,
            min_storage_days: s.prices.min_storage_days,
        }),
        credential_keys: s.credential_keys,
        create_time: Some(to_timestamp(s.created_at)),
        update_time: Some(to_timestamp(s.updated_at)),
    }
}

pub fn site_patch(
    site: pb::Site,
    credentials: std::collections::HashMap<String, String>,
    paths: &[String],
) -> Result<SitePatch, Error> {
    let has = |p: &str| paths.iter().any(|x| x == p);
    let prices = site.prices.unwrap_or_default();
    let price =
        |name: &str, value: f64| (has("prices") || has(&format!("prices.{name}"))).then_some(value);
    Ok(SitePatch {
        options: has("options").then(|| site.options.into_iter().collect()),
        tier: if has("tier") {
            Some(required_tier("site.tier", site.tier)?)
        } else {
            None
        },
        default_storage_class: has("default_storage_class").then_some(site.default_storage_class),
        latency_ms: has("latency_ms").then_some(site.latency_ms),
        bandwidth_limit: has("bandwidth_limit_bytes_per_sec").then_some(
            (site.bandwidth_limit_bytes_per_sec != 0).then_some(site.bandwidth_limit_bytes_per_sec),
        ),
        prices: PricesPatch {
            storage_per_gb_month: price("storage_per_gb_month", prices.storage_per_gb_month),
            retrieval_per_gb: price("retrieval_per_gb", prices.retrieval_per_gb),
            egress_per_gb: price("egress_per_gb", prices.egress_per_gb),
            per_1000_requests: price("per_1000_requests", prices.per_1000_requests),
            min_storage_days: (has("prices") || has("prices.min_storage_days"))
                .then_some(prices.min_storage_days),
        },
        credentials: has("credentials")
            .then(|| self::credentials(credentials.into_iter().collect())),
    })
}

pub fn access_to_pb(a: SiteAccess) -> pb::SiteAccess {
    pb::SiteAccess {
        site: a.site.id.to_string(),
        uri: a.site.uri.to_string(),
        options: a.site.options.into_iter().collect(),
        credentials: a
            .credentials
            .entries()
            .iter()
            .map(|(k, v)| (k.clone(), v.expose_secret().to_owned()))
            .collect(),
        path: a.path,
    }
}
