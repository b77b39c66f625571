//! Conversions between `ferry.v1` wire messages and domain types. Every inbound value
//! is validated here or in the domain constructor it calls, failing as
//! `InvalidArgument` with the field's path.

use std::{collections::BTreeMap, time::Duration};

use ferry_proto::{
    time::{from_duration, to_duration, to_timestamp},
    v1 as pb,
};
use secrecy::SecretString;

use crate::{
    domain::{
        dataset::{Dataset, DatasetPath, NewDataset, Replica, ReplicaRole, ReplicaState},
        labels::Labels,
        name::{Name, Ref},
        policy::{Policy, PolicyPatch, ScheduleWindow},
        site::{Credentials, NewSite, Prices, Site},
        tier::{Tier, VerifyMode},
        uri::SiteUri,
    },
    error::{Error, Result},
};

/// A tier field; `TIER_UNSPECIFIED` is `None`.
pub fn tier(field: &str, value: i32) -> Result<Option<Tier>> {
    match pb::Tier::try_from(value) {
        Ok(pb::Tier::Unspecified) => Ok(None),
        Ok(pb::Tier::Hot) => Ok(Some(Tier::Hot)),
        Ok(pb::Tier::Warm) => Ok(Some(Tier::Warm)),
        Ok(pb::Tier::Cold) => Ok(Some(Tier::Cold)),
        Err(_) => Err(Error::invalid(field, format!("unknown tier {value}"))),
    }
}

pub fn required_tier(field: &str, value: i32) -> Result<Tier> {
    tier(field, value)?.ok_or_else(|| Error::invalid(field, "must be hot, warm or cold"))
}

pub fn tier_to_pb(t: Tier) -> i32 {
    match t {
        Tier::Hot => pb::Tier::Hot,
        Tier::Warm => pb::Tier::Warm,
        Tier::Cold => pb::Tier::Cold,
    }
    .into()
}

pub fn verify_mode(field: &str, value: i32) -> Result<Option<VerifyMode>> {
    match pb::VerifyMode::try_from(value) {
        Ok(pb::VerifyMode::Unspecified) => Ok(None),
        Ok(pb::VerifyMode::Quick) => Ok(Some(VerifyMode::Quick)),
        Ok(pb::VerifyMode::Full) => Ok(Some(VerifyMode::Full)),
        Err(_) => Err(Error::invalid(
            field,
            format!("unknown verify mode {value}"),
        )),
    }
}

fn verify_mode_to_pb(m: VerifyMode) -> i32 {
    match m {
        VerifyMode::Quick => pb::VerifyMode::Quick,
        VerifyMode::Full => pb::VerifyMode::Full,
    }
    .into()
}

fn duration(field: &str, d: &prost_types::Duration) -> Result<Duration> {
    from_duration(d).ok_or_else(|| Error::invalid(field, "must be a non-negative duration"))
}

/// Zero means "none" for optional limits on the wire.
fn nonzero<T: Default + PartialEq>(value: T) -> Option<T> {
    (value != T::default()).then_some(value)
}

pub fn credentials(map: BTreeMap<String, String>) -> Credentials {
    Credentials::new(
        map.into_iter()
            .map(|(k, v)| (k, SecretString::from(v)))
            .collect(),
    )
}

fn to_btree(map: std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    map.into_iter().collect()
}

pub fn new_site(site: Option<pb::Site>) -> Result<NewSite> {
    let s = site.ok_or_else(|| Error::invalid("site", "required"))?;
    let new = NewSite {
        name: Name::parse("site.name", &s.name)?,
        uri: SiteUri::parse("site.uri", &s.uri)?,
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

pub fn site_to_pb(s: Site) -> pb::Site {
    pb::Site {
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

pub fn labels(field: &str, map: std::collections::HashMap<String, String>) -> Result<Labels> {
    Labels::parse(field, &to_btree(map))
}

pub fn new_dataset(dataset: Option<pb::Dataset>) -> Result<NewDataset> {
    let d = dataset.ok_or_else(|| Error::invalid("dataset", "required"))?;
    Ok(NewDataset {
        name: Name::parse("dataset.name", &d.name)?,
        site: Ref::parse("dataset.site", &d.site)?,
        path: DatasetPath::parse("dataset.path", &d.path)?,
        current_tier: tier("dataset.current_tier", d.current_tier)?,
        latency_slo_ms: nonzero(d.latency_slo_ms),
        size_bytes: d.size_bytes,
        object_count: d.object_count,
        owner: d.owner,
        labels: labels("dataset.labels", d.labels)?,
    })
}

pub fn dataset_to_pb(d: Dataset) -> pb::Dataset {
    pb::Dataset {
        id: d.id.to_string(),
        name: d.name.to_string(),
        site: d.site_id.to_string(),
        path: d.path.as_str().to_owned(),
        current_tier: tier_to_pb(d.current_tier),
        latency_slo_ms: d.latency_slo_ms.unwrap_or(0),
        size_bytes: d.size_bytes,
        object_count: d.object_count,
        owner: d.owner,
        labels: d.labels.as_map().clone().into_iter().collect(),
        last_access_time: d.last_access_at.map(to_timestamp),
        create_time: Some(to_timestamp(d.created_at)),
        update_time: Some(to_timestamp(d.updated_at)),
    }
}

pub fn replica_to_pb(r: Replica) -> pb::Replica {
    pb::Replica {
        site: r.site_id.to_string(),
        path: r.path,
        role: match r.role {
            ReplicaRole::Primary => pb::ReplicaRole::Primary,
            ReplicaRole::Secondary => pb::ReplicaRole::Secondary,
        }
        .into(),
        state: match r.state {
            ReplicaState::Copying => pb::ReplicaState::Copying,
            ReplicaState::Ready => pb::ReplicaState::Ready,
            ReplicaState::Retiring => pb::ReplicaState::Retiring,
        }
        .into(),
        verify_time: r.verified_at.map(to_timestamp),
        manifest: r.manifest.unwrap_or_default(),
    }
}

/// Policy fields a request sets: every field on create (`mask` is `None`), only the
/// masked ones on update. On create an absent duration keeps its default; on update a
/// masked threshold must be given.
pub fn policy_fields(p: &pb::Policy, mask: Option<&[String]>) -> Result<PolicyPatch> {
    let wants = |field: &str| mask.is_none_or(|m| m.iter().any(|f| f == field));
    let field = |name: &str| format!("policy.{name}");
    let threshold = |name: &str, d: &Option<prost_types::Duration>| -> Result<Option<Duration>> {
        match (d, mask.is_some()) {
            (Some(d), _) => duration(&field(name), d).map(Some),
            (None, false) => Ok(None),
            (None, true) => Err(Error::invalid(field(name), "required when in update_mask")),
        }
    };
    let mut patch = PolicyPatch::default();
    if wants("description") {
        patch.description = Some(p.description.clone());
    }
    if wants("selector") {
        patch.selector = Some(labels(&field("selector"), p.selector.clone())?);
    }
    if wants("priority") {
        patch.priority = Some(p.priority);
    }
    if wants("hot_after") {
        patch.hot_after = threshold("hot_after", &p.hot_after)?;
    }
    if wants("warm_after") {
        patch.warm_after = threshold("warm_after", &p.warm_after)?;
    }
    if wants("placements") {
        let mut placements = Vec::with_capacity(p.placements.len());
        for (i, placement) in p.placements.iter().enumerate() {
            let tier = required_tier(&field(&format!("placements[{i}].tier")), placement.tier)?;
            let site = Ref::parse(&field(&format!("placements[{i}].site")), &placement.site)?;
            placements.push((tier, site));
        }
        patch.placements = Some(placements);
    }
    if wants("latency_slo_ms") {
        patch.latency_slo_ms = Some(nonzero(p.latency_slo_ms));
    }
    if wants("monthly_cost_target") {
        patch.monthly_cost_target = Some(nonzero(p.monthly_cost_target));
    }
    if wants("min_residency") {
        let d = p
            .min_residency
            .as_ref()
            .map(|d| duration(&field("min_residency"), d));
        patch.min_residency = Some(d.transpose()?.unwrap_or(Duration::ZERO));
    }
    if wants("auto_migrate") {
        patch.auto_migrate = Some(p.auto_migrate);
    }
    if wants("retire_source") {
        patch.retire_source = Some(p.retire_source);
    }
    if wants("verify_mode") {
        let mode = verify_mode(&field("verify_mode"), p.verify_mode)?;
        patch.verify_mode = if mask.is_some() {
            Some(mode.unwrap_or_default())
        } else {
            mode
        };
    }
    if wants("schedule_window") {
        let window = p
            .schedule_window
            .as_ref()
            .map(|w| ScheduleWindow::parse(&w.start, &w.end).map_err(|e| e.within("policy")))
            .transpose()?;
        patch.schedule_window = Some(window);
    }
    if wants("bandwidth_limit_bytes_per_sec") {
        patch.bandwidth_limit = Some(nonzero(p.bandwidth_limit_bytes_per_sec));
    }
    if wants("max_concurrent_migrations") {
        patch.max_concurrent_migrations = Some(nonzero(p.max_concurrent_migrations));
    }
    Ok(patch)
}

pub const POLICY_MUTABLE_FIELDS: &[&str] = &[
    "description",
    "selector",
    "priority",
    "hot_after",
    "warm_after",
    "placements",
    "latency_slo_ms",
    "monthly_cost_target",
    "min_residency",
    "auto_migrate",
    "retire_source",
    "verify_mode",
    "schedule_window",
    "bandwidth_limit_bytes_per_sec",
    "max_concurrent_migrations",
];

pub fn policy_to_pb(p: Policy) -> pb::Policy {
    let s = p.spec;
    pb::Policy {
        id: p.id.to_string(),
        name: p.name.to_string(),
        description: s.description,
        selector: s.selector.as_map().clone().into_iter().collect(),
        priority: s.priority,
        hot_after: Some(to_duration(s.hot_after)),
        warm_after: Some(to_duration(s.warm_after)),
        placements: s
            .placements
            .into_iter()
            .map(|(tier, site)| pb::TierPlacement {
                tier: tier_to_pb(tier),
                site: site.to_string(),
            })
            .collect(),
        latency_slo_ms: s.latency_slo_ms.unwrap_or(0),
        monthly_cost_target: s.monthly_cost_target.unwrap_or(0.0),
        min_residency: Some(to_duration(s.min_residency)),
        auto_migrate: s.auto_migrate,
        retire_source: s.retire_source,
        verify_mode: verify_mode_to_pb(s.verify_mode),
        schedule_window: s.schedule_window.map(|w| pb::ScheduleWindow {
            start: ScheduleWindow::format_clock(w.start_minute),
            end: ScheduleWindow::format_clock(w.end_minute),
        }),
        bandwidth_limit_bytes_per_sec: s.bandwidth_limit.unwrap_or(0),
        max_concurrent_migrations: s.max_concurrent_migrations.unwrap_or(0),
        create_time: Some(to_timestamp(p.created_at)),
        update_time: Some(to_timestamp(p.updated_at)),
    }
}

/// Checks an update mask: not empty, every path known, none immutable.
pub fn check_mask(
    mask: Option<prost_types::FieldMask>,
    mutable: &[&str],
    immutable: &[&str],
) -> Result<Vec<String>> {
    let paths = mask.map(|m| m.paths).unwrap_or_default();
    if paths.is_empty() {
        return Err(Error::invalid(
            "update_mask",
            "must list the fields to change",
        ));
    }
    for path in &paths {
        if immutable.contains(&path.as_str()) {
            return Err(Error::invalid(
                "update_mask",
                format!("field '{path}' cannot be changed"),
            ));
        }
        if !mutable.contains(&path.as_str()) {
            return Err(Error::invalid(
                "update_mask",
                format!(
                    "unknown field '{path}'; expected one of {}",
                    mutable.join(", ")
                ),
            ));
        }
    }
    Ok(paths)
}

/// Picks the resource an update names: by id when given, else by name.
pub fn target<Id: std::str::FromStr>(field: &str, id: &str, name: &str) -> Result<Ref<Id>> {
    if id.is_empty() {
        Ref::parse(&format!("{field}.name"), name)
    } else {
        Ref::parse(&format!("{field}.id"), id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_must_be_known_mutable_and_non_empty() {
        let mask = |paths: &[&str]| {
            Some(prost_types::FieldMask {
                paths: paths.iter().map(|s| s.to_string()).collect(),
            })
        };
        assert!(check_mask(mask(&["tier"]), &["tier"], &["uri"]).is_ok());
        let err = check_mask(mask(&["uri"]), &["tier"], &["uri"])
            .unwrap_err()
            .to_string();
        assert_eq!(err, "update_mask: field 'uri' cannot be changed");
        let err = check_mask(mask(&["colour"]), &["tier"], &["uri"])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("update_mask: unknown field 'colour'"),
            "{err}"
        );
        assert!(check_mask(None, &["tier"], &[]).is_err());
    }

    #[test]
    fn unknown_enum_numbers_are_invalid_arguments() {
        let err = tier("site.tier", 42).unwrap_err().to_string();
        assert_eq!(err, "site.tier: unknown tier 42");
        let err = required_tier("site.tier", 0).unwrap_err().to_string();
        assert_eq!(err, "site.tier: must be hot, warm or cold");
    }

    #[test]
    fn create_keeps_default_thresholds_update_requires_them() {
        let p = pb::Policy {
            selector: [("team".to_string(), "a".to_string())]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let created = policy_fields(&p, None).unwrap();
        assert!(created.hot_after.is_none());
        let mask = vec!["hot_after".to_string()];
        let err = policy_fields(&p, Some(&mask)).unwrap_err().to_string();
        assert_eq!(err, "policy.hot_after: required when in update_mask");
    }
}
