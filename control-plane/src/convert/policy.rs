//! Policies and the fields an update may set.

use std::time::Duration;

use ferry_proto::{
    time::{to_duration, to_timestamp},
    v1 as pb,
};

use super::*;
use crate::{
    domain::{
        name::Ref,
        policy::{Policy, PolicyPatch, ScheduleWindow},
        schedule::When,
    },
    error::{Error, Result},
};

/// The fields of a policy an update may name.
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
    "cron",
    "time_zone",
];

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
    // The expression is read in its zone: naming either sets both.
    if wants("cron") || wants("time_zone") {
        patch.cron = Some(match (p.cron.trim(), p.time_zone.trim()) {
            ("", "") => None,
            ("", _) => {
                return Err(Error::invalid(
                    field("time_zone"),
                    "is the zone a cron is read in; set policy.cron too",
                ))
            }
            (cron, zone) => Some(When::parse(cron, zone).map_err(|e| e.within("policy"))?),
        });
    }
    Ok(patch)
}

pub fn policy_to_pb(p: Policy) -> pb::Policy {
    let s = p.spec;
    let runs = p.runs;
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
        cron: s
            .cron
            .as_ref()
            .map(|c| c.pattern().to_owned())
            .unwrap_or_default(),
        time_zone: s
            .cron
            .as_ref()
            .map(|c| c.time_zone().to_owned())
            .unwrap_or_default(),
        next_run_time: runs.next_run_at.map(to_timestamp),
        runs: runs.runs,
        skipped_runs: runs.skipped,
        last_error: runs.last_error.unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_cron_is_read_in_its_zone_and_a_zone_needs_a_cron() {
        let mut p = pb::Policy {
            cron: "0 3 * * *".into(),
            time_zone: "Europe/Paris".into(),
            ..Default::default()
        };
        let mask = vec!["time_zone".to_string()];
        let cron = policy_fields(&p, Some(&mask))
            .unwrap()
            .cron
            .unwrap()
            .unwrap();
        assert_eq!(
            (cron.pattern(), cron.time_zone()),
            ("0 3 * * *", "Europe/Paris")
        );
        p.time_zone = "Mars/Olympus".into();
        let err = policy_fields(&p, None).unwrap_err().to_string();
        assert!(
            err.starts_with("policy.time_zone: unknown time zone"),
            "{err}"
        );
        p.cron = String::new();
        let err = policy_fields(&p, None).unwrap_err().to_string();
        assert!(err.starts_with("policy.time_zone: is the zone"), "{err}");
        p.time_zone = String::new();
        assert_eq!(policy_fields(&p, Some(&mask)).unwrap().cron, Some(None));
    }
}
