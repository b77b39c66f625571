//! Placement policies: which datasets they govern (a label selector), how recency maps
//! to tiers, where each tier lives, and the limits on moving data automatically.

use std::{cmp::Reverse, collections::BTreeMap, fmt, time::Duration};

use chrono::{DateTime, Utc};

use super::{
    ids::{PolicyId, SiteId},
    labels::Labels,
    name::{Name, Ref},
    schedule::When,
    tier::{Tier, VerifyMode},
};
use crate::error::{Error, Result};

/// Longest duration a policy threshold may take; beyond it is surely a typo.
const MAX_THRESHOLD: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub id: PolicyId,
    pub name: Name,
    pub spec: PolicySpec,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Where its cron stands; all empty without one.
    pub runs: PolicyRuns,
}

/// The state of a policy's cron: its next due time (while automatic migrations are on)
/// and what its due times did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicyRuns {
    pub next_run_at: Option<DateTime<Utc>>,
    /// Due times that ran.
    pub runs: u64,
    /// Due times skipped because a migration the policy started was unfinished.
    pub skipped: u64,
    /// Why the last due time that ran failed to start migrations, if it did.
    pub last_error: Option<String>,
}

/// What a policy's due time does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DueRun {
    /// Nothing the policy started is unfinished: the run starts migrations.
    Run,
    /// A migration the policy started is unfinished: no run this time.
    Skip,
}

/// Everything about a policy but its identity.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicySpec {
    pub description: String,
    pub selector: Labels,
    pub priority: i32,
    pub hot_after: Duration,
    pub warm_after: Duration,
    pub placements: BTreeMap<Tier, SiteId>,
    pub latency_slo_ms: Option<u32>,
    pub monthly_cost_target: Option<f64>,
    pub min_residency: Duration,
    pub auto_migrate: bool,
    pub retire_source: bool,
    pub verify_mode: VerifyMode,
    pub schedule_window: Option<ScheduleWindow>,
    pub bandwidth_limit: Option<u64>,
    /// `None` means the default of one migration at a time.
    pub max_concurrent_migrations: Option<u32>,
    /// Automatic migrations start only at these due times; exclusive with the window.
    pub cron: Option<When>,
}

impl Default for PolicySpec {
    fn default() -> Self {
        PolicySpec {
            description: String::new(),
            selector: Labels::default(),
            priority: 0,
            hot_after: Duration::from_secs(60),
            warm_after: Duration::from_secs(600),
            placements: BTreeMap::new(),
            latency_slo_ms: None,
            monthly_cost_target: None,
            min_residency: Duration::ZERO,
            auto_migrate: false,
            retire_source: false,
            verify_mode: VerifyMode::Quick,
            schedule_window: None,
            bandwidth_limit: None,
            max_concurrent_migrations: None,
            cron: None,
        }
    }
}

/// Changes to a policy; `None` leaves a field as it is. Placements name sites by
/// reference and are resolved by the service before the patch applies.
#[derive(Clone, Debug, Default)]
pub struct PolicyPatch {
    pub description: Option<String>,
    pub selector: Option<Labels>,
    pub priority: Option<i32>,
    pub hot_after: Option<Duration>,
    pub warm_after: Option<Duration>,
    pub placements: Option<Vec<(Tier, Ref<SiteId>)>>,
    pub latency_slo_ms: Option<Option<u32>>,
    pub monthly_cost_target: Option<Option<f64>>,
    pub min_residency: Option<Duration>,
    pub auto_migrate: Option<bool>,
    pub retire_source: Option<bool>,
    pub verify_mode: Option<VerifyMode>,
    pub schedule_window: Option<Option<ScheduleWindow>>,
    pub bandwidth_limit: Option<Option<u64>>,
    pub max_concurrent_migrations: Option<Option<u32>>,
    pub cron: Option<Option<When>>,
}

impl PolicySpec {
    /// Applies a patch whose placements the caller has resolved to site ids, then checks
    /// the result as a whole (a threshold may only be valid next to the other one).
    pub fn apply(
        &mut self,
        patch: &PolicyPatch,
        placements: Option<BTreeMap<Tier, SiteId>>,
    ) -> Result<()> {
        self.apply_unchecked(patch, placements);
        self.validate()
    }

    fn apply_unchecked(&mut self, patch: &PolicyPatch, placements: Option<BTreeMap<Tier, SiteId>>) {
        macro_rules! take {
            ($($field:ident),*) => {$(
                if let Some(value) = &patch.$field {
                    self.$field = value.clone();
                }
            )*};
        }
        take!(
            description,
            selector,
            priority,
            hot_after,
            warm_after,
            latency_slo_ms,
            monthly_cost_target,
            min_residency,
            auto_migrate,
            retire_source,
            verify_mode,
            schedule_window,
            bandwidth_limit,
            max_concurrent_migrations,
            cron
        );
        if let Some(placements) = placements {
            self.placements = placements;
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.selector.is_empty() {
            return Err(Error::invalid("selector", "must name at least one label"));
        }
        self.validate_rules()
    }

    /// A draft replayed in a what-if: defaults overlaid with `patch`, checked like a
    /// policy except that it needs no selector (the request names its datasets).
    pub fn draft(patch: &PolicyPatch, placements: Option<BTreeMap<Tier, SiteId>>) -> Result<Self> {
        let mut spec = PolicySpec::default();
        let mut patch = patch.clone();
        let selector = patch.selector.take();
        spec.apply_unchecked(&patch, placements);
        if let Some(selector) = selector {
            spec.selector = selector;
        }
        spec.validate_rules()?;
        Ok(spec)
    }

    fn validate_rules(&self) -> Result<()> {
        if self.description.len() > 1024 {
            return Err(Error::invalid("description", "must be at most 1024 bytes"));
        }
        if self.hot_after.is_zero() {
            return Err(Error::invalid("hot_after", "must be longer than zero"));
        }
        if self.warm_after <= self.hot_after {
            return Err(Error::invalid(
                "warm_after",
                format!(
                    "must be longer than hot_after ({}s), got {}s",
                    self.hot_after.as_secs_f64(),
                    self.warm_after.as_secs_f64()
                ),
            ));
        }
        for (field, value) in [
            ("warm_after", self.warm_after),
            ("min_residency", self.min_residency),
        ] {
            if value > MAX_THRESHOLD {
                return Err(Error::invalid(field, "must be at most 10 years"));
            }
        }
        if let Some(target) = self.monthly_cost_target {
            if !target.is_finite() || target < 0.0 {
                return Err(Error::invalid(
                    "monthly_cost_target",
                    format!("must be a non-negative amount, got {target}"),
                ));
            }
        }
        if self.cron.is_some() && self.schedule_window.is_some() {
            return Err(Error::invalid(
                "cron",
                "a policy's automatic migrations follow either a schedule_window or a cron, \
                 not both; clear one of them",
            ));
        }
        if let Some(limit) = self.bandwidth_limit {
            if limit > i64::MAX as u64 {
                return Err(Error::invalid(
                    "bandwidth_limit_bytes_per_sec",
                    "is too large",
                ));
            }
        }
        Ok(())
    }

    /// The first due time of the cron after `now`, while automatic migrations are on.
    pub fn next_run_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .as_ref()
            .filter(|_| self.auto_migrate)
            .and_then(|cron| cron.next_after(now))
    }

    /// The tier that the recency rule assigns to data last read `age` ago.
    pub fn tier_for_age(&self, age: Duration) -> Tier {
        if age <= self.hot_after {
            Tier::Hot
        } else if age <= self.warm_after {
            Tier::Warm
        } else {
            Tier::Cold
        }
    }
}

/// The policy that governs a dataset with these labels: the highest priority among those
/// whose selector matches, ties broken by name so the choice is stable.
pub fn effective_policy<'a>(policies: &'a [Policy], labels: &Labels) -> Option<&'a Policy> {
    policies
        .iter()
        .filter(|p| labels.matches(&p.spec.selector))
        .max_by_key(|p| (p.spec.priority, Reverse(p.name.clone())))
}

/// A daily window in UTC, in minutes after midnight. An end before the start spans
/// midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScheduleWindow {
    pub start_minute: u16,
    pub end_minute: u16,
}

impl ScheduleWindow {
    pub fn parse(start: &str, end: &str) -> Result<Self> {
        let start_minute =
            parse_clock(start).map_err(|r| Error::invalid("schedule_window.start", r))?;
        let end_minute = parse_clock(end).map_err(|r| Error::invalid("schedule_window.end", r))?;
        if start_minute == end_minute {
            return Err(Error::invalid(
                "schedule_window",
                "start and end must differ",
            ));
        }
        Ok(ScheduleWindow {
            start_minute,
            end_minute,
        })
    }

    /// Whether `minute` (after midnight UTC) falls inside the window.
    pub fn contains(&self, minute: u16) -> bool {
        if self.start_minute < self.end_minute {
            (self.start_minute..self.end_minute).contains(&minute)
        } else {
            minute >= self.start_minute || minute < self.end_minute
        }
    }

    pub fn format_clock(minute: u16) -> String {
        format!("{:02}:{:02}", minute / 60, minute % 60)
    }
}

impl fmt::Display for ScheduleWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            Self::format_clock(self.start_minute),
            Self::format_clock(self.end_minute)
        )
    }
}

fn parse_clock(s: &str) -> std::result::Result<u16, String> {
    let bad = || format!("'{s}' is not a time of day as HH:MM");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    // Digits only: `u16::from_str` also takes a sign, which would let "+1:+5" through.
    let two_digits = |part: &str| part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(h) || !two_digits(m) {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(k: &str, v: &str) -> Labels {
        Labels::parse(
            "selector",
            &BTreeMap::from([(k.to_string(), v.to_string())]),
        )
        .unwrap()
    }

    fn spec() -> PolicySpec {
        PolicySpec {
            selector: selector("team", "a"),
            ..PolicySpec::default()
        }
    }

    #[test]
    fn thresholds_must_be_ordered() {
        let mut s = spec();
        let patch = PolicyPatch {
            warm_after: Some(Duration::from_secs(30)),
            ..Default::default()
        };
        let err = s.apply(&patch, None).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("warm_after: must be longer than hot_after"),
            "{err}"
        );
    }

    #[test]
    fn empty_selector_and_negative_budget_are_rejected() {
        let mut s = PolicySpec::default();
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("selector"));
        s.selector = selector("a", "b");
        s.monthly_cost_target = Some(-3.0);
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("monthly_cost_target"));
    }

    #[test]
    fn recency_maps_to_tiers() {
        let s = spec();
        assert_eq!(s.tier_for_age(Duration::from_secs(10)), Tier::Hot);
        assert_eq!(s.tier_for_age(Duration::from_secs(300)), Tier::Warm);
        assert_eq!(s.tier_for_age(Duration::from_secs(3600)), Tier::Cold);
    }

    #[test]
    fn a_cron_excludes_a_window_and_is_due_only_with_auto_migrate() {
        let mut s = spec();
        let nightly = When::parse("0 3 * * *", "Europe/Paris").unwrap();
        let now = Utc::now();
        s.cron = Some(nightly.clone());
        assert_eq!(s.next_run_after(now), None, "auto-migrate is off");
        s.auto_migrate = true;
        assert_eq!(s.next_run_after(now), nightly.next_after(now));
        s.schedule_window = Some(ScheduleWindow::parse("22:00", "06:00").unwrap());
        match s.validate() {
            Err(Error::InvalidArgument { field, reason }) => {
                assert_eq!(field, "cron");
                assert!(reason.contains("not both"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn windows_may_span_midnight() {
        let w = ScheduleWindow::parse("22:00", "06:00").unwrap();
        assert!(w.contains(23 * 60));
        assert!(w.contains(60));
        assert!(!w.contains(12 * 60));
        assert_eq!(w.to_string(), "22:00-06:00");
        assert!(ScheduleWindow::parse("24:00", "01:00").is_err());
        assert!(ScheduleWindow::parse("1:00", "02:00").is_err());
        assert!(ScheduleWindow::parse("01:00", "01:00").is_err());
    }

    /// Found by the properties below: the hours and minutes went to `u16::from_str`,
    /// which takes a leading '+'.
    #[test]
    fn clock_times_are_digits_only() {
        for (start, end, field) in [
            ("+1:00", "02:00", "schedule_window.start"),
            ("01:+5", "02:00", "schedule_window.start"),
            ("01:00", "+2:00", "schedule_window.end"),
        ] {
            let err = ScheduleWindow::parse(start, end).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{field}: '")), "{err}");
        }
    }

    #[test]
    fn highest_priority_matching_policy_wins() {
        let now = Utc::now();
        let policy = |name: &str, priority: i32, sel: Labels| Policy {
            id: PolicyId::new(),
            name: Name::parse("name", name).unwrap(),
            spec: PolicySpec {
                selector: sel,
                priority,
                ..PolicySpec::default()
            },
            created_at: now,
            updated_at: now,
            runs: PolicyRuns::default(),
        };
        let policies = vec![
            policy("low", 1, selector("team", "a")),
            policy("high", 5, selector("team", "a")),
            policy("other", 9, selector("team", "b")),
        ];
        let labels = selector("team", "a");
        assert_eq!(
            effective_policy(&policies, &labels).unwrap().name.as_str(),
            "high"
        );
        assert!(effective_policy(&policies, &selector("x", "y")).is_none());
    }
}

/// Schedule windows and thresholds come from users: any pair of texts is a window or an
/// error naming `schedule_window.start`, `.end` or the window, never a panic; a window is
/// accepted only as `HH:MM` twice, and prints back to itself; any thresholds are valid
/// or name the field.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn clock_like() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[0-9+ -]{1,3}:[0-9+ -]{1,3}",
            "[0-9+]{2}:[0-9+]{2}",
            "[0-9]{2}:[0-9]{2}",
        ]
    }

    /// Durations up to a little over the ten-year limit, and any at all.
    fn threshold() -> impl Strategy<Value = Duration> {
        let secs = prop_oneof![0..MAX_THRESHOLD.as_secs() + 10, any::<u64>()];
        (secs, 0..1_000_000_000u32).prop_map(|(s, n)| Duration::new(s, n))
    }

    fn is_clock(s: &str) -> bool {
        let b = s.as_bytes();
        b.len() == 5
            && b[2] == b':'
            && [0, 1, 3, 4].iter().all(|&i| b[i].is_ascii_digit())
            && s[..2] < *"24"
            && s[3..] < *"60"
    }

    proptest! {
        #[test]
        fn windows_are_two_clock_times_or_an_error_naming_the_field(
            start in clock_like(),
            end in clock_like(),
        ) {
            match ScheduleWindow::parse(&start, &end) {
                Ok(window) => {
                    prop_assert!(is_clock(&start) && is_clock(&end), "{start:?}-{end:?}");
                    prop_assert_eq!(window.to_string(), format!("{start}-{end}"));
                    let again = ScheduleWindow::parse(
                        &ScheduleWindow::format_clock(window.start_minute),
                        &ScheduleWindow::format_clock(window.end_minute),
                    )?;
                    prop_assert_eq!(again, window);
                }
                Err(Error::InvalidArgument { field, .. }) => {
                    let expected = if !is_clock(&start) {
                        "schedule_window.start"
                    } else if !is_clock(&end) {
                        "schedule_window.end"
                    } else {
                        "schedule_window"
                    };
                    prop_assert_eq!(field, expected);
                }
                Err(e) => prop_assert!(false, "{e}"),
            }
        }

        #[test]
        fn any_thresholds_are_valid_or_name_the_field(
            hot_after in threshold(),
            warm_after in threshold(),
            min_residency in threshold(),
            cost in prop_oneof![any::<f64>(), 0.0..1e6],
        ) {
            let spec = PolicySpec {
                selector: Labels::parse("selector", &BTreeMap::from([("a".to_owned(), "b".to_owned())]))?,
                hot_after,
                warm_after,
                min_residency,
                monthly_cost_target: Some(cost),
                ..PolicySpec::default()
            };
            match spec.validate() {
                Ok(()) => prop_assert!(
                    !spec.hot_after.is_zero()
                        && spec.hot_after < spec.warm_after
                        && spec.warm_after <= MAX_THRESHOLD
                        && spec.min_residency <= MAX_THRESHOLD
                        && cost >= 0.0
                ),
                Err(Error::InvalidArgument { field, .. }) => prop_assert!(
                    ["hot_after", "warm_after", "min_residency", "monthly_cost_target"].contains(&field.as_str()),
                    "{field}"
                ),
                Err(e) => prop_assert!(false, "{e}"),
            }
        }

        #[test]
        fn every_pair_of_distinct_minutes_is_a_window(start in 0..1440u16, end in 0..1440u16) {
            prop_assume!(start != end);
            let window = ScheduleWindow::parse(
                &ScheduleWindow::format_clock(start),
                &ScheduleWindow::format_clock(end),
            )?;
            prop_assert_eq!((window.start_minute, window.end_minute), (start, end));
            prop_assert!(window.contains(start) && !window.contains(end));
        }
    }
}
