//! `ferry policy`: create, inspect, change and remove tiering policies.

use std::collections::HashMap;
use std::time::Duration;

use clap::{Args, Subcommand};
use ferry_sdk::time::to_duration;
use ferry_sdk::{pb, Error, JobFilter};

use crate::dataset::latency_slo;
use crate::duration::parse_duration;
use crate::enums::{display, parse_verify_mode};
use crate::json::{self, ToJson};
use crate::output::{self, Fields};
use crate::parse::{
    into_map, parse_bytes, parse_key_value, parse_placement, parse_price, parse_window, Window,
};
use crate::{site, Context};

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Create a policy governing the datasets its selector matches
    Create {
        /// Unique name
        name: String,
        /// Label the governed datasets carry; repeatable, all must match
        #[arg(
            long = "selector",
            value_name = "KEY=VALUE",
            value_parser = parse_key_value,
            required = true
        )]
        selector: Vec<(String, String)>,
        #[command(flatten)]
        spec: PolicySpec,
    },
    /// Show one policy
    Get {
        /// The policy's id or name
        policy: String,
    },
    /// List policies, highest priority first as the server orders them
    List {
        /// Only policies that select this dataset (id or name)
        #[arg(long)]
        dataset: Option<String>,
    },
    /// Change a policy; only the fields given are changed
    Update {
        /// The policy's id or name
        policy: String,
        /// Replaces the whole selector; repeatable
        #[arg(long = "selector", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        selector: Vec<(String, String)>,
        #[command(flatten)]
        spec: PolicySpec,
    },
    /// Remove a policy
    Delete {
        /// The policy's id or name
        policy: String,
    },
    /// The migrations the policy's autopilot started, newest first, with their state
    /// and figures
    Runs {
        /// The policy's id or name
        policy: String,
    },
}

/// The settable fields of a policy other than its selector, shared by `create` and
/// `update`.
#[derive(Debug, Args)]
pub struct PolicySpec {
    /// What the policy is for
    #[arg(long)]
    description: Option<String>,
    /// When several policies select a dataset, the highest priority wins
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    priority: Option<i32>,
    /// Last access at most this long ago: hot (default 60s)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    hot_after: Option<Duration>,
    /// Last access at most this long ago: warm, older is cold (default 10m)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    warm_after: Option<Duration>,
    /// Site of a tier, e.g. hot=nvme-a; repeatable. On update, replaces all placements
    #[arg(long = "place", value_name = "TIER=SITE", value_parser = parse_placement)]
    placements: Vec<pb::TierPlacement>,
    /// Latency objective overriding the datasets' own, in milliseconds; 0 means none
    #[arg(long, value_name = "MS")]
    slo_ms: Option<u32>,
    /// Monthly cost target per dataset, US dollars; 0 means none
    #[arg(long, value_name = "USD", value_parser = parse_price)]
    monthly_cost_target: Option<f64>,
    /// A dataset stays on a tier at least this long before moving again
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    min_residency: Option<Duration>,
    /// Migrate on recommendation without waiting for approval (--auto-migrate=false to
    /// turn off)
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    auto_migrate: Option<bool>,
    /// Delete the source after a migration switched over (--retire-source=false to turn
    /// off)
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    retire_source: Option<bool>,
    /// How copies are checked: quick (size and checksum) or full (read back)
    #[arg(long, value_name = "MODE", value_parser = parse_verify_mode)]
    verify: Option<pb::VerifyMode>,
    /// Daily UTC window for automatic migrations, e.g. 22:00-06:00; "any" for no limit
    #[arg(long, value_name = "HH:MM-HH:MM", value_parser = parse_window)]
    window: Option<Window>,
    /// Start automatic migrations only at these times, instead of whenever a
    /// recommendation is pending: five fields (minute hour day-of-month month
    /// day-of-week), e.g. "0 2 * * *" for 02:00 every day; "none" to clear. Each time
    /// starts up to --max-concurrent migrations, and is skipped while one the policy
    /// started is unfinished; times missed while the control plane was down make one
    /// run. Exclusive with --window
    #[arg(long, value_name = "EXPR")]
    cron: Option<String>,
    /// IANA time zone the cron fields are read in, e.g. Europe/Paris (default UTC)
    #[arg(long, value_name = "ZONE", requires = "cron")]
    time_zone: Option<String>,
    /// Per-migration bandwidth cap in bytes per second (e.g. 50MB); 0 means unlimited
    #[arg(long, value_name = "BYTES_PER_SEC", value_parser = parse_bytes)]
    bandwidth_limit: Option<u64>,
    /// Cap on this policy's automatic migrations running at once; 0 means the default (1)
    #[arg(long, value_name = "N")]
    max_concurrent: Option<u32>,
}

impl PolicySpec {
    /// Sets the given fields on `policy` and returns their update-mask paths.
    fn apply(&self, policy: &mut pb::Policy) -> Vec<&'static str> {
        let mut mask = Vec::new();
        if let Some(description) = &self.description {
            policy.description = description.clone();
            mask.push("description");
        }
        if let Some(priority) = self.priority {
            policy.priority = priority;
            mask.push("priority");
        }
        if let Some(after) = self.hot_after {
            policy.hot_after = Some(to_duration(after));
            mask.push("hot_after");
        }
        if let Some(after) = self.warm_after {
            policy.warm_after = Some(to_duration(after));
            mask.push("warm_after");
        }
        if !self.placements.is_empty() {
            policy.placements = self.placements.clone();
            mask.push("placements");
        }
        if let Some(slo) = self.slo_ms {
            policy.latency_slo_ms = slo;
            mask.push("latency_slo_ms");
        }
        if let Some(target) = self.monthly_cost_target {
            policy.monthly_cost_target = target;
            mask.push("monthly_cost_target");
        }
        if let Some(residency) = self.min_residency {
            policy.min_residency = Some(to_duration(residency));
            mask.push("min_residency");
        }
        if let Some(auto) = self.auto_migrate {
            policy.auto_migrate = auto;
            mask.push("auto_migrate");
        }
        if let Some(retire) = self.retire_source {
            policy.retire_source = retire;
            mask.push("retire_source");
        }
        if let Some(mode) = self.verify {
            policy.verify_mode = mode.into();
            mask.push("verify_mode");
        }
        if let Some(window) = &self.window {
            policy.schedule_window = window.clone().into_proto();
            mask.push("schedule_window");
        }
        if let Some(limit) = self.bandwidth_limit {
            policy.bandwidth_limit_bytes_per_sec = limit;
            mask.push("bandwidth_limit_bytes_per_sec");
        }
        if let Some(max) = self.max_concurrent {
            policy.max_concurrent_migrations = max;
            mask.push("max_concurrent_migrations");
        }
        if let Some(cron) = &self.cron {
            // The server reads the expression and its zone together.
            if cron != "none" {
                policy.cron = cron.clone();
                policy.time_zone = self.time_zone.clone().unwrap_or_default();
            }
            mask.extend(["cron", "time_zone"]);
        }
        mask
    }
}

pub async fn run(command: PolicyCommand, ctx: &Context) -> Result<String, Error> {
    match command {
        PolicyCommand::Create {
            name,
            selector,
            spec,
        } => {
            let mut policy = pb::Policy {
                name,
                selector: into_map(&selector, "selector label")?,
                ..Default::default()
            };
            spec.apply(&mut policy);
            let created = ctx.client().await?.create_policy(policy).await?;
            show(&created, ctx).await
        }
        PolicyCommand::Get { policy } => {
            let found = ctx.client().await?.get_policy(&policy).await?;
            show(&found, ctx).await
        }
        PolicyCommand::List { dataset } => {
            let policies = ctx
                .client()
                .await?
                .list_policies(dataset.as_deref())
                .await?;
            list(&policies, ctx).await
        }
        PolicyCommand::Update {
            policy,
            selector,
            spec,
        } => {
            let mut changes = pb::Policy::default();
            let mut mask = spec.apply(&mut changes);
            if !selector.is_empty() {
                changes.selector = into_map(&selector, "selector label")?;
                mask.push("selector");
            }
            if mask.is_empty() {
                return Err(Error::InvalidInput(
                    "nothing to update: give at least one flag, e.g. --priority or --place".into(),
                ));
            }
            let client = ctx.client().await?;
            let current = client.get_policy(&policy).await?;
            changes.id = current.id;
            changes.name = current.name;
            let updated = client.update_policy(changes, mask).await?;
            show(&updated, ctx).await
        }
        PolicyCommand::Delete { policy } => {
            ctx.client().await?.delete_policy(&policy).await?;
            Ok(if ctx.json() {
                "{}".to_owned()
            } else {
                format!("deleted policy {policy}")
            })
        }
        PolicyCommand::Runs { policy } => {
            let client = ctx.client().await?;
            let filter = JobFilter {
                policy: Some(policy),
                ..Default::default()
            };
            crate::job::list(&client.list_jobs(&filter).await?, client, ctx).await
        }
    }
}

async fn show(policy: &pb::Policy, ctx: &Context) -> Result<String, Error> {
    if ctx.json() {
        return Ok(json::render(&policy.to_json()));
    }
    let sites = site::names_by_id(ctx.client().await?).await?;
    Ok(fields(policy, &sites).render())
}

/// A policy as a key/value block; `sites` turns placement site ids into names.
pub fn fields(policy: &pb::Policy, sites: &HashMap<String, String>) -> Fields {
    let mut fields = Fields::new();
    fields
        .add("name", &policy.name)
        .add("id", &policy.id)
        .add("description", output::or_none(&policy.description))
        .add("selector", output::pairs(&policy.selector))
        .add("priority", policy.priority.to_string())
        .add("hot after", output::duration(policy.hot_after.as_ref()))
        .add("warm after", output::duration(policy.warm_after.as_ref()))
        .add("placements", placements(&policy.placements, sites))
        .add("latency slo", latency_slo(policy.latency_slo_ms))
        .add("cost target", cost_target(policy.monthly_cost_target))
        .add(
            "min residency",
            output::duration(policy.min_residency.as_ref()),
        )
        .add("auto migrate", output::yes_no(policy.auto_migrate))
        .add("retire source", output::yes_no(policy.retire_source))
        .add("verify", verify_mode(policy.verify_mode))
        .add("window", window(policy.schedule_window.as_ref()))
        .add("cron", cron(policy))
        .add(
            "bandwidth limit",
            output::bandwidth(policy.bandwidth_limit_bytes_per_sec),
        )
        .add(
            "max concurrent",
            match policy.max_concurrent_migrations {
                0 => "default (1)".to_owned(),
                n => n.to_string(),
            },
        )
        .add("created", output::timestamp(policy.create_time.as_ref()))
        .add("updated", output::timestamp(policy.update_time.as_ref()));
    fields
}

fn placements(placements: &[pb::TierPlacement], sites: &HashMap<String, String>) -> String {
    if placements.is_empty() {
        return output::NONE.to_owned();
    }
    placements
        .iter()
        .map(|p| {
            format!(
                "{}={}",
                display::<pb::Tier>(p.tier),
                site::name_of(sites, &p.site)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn cost_target(dollars: f64) -> String {
    if dollars == 0.0 {
        "none".to_owned()
    } else {
        format!("{} per month", output::dollars(dollars))
    }
}

/// The cron with its zone, next due time and what its due times did.
fn cron(policy: &pb::Policy) -> String {
    if policy.cron.is_empty() {
        return output::NONE.to_owned();
    }
    let mut text = format!("{} ({})", policy.cron, policy.time_zone);
    if policy.next_run_time.is_some() {
        text += &format!(
            ", next {}",
            output::timestamp(policy.next_run_time.as_ref())
        );
    }
    text += &format!(", {} runs, {} skipped", policy.runs, policy.skipped_runs);
    if !policy.last_error.is_empty() {
        text += &format!(", last error: {}", policy.last_error);
    }
    text
}

fn window(window: Option<&pb::ScheduleWindow>) -> String {
    match window {
        Some(w) => format!("{}-{} UTC", w.start, w.end),
        None => "any time".to_owned(),
    }
}

/// Unspecified means the server's default mode applies.
pub fn verify_mode(mode: i32) -> String {
    if mode == 0 {
        "default".to_owned()
    } else {
        display::<pb::VerifyMode>(mode)
    }
}

async fn list(policies: &[pb::Policy], ctx: &Context) -> Result<String, Error> {
    if ctx.json() {
        return Ok(json::render(&json::array(policies)));
    }
    if policies.is_empty() {
        return Ok("no policies".to_owned());
    }
    let sites = site::names_by_id(ctx.client().await?).await?;
    let rows = policies
        .iter()
        .map(|policy| {
            vec![
                policy.name.clone(),
                policy.priority.to_string(),
                output::pairs(&policy.selector),
                output::duration(policy.hot_after.as_ref()),
                output::duration(policy.warm_after.as_ref()),
                placements(&policy.placements, &sites),
                output::yes_no(policy.auto_migrate).to_owned(),
                policy.id.clone(),
            ]
        })
        .collect();
    Ok(output::table(
        &[
            "NAME",
            "PRIORITY",
            "SELECTOR",
            "HOT AFTER",
            "WARM AFTER",
            "PLACEMENTS",
            "AUTO MIGRATE",
            "ID",
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
        spec: PolicySpec,
    }

    fn parse(args: &[&str]) -> Result<PolicySpec, clap::Error> {
        Probe::try_parse_from(std::iter::once("probe").chain(args.iter().copied())).map(|p| p.spec)
    }

    #[test]
    fn flags_fill_the_policy_and_the_mask() -> Result<(), clap::Error> {
        let spec = parse(&[
            "--priority",
            "-5",
            "--hot-after",
            "90s",
            "--warm-after",
            "1h30m",
            "--place",
            "hot=nvme",
            "--place",
            "cold=s3",
            "--auto-migrate",
            "--window",
            "22:00-06:00",
            "--bandwidth-limit",
            "50MB",
            "--verify",
            "full",
        ])?;
        let mut policy = pb::Policy::default();
        let mask = spec.apply(&mut policy);
        assert_eq!(
            mask,
            [
                "priority",
                "hot_after",
                "warm_after",
                "placements",
                "auto_migrate",
                "verify_mode",
                "schedule_window",
                "bandwidth_limit_bytes_per_sec",
            ]
        );
        assert_eq!(policy.priority, -5);
        assert_eq!(policy.hot_after.map(|d| d.seconds), Some(90));
        assert_eq!(policy.warm_after.map(|d| d.seconds), Some(5_400));
        assert_eq!(policy.placements.len(), 2);
        assert!(policy.auto_migrate);
        assert_eq!(policy.verify_mode, i32::from(pb::VerifyMode::Full));
        assert_eq!(
            policy.schedule_window.map(|w| (w.start, w.end)),
            Some(("22:00".to_owned(), "06:00".to_owned()))
        );
        assert_eq!(policy.bandwidth_limit_bytes_per_sec, 50_000_000);
        Ok(())
    }

    #[test]
    fn booleans_can_be_turned_off_and_windows_cleared() -> Result<(), clap::Error> {
        let spec = parse(&["--auto-migrate=false", "--retire-source", "--window", "any"])?;
        let mut policy = pb::Policy {
            auto_migrate: true,
            ..Default::default()
        };
        let mask = spec.apply(&mut policy);
        assert_eq!(mask, ["auto_migrate", "retire_source", "schedule_window"]);
        assert!(!policy.auto_migrate);
        assert!(policy.retire_source);
        assert_eq!(policy.schedule_window, None);
        Ok(())
    }

    #[test]
    fn bad_values_are_usage_errors() {
        assert!(parse(&["--hot-after", "soon"]).is_err());
        assert!(parse(&["--place", "lukewarm=x"]).is_err());
        assert!(parse(&["--window", "25:00-01:00"]).is_err());
        assert!(parse(&["--verify", "maybe"]).is_err());
    }
}
