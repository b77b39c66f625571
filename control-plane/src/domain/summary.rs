//! How the audit log describes a change: the fields a call set, by name and value.
//! Credentials appear by key name only; nothing here ever sees a secret's value.

use std::{collections::BTreeMap, fmt::Write, time::Duration};

use super::{
    dataset::{Dataset, DatasetPatch},
    job::Job,
    labels::Labels,
    policy::{Policy, PolicyPatch},
    site::{Site, SitePatch},
};

/// `key=value` pairs joined by ", ", or `nothing` when a patch set no field.
#[derive(Default)]
struct Fields(String);

impl Fields {
    fn add(&mut self, name: &str, value: impl std::fmt::Display) {
        if !self.0.is_empty() {
            self.0.push_str(", ");
        }
        let _ = write!(self.0, "{name}={value}");
    }

    fn add_opt<T: std::fmt::Display>(&mut self, name: &str, value: Option<&Option<T>>) {
        match value {
            Some(Some(v)) => self.add(name, v),
            Some(None) => self.add(name, "none"),
            None => {}
        }
    }

    fn finish(self) -> String {
        if self.0.is_empty() {
            "nothing".to_owned()
        } else {
            self.0
        }
    }
}

fn map(m: &BTreeMap<String, String>) -> String {
    let entries: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("{{{}}}", entries.join(" "))
}

fn labels(l: &Labels) -> String {
    map(l.as_map())
}

fn keys(k: &[String]) -> String {
    format!("[{}]", k.join(" "))
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

impl Site {
    /// What a new site is: where, which tier, which credentials (by key).
    pub fn describe(&self) -> String {
        let mut f = Fields::default();
        f.add("uri", &self.uri);
        f.add("tier", self.tier);
        if !self.options.is_empty() {
            f.add("options", map(&self.options));
        }
        f.add("latency_ms", self.latency_ms);
        if let Some(limit) = self.bandwidth_limit {
            f.add("bandwidth_limit", limit);
        }
        f.add("credentials", keys(&self.credential_keys));
        f.finish()
    }
}

impl SitePatch {
    pub fn describe(&self) -> String {
        let mut f = Fields::default();
        if let Some(options) = &self.options {
            f.add("options", map(options));
        }
        if let Some(tier) = self.tier {
            f.add("tier", tier);
        }
        if let Some(class) = &self.default_storage_class {
            f.add("default_storage_class", class);
        }
        if let Some(latency) = self.latency_ms {
            f.add("latency_ms", latency);
        }
        let p = &self.prices;
        for (name, value) in [
            ("prices.storage_per_gb_month", p.storage_per_gb_month),
            ("prices.retrieval_per_gb", p.retrieval_per_gb),
            ("prices.egress_per_gb", p.egress_per_gb),
            ("prices.per_1000_requests", p.per_1000_requests),
        ] {
            if let Some(v) = value {
                f.add(name, v);
            }
        }
        if let Some(days) = p.min_storage_days {
            f.add("prices.min_storage_days", days);
        }
        f.add_opt("bandwidth_limit", self.bandwidth_limit.as_ref());
        if let Some(credentials) = &self.credentials {
            f.add("credentials", keys(&credentials.keys()));
        }
        f.finish()
    }
}

impl Dataset {
    /// What a new dataset is: where it lives and what it holds.
    pub fn describe(&self) -> String {
        let mut f = Fields::default();
        f.add("site", self.site_id);
        f.add("path", self.path.as_str());
        f.add("tier", self.current_tier);
        f.add("size_bytes", self.size_bytes);
        f.add("object_count", self.object_count);
        if !self.labels.is_empty() {
            f.add("labels", labels(&self.labels));
        }
        f.finish()
    }
}

impl DatasetPatch {
    pub fn describe(&self) -> String {
        let mut f = Fields::default();
        if let Some(tier) = self.current_tier {
            f.add("current_tier", tier);
        }
        f.add_opt("latency_slo_ms", self.latency_slo_ms.as_ref());
        if let Some(size) = self.size_bytes {
            f.add("size_bytes", size);
        }
        if let Some(count) = self.object_count {
            f.add("object_count", count);
        }
        if let Some(owner) = &self.owner {
            f.add("owner", owner);
        }
        if let Some(l) = &self.labels {
            f.add("labels", labels(l));
        }
        f.finish()
    }
}

impl Policy {
    /// What a new policy governs and does.
    pub fn describe(&self) -> String {
        let s = &self.spec;
        let mut f = Fields::default();
        f.add("selector", labels(&s.selector));
        f.add("priority", s.priority);
        f.add("hot_after", secs(s.hot_after));
        f.add("warm_after", secs(s.warm_after));
        let placements: BTreeMap<String, String> = s
            .placements
            .iter()
            .map(|(tier, site)| (tier.to_string(), site.to_string()))
            .collect();
        f.add("placements", map(&placements));
        f.add("auto_migrate", s.auto_migrate);
        if let Some(cron) = &s.cron {
            f.add("cron", cron);
        }
        f.add("retire_source", s.retire_source);
        f.finish()
    }
}

impl PolicyPatch {
    pub fn describe(&self) -> String {
        let mut f = Fields::default();
        if self.description.is_some() {
            f.add("description", "(changed)");
        }
        if let Some(selector) = &self.selector {
            f.add("selector", labels(selector));
        }
        if let Some(priority) = self.priority {
            f.add("priority", priority);
        }
        if let Some(d) = self.hot_after {
            f.add("hot_after", secs(d));
        }
        if let Some(d) = self.warm_after {
            f.add("warm_after", secs(d));
        }
        if let Some(placements) = &self.placements {
            let placements: BTreeMap<String, String> = placements
                .iter()
                .map(|(tier, site)| (tier.to_string(), site.to_string()))
                .collect();
            f.add("placements", map(&placements));
        }
        f.add_opt("latency_slo_ms", self.latency_slo_ms.as_ref());
        f.add_opt("monthly_cost_target", self.monthly_cost_target.as_ref());
        if let Some(d) = self.min_residency {
            f.add("min_residency", secs(d));
        }
        if let Some(v) = self.auto_migrate {
            f.add("auto_migrate", v);
        }
        if let Some(v) = self.retire_source {
            f.add("retire_source", v);
        }
        if let Some(v) = self.verify_mode {
            f.add("verify_mode", v.as_str());
        }
        f.add_opt("schedule_window", self.schedule_window.as_ref());
        f.add_opt("cron", self.cron.as_ref());
        f.add_opt("bandwidth_limit", self.bandwidth_limit.as_ref());
        f.add_opt(
            "max_concurrent_migrations",
            self.max_concurrent_migrations.as_ref(),
        );
        f.finish()
    }
}

impl Job {
    /// What a planned job does.
    pub fn describe(&self) -> String {
        let mut f = Fields::default();
        f.add("dataset", self.dataset_id);
        f.add(
            "from",
            format_args!("{}:{}", self.source_site_id, self.source_path),
        );
        f.add(
            "to",
            format_args!("{}:{}", self.destination_site_id, self.destination_path),
        );
        f.add("verify", self.verify_mode.as_str());
        match self.kind.sync() {
            None => f.add("retire_source", self.retire_source),
            Some(rule) => {
                f.add("kind", "sync");
                f.add("deletion", rule.deletion.as_str());
                f.add_opt("max_delete", Some(&rule.max_delete));
            }
        }
        f.finish()
    }

    /// Where a job stands after a change an operator made.
    pub fn describe_state(&self) -> String {
        let mut f = Fields::default();
        f.add("state", self.state);
        f.add("attempt", self.attempt);
        f.add_opt("bandwidth_limit", Some(&self.bandwidth_limit));
        f.finish()
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::domain::{site::Credentials, tier::Tier};

    #[test]
    fn a_patch_names_the_fields_it_sets_and_credentials_by_key_only() {
        let mut credentials = BTreeMap::new();
        credentials.insert(
            "secret_access_key".to_owned(),
            SecretString::from("canary-7f3a"),
        );
        let patch = SitePatch {
            tier: Some(Tier::Warm),
            bandwidth_limit: Some(None),
            credentials: Some(Credentials::new(credentials)),
            ..Default::default()
        };
        let summary = patch.describe();
        assert_eq!(
            summary,
            "tier=warm, bandwidth_limit=none, credentials=[secret_access_key]"
        );
        assert!(!summary.contains("canary"));
        assert_eq!(SitePatch::default().describe(), "nothing");
    }
}
