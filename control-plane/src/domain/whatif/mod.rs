//! What-if replay: a dataset's recorded hourly access, replayed hour by hour under a
//! placement strategy, priced at each site's price list. Ferry's strategy and the recency
//! rule are [`recommend`] itself, called with the replayed hour as its clock, with and
//! without the demand model (retrained as the schedule would); the Intelligent-Tiering
//! rule and what actually happened are the comparisons.
//!
//! The model of time, so that figures can be checked by hand:
//! - placement is decided at the start of every step (hour boundary), from the access
//!   of the hours before it; a dataset's last access is the end of the last hour that had
//!   any;
//! - a move decided at hour `i` takes the dataset's size over the transfer rate between
//!   the two sites, rounded up to whole hours (at least one): until it arrives, reads
//!   are served, and storage paid, at the old site; no other move starts meanwhile;
//! - each hour costs 1/720 of the site's monthly storage price (a 30-day month), the
//!   retrieval price of the bytes read in it and the request price of its reads and
//!   writes; each move costs [`move_cost`] once, when decided;
//! - a read is slow when it is served from a site slower than the dataset's latency
//!   objective (the policy's, else the dataset's).

mod series;

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};

pub use series::Series;

use super::{
    cost::{move_cost, MonthlyDemand},
    dataset::Dataset,
    forecast::{self, Model, TRAIN_DAYS},
    ids::SiteId,
    placement::{recommend, Inputs, TransferRates},
    policy::PolicySpec,
    site::Site,
    tier::Tier,
};

const GB: f64 = 1e9;
const HOURS_PER_MONTH: f64 = 720.0;
/// History before the replayed range that the rules and the model look at.
pub const LOOKBACK_DAYS: i64 = TRAIN_DAYS;
/// The Intelligent-Tiering rule: this long without access moves an object to the
/// infrequent tier (warm)...
const IT_WARM_AFTER: TimeDelta = TimeDelta::days(30);
/// ...and this long to the archive-instant tier (cold).
const IT_COLD_AFTER: TimeDelta = TimeDelta::days(90);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Strategy {
    /// What happened: the dataset where it was, moved by the migrations that completed.
    Actual,
    /// The policy's rules with demand forecasts.
    Ferry,
    /// The same rules without forecasts.
    Recency,
    /// 30 days without access to warm, 90 to cold, back to hot on access.
    IntelligentTiering,
}

impl Strategy {
    pub const ALL: [Strategy; 4] = [
        Strategy::Actual,
        Strategy::Ferry,
        Strategy::Recency,
        Strategy::IntelligentTiering,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Actual => "actual",
            Strategy::Ferry => "ferry",
            Strategy::Recency => "recency",
            Strategy::IntelligentTiering => "intelligent_tiering",
        }
    }
}

/// What the replay covers, shared by every dataset.
pub struct Scenario<'a> {
    pub sites: &'a [Site],
    /// Whole hours; `start < end`.
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Placement is decided every this many hours (at least one).
    pub step_hours: usize,
    pub retrain_every: TimeDelta,
    pub rates: &'a TransferRates,
}

/// One dataset to replay.
pub struct Subject {
    pub dataset: Dataset,
    /// The policy replayed for it; `None` replays the defaults.
    pub policy: Option<PolicySpec>,
    /// Where it was at the start of the range, and since when.
    pub start_site: SiteId,
    pub arrived_at: DateTime<Utc>,
    /// Hourly access from [`LOOKBACK_DAYS`] before the start to the end.
    pub history: Vec<(DateTime<Utc>, super::access::HourlyAccess)>,
    /// Migrations that completed inside the range: when, and to which site.
    pub actual_moves: Vec<(DateTime<Utc>, SiteId)>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SiteCost {
    pub storage: f64,
    pub retrieval: f64,
    pub requests: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub strategy: Strategy,
    pub storage: f64,
    pub retrieval: f64,
    pub requests: f64,
    pub move_cost: f64,
    pub moves: u32,
    pub slow_reads: u64,
    pub sites: BTreeMap<SiteId, SiteCost>,
}

impl Outcome {
    pub fn new(strategy: Strategy) -> Self {
        Outcome {
            strategy,
            storage: 0.0,
            retrieval: 0.0,
            requests: 0.0,
            move_cost: 0.0,
            moves: 0,
            slow_reads: 0,
            sites: BTreeMap::new(),
        }
    }

    pub fn total(&self) -> f64 {
        self.storage + self.retrieval + self.requests + self.move_cost
    }

    /// Adds another dataset's outcome under the same strategy.
    pub fn add(&mut self, other: &Outcome) {
        self.storage += other.storage;
        self.retrieval += other.retrieval;
        self.requests += other.requests;
        self.move_cost += other.move_cost;
        self.moves += other.moves;
        self.slow_reads += other.slow_reads;
        for (site, c) in &other.sites {
            let mine = self.sites.entry(*site).or_default();
            mine.storage += c.storage;
            mine.retrieval += c.retrieval;
            mine.requests += c.requests;
        }
    }
}

/// Replays one dataset under every strategy, in [`Strategy::ALL`] order. `None` when
/// its starting site is not among the scenario's sites.
pub fn replay(scenario: &Scenario<'_>, subject: &Subject) -> Option<Vec<Outcome>> {
    let origin = scenario.start - TimeDelta::days(LOOKBACK_DAYS);
    let hours = usize::try_from((scenario.end - origin).num_hours()).ok()?;
    let series = Series::new(origin, hours, &subject.history);
    let first = usize::try_from((scenario.start - origin).num_hours()).ok()?;
    let site = scenario.sites.iter().find(|s| s.id == subject.start_site)?;
    Some(
        Strategy::ALL
            .into_iter()
            .map(|strategy| Run::new(scenario, subject, &series, strategy, site).go(first, hours))
            .collect(),
    )
}

/// One strategy's replay of one dataset.
struct Run<'a> {
    scenario: &'a Scenario<'a>,
    subject: &'a Subject,
    series: &'a Series,
    strategy: Strategy,
    site: &'a Site,
    arrived_at: DateTime<Utc>,
    /// A move under way: when it arrives, and where.
    moving: Option<(usize, &'a Site)>,
    model: Option<Model>,
    outcome: Outcome,
}

impl<'a> Run<'a> {
    fn new(
        scenario: &'a Scenario<'a>,
        subject: &'a Subject,
        series: &'a Series,
        strategy: Strategy,
        site: &'a Site,
    ) -> Self {
        Run {
            scenario,
            subject,
            series,
            strategy,
            site,
            arrived_at: subject.arrived_at,
            moving: None,
            model: None,
            outcome: Outcome::new(strategy),
        }
    }

    fn site(&self, id: SiteId) -> Option<&'a Site> {
        self.scenario.sites.iter().find(|s| s.id == id)
    }

    fn go(mut self, first: usize, hours: usize) -> Outcome {
        let slo = self
            .subject
            .policy
            .as_ref()
            .and_then(|p| p.latency_slo_ms)
            .or(self.subject.dataset.latency_slo_ms);
        let mut last_access = last_access_before(self.series, first);
        let mut next_actual = 0;
        for i in first..hours {
            let now = self.series.at(i);
            if let Some((arrival, to)) = self.moving {
                if arrival <= i {
                    self.site = to;
                    self.arrived_at = self.series.at(arrival);
                    self.moving = None;
                }
            }
            match self.strategy {
                Strategy::Actual => {
                    while let Some((at, to)) = self.subject.actual_moves.get(next_actual) {
                        if *at >= now + TimeDelta::hours(1) {
                            break;
                        }
                        next_actual += 1;
                        if let Some(to) = self.site(*to) {
                            self.charge_move(to, now);
                            self.site = to;
                            self.arrived_at = *at;
                        }
                    }
                }
                _ if self.moving.is_none() && (i - first) % self.scenario.step_hours == 0 => {
                    if let Some(target) = self.decide(i, last_access) {
                        if target.id != self.site.id {
                            self.charge_move(target, now);
                            let (bps, _) = self.scenario.rates.between(self.site.id, target.id);
                            let secs = self.subject.dataset.size_bytes as f64 / bps.max(1.0);
                            let hours = ((secs / 3600.0).ceil() as usize).max(1);
                            self.moving = Some((i + hours, target));
                        }
                    }
                }
                _ => {}
            }
            self.charge_hour(i, slo);
            if self.series.reads[i] > 0 || self.series.writes[i] > 0 {
                last_access = Some(self.series.at(i + 1));
            }
        }
        self.outcome
    }

    /// Where the strategy puts the dataset at hour `i`.
    fn decide(&mut self, i: usize, last_access: Option<DateTime<Utc>>) -> Option<&'a Site> {
        let now = self.series.at(i);
        match self.strategy {
            Strategy::Actual => None,
            Strategy::IntelligentTiering => {
                let since = last_access.unwrap_or(self.arrived_at);
                let idle = now - since;
                let tier = if idle >= IT_COLD_AFTER {
                    Tier::Cold
                } else if idle >= IT_WARM_AFTER {
                    Tier::Warm
                } else {
                    Tier::Hot
                };
                let placed = self
                    .subject
                    .policy
                    .as_ref()
                    .and_then(|p| p.placements.get(&tier))
                    .and_then(|id| self.site(*id));
                placed.or_else(|| {
                    self.scenario
                        .sites
                        .iter()
                        .filter(|s| s.tier == tier)
                        .min_by(|a, b| {
                            a.prices
                                .storage_per_gb_month
                                .total_cmp(&b.prices.storage_per_gb_month)
                        })
                })
            }
            Strategy::Ferry | Strategy::Recency => {
                if self.strategy == Strategy::Ferry {
                    self.retrain(i, now);
                }
                let outlook = self.model.as_ref().and_then(|m| m.outlook(now));
                let mut dataset = self.subject.dataset.clone();
                dataset.site_id = self.site.id;
                dataset.current_tier = self.site.tier;
                dataset.last_access_at = last_access;
                let week = i.saturating_sub(168);
                let advice = recommend(&Inputs {
                    dataset: &dataset,
                    sites: self.scenario.sites,
                    policy: self.subject.policy.as_ref(),
                    demand: MonthlyDemand::project(
                        self.series.requests(week, i),
                        self.series.bytes(week, i),
                        7.0,
                    ),
                    reads_last_hour: i.checked_sub(1).map_or(0, |h| self.series.reads[h]),
                    bytes_read_last_day: self.series.bytes(i.saturating_sub(24), i),
                    arrived_at: self.arrived_at,
                    now,
                    outlook: outlook.as_ref(),
                    rates: self.scenario.rates,
                    trained: self.model.is_some(),
                })?;
                self.site(advice.site_id)
            }
        }
    }

    /// Trains the demand model as the schedule would have: when none was trained yet,
    /// or the last is `retrain_every` old.
    fn retrain(&mut self, i: usize, now: DateTime<Utc>) {
        let due = self
            .model
            .as_ref()
            .is_none_or(|m| now - m.trained_at >= self.scenario.retrain_every);
        if due {
            let history = self.series.history_before(i);
            self.model = Some(forecast::train(self.subject.dataset.id, &history, now));
        }
    }

    fn charge_move(&mut self, to: &Site, now: DateTime<Utc>) {
        let days = (now - self.arrived_at).as_seconds_f64() / 86_400.0;
        self.outcome.move_cost += move_cost(
            &self.site.prices,
            &to.prices,
            self.subject.dataset.size_bytes,
            self.subject.dataset.object_count,
            days.max(0.0),
        );
        self.outcome.moves += 1;
    }

    fn charge_hour(&mut self, i: usize, slo: Option<u32>) {
        let p = &self.site.prices;
        let storage =
            self.subject.dataset.size_bytes as f64 / GB * p.storage_per_gb_month / HOURS_PER_MONTH;
        let retrieval = self.series.bytes_read[i] as f64 / GB * p.retrieval_per_gb;
        let requests = self.series.requests(i, i + 1) as f64 / 1000.0 * p.per_1000_requests;
        self.outcome.storage += storage;
        self.outcome.retrieval += retrieval;
        self.outcome.requests += requests;
        let site = self.outcome.sites.entry(self.site.id).or_default();
        site.storage += storage;
        site.retrieval += retrieval;
        site.requests += requests;
        if slo.is_some_and(|slo| self.site.latency_ms > slo) {
            self.outcome.slow_reads += self.series.reads[i];
        }
    }
}

/// The end of the last hour before `i` with any access.
fn last_access_before(series: &Series, i: usize) -> Option<DateTime<Utc>> {
    (0..i)
        .rev()
        .find(|h| series.reads[*h] > 0 || series.writes[*h] > 0)
        .map(|h| series.at(h + 1))
}
